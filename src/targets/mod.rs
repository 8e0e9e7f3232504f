//! Targets: where layers are baked and stacks launched. Each target has one folder:
//! `qemu/` (the local VM: Packer's qemu builder, a store of qcow2 disks, NoCloud launches) and
//! `aws/` (Packer's amazon-ebs builder, AMIs tagged as the registry, EC2 launches). What both
//! share lives here and in `crate::bake`.

pub mod aws;
pub mod interface;
pub mod launch;
pub mod qemu;

pub use interface::{Backend, Report};

use crate::config::{Image, Project};
use crate::error::{Error, Result};
use crate::plan::{self, Plan, PlanRequest, Target};
use crate::printer::Printer;

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
    if !backend(req.target).has_source(image) {
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

/// The target behind `--target`.
pub fn backend(target: Target) -> &'static dyn Backend {
    match target {
        Target::Qemu => &crate::targets::qemu::ops::Local,
        Target::Aws => &crate::targets::aws::ops::Ec2Target,
    }
}

/// A request whose source identity is the one a bake would use, when it can be known
/// without building anything (the cached base disk's recipe; the source AMI, resolved
/// read-only), so `plan`, `render` and `userdata` show the same hashes and user-data as
/// `bake` and `launch`. When it cannot, the plan says its hashes are provisional.
pub fn resolved_request(project: &Project, req: &PlanRequest, printer: &Printer) -> PlanRequest {
    let mut req = req.clone();
    let Some(image) = project
        .stacks
        .get(&req.stack)
        .and_then(|st| project.images.get(&st.def.image))
    else {
        return req;
    };
    let target = backend(req.target);
    if !target.has_source(image) {
        return req;
    }
    match target.peek_identity(image) {
        Ok(id) => req.source_identity = Some(id),
        Err(why) => {
            let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
            printer.note(format!(
                "note: {}{why}",
                crate::plan::provisional_sentence(req.target, image)
            ));
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_a_backend_that_says_which_it_is() {
        for t in Target::ALL {
            assert_eq!(backend(t).target(), t);
        }
    }
}
