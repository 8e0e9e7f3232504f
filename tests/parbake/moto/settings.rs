//! Production settings of the aws source through real Packer amazon-ebs (Debian's 1.6.6)
//! against moto.

use super::support::*;

const IMAGE: &str = "images/debian12.yml";
/// Issue 28, production settings, through real Packer amazon-ebs (Debian's 1.6.6) against
/// moto. Read back:
/// - the builder instance (held running with the test pause): its security group, instance
///   profile, a default subnet of the default VPC (chosen by `vpc_filter`/`subnet_filter`),
///   its gp3 20 GiB root volume and the user's tags;
/// - both AMIs and their snapshots: the user's tags (the stack's only on the stack layer);
///   `ImdsSupport v2.0` (moto stand-in 5 in tests/fixtures/moto_server.py: moto records no
///   ImdsSupport itself); the snapshot encrypted with the KMS key (stand-in 6: moto's CopyImage
///   ignores encryption);
/// - an instance `launch` starts: the user's tags and `HttpTokens: required`;
/// - the launch template `publish` creates: the user's tags, on it and on the instances and
///   volumes it launches;
/// - a tag edit is a cache hit that re-applies the tags to the AMI and its snapshot.
///
/// moto cannot show: the IOPS and throughput of the volume (it keeps its own 3000 and none),
/// the AMI's block device mapping (always 15 GiB `standard` in moto), and real KMS.
#[test]
fn production_settings_reach_the_builder_the_amis_their_snapshots_and_instances() {
    const REGION: &str = "ap-southeast-4";
    moto_instance_profile("parbake-settings-builder");
    let (vpc, sg) = a_group_in_the_default_vpc(REGION);
    let p = AwsProject::example(REGION, "America/Halifax");
    with_every_production_setting(&p, &sg);
    let owner = format!("settings-{}", std::process::id());
    let bake = p
        .parbake(&[
            "bake",
            "web",
            "--promote",
            "nginx",
            "--target",
            "aws",
            "--json",
        ])
        .envs(&[("PARBAKE_TEST_PAUSE_SECONDS", "4"), ("USER", &owner)]);
    let child = bake.spawn();
    // the builder, while Packer holds it running
    the_builder_has_the_settings(REGION, &owner, &vpc, &sg);
    let rep = bake.finish(child).json();
    let amis: Vec<String> = (0..2)
        .map(|i| rep["layers"][i]["image"].as_str().unwrap().to_string())
        .collect();
    the_amis_and_snapshots_have_the_settings(REGION, &amis);
    a_launched_instance_has_the_tags_and_imdsv2(&p, REGION);
    the_published_template_carries_the_tags(&p, REGION);
    // a tag edit: same layers (cached), the new tags on the AMIs and their snapshots
    p.f.replace(IMAGE, "team: platform", "team: platform-2");
    let again = p.json(&[
        "bake",
        "web",
        "--promote",
        "nginx",
        "--target",
        "aws",
        "--json",
    ]);
    for i in 0..2 {
        assert_eq!(again["layers"][i]["outcome"], "cached", "{again}");
        assert_eq!(again["layers"][i]["image"], rep["layers"][i]["image"]);
    }
    rt().block_on(async {
        let c = ec2(REGION).await;
        for ami in &amis {
            assert_eq!(c.image(ami).await.unwrap().tags["team"], "platform-2");
            let s = first_snapshot(&c, ami).await;
            assert_eq!(
                tag_map(s.tags()).get("team").map(String::as_str),
                Some("platform-2")
            );
        }
    });
}

/// The default VPC of `region` and a security group made in it: their ids.
fn a_group_in_the_default_vpc(region: &str) -> (String, String) {
    rt().block_on(async {
        let c = ec2(region).await;
        let vpcs = c
            .sdk()
            .describe_vpcs()
            .filters(parbake::targets::aws::ec2::filter("isDefault", "true"))
            .send()
            .await
            .unwrap();
        let vpc = vpcs.vpcs()[0].vpc_id().unwrap().to_string();
        let sg = c
            .sdk()
            .create_security_group()
            .group_name("parbake-settings-builders")
            .description("builders reach only from the bastion")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_string();
        (vpc, sg)
    })
}

