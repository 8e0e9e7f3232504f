//! The one target interface: everything a command asks of a target, in one trait. Commands
//! get a target with `targets::backend` and call it; they name nothing inside a target's folder. A
//! target that lacks an operation answers it with one error and a hint ([`unsupported`]), the
//! trait's default.
//!
//! Adding a target means a variant of [`Target`], its source in the config, a folder beside
//! `qemu/` and `aws/` with a type that implements [`Backend`], and one arm in `targets::backend`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use std::path::Path;

use crate::bake::{BakeOptions, BakeReport, LayerBaker};
use crate::config::{Image, Project};
use crate::doctor::{program, Finding};
use crate::error::{Error, Result};
use crate::plan::budget::Held;
use crate::plan::{Layer, Plan, PlanRequest, Target};
use crate::printer::Printer;
use crate::progress::Progress;
use crate::targets::launch::ContainerNet;
use crate::tools::Tools;

/// A command's result, ready for the printer: JSON with `--format json`, else its text.
pub trait Report {
    fn print(&self, printer: &Printer) -> Result<()>;
    /// The report as JSON (what `print` writes with `--format json`).
    fn json(&self) -> serde_json::Value;
    /// The report as text (what `print` writes otherwise).
    fn text(&self) -> String;
}

/// Several architectures' reports of one command: one document as a JSON array, or their
/// texts one after another. A single report prints as itself. (`Printer::data_each` for
/// typed results; a report is printed through its own `print`, whose JSON keeps its fields'
/// order, which its `json()` value does not.)
pub fn print_all(reports: &[Box<dyn Report>], printer: &Printer) -> Result<()> {
    if let [one] = reports {
        return one.print(printer);
    }
    let docs: Vec<serde_json::Value> = reports.iter().map(|r| r.json()).collect();
    printer.data(&docs, |_| {
        reports
            .iter()
            .map(|r| r.text())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// A report and the function that renders it as text.
pub struct Shown<T> {
    pub value: T,
    pub text: fn(&T) -> String,
}

impl<T: Serialize> Report for Shown<T> {
    fn print(&self, printer: &Printer) -> Result<()> {
        printer.data(&self.value, self.text)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.value).unwrap_or(serde_json::Value::Null)
    }

    fn text(&self) -> String {
        (self.text)(&self.value)
    }
}

/// Boxes a report with its text rendering.
pub fn shown<T: Serialize + 'static>(value: T, text: fn(&T) -> String) -> Box<dyn Report> {
    Box::new(Shown { value, text })
}

/// Every flag of `launch`; each target refuses the ones that do not apply to it.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub keep: bool,
    pub no_roles: bool,
    pub offline: bool,
    pub ami: Option<String>,
    pub wait_ready: bool,
    pub timeout: Duration,
    pub published: bool,
    pub container: Option<ContainerNet>,
}

/// Every flag of `verify`; each target refuses the ones that do not apply to it.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub offline: bool,
    pub timeout: Duration,
    pub container: Option<ContainerNet>,
}

/// A verification: the report to print, the verdict in brief (what `bake --all --verify`
/// records per stack), and the failure, with where the verdict was recorded in its hint.
pub struct Verified {
    pub report: Box<dyn Report>,
    pub passed: bool,
    pub boot_to_ready_s: f64,
    pub userdata_sha256: String,
    pub failed: Option<Error>,
}

/// The command a preflight is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preflight {
    Bake,
    /// A launch or verify; `container` for a native boot (which falls back to a VM).
    Launch {
        container: bool,
    },
}

/// What `prune` asks for.
#[derive(Debug, Clone)]
pub struct PruneRequest {
    pub keep: usize,
    pub dry_run: bool,
    /// Regions to prune (empty: every region the images use).
    pub regions: Vec<String>,
    /// `--unused-for` in seconds: keep what was launched within it (aws only).
    pub unused_for: Option<u64>,
}

/// Everything a command asks of a target. Each operation has a default that says the target
/// does not have it; a target implements what it has.
pub trait Backend: Sync {
    fn target(&self) -> Target;

    /// The Packer template its bakes use, by its path in a project that overrides it.
    fn template(&self) -> &'static str;

    /// Whether the image has a source for this target.
    fn has_source(&self, image: &Image) -> bool;

    /// The chains of `image` a stack command runs for (`arch`: its `--arch`): one `None` (the
    /// project as loaded) or each architecture the image's source lists, `Some(arch)`; an
    /// architecture this target or the image does not bake is refused with a hint.
    fn arch_chains(&self, image: &Image, arch: Option<&str>) -> Result<Vec<Option<String>>>;

    /// The identity of the image's source when it can be known without building or changing
    /// anything; `Err` carries why not, when the target can say.
    fn peek_identity(&self, image: &Image) -> Result<String, Option<String>>;

    /// The plan whose user-data `userdata` prints: on a target whose images carry what they
    /// baked, the plan that fits the image to launch (`--ami`).
    fn userdata_plan(
        &self,
        project: &Project,
        req: &PlanRequest,
        image_id: Option<&str>,
        printer: &Printer,
    ) -> Result<Plan> {
        let _ = (project, req, image_id, printer);
        Err(unsupported(
            self.target(),
            "userdata",
            "use another --target",
        ))
    }

    /// What `plan --budget` may count as already baked of a layer.
    fn held(&self, project: &Project, layer: &Layer) -> Held {
        let _ = (project, layer);
        Held::Unknown
    }

