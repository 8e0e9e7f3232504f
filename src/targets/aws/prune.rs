//! `parbake prune --keep N`: deregister old parbake AMIs with their snapshots
//! (`DeleteAssociatedSnapshots`, then any EC2 did not report on). Never
//! removed: the newest available AMI of each image (base layers) and of each stack (stack
//! layers), the N newest of each, an AMI that is the parent of a kept AMI, and an AMI used by
//! an instance, referenced by any launch template version (what `publish` writes, the
//! rollback target included), or named by a stack's SSM parameter, and the AMI each stack of
//! the project launches today (its current top layer's), whatever its age. Only this project's
//! AMIs (see [`super::scope`]) are counted and removed, never one with deregistration protection
//! on, nor with `--unused-for` one launched within it; another project's, and AMIs with no
//! project tag, are listed as kept and why. `--dry-run` lists exactly what would go and every
//! reason each kept AMI is kept.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ami::{newest, Ami};
use super::ec2::{Ec2, Endpoint};
use super::scope::{Owner, Scope};
use crate::error::Result;
use crate::runtime::{runtime, Threads};

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub region: String,
    pub ami: String,
    pub name: String,
    pub group: String,
    /// `keep` or `remove` (`removed` once done).
    pub action: String,
    /// Every reason's text, most telling first, joined by `; `.
    pub why: String,
    pub reasons: Vec<Reason>,
    pub snapshots: Vec<String>,
}

/// One reason an AMI stays or goes: a stable `kind` for machines (see [`kind`]) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub kind: &'static str,
    pub text: String,
}

/// The kinds of [`Reason`], in the order a decision lists them.
pub mod kind {
    /// The AMI a stack launches today (its current top layer's).
    pub const CURRENT: &str = "current";
    /// The run AMI a refresh of a stack's current top layer builds on.
    pub const CURRENT_RUN: &str = "current-run";
    /// The default version of a launch template names it.
    pub const TEMPLATE_DEFAULT: &str = "template-default";
    /// The version `rollback` of a stack would make the default names it.
    pub const ROLLBACK_TARGET: &str = "rollback-target";
    /// Another version of a launch template names it.
    pub const TEMPLATE_VERSION: &str = "template-version";
    pub const SSM_PARAMETER: &str = "ssm-parameter";
    pub const INSTANCE: &str = "instance";
    /// EC2's deregistration protection is on (publish and rollback put it on what a stack's
    /// launch template holds): DeregisterImage would refuse it, so prune never tries.
    pub const PROTECTED: &str = "protected";
    /// `--unused-for`: an instance was launched from it within that window.
    pub const LAUNCHED_RECENTLY: &str = "launched-recently";
    pub const NEWEST: &str = "newest";
    pub const WITHIN_KEEP: &str = "within-keep";
    pub const PARENT: &str = "parent";
    /// Tagged with another project's id: never this project's to count or remove.
    pub const OTHER_PROJECT: &str = "other-project";
    /// No project tag: baked before project ids (or by a project without one).
    pub const NO_PROJECT: &str = "no-project";
    /// The one reason to remove: beyond `--keep` and nothing above holds it.
    pub const BEYOND_KEEP: &str = "beyond-keep";
    /// A `distribute:` copy whose source AMI stays (or was not pruned in this run).
    pub const SOURCE_KEPT: &str = "source-kept";
    /// A `distribute:` copy whose source AMI goes: a copy follows its source.
    pub const SOURCE_REMOVED: &str = "source-removed";
    pub(super) const ORDER: [&str; 17] = [
        CURRENT,
        CURRENT_RUN,
        TEMPLATE_DEFAULT,
        ROLLBACK_TARGET,
        TEMPLATE_VERSION,
        SSM_PARAMETER,
        INSTANCE,
        PROTECTED,
        LAUNCHED_RECENTLY,
        NEWEST,
        WITHIN_KEEP,
        PARENT,
        OTHER_PROJECT,
        NO_PROJECT,
        SOURCE_KEPT,
        BEYOND_KEEP,
        SOURCE_REMOVED,
    ];
}

