//! What the bakes of both targets share: the `LayerBaker` each target implements, a layer's
//! result, `bake STACK` over a plan's layers, the Packer run with its progress and log, and the
//! ledger record. `all` schedules `bake --all`; `packer_output` reads Packer's machine-readable
//! lines. A layer whose hash is already baked is a cache hit: no Packer runs.

pub mod all;
pub mod layer;
pub mod packer_output;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::bake::packer_output::{Line, Output};
use crate::config::Project;
use crate::contract::events::Timings;
use crate::error::{Error, Result};
use crate::packer_version::Version;
use crate::plan::{Layer, Plan, Target};
use crate::process::Cmd;
use crate::progress::Progress;
use crate::render::{self, RenderOptions};
use crate::store::{now_epoch, Store};
use crate::tools::Tools;
use crate::write::write_tree;

/// What happened to a layer in a bake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Baked,
    /// Its roles' run was cached (same run hash) but the payload changed: a payload refresh
    /// of the cached run layer, with no role run.
    Refreshed,
    Cached,
    Failed,
    Skipped,
    /// `bake --all --dry-run`: would be baked.
    #[serde(rename = "to-bake")]
    ToBake,
    /// `bake --all --dry-run`: would be refreshed.
    #[serde(rename = "to-refresh")]
    ToRefresh,
}

