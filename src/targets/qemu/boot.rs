//! Which way a local launch boots: natively in systemd-nspawn with `--container` (where it
//! can run), else in a VM.

use crate::config::Project;
use crate::error::{Error, Result};
use crate::plan::PlanRequest;
use crate::targets::launch::{LaunchOptions, LaunchReport};

use super::container;
use super::launch::{boot_qemu, Boot};

/// A launch that booted and reported: the report, and when the runner reported a failure the
/// error for it (the role or check, the log tail, where the console log is). An error before
/// the runner reported (no baked layer, qemu would not start, the timeout) is the `Err`.
pub fn launch_qemu_outcome(
    project: &Project,
    req: &PlanRequest,
    opts: &LaunchOptions,
) -> Result<(LaunchReport, Option<Error>)> {
    let boot = Boot::planned(project, req, opts.no_roles)?;
    boot_local(project, &boot, opts)
}

/// Boots `boot` natively with `--container` (systemd-nspawn), or in a VM: also when a native
/// boot cannot run here, which is said once on stderr.
pub fn boot_local(
    project: &Project,
    boot: &Boot,
    opts: &LaunchOptions,
) -> Result<(LaunchReport, Option<Error>)> {
    let Some(net) = opts.container else {
        return boot_qemu(project, boot, opts);
    };
    let why = match container::unavailable() {
        Some(why) => why,
        None => match container::boot_container(project, boot, opts, net)? {
            container::Outcome::Booted(report, failed) => return Ok((*report, failed)),
            container::Outcome::Fallback(why) => why,
        },
    };
    crate::printer::stderr::line(format!(
        "parbake: --container: {why}; launching in a VM instead"
    ));
    boot_qemu(project, boot, opts)
}
