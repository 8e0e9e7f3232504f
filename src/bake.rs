//! run: bake a stack's layers on the local VM target with real Packer (qemu builder) and real
//! Ansible. A layer whose hash is in the store is a cache hit: no Packer runs.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::config::Project;
use crate::error::{Error, Result};
use crate::events::Timings;
use crate::packer_output::{Line, Output};
use crate::packer_version::Version;
use crate::plan::{self, Layer, Plan, PlanRequest, Target};
use crate::process::Cmd;
use crate::progress::Progress;
use crate::qemu;
use crate::render::{self, RenderOptions};
use crate::store::{now_epoch, LayerRecord, Store};
use crate::tools::Tools;
use crate::write::write_tree;

#[derive(Debug, Clone, Serialize)]
pub struct LayerResult {
    pub index: u8,
    pub name: String,
    pub hash: String,
    /// `baked` or `cached`.
    pub outcome: String,
    pub duration_s: f64,
    /// The layer disk in the store (qemu) or the AMI id (aws).
    pub image: String,
    pub roles: Vec<crate::events::RoleTiming>,
    pub log: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BakeReport {
    pub stack: String,
    pub target: Target,
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
    /// The inputs of the newest earlier bake of a layer with the same name, if known.
    fn previous_inputs(&self, plan: &Plan, layer: &Layer) -> Option<crate::plan::Inputs>;
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
        progress.line(&format!("{label}: cached{}, no Packer run", as_ami(&hit)));
        return Ok(Err(hit));
    }
    let lock = store.lock_layer(&layer.hash)?;
    if let Some(hit) = baker.cached(plan, layer)? {
        progress.line(&format!(
            "{label}: cached{} (baked by another run meanwhile)",
            as_ami(&hit)
        ));
        return Ok(Err(hit));
    }
    Ok(Ok(lock))
}

/// " as ami-…" for an AMI; nothing for a disk in the store.
pub(crate) fn as_ami(hit: &LayerResult) -> String {
    if hit.image.starts_with("ami-") {
        format!(" as {}", hit.image)
    } else {
        String::new()
    }
}

/// Bakes on the local VM target; one per run, shared by concurrent layer bakes.
pub struct QemuBaker {
    project: Project,
    store: Store,
    tools: Tools,
    force: bool,
    bases: std::sync::Mutex<std::collections::BTreeMap<String, qemu::BaseDisk>>,
    accel: std::sync::Mutex<Option<String>>,
}

impl QemuBaker {
    pub fn new(project: &Project, force: bool) -> Result<QemuBaker> {
        let store = Store::for_project(&project.root);
        store.ensure_dirs()?;
        Ok(QemuBaker {
            tools: Tools::locate(&project.root),
            project: project.clone(),
            store,
            force,
            bases: Default::default(),
            accel: Default::default(),
        })
    }

    /// The plan for a stack with the real base-disk identity, building the base disk if needed.
    pub fn plan(&self, req: &PlanRequest, progress: &Progress) -> Result<Plan> {
        let stack = self.project.stack(&req.stack)?;
        let image = self.project.image(&stack.def.image)?;
        let base = {
            let mut bases = self.bases.lock().expect("bases");
            match bases.get(&image.name) {
                Some(b) => b.clone(),
                None => {
                    let b = qemu::base_disk(&self.project, image, |l| progress.raw(l))?;
                    bases.insert(image.name.clone(), b.clone());
                    b
                }
            }
        };
        Ok(plan::plan(
            &self.project,
            &PlanRequest {
                source_identity: Some(base.identity.clone()),
                ..req.clone()
            },
        )?)
    }

    fn accelerator(&self, base: &qemu::BaseDisk, progress: &Progress) -> String {
        let mut accel = self.accel.lock().expect("accel");
        if let Some(a) = accel.as_ref() {
            return a.clone();
        }
        let (a, why) = qemu::accelerator(&self.store.root, &base.kernel, &base.initrd);
        progress.line(&format!("accelerator: {why}"));
        accel.insert(a).clone()
    }
}

impl LayerBaker for QemuBaker {
    fn cached(&self, _plan: &Plan, layer: &Layer) -> Result<Option<LayerResult>> {
        if self.force {
            return Ok(None);
        }
        Ok(self
            .store
            .layer(&layer.hash)
            .map(|r| cached(&self.store, &r)))
    }

    fn previous_inputs(&self, _plan: &Plan, layer: &Layer) -> Option<crate::plan::Inputs> {
        self.store.latest_named(&layer.name).map(|r| r.inputs)
    }

    fn bake(
        &self,
        plan: &Plan,
        layer: &Layer,
        _parent: Option<&LayerResult>,
        progress: &mut Progress,
    ) -> Result<LayerResult> {
        let label = layer_label(layer);
        let _lock = match lock_unless_cached(self, &self.store, plan, layer, progress)? {
            Ok(lock) => lock,
            Err(hit) => return Ok(hit),
        };
        let base = self
            .bases
            .lock()
            .expect("bases")
            .get(&plan.image)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("no base disk resolved for {}", plan.image)))?;
        let accel = self.accelerator(&base, progress);
        bake_layer(
            &self.project,
            plan,
            layer,
            &base,
            &accel,
            &self.store,
            &self.tools,
            progress,
            &label,
            self.force,
        )
    }

    fn what(&self) -> String {
        self.accel
            .lock()
            .expect("accel")
            .clone()
            .unwrap_or_else(|| "none (all cached)".into())
    }
}

