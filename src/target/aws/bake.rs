//! run: bake a stack's layers as AMIs with Packer's amazon-ebs builder. The EC2 tags are the
//! registry: a layer whose hash is already tagged on an available AMI in the region is a cache
//! hit and starts no Packer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use super::ami::{newest, Ami};
use super::ec2::{Ec2, Endpoint};
use crate::bake::{
    layer_label, packer_build, round, BakeOptions, BakeReport, LayerBaker, LayerResult, PackerRun,
};
use crate::config::{AwsSource, Project};
use crate::error::{Error, Result};
use crate::plan::{self, Layer, Plan, PlanRequest};
use crate::progress::Progress;
use crate::render::RenderOptions;
use crate::store::{now_epoch, Store};
use crate::tools::Tools;

/// Test-only: bake with the `amazon-ebs.no-provision` source (communicator none), so a real
/// Packer build runs against a local EC2 API (moto) that cannot boot instances.
pub const TEST_SKIP_PROVISIONING: &str = "PARBAKE_TEST_SKIP_PROVISIONING";
/// Builder instances are tagged to expire this long after the bake starts (`parbake gc`).
const BUILDER_TTL_S: u64 = 4 * 3600;

/// Bakes AMIs; one per run, shared by concurrent layer bakes (`bake --all`).
pub struct AwsBaker {
    project: Project,
    store: Store,
    tools: Tools,
    force: bool,
    rt: tokio::runtime::Runtime,
    endpoint: Endpoint,
    /// Region → client, and image → its resolved source AMI.
    clients: Mutex<BTreeMap<String, std::sync::Arc<Ec2>>>,
    sources: Mutex<BTreeMap<String, Ami>>,
    only: &'static str,
    pause: Vec<String>,
    run_id: String,
    owner: String,
}

impl AwsBaker {
    pub fn new(project: &Project, force: bool, progress: &Progress) -> Result<AwsBaker> {
        let store = Store::for_project(&project.root);
        store.ensure_dirs()?;
        let skip_provisioning = std::env::var(TEST_SKIP_PROVISIONING).as_deref() == Ok("1");
        let only = if skip_provisioning {
            progress.line(&format!(
                "test mode ({TEST_SKIP_PROVISIONING}=1): Packer runs without a communicator; the AMIs get no roles"
            ));
            "amazon-ebs.no-provision"
        } else {
            "amazon-ebs.layer"
        };
        // test-only, with the switch above: hold the builder instance this long (Ctrl-C tests)
        let pause: Vec<String> = match std::env::var("PARBAKE_TEST_PAUSE_SECONDS") {
            Ok(s) if skip_provisioning && s.parse::<u32>().is_ok() => {
                vec![format!("-var=test_pause_seconds={s}")]
            }
            _ => Vec::new(),
        };
        Ok(AwsBaker {
            project: project.clone(),
            tools: Tools::locate(&project.root),
            store,
            force,
            rt: super::runtime()?,
            endpoint: Endpoint::from_env(),
            clients: Default::default(),
            sources: Default::default(),
            only,
            pause,
            run_id: format!("{}-{}", now_epoch(), std::process::id()),
            owner: std::env::var("USER").unwrap_or_else(|_| "parbake".into()),
        })
    }

    fn ec2(&self, region: &str) -> std::sync::Arc<Ec2> {
        let mut clients = self.clients.lock().expect("clients");
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                std::sync::Arc::new(self.rt.block_on(Ec2::connect(region, &self.endpoint)))
            })
            .clone()
    }

    fn source(&self, image: &str) -> Result<&AwsSource> {
        self.project
            .image(image)?
            .def
            .sources
            .aws
            .as_ref()
            .ok_or_else(|| Error::Internal(format!("image {image} has no aws source")))
    }

    /// The plan with the resolved source AMI as layer 1's source identity.
    pub fn plan(&self, req: &PlanRequest, progress: &mut Progress) -> Result<Plan> {
        let stack = self.project.stack(&req.stack)?;
        let image = self.project.image(&stack.def.image)?;
        if image.def.sources.aws.is_none() {
            // the planner reports a missing source with its hint
            plan::plan(&self.project, req)?;
        }
        let src = self.source(&image.name)?;
        let known = self
            .sources
            .lock()
            .expect("sources")
            .get(&image.name)
            .cloned();
        let source = match known {
            Some(a) => a,
            None => {
                progress.step("source AMI", "resolving");
                let ec2 = self.ec2(&src.region);
                let a = self.rt.block_on(ec2.resolve_source_ami(&src.source_ami))?;
                progress.line(&format!(
                    "source AMI in {}: {} ({}, created {})",
                    src.region, a.id, a.name, a.creation_date
                ));
                self.sources
                    .lock()
                    .expect("sources")
                    .insert(image.name.clone(), a.clone());
                a
            }
        };
        Ok(plan::plan(
            &self.project,
            &PlanRequest {
                source_identity: Some(crate::plan::source_identity::aws(&src.region, &source.id)),
                ..req.clone()
            },
        )?)
    }
}

