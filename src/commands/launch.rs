//! `parbake launch STACK`: boot the stack's image with its user-data and report how the launch
//! roles went (the boot result contract), on the local VM or EC2.

use std::time::Duration;

use super::{Ctx, StackArgs};
use crate::error::Result;
use crate::targets::backend;
use crate::targets::interface::{LaunchRequest, Preflight};
use crate::targets::launch::ContainerNet;

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
    pub fn net(&self) -> Option<ContainerNet> {
        self.container.then_some(if self.host_link {
            ContainerNet::HostLink
        } else {
            ContainerNet::Off
        })
    }
}

pub fn run(ctx: &Ctx, args: LaunchArgs) -> Result<()> {
    let req = args.stack.request();
    let launch = LaunchRequest {
        keep: args.keep,
        no_roles: args.no_roles,
        offline: args.offline,
        ami: args.ami.clone(),
        wait_ready: args.wait_ready,
        timeout: Duration::from_secs(args.timeout),
        published: args.published,
        container: args.native.net(),
    };
    let container = launch.container.is_some();
    super::doctor::preflight(ctx.root(), req.target, Preflight::Launch { container })?;
    let arch = args.stack.one_arch(ctx, "a launch")?;
    let ctx = ctx.for_arch(arch.as_deref());
    let report = backend(req.target).launch(&ctx.project, &req, &launch, &ctx.printer)?;
    report.print(&ctx.printer)
}
