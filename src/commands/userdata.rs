//! `parbake userdata STACK`: the launch user-data (cloud-init), gzipped when it must be; on
//! AWS the one that fits the AMI to launch.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::{Ctx, StackArgs};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::targets::backend;

#[derive(Debug, clap::Args)]
pub struct UserdataArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Write to this file instead of stdout (`-`: stdout). Must be a regular file or new.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// With --target aws: the AMI to launch (default: the AMI of the stack's current top
    /// layer). Its tags decide which roles run at boot.
    #[arg(long, value_name = "ID")]
    pub ami: Option<String>,
    /// Print a readable account instead: the cloud-config, then the launch spec and the
    /// bootstrap it carries in base64, decoded. Not for EC2: pass the plain output there.
    #[arg(long, conflicts_with = "output")]
    pub explain: bool,
}

pub fn run(ctx: &Ctx, args: UserdataArgs) -> Result<()> {
    ctx.printer.text_only(
        "userdata",
        "userdata prints the user-data itself; `--explain` shows it decoded",
    )?;
    // `-o -` is stdout
    let output = args.output.clone().filter(|p| p.as_os_str() != "-");
    if let Some(path) = &output {
        crate::write::refuse_inside(path, &ctx.inputs())?;
    }
    let plan = plan_for(ctx, &args)?;
    let ud = crate::render::userdata::render(&plan)?;
    ctx.printer.note(format!(
        "user-data for stack {}: {} bytes{} ({} launch roles)",
        plan.stack,
        ud.bytes.len(),
        if ud.gzipped {
            format!(" gzipped, {} raw", ud.text.len())
        } else {
            String::new()
        },
        plan.launch.len()
    ));
    match output {
        Some(path) => Ok(crate::write::write_output_file(&path, &ud.bytes)?),
        None if args.explain => ctx.printer.bytes(ud.explain().as_bytes()),
        None => {
            if ud.gzipped && std::io::stdout().is_terminal() {
                return Err(Error::user(
                    "the user-data is gzipped (binary); not writing it to a terminal",
                )
                .with_hint("write it to a file with -o FILE, or pipe it"));
            }
            ctx.printer.bytes(&ud.bytes)
        }
    }
}

/// The plan the user-data is for: on AWS, the one that fits the AMI's tags.
fn plan_for(ctx: &Ctx, args: &UserdataArgs) -> Result<Plan> {
    let arch = args.stack.one_arch(ctx, "the user-data of one AMI")?;
    let ctx = ctx.for_arch(arch.as_deref());
    backend(args.stack.target).userdata_plan(
        &ctx.project,
        &args.stack.request(),
        args.ami.as_deref(),
        &ctx.printer,
    )
}
