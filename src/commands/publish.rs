//! `parbake publish STACK` and `parbake rollback STACK`: point the stack at its current top
//! image and exact user-data (a new version, made the default), or move the default back. On
//! the local target the pointer is in the store and `launch STACK --published` boots it; on
//! aws it is the stack's launch template. Publishing asks for a passed
//! `verify` with exactly that user-data, unless `--unverified`, which is recorded.

use super::{Ctx, StackArgs};
use crate::error::{Error, Result};
use crate::plan::Target;
use crate::targets::backend;

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Publish even though `verify` has not passed with exactly this user-data (recorded as
    /// unverified).
    #[arg(long)]
    pub unverified: bool,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The stack, by file name under images/stacks/.
    pub stack: String,
    /// Where the stack is published: the local store (qemu) or its launch template (aws).
    #[arg(long, default_value = "qemu", value_parser = super::target_parser())]
    pub target: Target,
    /// Land on the version before the default even if it was published unverified.
    #[arg(long)]
    pub unverified: bool,
    /// On aws, one architecture's launch template of an image that bakes several; without
    /// it, each in turn.
    #[arg(long, value_name = "ARCH", value_parser = super::arch_parser())]
    pub arch: Option<String>,
}

pub fn run_publish(ctx: &Ctx, args: PublishArgs) -> Result<()> {
    let req = args.stack.request();
    let mut reports = Vec::new();
    for arch in args.stack.arches(ctx)? {
        let ctx = ctx.for_arch(arch.as_deref());
        reports.push(backend(req.target).publish(&ctx.project, &req, args.unverified)?);
    }
    crate::targets::interface::print_all(&reports, &ctx.printer)
}

pub fn run_rollback(ctx: &Ctx, args: RollbackArgs) -> Result<()> {
    if !ctx.project.stacks.contains_key(&args.stack) {
        let known: Vec<String> = ctx.project.stacks.keys().cloned().collect();
        let mut e = Error::user(format!("unknown stack `{}`", args.stack));
        for h in crate::config::did_you_mean(&args.stack, &known, "stack") {
            e = e.with_hint(h);
        }
        return Err(e);
    }
    let mut reports = Vec::new();
    for arch in super::arches_of(ctx, &args.stack, args.target, args.arch.as_deref())? {
        let ctx = ctx.for_arch(arch.as_deref());
        reports.push(backend(args.target).rollback(&ctx.project, &args.stack, args.unverified)?);
    }
    crate::targets::interface::print_all(&reports, &ctx.printer)
}
