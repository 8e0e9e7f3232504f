//! One file per subcommand: its flags (clap `Args`), its checks, its run, and the text
//! rendering of its report. Each takes a [`Ctx`] and prints only through its printer.

pub mod bake;
pub mod doctor;
pub mod gc;
pub mod images;
pub mod init;
pub mod launch;
pub mod plan;
pub mod prune;
pub mod publish;
pub mod render;
pub mod userdata;
pub mod validate;
pub mod vendor;
pub mod verify;

use std::path::PathBuf;

use clap::Args;

use crate::config::Project;
use crate::plan::{PlanRequest, Target};
use crate::printer::Printer;

/// What every command gets: the loaded project and the printer.
#[derive(Clone)]
pub struct Ctx {
    pub project: Project,
    pub printer: Printer,
}

impl Ctx {
    pub fn root(&self) -> &std::path::Path {
        &self.project.root
    }

    /// The project's inputs, where no output may land: a file there would change a role's
    /// hash, or be read as an image, stack or template.
    pub fn inputs(&self) -> Vec<PathBuf> {
        ["roles", "images", "packer"]
            .iter()
            .map(|d| self.project.root.join(d))
            .collect()
    }

    /// The context one architecture's chains run in: the project projected
    /// ([`Project::for_arch`]); `None` keeps it as loaded.
    pub fn for_arch(&self, arch: Option<&str>) -> std::borrow::Cow<'_, Ctx> {
        match arch {
            None => std::borrow::Cow::Borrowed(self),
            Some(a) => std::borrow::Cow::Owned(Ctx {
                project: self.project.for_arch(a),
                printer: self.printer,
            }),
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct StackArgs {
    /// The stack, by file name under images/stacks/.
    pub stack: String,
    /// Bake this role (and its dependencies) into the stack layer instead of running it at launch.
    #[arg(long = "promote", value_name = "ROLE")]
    pub promote: Vec<String>,
    /// Where images are baked: the local VM (qemu) or EC2 (aws).
    #[arg(long, default_value = "qemu", value_parser = target_parser())]
    pub target: Target,
    /// On aws, one architecture of an image that bakes several (`x86_64`, `arm64`); without
    /// it, each in turn where that means something (plan, bake, verify, publish).
    #[arg(long, value_name = "ARCH", value_parser = arch_parser())]
    pub arch: Option<String>,
}

impl StackArgs {
    /// The architectures this command runs for, each with the project as its chains see it
    /// (`None`: the project as loaded, for an image that bakes one without `architectures:`).
    pub fn arches(&self, ctx: &Ctx) -> crate::error::Result<Vec<Option<String>>> {
        arches_of(ctx, &self.stack, self.target, self.arch.as_deref())
    }

    /// [`StackArgs::arches`] for a command that needs exactly one architecture.
    pub fn one_arch(&self, ctx: &Ctx, command: &str) -> crate::error::Result<Option<String>> {
        let mut all = self.arches(ctx)?;
        if all.len() > 1 {
            let names: Vec<String> = all.iter().flatten().cloned().collect();
            return Err(crate::error::Error::user(format!(
                "stack {}'s image bakes {}: {command} needs one",
                self.stack,
                names.join(" and ")
            ))
            .with_hint(format!("add --arch {}", names.join(" or --arch "))));
        }
        Ok(all.pop().flatten())
    }

    pub fn request(&self) -> PlanRequest {
        PlanRequest {
            stack: self.stack.clone(),
            promote: self.promote.clone(),
            target: self.target,
            source_identity: None,
        }
    }

    /// A request whose source identity is the one a bake would use, when it can be known
    /// without building anything (`targets::interface::resolved_request`).
    pub fn resolved_request(&self, ctx: &Ctx) -> PlanRequest {
        crate::targets::resolved_request(&ctx.project, &self.request(), &ctx.printer)
    }
}

/// The architectures a stack command runs for on `target` (`arch`: its `--arch`), as the
/// target says (`Backend::arch_chains`). A stack that does not resolve gives `[None]`, and the
/// command's own planning says why.
pub fn arches_of(
    ctx: &Ctx,
    stack: &str,
    target: Target,
    arch: Option<&str>,
) -> crate::error::Result<Vec<Option<String>>> {
    let image = ctx
        .project
        .stacks
        .get(stack)
        .and_then(|s| ctx.project.images.get(&s.def.image));
    match image {
        Some(image) => crate::targets::backend(target).arch_chains(image, arch),
        None => Ok(vec![None]),
    }
}

/// `--arch`: one of the architectures an aws source can bake (`config::arch::ARCHES`).
pub fn arch_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::config::arch::ARCHES)
}

/// `--target`: the planner's `Target`, parsed here so that the planner knows nothing of clap.
pub fn target_parser() -> impl clap::builder::TypedValueParser<Value = Target> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["qemu", "aws"])
        .map(|s| s.parse::<Target>().expect("one of the possible values"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_flag_lists_every_target_and_parses_each() {
        let cmd = clap::Command::new("t").arg(
            clap::Arg::new("target")
                .long("target")
                .value_parser(target_parser()),
        );
        for t in Target::ALL {
            let m = cmd
                .clone()
                .try_get_matches_from(["t", "--target", &t.to_string()])
                .unwrap();
            assert_eq!(m.get_one::<Target>("target"), Some(&t));
        }
        assert!(cmd.try_get_matches_from(["t", "--target", "gcp"]).is_err());
    }
}