/// AMI → the reasons found for it outside its group (use, publication, current stacks).
pub type Uses = BTreeMap<String, Vec<Reason>>;

fn add(uses: &mut Uses, ami: &str, kind: &'static str, text: String) {
    let r = uses.entry(ami.to_string()).or_default();
    let reason = Reason { kind, text };
    if !r.contains(&reason) {
        r.push(reason);
    }
}

/// Group of an AMI: `image debian12` for base layers, `stack debian12/web` for stack layers;
/// another architecture than x86_64 is its own group (`image debian12 arm64`), so `--keep`
/// counts each architecture's AMIs apart.
fn group(a: &Ami) -> String {
    let image = a.tags.get("parbake:image").cloned().unwrap_or_default();
    let arch = match a.arch() {
        arch if arch == "x86_64" => String::new(),
        arch => format!(" {arch}"),
    };
    match a.tags.get("parbake:stack") {
        Some(s) => format!("stack {image}/{s}{arch}"),
        None => format!("image {image}{arch}"),
    }
}

/// Pure: decides, for one project's AMIs of one region, which stay and why (every reason,
/// in [`kind::ORDER`]).
pub fn decide(amis: &[Ami], keep: usize, uses: &Uses) -> BTreeMap<String, (bool, Vec<Reason>)> {
    let mut reasons: Uses = uses
        .iter()
        .filter(|(id, _)| amis.iter().any(|a| &a.id == *id))
        .map(|(id, r)| (id.clone(), r.clone()))
        .collect();
    keep_newest(amis, keep, &mut reasons);
    keep_parents(amis, &mut reasons);
    amis.iter()
        .map(|a| (a.id.clone(), verdict(a, keep, reasons.remove(&a.id))))
        .collect()
}

/// Per group (an image, or a stack), the newest available AMI and the `keep` newest stay.
fn keep_newest(amis: &[Ami], keep: usize, reasons: &mut Uses) {
    let mut groups: BTreeMap<String, Vec<&Ami>> = BTreeMap::new();
    for a in amis {
        groups.entry(group(a)).or_default().push(a);
    }
    for (g, members) in &groups {
        let owned: Vec<Ami> = members.iter().map(|a| (*a).clone()).collect();
        let newest_id = newest(&owned).map(|a| a.id.clone());
        let mut ordered = owned.clone();
        ordered.sort_by(|a, b| {
            (b.creation_date.as_str(), b.name.as_str(), b.id.as_str()).cmp(&(
                a.creation_date.as_str(),
                a.name.as_str(),
                a.id.as_str(),
            ))
        });
        for (rank, a) in ordered.iter().enumerate() {
            if Some(&a.id) == newest_id.as_ref() {
                let text = format!("newest available AMI of {g}");
                add(reasons, &a.id, kind::NEWEST, text);
            } else if rank < keep {
                let text = format!("one of the {keep} newest of {g}");
                add(reasons, &a.id, kind::WITHIN_KEEP, text);
            }
        }
    }
}

/// The parents of kept AMIs stay, transitively, each naming the kept children it is for.
fn keep_parents(amis: &[Ami], reasons: &mut Uses) {
    let parent: BTreeMap<&str, &str> = amis
        .iter()
        .filter_map(|a| Some((a.id.as_str(), a.tags.get("parbake:parent-ami")?.as_str())))
        .collect();
    let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut todo: Vec<String> = reasons.keys().cloned().collect();
    while let Some(id) = todo.pop() {
        let Some(p) = parent
            .get(id.as_str())
            .filter(|p| amis.iter().any(|a| a.id == **p))
        else {
            continue;
        };
        let kids = children.entry(p.to_string()).or_default();
        if !kids.contains(&id) {
            kids.push(id.clone());
        }
        if !reasons.contains_key(*p) && !todo.iter().any(|t| t == p) {
            reasons.insert(p.to_string(), Vec::new());
            todo.push(p.to_string());
        }
    }
    for (p, mut kids) in children {
        kids.sort();
        let text = match kids.as_slice() {
            [one] => format!("parent of kept AMI {one}"),
            many => format!("parent of kept AMIs {}", many.join(", ")),
        };
        add(reasons, &p, kind::PARENT, text);
    }
}

