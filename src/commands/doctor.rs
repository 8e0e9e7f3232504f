//! `parbake doctor [--target T]`: checks everything the target's commands will need and says,
//! for each, what it found or what is missing and how to install it. Exit 0 when the target
//! can run, 1 otherwise. Runs without a project too (it says so).

use std::path::{Path, PathBuf};

use crate::doctor::{program_finding, DoctorReport, Finding};
use crate::error::{Error, Result};
use crate::plan::Target;
use crate::printer::Printer;
use crate::store::Store;
use crate::targets::backend;
use crate::targets::interface::Preflight;
use crate::tools::Tools;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The target to check: the local VM (qemu) or EC2 (aws).
    #[arg(long, default_value = "qemu", value_parser = super::target_parser())]
    pub target: Target,
}

/// `root` is the project, when one was found from the working directory or `--project`.
pub fn run(root: Option<&Path>, printer: Printer, args: &DoctorArgs) -> Result<()> {
    let report = report(root, args.target);
    printer.data(&report, crate::doctor::text)?;
    match report.first_missing() {
        None => Ok(()),
        Some(f) => Err(missing(args.target, f)),
    }
}

/// Every check: the project, the programs every target's commands use, then the target's own.
pub fn report(root: Option<&Path>, target: Target) -> DoctorReport {
    let here = root
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    let tools = Tools::locate(&here);
    let store = Store::for_project(&here);
    let loaded = root.map(crate::project::load);
    let mut findings = vec![project(root, loaded.as_ref())];
    findings.extend(common(&tools, &here));
    let project = loaded.as_ref().and_then(|l| l.as_ref().ok());
    findings.extend(backend(target).doctor(&tools, &store.root, project));
    DoctorReport::new(target, findings)
}

/// What `bake`, `launch` and `verify` check before they start, in `doctor`'s words: the first
/// thing the target cannot run without is the error.
pub fn preflight(root: &Path, target: Target, command: Preflight) -> Result<()> {
    let tools = Tools::locate(root);
    let store = Store::for_project(root);
    let findings = backend(target).preflight(&tools, &store.root, command);
    match crate::doctor::first_missing(&findings) {
        Some(f) => Err(missing(target, f)),
        None => Ok(()),
    }
}

/// The error `doctor` (and a command that checks first) exits with: the first missing thing.
pub fn missing(target: Target, f: &Finding) -> Error {
    Error::user(format!(
        "--target {target} cannot run: {} ({})",
        f.check,
        f.problem.as_deref().unwrap_or("missing")
    ))
    .with_hint(f.fix.clone().unwrap_or_default())
}

/// The project: found and loaded, or where it was found and why its files do not load (a
/// warning: doctor then checks every base parbake builds, and the embedded plugin pins).
fn project(root: Option<&Path>, loaded: Option<&Result<crate::config::Project>>) -> Finding {
    const NEEDED_BY: &str = "every command but doctor";
    match (root, loaded) {
        (Some(r), Some(Err(e))) => Finding::failed(
            "project",
            false,
            format!("{}: its files do not load: {e}", r.display()),
            e.hints()
                .first()
                .cloned()
                .unwrap_or_else(|| "run `parbake plan` for the whole error".into()),
            NEEDED_BY,
        ),
        (Some(r), _) => Finding::ok("project", r.display().to_string(), NEEDED_BY),
        (None, _) => Finding::failed(
            "project",
            false,
            "no project here: no directory with images/ or parbake.yml from here up",
            "cd into your Ansible repository (or pass --project DIR)",
            NEEDED_BY,
        ),
    }
}

/// The programs of `validate`, `vendor` and the shim builder, whatever the target.
fn common(tools: &Tools, root: &Path) -> Vec<Finding> {
    vec![
        program_finding(
            "python3",
            &tools.python3,
            "--version",
            true,
            "apt-get install python3",
            "bake, validate (the runner's shim builder)",
        ),
        program_finding(
            "ansible-playbook",
            &tools.ansible_playbook,
            "--version",
            false,
            "pip install ansible-core (make setup pins one), or set PARBAKE_ANSIBLE_PLAYBOOK",
            "validate (syntax checks)",
        ),
        program_finding(
            "ansible-galaxy",
            &super::vendor::ansible_galaxy(root),
            "--version",
            false,
            "it comes with ansible-core; or set PARBAKE_ANSIBLE_GALAXY",
            "vendor",
        ),
        program_finding(
            "cloud-init",
            &tools.cloud_init,
            "--version",
            false,
            "apt-get install cloud-init (make setup installs Debian's without enabling it)",
            "validate (cloud-init schema)",
        ),
    ]
}
