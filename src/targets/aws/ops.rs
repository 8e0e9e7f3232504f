//! The aws target behind the one target interface: each operation is a short call into this
//! folder (bake, launch, verify, publish, images, prune, gc).

use std::sync::Arc;
use std::time::Duration;

use crate::bake::{BakeOptions, BakeReport, LayerBaker};
use crate::config::{Image, Project};
use crate::doctor::Finding;
use crate::error::Result;
use crate::plan::{Plan, PlanRequest, Target};
use crate::printer::Printer;
use crate::progress::Progress;
use crate::targets::interface::{
    refuse_flag, shown, Backend, LaunchRequest, Preflight, PruneRequest, Report, Verified,
    VerifyRequest,
};

use super::{consistency, gc, images, launch, prune, publish, text};

/// EC2: Packer's amazon-ebs builder, AMIs tagged as the registry, EC2 launches.
pub struct Ec2Target;

/// The hint for a flag that needs the local target's own network control.
const OFFLINE_HINT: &str =
    "an instance's network is its subnet's; prove a launch offline on the local target";

impl Backend for Ec2Target {
    fn target(&self) -> Target {
        Target::Aws
    }

    fn template(&self) -> &'static str {
        crate::config::AMAZON_EBS_TEMPLATE
    }

    fn has_source(&self, image: &Image) -> bool {
        image.def.sources.aws.is_some()
    }

    fn arch_chains(&self, image: &Image, arch: Option<&str>) -> Result<Vec<Option<String>>> {
        super::arch_baker::chains(image, arch)
    }

    fn peek_identity(&self, image: &Image) -> std::result::Result<String, Option<String>> {
        consistency::peek_identity(image).map_err(Some)
    }

    fn userdata_plan(
        &self,
        project: &Project,
        req: &PlanRequest,
        image_id: Option<&str>,
        printer: &Printer,
    ) -> Result<Plan> {
        let (plan, id) = consistency::plan_for_target(project, req, image_id)?;
        printer.note(format!(
            "for AMI {id}: it baked {}",
            plan.top().baked.join(", ")
        ));
        Ok(plan)
    }

    fn doctor(
        &self,
        tools: &crate::tools::Tools,
        store_root: &std::path::Path,
        project: Option<&Project>,
    ) -> Vec<Finding> {
        super::doctor::checks(tools, store_root, project)
    }

    fn preflight(
        &self,
        tools: &crate::tools::Tools,
        store_root: &std::path::Path,
        command: Preflight,
    ) -> Vec<Finding> {
        match command {
            Preflight::Bake => vec![crate::targets::interface::packer_present(tools)],
            Preflight::Launch { .. } => {
                let _ = store_root;
                Vec::new()
            }
        }
    }

    fn bake(&self, project: &Project, req: &PlanRequest, opts: &BakeOptions) -> Result<BakeReport> {
        super::bake::bake_aws(project, req, opts)
    }

    fn bake_all(
        &self,
        project: &Project,
        requests: Vec<PlanRequest>,
        force: bool,
        dry_run: bool,
        progress: &mut Progress,
    ) -> Result<(Arc<dyn LayerBaker>, Vec<Plan>)> {
        // a dry run reads EC2 and creates no store; each architecture has its own baker
        super::arch_baker::plan_all(project, &requests, force, dry_run, progress)
    }

    fn launch(
        &self,
        project: &Project,
        req: &PlanRequest,
        l: &LaunchRequest,
        printer: &Printer,
    ) -> Result<Box<dyn Report>> {
        refuse_local_flags(l)?;
        let report = launch::launch_aws(
            project,
            req,
            l.ami.as_deref(),
            l.timeout,
            l.wait_ready,
            printer.quiet,
        )?;
        Ok(shown(report, text::launch_text))
    }

    fn verify(
        &self,
        project: &Project,
        req: &PlanRequest,
        v: &VerifyRequest,
        printer: &Printer,
    ) -> Result<Verified> {
        refuse_container(v.container.is_some())?;
        refuse_flag(v.offline, "--offline", Target::Aws, OFFLINE_HINT)?;
        verify(project, req, v.timeout, printer)
    }

    fn publish(
        &self,
        project: &Project,
        req: &PlanRequest,
        unverified: bool,
    ) -> Result<Box<dyn Report>> {
        Ok(shown(
            publish::publish(project, req, unverified)?,
            text::publish_text,
        ))
    }

    fn rollback(
        &self,
        project: &Project,
        stack: &str,
        unverified: bool,
    ) -> Result<Box<dyn Report>> {
        Ok(shown(
            publish::rollback(project, stack, unverified)?,
            text::rollback_text,
        ))
    }

    fn images(&self, project: &Project) -> Result<Box<dyn Report>> {
        Ok(shown(images::list(project)?, |r| images::tree_text(r)))
    }

    fn prune(&self, project: &Project, p: &PruneRequest) -> Result<Box<dyn Report>> {
        let regions = if p.regions.is_empty() {
            gc::regions(project)
        } else {
            p.regions.clone()
        };
        let keep = prune::Keep {
            newest: p.keep,
            unused_for: p.unused_for,
        };
        let decisions = prune::prune(project, &regions, keep, p.dry_run)?;
        Ok(if p.dry_run {
            shown(decisions, |d| text::prune_text(d, true))
        } else {
            shown(decisions, |d| text::prune_text(d, false))
        })
    }

    fn gc(&self, project: &Project, dry_run: bool) -> Result<Box<dyn Report>> {
        Ok(shown(gc::gc(project, dry_run)?, |l| text::gc_text(l)))
    }
}

/// Launches the stack's top AMI, tags the verdict on it, and says so when it failed.
fn verify(
    project: &Project,
    req: &PlanRequest,
    timeout: Duration,
    printer: &Printer,
) -> Result<Verified> {
    let (report, failed) = launch::verify_aws(project, req, timeout, printer.quiet)?;
    let failed = failed.map(|e| {
        e.with_hint(format!(
            "the failed verdict is tagged on {}; fix the stack and verify again",
            report.ami
        ))
    });
    Ok(Verified {
        passed: report.passed,
        boot_to_ready_s: report.seconds_to_ready,
        userdata_sha256: report.userdata_sha256.clone(),
        failed,
        report: shown(report, text::verify_text),
    })
}

/// `--container` is the local target's.
fn refuse_container(set: bool) -> Result<()> {
    refuse_flag(
        set,
        "--container",
        Target::Aws,
        "a native boot (systemd-nspawn) runs a layer from the local store; bake and launch the stack with --target qemu",
    )
}

/// The launch flags that are the local target's, refused in the order `launch` lists them.
fn refuse_local_flags(l: &LaunchRequest) -> Result<()> {
    refuse_container(l.container.is_some())?;
    refuse_flag(
        l.published,
        "--published",
        Target::Aws,
        "publishing to launch templates is not in this release; launch the AMI with --ami",
    )?;
    refuse_flag(
        l.keep,
        "--keep",
        Target::Aws,
        "an EC2 instance keeps running until you terminate it",
    )?;
    refuse_flag(
        l.no_roles,
        "--no-roles",
        Target::Aws,
        "measure the boot-time floor on the local target, or launch a stack whose roles are all baked",
    )?;
    refuse_flag(l.offline, "--offline", Target::Aws, OFFLINE_HINT)
}