/// An AMI with no reason to stay goes; one with reasons stays, its reasons in order.
fn verdict(a: &Ami, keep: usize, reasons: Option<Vec<Reason>>) -> (bool, Vec<Reason>) {
    let mut r = reasons.unwrap_or_default();
    if r.is_empty() {
        let text = format!("older than the {keep} newest of {}", group(a));
        return (
            false,
            vec![Reason {
                kind: kind::BEYOND_KEEP,
                text,
            }],
        );
    }
    r.sort_by_key(|x| kind::ORDER.iter().position(|k| *k == x.kind));
    (true, r)
}

/// Why an AMI of no concern to this project stays, or None when it is this project's.
fn not_ours(scope: &Scope, ami: &Ami) -> Option<Reason> {
    match scope.owner(ami) {
        Owner::Ours => None,
        Owner::Other(id) => Some(Reason {
            kind: kind::OTHER_PROJECT,
            text: format!("another project's (parbake:project = {id}): neither counted nor removed"),
        }),
        Owner::Untagged => Some(Reason {
            kind: kind::NO_PROJECT,
            text: "no parbake:project tag (baked before project ids, or by a project without one): never removed by prune; tag it with this project's id to let prune manage it, or deregister it by hand".into(),
        }),
    }
}

/// Prunes each region in turn; the decisions for every parbake AMI, in region order. Only the
/// project's own AMIs are counted and removed, so it needs a project id.
pub fn prune(
    project: &crate::config::Project,
    regions: &[String],
    keep: Keep,
    dry_run: bool,
) -> Result<Vec<Decision>> {
    let scope = Scope::of(project);
    scope.id("prune")?;
    let rt = runtime(Threads::Current)?;
    let mut out = Vec::new();
    for region in regions {
        out.extend(rt.block_on(prune_region(project, &scope, region, keep, dry_run))?);
    }
    let mut gone: BTreeSet<String> = out
        .iter()
        .filter(|d| d.action != "keep")
        .map(|d| d.ami.clone())
        .collect();
    let decided: BTreeSet<String> = out.iter().map(|d| d.ami.clone()).collect();
    for region in regions {
        gone.extend(rt.block_on(sources_gone(region, &decided))?);
    }
    for region in regions {
        let copies = rt.block_on(prune_copies(project, &scope, region, &gone, dry_run))?;
        out.extend(copies);
    }
    Ok(out)
}

/// A region's `distribute:` copies of this project: each follows its source (removed with it,
/// kept while it stays), unless something in the region uses it or it is protected.
async fn prune_copies(
    project: &crate::config::Project,
    scope: &Scope,
    region: &str,
    gone: &BTreeSet<String>,
    dry_run: bool,
) -> Result<Vec<Decision>> {
    let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
    let copies: Vec<Ami> = ec2
        .parbake_amis()
        .await?
        .into_iter()
        .filter(|a| a.state == "available" && scope.holds(a) && is_copy(a))
        .collect();
    let mut uses = in_use(project, &ec2, region, &copies).await?;
    add_protected(&mut uses, &copies);
    let mut out = Vec::new();
    for a in &copies {
        let (kept, reasons) = copy_verdict(a, gone, uses.remove(&a.id));
        out.push(carry_out(&ec2, region, a, (kept, reasons), dry_run).await?);
    }
    Ok(out)
}

