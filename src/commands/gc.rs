//! `parbake gc`: remove what killed bakes left in EC2: expired builder instances, their
//! Packer key pairs and security groups, builder volumes and claims.

use std::fmt::Write;

use super::Ctx;
use crate::error::Result;
use crate::targets::aws::gc::Leftover;

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// List what would be removed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(ctx: &Ctx, args: GcArgs) -> Result<()> {
    let left = crate::targets::aws::gc::gc(&ctx.project, args.dry_run)?;
    ctx.printer.data(&left, |l| text(l))
}

fn text(left: &[Leftover]) -> String {
    let mut out = String::new();
    for l in left {
        let of = if l.instance_id.is_empty() || l.kind == "instance" {
            String::new()
        } else {
            format!(" of {}", l.instance_id)
        };
        let action = match (l.kind.as_str(), l.removed) {
            ("instance", true) => "terminated".to_string(),
            ("instance", false) => "would terminate".to_string(),
            (_, true) => "removed".to_string(),
            (_, false) => l.note.clone().unwrap_or_else(|| "would remove".to_string()),
        };
        let _ = writeln!(
            out,
            "{} {} {}{}{} (owner {}, run {}, expired {}s ago): {action}",
            l.region,
            l.kind,
            l.id,
            of,
            if l.state.is_empty() {
                String::new()
            } else {
                format!(" {}", l.state)
            },
            l.owner,
            l.run_id,
            l.expired_s_ago,
        );
    }
    if left.is_empty() {
        out.push_str("nothing parbake left behind has expired\n");
    }
    out
}
