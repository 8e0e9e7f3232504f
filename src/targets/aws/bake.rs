//! run: bake a stack's layers as AMIs with Packer's amazon-ebs builder. The EC2 tags are the
//! registry: a layer whose hash is already tagged on an available AMI in the region is a cache
//! hit and starts no Packer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use super::ami::{newest, Ami};
use super::ec2::{Ec2, Endpoint};
use super::scope::Scope;
use crate::bake::RegionCopy;
use crate::bake::{
    layer_label, packer_build, round, BakeOptions, BakeReport, LayerBaker, LayerResult, PackerRun,
};
use crate::config::{AwsSource, Project};
use crate::error::{Error, Result};
use crate::plan::{Layer, Plan, PlanRequest};
use crate::progress::Progress;
use crate::render::packer::TAG_VALUE_MAX;
use crate::render::RenderOptions;
use crate::runtime::{runtime, Threads};
use crate::store::{now_epoch, Store};
use crate::testing;
use crate::tools::Tools;

/// Builder instances are tagged to expire this long after the bake starts (`parbake gc`).
const BUILDER_TTL_S: u64 = 4 * 3600;
/// How often a bake waiting for another run's claim on a layer looks again.
const CLAIM_POLL_S: u64 = 15;

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
    /// A real bake (not `--dry-run`): a cache hit gets the user's current tags and IMDSv2.
    settle: bool,
    /// Whose AMIs are cache hits, and the project tag new AMIs carry.
    scope: Scope,
    /// `-q`: a cache hit's distribution says nothing.
    quiet: bool,
}

impl AwsBaker {
    pub fn new(project: &Project, force: bool, progress: &Progress) -> Result<AwsBaker> {
        let mut baker = AwsBaker::peek(project, force, progress)?;
        baker.settle = true;
        baker.store.ensure_dirs()?;
        Ok(baker)
    }

