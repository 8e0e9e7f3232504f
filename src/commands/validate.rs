//! `parbake validate [STACK...]`: the real validators (packer, ansible-playbook, cloud-init)
//! on everything parbake renders.

use super::Ctx;
use crate::error::{Error, Result};
use crate::plan::Target;
use crate::tools::Tools;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Stacks to validate (default: all).
    pub stacks: Vec<String>,
    /// Targets to validate (default: every target the image has a source for).
    #[arg(long, value_parser = super::target_parser())]
    pub target: Vec<Target>,
}

pub fn run(ctx: &Ctx, args: ValidateArgs) -> Result<()> {
    let tools = Tools::locate(ctx.root());
    if !ctx.printer.json() {
        for (name, path) in tools.chosen() {
            ctx.printer.note(format!("using {name} {}", path.display()));
        }
    }
    let targets = if args.target.is_empty() {
        Target::ALL.to_vec()
    } else {
        args.target.clone()
    };
    // each check as it finishes, on stderr; with JSON only the failures' output
    let each = |c: &crate::validate::Check| {
        if !ctx.printer.json() {
            ctx.printer.note(format!(
                "{} {:<32} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.validator,
                c.subject
            ));
        }
        if c.ok && !ctx.printer.json() {
            // Ansible's own warnings (a collection that does not support this ansible-core)
            for l in c.output.lines().filter(|l| l.starts_with("[WARNING]")) {
                crate::printer::stderr::line(format!("     | {l}"));
            }
        }
        if !c.ok {
            for l in c.output.lines() {
                crate::printer::stderr::line(format!("     | {l}"));
            }
            if let Some(own) = &c.project_template {
                crate::printer::stderr::line(format!(
                    "     (the template is {own}, this project's own, not parbake's embedded one; \
                     Packer's {} is a copy of it, so its line numbers are {own}'s)",
                    crate::render::packer::TEMPLATE_FILE
                ));
            }
        }
    };
    let checks = crate::validate::run(&ctx.project, &tools, &args.stacks, &targets, each)?;
    let failed = checks.iter().filter(|c| !c.ok).count();
    if ctx.printer.json() {
        ctx.printer.data(&checks, |_| String::new())?;
    } else {
        crate::interrupt::checkpoint(crate::interrupt::point::COMMIT)?;
        ctx.printer
            .note(format!("{} checks, {} failed", checks.len(), failed));
    }
    if let Some(own) = crate::validate::Check::refused_project_template(&checks) {
        return Err(refused_template(own, failed));
    }
    if failed > 0 {
        return Err(Error::Validation { count: failed });
    }
    Ok(())
}

/// Packer refused the project's own template: name it, and the two ways out.
fn refused_template(own: &str, failed: usize) -> Error {
    Error::user(format!(
        "{failed} validation check(s) failed: Packer refused {own}, this project's own \
         template, which overrides parbake's embedded one"
    ))
    .with_hint(format!(
        "fix {own} (Packer's message is above), or remove it to bake with parbake's embedded \
         template (`parbake plan` says which template each stack uses)"
    ))
}
