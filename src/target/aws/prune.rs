//! `parbake prune --keep N`: deregister old parbake AMIs, then delete their snapshots. Never
//! removed: the newest available AMI of each image (base layers) and of each stack (stack
//! layers), the N newest of each, an AMI that is the parent of a kept AMI, and an AMI used by
//! an instance or referenced by any launch template version. `--dry-run` lists exactly what
//! would go and why each kept AMI is kept.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ami::{newest, Ami};
use super::ec2::{filter, Ec2, Endpoint};
use crate::error::{Error, Result};

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

fn sdk(what: &str, region: &str, e: impl std::fmt::Display) -> Error {
    Error::user(format!("EC2 {what} in {region} failed: {e}"))
        .with_hint("check your credentials and permissions (README: IAM permissions)")
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

pub fn prune(regions: &[String], keep: usize, dry_run: bool) -> Result<Vec<Decision>> {
    let rt = super::runtime()?;
    let mut out = Vec::new();
    for region in regions {
        rt.block_on(async {
            let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
            let amis: Vec<Ami> = ec2
                .describe_images(
                    &["self".to_string()],
                    vec![filter("tag-key", "parbake:layer-hash")],
                )
                .await?
                .into_iter()
                .filter(|a| a.state == "available")
                .collect();
            let ids: BTreeSet<String> = amis.iter().map(|a| a.id.clone()).collect();
            let mut in_use = BTreeMap::new();
            // instances (any state but terminated) using an AMI
            let mut token = None;
            loop {
                let r = ec2
                    .client
                    .describe_instances()
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| {
                        sdk(
                            "DescribeInstances",
                            region,
                            aws_sdk_ec2::error::DisplayErrorContext(e),
                        )
                    })?;
                for i in r.reservations().iter().flat_map(|r| r.instances()) {
                    let state = i
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str())
                        .unwrap_or("");
                    if let (Some(img), false) = (
                        i.image_id(),
                        state == "terminated" || state == "shutting-down",
                    ) {
                        if ids.contains(img) {
                            in_use.insert(
                                img.to_string(),
                                format!(
                                    "used by instance {} ({state})",
                                    i.instance_id().unwrap_or("?")
                                ),
                            );
                        }
                    }
                }
                match r.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            // every version of every launch template (filters are not relied on)
            let mut token = None;
            loop {
                let r = ec2
                    .client
                    .describe_launch_templates()
                    .max_results(200)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| {
                        sdk(
                            "DescribeLaunchTemplates",
                            region,
                            aws_sdk_ec2::error::DisplayErrorContext(e),
                        )
                    })?;
                for lt in r.launch_templates() {
                    let lt_id = lt.launch_template_id().unwrap_or_default();
                    let mut vtoken = None;
                    loop {
                        let v = ec2
                            .client
                            .describe_launch_template_versions()
                            .launch_template_id(lt_id)
                            .max_results(200)
                            .set_next_token(vtoken.take())
                            .send()
                            .await
                            .map_err(|e| {
                                sdk(
                                    "DescribeLaunchTemplateVersions",
                                    region,
                                    aws_sdk_ec2::error::DisplayErrorContext(e),
                                )
                            })?;
                        for ver in v.launch_template_versions() {
                            if let Some(img) = ver.launch_template_data().and_then(|d| d.image_id())
                            {
                                if ids.contains(img) {
                                    in_use.insert(
                                        img.to_string(),
                                        format!(
                                            "referenced by launch template {} version {}",
                                            lt.launch_template_name().unwrap_or(lt_id),
                                            ver.version_number().unwrap_or_default()
                                        ),
                                    );
                                }
                            }
                        }
                        match v.next_token() {
                            Some(t) if !t.is_empty() => vtoken = Some(t.to_string()),
                            _ => break,
                        }
                    }
                }
                match r.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            let decisions = decide(&amis, keep, &in_use);
            for a in &amis {
                let (kept, why) = decisions[&a.id].clone();
                let snapshots = snapshots_of(&ec2, &a.id).await?;
                let mut d = Decision {
                    region: region.clone(),
                    ami: a.id.clone(),
                    name: a.name.clone(),
                    group: group(a),
                    action: if kept { "keep".into() } else { "remove".into() },
                    why,
                    snapshots,
                };
                if !kept && !dry_run {
                    ec2.client
                        .deregister_image()
                        .image_id(&a.id)
                        .send()
                        .await
                        .map_err(|e| {
                            sdk(
                                "DeregisterImage",
                                region,
                                aws_sdk_ec2::error::DisplayErrorContext(e),
                            )
                        })?;
                    // snapshots go only after the image: EC2 refuses to delete a snapshot in use
                    for s in &d.snapshots {
                        ec2.client
                            .delete_snapshot()
                            .snapshot_id(s)
                            .send()
                            .await
                            .map_err(|e| {
                                sdk(
                                    "DeleteSnapshot",
                                    region,
                                    aws_sdk_ec2::error::DisplayErrorContext(e),
                                )
                            })?;
                    }
                    d.action = "removed".into();
                }
                out.push(d);
            }
            Ok::<(), Error>(())
        })?;
    }
    Ok(out)
}

async fn snapshots_of(ec2: &Ec2, ami: &str) -> Result<Vec<String>> {
    let r = ec2
        .client
        .describe_images()
        .image_ids(ami)
        .send()
        .await
        .map_err(|e| {
            sdk(
                "DescribeImages",
                &ec2.region,
                aws_sdk_ec2::error::DisplayErrorContext(e),
            )
        })?;
    Ok(r.images()
        .iter()
        .flat_map(|i| i.block_device_mappings())
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(String::from))
        .collect())
}
