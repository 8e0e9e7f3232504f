//! `verify` on the local target: launch the stack's current top layer with its user-data,
//! wait for the runner's verdict (roles, then checks), and record it in the store.

use std::fmt::Write;

use serde::Serialize;

use crate::config::Project;
use crate::error::{Error, Result};
use crate::plan::PlanRequest;
use crate::printer::Printer;
use crate::store::{Store, Verification};
use crate::targets::interface::{shown, Verified, VerifyRequest};
use crate::targets::launch::{LaunchOptions, LaunchReport};

/// What `verify` prints: the verdict and where it was recorded.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub verification: Verification,
    /// The store file that holds the verdict.
    pub recorded: std::path::PathBuf,
    pub launch: LaunchReport,
}

/// Launches, records the verdict, and says where it is recorded when it failed.
pub fn verify(
    project: &Project,
    req: &PlanRequest,
    verify: &VerifyRequest,
    printer: &Printer,
) -> Result<Verified> {
    let (launch, failed) = super::boot::launch_qemu_outcome(
        project,
        req,
        &LaunchOptions {
            keep: false,
            no_roles: false,
            offline: verify.offline,
            timeout: verify.timeout,
            quiet: printer.quiet,
            verbose: printer.verbose,
            container: verify.container,
        },
    )?;
    let verification = verdict(&launch, failed.as_ref());
    let recorded = Store::for_project(&project.root).record_verification(&verification)?;
    let failed = failed.map(|e| {
        e.with_hint(format!(
            "the failed verdict is recorded in {}; fix the stack and run `parbake verify {}` again",
            recorded.display(),
            launch.stack
        ))
    });
    Ok(Verified {
        passed: verification.passed,
        boot_to_ready_s: verification.boot_to_ready_s,
        userdata_sha256: verification.userdata_sha256.clone(),
        failed,
        report: shown(
            VerifyReport {
                verification,
                recorded,
                launch,
            },
            verify_summary,
        ),
    })
}

/// The verdict a launch makes: passed when the runner reported `done` (its roles and checks).
fn verdict(launch: &LaunchReport, failed: Option<&Error>) -> Verification {
    Verification {
        stack: launch.stack.clone(),
        layer: launch.layer.clone(),
        layer_hash: launch.layer_hash.clone(),
        userdata_sha256: launch.userdata_sha256.clone(),
        passed: failed.is_none() && launch.status.state == "done",
        at: crate::store::now_epoch(),
        boot_to_ready_s: launch.boot_to_ready_s,
        accelerator: launch.accelerator.clone(),
        instance_id: launch.instance_id.clone(),
        checks: launch
            .status
            .checks
            .iter()
            .filter(|c| c.status == "ok")
            .map(|c| c.name.clone())
            .collect(),
        error: failed.map(|_| {
            format!(
                "launch failed{}: {}",
                launch.status.failed_at(),
                launch.status.error.clone().unwrap_or_default()
            )
        }),
    }
}

pub fn verify_summary(r: &VerifyReport) -> String {
    let v = &r.verification;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "verify {} on layer {} ({}): {} in {:.1}s boot-to-ready; checks passed: {}",
        v.stack,
        v.layer,
        &v.layer_hash[..12],
        if v.passed { "passed" } else { "FAILED" },
        v.boot_to_ready_s,
        if v.checks.is_empty() {
            "none".to_string()
        } else {
            v.checks.join(", ")
        }
    );
    if let Some(e) = &v.error {
        let _ = writeln!(s, "  {e}");
    }
    let _ = writeln!(s, "user-data sha256 {}", v.userdata_sha256);
    let _ = writeln!(s, "recorded in {}", r.recorded.display());
    s
}
