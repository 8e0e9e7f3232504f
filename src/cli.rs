//! Command-line interface: parses arguments, loads the project, and dispatches. stdout carries
//! data (plans, JSON, user-data); progress and errors go to stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Project;
use crate::error::{Error, Result};
use crate::interrupt::{checkpoint, point};
use crate::plan::{self, PlanRequest, Target};
use crate::render::{self, RenderOptions};
use crate::tools::Tools;
use crate::{report, validate, write};

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct StackArgs {
    /// The stack, by file name under images/stacks/.
    pub stack: String,
    /// Bake this role (and its dependencies) into the stack layer instead of running it at launch.
    #[arg(long = "promote", value_name = "ROLE")]
    pub promote: Vec<String>,
    /// Where images are baked: the local VM (qemu) or EC2 (aws).
    #[arg(long, value_enum, default_value_t = Target::Qemu)]
    pub target: Target,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the layers, their roles and hashes, and what runs at launch.
    Plan {
        #[command(flatten)]
        stack: StackArgs,
        /// Estimate boot-to-ready from the timing ledger and recommend the smallest promotion
        /// that meets this budget (`45s`, `2m`, `1m30s`); exit 1 when none can.
        #[arg(long, value_name = "DURATION")]
        budget: Option<String>,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write every generated file (Packer inputs, playbooks, manifests, user-data) to a directory.
    Render {
        #[command(flatten)]
        stack: StackArgs,
        /// Output directory; replaced atomically, only if it is new, empty, or an earlier render
        /// holding nothing its `.parbake-render.json` does not list.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print the stack's launch user-data (cloud-init), gzipped if it needs to be.
    Userdata {
        #[command(flatten)]
        stack: StackArgs,
        /// Write to this file instead of stdout (`-`: stdout). Must be a regular file or new.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// With --target aws: the AMI to launch (default: the AMI of the stack's current top
        /// layer). Its tags decide which roles run at boot.
        #[arg(long, value_name = "ID")]
        ami: Option<String>,
        /// Print a readable account instead: the cloud-config, then the launch spec and the
        /// bootstrap it carries in base64, decoded. Not for EC2: pass the plain output there.
        #[arg(long, conflicts_with = "output")]
        explain: bool,
    },
    /// Bake the stack's layers (base, and the stack layer when something is promoted), or with
    /// --all every stack's layers that changed.
    Bake {
        /// The stack, by file name under images/stacks/ (not with --all).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        stack: Option<String>,
        /// Bake this role (and its dependencies) into the stack layer instead of running it at launch.
        #[arg(long = "promote", value_name = "ROLE", conflicts_with = "all")]
        promote: Vec<String>,
        /// Where images are baked: the local VM (qemu) or EC2 (aws).
        #[arg(long, value_enum, default_value_t = Target::Qemu)]
        target: Target,
        /// Every image and stack (each stack with its file's `promote:` list); only layers whose
        /// hash changed are baked, parents first; a failed layer's children are skipped.
        #[arg(long)]
        all: bool,
        /// With --all: at most this many bakes at once.
        #[arg(short = 'j', long = "jobs", default_value_t = 2, requires = "all")]
        jobs: usize,
        /// Rebake even when the store has a layer with the same hash.
        #[arg(long)]
        force: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Boot the stack's image with its user-data and wait until the launch roles report.
    Launch {
        #[command(flatten)]
        stack: StackArgs,
        /// Leave the VM running and print how to reach it.
        #[arg(long)]
        keep: bool,
        /// Run no launch roles: boot the image and report at once (the boot-time floor).
        #[arg(long)]
        no_roles: bool,
        /// With --target aws: the AMI to launch (default: the stack's current top layer).
        #[arg(long, value_name = "ID")]
        ami: Option<String>,
        /// With --target aws: also wait until the launch roles report (read from the console
        /// output); without it parbake returns once the instance is running.
        #[arg(long)]
        wait_ready: bool,
        /// Seconds to wait for the launch to report (software emulation is slow).
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List parbake's AMIs per region as a lineage tree, marking stale ones.
    Images {
        #[arg(long)]
        json: bool,
    },
    /// Deregister old parbake AMIs and delete their snapshots, keeping what is still needed.
    Prune {
        /// Keep this many newest AMIs of each image and of each stack.
        #[arg(long)]
        keep: usize,
        /// List what would go and why each kept AMI stays; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Regions to prune (default: every region the images use).
        #[arg(long = "region", value_name = "REGION")]
        regions: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Terminate EC2 builder instances parbake tagged whose expiry has passed.
    Gc {
        /// List what would be terminated, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run the real validators (packer, ansible-playbook, cloud-init) on everything rendered.
    Validate {
        /// Stacks to validate (default: all).
        stacks: Vec<String>,
        /// Targets to validate (default: every target the image has a source for).
        #[arg(long, value_enum)]
        target: Vec<Target>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    let start = match &cli.project {
        Some(p) => p.clone(),
        None => {
            std::env::current_dir().map_err(|e| Error::io("read the current directory", ".", e))?
        }
    };
    let root = Project::discover(&start)?;
    let project = Project::load(&root)?;
    let stdout = std::io::stdout();
    match cli.command {
        Command::Plan {
            stack,
            budget: Some(budget),
            json,
        } => {
            let budget_s = crate::budget::parse_duration(&budget).ok_or_else(|| {
                Error::user(format!(
                    "invalid --budget `{budget}`: not a positive, finite duration"
                ))
                .with_hint("give a duration such as 45s, 2m or 1m30s (units h, m and s), or a number of seconds such as 90")
            })?;
            let req = resolved_request(&project, &stack);
            let store = crate::store::Store::for_project(&root);
            let entries = crate::ledger::Ledger::in_store(&store.root).load()?;
            let image = &project.stack(&stack.stack)?.def.image;
            let stats =
                crate::ledger::Stats::from_entries(&entries, &stack.target.to_string(), image);
            let report = crate::budget::recommend(&project, &req, &stats, budget_s)?;
            checkpoint(point::COMMIT)?;
            let mut out = stdout.lock();
            if json {
                print_json(&mut out, &report)?;
            } else {
                write!(out, "{}", crate::budget::report_text(&report)).ok();
            }
            if !report.met() {
                return Err(Error::user(format!(
                    "no promotion of stack {} meets the {budget} budget (fastest estimate {:.1}s)",
                    report.stack, report.fastest.estimate_s
                ))
                .with_hint("raise the budget, or make the launch-only roles faster; the estimate per role is above"));
            }
        }
        Command::Plan {
            stack,
            json,
            budget: None,
        } => {
            let plan = plan::plan(&project, &resolved_request(&project, &stack))?;
            // one verdict for both outputs: the size is reported, then too large exits 1
            let ud = render::userdata::render(&plan);
            let size = report::UserDataSize::of(&ud);
            checkpoint(point::COMMIT)?;
            let mut out = stdout.lock();
            if json {
                print_json(
                    &mut out,
                    &report::PlanJson {
                        plan: &plan,
                        user_data: &size,
                    },
                )?;
            } else {
                write!(out, "{}", report::plan_table(&plan, &size)).ok();
            }
            ud?;
        }
        Command::Render { stack, output } => {
            if output.as_os_str() == "-" {
                return Err(Error::user("render writes a directory, not stdout")
                    .with_hint("give a directory with -o DIR; `parbake userdata STACK` prints the user-data"));
            }
            write::refuse_inside(&output, &project_inputs(&project))?;
            let plan = plan::plan(&project, &resolved_request(&project, &stack))?;
            let tools = Tools::locate(&root);
            let modern = tools.packer_version().is_ok_and(|v| v.needs_init());
            let opts = RenderOptions {
                modern_packer: modern,
                ..RenderOptions::default()
            };
            let files = render::render_all(&project, &plan, &opts)?;
            write::replace_tree(&output, &files)?;
            if !cli.quiet {
                eprintln!("wrote {} files to {}", files.len(), output.display());
            }
        }
        Command::Userdata {
            stack,
            output,
            ami,
            explain,
        } => {
            // `-o -` is stdout
            let output = output.filter(|p| p.as_os_str() != "-");
            if let Some(path) = &output {
                write::refuse_inside(path, &project_inputs(&project))?;
            }
            let plan = match stack.target {
                Target::Aws => {
                    let (plan, id) = crate::aws::consistency::plan_for_target(
                        &project,
                        &request(&stack),
                        ami.as_deref(),
                    )?;
                    if !cli.quiet {
                        eprintln!("for AMI {id}: it baked {}", plan.top().baked.join(", "));
                    }
                    plan
                }
                Target::Qemu if ami.is_some() => {
                    return Err(Error::user("--ami needs --target aws")
                        .with_hint("on the local target the stack's baked layer is used"))
                }
                Target::Qemu => plan::plan(&project, &resolved_request(&project, &stack))?,
            };
            let ud = render::userdata::render(&plan)?;
            if !cli.quiet {
                eprintln!(
                    "user-data for stack {}: {} bytes{} ({} launch roles)",
                    plan.stack,
                    ud.bytes.len(),
                    if ud.gzipped {
                        format!(" gzipped, {} raw", ud.text.len())
                    } else {
                        String::new()
                    },
                    plan.launch.len()
                );
            }
            match output {
                Some(path) => write::write_output_file(&path, &ud.bytes)?,
                None if explain => {
                    checkpoint(point::COMMIT)?;
                    stdout
                        .lock()
                        .write_all(ud.explain().as_bytes())
                        .map_err(|e| Error::io("write", "stdout", e))?;
                }
                None => {
                    if ud.gzipped && stdout.is_terminal() {
                        return Err(Error::user(
                            "the user-data is gzipped (binary); not writing it to a terminal",
                        )
                        .with_hint("write it to a file with -o FILE, or pipe it"));
                    }
                    checkpoint(point::COMMIT)?;
                    stdout
                        .lock()
                        .write_all(&ud.bytes)
                        .map_err(|e| Error::io("write", "stdout", e))?;
                }
            }
        }
        Command::Bake {
            all: true,
            target,
            jobs,
            force,
            json,
            ..
        } => {
            let report = bake_all(&project, target, jobs, force, cli.quiet, cli.verbose)?;
            let mut out = stdout.lock();
            if json {
                print_json(&mut out, &report)?;
            } else {
                write!(out, "{}", crate::pipeline::summary_text(&report)).ok();
            }
            if crate::interrupt::interrupted() {
                return Err(Error::Interrupted);
            }
            if !report.ok() {
                return Err(Error::Layers {
                    failed: report.counts.failed,
                    skipped: report.counts.skipped,
                });
            }
        }
        Command::Bake {
            stack,
            promote,
            target,
            force,
            json,
            ..
        } => {
            let req = request(&StackArgs {
                stack: stack.unwrap_or_default(),
                promote,
                target,
            });
            let report = match req.target {
                Target::Qemu => crate::bake::bake_qemu(
                    &project,
                    &req,
                    &crate::bake::BakeOptions {
                        force,
                        quiet: cli.quiet,
                        verbose: cli.verbose,
                    },
                )?,
                Target::Aws => crate::aws::bake::bake_aws(
                    &project,
                    &req,
                    &crate::bake::BakeOptions {
                        force,
                        quiet: cli.quiet,
                        verbose: cli.verbose,
                    },
                )?,
            };
            let mut out = stdout.lock();
            if json {
                print_json(&mut out, &report)?;
            } else {
                write!(out, "{}", report::bake_summary(&report)).ok();
            }
        }
        Command::Launch {
            stack,
            ami,
            wait_ready,
            keep,
            no_roles,
            timeout,
            json,
        } => {
            let req = request(&stack);
            let report = match req.target {
                Target::Qemu => crate::launch::launch_qemu(
                    &project,
                    &req,
                    &crate::launch::LaunchOptions {
                        keep,
                        no_roles,
                        timeout: std::time::Duration::from_secs(timeout),
                        quiet: cli.quiet,
                        verbose: cli.verbose,
                    },
                )?,
                Target::Aws => {
                    let r = crate::aws::launch::launch_aws(
                        &project,
                        &req,
                        ami.as_deref(),
                        std::time::Duration::from_secs(timeout),
                        wait_ready,
                    )?;
                    let mut out = stdout.lock();
                    if json {
                        print_json(&mut out, &r)?;
                    } else {
                        writeln!(
                            out,
                            "stack {} launched in {} from {} as {}: {} after {:.1}s; {} role(s) run at boot: {}",
                            r.stack,
                            r.region,
                            r.ami,
                            r.instance_id,
                            r.state,
                            r.seconds_to_running,
                            r.launch_roles.len(),
                            r.launch_roles.join(", ")
                        )
                        .ok();
                    }
                    return Ok(());
                }
            };
            let mut out = stdout.lock();
            if json {
                print_json(&mut out, &report)?;
            } else {
                write!(out, "{}", report::launch_summary(&report)).ok();
            }
        }
        Command::Images { json } => {
            let regions = crate::aws::images::list(&project)?;
            let mut out = stdout.lock();
            if json {
                print_json(&mut out, &regions)?;
            } else {
                write!(out, "{}", crate::aws::images::tree_text(&regions)).ok();
            }
        }
        Command::Prune {
            keep,
            dry_run,
            regions,
            json,
        } => {
            let regions = if regions.is_empty() {
                crate::aws::gc::regions(&project)
            } else {
                regions
            };
            let decisions = crate::aws::prune::prune(&regions, keep, dry_run)?;
            let mut out = stdout.lock();
            if json {
                print_json(&mut out, &decisions)?;
            } else {
                for d in &decisions {
                    let action = if dry_run && d.action == "remove" {
                        "would remove"
                    } else {
                        d.action.as_str()
                    };
                    writeln!(
                        out,
                        "{} {} {:<12} {} ({}; {} snapshot(s))",
                        d.region,
                        d.ami,
                        action,
                        d.group,
                        d.why,
                        d.snapshots.len()
                    )
                    .ok();
                }
            }
        }
        Command::Gc { dry_run, json } => {
            let left = crate::aws::gc::gc(&project, dry_run)?;
            let mut out = stdout.lock();
            if json {
                print_json(&mut out, &left)?;
            } else {
                for l in &left {
                    writeln!(
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
                    )
                    .ok();
                }
                if left.is_empty() {
                    writeln!(out, "no expired parbake builder instances").ok();
                }
            }
        }
        Command::Validate {
            stacks,
            target,
            json,
        } => {
            let tools = Tools::locate(&root);
            let targets = if target.is_empty() {
                vec![Target::Qemu, Target::Aws]
            } else {
                target
            };
            let quiet = cli.quiet || json;
            let checks = validate::run(&project, &tools, &stacks, &targets, |c| {
                if !quiet {
                    eprintln!(
                        "{} {:<32} {}",
                        if c.ok { "ok  " } else { "FAIL" },
                        c.validator,
                        c.subject
                    );
                }
                if !c.ok {
                    for l in c.output.lines() {
                        eprintln!("     | {l}");
                    }
                }
            })?;
            let failed = checks.iter().filter(|c| !c.ok).count();
            checkpoint(point::COMMIT)?;
            if json {
                print_json(&mut stdout.lock(), &checks)?;
            } else if !cli.quiet {
                eprintln!("{} checks, {} failed", checks.len(), failed);
            }
            if failed > 0 {
                return Err(Error::Validation { count: failed });
            }
        }
    }
    Ok(())
}

/// `bake --all`: plans every stack (each with its file's `promote:` list) on the target,
/// then schedules the distinct layers.
fn bake_all(
    project: &Project,
    target: Target,
    jobs: usize,
    force: bool,
    quiet: bool,
    verbose: bool,
) -> Result<crate::pipeline::AllReport> {
    use crate::bake::LayerBaker;
    let started = std::time::Instant::now();
    let mut progress = crate::progress::Progress::new(quiet, verbose);
    let stacks: Vec<String> = project.stacks.keys().cloned().collect();
    if stacks.is_empty() {
        return Err(Error::user("no stacks to bake")
            .with_hint("add a stack file under images/stacks/ (see images/stacks/web.yml)"));
    }
    let requests = stacks.iter().map(|s| PlanRequest {
        stack: s.clone(),
        promote: Vec::new(),
        target,
        source_identity: None,
    });
    let (baker, plans): (std::sync::Arc<dyn LayerBaker>, Vec<plan::Plan>) = match target {
        Target::Qemu => {
            let b = crate::bake::QemuBaker::new(project, force)?;
            let plans = requests
                .map(|r| b.plan(&r, &progress))
                .collect::<Result<_>>()?;
            (std::sync::Arc::new(b), plans)
        }
        Target::Aws => {
            let b = crate::aws::bake::AwsBaker::new(project, force, &progress)?;
            let plans = requests
                .map(|r| b.plan(&r, &mut progress))
                .collect::<Result<_>>()?;
            (std::sync::Arc::new(b), plans)
        }
    };
    progress.finish();
    let nodes = crate::pipeline::graph(&plans);
    let mut report = crate::pipeline::run(
        baker,
        nodes,
        &crate::pipeline::AllOptions {
            target,
            jobs,
            force,
            quiet,
            verbose,
        },
        &crate::progress::Progress::lines(quiet, verbose),
    )?;
    // the whole command, planning (base disks, source AMIs, cache lookups) included
    report.duration_s = crate::bake::round(started.elapsed().as_secs_f64());
    Ok(report)
}

/// A request whose source identity is the one a bake would use, when it can be known without
/// building anything (the cached base disk's recipe), so `plan`, `render` and `userdata`
/// show the same hashes and user-data as `bake` and `launch`.
fn resolved_request(project: &Project, s: &StackArgs) -> PlanRequest {
    let mut req = request(s);
    if s.target == Target::Qemu {
        if let Some(image) = project
            .stacks
            .get(&s.stack)
            .and_then(|st| project.images.get(&st.def.image))
        {
            req.source_identity = crate::qemu::peek_identity(project, image);
            if req.source_identity.is_none() && image.def.sources.qemu.is_some() {
                eprintln!("note: the base disk image is not built yet; layer hashes change once it is (make base-image)");
            }
        }
    }
    req
}

/// The project's inputs, where no output may land: a file there would change a role's hash,
/// or be read as an image, stack or template.
fn project_inputs(project: &Project) -> Vec<PathBuf> {
    ["roles", "images", "packer"]
        .iter()
        .map(|d| project.root.join(d))
        .collect()
}

fn request(s: &StackArgs) -> PlanRequest {
    PlanRequest {
        stack: s.stack.clone(),
        promote: s.promote.clone(),
        target: s.target,
        source_identity: None,
    }
}

/// Data on stdout: pretty JSON and a newline.
fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> Result<()> {
    match serde_json::to_writer_pretty(&mut *out, value) {
        // a reader that stopped early (`| head`) is not an error, as for the text outputs
        Err(e) if e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe) => return Ok(()),
        Err(e) => return Err(Error::Internal(e.to_string())),
        Ok(()) => {}
    }
    writeln!(out).ok();
    Ok(())
}