    /// A baker that only looks (`bake --all --dry-run`): EC2 is read, the store never created.
    pub fn peek(project: &Project, force: bool, progress: &Progress) -> Result<AwsBaker> {
        let store = Store::for_project(&project.root);
        let test = testing::switches();
        let only = if test.skip_provisioning {
            progress.line(&format!(
                "test mode ({}=1): Packer runs without a communicator; the AMIs get no roles",
                testing::SKIP_PROVISIONING
            ));
            "amazon-ebs.no-provision"
        } else {
            "amazon-ebs.layer"
        };
        if project.id.is_none() {
            progress.line(&format!(
                "note: no project id in {}: the AMIs get no parbake:project tag, cache hits are untagged AMIs of any checkout, and prune refuses (docs/aws.md, \"Project scope\")",
                crate::config::project_file::FILE
            ));
        }
        let pause = test
            .builder_pause_seconds()
            .map(|s| format!("-var=test_pause_seconds={s}"))
            .into_iter()
            .collect();
        Ok(AwsBaker {
            project: project.clone(),
            tools: Tools::locate(&project.root),
            store,
            force,
            rt: runtime(Threads::Current)?,
            endpoint: Endpoint::from_env(),
            clients: Default::default(),
            sources: Default::default(),
            only,
            pause,
            run_id: format!("{}-{}", now_epoch(), std::process::id()),
            owner: crate::config::names::owner_tag_value(std::env::var("USER").ok().as_deref()),
            settle: false,
            scope: Scope::of(project),
            quiet: progress.is_quiet(),
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
        crate::targets::plan_for(&self.project, req, |image| {
            let src = self.source(&image.name)?;
            if let Ok(a) = self.resolved_source(&image.name) {
                return Ok(crate::plan::source_identity::aws_resolved(src, &a.id));
            }
            progress.step("source AMI", "resolving");
            let ec2 = self.ec2(&src.region);
            let a = self.rt.block_on(ec2.resolve_source_ami(&src.source_ami))?;
            progress.line(&format!(
                "source AMI in {}: {} ({}, created {})",
                src.region, a.id, a.name, a.creation_date
            ));
            self.check_allowed_images(&ec2, &a, progress)?;
            let identity = crate::plan::source_identity::aws_resolved(src, &a.id);
            self.sources
                .lock()
                .expect("sources")
                .insert(image.name.clone(), a);
            Ok(identity)
        })
    }
}

impl AwsBaker {
    /// The preflight of the account's Allowed AMIs settings (GetAllowedImagesSettings): a
    /// source AMI they refuse stops the bake before Packer starts (its builder could not
    /// launch); in audit mode, a warning. Settings that cannot be read (no permission, a
    /// partition without the feature) are said in a note and the bake goes on.
    fn check_allowed_images(&self, ec2: &Ec2, a: &Ami, progress: &Progress) -> Result<()> {
        let settings = match self.rt.block_on(ec2.allowed_images()) {
            Ok(s) => s,
            Err(e) => {
                let e = crate::error::Report(&e).to_string();
                let first = e.lines().next().unwrap_or_default();
                progress.line(&format!(
                    "note: the account's Allowed AMIs settings could not be read, so source AMI {} was not checked against them ({first})",
                    a.id
                ));
                return Ok(());
            }
        };
        let candidate = super::lifecycle::Candidate {
            owner: &a.owner,
            owner_alias: a.lifecycle.owner_alias.as_deref(),
            name: &a.name,
            created: super::ami::epoch_of(&a.creation_date),
            deprecated: a
                .lifecycle
                .deprecation_time
                .as_deref()
                .and_then(super::ami::epoch_of),
        };
        let Some(finding) =
            super::lifecycle::allowed_images_finding(&settings, &a.id, &candidate, now_epoch())
        else {
            return Ok(());
        };
        if settings.state == "audit-mode" {
            progress.line(&format!("warning: {finding}"));
            return Ok(());
        }
        Err(Error::user(finding).with_hint(format!(
            "add a criterion that admits it (e.g. its owner {} as an image provider) to the Allowed AMIs settings of {}, or choose a `source_ami` they admit",
            a.owner, ec2.region
        )))
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
            crate::printer::stderr::warning(format!(
                "could not release the claim {} (it expires by itself): {e}",
                self.name
            ));
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
        let poll = testing::switches()
            .claim_poll_seconds
            .unwrap_or(CLAIM_POLL_S);
        let mut tags = self.run_tags();
        tags.push(("parbake:layer-hash".into(), layer.hash.clone()));
        let mut told = false;
        loop {
            if self.rt.block_on(ec2.try_claim(&name, &tags))? {
                let claim = Claim {
                    baker: self,
                    ec2,
                    name,
                };
                // the claim was free, but the other run may have finished just before
                return Ok(match self.cached_meanwhile(plan, layer, progress)? {
                    Some(hit) => Err(hit),
                    None => Ok(claim),
                });
            }
            let holder = self.rt.block_on(ec2.claim_tags(&name))?.unwrap_or_default();
            let field = |k: &str| holder.get(k).map_or("?", |s| s.as_str()).to_string();
            let expired = holder
                .get("parbake:expires-at")
                .and_then(|e| e.parse::<u64>().ok())
                .is_some_and(|e| e < now_epoch());
            if expired {
                progress.line(&format!(
                    "{}: taking over the expired claim of run {}",
                    layer_label(layer),
                    field("parbake:run-id")
                ));
                self.rt.block_on(ec2.release_claim(&name))?;
                continue;
            }
            if !told {
                progress.line(&format!(
                    "{}: is being baked by another run (claim {name} in {region}, run {} by {}); waiting for it",
                    layer_label(layer),
                    field("parbake:run-id"),
                    field("parbake:owner"),
                ));
                told = true;
            }
            if crate::interrupt::interrupted() {
                return Err(Error::Interrupted);
            }
            std::thread::sleep(std::time::Duration::from_secs(poll));
            if let Some(hit) = self.cached_meanwhile(plan, layer, progress)? {
                return Ok(Err(hit));
            }
        }
    }

    /// The layer, if another run baked it while this one waited.
    fn cached_meanwhile(
        &self,
        plan: &Plan,
        layer: &Layer,
        progress: &Progress,
    ) -> Result<Option<LayerResult>> {
        let hit = self.cached(plan, layer)?;
        if let Some(hit) = &hit {
            progress.line(&format!(
                "{}: cached{} (baked by another run meanwhile)",
                layer_label(layer),
                crate::bake::as_ami(hit)
            ));
        }
        Ok(hit)
    }

    /// The tags that tie a claim or a builder instance to this run, for `parbake gc`.
    fn run_tags(&self) -> Vec<(String, String)> {
        vec![
            ("parbake:owner".into(), self.owner.clone()),
            ("parbake:run-id".into(), self.run_id.clone()),
            (
                "parbake:expires-at".into(),
                (now_epoch()
                    + crate::testing::switches()
                        .builder_ttl_seconds
                        .unwrap_or(BUILDER_TTL_S))
                .to_string(),
            ),
        ]
    }

    /// What follows the image file's AMI name: EC2 wants names unique in a region, and two
    /// projects may bake the same layer (same image name, same hash), so the project id; and
    /// with `--force` the time, since the layer's earlier AMI keeps its name.
    fn ami_name_suffix(&self) -> String {
        let project = self
            .scope
            .tag()
            .map(|(_, id)| format!("-{id}"))
            .unwrap_or_default();
        let force = if self.force {
            format!("-r{}", now_epoch())
        } else {
            String::new()
        };
        project + &force
    }

    /// [`AwsBaker::ami_name_suffix`], once the whole AMI name is known to fit EC2's 128
    /// characters (the image file's name with its placeholders filled, then the suffix).
    fn checked_ami_name_suffix(&self, plan: &Plan, layer: &Layer) -> Result<String> {
        let suffix = self.ami_name_suffix();
        let template = &self.source(&plan.image)?.ami_name;
        let name = crate::render::packer::ami_name(template, plan, layer) + &suffix;
        if name.len() > 128 {
            return Err(Error::user(format!(
                "the AMI name of layer {} would be {} characters, more than EC2's 128: `{name}`",
                layer.name,
                name.len()
            ))
            .with_hint(format!(
                "shorten `sources.aws.ami_name` in images/{}.yml, or the project id in {}",
                plan.image,
                crate::config::project_file::FILE
            )));
        }
        Ok(suffix)
    }

    /// The source AMI [`AwsBaker::plan`] resolved for an image.
    fn resolved_source(&self, image: &str) -> Result<Ami> {
        self.sources
            .lock()
            .expect("sources")
            .get(image)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("no source AMI resolved for {image}")))
    }