impl Outcome {
    /// What a Packer build of a layer is: a refresh of a cached run layer, or a bake.
    pub fn of_build(refresh: bool) -> Outcome {
        if refresh {
            Outcome::Refreshed
        } else {
            Outcome::Baked
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Outcome::Baked => "baked",
            Outcome::Refreshed => "refreshed",
            Outcome::Cached => "cached",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::ToBake => "to-bake",
            Outcome::ToRefresh => "to-refresh",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerResult {
    pub index: u8,
    pub name: String,
    pub hash: String,
    /// The layer hash of the image that ran this layer's roles: its own for a bake, the run
    /// layer's for a refresh. A stack layer is built on its parent's run layer.
    pub run_layer: String,
    /// `Baked`, `Refreshed` or `Cached` for a layer that is there; `bake --all` reports the
    /// others.
    pub outcome: Outcome,
    pub duration_s: f64,
    /// The layer disk in the store (qemu) or the AMI id (aws).
    pub image: String,
    pub roles: Vec<crate::contract::events::RoleTiming>,
    pub log: Option<PathBuf>,
    /// On aws, the copies `distribute:` keeps of the AMI in other regions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<RegionCopy>,
}

/// A copy of a layer's image in another region (aws `distribute.regions`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RegionCopy {
    pub region: String,
    pub image: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BakeReport {
    pub stack: String,
    pub target: Target,
    /// On aws, the architecture the layers were baked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub accelerator: String,
    pub layers: Vec<LayerResult>,
    pub duration_s: f64,
}

pub struct BakeOptions {
    pub force: bool,
    pub quiet: bool,
    pub verbose: bool,
}

/// One target's way to bake a single layer. `bake STACK` walks a plan's layers with it;
/// `bake --all` schedules the layers of every stack with it, concurrently.
pub trait LayerBaker: Send + Sync {
    /// The layer's result if it is already baked (no Packer), unless the bake is forced.
    fn cached(&self, plan: &Plan, layer: &Layer) -> Result<Option<LayerResult>>;
    /// The newest image that ran this layer's roles with its run hash, whichever payload it
    /// carries (None when forced): a `bake` of the layer is then a payload refresh of it. A
    /// target without refreshes bakes every layer whose hash changed.
    fn run_layer(&self, _plan: &Plan, _layer: &Layer) -> Result<Option<LayerResult>> {
        Ok(None)
    }
    /// The inputs of the newest earlier bake of a layer with the same name, if known.
    fn previous_inputs(&self, plan: &Plan, layer: &Layer) -> Option<crate::plan::Inputs>;
    /// The inputs recorded with a layer already there (for what a refresh changes).
    fn inputs_of(&self, _plan: &Plan, _layer: &LayerResult) -> Option<crate::plan::Inputs> {
        None
    }
    /// Bakes the layer (taking its lock, then checking the cache again); `parent` is the
    /// parent layer's result for a stack layer.
    fn bake(
        &self,
        plan: &Plan,
        layer: &Layer,
        parent: Option<&LayerResult>,
        progress: &mut Progress,
    ) -> Result<LayerResult>;
    /// What the bakes ran on (the accelerator, or the region), for reports.
    fn what(&self) -> String;
}

pub fn layer_label(layer: &Layer) -> String {
    format!(
        "layer {} {} ({})",
        layer.index,
        layer.name,
        layer.short_hash()
    )
}

/// The cache check, this machine's lock on the layer, and the check again under the lock
/// (another run may have baked it while this one waited): the lock, or the cached result.
pub(crate) fn lock_unless_cached(
    baker: &dyn LayerBaker,
    store: &Store,
    plan: &Plan,
    layer: &Layer,
    progress: &Progress,
) -> Result<std::result::Result<std::fs::File, LayerResult>> {
    let label = layer_label(layer);
    if let Some(hit) = baker.cached(plan, layer)? {
        progress.line(&cached_line(layer, &hit));
        return Ok(Err(hit));
    }
    let lock = store.lock_layer_then(&layer.hash, |waiting| progress.line(waiting))?;
    if let Some(hit) = baker.cached(plan, layer)? {
        progress.line(&format!(
            "{label}: cached{} (baked by another run meanwhile)",
            as_ami(&hit)
        ));
        return Ok(Err(hit));
    }
    Ok(Ok(lock))
}

/// What a cache hit says: no Packer runs for it.
fn cached_line(layer: &Layer, hit: &LayerResult) -> String {
    format!(
        "{}: cached{}, no Packer run",
        layer_label(layer),
        as_ami(hit)
    )
}

/// " as ami-…" for an AMI; nothing for a disk in the store.
pub(crate) fn as_ami(hit: &LayerResult) -> String {
    if hit.image.starts_with("ami-") {
        format!(" as {}", hit.image)
    } else {
        String::new()
    }
}

/// `bake STACK` on any target: the plan's layers in order, each given its parent's result.
pub(crate) fn bake_plan(
    baker: &dyn LayerBaker,
    plan: &Plan,
    started: Instant,
    progress: &mut Progress,
) -> Result<BakeReport> {
    let mut layers: Vec<LayerResult> = Vec::new();
    for (i, layer) in plan.layers.iter().enumerate() {
        // a layer under the top is only built on: its cached run layer will do
        let under_top = i + 1 < plan.layers.len();
        if under_top {
            // one cache lookup (an EC2 call on aws): a hit is taken here, not looked up again
            if let Some(hit) = baker.cached(plan, layer)? {
                progress.line(&cached_line(layer, &hit));
                layers.push(hit);
                continue;
            }
            if let Some(run) = baker.run_layer(plan, layer)? {
                progress.line(&format!(
                    "{}: {}",
                    layer_label(layer),
                    all::not_refreshed(&run)
                ));
                layers.push(run);
                continue;
            }
        }
        let result = baker.bake(plan, layer, layers.last(), progress)?;
        layers.push(result);
    }
    progress.finish();
    Ok(BakeReport {
        stack: plan.stack.clone(),
        target: plan.target,
        arch: plan.arch.clone(),
        accelerator: baker.what(),
        layers,
        duration_s: round(started.elapsed().as_secs_f64()),
    })
}

pub(crate) fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Adds a finished bake to the timing ledger. A ledger that cannot be written costs the
/// estimates one data point, not the bake: it is reported and the bake stands.
pub(crate) fn record_bake(
    store: &Store,
    outcome: Outcome,
    plan: &Plan,
    layer: &Layer,
    accelerator: &str,
    duration: f64,
    roles: &[crate::contract::events::RoleTiming],
) {
    let entry = crate::ledger::Entry {
        at: now_epoch(),
        kind: match outcome {
            Outcome::Refreshed => crate::ledger::Kind::Refresh,
            _ => crate::ledger::Kind::Bake,
        },
        target: plan.target.to_string(),
        image: plan.image.clone(),
        stack: (layer.index == 2).then(|| plan.stack.clone()),
        layer: layer.name.clone(),
        layer_hash: layer.hash.clone(),
        accelerator: accelerator.to_string(),
        total_s: duration,
        roles: roles
            .iter()
            .map(|r| crate::ledger::RoleTime {
                role: r.role.clone(),
                seconds: r.duration_s,
                ok: r.failed.is_none(),
            })
            .collect(),
        no_roles: false,
        ok: true,
        timing: None,
    };
    if let Err(e) = crate::ledger::Ledger::in_store(&store.root).append(&entry) {
        crate::printer::stderr::warning(format!("the timing ledger was not updated: {e}"));
    }
}

/// Where and how one Packer build runs.
pub(crate) struct PackerRun<'a> {
    pub dir: &'a std::path::Path,
    pub tools: &'a Tools,
    /// The installed Packer's version: 1.7+ gets `packer init` first.
    pub packer: Version,
    pub store: &'a Store,
    pub label: &'a str,
    /// `-only=` source (the aws target picks the provisioned or the test-only source).
    pub only: Option<&'a str>,
    /// Shown in progress: the accelerator, or the region.
    pub what: &'a str,
    /// More `packer build` arguments (test-only switches).
    pub extra_args: Vec<String>,
}

/// Renders a layer's Packer inputs into `run.dir`, copies the roles into the payload, and runs
/// `packer build -machine-readable`, streaming progress and the log. Returns the per-role
/// timings and the log path; fails with the output tail (and the failing role) or on Ctrl-C.
pub(crate) fn packer_build(
    project: &Project,
    plan: &Plan,
    layer: &Layer,
    opts: &RenderOptions,
    run: &PackerRun<'_>,
    progress: &mut Progress,
) -> Result<(Timings, PathBuf)> {
    let (dir, label) = (run.dir, run.label);
    write_build_dir(project, plan, layer, opts, dir)?;
    let log_path = dir.join("bake.log");
    let mut log =
        std::fs::File::create(&log_path).map_err(|e| Error::io("create", &log_path, e))?;
    let _ = writeln!(log, "{}", run.packer.describe());
    if opts.modern_packer {
        progress.step(label, "installing the Packer plugins (packer init)");
        let init = run.tools.packer_init(dir, run.packer, |line| {
            let _ = writeln!(log, "{line}");
            progress.raw(line);
        });
        if let Err(e) = init {
            drop(log);
            let kept = keep_log(run.store, layer, &log_path);
            return Err(e.with_hint(format!("the full output is in {}", kept.display())));
        }
    }
    // Packer's plugins listen on Unix sockets in TMPDIR, and a socket path holds at most 107
    // bytes: a temp dir inside a build directory of a deep store breaks every build
    let tmp = crate::write::private_temp("parbake-packer-")
        .tempdir()
        .map_err(|e| Error::io("create a temp dir in", std::env::temp_dir(), e))?;
    let cmd = packer_command(run, tmp.path());
    progress.line(&format!(
        "{label}: {} with Packer ({})",
        if opts.refresh {
            "refreshing the payload (no role runs)".to_string()
        } else if layer.runs.is_empty() {
            "baking no roles".to_string()
        } else {
            format!("baking {}", layer.runs.join(", "))
        },
        run.what
    ));
    let mut watch = BuildWatch::default();
    let out = cmd.run_streaming(|raw| {
        let _ = writeln!(log, "{raw}");
        watch.line(raw, label, progress);
    })?;
    drop(log);
    if crate::interrupt::interrupted() {
        return Err(Error::Interrupted);
    }
    if !out.success() {
        let kept = keep_log(run.store, layer, &log_path);
        return Err(build_failed(&cmd, out.code, watch, kept));
    }
    Ok((watch.timings, log_path))
}

/// The layer's rendered files and a copy of every installed role (exactly what was hashed)
/// in the build directory, and its own temp dir.
fn write_build_dir(
    project: &Project,
    plan: &Plan,
    layer: &Layer,
    opts: &RenderOptions,
    dir: &std::path::Path,
) -> Result<()> {
    write_tree(dir, &render::render_layer(project, plan, layer, opts))?;
    for name in plan.installed.keys() {
        let role = project.roles.get(name).ok_or_else(|| {
            Error::Internal(format!(
                "the plan installs role `{name}`, which was not loaded"
            ))
        })?;
        role.copy_to(&dir.join("payload/all-roles").join(name))?;
    }
    if !plan.collections.is_empty() {
        pack_collections(project, &dir.join("payload/collections.tar.gz"))?;
    }
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("create", &tmp, e))
}

/// The vendored collections as one archive for the base layer's payload (one upload, not
/// thousands of files), after every byte of them is checked against the lock: the image gets
/// what the layer hash covers.
fn pack_collections(project: &Project, to: &std::path::Path) -> Result<()> {
    let vendored = crate::vendoring::Vendored::verify(&project.root)?
        .ok_or_else(|| Error::Internal("collections planned without requirements.yml".into()))?;
    // exactly the files the lock hashes (not all of vendor/collections)
    Ok(vendored.pack_collections(to)?)
}

/// `packer build -machine-readable` in the build directory, with its cache kept there and its
/// temp files in `tmp` (short: plugin sockets live there).
fn packer_command(run: &PackerRun<'_>, tmp: &std::path::Path) -> Cmd {
    let mut args = vec!["build".to_string(), "-machine-readable".to_string()];
    if let Some(only) = run.only {
        args.push(format!("-only={only}"));
    }
    args.extend(run.extra_args.iter().cloned());
    args.extend([
        "-var-file=parbake.pkrvars.json".to_string(),
        ".".to_string(),
    ]);
    Cmd::new(format!("bake {} with Packer", run.label), &run.tools.packer)
        .args(args)
        .env("TMPDIR", tmp)
        .env("PACKER_CACHE_DIR", run.dir.join("packer_cache"))
        .env("PACKER_NO_COLOR", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .cwd(run.dir)
}

/// What a running build's output says: role timings from the events, progress steps, and
/// the last lines of Packer's own output for an error.
#[derive(Default)]
struct BuildWatch {
    timings: Timings,
    ui_tail: Vec<String>,
}

impl BuildWatch {
    fn line(&mut self, raw: &str, label: &str, progress: &mut Progress) {
        let Some(line) = Line::parse(raw) else {
            progress.raw(raw);
            return;
        };
        if let Some((_, text)) = line.ui() {
            progress.raw(text);
        }
        for output in line.outputs() {
            let text = match output {
                Output::Event(ev) => {
                    self.timings.push(&ev);
                    if let Some((role, task)) = &self.timings.current {
                        progress.step(
                            label,
                            &format!("role {} | {task}", role.as_deref().unwrap_or("parbake")),
                        );
                    }
                    continue;
                }
                Output::Step(msg) => {
                    progress.step(label, &msg);
                    msg
                }
                Output::Provisioner(t) | Output::Error(t) | Output::Note(t) => t,
                Output::Artifact(_) => continue,
            };
            self.ui_tail.push(text);
            if self.ui_tail.len() > 40 {
                self.ui_tail.remove(0);
            }
        }
    }
}

/// A failed build: the output tail, the kept log, and the role that failed if one did.
fn build_failed(cmd: &Cmd, code: Option<i32>, watch: BuildWatch, kept: PathBuf) -> Error {
    let failed_role = watch.timings.roles.iter().find(|r| r.failed.is_some());
    let mut err = cmd.failed(
        &crate::process::Output {
            code,
            lines: watch.ui_tail.clone(),
        },
        Some(kept),
    );
    if let (Some(r), crate::process::ProcessError::Failed { purpose, .. }) = (failed_role, &mut err)
    {
        purpose.push_str(&format!(
            ": role `{}` failed at {}",
            r.role,
            r.failed.as_deref().unwrap_or("")
        ));
    }
    err.into()
}

/// Copies a failed bake's log out of its build directory, which is removed, into the store's
/// logs; returns where it went.
fn keep_log(store: &Store, layer: &Layer, log: &std::path::Path) -> PathBuf {
    let kept = store
        .logs()
        .join(format!("bake-{}-{}.log", layer.short_hash(), now_epoch()));
    let _ = std::fs::copy(log, &kept);
    kept
}
