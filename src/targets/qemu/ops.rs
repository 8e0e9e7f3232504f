//! The local target behind the one target interface: each operation is a short call into
//! this folder (bake, launch, verify, publish, the store's images and prune).

use std::sync::Arc;

use crate::bake::{BakeOptions, BakeReport, LayerBaker};
use crate::config::{Image, Project};
use crate::doctor::Finding;
use crate::error::Result;
use crate::plan::budget::Held;
use crate::plan::{Layer, Plan, PlanRequest, Target};
use crate::printer::Printer;
use crate::progress::Progress;
use crate::store::Store;
use crate::targets::interface::{
    refuse_flag, shown, unsupported, Backend, LaunchRequest, Preflight, PruneRequest, Report,
    Verified, VerifyRequest,
};
use crate::targets::launch::{launch_summary, LaunchOptions};

use super::bake::QemuBaker;
use super::boot::{boot_local, launch_qemu_outcome};
use super::launch::Boot;
use super::{publish, store_images, text, verify};

/// The local target: Packer's qemu builder, the store of layer disks, NoCloud launches in a
/// VM or natively in systemd-nspawn.
pub struct Local;

impl Backend for Local {
    fn target(&self) -> Target {
        Target::Qemu
    }

    fn template(&self) -> &'static str {
        crate::config::QEMU_TEMPLATE
    }

    fn has_source(&self, image: &Image) -> bool {
        image.def.sources.qemu.is_some()
    }

    /// The local target builds x86_64 only.
    fn arch_chains(&self, _image: &Image, arch: Option<&str>) -> Result<Vec<Option<String>>> {
        match arch {
            Some(a) if a != "x86_64" => Err(crate::error::Error::user(format!(
                "the local target builds x86_64 only, not {a}"
            ))
            .with_hint(format!(
                "bake and launch {a} on EC2: --target aws --arch {a}"
            ))),
            _ => Ok(vec![None]),
        }
    }

    fn peek_identity(&self, image: &Image) -> std::result::Result<String, Option<String>> {
        super::peek_identity(image).ok_or(None)
    }

    fn userdata_plan(
        &self,
        project: &Project,
        req: &PlanRequest,
        image_id: Option<&str>,
        printer: &Printer,
    ) -> Result<Plan> {
        refuse_flag(
            image_id.is_some(),
            "--ami",
            Target::Qemu,
            "on the local target the stack's baked layer is used",
        )?;
        let req = crate::targets::resolved_request(project, req, printer);
        Ok(crate::plan::plan(project, &req)?)
    }

    fn held(&self, project: &Project, layer: &Layer) -> Held {
        let store = Store::for_project(&project.root);
        if store.layer(&layer.hash).is_some() {
            Held::Exact
        } else if let Some(run) = store.run_layer(&layer.run_hash) {
            Held::RunLayer(run.hash)
        } else {
            Held::Nothing
        }
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
        super::doctor::preflight(tools, store_root, command)
    }

    fn bake(&self, project: &Project, req: &PlanRequest, opts: &BakeOptions) -> Result<BakeReport> {
        super::bake::bake_qemu(project, req, opts)
    }

    fn bake_all(
        &self,
        project: &Project,
        requests: Vec<PlanRequest>,
        force: bool,
        dry_run: bool,
        progress: &mut Progress,
    ) -> Result<(Arc<dyn LayerBaker>, Vec<Plan>)> {
        if dry_run {
            // plans on the cached base disk's identity; builds nothing, creates no store
            let b = QemuBaker::peek(project, force);
            let plans = requests
                .iter()
                .map(|r| b.plan_peek(r, progress))
                .collect::<Result<_>>()?;
            return Ok((Arc::new(b), plans));
        }
        let b = QemuBaker::new(project, force)?;
        let plans = requests
            .iter()
            .map(|r| b.plan(r, progress))
            .collect::<Result<_>>()?;
        Ok((Arc::new(b), plans))
    }

    fn launch(
        &self,
        project: &Project,
        req: &PlanRequest,
        launch: &LaunchRequest,
        printer: &Printer,
    ) -> Result<Box<dyn Report>> {
        refuse_local_flags(launch)?;
        let opts = LaunchOptions {
            keep: launch.keep,
            no_roles: launch.no_roles,
            offline: launch.offline,
            timeout: launch.timeout,
            quiet: printer.quiet,
            verbose: printer.verbose,
            container: launch.container,
        };
        let (report, failed) = if launch.published {
            let (boot, version) = Boot::published(project, &req.stack)?;
            printer.note(format!(
                "launching published version {version} of {}",
                req.stack
            ));
            boot_local(project, &boot, &opts)?
        } else {
            launch_qemu_outcome(project, req, &opts)?
        };
        let report = shown(report, launch_summary);
        match failed {
            None => Ok(report),
            Some(failed) => {
                // a pipeline reading --json gets the instance's status of the failed launch
                if printer.json() {
                    report.print(printer)?;
                }
                Err(failed)
            }
        }
    }

    fn verify(
        &self,
        project: &Project,
        req: &PlanRequest,
        verify: &VerifyRequest,
        printer: &Printer,
    ) -> Result<Verified> {
        verify::verify(project, req, verify, printer)
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
        let store = Store::for_project(&project.root);
        let roots = store_images::list(project, &store)?;
        Ok(shown(roots, |r| store_images::tree_text(r)))
    }

    fn prune(&self, project: &Project, prune: &PruneRequest) -> Result<Box<dyn Report>> {
        refuse_flag(
            !prune.regions.is_empty(),
            "--region",
            Target::Qemu,
            "the local store has no regions",
        )?;
        let store = Store::for_project(&project.root);
        let decisions = store_images::prune(&store, prune.keep, prune.dry_run)?;
        Ok(if prune.dry_run {
            shown(decisions, |d| text::prune_text(d, true))
        } else {
            shown(decisions, |d| text::prune_text(d, false))
        })
    }

    fn gc(&self, _project: &Project, _dry_run: bool) -> Result<Box<dyn Report>> {
        Err(unsupported(
            Target::Qemu,
            "gc",
            "gc removes what killed EC2 bakes left behind; old local layers go with `parbake prune --target qemu --keep N`",
        ))
    }

    fn prepare_validate(&self, layer_dir: &std::path::Path) -> Result<()> {
        // Packer checks that the SSH key file exists; bakes make a one-time key the same way
        std::fs::create_dir_all(layer_dir.join("ssh"))
            .map_err(|e| crate::error::Error::io("create", layer_dir, e))?;
        crate::process::ssh_keygen(&layer_dir.join("ssh/id_ed25519"), "parbake-validate")?;
        Ok(())
    }
}

/// The launch flags that are EC2's.
fn refuse_local_flags(launch: &LaunchRequest) -> Result<()> {
    refuse_flag(
        launch.ami.is_some(),
        "--ami",
        Target::Qemu,
        "the local target boots the stack's baked layer from the store",
    )?;
    refuse_flag(
        launch.wait_ready,
        "--wait-ready",
        Target::Qemu,
        "the local target always waits for the launch roles to report",
    )
}