pub fn bake_qemu(project: &Project, req: &PlanRequest, opts: &BakeOptions) -> Result<BakeReport> {
    let started = Instant::now();
    let mut progress = Progress::new(opts.quiet, opts.verbose);
    progress.step(
        "base image",
        "resolving (builds it from Debian's packages the first time)",
    );
    let baker = QemuBaker::new(project, opts.force)?;
    let plan = baker.plan(req, &progress)?;
    bake_plan(&baker, &plan, started, &mut progress)
}

/// `bake STACK` on any target: the plan's layers in order, each given its parent's result.
pub(crate) fn bake_plan(
    baker: &dyn LayerBaker,
    plan: &Plan,
    started: Instant,
    progress: &mut Progress,
) -> Result<BakeReport> {
    let mut layers: Vec<LayerResult> = Vec::new();
    for layer in &plan.layers {
        let result = baker.bake(plan, layer, layers.last(), progress)?;
        layers.push(result);
    }
    progress.finish();
    Ok(BakeReport {
        stack: plan.stack.clone(),
        target: plan.target,
        accelerator: baker.what(),
        layers,
        duration_s: round(started.elapsed().as_secs_f64()),
    })
}

pub(crate) fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(crate) fn cached(store: &Store, rec: &LayerRecord) -> LayerResult {
    LayerResult {
        index: rec.index,
        name: rec.name.clone(),
        hash: rec.hash.clone(),
        outcome: "cached".into(),
        duration_s: 0.0,
        image: store
            .layer_dir(&rec.hash)
            .join("disk.qcow2")
            .display()
            .to_string(),
        roles: rec.roles.clone(),
        log: Some(store.layer_dir(&rec.hash).join("bake.log")),
    }
}

#[allow(clippy::too_many_arguments)]
fn bake_layer(
    project: &Project,
    plan: &Plan,
    layer: &Layer,
    base: &qemu::BaseDisk,
    accel: &str,
    store: &Store,
    tools: &Tools,
    progress: &mut Progress,
    label: &str,
    force: bool,
) -> Result<LayerResult> {
    let started = Instant::now();
    // removed when this function returns, on success, failure or Ctrl-C
    let build = tempfile::Builder::new()
        .prefix(&format!("{}-", layer.short_hash()))
        .tempdir_in(store.builds())
        .map_err(|e| Error::io("create a build directory in", store.builds(), e))?;
    let dir = build.path();
    std::fs::create_dir_all(dir.join("ssh")).map_err(|e| Error::io("create", dir, e))?;
    let public = crate::process::ssh_keygen(&dir.join("ssh/id_ed25519"), "parbake-bake")?;
    let packer = tools.packer_version()?;
    let opts = RenderOptions {
        modern_packer: packer.needs_init(),
        store_dir: store.images().display().to_string(),
        base_disk: base.disk.display().to_string(),
        kernel: base.kernel.display().to_string(),
        initrd: base.initrd.display().to_string(),
        accelerator: accel.to_string(),
        ssh_public_key: public.trim().to_string(),
        ssh_private_key_file: "ssh/id_ed25519".into(),
        ..RenderOptions::default()
    };
    let (timings, log_path) = packer_build(
        project,
        plan,
        layer,
        &opts,
        &PackerRun {
            dir,
            tools,
            packer,
            store,
            label,
            only: None,
            what: accel,
            extra_args: Vec::new(),
        },
        progress,
    )?;
    // commit: disk, manifest, record and log, moved into the store in one rename
    let result = dir.join("result");
    std::fs::create_dir_all(&result).map_err(|e| Error::io("create", &result, e))?;
    let disk = dir.join("output/disk.qcow2");
    std::fs::rename(&disk, result.join("disk.qcow2"))
        .map_err(|e| Error::io("move the baked disk", &disk, e))?;
    std::fs::copy(
        dir.join("payload/manifest.json"),
        result.join("manifest.json"),
    )
    .map_err(|e| Error::io("copy the manifest", dir.join("payload/manifest.json"), e))?;
    std::fs::copy(&log_path, result.join("bake.log"))
        .map_err(|e| Error::io("copy", &log_path, e))?;
    let duration = round(started.elapsed().as_secs_f64());
    let record = LayerRecord {
        format: 1,
        parbake_version: plan.parbake_version.clone(),
        target: "qemu".into(),
        image: plan.image.clone(),
        stack: (layer.index == 2).then(|| plan.stack.clone()),
        index: layer.index,
        name: layer.name.clone(),
        hash: layer.hash.clone(),
        parent: layer.parent.clone(),
        runs: layer.runs.clone(),
        baked: layer.baked.clone(),
        kernel: base.kernel.clone(),
        initrd: base.initrd.clone(),
        accelerator: accel.to_string(),
        created_at: now_epoch(),
        bake_duration_s: duration,
        roles: timings.roles.clone(),
        inputs: layer.inputs.clone(),
    };
    crate::write::write_file(
        &result.join("record.json"),
        (serde_json::to_string_pretty(&record).expect("record") + "\n").as_bytes(),
    )?;
    let dest = store.commit(&result, &layer.hash, force)?;
    record_bake(store, plan, layer, accel, duration, &timings.roles);
    let per_role: Vec<String> = timings
        .roles
        .iter()
        .map(|r| format!("{} {:.1}s", r.role, r.duration_s))
        .collect();
    progress.line(&format!(
        "{label}: baked in {duration:.1}s{}",
        if per_role.is_empty() {
            String::new()
        } else {
            format!(" ({})", per_role.join(", "))
        }
    ));
    Ok(LayerResult {
        index: layer.index,
        name: layer.name.clone(),
        hash: layer.hash.clone(),
        outcome: "baked".into(),
        duration_s: duration,
        image: dest.join("disk.qcow2").display().to_string(),
        roles: timings.roles,
        log: Some(dest.join("bake.log")),
    })
}

