//! The local store's layers for people and for pruning: `images --target qemu` (a lineage
//! tree with size, age, verified, published and current/stale) and `prune --target qemu
//! --keep N`. The store grows by a disk per layer; prune is how it shrinks, and it never
//! removes what a stack's published default or rollback target boots, what a running VM's
//! overlay is backed by, or a parent of any kept layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::config::Project;
use crate::error::{Error, Result};
use crate::plan::PlanRequest;
use crate::published::Published;
use crate::store::{now_epoch, LayerRecord, Store};

/// One layer in the store, as `images --target qemu` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LocalImage {
    pub layer: String,
    pub layer_hash: String,
    pub image: String,
    pub stack: Option<String>,
    pub age_s: u64,
    /// Bytes the layer's disk takes on disk.
    pub disk_bytes: u64,
    /// `current`, `stale` or `unknown`.
    pub status: String,
    pub why: Option<String>,
    /// The newest `verify` verdict on it, e.g. `passed (web)` or `failed (web)`.
    pub verified: Option<String>,
    /// What publishes it, e.g. `web v3 default` or `web v2 rollback target`.
    pub published: Vec<String>,
    pub children: Vec<LocalImage>,
}

/// Every complete layer record in the store, oldest first.
pub fn records(store: &Store) -> Vec<LayerRecord> {
    let mut out: Vec<LayerRecord> = std::fs::read_dir(store.images())
        .into_iter()
        .flatten()
        .filter_map(|e| store.layer(e.ok()?.file_name().to_str()?))
        .collect();
    out.sort_by(|a, b| (a.created_at, &a.hash).cmp(&(b.created_at, &b.hash)));
    out
}

fn parent_hash(r: &LayerRecord) -> Option<&str> {
    r.parent.strip_prefix("layer:")
}

/// What each stack's publications pin, by layer hash, each as `text(stack, version, role)`
/// where role is `default` or `rollback target`.
fn pins_by(
    published: &[Published],
    text: impl Fn(&str, u32, &str) -> String,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in published {
        let cur = p.current();
        let pins = [
            Some((cur, "default")),
            p.rollback_target().map(|t| (t, "rollback target")),
        ];
        for (v, role) in pins.into_iter().flatten() {
            out.entry(v.layer_hash.clone())
                .or_default()
                .push(text(&p.stack, v.version, role));
        }
    }
    out
}

/// What each stack's publications pin, for prune: layer hash → why (`published default of
/// web (version 3)`, `rollback target of web (version 2)`).
pub fn pinned(published: &[Published]) -> BTreeMap<String, Vec<String>> {
    pins_by(published, |stack, version, role| match role {
        "default" => format!("published default of {stack} (version {version})"),
        _ => format!("{role} of {stack} (version {version})"),
    })
}

/// Layers a VM launched from the store still runs on: their disk backs the overlay in a run
/// directory (`launch --keep`, or a launch in progress). Layer hash → the run directory.
pub fn in_use_by_runs(store: &Store, hashes: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(store.runs())
        .into_iter()
        .flatten()
        .flatten()
    {
        let overlay = entry.path().join("overlay.qcow2");
        // a qcow2 header names its backing file in its first cluster
        let Ok(head) = read_head(&overlay, 64 * 1024) else {
            continue;
        };
        let head = String::from_utf8_lossy(&head);
        for h in hashes {
            if head.contains(&format!("/{h}/disk.qcow2")) {
                out.insert(
                    h.clone(),
                    format!(
                        "backs the disk of a VM in {}",
                        entry.file_name().to_string_lossy()
                    ),
                );
            }
        }
    }
    out
}

