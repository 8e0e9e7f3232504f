//! `parbake launch STACK`: boot the stack's image with its user-data and report how the launch
//! roles went (the boot result contract), on the local VM or EC2.

use std::fmt::Write;
use std::time::Duration;

use super::{refuse_flag, Ctx, StackArgs};
use crate::error::Result;
use crate::plan::Target;
use crate::targets::aws::launch::AwsLaunchReport;
use crate::targets::launch::{LaunchOptions, LaunchReport};

#[derive(Debug, clap::Args)]
pub struct LaunchArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Leave the VM running and print how to reach it (local target).
    #[arg(long)]
    pub keep: bool,
    /// Run no launch roles: boot the image and report at once, the boot-time floor (local
    /// target).
    #[arg(long)]
    pub no_roles: bool,
    /// Boot with no network beyond the host's port forwards (qemu user networking
    /// `restrict=on`): proves the launch needs no mirror, PyPI or Galaxy (local target).
    #[arg(long)]
    pub offline: bool,
    /// With --target aws: the AMI to launch (default: the stack's current top layer).
    #[arg(long, value_name = "ID")]
    pub ami: Option<String>,
    /// With --target aws: also wait until the launch roles report (read from the console
    /// output); without it parbake returns once the instance is running. The local target
    /// always waits.
    #[arg(long)]
    pub wait_ready: bool,
    /// Seconds to wait for the launch to report (software emulation is slow).
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Boot exactly what the stack's published default points at (`parbake publish`): its
    /// layer and its user-data, whatever the project says now (local target).
    #[arg(long, conflicts_with_all = ["promote", "no_roles"])]
    pub published: bool,
    #[command(flatten)]
    pub native: NativeArgs,
}

/// A native launch on the local target: the layer booted in systemd-nspawn, not a VM.
#[derive(Debug, clap::Args)]
pub struct NativeArgs {
    /// Boot the stack's baked layer natively in systemd-nspawn (root; Debian's
    /// systemd-container), in seconds instead of minutes: the layer's own systemd,
    /// cloud-init and launch runner on a throwaway copy, with no network (local target). Falls
    /// back to a VM, saying why, where nspawn cannot run.
    #[arg(long)]
    pub container: bool,
    /// With --container: a private link to the host and nothing beyond it, so the host can
    /// reach the container's ports (the report's `kept.http` with --keep).
    #[arg(long, requires = "container")]
    pub host_link: bool,
}

impl NativeArgs {
    /// The container network asked for, or None for a VM.
    pub fn net(&self) -> Option<crate::targets::launch::ContainerNet> {
        use crate::targets::launch::ContainerNet;
        self.container.then_some(if self.host_link {
            ContainerNet::HostLink
        } else {
            ContainerNet::Off
        })
    }

    /// `--container` is the local target's: refused elsewhere.
    pub fn refuse_on(&self, target: Target) -> Result<()> {
        refuse_flag(
            self.container,
            "--container",
            target,
            "a native boot (systemd-nspawn) runs a layer from the local store; bake and launch the stack with --target qemu",
        )
    }
}

