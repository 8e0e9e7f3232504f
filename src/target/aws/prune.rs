//! `parbake prune --keep N`: deregister old parbake AMIs, then delete their snapshots. Never
//! removed: the newest available AMI of each image (base layers) and of each stack (stack
//! layers), the N newest of each, an AMI that is the parent of a kept AMI, and an AMI used by
//! an instance, referenced by any launch template version (what `publish` writes, the
//! rollback target included), or named by a stack's SSM parameter, and the AMI each stack of
//! the project launches today (its current top layer's), whatever its age. `--dry-run` lists exactly
//! what would go and why each kept AMI is kept.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ami::{newest, Ami};
use super::ec2::{Ec2, Endpoint};
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
    pub why: String,
    pub snapshots: Vec<String>,
}

/// Group of an AMI: `image debian12` for base layers, `stack debian12/web` for stack layers.
fn group(a: &Ami) -> String {
    let image = a.tags.get("parbake:image").cloned().unwrap_or_default();
    match a.tags.get("parbake:stack") {
        Some(s) => format!("stack {image}/{s}"),
        None => format!("image {image}"),
    }
}

/// Pure: decides, for the AMIs of one region, which stay and why.
pub fn decide(
    amis: &[Ami],
    keep: usize,
    in_use: &BTreeMap<String, String>,
) -> BTreeMap<String, (bool, String)> {
    let mut decisions: BTreeMap<String, (bool, String)> = BTreeMap::new();
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
            let d = if Some(&a.id) == newest_id.as_ref() {
                (true, format!("newest available AMI of {g}"))
            } else if rank < keep {
                (true, format!("one of the {keep} newest of {g}"))
            } else if let Some(why) = in_use.get(&a.id) {
                (true, why.clone())
            } else {
                (false, format!("older than the {keep} newest of {g}"))
            };
            decisions.insert(a.id.clone(), d);
        }
    }
    // parents of kept AMIs stay, transitively
    let parent: BTreeMap<&str, &str> = amis
        .iter()
        .filter_map(|a| Some((a.id.as_str(), a.tags.get("parbake:parent-ami")?.as_str())))
        .collect();
    loop {
        let mut changed = false;
        let kept: Vec<String> = decisions
            .iter()
            .filter(|(_, d)| d.0)
            .map(|(id, _)| id.clone())
            .collect();
        for id in kept {
            if let Some(p) = parent.get(id.as_str()) {
                if let Some(d) = decisions.get_mut(*p) {
                    if !d.0 {
                        *d = (true, format!("parent of kept AMI {id}"));
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    decisions
}

/// Prunes each region in turn; the decisions for every parbake AMI, in region order.
pub fn prune(
    project: &crate::config::Project,
    regions: &[String],
    keep: usize,
    dry_run: bool,
) -> Result<Vec<Decision>> {
    let rt = runtime(Threads::Current)?;
    let mut out = Vec::new();
    for region in regions {
        let params = super::publish::parameters_in(project, region);
        out.extend(rt.block_on(prune_region(project, region, &params, keep, dry_run))?);
    }
    Ok(out)
}

/// One region: its available parbake AMIs, what uses them, the decisions, and (unless a dry
/// run) the removals. `params`: the SSM parameters the project's stacks publish to there.
async fn prune_region(
    project: &crate::config::Project,
    region: &str,
    params: &[String],
    keep: usize,
    dry_run: bool,
) -> Result<Vec<Decision>> {
    let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
    let amis: Vec<Ami> = ec2
        .parbake_amis()
        .await?
        .into_iter()
        .filter(|a| a.state == "available")
        .collect();
    let mut used = in_use(&ec2, &amis).await?;
    used.extend(current_tops(project, &ec2, region, &amis).await?);
    if !params.is_empty() {
        let ssm = super::ssm::Ssm::connect(region, &Endpoint::from_env()).await;
        for name in params {
            if let Some(ami) = ssm.get(name).await? {
                used.insert(ami, format!("named by SSM parameter {name}"));
            }
        }
    }
    let decisions = decide(&amis, keep, &used);
    let mut out = Vec::new();
    for a in &amis {
        let (kept, why) = decisions[&a.id].clone();
        let mut d = Decision {
            region: region.to_string(),
            ami: a.id.clone(),
            name: a.name.clone(),
            group: group(a),
            action: if kept { "keep".into() } else { "remove".into() },
            why,
            snapshots: ec2.snapshots_of(&a.id).await?,
        };
        if !kept && !dry_run {
            remove(&ec2, &d).await?;
            d.action = "removed".into();
        }
        out.push(d);
    }
    Ok(out)
}

/// AMI → why it is in use: an instance launched from it, or a launch template version that
/// names it (the last found wins).
async fn in_use(ec2: &Ec2, amis: &[Ami]) -> Result<BTreeMap<String, String>> {
    let ids: BTreeSet<String> = amis.iter().map(|a| a.id.clone()).collect();
    let mut in_use = BTreeMap::new();
    for u in ec2.instances_using(&ids).await? {
        let why = format!("used by instance {} ({})", u.instance_id, u.state);
        in_use.insert(u.ami, why);
    }
    for r in ec2.launch_template_refs(&ids).await? {
        let why = format!(
            "referenced by launch template {} version {}",
            r.template, r.version
        );
        in_use.insert(r.ami, why);
    }
    Ok(in_use)
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
) -> Result<BTreeMap<String, String>> {
    let sources = super::images::sources_in(project, ec2, region).await?;
    let mut out = BTreeMap::new();
    for stack in project.stacks.values() {
        let Some(source) = sources.get(&stack.def.image) else {
            continue;
        };
        let req = crate::plan::PlanRequest {
            stack: stack.name.clone(),
            promote: Vec::new(),
            target: crate::plan::Target::Aws,
            source_identity: None,
        };
        let plan = crate::target::plan_for(project, &req, |_| Ok(source.clone()))?;
        let top = plan.top();
        let tagged = |key: &str, value: &str| -> Vec<Ami> {
            amis.iter()
                .filter(|a| a.tags.get(key).map(String::as_str) == Some(value))
                .cloned()
                .collect()
        };
        let layer = format!("layer {} {} ({})", top.index, top.name, top.short_hash());
        if let Some(a) = newest(&tagged("parbake:layer-hash", &top.hash)) {
            out.insert(
                a.id.clone(),
                format!("current AMI of stack {} ({layer})", stack.name),
            );
        } else if let Some(a) = newest(&tagged("parbake:run-hash", &top.run_hash)) {
            out.insert(
                a.id.clone(),
                format!(
                    "run AMI of stack {}'s current {layer}, which a bake refreshes",
                    stack.name
                ),
            );
        }
    }
    Ok(out)
}

/// Deregisters the AMI, then deletes its snapshots: EC2 refuses to delete a snapshot in use.
async fn remove(ec2: &Ec2, d: &Decision) -> Result<()> {
    ec2.deregister_image(&d.ami).await?;
    for s in &d.snapshots {
        ec2.delete_snapshot(s).await?;
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
        }
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
        let d = decide(&amis, 1, &BTreeMap::new());
        let kept = |id: &str| d[id].0;
        assert!(kept("ami-web-refresh") && kept("ami-base-refresh"));
        assert_eq!(d["ami-web-run"].1, "parent of kept AMI ami-web-refresh");
        assert!(kept("ami-base-run"), "{:?}", d["ami-base-run"]);
        assert!(!kept("ami-base-old"), "{:?}", d["ami-base-old"]);
    }
}