fn read_head(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(n);
    // reading rule exception (src/fsread.rs): a store file, at most `n` bytes
    std::fs::File::open(path)?
        .take(n as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// One prune decision on a layer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LocalDecision {
    pub layer: String,
    pub layer_hash: String,
    pub group: String,
    /// `keep` or `remove` (`removed` once done).
    pub action: String,
    pub why: String,
    pub disk_bytes: u64,
}

fn group(r: &LayerRecord) -> String {
    match &r.stack {
        Some(s) => format!("stack {}/{s}", r.image),
        None => format!("image {}", r.image),
    }
}

/// Pure: which layers stay and why. Kept: the newest of each image's base layers and of each
/// stack's layers, the `keep` newest of each, every layer `pinned` names (published defaults,
/// rollback targets, running VMs), and the parents of everything kept.
pub fn decide(
    records: &[LayerRecord],
    keep: usize,
    pinned: &BTreeMap<String, Vec<String>>,
) -> Vec<LocalDecision> {
    let mut groups: BTreeMap<String, Vec<&LayerRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(group(r)).or_default().push(r);
    }
    let mut decided: BTreeMap<String, (bool, String)> = BTreeMap::new();
    for (g, members) in &mut groups {
        members.sort_by(|a, b| (b.created_at, &b.hash).cmp(&(a.created_at, &a.hash)));
        for (rank, r) in members.iter().enumerate() {
            let d = if rank == 0 {
                (true, format!("newest of {g}"))
            } else if rank < keep {
                (true, format!("one of the {keep} newest of {g}"))
            } else if let Some(why) = pinned.get(&r.hash) {
                (true, why.join("; "))
            } else {
                (false, format!("older than the {keep} newest of {g}"))
            };
            decided.insert(r.hash.clone(), d);
        }
    }
    let parent: BTreeMap<&str, &str> = records
        .iter()
        .filter_map(|r| Some((r.hash.as_str(), parent_hash(r)?)))
        .collect();
    loop {
        let kept: Vec<String> = decided
            .iter()
            .filter(|(_, d)| d.0)
            .map(|(h, _)| h.clone())
            .collect();
        let mut changed = false;
        for h in kept {
            if let Some(d) = parent.get(h.as_str()).and_then(|p| decided.get_mut(*p)) {
                if !d.0 {
                    *d = (true, format!("parent of kept layer {}", &h[..12]));
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    records
        .iter()
        .map(|r| {
            let (kept, why) = decided[&r.hash].clone();
            LocalDecision {
                layer: r.name.clone(),
                layer_hash: r.hash.clone(),
                group: group(r),
                action: if kept { "keep" } else { "remove" }.into(),
                why,
                disk_bytes: 0,
            }
        })
        .collect()
}

/// Bytes a file takes on disk (its allocated blocks: qcow2 files are sparse).
fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.blocks() * 512)
        .unwrap_or(0)
}

/// `prune --target qemu`: decides, and unless `dry_run` removes each layer directory that goes
/// (children before parents), under the layer's bake lock so a bake of it is never cut short.
pub fn prune(store: &Store, keep: usize, dry_run: bool) -> Result<Vec<LocalDecision>> {
    let records = records(store);
    let published = crate::published::all(store)?;
    let mut pins = pinned(&published);
    let hashes: Vec<String> = records.iter().map(|r| r.hash.clone()).collect();
    for (h, why) in in_use_by_runs(store, &hashes) {
        pins.entry(h).or_default().push(why);
    }
    let mut decisions = decide(&records, keep, &pins);
    for d in &mut decisions {
        d.disk_bytes = disk_bytes(&store.layer_dir(&d.layer_hash).join("disk.qcow2"));
    }
    if dry_run {
        return Ok(decisions);
    }
    // newest first: a stack layer goes before the base it was built on
    for d in decisions.iter_mut().rev().filter(|d| d.action == "remove") {
        let dir = store.layer_dir(&d.layer_hash);
        let _lock = store.lock_layer(&d.layer_hash)?;
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove the layer", &dir, e))?;
        d.action = "removed".into();
    }
    Ok(decisions)
}

/// The hash each layer in the store would have if baked today: the base layer of its image
/// (planned through any of the image's stacks, no promotion) or the stack layer of its stack
/// with the roles it ran promoted. An error says why it cannot be known.
fn current_hash(
    project: &Project,
    identities: &BTreeMap<String, Option<String>>,
    r: &LayerRecord,
) -> std::result::Result<(String, String), String> {
    let identity = identities
        .get(&r.image)
        .ok_or_else(|| format!("image `{}` is no longer defined", r.image))?
        .clone()
        .ok_or("the base disk image is not built")?;
    let (stack, promote) = match &r.stack {
        Some(s) if project.stacks.contains_key(s) => (s.clone(), r.runs.clone()),
        Some(s) => return Err(format!("stack `{s}` is no longer defined")),
        None => project
            .stacks
            .values()
            .find(|s| s.def.image == r.image)
            .map(|s| (s.name.clone(), Vec::new()))
            .ok_or_else(|| format!("no stack uses image `{}` now", r.image))?,
    };
    let req = PlanRequest {
        stack,
        promote,
        target: crate::plan::Target::Qemu,
        source_identity: Some(identity),
    };
    let plan = crate::plan::plan(project, &req).map_err(|e| e.to_string())?;
    let layer = plan
        .layers
        .iter()
        .find(|l| l.index == r.index)
        .ok_or("the stack no longer promotes anything")?;
    Ok((layer.hash.clone(), layer.run_hash.clone()))
}

/// `images --target qemu`: the store's layers as lineage trees, newest roots first.
pub fn list(project: &Project, store: &Store) -> Result<Vec<LocalImage>> {
    let records = records(store);
    let published = crate::published::all(store)?;
    let identities: BTreeMap<String, Option<String>> = project
        .images
        .values()
        .map(|i| (i.name.clone(), super::peek_identity(i)))
        .collect();
    let mut marks = pins_by(&published, |stack, version, role| {
        format!("{stack} v{version} {role}")
    });
    let now = now_epoch();
    let mut nodes: BTreeMap<String, (Option<String>, LocalImage)> = BTreeMap::new();
    for r in &records {
        let (status, why) = match current_hash(project, &identities, r) {
            Ok((h, _)) if h == r.hash => (
                "current",
                r.refresh_of
                    .as_ref()
                    .map(|run| format!("a payload refresh of run layer {}", &run[..12])),
            ),
            // its roles' run is today's; the payload it carries is not
            Ok((h, run)) if run == r.run_hash && r.refresh_of.is_none() => (
                "run",
                Some(format!(
                    "its run is current; today's payload is its refresh {}",
                    &h[..12]
                )),
            ),
            Ok((h, _)) => (
                "stale",
                Some(format!("baking it today gives layer {}", &h[..12])),
            ),
            Err(e) => ("unknown", Some(e)),
        };
        let verified = store.verifications(&r.hash).first().map(|v| {
            format!(
                "{} ({})",
                if v.passed { "passed" } else { "failed" },
                v.stack
            )
        });
        let node = LocalImage {
            layer: r.name.clone(),
            layer_hash: r.hash.clone(),
            image: r.image.clone(),
            stack: r.stack.clone(),
            age_s: now.saturating_sub(r.created_at),
            disk_bytes: disk_bytes(&store.layer_dir(&r.hash).join("disk.qcow2")),
            status: status.into(),
            why,
            verified,
            published: marks.remove(&r.hash).unwrap_or_default(),
            children: Vec::new(),
        };
        nodes.insert(r.hash.clone(), (parent_hash(r).map(String::from), node));
    }
    // children (newest first) under their parents; stack layers are never parents of bases
    // deepest first (a refresh of a stack layer before that layer moves under its base)
    let parents: BTreeMap<String, Option<String>> = nodes
        .iter()
        .map(|(h, (p, _))| (h.clone(), p.clone()))
        .collect();
    let mut hashes: Vec<String> = records.iter().rev().map(|r| r.hash.clone()).collect();
    hashes.sort_by_key(|h| std::cmp::Reverse(crate::store::depth(&parents, h)));
    for h in hashes {
        let parent = nodes[&h].0.clone();
        if let Some(p) = parent.filter(|p| nodes.contains_key(p) && *p != h) {
            let (_, child) = nodes.remove(&h).unwrap();
            nodes.get_mut(&p).unwrap().1.children.push(child);
        }
    }
    let mut roots: Vec<LocalImage> = nodes.into_values().map(|(_, n)| n).collect();
    roots.sort_by_key(|n| n.age_s);
    Ok(roots)
}

/// The tree as text: one line per layer, children indented.
pub fn tree_text(roots: &[LocalImage]) -> String {
    fn line(out: &mut String, n: &LocalImage, depth: usize) {
        let mut marks = Vec::new();
        if let Some(v) = &n.verified {
            marks.push(format!("verified {v}"));
        }
        if !n.published.is_empty() {
            marks.push(format!("published {}", n.published.join(", ")));
        }
        out.push_str(&format!(
            "{}{:<22} {}  {:>5}  {:>8}  {}{}{}\n",
            "  ".repeat(depth),
            n.layer,
            &n.layer_hash[..12],
            age(n.age_s),
            size(n.disk_bytes),
            n.status,
            n.why
                .as_ref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default(),
            if marks.is_empty() {
                String::new()
            } else {
                format!("; {}", marks.join("; "))
            }
        ));
        for c in &n.children {
            line(out, c, depth + 1);
        }
    }
    let mut out = String::new();
    if roots.is_empty() {
        out.push_str("the local store has no layers: bake one with `parbake bake STACK`\n");
    }
    for n in roots {
        line(&mut out, n, 0);
    }
    out
}

fn age(s: u64) -> String {
    match s {
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// 1536 → `1.5 KiB`; the sizes of layer disks read best in MiB and GiB.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The set of layer hashes a group of decisions removes (tests and the summary).
pub fn removed(decisions: &[LocalDecision]) -> BTreeSet<String> {
    decisions
        .iter()
        .filter(|d| d.action != "keep")
        .map(|d| d.layer_hash.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(hash: char, stack: Option<&str>, parent: Option<char>, at: u64) -> LayerRecord {
        LayerRecord {
            format: 1,
            parbake_version: "0".into(),
            target: "qemu".into(),
            image: "debian12".into(),
            stack: stack.map(String::from),
            index: if stack.is_some() { 2 } else { 1 },
            name: "x".into(),
            hash: hash.to_string().repeat(64),
            parent: match parent {
                Some(p) => format!("layer:{}", p.to_string().repeat(64)),
                None => "source:qemu".into(),
            },
            runs: Vec::new(),
            baked: Vec::new(),
            kernel: "k".into(),
            initrd: "i".into(),
            accelerator: "tcg".into(),
            created_at: at,
            bake_duration_s: 1.0,
            roles: Vec::new(),
            inputs: Default::default(),
            run_hash: String::new(),
            payload_hash: String::new(),
            refresh_of: None,
        }
    }

    fn h(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn prune_keeps_the_newest_the_pinned_and_their_parents() {
        // bases a (old), b, c (newest); web layers d on a, e on b, f on c (newest)
        let records = vec![
            rec('a', None, None, 1),
            rec('b', None, None, 2),
            rec('c', None, None, 3),
            rec('d', Some("web"), Some('a'), 4),
            rec('e', Some("web"), Some('b'), 5),
            rec('f', Some("web"), Some('c'), 6),
        ];
        let none = BTreeMap::new();
        let gone = removed(&decide(&records, 1, &none));
        assert_eq!(gone, [h('a'), h('b'), h('d'), h('e')].into());
        // web's published default is d (on base a), its rollback target e (on base b)
        let pins: BTreeMap<String, Vec<String>> = [
            (
                h('d'),
                vec!["published default of web (version 2)".to_string()],
            ),
            (
                h('e'),
                vec!["rollback target of web (version 1)".to_string()],
            ),
        ]
        .into();
        let d = decide(&records, 1, &pins);
        assert!(removed(&d).is_empty(), "{d:?}");
        let why = |c: char| d.iter().find(|x| x.layer_hash == h(c)).unwrap().why.clone();
        assert_eq!(why('d'), "published default of web (version 2)");
        assert_eq!(why('a'), format!("parent of kept layer {}", &h('d')[..12]));
        assert_eq!(why('b'), format!("parent of kept layer {}", &h('e')[..12]));
        // --keep 2 keeps the two newest of each group
        let gone = removed(&decide(&records, 2, &none));
        assert_eq!(gone, [h('a'), h('d')].into());
    }

    #[test]
    fn prune_keeps_the_run_layer_a_kept_refresh_reads_through() {
        // base run layer a; its refresh b (an overlay on a); web c baked on a's run layer, and
        // c's refresh d. --keep 1 keeps the newest of each group, b and d, and their run layers
        let mut b = rec('b', None, Some('a'), 2);
        b.refresh_of = Some(h('a'));
        let mut d = rec('d', Some("web"), Some('c'), 4);
        d.refresh_of = Some(h('c'));
        let records = vec![
            rec('a', None, None, 1),
            b,
            rec('c', Some("web"), Some('a'), 3),
            d,
        ];
        let decided = decide(&records, 1, &BTreeMap::new());
        assert!(removed(&decided).is_empty(), "{decided:?}");
        let why = |c: char| {
            decided
                .iter()
                .find(|x| x.layer_hash == h(c))
                .unwrap()
                .why
                .clone()
        };
        assert_eq!(why('c'), format!("parent of kept layer {}", &h('d')[..12]));
        assert!(why('a').starts_with("parent of kept layer"), "{}", why('a'));
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(729 * 1024 * 1024), "729.0 MiB");
    }
}
