//! `parbake images`: parbake's AMIs per region as a lineage tree, stale ones marked; with
//! `--target qemu`, the local store's layers with size, age, verified and published.

use super::Ctx;
use crate::error::Result;
use crate::plan::Target;
use crate::targets::backend;

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Whose images: EC2's AMIs (aws, the default) or the local store's layers (qemu).
    #[arg(long, default_value = "aws", value_parser = super::target_parser())]
    pub target: Target,
}

pub fn run(ctx: &Ctx, args: ImagesArgs) -> Result<()> {
    backend(args.target)
        .images(&ctx.project)?
        .print(&ctx.printer)
}