/// Adds a finished bake to the timing ledger. A ledger that cannot be written costs the
/// estimates one data point, not the bake: it is reported and the bake stands.
pub(crate) fn record_bake(
    store: &Store,
    plan: &Plan,
    layer: &Layer,
    accelerator: &str,
    duration: f64,
    roles: &[crate::events::RoleTiming],
) {
    let entry = crate::ledger::Entry {
        at: now_epoch(),
        kind: crate::ledger::Kind::Bake,
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
    };
    if let Err(e) = crate::ledger::Ledger::in_store(&store.root).append(&entry) {
        eprintln!("warning: the timing ledger was not updated: {e}");
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
    let PackerRun {
        dir,
        tools,
        packer,
        store,
        label,
        only,
        what,
        ..
    } = *run;
    write_tree(dir, &render::render_layer(project, plan, layer, opts))?;
    for name in plan.installed.keys() {
        let role = project.roles.get(name).ok_or_else(|| {
            Error::Internal(format!(
                "the plan installs role `{name}`, which was not loaded"
            ))
        })?;
        role.copy_to(&dir.join("payload/all-roles").join(name))?;
    }
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let log_path = dir.join("bake.log");
    let mut log =
        std::fs::File::create(&log_path).map_err(|e| Error::io("create", &log_path, e))?;
    let _ = writeln!(log, "{}", packer.describe());
    if opts.modern_packer {
        progress.step(label, "installing the Packer plugins (packer init)");
        let init = tools.packer_init(dir, packer, |line| {
            let _ = writeln!(log, "{line}");
            progress.raw(line);
        });
        if let Err(e) = init {
            drop(log);
            let kept = keep_log(store, layer, &log_path);
            return Err(e.with_hint(format!("the full output is in {}", kept.display())));
        }
    }
    let mut args = vec!["build".to_string(), "-machine-readable".to_string()];
    if let Some(only) = only {
        args.push(format!("-only={only}"));
    }
    args.extend(run.extra_args.iter().cloned());
    args.extend([
        "-var-file=parbake.pkrvars.json".to_string(),
        ".".to_string(),
    ]);
    let cmd = Cmd::new(format!("bake {label} with Packer"), &tools.packer)
        .args(args)
        .env("TMPDIR", &tmp)
        .env("PACKER_CACHE_DIR", dir.join("packer_cache"))
        .env("PACKER_NO_COLOR", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .cwd(dir);
    progress.line(&format!(
        "{label}: baking {} with Packer ({what})",
        if layer.runs.is_empty() {
            "no roles".to_string()
        } else {
            layer.runs.join(", ")
        }
    ));
    let mut timings = Timings::default();
    let mut ui_tail: Vec<String> = Vec::new();
    let out = cmd.run_streaming(|_, raw| {
        let _ = writeln!(log, "{raw}");
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
                    timings.push(&ev);
                    if let Some((role, task)) = &timings.current {
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
            ui_tail.push(text);
            if ui_tail.len() > 40 {
                ui_tail.remove(0);
            }
        }
    })?;
    drop(log);
    if crate::interrupt::interrupted() {
        return Err(Error::Interrupted);
    }
    if !out.success() {
        let kept = keep_log(store, layer, &log_path);
        let failed_role = timings.roles.iter().find(|r| r.failed.is_some());
        let mut err = cmd.failed(
            &crate::process::Output {
                code: out.code,
                lines: ui_tail,
            },
            Some(kept),
        );
        if let (Some(r), crate::process::ProcessError::Failed { purpose, .. }) =
            (failed_role, &mut err)
        {
            purpose.push_str(&format!(
                ": role `{}` failed at {}",
                r.role,
                r.failed.as_deref().unwrap_or("")
            ));
        }
        return Err(err.into());
    }
    Ok((timings, log_path))
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
