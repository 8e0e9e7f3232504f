//! arm64 beside x86_64 (issue 27): the real Packer amazon-ebs builder bakes from an arm64
//! source AMI on a Graviton instance type against moto, with a single-architecture aws source
//! and today's code.
//!
//! What moto 5.2.5 records (checked here): DescribeImages' `architecture` filter is honoured;
//! an instance's architecture is its AMI's, whatever its instance type, and moto never checks
//! the type against the AMI (t3.small runs an arm64 AMI); CreateImage takes the instance's
//! architecture, so the AMI Packer bakes says arm64.

use super::support::*;

/// A region and a base layer (time zone) no other moto test uses.
const REGION: &str = "ca-west-1";
const TIME_ZONE: &str = "America/Edmonton";
/// tests/fixtures/moto-amis.json: the only arm64 Debian 12 AMI (moto's own built-in AMIs have
/// no Debian).
const ARM64_DEBIAN: &str = "ami-0de0b12a7f3c00a01";
const ARM64_DEBIAN_NAME: &str = "debian-12-arm64-20240401-1200";
/// The x86_64 Debian 12 the example's source resolves to (newest, with a tie-break).
const X86_DEBIAN: &str = "ami-0de0b12a7f3c000b2";

#[test]
fn an_arm64_source_bakes_with_real_packer_on_a_graviton_type() {
    let x86 = AwsProject::example(REGION, TIME_ZONE);
    let arm = AwsProject::example(REGION, TIME_ZONE);
    an_arm64_graviton_source(&arm.f);
    let arm_bake = arm
        .parbake(&["bake", "web", "--target", "aws", "--json"])
        .stderr_contains(&format!(
            "source AMI in {REGION}: {ARM64_DEBIAN} ({ARM64_DEBIAN_NAME}"
        ))
        .stderr_contains(&format!("baking base, users with Packer (ec2 {REGION})"))
        .json();
    let x86_bake = x86.json(&["bake", "web", "--target", "aws", "--json"]);
    let (arm_ami, arm_hash) = baked_layer(&arm_bake);
    let (x86_ami, x86_hash) = baked_layer(&x86_bake);
    assert_ne!(arm_hash, x86_hash, "the source AMI is in the layer hash");
    rt().block_on(async {
        let ec2 = ec2(REGION).await;
        assert_eq!(architecture_of(&ec2, &arm_ami).await, "arm64");
        assert_eq!(architecture_of(&ec2, &x86_ami).await, "x86_64");
        tags_are_as_for_x86(&ec2, (&arm_ami, &arm_hash), (&x86_ami, &x86_hash)).await;
        the_builder_was_packers_graviton_instance(&ec2, &arm_hash).await;
        the_architecture_filter_is_honoured(&ec2).await;
        moto_runs_an_x86_type_from_an_arm64_ami(&ec2).await;
    });
}

/// The example's aws source made arm64 on t4g.small, one architecture as today.
fn an_arm64_graviton_source(f: &Fixture) {
    f.replace(
        "images/debian12.yml",
        "name: debian-12-amd64-*",
        "name: debian-12-arm64-*",
    )
    .replace(
        "images/debian12.yml",
        "architecture: x86_64",
        "architecture: arm64",
    )
    .replace(
        "images/debian12.yml",
        "instance_type: t3.small",
        "instance_type: t4g.small",
    );
}

/// Layer 1 of a `bake --json` report, which must have been baked: its AMI and hash.
fn baked_layer(rep: &serde_json::Value) -> (String, String) {
    let l1 = &rep["layers"][0];
    assert_eq!(l1["outcome"], "baked", "{rep}");
    let s = |k: &str| l1[k].as_str().unwrap().to_string();
    assert!(s("image").starts_with("ami-"), "{rep}");
    (s("image"), s("hash"))
}

async fn architecture_of(ec2: &Ec2, ami: &str) -> String {
    let d = ec2
        .sdk()
        .describe_images()
        .image_ids(ami)
        .send()
        .await
        .unwrap();
    d.images()[0].architecture().unwrap().as_str().to_string()
}

