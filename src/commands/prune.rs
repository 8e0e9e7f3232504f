//! `parbake prune --keep N`: deregister old parbake AMIs and delete their snapshots, keeping
//! what is still needed; with `--target qemu`, remove old layers from the local store.

use super::Ctx;
use crate::error::Result;
use crate::plan::Target;
use crate::targets::backend;
use crate::targets::interface::PruneRequest;

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Keep this many newest AMIs (or local layers) of each image and of each stack.
    #[arg(long)]
    pub keep: usize,
    /// List what would go and why each kept one stays; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Regions to prune (default: every region the images use).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// EC2's AMIs (aws, the default) or the local store's layers (qemu).
    #[arg(long, default_value = "aws", value_parser = super::target_parser())]
    pub target: Target,
}

pub fn run(ctx: &Ctx, args: PruneArgs) -> Result<()> {
    let prune = PruneRequest {
        keep: args.keep,
        dry_run: args.dry_run,
        regions: args.regions,
    };
    let report = backend(args.target).prune(&ctx.project, &prune)?;
    report.print(&ctx.printer)
}
