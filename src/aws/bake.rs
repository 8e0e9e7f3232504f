//! run: bake a stack's layers as AMIs with Packer's amazon-ebs builder. The EC2 tags are the
//! registry: a layer whose hash is already tagged on an available AMI in the region is a cache
//! hit and starts no Packer.

use std::time::Instant;

use super::ami::newest;
use super::ec2::{Ec2, Endpoint};
use crate::bake::{packer_build, BakeOptions, BakeReport, LayerResult, PackerRun};
use crate::config::Project;
use crate::error::{Error, Result};
use crate::plan::{self, PlanRequest, Target};
use crate::progress::Progress;
use crate::render::RenderOptions;
use crate::store::{now_epoch, Store};
use crate::tools::Tools;

/// Test-only: bake with the `amazon-ebs.no-provision` source (communicator none), so a real
/// Packer build runs against a local EC2 API (moto) that cannot boot instances.
pub const TEST_SKIP_PROVISIONING: &str = "PARBAKE_TEST_SKIP_PROVISIONING";
/// Builder instances are tagged to expire this long after the bake starts (`parbake gc`).
const BUILDER_TTL_S: u64 = 4 * 3600;

pub fn bake_aws(project: &Project, req: &PlanRequest, opts: &BakeOptions) -> Result<BakeReport> {
    let started = Instant::now();
    let mut progress = Progress::new(opts.quiet, opts.verbose);
    let store = Store::for_project(&project.root);
    store.ensure_dirs()?;
    let stack = project.stack(&req.stack)?;
    let image = project.image(&stack.def.image)?;
    let Some(src) = image.def.sources.aws.as_ref() else {
        // the planner reports a missing source with its hint
        plan::plan(project, req)?;
        return Err(Error::Internal(
            "planned an aws bake without an aws source".into(),
        ));
    };
    let rt = super::runtime()?;
    let endpoint = Endpoint::from_env();
    let ec2 = rt.block_on(Ec2::connect(&src.region, &endpoint));
    progress.step("source AMI", "resolving");
    let source = rt.block_on(ec2.resolve_source_ami(&src.source_ami))?;
    progress.line(&format!(
        "source AMI in {}: {} ({}, created {})",
        src.region, source.id, source.name, source.creation_date
    ));
    let plan = plan::plan(
        project,
        &PlanRequest {
            source_identity: Some(format!("aws:{}:{}", src.region, source.id)),
            ..req.clone()
        },
    )?;
    let tools = Tools::locate(&project.root);
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
    let run_id = format!("{}-{}", now_epoch(), std::process::id());
    let owner = std::env::var("USER").unwrap_or_else(|_| "parbake".into());
    let what = format!("ec2 {}", src.region);
    let mut parent_ami = source.id.clone();
    let mut layers = Vec::new();
    for layer in &plan.layers {
        let label = format!(
            "layer {} {} ({})",
            layer.index,
            layer.name,
            layer.short_hash()
        );
        if !opts.force {
            let found = rt.block_on(ec2.layer_amis(&layer.hash))?;
            if let Some(ami) = newest(&found) {
                progress.line(&format!("{label}: cached as {}, no Packer run", ami.id));
                parent_ami = ami.id.clone();
                layers.push(LayerResult {
                    index: layer.index,
                    name: layer.name.clone(),
                    hash: layer.hash.clone(),
                    outcome: "cached".into(),
                    duration_s: 0.0,
                    image: ami.id.clone(),
                    roles: Vec::new(),
                    log: None,
                });
                continue;
            }
        }
        let layer_started = Instant::now();
        let build = tempfile::Builder::new()
            .prefix(&format!("{}-", layer.short_hash()))
            .tempdir_in(store.builds())
            .map_err(|e| Error::io("create a build directory in", store.builds(), e))?;
        let ropts = RenderOptions {
            modern_packer: crate::tools::is_modern_packer(tools.packer_version()?),
            source_ami: source.id.clone(),
            parent_ami: parent_ami.clone(),
            ec2_endpoint: endpoint.url.clone().unwrap_or_default(),
            run_tags: vec![
                ("parbake:owner".into(), owner.clone()),
                ("parbake:run-id".into(), run_id.clone()),
                (
                    "parbake:expires-at".into(),
                    (now_epoch() + BUILDER_TTL_S).to_string(),
                ),
            ],
            extra_ami_tags: vec![("parbake:created-at".into(), now_epoch().to_string())],
            ami_name_suffix: if opts.force {
                format!("-r{}", now_epoch())
            } else {
                String::new()
            },
            ..RenderOptions::default()
        };
        let run = PackerRun {
            dir: build.path(),
            tools: &tools,
            store: &store,
            label: &label,
            only: Some(only),
            what: &what,
            extra_args: pause.clone(),
        };
        let (timings, log) = packer_build(project, &plan, layer, &ropts, &run, &mut progress)?;
        let ami = manifest_ami(&build.path().join("packer-manifest.json"), &src.region)?;
        let kept = store
            .logs()
            .join(format!("bake-{}-{}.log", layer.short_hash(), now_epoch()));
        let _ = std::fs::copy(&log, &kept);
        let duration = (layer_started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        progress.line(&format!("{label}: baked {ami} in {duration:.1}s"));
        parent_ami = ami.clone();
        layers.push(LayerResult {
            index: layer.index,
            name: layer.name.clone(),
            hash: layer.hash.clone(),
            outcome: "baked".into(),
            duration_s: duration,
            image: ami,
            roles: timings.roles,
            log: Some(kept),
        });
    }
    progress.finish();
    Ok(BakeReport {
        stack: plan.stack.clone(),
        target: Target::Aws,
        accelerator: what,
        layers,
        duration_s: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    })
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
