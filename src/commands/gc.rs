//! `parbake gc`: terminate EC2 builder instances parbake tagged whose expiry has passed.

use std::fmt::Write;

use super::Ctx;
use crate::error::Result;
use crate::target::aws::gc::Leftover;

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// List what would be terminated, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(ctx: &Ctx, args: GcArgs) -> Result<()> {
    let left = crate::target::aws::gc::gc(&ctx.project, args.dry_run)?;
    ctx.printer.data(&left, |l| text(l))
}

fn text(left: &[Leftover]) -> String {
    let mut out = String::new();
    for l in left {
        let _ = writeln!(
            out,
            "{} {} {} (owner {}, run {}, expired {}s ago){}",
            l.region,
            l.instance_id,
            l.state,
            l.owner,
            l.run_id,
            l.expired_s_ago,
            if l.terminated {
                ": terminated"
            } else {
                ": would terminate"
            }
        );
    }
    if left.is_empty() {
        out.push_str("no expired parbake builder instances\n");
    }
    out
}