pub fn run(ctx: &Ctx, args: LaunchArgs) -> Result<()> {
    let req = args.stack.request();
    let timeout = Duration::from_secs(args.timeout);
    match req.target {
        Target::Qemu => {
            refuse_flag(
                args.ami.is_some(),
                "--ami",
                Target::Qemu,
                "the local target boots the stack's baked layer from the store",
            )?;
            refuse_flag(
                args.wait_ready,
                "--wait-ready",
                Target::Qemu,
                "the local target always waits for the launch roles to report",
            )?;
            let opts = LaunchOptions {
                keep: args.keep,
                no_roles: args.no_roles,
                offline: args.offline,
                timeout,
                quiet: ctx.printer.quiet,
                verbose: ctx.printer.verbose,
                container: args.native.net(),
            };
            use crate::targets::qemu::launch;
            let report = if args.published {
                let (boot, version) = launch::Boot::published(&ctx.project, &req.stack)?;
                ctx.printer.note(format!(
                    "launching published version {version} of {}",
                    req.stack
                ));
                match launch::boot_local(&ctx.project, &boot, &opts)? {
                    (report, None) => report,
                    (_, Some(failed)) => return Err(failed),
                }
            } else {
                launch::launch_qemu(&ctx.project, &req, &opts)?
            };
            ctx.printer.data(&report, launch_summary)
        }
        Target::Aws => {
            args.native.refuse_on(Target::Aws)?;
            refuse_flag(
                args.published,
                "--published",
                Target::Aws,
                "publishing to launch templates is not in this release; launch the AMI with --ami",
            )?;
            refuse_flag(
                args.keep,
                "--keep",
                Target::Aws,
                "an EC2 instance keeps running until you terminate it",
            )?;
            refuse_flag(args.no_roles, "--no-roles", Target::Aws, "measure the boot-time floor on the local target, or launch a stack whose roles are all baked")?;
            refuse_flag(
                args.offline,
                "--offline",
                Target::Aws,
                "an instance's network is its subnet's; prove a launch offline on the local target",
            )?;
            let report = crate::targets::aws::launch::launch_aws(
                &ctx.project,
                &req,
                args.ami.as_deref(),
                timeout,
                args.wait_ready,
                ctx.printer.quiet,
            )?;
            ctx.printer.data(&report, aws_launch_summary)
        }
    }
}

fn aws_launch_summary(r: &AwsLaunchReport) -> String {
    let mut s = format!(
        "stack {} launched in {} from {} as {}: {} after {:.1}s; {} role(s) run at boot: {}\n",
        r.stack,
        r.region,
        r.ami,
        r.instance_id,
        r.state,
        r.seconds_to_running,
        r.launch_roles.len(),
        r.launch_roles.join(", ")
    );
    // with --wait-ready: the runner's verdict, per role and check
    if let (Some(status), Some(secs)) = (&r.status, r.seconds_to_ready) {
        let _ = writeln!(s, "launch {} in {secs:.1}s boot-to-ready", status.state);
        status_lines(&mut s, status);
    }
    s
}

/// One line per launch role and per check of a runner's status, with its state and time.
fn status_lines(s: &mut String, status: &crate::contract::status::BootStatus) {
    for role in &status.roles {
        let _ = writeln!(
            s,
            "  {:<12} {:<8} {}",
            role.name,
            role.status,
            role.duration_s
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_else(|| "-".into())
        );
    }
    for check in &status.checks {
        let _ = writeln!(
            s,
            "  check {:<24} {:<8} {}{}",
            check.name,
            check.status,
            check
                .duration_s
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_else(|| "-".into()),
            check
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
}

pub fn launch_summary(r: &LaunchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "stack {} launched from layer {} ({}) on {} as {}: {} in {:.1}s boot-to-ready",
        r.stack,
        r.layer,
        &r.layer_hash[..12],
        r.accelerator,
        r.instance_id,
        r.status.state,
        r.boot_to_ready_s
    );
    status_lines(&mut s, &r.status);
    if let Some(t) = &r.status.timing {
        let _ = writeln!(s, "where the time went: {}", t.text());
    }
    if let Some(k) = &r.kept {
        let what = if k.stop.is_some() { "container" } else { "VM" };
        let _ = writeln!(s, "the {what} is still running (pid {}):", k.pid);
        let _ = writeln!(s, "  ssh:  {}", k.ssh);
        let _ = writeln!(s, "  http: {}", k.http);
        match &k.stop {
            Some(stop) => writeln!(s, "  stop: {stop}"),
            None => writeln!(s, "  stop: kill {} && rm -rf {}", k.pid, k.dir.display()),
        }
        .ok();
    }
    let _ = writeln!(s, "console log: {}", r.serial_log.display());
    s
}