/// A held cross-machine claim on a layer, released when dropped (bake done, failed or
/// interrupted).
struct Claim<'a> {
    baker: &'a AwsBaker,
    ec2: std::sync::Arc<Ec2>,
    name: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.baker.rt.block_on(self.ec2.release_claim(&self.name)) {
            eprintln!(
                "warning: could not release the claim {} (it expires by itself): {e}",
                self.name
            );
        }
    }
}

impl AwsBaker {
    /// Claims the layer across machines (see `Ec2::try_claim`), waiting while another run
    /// holds it. Returns the claim, or the cached layer when the other run baked it meanwhile.
    fn claim(
        &self,
        plan: &Plan,
        layer: &Layer,
        region: &str,
        progress: &Progress,
    ) -> Result<std::result::Result<Claim<'_>, LayerResult>> {
        let ec2 = self.ec2(region);
        let name = format!("parbake-lock-{}", &layer.hash[..32]);
        let poll = std::env::var("PARBAKE_CLAIM_POLL_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(15u64);
        let tags = vec![
            ("parbake:owner".to_string(), self.owner.clone()),
            ("parbake:run-id".to_string(), self.run_id.clone()),
            ("parbake:layer-hash".to_string(), layer.hash.clone()),
            (
                "parbake:expires-at".to_string(),
                (now_epoch() + BUILDER_TTL_S).to_string(),
            ),
        ];
        let mut told = false;
        loop {
            if self.rt.block_on(ec2.try_claim(&name, &tags))? {
                return Ok(Ok(Claim {
                    baker: self,
                    ec2,
                    name,
                }));
            }
            let holder = self.rt.block_on(ec2.claim_tags(&name))?.unwrap_or_default();
            let expired = holder
                .get("parbake:expires-at")
                .and_then(|e| e.parse::<u64>().ok())
                .is_some_and(|e| e < now_epoch());
            if expired {
                progress.line(&format!(
                    "{}: taking over the expired claim of run {}",
                    layer_label(layer),
                    holder.get("parbake:run-id").map_or("?", |s| s)
                ));
                self.rt.block_on(ec2.release_claim(&name))?;
                continue;
            }
            if !told {
                progress.line(&format!(
                    "{}: is being baked by another run (claim {name} in {region}, run {} by {}); waiting for it",
                    layer_label(layer),
                    holder.get("parbake:run-id").map_or("?", |s| s),
                    holder.get("parbake:owner").map_or("?", |s| s),
                ));
                told = true;
            }
            if crate::interrupt::interrupted() {
                return Err(Error::Interrupted);
            }
            std::thread::sleep(std::time::Duration::from_secs(poll));
            if let Some(hit) = self.cached(plan, layer)? {
                progress.line(&format!(
                    "{}: cached{} (baked by another run meanwhile)",
                    layer_label(layer),
                    crate::bake::as_ami(&hit)
                ));
                return Ok(Err(hit));
            }
        }
    }
}

impl LayerBaker for AwsBaker {
    fn cached(&self, plan: &Plan, layer: &Layer) -> Result<Option<LayerResult>> {
        if self.force {
            return Ok(None);
        }
        let ec2 = self.ec2(&self.source(&plan.image)?.region);
        let found = self.rt.block_on(ec2.layer_amis(&layer.hash))?;
        Ok(newest(&found).map(|ami| LayerResult {
            index: layer.index,
            name: layer.name.clone(),
            hash: layer.hash.clone(),
            outcome: crate::bake::Outcome::Cached,
            duration_s: 0.0,
            image: ami.id.clone(),
            roles: Vec::new(),
            log: None,
        }))
    }

    fn previous_inputs(&self, plan: &Plan, layer: &Layer) -> Option<crate::plan::Inputs> {
        let region = self.source(&plan.image).ok()?.region.clone();
        let ec2 = self.ec2(&region);
        let found = self.rt.block_on(ec2.named_layer_amis(&layer.name)).ok()?;
        newest(&found).map(|a| super::ami::inputs_from_tags(&a.tags, &region))
    }