/// Every production setting in the image's aws source (with `sg` as its group), and tags and
/// a launch template on the web stack.
fn with_every_production_setting(p: &AwsProject, sg: &str) {
    let settings = format!(
        "    instance_type: t3.small
    builder_instance_profile: parbake-settings-builder
    security_group_ids: [{sg}]
    vpc_filter: {{isDefault: \"true\"}}
    subnet_filter: {{default-for-az: \"true\"}}
    encrypt: {{kms_key_id: alias/parbake-ami}}
    volume: {{type: gp3, size_gb: 20, iops: 4000, throughput: 250}}
    tags:
      team: platform
      cost-center: \"1234\""
    );
    p.f.replace(IMAGE, "    instance_type: t3.small", &settings);
    p.f.append(
        "images/stacks/web.yml",
        "tags:\n  service: web\npublish:\n  launch_template: settings-fleet-test\n",
    );
}

fn the_builder_has_the_settings(region: &str, owner: &str, vpc: &str, sg: &str) {
    let builder = running_builder(region, owner);
    let groups: Vec<&str> = builder
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(groups, [sg], "only the user's group, no temporary one");
    assert!(
        builder
            .iam_instance_profile()
            .and_then(|p| p.arn())
            .unwrap_or_default()
            .ends_with("instance-profile/parbake-settings-builder"),
        "{:?}",
        builder.iam_instance_profile()
    );
    assert_eq!(builder.vpc_id(), Some(vpc));
    let builder_tags = tag_map(builder.tags());
    assert_eq!(builder_tags["team"], "platform");
    assert!(builder_tags["Name"].starts_with("parbake-builder-"));
    let volume_id = builder.block_device_mappings()[0]
        .ebs()
        .and_then(|e| e.volume_id())
        .unwrap()
        .to_string();
    rt().block_on(async {
        let c = ec2(region).await;
        let subnet = c
            .sdk()
            .describe_subnets()
            .subnet_ids(builder.subnet_id().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(subnet.subnets()[0].default_for_az(), Some(true));
        let v = c
            .sdk()
            .describe_volumes()
            .volume_ids(&volume_id)
            .send()
            .await
            .unwrap();
        let v = &v.volumes()[0];
        assert_eq!(v.volume_type().map(|t| t.as_str()), Some("gp3"));
        assert_eq!(v.size(), Some(20));
    });
}

/// The first snapshot of `ami`.
async fn first_snapshot(c: &Ec2, ami: &str) -> aws_sdk_ec2::types::Snapshot {
    let snaps = c.snapshots_of(ami).await.unwrap();
    let s = c
        .sdk()
        .describe_snapshots()
        .snapshot_ids(&snaps[0])
        .send()
        .await
        .unwrap();
    s.snapshots()[0].clone()
}

fn the_amis_and_snapshots_have_the_settings(region: &str, amis: &[String]) {
    rt().block_on(async {
        let c = ec2(region).await;
        for (i, ami) in amis.iter().enumerate() {
            let a = c.image(ami).await.unwrap();
            assert_eq!(a.tags["team"], "platform", "layer {i}");
            assert_eq!(a.tags["cost-center"], "1234", "layer {i}");
            assert_eq!(
                a.tags.get("service").map(String::as_str),
                (i == 1).then_some("web")
            );
            let s = first_snapshot(&c, ami).await;
            assert_eq!(
                tag_map(s.tags()).get("team").map(String::as_str),
                Some("platform")
            );
            // stand-in 6: what Packer's encrypt_boot asked CopyImage for
            assert_eq!(s.encrypted(), Some(true), "layer {i}");
            assert_eq!(s.kms_key_id(), Some("alias/parbake-ami"), "layer {i}");
            // stand-in 5: ModifyImageAttribute ImdsSupport as parbake sent it
            let imds = c
                .sdk()
                .describe_image_attribute()
                .image_id(ami)
                .attribute(aws_sdk_ec2::types::ImageAttributeName::ImdsSupport)
                .send()
                .await
                .unwrap();
            assert_eq!(
                imds.imds_support().and_then(|v| v.value()),
                Some("v2.0"),
                "layer {i}"
            );
        }
    });
}

/// An instance parbake starts: the user's tags and IMDSv2 only.
fn a_launched_instance_has_the_tags_and_imdsv2(p: &AwsProject, region: &str) {
    let launched = p.json(&[
        "launch",
        "web",
        "--promote",
        "nginx",
        "--target",
        "aws",
        "--json",
    ]);
    let id = launched["instance_id"].as_str().unwrap().to_string();
    rt().block_on(async {
        let d = ec2(region)
            .await
            .sdk()
            .describe_instances()
            .instance_ids(&id)
            .send()
            .await
            .unwrap();
        let i = &d.reservations()[0].instances()[0];
        let tags = tag_map(i.tags());
        assert_eq!(tags["team"], "platform");
        assert_eq!(tags["service"], "web");
        assert_eq!(tags["parbake:stack"], "web");
        assert_eq!(
            i.metadata_options()
                .and_then(|m| m.http_tokens())
                .map(|t| t.as_str()),
            Some("required")
        );
    });
}

/// The launch template publish creates carries the tags, and puts them on the instances and
/// volumes it launches.
fn the_published_template_carries_the_tags(p: &AwsProject, region: &str) {
    p.json(&[
        "publish",
        "web",
        "--promote",
        "nginx",
        "--target",
        "aws",
        "--unverified",
        "--json",
    ]);
    rt().block_on(async {
        let t = ec2(region)
            .await
            .sdk()
            .describe_launch_templates()
            .launch_template_names("settings-fleet-test")
            .send()
            .await
            .unwrap();
        let tags = tag_map(t.launch_templates()[0].tags());
        assert_eq!(tags["team"], "platform");
        assert_eq!(tags["service"], "web");
        assert_eq!(tags["parbake:stack"], "web");
        let v = template_version(region, "settings-fleet-test", "1").await;
        let specs = v.launch_template_data().unwrap().tag_specifications();
        let kinds: Vec<&str> = specs
            .iter()
            .filter_map(|s| s.resource_type().map(|r| r.as_str()))
            .collect();
        // moto also lists the template's own tags here (`launch-template`); EC2 does not
        assert!(kinds.starts_with(&["instance", "volume"]), "{kinds:?}");
        for s in &specs[..2] {
            let t = tag_map(s.tags());
            assert_eq!(
                (t["team"].as_str(), t["service"].as_str()),
                ("platform", "web")
            );
        }
    });
}

/// `ssh_source_cidrs` replaces Packer's 0.0.0.0/0 on the temporary security group of the
/// builder (real Packer 1.6.6 against moto; read while the test pause holds it running).
#[test]
fn ssh_source_cidrs_replace_the_open_world_on_the_builders_temporary_group() {
    const REGION: &str = "eu-south-2";
    let p = AwsProject::example(REGION, "America/Denver");
    p.f.replace(
        IMAGE,
        "    instance_type: t3.small",
        "    instance_type: t3.small\n    ssh_source_cidrs: [10.20.0.0/16, 192.0.2.7/32]",
    );
    let owner = format!("cidrs-{}", std::process::id());
    let bake = p
        .parbake(&["bake", "worker", "--target", "aws"])
        .envs(&[("PARBAKE_TEST_PAUSE_SECONDS", "3"), ("USER", &owner)]);
    let child = bake.spawn();
    let builder = running_builder(REGION, &owner);
    let group = builder.security_groups()[0].group_id().unwrap().to_string();
    let sources: BTreeSet<String> = rt().block_on(async {
        let g = ec2(REGION)
            .await
            .sdk()
            .describe_security_groups()
            .group_ids(&group)
            .send()
            .await
            .unwrap();
        g.security_groups()[0]
            .ip_permissions()
            .iter()
            .flat_map(|p| p.ip_ranges())
            .filter_map(|r| r.cidr_ip().map(String::from))
            .collect()
    });
    assert_eq!(
        sources,
        BTreeSet::from(["10.20.0.0/16".to_string(), "192.0.2.7/32".to_string()]),
        "group {group}"
    );
    bake.finish(child);
}

/// The first running builder instance of `owner` in `region`, waited for.
fn running_builder(region: &str, owner: &str) -> aws_sdk_ec2::types::Instance {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let found = rt().block_on(async {
            ec2(region)
                .await
                .sdk()
                .describe_instances()
                .filters(parbake::targets::aws::ec2::filter(
                    "tag:parbake:owner",
                    owner,
                ))
                .filters(parbake::targets::aws::ec2::filter(
                    "instance-state-name",
                    "running",
                ))
                .send()
                .await
                .unwrap()
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .next()
                .cloned()
        });
        if let Some(i) = found {
            return i;
        }
        assert!(Instant::now() < deadline, "the builder instance never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tag_map(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}
