//! `parbake bake STACK [--promote ROLE]` and `parbake bake --all`: the layers a stack needs
//! (or every stack's changed layers), on the local VM or EC2.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use super::Ctx;
use crate::bake::all::{AllOptions, AllReport, Node, StackVerdict};
use crate::bake::LayerBaker;
use crate::bake::Outcome;
use crate::bake::{BakeOptions, BakeReport};
use crate::error::{Error, Result};
use crate::plan::{PlanRequest, Target};
use crate::targets::backend;
use crate::targets::interface::{Preflight, VerifyRequest};
use crate::targets::launch::ContainerNet;

#[derive(Debug, clap::Args)]
pub struct BakeArgs {
    /// The stack, by file name under images/stacks/ (not with --all).
    #[arg(required_unless_present_any = ["all", "layer"], conflicts_with_all = ["all", "layer"])]
    pub stack: Option<String>,
    /// Bake this role (and its dependencies) into the stack layer instead of running it at launch.
    #[arg(long = "promote", value_name = "ROLE", conflicts_with = "all")]
    pub promote: Vec<String>,
    /// Where images are baked: the local VM (qemu) or EC2 (aws).
    #[arg(long, default_value = "qemu", value_parser = super::target_parser())]
    pub target: Target,
    /// Every image and stack (each stack with its file's `promote:` list); only layers whose
    /// hash changed are baked, parents first; a failed layer's children are skipped.
    #[arg(long)]
    pub all: bool,
    /// With --all: at most this many bakes at once.
    #[arg(short = 'j', long = "jobs", default_value_t = 2, requires = "all")]
    pub jobs: usize,
    /// Rebake even when the store has a layer with the same hash.
    #[arg(long)]
    pub force: bool,
    /// With --all: then verify every stack whose top image baked in this run (as `parbake
    /// verify`); a failed verification fails the run like a failed layer.
    #[arg(long, requires = "all")]
    pub verify: bool,
    /// With --verify (local target): boot each verification natively in systemd-nspawn, as
    /// `verify --container` does, in seconds instead of a VM's minutes.
    #[arg(long, requires = "verify")]
    pub container: bool,
    /// With --all: say per layer what would be baked or is cached, and why (with --verify,
    /// which stacks would be verified), then stop: nothing is built, baked or launched.
    #[arg(long, requires = "all")]
    pub dry_run: bool,
    /// With --all: write the layer DAG as ENGINE's pipeline on stdout (one job per layer
    /// running `bake --layer HASH`, then each stack's verify and publish); nothing is baked.
    #[arg(long, value_name = "ENGINE", value_enum, requires = "all", conflicts_with_all = ["verify", "dry_run", "force"])]
    pub emit: Option<crate::emit::Engine>,
    /// On aws, one architecture of an image that bakes several (`x86_64`, `arm64`); without
    /// it, each in turn. Not with --all, which bakes every architecture.
    #[arg(long, value_name = "ARCH", value_parser = super::arch_parser(), conflicts_with_all = ["all", "layer"])]
    pub arch: Option<String>,
    /// Bake exactly this planned layer of `bake --all`'s plan (its full hash, or 12 or more of
    /// its first digits) once its parent is baked; the job an emitted pipeline runs.
    #[arg(long, value_name = "HASH", conflicts_with_all = ["all", "promote", "force"])]
    pub layer: Option<String>,
}

pub fn run(ctx: &Ctx, args: BakeArgs) -> Result<()> {
    if let Some(engine) = args.emit {
        return run_emit(ctx, &args, engine);
    }
    if !args.dry_run {
        super::doctor::preflight(ctx.root(), args.target, Preflight::Bake)?;
    }
    crate::targets::interface::refuse_flag(
        args.container && args.target != Target::Qemu,
        "--container",
        args.target,
        "on aws, --verify launches an instance; drop --container",
    )?;
    if args.all {
        return run_all(ctx, &args);
    }
    if let Some(hash) = &args.layer {
        return run_layer(ctx, &args, hash);
    }
    let req = PlanRequest {
        stack: args.stack.clone().unwrap_or_default(),
        promote: args.promote.clone(),
        target: args.target,
        source_identity: None,
    };
    let opts = BakeOptions {
        force: args.force,
        quiet: ctx.printer.quiet,
        verbose: ctx.printer.verbose,
    };
    // each architecture the stack's image bakes, in turn
    let mut reports = Vec::new();
    for arch in super::arches_of(ctx, &req.stack, req.target, args.arch.as_deref())? {
        let ctx = ctx.for_arch(arch.as_deref());
        reports.push(backend(req.target).bake(&ctx.project, &req, &opts)?);
    }
    ctx.printer.data_each(&reports, bake_summary)
}

