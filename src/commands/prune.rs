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
    /// Also keep any AMI an instance was launched from within this long (`30d`; EC2's
    /// lastLaunchedTime, updated within 24 hours). aws only.
    #[arg(long, value_name = "DURATION", value_parser = unused_for_parser)]
    pub unused_for: Option<u64>,
}

/// `--unused-for 30d` → seconds: a duration as the config files write them, at least a day
/// (EC2 updates lastLaunchedTime within 24 hours).
fn unused_for_parser(text: &str) -> std::result::Result<u64, String> {
    match crate::config::duration::parse_duration(text) {
        Some(s) if s >= 86_400 => Ok(s),
        Some(_) => Err("at least 1d: EC2 updates an AMI's last launch time within 24 hours".into()),
        None => Err("a duration such as `30d` or `7d12h`".into()),
    }
}

pub fn run(ctx: &Ctx, args: PruneArgs) -> Result<()> {
    crate::targets::interface::refuse_flag(
        args.unused_for.is_some() && args.target == Target::Qemu,
        "--unused-for",
        args.target,
        "the local store does not record launches; prune it with --keep alone",
    )?;
    let prune = PruneRequest {
        keep: args.keep,
        dry_run: args.dry_run,
        regions: args.regions,
        unused_for: args.unused_for,
    };
    let report = backend(args.target).prune(&ctx.project, &prune)?;
    report.print(&ctx.printer)
}
