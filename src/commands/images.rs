//! `parbake images`: parbake's AMIs per region as a lineage tree, stale ones marked.

use super::Ctx;
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {}

pub fn run(ctx: &Ctx, _args: ImagesArgs) -> Result<()> {
    let regions = crate::target::aws::images::list(&ctx.project)?;
    ctx.printer
        .data(&regions, |r| crate::target::aws::images::tree_text(r))
}
