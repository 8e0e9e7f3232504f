//! `parbake prune --keep N`: deregister old parbake AMIs and delete their snapshots, keeping
//! what is still needed.

use std::fmt::Write;

use super::Ctx;
use crate::error::Result;
use crate::target::aws::prune::Decision;

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Keep this many newest AMIs of each image and of each stack.
    #[arg(long)]
    pub keep: usize,
    /// List what would go and why each kept AMI stays; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Regions to prune (default: every region the images use).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
}

pub fn run(ctx: &Ctx, args: PruneArgs) -> Result<()> {
    let regions = if args.regions.is_empty() {
        crate::target::aws::gc::regions(&ctx.project)
    } else {
        args.regions.clone()
    };
    let decisions = crate::target::aws::prune::prune(&regions, args.keep, args.dry_run)?;
    ctx.printer.data(&decisions, |d| text(d, args.dry_run))
}

fn text(decisions: &[Decision], dry_run: bool) -> String {
    let mut out = String::new();
    for d in decisions {
        let action = if dry_run && d.action == "remove" {
            "would remove"
        } else {
            d.action.as_str()
        };
        let _ = writeln!(
            out,
            "{} {} {:<12} {} ({}; {} snapshot(s))",
            d.region,
            d.ami,
            action,
            d.group,
            d.why,
            d.snapshots.len()
        );
    }
    out
}
