//! `parbake render STACK -o DIR`: every generated file (Packer inputs, playbooks, manifests,
//! the user-data and its decoded launch spec) written to a directory parbake owns.

use std::path::PathBuf;

use super::{Ctx, StackArgs};
use crate::error::{Error, Result};
use crate::render::RenderOptions;
use crate::tools::Tools;

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Output directory; replaced atomically, only if empty or an earlier render (its
    /// `.parbake-render.json` lists every file it owns).
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(ctx: &Ctx, args: RenderArgs) -> Result<()> {
    ctx.printer.text_only(
        "render",
        "render writes files; `parbake plan --format json` prints the plan",
    )?;
    if args.output.as_os_str() == "-" {
        return Err(
            Error::user("render writes a directory, not stdout").with_hint(
                "give a directory with -o DIR; `parbake userdata STACK` prints the user-data",
            ),
        );
    }
    crate::write::refuse_inside(&args.output, &ctx.inputs())?;
    let arch = args.stack.one_arch(ctx, "render (one Packer var-file)")?;
    let ctx = &*ctx.for_arch(arch.as_deref());
    let plan = crate::plan::plan(&ctx.project, &args.stack.resolved_request(ctx))?;
    let modern = Tools::locate(ctx.root())
        .packer_version()
        .map(|v| v.needs_init())
        .unwrap_or(false);
    let mut opts = RenderOptions {
        modern_packer: modern,
        ..RenderOptions::default()
    };
    // on aws, the source AMI the plan resolved (else the placeholder the provisional note covers)
    if let Some(ami) = resolved_source_ami(&plan) {
        opts.aws.source_ami = ami;
    }
    let files = crate::render::render_all(&ctx.project, &plan, &opts)?;
    crate::write::replace_tree(&args.output, &files)?;
    ctx.printer.note(format!(
        "wrote {} files to {}",
        files.len(),
        args.output.display()
    ));
    Ok(())
}

/// The source AMI id in layer 1's parent (`source:` and its resolved identity), when it was
/// resolved.
fn resolved_source_ami(plan: &crate::plan::Plan) -> Option<String> {
    let identity = plan.layers.first()?.parent.strip_prefix("source:")?;
    crate::plan::source_identity::aws_ami(identity).map(String::from)
}