/// The arm64 AMI has the x86 one's parbake:* tags (no tag names the architecture), with the
/// same values but for what follows from its own source: the source and parent (the arm64
/// Debian), the hashes, the source settings' digest in `inputs`, and the times.
async fn tags_are_as_for_x86(
    ec2: &Ec2,
    (arm, arm_hash): (&str, &str),
    (x86, x86_hash): (&str, &str),
) {
    let (a, _) = tags_of_image(ec2, arm).await;
    let (x, _) = tags_of_image(ec2, x86).await;
    let keys = |t: &BTreeMap<String, String>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&x));
    assert_eq!(a["parbake:layer-hash"], arm_hash);
    assert_eq!(x["parbake:layer-hash"], x86_hash);
    assert_eq!(a["parbake:source-ami"], ARM64_DEBIAN);
    assert_eq!(a["parbake:parent-ami"], ARM64_DEBIAN);
    assert_eq!(x["parbake:source-ami"], X86_DEBIAN);
    assert_eq!(a["parbake:image"], "debian12");
    assert_eq!(a["parbake:baked"], "base,users");
    let varying = [
        "parbake:layer-hash",
        "parbake:run-hash",
        "parbake:source-ami",
        "parbake:parent-ami",
        "parbake:inputs",
        "parbake:created-at",
        "parbake:bake-seconds",
    ];
    for (k, v) in &a {
        if !varying.contains(&k.as_str()) {
            assert_eq!(&x[k], v, "tag {k}");
        }
    }
    let (a_inputs, a_source) = without_source_settings(&a["parbake:inputs"]);
    let (x_inputs, x_source) = without_source_settings(&x["parbake:inputs"]);
    assert_eq!(a_inputs, x_inputs);
    assert_ne!(
        a_source, x_source,
        "arm64 and t4g.small are source settings"
    );
}

/// An `inputs` tag without its `source settings=` part, and that part.
fn without_source_settings(inputs: &str) -> (Vec<&str>, &str) {
    let (source, rest): (Vec<&str>, Vec<&str>) = inputs
        .split(';')
        .partition(|p| p.starts_with("source settings="));
    assert_eq!(source.len(), 1, "{inputs}");
    (rest, source[0])
}

/// The builder instance of layer `hash`: run by Packer (its temporary key pair) from the arm64
/// Debian on t4g.small, arm64 as moto records it, and not left running.
async fn the_builder_was_packers_graviton_instance(ec2: &Ec2, hash: &str) {
    let d = ec2
        .sdk()
        .describe_instances()
        .filters(parbake::targets::aws::ec2::filter(
            "tag:parbake:layer-hash",
            hash,
        ))
        .send()
        .await
        .unwrap();
    let instances: Vec<_> = d
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(instances.len(), 1, "{instances:?}");
    let i = instances[0];
    assert_eq!(i.image_id(), Some(ARM64_DEBIAN));
    assert_eq!(i.instance_type().map(|t| t.as_str()), Some("t4g.small"));
    assert_eq!(i.architecture().map(|a| a.as_str()), Some("arm64"));
    assert!(
        i.key_name().is_some_and(|k| k.starts_with("packer_")),
        "{i:?}"
    );
    assert_ne!(
        i.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("running")
    );
}

/// moto honours DescribeImages' `architecture` filter: of every Debian 12 name, arm64 keeps
/// only the arm64 AMI (the others, amd64 and backports, are x86_64).
async fn the_architecture_filter_is_honoured(ec2: &Ec2) {
    let ids = |arch: &'static str| async move {
        ec2.describe_images(
            &["136693071363".to_string()],
            vec![
                parbake::targets::aws::ec2::filter("name", "debian-12-*"),
                parbake::targets::aws::ec2::filter("architecture", arch),
            ],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        ids("arm64").await,
        BTreeSet::from([ARM64_DEBIAN.to_string()])
    );
    let x86 = ids("x86_64").await;
    assert_eq!(x86.len(), 7, "{x86:?}");
    assert!(x86.contains(X86_DEBIAN) && !x86.contains(ARM64_DEBIAN));
}

/// moto never checks an instance type against its AMI's architecture (EC2 refuses t3.small
/// with an arm64 AMI): a mismatch parbake must catch itself is not caught by moto, so no moto
/// test can prove it is.
async fn moto_runs_an_x86_type_from_an_arm64_ami(ec2: &Ec2) {
    let run = ec2
        .sdk()
        .run_instances()
        .image_id(ARM64_DEBIAN)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("moto accepts t3.small with an arm64 AMI");
    let i = &run.instances()[0];
    assert_eq!(i.architecture().map(|a| a.as_str()), Some("arm64"));
    ec2.sdk()
        .terminate_instances()
        .instance_ids(i.instance_id().unwrap())
        .send()
        .await
        .unwrap();
}
