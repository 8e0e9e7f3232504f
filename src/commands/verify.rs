//! `parbake verify STACK`: launch the stack's current top image with its user-data, wait for
//! the boot result contract (roles, then checks), tear the instance down, and record the
//! verdict on the image: in the store on the local target, as AMI tags on aws. The launch goes into the timing
//! ledger like any other. Exit 1 when it failed, with the failed role or check named.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use super::{refuse_flag, Ctx, StackArgs};
use crate::error::{Error, Result};
use crate::plan::Target;
use crate::store::{Store, Verification};
use crate::targets::launch::{LaunchOptions, LaunchReport};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Boot with no network beyond the host's port forwards, as `launch --offline` (local
    /// target).
    #[arg(long)]
    pub offline: bool,
    /// Seconds to wait for the launch to report (software emulation is slow).
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    #[command(flatten)]
    pub native: super::launch::NativeArgs,
}

/// What `verify` prints: the verdict and where it was recorded.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub verification: Verification,
    /// The store file that holds the verdict.
    pub recorded: std::path::PathBuf,
    pub launch: LaunchReport,
}

pub fn run(ctx: &Ctx, args: VerifyArgs) -> Result<()> {
    let req = args.stack.request();
    if req.target == Target::Aws {
        args.native.refuse_on(Target::Aws)?;
        refuse_flag(
            args.offline,
            "--offline",
            Target::Aws,
            "an instance's network is its subnet's; prove a launch offline on the local target",
        )?;
        let (report, failed) = crate::targets::aws::launch::verify_aws(
            &ctx.project,
            &req,
            Duration::from_secs(args.timeout),
            ctx.printer.quiet,
        )?;
        ctx.printer.data(&report, aws_verify_summary)?;
        return match failed {
            None => Ok(()),
            Some(e) => Err(e.with_hint(format!(
                "the failed verdict is tagged on {}; fix the stack and verify again",
                report.ami
            ))),
        };
    }
    let (launch, failed) = crate::targets::qemu::launch::launch_qemu_outcome(
        &ctx.project,
        &req,
        &LaunchOptions {
            keep: false,
            no_roles: false,
            offline: args.offline,
            timeout: Duration::from_secs(args.timeout),
            quiet: ctx.printer.quiet,
            verbose: ctx.printer.verbose,
            container: args.native.net(),
        },
    )?;
    let verification = verdict(&launch, failed.as_ref());
    let store = Store::for_project(&ctx.project.root);
    let recorded = store.record_verification(&verification)?;
    let report = VerifyReport {
        verification,
        recorded,
        launch,
    };
    match failed {
        None => ctx.printer.data(&report, verify_summary),
        Some(e) => {
            // the report on stdout for a pipeline, the failure (role or check) as the error
            ctx.printer.data(&report, verify_summary)?;
            Err(e.with_hint(format!(
                "the failed verdict is recorded in {}; fix the stack and run `parbake verify {}` again",
                report.recorded.display(),
                report.launch.stack
            )))
        }
    }
}

/// The verdict a launch makes: passed when the runner reported `done` (its roles and checks).
pub(crate) fn verdict(launch: &LaunchReport, failed: Option<&Error>) -> Verification {
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

fn aws_verify_summary(r: &crate::targets::aws::launch::AwsVerifyReport) -> String {
    format!(
        "verify {} on {} in {} (instance {}, terminated): {} in {:.1}s; user-data sha256 {}; tagged {}\n",
        r.stack,
        r.ami,
        r.region,
        r.instance_id,
        if r.passed { "passed" } else { "FAILED" },
        r.seconds_to_ready,
        r.userdata_sha256,
        r.tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}