/// The sources of the copies in `region` that this run did not decide on (their region was
/// not pruned) and that no longer exist: their copies go as if their source went now.
async fn sources_gone(region: &str, decided: &BTreeSet<String>) -> Result<Vec<String>> {
    use super::distribute::{COPY_OF, COPY_SOURCE_REGION};
    let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
    let mut out = Vec::new();
    for copy in ec2.parbake_amis().await?.into_iter().filter(is_copy) {
        let (Some(source), Some(from)) =
            (copy.tags.get(COPY_OF), copy.tags.get(COPY_SOURCE_REGION))
        else {
            continue;
        };
        if decided.contains(source) {
            continue;
        }
        let home = Ec2::connect(from, &Endpoint::from_env()).await;
        let found = home.described_image(source).await?;
        if found.is_none_or(|i| i.state().is_some_and(|s| s.as_str() == "deregistered")) {
            out.push(source.clone());
        }
    }
    Ok(out)
}

/// A `distribute:` copy (tagged with the AMI it was copied from).
fn is_copy(a: &Ami) -> bool {
    a.tags.contains_key(super::distribute::COPY_OF)
}

/// Pure: a copy stays while its source stays or while it is used here; it goes with its source.
fn copy_verdict(
    a: &Ami,
    gone: &BTreeSet<String>,
    used: Option<Vec<Reason>>,
) -> (bool, Vec<Reason>) {
    let source = a
        .tags
        .get(super::distribute::COPY_OF)
        .cloned()
        .unwrap_or_default();
    let from = a
        .tags
        .get(super::distribute::COPY_SOURCE_REGION)
        .cloned()
        .unwrap_or_default();
    if let Some(r) = used.filter(|r| !r.is_empty()) {
        return (true, r);
    }
    if gone.contains(&source) {
        let text =
            format!("a copy of {source} ({from}), which prune removes: a copy follows its source");
        return (
            false,
            vec![Reason {
                kind: kind::SOURCE_REMOVED,
                text,
            }],
        );
    }
    let text = format!("a copy of {source} ({from}), which stays");
    (
        true,
        vec![Reason {
            kind: kind::SOURCE_KEPT,
            text,
        }],
    )
}

/// One AMI's decision as reported, carried out: removed (with its snapshots) unless kept or
/// a dry run.
async fn carry_out(
    ec2: &Ec2,
    region: &str,
    a: &Ami,
    (kept, reasons): (bool, Vec<Reason>),
    dry_run: bool,
) -> Result<Decision> {
    let mut d = decision(region, a, kept, reasons, ec2.snapshots_of(&a.id).await?);
    if !kept && !dry_run {
        remove(ec2, &d).await?;
        d.action = "removed".into();
    }
    Ok(d)
}

/// One decision as reported.
fn decision(
    region: &str,
    a: &Ami,
    kept: bool,
    reasons: Vec<Reason>,
    snapshots: Vec<String>,
) -> Decision {
    Decision {
        region: region.to_string(),
        ami: a.id.clone(),
        name: a.name.clone(),
        group: group(a),
        action: if kept { "keep".into() } else { "remove".into() },
        why: reasons
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        reasons,
        snapshots,
    }
}

/// What prune keeps beyond what is in use: the `--keep` newest of each group, and with
/// `--unused-for` (seconds) any AMI an instance was launched from within that window.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub newest: usize,
    pub unused_for: Option<u64>,
}

/// Protected AMIs (EC2's deregistration protection) stay: DeregisterImage would refuse them.
fn add_protected(uses: &mut Uses, amis: &[Ami]) {
    for a in amis.iter().filter(|a| a.lifecycle.protected()) {
        let state = a.lifecycle.protection.as_deref().unwrap_or_default();
        let text = format!("deregistration protection is on ({state}): publish and rollback move it with a stack's launch template; prune never deregisters a protected AMI");
        add(uses, &a.id, kind::PROTECTED, text);
    }
}

