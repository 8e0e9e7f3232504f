//! `parbake gc`: remove what killed bakes left in EC2: expired builder instances, their
//! Packer key pairs and security groups, builder volumes and claims.

use super::Ctx;
use crate::error::Result;
use crate::plan::Target;
use crate::targets::backend;

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// List what would be removed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Whose leftovers: EC2's (aws, the default; the local target has none to collect).
    #[arg(long, default_value = "aws", value_parser = super::target_parser())]
    pub target: Target,
}

pub fn run(ctx: &Ctx, args: GcArgs) -> Result<()> {
    backend(args.target)
        .gc(&ctx.project, args.dry_run)?
        .print(&ctx.printer)
}