/// `bake --all`: the summary is printed whatever happened (pipelines read it), then the exit
/// status says whether every layer is baked.
fn run_all(ctx: &Ctx, args: &BakeArgs) -> Result<()> {
    let mut report = bake_all(ctx, args)?;
    if args.dry_run {
        if args.verify {
            report.verified = would_verify(ctx, &report);
        }
        return ctx.printer.summary(&report, crate::bake::all::summary_text);
    }
    if args.verify && !crate::interrupt::interrupted() {
        report.verified = verify_baked(ctx, args, &report)?;
    }
    ctx.printer
        .summary(&report, crate::bake::all::summary_text)?;
    if crate::interrupt::interrupted() {
        return Err(Error::Interrupted);
    }
    if !report.ok() {
        return Err(Error::Layers {
            failed: report.counts.failed,
            skipped: report.counts.skipped,
            unverified: report.verify_failed(),
        });
    }
    Ok(())
}

/// `--verify --dry-run`: each stack whose top layer would bake would then be verified.
fn would_verify(ctx: &Ctx, report: &AllReport) -> Vec<StackVerdict> {
    ctx.project
        .stacks
        .keys()
        .filter_map(|stack| {
            let top = report
                .layers
                .iter()
                .filter(|l| l.stacks.contains(stack))
                .max_by_key(|l| l.index)?;
            let why = match top.outcome {
                Outcome::ToBake => "top image would bake",
                Outcome::ToRefresh => "top image would be refreshed",
                _ => return None,
            };
            Some(StackVerdict {
                stack: stack.clone(),
                layer: top.name.clone(),
                hash: top.hash.clone(),
                outcome: "to-verify".into(),
                why: why.into(),
                boot_to_ready_s: None,
                userdata_sha256: None,
                error: None,
            })
        })
        .collect()
}

/// `--verify`: each stack whose top layer baked in this run is launched and verified, one at a
/// time, its verdict recorded as `parbake verify` records it; a stack whose layers failed or
/// were skipped is `skipped`. A launch that cannot start or never reports is a failed verdict,
/// not the end of the run.
fn verify_baked(ctx: &Ctx, args: &BakeArgs, report: &AllReport) -> Result<Vec<StackVerdict>> {
    let mut out = Vec::new();
    for stack in ctx.project.stacks.keys() {
        let Some(top) = report
            .layers
            .iter()
            .filter(|l| l.stacks.contains(stack))
            .max_by_key(|l| l.index)
        else {
            continue;
        };
        let mut v = StackVerdict {
            stack: stack.clone(),
            layer: top.name.clone(),
            hash: top.hash.clone(),
            outcome: "skipped".into(),
            why: "top image baked".into(),
            boot_to_ready_s: None,
            userdata_sha256: None,
            error: None,
        };
        match top.outcome {
            Outcome::Cached => continue,
            Outcome::Failed | Outcome::Skipped | Outcome::ToBake | Outcome::ToRefresh => {
                v.why = "its layers did not bake".into();
                out.push(v);
                continue;
            }
            Outcome::Refreshed => v.why = "top image refreshed".into(),
            Outcome::Baked => {}
        }
        if crate::interrupt::interrupted() {
            break;
        }
        let req = PlanRequest {
            stack: stack.clone(),
            promote: Vec::new(),
            target: args.target,
            source_identity: None,
        };
        if let Err(e) = verify_one(ctx, &req, args.container, &mut v) {
            v.outcome = "failed".into();
            v.error = Some(e.to_string());
        }
        out.push(v);
    }
    Ok(out)
}

/// How long a verification waits for its launch to report (a slow TCG host takes many
/// minutes for a launch that runs every role).
const VERIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1800);

/// One stack verified on its target, its verdict recorded there (the store, AMI tags).
fn verify_one(ctx: &Ctx, req: &PlanRequest, native: bool, v: &mut StackVerdict) -> Result<()> {
    let verify = VerifyRequest {
        offline: false,
        timeout: VERIFY_TIMEOUT,
        container: native.then_some(ContainerNet::Off),
    };
    let verified = backend(req.target).verify(&ctx.project, req, &verify, &ctx.printer)?;
    v.outcome = if verified.passed { "passed" } else { "failed" }.into();
    v.boot_to_ready_s = Some(verified.boot_to_ready_s);
    v.userdata_sha256 = Some(verified.userdata_sha256);
    v.error = verified.failed.map(|e| e.to_string());
    Ok(())
}

