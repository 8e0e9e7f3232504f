//! `parbake verify STACK`: launch the stack's current top image with its user-data, wait for
//! the boot result contract (roles, then checks), tear the instance down, and record the
//! verdict on the image: in the store on the local target, as AMI tags on aws. The launch goes into the timing
//! ledger like any other. Exit 1 when it failed, with the failed role or check named.

use std::time::Duration;

use super::{Ctx, StackArgs};
use crate::error::Result;
use crate::targets::backend;
use crate::targets::interface::{Preflight, VerifyRequest};

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

pub fn run(ctx: &Ctx, args: VerifyArgs) -> Result<()> {
    let req = args.stack.request();
    let verify = VerifyRequest {
        offline: args.offline,
        timeout: Duration::from_secs(args.timeout),
        container: args.native.net(),
    };
    let container = verify.container.is_some();
    super::doctor::preflight(ctx.root(), req.target, Preflight::Launch { container })?;
    // each architecture the image bakes, in turn; the first failure is the error
    let (mut reports, mut failed) = (Vec::new(), None);
    for arch in args.stack.arches(ctx)? {
        let ctx = ctx.for_arch(arch.as_deref());
        let verified = backend(req.target).verify(&ctx.project, &req, &verify, &ctx.printer)?;
        reports.push(verified.report);
        failed = failed.or(verified.failed);
    }
    // the report on stdout for a pipeline, the failure (role or check) as the error
    crate::targets::interface::print_all(&reports, &ctx.printer)?;
    match failed {
        None => Ok(()),
        Some(e) => Err(e),
    }
}