/// With `--unused-for`: of the AMIs `decide` would remove, those launched within the window
/// (DescribeImageAttribute lastLaunchedTime, which EC2 updates within 24 hours) stay.
async fn add_launched_recently(ec2: &Ec2, amis: &[Ami], keep: Keep, uses: &mut Uses) -> Result<()> {
    let Some(window) = keep.unused_for else {
        return Ok(());
    };
    let since = crate::store::now_epoch().saturating_sub(window);
    for (id, (kept, _)) in decide(amis, keep.newest, uses) {
        if kept {
            continue;
        }
        let Some(at) = ec2.last_launched(&id).await? else {
            continue;
        };
        if super::ami::epoch_of(&at).is_some_and(|t| t >= since) {
            let text = format!("launched at {at}, within --unused-for");
            add(uses, &id, kind::LAUNCHED_RECENTLY, text);
        }
    }
    Ok(())
}

/// One region: its available parbake AMIs, what uses them, the decisions, and (unless a dry
/// run) the removals of this project's AMIs that nothing holds.
async fn prune_region(
    project: &crate::config::Project,
    scope: &Scope,
    region: &str,
    keep: Keep,
    dry_run: bool,
) -> Result<Vec<Decision>> {
    let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
    let amis: Vec<Ami> = ec2
        .parbake_amis()
        .await?
        .into_iter()
        .filter(|a| a.state == "available" && !is_copy(a))
        .collect();
    let ours: Vec<Ami> = amis.iter().filter(|a| scope.holds(a)).cloned().collect();
    let mut uses = in_use(project, &ec2, region, &ours).await?;
    for (ami, r) in current_tops(project, &ec2, region, &ours).await? {
        add(&mut uses, &ami, r.kind, r.text);
    }
    let params = super::publish::parameters_in(project, region);
    if !params.is_empty() {
        let ssm = super::ssm::Ssm::connect(region, &Endpoint::from_env()).await;
        for name in params {
            if let Some(ami) = ssm.get(&name).await? {
                add(
                    &mut uses,
                    &ami,
                    kind::SSM_PARAMETER,
                    format!("named by SSM parameter {name}"),
                );
            }
        }
    }
    add_protected(&mut uses, &ours);
    add_launched_recently(&ec2, &ours, keep, &mut uses).await?;
    let decisions = decide(&ours, keep.newest, &uses);
    let mut out = Vec::new();
    for a in &amis {
        let (kept, reasons) = match not_ours(scope, a) {
            Some(r) => (true, vec![r]),
            None => decisions[&a.id].clone(),
        };
        out.push(carry_out(&ec2, region, a, (kept, reasons), dry_run).await?);
    }
    Ok(out)
}

/// The reasons of use: an instance launched from the AMI, a launch template version that
/// names it (the default, the version a stack's `rollback` would make the default, or another).
async fn in_use(
    project: &crate::config::Project,
    ec2: &Ec2,
    region: &str,
    amis: &[Ami],
) -> Result<Uses> {
    let ids: BTreeSet<String> = amis.iter().map(|a| a.id.clone()).collect();
    let mut uses = Uses::new();
    for u in ec2.instances_using(&ids).await? {
        let why = format!("used by instance {} ({})", u.instance_id, u.state);
        add(&mut uses, &u.ami, kind::INSTANCE, why);
    }
    let rollback = rollback_targets(project, ec2, region).await?;
    for r in ec2.launch_template_refs(&ids).await? {
        let (kind, why) = if r.default {
            (
                kind::TEMPLATE_DEFAULT,
                format!(
                    "default version {} of launch template {}",
                    r.version, r.template
                ),
            )
        } else if let Some(stack) = rollback.get(&(r.template.clone(), r.version)) {
            (
                kind::ROLLBACK_TARGET,
                format!(
                    "rollback target of stack {stack}: launch template {} version {}",
                    r.template, r.version
                ),
            )
        } else {
            (
                kind::TEMPLATE_VERSION,
                format!(
                    "referenced by launch template {} version {}",
                    r.template, r.version
                ),
            )
        };
        add(&mut uses, &r.ami, kind, why);
    }
    Ok(uses)
}