    /// The AWS half of the render options: the AMIs to build from, the endpoint, and the tags
    /// for the builder and the new AMI.
    fn render_options(
        &self,
        plan: &Plan,
        layer: &Layer,
        on: &On,
        packer: crate::packer_version::Version,
    ) -> Result<RenderOptions> {
        let source = self.resolved_source(&plan.image)?;
        let parent_ami = on.ami().unwrap_or_else(|| source.id.clone());
        let root_device = self.root_device(plan, &parent_ami)?;
        let mut run_tags = self.run_tags();
        run_tags.push(("parbake:building".into(), layer.hash.clone()));
        Ok(RenderOptions {
            modern_packer: packer.needs_init(),
            aws: crate::render::AwsOptions {
                source_ami: source.id,
                parent_ami,
                ec2_endpoint: self.endpoint.url.clone().unwrap_or_default(),
                run_tags,
                extra_ami_tags: std::iter::once((
                    "parbake:created-at".into(),
                    now_epoch().to_string(),
                ))
                .chain(self.scope.tag())
                .collect(),
                ami_name_suffix: self.checked_ami_name_suffix(plan, layer)?,
                root_device,
                build_on: on.ami(),
                refresh_of: on.refresh_of().map(|r| r.hash.clone()),
            },
            refresh: on.refresh_of().is_some(),
            ..RenderOptions::default()
        })
    }

    /// The AMI of the image that ran a parent layer's roles: the parent itself when it was
    /// baked, the run layer it refreshes otherwise.
    fn run_layer_ami(&self, plan: &Plan, parent: &LayerResult) -> Result<String> {
        if parent.run_layer == parent.hash {
            return Ok(parent.image.clone());
        }
        let ec2 = self.ec2(&self.source(&plan.image)?.region);
        let found = self
            .rt
            .block_on(ec2.layer_amis(&self.scope, &parent.run_layer))?;
        newest(&found).map(|a| a.id.clone()).ok_or_else(|| {
            Error::user(format!(
                "the run layer {} that layer {} refreshes has no available AMI",
                &parent.run_layer[..12.min(parent.run_layer.len())],
                parent.name
            ))
            .with_hint("it was deregistered since this run looked: run the bake again")
        })
    }