    /// Bakes the layers a stack needs (`bake STACK`).
    fn bake(&self, project: &Project, req: &PlanRequest, opts: &BakeOptions) -> Result<BakeReport> {
        let _ = (project, req, opts);
        Err(unsupported(self.target(), "bake", "use another --target"))
    }

    /// The baker `bake --all` schedules layers on, and each request's plan on it. A dry run
    /// builds, creates and bakes nothing.
    fn bake_all(
        &self,
        project: &Project,
        requests: Vec<PlanRequest>,
        force: bool,
        dry_run: bool,
        progress: &mut Progress,
    ) -> Result<(Arc<dyn LayerBaker>, Vec<Plan>)> {
        let _ = (project, requests, force, dry_run, progress);
        Err(unsupported(
            self.target(),
            "bake --all",
            "use another --target",
        ))
    }

    /// Launches a stack and reports how its launch roles went.
    fn launch(
        &self,
        project: &Project,
        req: &PlanRequest,
        launch: &LaunchRequest,
        printer: &Printer,
    ) -> Result<Box<dyn Report>> {
        let _ = (project, req, launch, printer);
        Err(unsupported(self.target(), "launch", "use another --target"))
    }

    /// Launches the stack's current top image, waits for its verdict, and records it.
    fn verify(
        &self,
        project: &Project,
        req: &PlanRequest,
        verify: &VerifyRequest,
        printer: &Printer,
    ) -> Result<Verified> {
        let _ = (project, req, verify, printer);
        Err(unsupported(self.target(), "verify", "use another --target"))
    }

    /// Makes the stack's current top image and user-data its published default.
    fn publish(
        &self,
        project: &Project,
        req: &PlanRequest,
        unverified: bool,
    ) -> Result<Box<dyn Report>> {
        let _ = (project, req, unverified);
        Err(unsupported(
            self.target(),
            "publish",
            "use another --target",
        ))
    }

    /// Moves the stack's published default back one version.
    fn rollback(
        &self,
        project: &Project,
        stack: &str,
        unverified: bool,
    ) -> Result<Box<dyn Report>> {
        let _ = (project, stack, unverified);
        Err(unsupported(
            self.target(),
            "rollback",
            "use another --target",
        ))
    }

    /// The target's images as a lineage tree.
    fn images(&self, project: &Project) -> Result<Box<dyn Report>> {
        let _ = project;
        Err(unsupported(self.target(), "images", "use another --target"))
    }

    /// Removes old images, keeping what is still needed.
    fn prune(&self, project: &Project, prune: &PruneRequest) -> Result<Box<dyn Report>> {
        let _ = (project, prune);
        Err(unsupported(self.target(), "prune", "use another --target"))
    }

    /// Removes what killed runs left behind.
    fn gc(&self, project: &Project, dry_run: bool) -> Result<Box<dyn Report>> {
        let _ = (project, dry_run);
        Err(unsupported(self.target(), "gc", "use another --target"))
    }

    /// What `doctor` checks for this target, beyond what every target needs; `bake` and
    /// `launch` stop early on the first that is missing, with the same words. `project` is the
    /// project's checked files, when there is one and it loads (its base disks, its plugins).
    fn doctor(&self, tools: &Tools, store_root: &Path, project: Option<&Project>) -> Vec<Finding> {
        let _ = (tools, store_root, project);
        Vec::new()
    }

    /// What `bake` or `launch` checks before it starts: the findings of `doctor` that the
    /// command cannot run without, checked without running any program.
    fn preflight(&self, tools: &Tools, store_root: &Path, command: Preflight) -> Vec<Finding> {
        let _ = (tools, store_root, command);
        Vec::new()
    }

    /// Prepares a layer's rendered directory for `packer validate` (what a bake would add).
    fn prepare_validate(&self, layer_dir: &std::path::Path) -> Result<()> {
        let _ = layer_dir;
        Ok(())
    }
}

const PACKER_INSTALL: &str =
    "apt-get install packer (Debian 12 ships 1.6.6), or Packer's own release; or set PARBAKE_PACKER";

/// Packer, which bakes on every target.
pub fn packer_finding(tools: &Tools) -> Finding {
    match program("packer", &tools.packer, "version") {
        Ok(found) => Finding::ok("packer", found, "bake, validate"),
        Err(problem) => Finding::failed("packer", true, problem, PACKER_INSTALL, "bake, validate"),
    }
}

/// Packer, found without running it (what `bake` checks first).
pub fn packer_present(tools: &Tools) -> Finding {
    crate::doctor::present_finding(
        "packer",
        &tools.packer,
        true,
        PACKER_INSTALL,
        "bake, validate",
    )
}

/// The one error for an operation a target does not have.
pub fn unsupported(target: Target, operation: &str, hint: &str) -> Error {
    Error::user(format!("--target {target} has no `{operation}`")).with_hint(hint.to_string())
}

/// A flag that does not apply to the chosen target is an error, never silently ignored.
pub fn refuse_flag(set: bool, flag: &str, target: Target, hint: &str) -> Result<()> {
    if set {
        return Err(
            Error::user(format!("{flag} does not apply to --target {target}"))
                .with_hint(hint.to_string()),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_operation_is_one_error_with_a_hint() {
        let e = unsupported(Target::Qemu, "gc", "try this");
        assert_eq!(e.to_string(), "--target qemu has no `gc`");
        assert_eq!(e.hints(), vec!["try this".to_string()]);
        assert_eq!(e.exit_code(), crate::error::exit::USER);
    }
}
