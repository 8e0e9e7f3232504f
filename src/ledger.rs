//! record: the timing ledger. Every bake and every launch appends one JSON line to
//! `<store>/ledger.jsonl` with its per-role durations, so `plan --budget` can work from medians
//! over history rather than from one run. The per-layer copies stay with the image too:
//! `record.json` (bake) and `launches.jsonl` (launch) in the layer's store directory, and, on
//! AWS, the `parbake:bake-seconds` tag on the AMI.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Bake,
    Launch,
    /// A payload refresh of a cached run layer: no role runs.
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleTime {
    pub role: String,
    pub seconds: f64,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub kind: Kind,
    pub target: String,
    pub image: String,
    pub stack: Option<String>,
    /// Layer name (`debian12`, `debian12-web`) and hash: the layer baked, or booted.
    pub layer: String,
    pub layer_hash: String,
    /// `tcg`, `kvm`, or `ec2 <region>`.
    pub accelerator: String,
    /// Whole bake of the layer, or boot-to-ready of the launch.
    pub total_s: f64,
    pub roles: Vec<RoleTime>,
    /// A launch with `--no-roles` (the boot floor without Ansible).
    #[serde(default)]
    pub no_roles: bool,
    pub ok: bool,
    /// A launch's breakdown from the runner (boot to runner, ansible's start, facts, roles,
    /// handlers), where the image's runner reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<crate::contract::status::Timing>,
}

impl Entry {
    pub fn roles_sum(&self) -> f64 {
        self.roles.iter().map(|r| r.seconds).sum()
    }
}

pub struct Ledger {
    pub path: PathBuf,
}

impl Ledger {
    pub fn in_store(store_root: &Path) -> Ledger {
        Ledger {
            path: store_root.join("ledger.jsonl"),
        }
    }

    /// Appends one line (one `write` on an O_APPEND file, so concurrent bakes do not interleave).
    pub fn append(&self, entry: &Entry) -> Result<()> {
        append_line(&self.path, entry)
    }

    /// Every entry; a line that does not parse (a crash mid-write, a newer format) is skipped.
    pub fn load(&self) -> Result<Vec<Entry>> {
        let store = self.path.parent().unwrap_or(Path::new("/"));
        let limit = crate::fsread::RECORD_LIMIT;
        let Some(bytes) = crate::fsread::read_optional(store, &self.path, limit)? else {
            return Ok(Vec::new());
        };
        Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

pub fn append_line(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    let mut line = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&line))
        .map_err(|e| Error::io("append to", path, e))
}

/// Medians over the ledger's history for one image on one target (and one accelerator: TCG
/// and KVM figures do not mix; the newest launch's accelerator wins).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub accelerator: Option<String>,
    /// Boot-to-ready minus the launch roles' own time: boot, cloud-init, Ansible start-up.
    pub floor: Vec<f64>,
    /// Boot-to-ready of `--no-roles` launches (no Ansible start-up in it).
    pub bare_floor: Vec<f64>,
    /// Role → successful durations at launch.
    pub launch: BTreeMap<String, Vec<f64>>,
    /// Role → successful durations at bake.
    pub bake: BTreeMap<String, Vec<f64>>,
    /// Stack-layer bake time beyond its roles (booting the parent, cleaning, compressing).
    pub layer_overhead: Vec<f64>,
    /// Whole durations of successful payload refreshes (no role runs in them).
    pub refresh: Vec<f64>,
    pub launches: usize,
    pub bakes: usize,
}

impl Stats {
    pub fn from_entries(entries: &[Entry], target: &str, image: &str) -> Stats {
        let mine: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.target == target && e.image == image)
            .collect();
        let accelerator = mine
            .iter()
            .filter(|e| e.kind == Kind::Launch)
            .max_by_key(|e| e.at)
            .or_else(|| mine.iter().max_by_key(|e| e.at))
            .map(|e| e.accelerator.clone());
        let mut s = Stats {
            accelerator: accelerator.clone(),
            ..Stats::default()
        };
        for e in mine
            .into_iter()
            .filter(|e| Some(&e.accelerator) == accelerator.as_ref())
        {
            let ok_roles = e.roles.iter().filter(|r| r.ok);
            match e.kind {
                Kind::Launch => {
                    for r in ok_roles {
                        s.launch.entry(r.role.clone()).or_default().push(r.seconds);
                    }
                    if !e.ok {
                        continue;
                    }
                    s.launches += 1;
                    if e.no_roles {
                        s.bare_floor.push(e.total_s);
                    } else if !e.roles.is_empty() {
                        s.floor.push((e.total_s - e.roles_sum()).max(0.0));
                    }
                }
                // no role runs in a refresh: it tells nothing about roles or layer overhead
                Kind::Refresh => {
                    if e.ok {
                        s.refresh.push(e.total_s);
                    }
                }
                Kind::Bake => {
                    for r in ok_roles {
                        s.bake.entry(r.role.clone()).or_default().push(r.seconds);
                    }
                    if e.ok {
                        s.bakes += 1;
                        if e.stack.is_some() {
                            s.layer_overhead.push((e.total_s - e.roles_sum()).max(0.0));
                        }
                    }
                }
            }
        }
        s
    }
}

pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_odd_even_empty() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn append_and_load_skip_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::in_store(dir.path());
        let e = Entry {
            at: 1,
            kind: Kind::Launch,
            target: "qemu".into(),
            image: "debian12".into(),
            stack: Some("web".into()),
            layer: "debian12".into(),
            layer_hash: "ab".into(),
            accelerator: "tcg".into(),
            total_s: 100.0,
            roles: vec![RoleTime {
                role: "nginx".into(),
                seconds: 40.0,
                ok: true,
            }],
            no_roles: false,
            ok: true,
            timing: None,
        };
        l.append(&e).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&l.path)
            .unwrap()
            .write_all(b"{\"at\": 2, \"kind\"")
            .unwrap();
        assert_eq!(l.load().unwrap(), vec![e.clone()]);
        let s = Stats::from_entries(&[e], "qemu", "debian12");
        assert_eq!(s.floor, vec![60.0]);
        assert_eq!(s.launch["nginx"], vec![40.0]);
    }
}