    /// Runs Packer for the layer in a fresh build directory; the new AMI, the role timings and
    /// the log.
    fn packer(
        &self,
        plan: &Plan,
        layer: &Layer,
        on: &On,
        region: &str,
        progress: &mut Progress,
    ) -> Result<Baked> {
        let build = crate::write::private_temp(&format!("{}-", layer.short_hash()))
            .tempdir_in(self.store.builds())
            .map_err(|e| Error::io("create a build directory in", self.store.builds(), e))?;
        self.check_tag_count(plan, layer)?;
        let packer = self.tools.packer_version()?;
        let ropts = self.render_options(plan, layer, on, packer)?;
        let run = PackerRun {
            dir: build.path(),
            tools: &self.tools,
            packer,
            store: &self.store,
            label: &layer_label(layer),
            only: Some(self.only),
            what: &format!("ec2 {region}"),
            extra_args: self.pause.clone(),
        };
        let (timings, log) = packer_build(&self.project, plan, layer, &ropts, &run, progress)?;
        let ami = manifest_ami(&build.path().join("packer-manifest.json"), region)?;
        let copies = manifest_copies(&build.path().join("packer-manifest.json"), region);
        let kept =
            self.store
                .logs()
                .join(format!("bake-{}-{}.log", layer.short_hash(), now_epoch()));
        let _ = std::fs::copy(&log, &kept);
        Ok(Baked {
            ami,
            copies,
            roles: timings.roles,
            log: kept,
        })
    }

    /// Records a finished bake in the local ledger and, as a tag, on the AMI (the ledger is
    /// local to this machine); the layer's result.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        plan: &Plan,
        layer: &Layer,
        region: &str,
        on: &On,
        baked: Baked,
        duration: f64,
        progress: &Progress,
    ) -> LayerResult {
        let what = format!("ec2 {region}");
        let refresh = on.refresh_of();
        crate::bake::record_bake(
            &self.store,
            crate::bake::Outcome::of_build(refresh.is_some()),
            plan,
            layer,
            &what,
            duration,
            &baked.roles,
        );
        let ec2 = self.ec2(region);
        let copies = baked.copies.iter().map(|(r, a)| (self.ec2(r), a));
        for (client, ami) in std::iter::once((ec2.clone(), &baked.ami)).chain(copies) {
            if let Err(e) = self.settle_baked(plan, &client, ami) {
                progress.line(&format!("warning: {e}"));
            }
            if let Err(e) = self.deprecate(plan, layer, &client, ami) {
                progress.line(&format!("warning: {e}"));
            }
        }
        let tag = bake_seconds_tag(duration, &baked.roles);
        if let Err(e) = self.rt.block_on(ec2.tag(&baked.ami, &[tag])) {
            progress.line(&format!(
                "warning: could not tag {} with its bake timings: {e}",
                baked.ami
            ));
        }
        progress.line(&format!(
            "{}: {} {} in {duration:.1}s",
            layer_label(layer),
            match refresh {
                Some(run) => format!(
                    "payload of run layer {} ({}) refreshed as",
                    &run.hash[..12],
                    run.image
                ),
                None => "baked".to_string(),
            },
            baked.ami
        ));
        LayerResult {
            index: layer.index,
            name: layer.name.clone(),
            hash: layer.hash.clone(),
            run_layer: refresh.map_or_else(|| layer.hash.clone(), |r| r.hash.clone()),
            outcome: crate::bake::Outcome::of_build(refresh.is_some()),
            duration_s: duration,
            image: baked.ami,
            roles: baked.roles,
            log: Some(baked.log),
            copies: Vec::new(),
        }
    }
}

/// The production settings Packer 1.6.6 cannot set itself, applied to an AMI after its bake
/// or on a cache hit (issue 28): IMDSv2 on the AMI, and the user's tags on a cached one.
impl AwsBaker {
    /// The root device of the AMI a build starts from, where `volume:` applies; `/dev/xvda`
    /// (unused) when the source sets no volume.
    fn root_device(&self, plan: &Plan, ami: &str) -> Result<String> {
        let src = self.source(&plan.image)?;
        if src.volume.is_none() {
            return Ok("/dev/xvda".into());
        }
        let ec2 = self.ec2(&src.region);
        Ok(self.rt.block_on(ec2.root_device_and_imds(ami))?.0)
    }