/// Plans every stack (each with its file's `promote:` list) on the target, then schedules
/// the distinct layers.
fn bake_all(ctx: &Ctx, args: &BakeArgs) -> Result<AllReport> {
    let started = Instant::now();
    let (baker, nodes) = plan_all(ctx, args.target, args.force, args.dry_run)?;
    let opts = AllOptions {
        target: args.target,
        jobs: args.jobs,
        force: args.force,
        quiet: ctx.printer.quiet,
        verbose: ctx.printer.verbose,
    };
    let mut report = if args.dry_run {
        crate::bake::all::dry_run(baker.as_ref(), &nodes, &opts, &ctx.printer.progress_lines())?
    } else {
        crate::bake::all::run(baker, nodes, &opts, &ctx.printer.progress_lines())?
    };
    // the whole command, planning (base disks, source AMIs, cache lookups) included
    report.duration_s = crate::bake::round(started.elapsed().as_secs_f64());
    Ok(report)
}

/// `bake --all`'s baker and graph: every stack planned on the target (each with its file's
/// `promote:` list), the distinct layers parents first. A dry run creates nothing.
fn plan_all(
    ctx: &Ctx,
    target: Target,
    force: bool,
    dry_run: bool,
) -> Result<(Arc<dyn LayerBaker>, Vec<Node>)> {
    let project = &ctx.project;
    let mut progress = ctx.printer.progress();
    if project.stacks.is_empty() {
        return Err(Error::user("no stacks to bake")
            .with_hint("add a stack file under images/stacks/ (see images/stacks/web.yml)"));
    }
    let requests = project
        .stacks
        .keys()
        .map(|s| PlanRequest {
            stack: s.clone(),
            promote: Vec::new(),
            target,
            source_identity: None,
        })
        .collect();
    let (baker, plans) =
        backend(target).bake_all(project, requests, force, dry_run, &mut progress)?;
    progress.finish();
    Ok((baker, crate::bake::all::graph(&plans)))
}

/// `bake --all --emit ENGINE`: the graph as the engine's pipeline on stdout. Planning reads
/// the target (EC2's source AMIs) and bakes, builds and writes nothing.
fn run_emit(ctx: &Ctx, args: &BakeArgs, engine: crate::emit::Engine) -> Result<()> {
    crate::targets::interface::refuse_flag(
        args.target == Target::Qemu,
        "--emit",
        args.target,
        "the jobs of a CI engine run on different machines, which share EC2's AMIs but not a local store: add --target aws",
    )?;
    let (_, nodes) = plan_all(ctx, args.target, false, true)?;
    let project = &ctx.project;
    let region = |image: &str| {
        let img = project.images.get(image)?;
        img.def.sources.aws.as_ref().map(|a| a.region.clone())
    };
    let publishes = |stack: &str| {
        project
            .stacks
            .get(stack)
            .is_some_and(|s| s.def.publish.is_some())
    };
    let facts = crate::emit::Facts {
        region: &region,
        publishes: &publishes,
    };
    let dag = crate::emit::Dag::from_nodes(&nodes, args.target, &facts).map_err(Error::Internal)?;
    ctx.printer
        .bytes(crate::emit::render(&dag, engine).as_bytes())
}

/// `bake --layer HASH`: one planned layer, once its parent is there; the summary as `bake
/// --all`'s, with that layer.
fn run_layer(ctx: &Ctx, args: &BakeArgs, hash: &str) -> Result<()> {
    let (baker, nodes) = plan_all(ctx, args.target, args.force, false)?;
    let i = crate::bake::layer::find(&nodes, hash, args.target)?;
    let mut progress = ctx.printer.progress();
    let report = crate::bake::layer::run(baker.as_ref(), &nodes, i, args.target, &mut progress)?;
    ctx.printer.summary(&report, crate::bake::all::summary_text)
}

pub fn bake_summary(r: &BakeReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "stack {} baked on {}{} ({}) in {:.1}s",
        r.stack,
        r.target,
        r.arch.as_ref().map(|a| format!(" {a}")).unwrap_or_default(),
        r.accelerator,
        r.duration_s
    );
    for l in &r.layers {
        let roles: Vec<String> = l
            .roles
            .iter()
            .map(|t| format!("{} {:.1}s", t.role, t.duration_s))
            .collect();
        let _ = writeln!(
            s,
            "  layer {} {:<16} {}  {:<6} {:>7.1}s  {}",
            l.index,
            l.name,
            &l.hash[..12],
            l.outcome,
            l.duration_s,
            roles.join(", ")
        );
        let _ = writeln!(s, "    image: {}", l.image);
        if !l.copies.is_empty() {
            let copies: Vec<String> = l
                .copies
                .iter()
                .map(|c| format!("{} {}", c.region, c.image))
                .collect();
            let _ = writeln!(s, "    copies: {}", copies.join(", "));
        }
        if let Some(log) = &l.log {
            let _ = writeln!(s, "    log:  {}", log.display());
        }
    }
    s
}