    fn bake(
        &self,
        plan: &Plan,
        layer: &Layer,
        parent: Option<&LayerResult>,
        progress: &mut Progress,
    ) -> Result<LayerResult> {
        let label = layer_label(layer);
        let _lock = match crate::bake::lock_unless_cached(self, &self.store, plan, layer, progress)?
        {
            Ok(lock) => lock,
            Err(hit) => return Ok(hit),
        };
        let src = self.source(&plan.image)?;
        // another machine may be baking the same layer: the claim is the cross-machine lock
        let _claim = match self.claim(plan, layer, &src.region, progress)? {
            Ok(claim) => claim,
            Err(hit) => return Ok(hit),
        };
        // the claim was free, but the other run may have finished just before
        if let Some(hit) = self.cached(plan, layer)? {
            progress.line(&format!(
                "{label}: cached{} (baked by another run meanwhile)",
                crate::bake::as_ami(&hit)
            ));
            return Ok(hit);
        }
        let source = self
            .sources
            .lock()
            .expect("sources")
            .get(&plan.image)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("no source AMI resolved for {}", plan.image)))?;
        let parent_ami = match parent {
            Some(p) if layer.index == 2 => p.image.clone(),
            _ => source.id.clone(),
        };
        let layer_started = Instant::now();
        let build = tempfile::Builder::new()
            .prefix(&format!("{}-", layer.short_hash()))
            .tempdir_in(self.store.builds())
            .map_err(|e| Error::io("create a build directory in", self.store.builds(), e))?;
        let packer = self.tools.packer_version()?;
        let ropts = RenderOptions {
            modern_packer: packer.needs_init(),
            source_ami: source.id.clone(),
            parent_ami,
            ec2_endpoint: self.endpoint.url.clone().unwrap_or_default(),
            run_tags: vec![
                ("parbake:owner".into(), self.owner.clone()),
                ("parbake:run-id".into(), self.run_id.clone()),
                (
                    "parbake:expires-at".into(),
                    (now_epoch() + BUILDER_TTL_S).to_string(),
                ),
                ("parbake:building".into(), layer.hash.clone()),
            ],
            extra_ami_tags: vec![("parbake:created-at".into(), now_epoch().to_string())],
            ami_name_suffix: if self.force {
                format!("-r{}", now_epoch())
            } else {
                String::new()
            },
            ..RenderOptions::default()
        };
        let what = format!("ec2 {}", src.region);
        let run = PackerRun {
            dir: build.path(),
            tools: &self.tools,
            packer,
            store: &self.store,
            label: &label,
            only: Some(self.only),
            what: &what,
            extra_args: self.pause.clone(),
        };
        let (timings, log) = packer_build(&self.project, plan, layer, &ropts, &run, progress)?;
        let ami = manifest_ami(&build.path().join("packer-manifest.json"), &src.region)?;
        let kept =
            self.store
                .logs()
                .join(format!("bake-{}-{}.log", layer.short_hash(), now_epoch()));
        let _ = std::fs::copy(&log, &kept);
        let duration = round(layer_started.elapsed().as_secs_f64());
        crate::bake::record_bake(&self.store, plan, layer, &what, duration, &timings.roles);
        // the timings travel with the AMI too (the ledger is local to this machine)
        let ec2 = self.ec2(&src.region);
        let tag = bake_seconds_tag(duration, &timings.roles);
        if let Err(e) = self.rt.block_on(ec2.tag(&ami, &[tag])) {
            progress.line(&format!(
                "warning: could not tag {ami} with its bake timings: {e}"
            ));
        }
        progress.line(&format!("{label}: baked {ami} in {duration:.1}s"));
        Ok(LayerResult {
            index: layer.index,
            name: layer.name.clone(),
            hash: layer.hash.clone(),
            outcome: crate::bake::Outcome::Baked,
            duration_s: duration,
            image: ami,
            roles: timings.roles,
            log: Some(kept),
        })
    }

    fn what(&self) -> String {
        let regions: Vec<String> = self
            .clients
            .lock()
            .expect("clients")
            .keys()
            .cloned()
            .collect();
        format!("ec2 {}", regions.join(","))
    }
}

/// `parbake:bake-seconds` = `total=312.5;base=35.2,users=3.1`, cut to EC2's 256 characters.
pub fn bake_seconds_tag(
    total: f64,
    roles: &[crate::contract::events::RoleTiming],
) -> (String, String) {
    let mut v = format!("total={total:.1}");
    let per: Vec<String> = roles
        .iter()
        .map(|r| format!("{}={:.1}", r.role, r.duration_s))
        .collect();
    if !per.is_empty() {
        v.push(';');
        v.push_str(&per.join(","));
    }
    v.truncate(TAG_VALUE_MAX);
    ("parbake:bake-seconds".into(), v)
}

const TAG_VALUE_MAX: usize = 256;

pub fn bake_aws(project: &Project, req: &PlanRequest, opts: &BakeOptions) -> Result<BakeReport> {
    let started = Instant::now();
    let mut progress = Progress::new(opts.quiet, opts.verbose);
    let baker = AwsBaker::new(project, opts.force, &progress)?;
    let plan = baker.plan(req, &mut progress)?;
    crate::bake::bake_plan(&baker, &plan, started, &mut progress)
}

/// The AMI id in `region` from Packer's manifest post-processor (`region:ami,region2:ami2`).
/// A build that wrote no manifest (e.g. a wrong `-only`) is a failure, not a success.
pub fn manifest_ami(path: &std::path::Path, region: &str) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|_| {
        Error::user("Packer finished but wrote no manifest, so no AMI was made")
            .with_hint("run with -v to see Packer's output")
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Internal(format!("Packer manifest {}: {e}", path.display())))?;
    let artifact = v["builds"]
        .as_array()
        .and_then(|b| b.last())
        .and_then(|b| b["artifact_id"].as_str())
        .unwrap_or_default();
    artifact
        .split(',')
        .filter_map(|p| p.split_once(':'))
        .find(|(r, _)| *r == region)
        .map(|(_, ami)| ami.to_string())
        .ok_or_else(|| {
            Error::user(format!(
                "Packer's manifest names no AMI in {region} (artifact `{artifact}`)"
            ))
        })
}
