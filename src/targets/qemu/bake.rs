//! The local VM target's baker: a layer is a qcow2 disk in the store, baked by Packer's qemu
//! builder on the base disk (or the parent layer's disk).

//! run: bake a stack's layers on the local VM target with real Packer (qemu builder) and real
//! Ansible. A layer whose hash is in the store is a cache hit: no Packer runs.

use std::time::Instant;

use crate::bake::{
    bake_plan, layer_label, lock_unless_cached, packer_build, record_bake, round, BakeOptions,
    BakeReport, LayerBaker, LayerResult, PackerRun,
};
use crate::config::Project;
use crate::error::{Error, Result};
use crate::plan::{Layer, Plan, PlanRequest};
use crate::progress::Progress;
use crate::render::RenderOptions;
use crate::store::{now_epoch, LayerRecord, Store};
use crate::targets::qemu;
use crate::tools::Tools;

/// Bakes on the local VM target; one per run, shared by concurrent layer bakes.
pub struct QemuBaker {
    project: Project,
    store: Store,
    tools: Tools,
    force: bool,
    bases: std::sync::Mutex<std::collections::BTreeMap<String, qemu::BaseDisk>>,
    accel: std::sync::Mutex<Option<String>>,
    /// `plan_peek`'s base-disk identities, per image.
    peeked: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
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
            peeked: Default::default(),
        })
    }

    /// A baker that only looks (`bake --all --dry-run`): the store is read, never created.
    pub fn peek(project: &Project, force: bool) -> QemuBaker {
        QemuBaker {
            tools: Tools::locate(&project.root),
            project: project.clone(),
            store: Store::for_project(&project.root),
            force,
            bases: Default::default(),
            accel: Default::default(),
            peeked: Default::default(),
        }
    }

    /// The plan for a stack on the cached base disk's identity, building nothing. When the
    /// base disk is not built yet, its layers are planned without it (their hashes change
    /// once it is built, and they are not in the store).
    pub fn plan_peek(&self, req: &PlanRequest, progress: &Progress) -> Result<Plan> {
        crate::targets::plan_for(&self.project, req, |image| {
            let mut peeked = self.peeked.lock().expect("peeked");
            if let Some(id) = peeked.get(&image.name) {
                return Ok(id.clone());
            }
            let id = qemu::peek_identity(image).unwrap_or_else(|| {
                progress.line(&format!(
                    "note: image {}'s base disk is not built yet: a bake builds it first",
                    image.name
                ));
                "base disk not built yet".to_string()
            });
            peeked.insert(image.name.clone(), id.clone());
            Ok(id)
        })
    }

    /// The plan for a stack with the real base-disk identity, building the base disk if needed.
    pub fn plan(&self, req: &PlanRequest, progress: &Progress) -> Result<Plan> {
        crate::targets::plan_for(&self.project, req, |image| {
            let mut bases = self.bases.lock().expect("bases");
            if let Some(b) = bases.get(&image.name) {
                return Ok(b.identity.clone());
            }
            let b = qemu::base_disk(&self.project, image, |l| progress.raw(l))?;
            let identity = b.identity.clone();
            bases.insert(image.name.clone(), b);
            Ok(identity)
        })
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

    fn run_layer(&self, _plan: &Plan, layer: &Layer) -> Result<Option<LayerResult>> {
        if self.force {
            return Ok(None);
        }
        Ok(self
            .store
            .run_layer(&layer.run_hash)
            .map(|r| cached(&self.store, &r)))
    }

    fn previous_inputs(&self, _plan: &Plan, layer: &Layer) -> Option<crate::plan::Inputs> {
        self.store.latest_named(&layer.name).map(|r| r.inputs)
    }

    fn inputs_of(&self, _plan: &Plan, layer: &LayerResult) -> Option<crate::plan::Inputs> {
        self.store.layer(&layer.hash).map(|r| r.inputs)
    }

    fn bake(
        &self,
        plan: &Plan,
        layer: &Layer,
        parent: Option<&LayerResult>,
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
        // the roles' run is cached: refresh its payload; otherwise bake on the parent's run layer
        let on = match self.run_layer(plan, layer)? {
            Some(run) => BuildOn::Refresh(run.hash),
            None => BuildOn::Parent(match (layer.parent.strip_prefix("layer:"), parent) {
                (None, _) => None,
                (Some(_), Some(p)) => Some(p.run_layer.clone()),
                (Some(h), None) => Some(h.to_string()),
            }),
        };
        self.bake_layer(
            &Bake {
                plan,
                layer,
                base: &base,
                accel: &accel,
                label: &label,
                on,
            },
            progress,
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

pub(crate) fn cached(store: &Store, rec: &LayerRecord) -> LayerResult {
    LayerResult {
        index: rec.index,
        name: rec.name.clone(),
        hash: rec.hash.clone(),
        run_layer: rec.refresh_of.clone().unwrap_or_else(|| rec.hash.clone()),
        outcome: crate::bake::Outcome::Cached,
        duration_s: 0.0,
        image: store
            .layer_dir(&rec.hash)
            .join("disk.qcow2")
            .display()
            .to_string(),
        roles: rec.roles.clone(),
        log: Some(store.layer_dir(&rec.hash).join("bake.log")),
        copies: Vec::new(),
    }
}

/// One layer's bake on this target: what it builds on and how it is labelled.
struct Bake<'a> {
    plan: &'a Plan,
    layer: &'a Layer,
    base: &'a qemu::BaseDisk,
    accel: &'a str,
    label: &'a str,
    on: BuildOn,
}

/// The disk a build starts from.
enum BuildOn {
    /// A bake: the base disk (None) or the parent's run layer (its layer hash).
    Parent(Option<String>),
    /// A payload refresh of the run layer with this layer hash.
    Refresh(String),
}

impl BuildOn {
    /// The store layer the new disk is an overlay on, if any.
    fn layer(&self) -> Option<&str> {
        match self {
            BuildOn::Parent(p) => p.as_deref(),
            BuildOn::Refresh(r) => Some(r),
        }
    }
    fn refresh_of(&self) -> Option<String> {
        match self {
            BuildOn::Refresh(r) => Some(r.clone()),
            BuildOn::Parent(_) => None,
        }
    }
}

impl QemuBaker {
    /// Renders and runs Packer in a build directory (removed when this returns, on success,
    /// failure or Ctrl-C), then commits the layer to the store.
    fn bake_layer(&self, b: &Bake<'_>, progress: &mut Progress) -> Result<LayerResult> {
        let started = Instant::now();
        let build = crate::write::private_temp(&format!("{}-", b.layer.short_hash()))
            .tempdir_in(self.store.builds())
            .map_err(|e| Error::io("create a build directory in", self.store.builds(), e))?;
        let dir = build.path();
        let packer = self.tools.packer_version()?;
        let opts = self.render_options(b, dir, packer)?;
        let (timings, log_path) = packer_build(
            &self.project,
            b.plan,
            b.layer,
            &opts,
            &PackerRun {
                dir,
                tools: &self.tools,
                packer,
                store: &self.store,
                label: b.label,
                only: None,
                what: b.accel,
                extra_args: Vec::new(),
            },
            progress,
        )?;
        let duration = round(started.elapsed().as_secs_f64());
        let dest = self.commit(b, dir, &log_path, duration, &timings.roles)?;
        let refresh = b.on.refresh_of();
        record_bake(
            &self.store,
            crate::bake::Outcome::of_build(refresh.is_some()),
            b.plan,
            b.layer,
            b.accel,
            duration,
            &timings.roles,
        );
        let per_role: Vec<String> = timings
            .roles
            .iter()
            .map(|r| format!("{} {:.1}s", r.role, r.duration_s))
            .collect();
        progress.line(&format!(
            "{}: {} in {duration:.1}s{}",
            b.label,
            match &refresh {
                Some(run) => format!("payload refreshed on run layer {}", &run[..12]),
                None => "baked".to_string(),
            },
            if per_role.is_empty() {
                String::new()
            } else {
                format!(" ({})", per_role.join(", "))
            }
        ));
        Ok(LayerResult {
            index: b.layer.index,
            name: b.layer.name.clone(),
            hash: b.layer.hash.clone(),
            run_layer: refresh.clone().unwrap_or_else(|| b.layer.hash.clone()),
            outcome: crate::bake::Outcome::of_build(refresh.is_some()),
            duration_s: duration,
            image: dest.join("disk.qcow2").display().to_string(),
            roles: timings.roles,
            log: Some(dest.join("bake.log")),
            copies: Vec::new(),
        })
    }

    /// The run-time facts of this bake: the base disk, the accelerator, a one-time SSH key.
    fn render_options(
        &self,
        b: &Bake<'_>,
        dir: &std::path::Path,
        packer: crate::packer_version::Version,
    ) -> Result<RenderOptions> {
        std::fs::create_dir_all(dir.join("ssh")).map_err(|e| Error::io("create", dir, e))?;
        let public = crate::process::ssh_keygen(&dir.join("ssh/id_ed25519"), "parbake-bake")?;
        Ok(RenderOptions {
            modern_packer: packer.needs_init(),
            refresh: matches!(b.on, BuildOn::Refresh(_)),
            qemu: crate::render::QemuOptions {
                store_dir: self.store.images().display().to_string(),
                base_disk: b.base.disk.display().to_string(),
                kernel: b.base.kernel.display().to_string(),
                initrd: b.base.initrd.display().to_string(),
                accelerator: b.accel.to_string(),
                ssh_public_key: public.trim().to_string(),
                ssh_private_key_file: "ssh/id_ed25519".into(),
                build_on: match b.on.layer() {
                    Some(h) => {
                        let at = dir.join("build-on.qcow2");
                        qemu::disk::build_overlay(&self.store, h, &at)?;
                        Some(at.display().to_string())
                    }
                    None => None,
                },
            },
            ..RenderOptions::default()
        })
    }

    /// Disk, manifest, record and log, moved into the store in one rename.
    fn commit(
        &self,
        b: &Bake<'_>,
        dir: &std::path::Path,
        log_path: &std::path::Path,
        duration: f64,
        roles: &[crate::contract::events::RoleTiming],
    ) -> Result<std::path::PathBuf> {
        let (plan, layer) = (b.plan, b.layer);
        let result = dir.join("result");
        std::fs::create_dir_all(&result).map_err(|e| Error::io("create", &result, e))?;
        let disk = dir.join("output/disk.qcow2");
        let dest = result.join(qemu::disk::DISK);
        match b.on.layer() {
            // a stack layer or a refresh keeps only what differs from the disk it was built on
            Some(parent) => qemu::disk::overlay_on_parent(&self.store, &disk, &dest, parent)?,
            None => std::fs::rename(&disk, &dest)
                .map_err(|e| Error::io("move the baked disk", &disk, e))?,
        }
        std::fs::copy(
            dir.join("payload/manifest.json"),
            result.join("manifest.json"),
        )
        .map_err(|e| Error::io("copy the manifest", dir.join("payload/manifest.json"), e))?;
        std::fs::copy(log_path, result.join("bake.log"))
            .map_err(|e| Error::io("copy", log_path, e))?;
        let record = LayerRecord {
            format: 1,
            parbake_version: plan.parbake_version.clone(),
            target: "qemu".into(),
            image: plan.image.clone(),
            stack: (layer.index == 2).then(|| plan.stack.clone()),
            index: layer.index,
            name: layer.name.clone(),
            hash: layer.hash.clone(),
            // what the disk was built on: the lineage prune and `images` follow
            parent: match b.on.layer() {
                Some(h) => format!("layer:{h}"),
                None => layer.parent.clone(),
            },
            runs: layer.runs.clone(),
            baked: layer.baked.clone(),
            kernel: b.base.kernel.clone(),
            initrd: b.base.initrd.clone(),
            accelerator: b.accel.to_string(),
            created_at: now_epoch(),
            bake_duration_s: duration,
            roles: roles.to_vec(),
            inputs: layer.inputs.clone(),
            run_hash: layer.run_hash.clone(),
            payload_hash: layer.payload_hash.clone(),
            refresh_of: b.on.refresh_of(),
        };
        crate::write::write_file(
            &result.join("record.json"),
            (serde_json::to_string_pretty(&record).expect("record") + "\n").as_bytes(),
        )?;
        self.store.commit(&result, &layer.hash, self.force)
    }
}