/// (launch template, version) → the stack whose `rollback` would make it the default, for
/// the project's stacks that publish to a launch template in `region`.
async fn rollback_targets(
    project: &crate::config::Project,
    ec2: &Ec2,
    region: &str,
) -> Result<BTreeMap<(String, i64), String>> {
    let mut out = BTreeMap::new();
    for stack in project.stacks.values() {
        let in_region = project.images[&stack.def.image]
            .def
            .sources
            .aws
            .as_ref()
            .is_some_and(|a| a.region == region);
        let Some(publish) = stack.def.publish.as_ref().filter(|_| in_region) else {
            continue;
        };
        let Some(t) = ec2.launch_template(&publish.launch_template).await? else {
            continue;
        };
        if let Some(v) = super::publish::rollback_target(&t, &stack.name) {
            out.insert((t.name.clone(), v.number), stack.name.clone());
        }
    }
    Ok(out)
}

/// AMI → why: the AMI each stack launches today, resolved as `bake` and `userdata` resolve it
/// (the stack file's promotions, the source AMI resolved now, the newest AMI of the top
/// layer's hash), and the run AMI a refresh of that layer would build from. Whatever its age:
/// an older AMI is current again when a change is reverted.
async fn current_tops(
    project: &crate::config::Project,
    ec2: &Ec2,
    region: &str,
    amis: &[Ami],
) -> Result<Vec<(String, Reason)>> {
    let today = super::images::today_in(project, ec2, region).await?;
    let mut out = Vec::new();
    for ((image, arch), source) in &today.sources {
        let view = &today.views[arch];
        for stack in view.stacks.values().filter(|s| &s.def.image == image) {
            out.extend(current_top(view, stack, source, amis)?);
        }
    }
    Ok(out)
}

/// The AMI a stack of one architecture's view launches today, and why it is kept.
fn current_top(
    project: &crate::config::Project,
    stack: &crate::config::Stack,
    source: &str,
    amis: &[Ami],
) -> Result<Option<(String, Reason)>> {
    let aws = project.images[&stack.def.image].def.sources.aws.as_ref();
    let name = match aws.and_then(|a| a.arch_suffix()) {
        Some(arch) => format!("{} ({arch})", stack.name),
        None => stack.name.clone(),
    };
    let req = crate::plan::PlanRequest {
        stack: stack.name.clone(),
        promote: Vec::new(),
        target: crate::plan::Target::Aws,
        source_identity: None,
    };
    let plan = crate::targets::plan_for(project, &req, |_| Ok(source.to_string()))?;
    let top = plan.top();
    let tagged = |key: &str, value: &str| -> Vec<Ami> {
        amis.iter()
            .filter(|a| a.tags.get(key).map(String::as_str) == Some(value))
            .cloned()
            .collect()
    };
    let layer = format!("layer {} {} ({})", top.index, top.name, top.short_hash());
    if let Some(a) = newest(&tagged("parbake:layer-hash", &top.hash)) {
        let text = format!("current AMI of stack {name} ({layer})");
        return Ok(Some((
            a.id.clone(),
            Reason {
                kind: kind::CURRENT,
                text,
            },
        )));
    }
    if let Some(a) = newest(&tagged("parbake:run-hash", &top.run_hash)) {
        let text = format!("run AMI of stack {name}'s current {layer}, which a bake refreshes");
        return Ok(Some((
            a.id.clone(),
            Reason {
                kind: kind::CURRENT_RUN,
                text,
            },
        )));
    }
    Ok(None)
}

