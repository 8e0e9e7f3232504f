//! `parbake images`: parbake's AMIs per region as a lineage tree, stale ones marked; with
//! `--target qemu`, the local store's layers with size, age, verified and published.

use super::Ctx;
use crate::error::Result;
use crate::plan::Target;

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Whose images: EC2's AMIs (aws, the default) or the local store's layers (qemu).
    #[arg(long, default_value_t = Target::Aws, value_parser = super::target_parser())]
    pub target: Target,
}

pub fn run(ctx: &Ctx, args: ImagesArgs) -> Result<()> {
    match args.target {
        Target::Aws => {
            let regions = crate::targets::aws::images::list(&ctx.project)?;
            ctx.printer
                .data(&regions, |r| crate::targets::aws::images::tree_text(r))
        }
        Target::Qemu => {
            use crate::targets::qemu::store_images;
            let store = crate::store::Store::for_project(&ctx.project.root);
            let roots = store_images::list(&ctx.project, &store)?;
            ctx.printer.data(&roots, |r| store_images::tree_text(r))
        }
    }
}
