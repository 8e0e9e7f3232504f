//! User-data for an existing AMI: the AMI's tags say which roles it baked and which role
//! versions it carries, and the user-data runs exactly the stack's roles it did not bake.
//! A stack role missing from the AMI, or different from `roles/`, is refused.

use super::ami::{manifest_from_tags, newest, TagManifest};
use super::ec2::{Ec2, Endpoint};
use crate::config::Project;
use crate::error::{Error, Result};
use crate::plan::{self, Layer, LayerKind, Plan, PlanRequest};
use crate::runtime::{runtime, Threads};

/// How long `plan` and `render` wait for EC2 to resolve a source AMI before they show
/// provisional hashes instead.
const PEEK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The source identity a bake of `image` would use, resolved read-only (DescribeImages, as
/// `userdata` does) within [`PEEK_TIMEOUT`]; Err says why it could not be.
pub fn peek_identity(image: &crate::config::Image) -> std::result::Result<String, String> {
    let src = image
        .def
        .sources
        .aws
        .as_ref()
        .ok_or_else(|| format!("image {} has no aws source", image.name))?;
    let rt = runtime(Threads::Current).map_err(|e| crate::error::Error::from(e).to_string())?;
    rt.block_on(async {
        let ec2 = Ec2::connect(&src.region, &Endpoint::from_env()).await;
        match tokio::time::timeout(PEEK_TIMEOUT, ec2.resolve_source_ami(&src.source_ami)).await {
            Ok(Ok(ami)) => Ok(crate::plan::source_identity::aws_resolved(src, &ami.id)),
            Ok(Err(e)) => Err(e.to_string().lines().next().unwrap_or_default().to_string()),
            Err(_) => Err(format!(
                "EC2 in {} did not answer within {}s",
                src.region,
                PEEK_TIMEOUT.as_secs()
            )),
        }
    })
}

/// The plan whose user-data fits an AMI: the one given, or the AMI of the stack's current top
/// layer (found by its layer hash, after resolving the source AMI).
pub fn plan_for_target(
    project: &Project,
    req: &PlanRequest,
    ami: Option<&str>,
) -> Result<(Plan, String)> {
    let rt = runtime(Threads::Current)?;
    let mut conn = None;
    let plan = crate::targets::plan_for(project, req, |image| {
        let src = image
            .def
            .sources
            .aws
            .as_ref()
            .ok_or_else(|| Error::Internal("an aws plan without an aws source".into()))?;
        let ec2 = rt.block_on(Ec2::connect(&src.region, &Endpoint::from_env()));
        let source = rt.block_on(ec2.resolve_source_ami(&src.source_ami))?;
        conn = Some((ec2, src.region.clone()));
        Ok(crate::plan::source_identity::aws_resolved(src, &source.id))
    })?;
    let (ec2, region) = conn.ok_or_else(|| Error::Internal("no EC2 connection".into()))?;
    rt.block_on(async {
        let found = match ami {
            Some(id) => ec2.image(id).await?,
            None => {
                let top = plan.top();
                let amis = ec2
                    .layer_amis(&super::scope::Scope::of(project), &top.hash)
                    .await?;
                newest(&amis).cloned().ok_or_else(|| {
                    Error::user(format!(
                        "no AMI in {} for layer {} {} ({})",
                        region,
                        top.index,
                        top.name,
                        top.short_hash()
                    ))
                    .with_hint(format!(
                        "bake it ({}), or name an AMI with --ami",
                        req.bake_command()
                    ))
                })?
            }
        };
        let m = manifest_from_tags(&found.id, &found.tags).map_err(|e| {
            Error::user(e)
                .with_hint("parbake reads the AMI's parbake:* tags; use an AMI baked by parbake")
        })?;
        Ok((plan_for_ami(project, &plan, &found.id, &m)?, found.id))
    })
}

/// The plan narrowed to an AMI: its layer on top (from its tags), and at launch exactly the
/// stack's roles it did not bake. Refused if the AMI is of another image, or lacks or differs
/// in a role the stack needs.
pub fn plan_for_ami(project: &Project, plan: &Plan, ami_id: &str, m: &TagManifest) -> Result<Plan> {
    if m.image != plan.image {
        return Err(Error::user(format!(
            "AMI {ami_id} is a layer of image `{}`; stack `{}` uses image `{}`",
            m.image, plan.stack, plan.image
        ))
        .with_hint("pass an AMI baked for this stack's image"));
    }
    let image = &project.images[&plan.image];
    let mut roots = image.def.basic.clone();
    roots.extend(project.stacks[&plan.stack].def.roles.iter().cloned());
    let closure = plan::run_order(project, &roots)?;
    check_installed(plan, ami_id, m, &closure)?;
    let (baked, unbaked): (Vec<String>, Vec<String>) =
        closure.into_iter().partition(|r| m.baked.contains(r));
    let baked_names: std::collections::BTreeSet<&str> = baked.iter().map(String::as_str).collect();
    let launch = unbaked
        .into_iter()
        .map(|r| {
            let launch_only = image.def.launch_only.contains(&r);
            plan::launch_role(
                project,
                image,
                &project.roles[&r],
                launch_only,
                &baked_names,
            )
        })
        .collect();
    let top = ami_layer(m, baked);
    let mut out = plan.clone();
    out.notes.push(format!(
        "user-data for AMI {ami_id}: it baked {}",
        if top.baked.is_empty() {
            "none of the stack's roles".to_string()
        } else {
            top.baked.join(", ")
        }
    ));
    out.layers = vec![top];
    out.promoted = Vec::new();
    out.launch = launch;
    Ok(out)
}

/// Every role of the closure must be on the AMI, as it is in `roles/` today.
fn check_installed(plan: &Plan, ami_id: &str, m: &TagManifest, closure: &[String]) -> Result<()> {
    let mut problems = Vec::new();
    for role in closure {
        let current = plan.installed[role].trim_start_matches("sha256:");
        match m.installed.get(role) {
            None => problems.push(format!("role `{role}` is not installed on it")),
            Some(have) if !current.starts_with(have.as_str()) => problems.push(format!(
                "role `{role}` differs: the AMI has {have}…, the project's copy is {}…",
                &current[..16]
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::user(format!(
        "AMI {ami_id} ({}, layer {}) does not match stack `{}`: {}",
        m.layer_name,
        &m.layer_hash[..12.min(m.layer_hash.len())],
        plan.stack,
        problems.join("; ")
    ))
    .with_hint(format!(
        "bake an AMI from the current roles (parbake bake {} --target aws), or use roles/ as they were when this AMI was baked",
        plan.stack
    )))
}

/// The AMI's layer as its tags describe it, with the closure's roles it baked.
fn ami_layer(m: &TagManifest, baked: Vec<String>) -> Layer {
    let (index, kind) = match m.stack {
        Some(_) => (2, LayerKind::Stack),
        None => (1, LayerKind::Base),
    };
    Layer {
        index,
        kind,
        name: m.layer_name.clone(),
        parent: m
            .parent_ami
            .clone()
            .map(|a| format!("ami:{a}"))
            .unwrap_or_default(),
        runs: Vec::new(),
        baked,
        vars: Default::default(),
        stage_apt: Default::default(),
        stage_apt_without_recommends: Default::default(),
        stage_pip: Default::default(),
        hash: m.layer_hash.clone(),
        // not tagged yet: the consistency check works on role hashes
        run_hash: String::new(),
        payload_hash: String::new(),
        inputs: Default::default(),
    }
}
