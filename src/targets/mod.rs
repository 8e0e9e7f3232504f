//! Targets: where layers are baked and stacks launched. Each target has one folder:
//! `qemu/` (the local VM: Packer's qemu builder, a store of qcow2 disks, NoCloud launches) and
//! `aws/` (Packer's amazon-ebs builder, AMIs tagged as the registry, EC2 launches). What both
//! share lives here and in `crate::bake`.

pub mod aws;
pub mod launch;
pub mod qemu;

use crate::config::{Image, Project};
use crate::error::{Error, Result};
use crate::plan::{self, Plan, PlanRequest, Target};

/// Planning for a target, the one way every command plans against a real source: the stack
/// and image are looked up, an image without a source for the target gets the planner's own
/// error (with its hint), then `resolve` gives the identity of the image's source (layer 1's
/// parent, part of its hash), and the pure planner runs with it.
///
/// Each target resolves its source its own way: qemu from its base-disk cache (looked up, or
/// built when baking), aws from EC2 (the newest AMI matching `source_ami`).
pub fn plan_for(
    project: &Project,
    req: &PlanRequest,
    resolve: impl FnOnce(&Image) -> Result<String>,
) -> Result<Plan> {
    let stack = project.stack(&req.stack)?;
    let image = project.image(&stack.def.image)?;
    let has_source = match req.target {
        Target::Qemu => image.def.sources.qemu.is_some(),
        Target::Aws => image.def.sources.aws.is_some(),
    };
    if !has_source {
        plan::plan(project, req)?;
        return Err(Error::Internal(format!(
            "image {} has no {} source, and the planner did not say so",
            image.name, req.target
        )));
    }
    let identity = resolve(image)?;
    Ok(plan::plan(
        project,
        &PlanRequest {
            source_identity: Some(identity),
            ..req.clone()
        },
    )?)
}
