//! What the moto tests share: the [`aws`] test builder and [`AwsProject`] context, the
//! example project in a test's own region, and small EC2 reads. The tests `use
//! super::support::*`, so it also brings the names they all use.

pub use std::collections::{BTreeMap, BTreeSet};
pub use std::path::Path;
pub use std::process::Command;
pub use std::time::{Duration, Instant};

pub use parbake::targets::aws::ec2::{Ec2, Endpoint};
pub use parbake::targets::aws::scope::Scope;

pub use crate::util::{launch_spec, repo, Fixture, Test};

pub use super::server::{actions_dir, moto};

/// The scope of the example project's AMIs (its `parbake.yml`).
pub fn example_scope() -> Scope {
    Scope::Project("parbake-example".into())
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// How many instances tagged `parbake:owner` = `owner` are in `state` in `region`.
pub async fn instances_of(region: &str, owner: &str, state: &str) -> usize {
    let d = ec2(region)
        .await
        .sdk()
        .describe_instances()
        .filters(parbake::targets::aws::ec2::filter(
            "tag:parbake:owner",
            owner,
        ))
        .filters(parbake::targets::aws::ec2::filter(
            "instance-state-name",
            state,
        ))
        .send()
        .await
        .unwrap();
    d.reservations().iter().map(|r| r.instances().len()).sum()
}

/// The instances with tag `key` = `value`, whatever their state.
pub async fn instances_tagged(
    ec2: &Ec2,
    key: &str,
    value: &str,
) -> Vec<aws_sdk_ec2::types::Instance> {
    let d = ec2
        .sdk()
        .describe_instances()
        .filters(parbake::targets::aws::ec2::filter(
            &format!("tag:{key}"),
            value,
        ))
        .send()
        .await
        .unwrap();
    d.reservations()
        .iter()
        .flat_map(|r| r.instances().iter().cloned())
        .collect()
}

/// One instance, by id.
pub async fn instance(ec2: &Ec2, id: &str) -> aws_sdk_ec2::types::Instance {
    let d = ec2
        .sdk()
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    d.reservations()[0].instances()[0].clone()
}

pub async fn ec2(region: &str) -> Ec2 {
    Ec2::connect(
        region,
        &Endpoint {
            url: Some(moto().url.clone()),
            static_credentials: Some(("testing".into(), "testing".into())),
        },
    )
    .await
}

pub fn spec_roles(spec: &serde_json::Value) -> Vec<String> {
    spec["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

pub async fn tags_of_image(
    ec2: &Ec2,
    ami: &str,
) -> (std::collections::BTreeMap<String, String>, Vec<String>) {
    let resp = ec2
        .sdk()
        .describe_images()
        .image_ids(ami)
        .send()
        .await
        .unwrap();
    let img = &resp.images()[0];
    let tags = img
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    let snaps = img
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(String::from))
        .collect();
    (tags, snaps)
}

/// The example project with its image in its own region and its own base layer (a time zone
/// no other test uses): what a test bakes there is its own.
pub fn example_in(region: &str, time_zone: &str) -> Fixture {
    let f = Fixture::example();
    f.replace(
        "images/debian12.yml",
        "region: us-east-1",
        &format!("region: {region}"),
    )
    .replace(
        "images/debian12.yml",
        "base_timezone: Etc/UTC",
        &format!("base_timezone: {time_zone}"),
    );
    f
}

/// `parbake` in `project` against moto, with `store` as its store and the test-only
/// provisioning switch on: a [`Test`] that must exit 0 unless told.
pub fn aws(project: &Path, store: &Path) -> Test {
    Test::new(project)
        .env("PARBAKE_STORE", store)
        .env("PARBAKE_EC2_ENDPOINT", &moto().url)
        .env("PARBAKE_TEST_SKIP_PROVISIONING", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
}

/// `parbake` in the repository's own example project against moto (see [`aws`]).
pub fn in_repo(store: &Path) -> Test {
    aws(&repo(), store)
}

/// A moto test's own world, as uv's `TestContext`: a project (most often the example in the
/// test's own region and base layer) and a store of its own.
pub struct AwsProject {
    pub f: Fixture,
    pub store: tempfile::TempDir,
}

impl AwsProject {
    pub fn new(f: Fixture) -> AwsProject {
        AwsProject {
            f,
            store: tempfile::tempdir().unwrap(),
        }
    }

    /// The example project in `region` with its own base layer (see [`example_in`]).
    pub fn example(region: &str, time_zone: &str) -> AwsProject {
        AwsProject::new(example_in(region, time_zone))
    }

    pub fn root(&self) -> &Path {
        self.f.root()
    }

    pub fn store(&self) -> &Path {
        self.store.path()
    }

    /// `parbake ARGS` here (see [`aws`]).
    pub fn parbake(&self, args: &[&str]) -> Test {
        aws(self.root(), self.store()).args(args)
    }

    /// `parbake ARGS`, which must succeed: its stdout as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        self.parbake(args).json()
    }

    /// `parbake ARGS`, which must succeed: its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.parbake(args).run().stdout
    }

    /// `parbake ARGS`, which must exit 1: its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        self.parbake(args).code(1).run().stderr
    }
}

