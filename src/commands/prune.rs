//! `parbake prune --keep N`: deregister old parbake AMIs and delete their snapshots, keeping
//! what is still needed; with `--target qemu`, remove old layers from the local store.

use std::fmt::Write;

use super::{refuse_flag, Ctx};
use crate::error::Result;
use crate::plan::Target;
use crate::targets::aws::prune::Decision;
use crate::targets::qemu::store_images::{self, LocalDecision};

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
    #[arg(long, default_value_t = Target::Aws, value_parser = super::target_parser())]
    pub target: Target,
}

pub fn run(ctx: &Ctx, args: PruneArgs) -> Result<()> {
    if args.target == Target::Qemu {
        refuse_flag(
            !args.regions.is_empty(),
            "--region",
            Target::Qemu,
            "the local store has no regions",
        )?;
        let store = crate::store::Store::for_project(&ctx.project.root);
        let decisions = store_images::prune(&store, args.keep, args.dry_run)?;
        return ctx
            .printer
            .data(&decisions, |d| local_text(d, args.dry_run));
    }
    let regions = if args.regions.is_empty() {
        crate::targets::aws::gc::regions(&ctx.project)
    } else {
        args.regions.clone()
    };
    let decisions =
        crate::targets::aws::prune::prune(&ctx.project, &regions, args.keep, args.dry_run)?;
    ctx.printer.data(&decisions, |d| text(d, args.dry_run))
}

fn local_text(decisions: &[LocalDecision], dry_run: bool) -> String {
    let mut out = String::new();
    let mut freed = 0;
    for d in decisions {
        let action = if dry_run && d.action == "remove" {
            "would remove"
        } else {
            d.action.as_str()
        };
        if d.action != "keep" {
            freed += d.disk_bytes;
        }
        let _ = writeln!(
            out,
            "{:<12} {:<22} {} {:>10}  {} ({})",
            action,
            d.layer,
            &d.layer_hash[..12],
            store_images::size(d.disk_bytes),
            d.group,
            d.why
        );
    }
    let _ = writeln!(
        out,
        "{} {} of layer disks",
        if dry_run { "would free" } else { "freed" },
        store_images::size(freed)
    );
    out
}

/// One line per AMI (region, id, action, group, snapshots), then each reason indented.
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
            "{} {} {:<12} {} ({} snapshot(s))",
            d.region,
            d.ami,
            action,
            d.group,
            d.snapshots.len()
        );
        for r in &d.reasons {
            let _ = writeln!(out, "    {}", r.text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::aws::prune::{kind, Reason};

    #[test]
    fn each_reason_on_its_own_line_under_its_ami() {
        let reason = |kind, text: &str| Reason {
            kind,
            text: text.into(),
        };
        let d = Decision {
            region: "eu-west-1".into(),
            ami: "ami-1".into(),
            name: "n".into(),
            group: "stack debian12/web".into(),
            action: "keep".into(),
            why: String::new(),
            reasons: vec![
                reason(kind::CURRENT, "current AMI of stack web"),
                reason(kind::NEWEST, "newest available AMI of stack debian12/web"),
            ],
            snapshots: vec!["snap-1".into()],
        };
        assert_eq!(
            text(&[d], true),
            "eu-west-1 ami-1 keep         stack debian12/web (1 snapshot(s))\n    current AMI of stack web\n    newest available AMI of stack debian12/web\n"
        );
    }
}
