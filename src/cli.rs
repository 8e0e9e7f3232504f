//! Command-line interface: the clap types and the dispatch, nothing else. Each subcommand's
//! flags, checks, run and report live in its own file under `commands/`. stdout carries data
//! (plans, JSON, user-data); progress and errors go to stderr.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::{self, Ctx};
use crate::config::Project;
use crate::error::{Error, Result};
use crate::printer::{Format, Printer};

#[derive(Debug, Parser)]
#[command(
    name = "parbake",
    version,
    about = "Layered machine images: bake the basic roles, run the rest at launch, promote with one flag"
)]
pub struct Cli {
    /// Project directory (holds images/ and roles/); default: the current directory or a parent.
    #[arg(long, global = true, env = "PARBAKE_PROJECT")]
    pub project: Option<PathBuf>,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Stream the raw output of the programs parbake runs.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// The form of the result on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Same as `--format json`.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the layers, their roles and hashes, and what runs at launch.
    Plan(commands::plan::PlanArgs),
    /// Write every generated file (Packer inputs, playbooks, manifests, user-data) to a directory.
    Render(commands::render::RenderArgs),
    /// Print the stack's launch user-data (cloud-init), gzipped if it needs to be.
    Userdata(commands::userdata::UserdataArgs),
    /// Bake the stack's layers (base, and the stack layer when something is promoted), or with
    /// --all every stack's layers that changed.
    Bake(commands::bake::BakeArgs),
    /// Boot the stack's image with its user-data and wait until the launch roles report.
    Launch(commands::launch::LaunchArgs),
    /// Launch the stack's current top image with its user-data, wait for its roles and checks,
    /// tear it down, and record the verdict on the image.
    Verify(commands::verify::VerifyArgs),
    /// Point the stack at its current top image and exact user-data (a new version, made the
    /// default), once `verify` passed with them.
    Publish(commands::publish::PublishArgs),
    /// Move the stack's published default back to the version before it.
    Rollback(commands::publish::RollbackArgs),
    /// List parbake's AMIs per region as a lineage tree, marking stale ones.
    Images(commands::images::ImagesArgs),
    /// Deregister old parbake AMIs and delete their snapshots, keeping what is still needed.
    Prune(commands::prune::PruneArgs),
    /// Terminate EC2 builder instances parbake tagged whose expiry has passed.
    Gc(commands::gc::GcArgs),
    /// Run the real validators (packer, ansible-playbook, cloud-init) on everything rendered.
    Validate(commands::validate::ValidateArgs),
    /// Write images/<base>.yml (and with --from PLAYBOOK one stack per play) in an existing
    /// Ansible repository, never over a file.
    Init(commands::init::InitArgs),
    /// Check what the target's commands need (Packer, qemu or AWS credentials, ansible-core,
    /// cloud-init, disk) and say how to install what is missing.
    Doctor(commands::doctor::DoctorArgs),
    /// Install requirements.yml's roles and collections into vendor/ with ansible-galaxy, and
    /// write requirements.lock.json.
    Vendor(commands::vendor::VendorArgs),
}

impl Cli {
    pub fn printer(&self) -> Printer {
        Printer {
            quiet: self.quiet,
            verbose: self.verbose,
            format: if self.json { Format::Json } else { self.format },
        }
    }
}

/// Finds and loads the project, then runs the command.
pub fn run(cli: Cli) -> Result<()> {
    let start = match &cli.project {
        Some(p) => p.clone(),
        None => {
            std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?
        }
    };
    // init writes the project's first files, so it needs none
    if let Command::Init(a) = &cli.command {
        return commands::init::run(&start, cli.printer(), a);
    }
    // doctor runs anywhere: it says when there is no project
    if let Command::Doctor(a) = &cli.command {
        let root = Project::discover(&start).ok();
        return commands::doctor::run(root.as_deref(), cli.printer(), a);
    }
    let root = Project::discover(&start)?;
    // vendor repairs what loading the project may refuse (a stale vendor/), so it runs first
    if let Command::Vendor(a) = &cli.command {
        return commands::vendor::run(&root, cli.printer(), a);
    }
    let ctx = Ctx {
        project: crate::project::load(&root)?,
        printer: cli.printer(),
    };
    for w in &ctx.project.warnings {
        ctx.printer.warn(w);
    }
    match cli.command {
        Command::Plan(a) => commands::plan::run(&ctx, a),
        Command::Render(a) => commands::render::run(&ctx, a),
        Command::Userdata(a) => commands::userdata::run(&ctx, a),
        Command::Bake(a) => commands::bake::run(&ctx, a),
        Command::Launch(a) => commands::launch::run(&ctx, a),
        Command::Verify(a) => commands::verify::run(&ctx, a),
        Command::Publish(a) => commands::publish::run_publish(&ctx, a),
        Command::Rollback(a) => commands::publish::run_rollback(&ctx, a),
        Command::Images(a) => commands::images::run(&ctx, a),
        Command::Prune(a) => commands::prune::run(&ctx, a),
        Command::Gc(a) => commands::gc::run(&ctx, a),
        Command::Validate(a) => commands::validate::run(&ctx, a),
        Command::Vendor(a) => commands::vendor::run(&root, ctx.printer, &a),
        Command::Doctor(a) => commands::doctor::run(Some(&root), ctx.printer, &a),
        Command::Init(a) => commands::init::run(&root, ctx.printer, &a),
    }
}