    /// Refuses a bake whose AMI would pass EC2's 50 tags once verify has tagged it: parbake's
    /// own (as rendered, plus the source, refresh and creation tags), the user's, and what
    /// bake and verify add later (bake seconds, 14 verdict tags).
    fn check_tag_count(&self, plan: &Plan, layer: &Layer) -> Result<()> {
        const LATER: usize = 1 + 14;
        let own = crate::render::packer::ami_tags(plan, layer, "").len() + 3 + LATER;
        let stack = (layer.kind == crate::plan::LayerKind::Stack).then_some(plan.stack.as_str());
        let user = crate::config::aws_settings::user_tags(&self.project, &plan.image, stack).len();
        let max = crate::config::aws_settings::EC2_TAGS_MAX;
        if own + user <= max {
            return Ok(());
        }
        Err(Error::user(format!(
            "layer {}'s AMI would carry {} tags ({own} of parbake's, {user} of yours); EC2 allows {max}",
            layer.name,
            own + user
        ))
        .with_hint(format!(
            "drop {} of the `tags` in the image's aws source or the stack file",
            own + user - max
        )))
    }

    /// A new AMI: `ImdsSupport = v2.0` unless the source says `imds: optional`.
    fn settle_baked(&self, plan: &Plan, ec2: &Ec2, ami: &str) -> Result<()> {
        if self.source(&plan.image)?.imds == crate::config::model::Imds::Required {
            self.rt.block_on(ec2.require_imdsv2(ami))?;
        }
        Ok(())
    }

    /// A new AMI (or a copy): its deprecation time, `deprecate_after` from now, when the image
    /// or (on a stack layer) the stack sets one. Packer 1.6.6 has no `deprecate_at`, so this is
    /// EC2's EnableImageDeprecation once the AMI exists. Not in the layer hash: a cached AMI
    /// keeps the time set at its bake.
    fn deprecate(&self, plan: &Plan, layer: &Layer, ec2: &Ec2, ami: &str) -> Result<()> {
        let stack = (layer.kind == crate::plan::LayerKind::Stack).then_some(plan.stack.as_str());
        let Some(after) =
            crate::config::aws_settings::deprecate_after(&self.project, &plan.image, stack)
        else {
            return Ok(());
        };
        let at = super::lifecycle::deprecate_at(now_epoch(), after);
        self.rt.block_on(ec2.deprecate(ami, at))
    }

    /// A cached AMI: the user's tags as the files say now (tags are not in the layer hash, so
    /// an edit does not rebake) on it and its snapshots, and IMDSv2 when required and missing.
    fn settle_cached(&self, plan: &Plan, layer: &Layer, ec2: &Ec2, ami: &Ami) -> Result<()> {
        let stack = (layer.kind == crate::plan::LayerKind::Stack).then_some(plan.stack.as_str());
        let missing: Vec<(String, String)> =
            crate::config::aws_settings::user_tags(&self.project, &plan.image, stack)
                .into_iter()
                .filter(|(k, v)| ami.tags.get(k) != Some(v))
                .collect();
        if !missing.is_empty() {
            let mut ids = vec![ami.id.clone()];
            ids.extend(self.rt.block_on(ec2.snapshots_of(&ami.id))?);
            self.rt.block_on(ec2.tag_all(&ids, &missing))?;
        }
        if self.source(&plan.image)?.imds == crate::config::model::Imds::Required
            && !self.rt.block_on(ec2.root_device_and_imds(&ami.id))?.1
        {
            self.rt.block_on(ec2.require_imdsv2(&ami.id))?;
        }
        Ok(())
    }
}

/// Distribution (issue 27): the AMI a stack launches (its top layer) goes where the stack's
/// `distribute:` (or its image's) says, after its bake and on a cache hit.
impl AwsBaker {
    fn distribute(
        &self,
        plan: &Plan,
        layer: &Layer,
        ami: &str,
        progress: &Progress,
    ) -> Result<Vec<RegionCopy>> {
        // the AMI the stack launches, even when that is its image's base layer
        if layer.hash != plan.top().hash {
            return Ok(Vec::new());
        }
        let stack = Some(plan.stack.as_str());
        let Some(d) = crate::config::distribute::of(&self.project, &plan.image, stack) else {
            return Ok(Vec::new());
        };
        let src = self.source(&plan.image)?;
        let home = self.ec2(&src.region);
        let targets: Vec<super::distribute::Target> = d
            .regions
            .iter()
            .map(|r| super::distribute::Target {
                ec2: self.ec2(&r.region),
                kms_key_id: r.kms_key_id.clone(),
            })
            .collect();
        let named_key = src.encrypt.as_ref().is_some_and(|e| e.kms_key_id.is_some());
        let image = self.rt.block_on(home.image(ami))?;
        let done = self.rt.block_on(super::distribute::distribute(
            &home, &image, &d, &targets, named_key,
        ))?;
        for note in &done.notes {
            progress.line(&format!("note: {note}"));
        }
        for (region, copy) in &done.made {
            let client = self.ec2(region);
            for step in [
                self.settle_baked(plan, &client, copy),
                self.deprecate(plan, layer, &client, copy),
            ] {
                if let Err(e) = step {
                    progress.line(&format!("warning: {e}"));
                }
            }
        }
        let said: Vec<String> = done
            .copies
            .iter()
            .map(|(r, a)| format!("{r} {a}"))
            .collect();
        if !said.is_empty()
            || !d.accounts.is_empty()
            || !d.organizational_units.is_empty()
            || d.public
        {
            progress.line(&format!(
                "{}: distributed {ami}: copies [{}], shared with {} account(s), {} OU(s){}",
                layer_label(layer),
                said.join(", "),
                d.accounts.len(),
                d.organizational_units.len(),
                if d.public { ", everyone" } else { "" }
            ));
        }
        Ok(done
            .copies
            .into_iter()
            .map(|(region, image)| RegionCopy { region, image })
            .collect())
    }
}