/// Deregisters the AMI with `DeleteAssociatedSnapshots`, then deletes itself the snapshots
/// EC2 did not report on (an endpoint without the parameter, such as moto 5.2.5). A snapshot
/// EC2 reports it did not delete (another AMI uses it, a permission) is an error that names it.
async fn remove(ec2: &Ec2, d: &Decision) -> Result<()> {
    let reported = ec2.deregister_with_snapshots(&d.ami).await?;
    for s in &d.snapshots {
        match reported.get(s).map(String::as_str) {
            None => ec2.delete_snapshot(s).await?,
            Some("success") => {}
            Some(code) => {
                return Err(crate::error::Error::user(format!(
                    "EC2 deregistered AMI {} in {} but did not delete its snapshot {s}: {code}",
                    d.ami, d.region
                ))
                .with_hint(format!(
                "once no other AMI uses it: aws ec2 delete-snapshot --region {} --snapshot-id {s}",
                d.region
            )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ami(id: &str, created: &str, tags: &[(&str, &str)]) -> Ami {
        Ami {
            id: id.into(),
            name: id.into(),
            creation_date: created.into(),
            architecture: "x86_64".into(),
            owner: "self".into(),
            state: "available".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            size_gib: 8,
            lifecycle: Default::default(),
        }
    }

    /// `--keep 1` keeps the newest AMI of each architecture: an arm64 chain baked before the
    /// newest x86_64 one is not the older of one group.
    #[test]
    fn keep_counts_each_architecture_apart() {
        let x86 = [("parbake:image", "debian12"), ("parbake:arch", "x86_64")];
        let arm = [("parbake:image", "debian12"), ("parbake:arch", "arm64")];
        let amis = [
            ami("ami-arm-old", "2026-01-01T00:00:00.000Z", &arm),
            ami("ami-arm-new", "2026-01-02T00:00:00.000Z", &arm),
            ami("ami-x86-old", "2026-01-03T00:00:00.000Z", &x86),
            ami("ami-x86-new", "2026-01-04T00:00:00.000Z", &x86),
        ];
        let d = decide(&amis, 1, &Uses::new());
        let kept: Vec<&str> = ["ami-arm-old", "ami-arm-new", "ami-x86-old", "ami-x86-new"]
            .into_iter()
            .filter(|id| d[*id].0)
            .collect();
        assert_eq!(kept, ["ami-arm-new", "ami-x86-new"]);
    }

    /// A refresh is the newest AMI of its group; the run AMI it refreshes is older in the same
    /// group, and stays as its parent, with the run AMI's own parent (the base's run AMI).
    #[test]
    fn a_kept_refresh_keeps_its_run_ami_and_the_run_amis_parent() {
        let base = [("parbake:image", "debian12")];
        let web = [("parbake:image", "debian12"), ("parbake:stack", "web")];
        let amis = [
            ami("ami-base-old", "2026-01-01T00:00:00.000Z", &base),
            ami("ami-base-run", "2026-01-02T00:00:00.000Z", &base),
            ami(
                "ami-base-refresh",
                "2026-01-04T00:00:00.000Z",
                &[
                    base[0],
                    ("parbake:parent-ami", "ami-base-run"),
                    ("parbake:refresh-of", "h-base"),
                ],
            ),
            ami(
                "ami-web-run",
                "2026-01-03T00:00:00.000Z",
                &[web[0], web[1], ("parbake:parent-ami", "ami-base-run")],
            ),
            ami(
                "ami-web-refresh",
                "2026-01-04T00:00:00.000Z",
                &[
                    web[0],
                    web[1],
                    ("parbake:parent-ami", "ami-web-run"),
                    ("parbake:refresh-of", "h-web"),
                ],
            ),
        ];
        let d = decide(&amis, 1, &Uses::new());
        let kept = |id: &str| d[id].0;
        assert!(kept("ami-web-refresh") && kept("ami-base-refresh"));
        assert_eq!(
            d["ami-web-run"].1[0].text,
            "parent of kept AMI ami-web-refresh"
        );
        assert!(kept("ami-base-run"), "{:?}", d["ami-base-run"]);
        assert!(!kept("ami-base-old"), "{:?}", d["ami-base-old"]);
    }
}