/// The example project in its own region and base layer, its worker stack publishing as
/// `publish` (YAML) says, and worker baked there: the project and the AMI.
pub fn baked_worker_publishing(
    region: &str,
    time_zone: &str,
    publish: &str,
) -> (AwsProject, String) {
    let p = AwsProject::example(region, time_zone);
    p.f.append(WORKER, publish);
    let bake = p.json(&["bake", "worker", "--target", "aws", "--json"]);
    let ami = bake["layers"][0]["image"].as_str().unwrap().to_string();
    (p, ami)
}

/// The example's worker stack file.
pub const WORKER: &str = "images/stacks/worker.yml";

/// Other user-data for the stack: one launch var set.
pub fn change_a_launch_var(f: &Fixture, stack: &str) {
    f.replace(stack, "launch_vars: {}", "launch_vars: {release: \"2\"}");
}
/// boto3 against moto: an IAM instance profile (IAM is global; moto checks RunInstances'
/// profile exists).
pub fn moto_instance_profile(name: &str) {
    let out = Command::new(repo().join(".venv/bin/python"))
        .args([
            "-c",
            "import boto3,sys; boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing').create_instance_profile(InstanceProfileName=sys.argv[2])",
            &moto().url,
            name,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example project copied with its own project id (`parbake.yml`).
pub fn example_of_project(region: &str, time_zone: &str, id: &str) -> Fixture {
    let f = example_in(region, time_zone);
    f.write("parbake.yml", &format!("project: {id}\n"));
    f
}

/// prune's JSON decisions by AMI: (action, the reasons' kinds, why).
pub fn prune_decisions(
    p: &AwsProject,
    args: &[&str],
) -> BTreeMap<String, (String, Vec<String>, String)> {
    p.json(args)
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap().to_string();
            let kinds = d["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["kind"].as_str().unwrap().to_string())
                .collect();
            (s("ami"), (s("action"), kinds, s("why")))
        })
        .collect()
}

/// The fixture's status line with `state: done` for `stack`, and the runner's console line
/// that carries it (the moto console switch serves it as the instance's console output).
pub fn done_status(stack: &str) -> serde_json::Value {
    let mut status: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/contract/status.json")).unwrap(),
    )
    .unwrap();
    status["state"] = "done".into();
    status["stack"] = stack.into();
    status["error"] = serde_json::Value::Null;
    status
}

/// Writes `status` as the console of `stack`'s instances in `region`.
pub fn console_says(region: &str, stack: &str, status: &serde_json::Value) {
    std::fs::write(
        moto().console_file(region, stack),
        format!("parbake-status {status}\n"),
    )
    .unwrap();
}

/// An instance of the fixture's Debian AMI (for an AMI made by hand from it), its id.
pub async fn debian_instance(c: &aws_sdk_ec2::Client) -> String {
    c.run_instances()
        .image_id("ami-0de0b12a7f3c000b2")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string()
}

/// One version (`"1"`, `"$Default"`) of a launch template, by name.
pub async fn template_version(
    region: &str,
    name: &str,
    version: &str,
) -> aws_sdk_ec2::types::LaunchTemplateVersion {
    ec2(region)
        .await
        .sdk()
        .describe_launch_template_versions()
        .launch_template_name(name)
        .versions(version)
        .send()
        .await
        .unwrap()
        .launch_template_versions()[0]
        .clone()
}