/// What an AMI build starts from.
enum On {
    /// A bake: the source AMI (None), or the parent's run layer AMI.
    Parent(Option<String>),
    /// A payload refresh of this cached run layer.
    Refresh(LayerResult),
}

impl On {
    fn ami(&self) -> Option<String> {
        match self {
            On::Parent(a) => a.clone(),
            On::Refresh(run) => Some(run.image.clone()),
        }
    }
    fn refresh_of(&self) -> Option<&LayerResult> {
        match self {
            On::Refresh(run) => Some(run),
            On::Parent(_) => None,
        }
    }
}

/// What one Packer run made.
struct Baked {
    ami: String,
    /// The copies in `copy_to_regions`: (region, AMI).
    copies: Vec<(String, String)>,
    roles: Vec<crate::contract::events::RoleTiming>,
    /// The build log, kept in the store.
    log: std::path::PathBuf,
}

impl LayerBaker for AwsBaker {
    fn cached(&self, plan: &Plan, layer: &Layer) -> Result<Option<LayerResult>> {
        if self.force {
            return Ok(None);
        }
        let ec2 = self.ec2(&self.source(&plan.image)?.region);
        let found = self.rt.block_on(ec2.layer_amis(&self.scope, &layer.hash))?;
        let mut copies = Vec::new();
        if let Some(ami) = newest(&found).filter(|_| self.settle) {
            self.settle_cached(plan, layer, &ec2, ami)?;
            copies = self.distribute(plan, layer, &ami.id, &Progress::lines(self.quiet, false))?;
        }
        Ok(newest(&found).map(|ami| LayerResult {
            index: layer.index,
            name: layer.name.clone(),
            hash: layer.hash.clone(),
            run_layer: ami
                .tags
                .get("parbake:refresh-of")
                .cloned()
                .unwrap_or_else(|| layer.hash.clone()),
            outcome: crate::bake::Outcome::Cached,
            duration_s: 0.0,
            image: ami.id.clone(),
            roles: Vec::new(),
            log: None,
            copies,
        }))
    }

    fn run_layer(&self, plan: &Plan, layer: &Layer) -> Result<Option<LayerResult>> {
        if self.force || layer.run_hash.is_empty() {
            return Ok(None);
        }
        let ec2 = self.ec2(&self.source(&plan.image)?.region);
        let found: Vec<Ami> = self
            .rt
            .block_on(ec2.run_hash_amis(&self.scope, &layer.run_hash))?
            .into_iter()
            .filter(|a| !a.tags.contains_key("parbake:refresh-of"))
            .collect();
        Ok(newest(&found).map(|ami| {
            let hash = ami
                .tags
                .get("parbake:layer-hash")
                .cloned()
                .unwrap_or_default();
            LayerResult {
                index: layer.index,
                name: layer.name.clone(),
                run_layer: hash.clone(),
                hash,
                outcome: crate::bake::Outcome::Cached,
                duration_s: 0.0,
                image: ami.id.clone(),
                roles: Vec::new(),
                log: None,
                copies: Vec::new(),
            }
        }))
    }

    fn inputs_of(&self, plan: &Plan, layer: &LayerResult) -> Option<crate::plan::Inputs> {
        let region = self.source(&plan.image).ok()?.region.clone();
        let ec2 = self.ec2(&region);
        let found = self
            .rt
            .block_on(ec2.layer_amis(&self.scope, &layer.hash))
            .ok()?;
        newest(&found).map(|a| super::ami::inputs_from_tags(&a.tags, &region))
    }

    fn previous_inputs(&self, plan: &Plan, layer: &Layer) -> Option<crate::plan::Inputs> {
        let region = self.source(&plan.image).ok()?.region.clone();
        let ec2 = self.ec2(&region);
        let found = self
            .rt
            .block_on(ec2.named_layer_amis(&self.scope, &layer.name))
            .ok()?;
        newest(&found).map(|a| super::ami::inputs_from_tags(&a.tags, &region))
    }

    fn bake(
        &self,
        plan: &Plan,
        layer: &Layer,
        parent: Option<&LayerResult>,
        progress: &mut Progress,
    ) -> Result<LayerResult> {
        let _lock = match crate::bake::lock_unless_cached(self, &self.store, plan, layer, progress)?
        {
            Ok(lock) => lock,
            Err(hit) => return Ok(hit),
        };
        let region = self.source(&plan.image)?.region.clone();
        // another machine may be baking the same layer: the claim is the cross-machine lock
        let _claim = match self.claim(plan, layer, &region, progress)? {
            Ok(claim) => claim,
            Err(hit) => return Ok(hit),
        };
        let started = Instant::now();
        // the roles' run is cached: refresh its payload; otherwise bake on the parent's run layer
        let on = match self.run_layer(plan, layer)? {
            Some(run) => On::Refresh(run),
            None => On::Parent(match parent {
                Some(p) if layer.index == 2 => Some(self.run_layer_ami(plan, p)?),
                _ => None,
            }),
        };
        let baked = self.packer(plan, layer, &on, &region, progress)?;
        let duration = round(started.elapsed().as_secs_f64());
        let mut result = self.record(plan, layer, &region, &on, baked, duration, progress);
        result.copies = self.distribute(plan, layer, &result.image, progress)?;
        Ok(result)
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

pub fn bake_aws(project: &Project, req: &PlanRequest, opts: &BakeOptions) -> Result<BakeReport> {
    let started = Instant::now();
    let mut progress = Progress::new(opts.quiet, opts.verbose);
    let baker = AwsBaker::new(project, opts.force, &progress)?;
    let plan = baker.plan(req, &mut progress)?;
    crate::bake::bake_plan(&baker, &plan, started, &mut progress)
}

/// The AMIs in other regions than `region` from Packer's manifest (`copy_to_regions`); none
/// when the manifest cannot be read (`manifest_ami` has said so already).
fn manifest_copies(path: &std::path::Path, region: &str) -> Vec<(String, String)> {
    // reading rule exception (src/fsread.rs): Packer's manifest, in parbake's private run dir
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    artifact_amis(last_artifact(&v))
        .filter(|(r, _)| *r != region)
        .map(|(r, a)| (r.to_string(), a.to_string()))
        .collect()
}

/// The artifact id of the last build in Packer's manifest (`region:ami,region2:ami2`).
fn last_artifact(manifest: &serde_json::Value) -> &str {
    manifest["builds"]
        .as_array()
        .and_then(|b| b.last())
        .and_then(|b| b["artifact_id"].as_str())
        .unwrap_or_default()
}

/// The `(region, ami)` pairs of an artifact id.
fn artifact_amis(artifact: &str) -> impl Iterator<Item = (&str, &str)> {
    artifact.split(',').filter_map(|p| p.split_once(':'))
}

/// The AMI id in `region` from Packer's manifest post-processor (`region:ami,region2:ami2`).
/// A build that wrote no manifest (e.g. a wrong `-only`) is a failure, not a success.
pub fn manifest_ami(path: &std::path::Path, region: &str) -> Result<String> {
    // reading rule exception (src/fsread.rs): Packer's manifest, in parbake's private run dir
    let text = std::fs::read_to_string(path).map_err(|_| {
        Error::user("Packer finished but wrote no manifest, so no AMI was made")
            .with_hint("run with -v to see Packer's output")
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Internal(format!("Packer manifest {}: {e}", path.display())))?;
    let artifact = last_artifact(&v);
    let found = artifact_amis(artifact)
        .find(|(r, _)| *r == region)
        .map(|(_, ami)| ami.to_string());
    found.ok_or_else(|| {
        Error::user(format!(
            "Packer's manifest names no AMI in {region} (artifact `{artifact}`)"
        ))
    })
}
