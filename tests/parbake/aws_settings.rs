//! Issue 28, production settings of the aws source and the stacks: builder networking,
//! encryption, the root volume and tags. The var-file they render (snapshot), real
//! `packer validate` on it, one located error per bad-input class, and what the layer hash
//! covers. The moto tests that read them back from EC2 are in moto.rs.

use parbake::plan::{self, Target};
use parbake::render::{self, RenderOptions};

use crate::util::{request, Fixture};

/// Every production setting, as a user writes them under `sources.aws`.
pub const ALL_SETTINGS: &str = "    instance_type: t3.small
    ssh_interface: session_manager
    builder_instance_profile: parbake-builder
    security_group_ids: [sg-0abc1234]
    vpc_filter:
      \"tag:Name\": build-vpc
    subnet_filter:
      \"tag:Name\": \"build-private-*\"
      availability-zone: us-east-1a
    encrypt:
      kms_key_id: alias/parbake-ami
    volume: {type: gp3, size_gb: 20, iops: 4000, throughput: 250}
    tags:
      team: platform
      cost-center: \"1234\"
      Name: parbake-debian12";

/// The example project with every setting in the image and `tags` in the web stack.
fn with_all_settings() -> Fixture {
    let f = Fixture::example();
    set_source(&f, ALL_SETTINGS);
    let stack = f.root().join("images/stacks/web.yml");
    let text = std::fs::read_to_string(&stack).unwrap();
    std::fs::write(
        &stack,
        format!("{text}tags:\n  service: web\n  team: web-team\n"),
    )
    .unwrap();
    f
}

/// Replaces the image's `instance_type` line with `lines` (which start with it).
fn set_source(f: &Fixture, lines: &str) {
    let image = f.root().join("images/debian12.yml");
    let text = std::fs::read_to_string(&image).unwrap();
    assert!(text.contains("    instance_type: t3.small\n"));
    std::fs::write(&image, text.replace("    instance_type: t3.small", lines)).unwrap();
}

fn var_files(f: &Fixture) -> String {
    let project = f.load();
    let plan = plan::plan(&project, &request("web", &["nginx"], Target::Aws)).unwrap();
    let mut out = String::new();
    for file in render::render_all(&project, &plan, &RenderOptions::default()).unwrap() {
        if file.path.ends_with(render::packer::VAR_FILE) {
            out.push_str(&format!("===== {}\n", file.path));
            out.push_str(&String::from_utf8(file.contents).expect("text"));
        }
    }
    out
}

/// The var-files with every setting: builder networking, encryption and the gp3 root volume
/// as JSON values; the image's tags on both layers, the stack's (over the image's `team`)
/// only on the stack layer; parbake's builder `Name` kept on the builder.
#[test]
fn aws_var_files_with_every_production_setting() {
    let out = var_files(&with_all_settings());
    insta::with_settings!({filters => vec![
        (r"[0-9a-f]{64}", "[HASH]"),
        (r"[0-9a-f]{16}", "[HASH16]"),
        (r"[0-9a-f]{12}", "[HASH12]"),
        (r"[0-9a-f]{8}", "[HASH8]"),
    ]}, {
        insta::assert_snapshot!(out);
    });
}

/// Real `packer validate` (Debian's 1.6.6) on the template with every setting filled in.
#[test]
fn packer_validate_passes_with_every_production_setting() {
    let f = with_all_settings();
    let r = f.run(&["validate", "web", "--target", "aws"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("packer validate") || r.stderr.contains("packer validate"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
}

/// One bad value per class, each refused at its file and line with a hint, before anything
/// reaches a var-file.
#[test]
fn bad_production_settings_are_refused_at_their_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "    ssh_interface: public_dns",
            "sources.aws.ssh_interface",
            "unknown variant",
        ),
        (
            "    ssh_interface: session_manager",
            "sources.aws.ssh_interface",
            "needs `builder_instance_profile`",
        ),
        (
            "    builder_instance_profile: \"arn:aws:iam::1:instance-profile/b\"",
            "sources.aws.builder_instance_profile",
            "not an IAM instance profile name",
        ),
        (
            "    security_group_ids: [\"sg-0abc1234\\\"}\"]",
            "sources.aws.security_group_ids",
            "not a security group id",
        ),
        (
            "    ssh_source_cidrs: [10.0.0.1/16]",
            "sources.aws.ssh_source_cidrs",
            "10.0.0.0/16",
        ),
        (
            "    ssh_source_cidrs: [\"10.0.0.0/8\\\"\"]",
            "sources.aws.ssh_source_cidrs",
            "not an IPv4 CIDR block",
        ),
        (
            "    security_group_ids: [sg-0abc1234]\n    ssh_source_cidrs: [10.0.0.0/8]",
            "sources.aws.ssh_source_cidrs",
            "exclude each other",
        ),
        (
            "    vpc_id: vpc-XYZ",
            "sources.aws.vpc_id",
            "not a VPC id",
        ),
        (
            "    vpc_id: vpc-0abc1234\n    vpc_filter: {isDefault: \"true\"}",
            "sources.aws.vpc_filter",
            "exclude each other",
        ),
        (
            "    subnet_id: subnet-0abc1234\n    subnet_filter: {\"tag:Name\": x}",
            "sources.aws.subnet_filter",
            "exclude each other",
        ),
        (
            "    subnet_filter:\n      \"tag:Name\\\"}\": x",
            "sources.aws.subnet_filter",
            "not an EC2 filter name",
        ),
        (
            "    subnet_filter:\n      \"tag:Name\": \"${var.x}\"",
            "sources.aws.subnet_filter",
            "not a filter value",
        ),
        (
            "    encrypt: {kms_key_id: \"alias/a b\"}",
            "sources.aws.encrypt.kms_key_id",
            "not a KMS key",
        ),
        (
            "    encrypt:\n      kms_key_id: alias/k\n    copy_to_regions: [eu-west-1]",
            "sources.aws.encrypt.kms_key_id",
            "regional",
        ),
        (
            "    volume: {type: st1}",
            "sources.aws.volume",
            "unknown variant",
        ),
        (
            "    volume:\n      type: gp3\n      size_gb: 70000",
            "sources.aws.volume.size_gb",
            "out of range for gp3",
        ),
        (
            "    volume:\n      type: gp2\n      iops: 3000",
            "sources.aws.volume.iops",
            "take no provisioned IOPS",
        ),
        (
            "    volume:\n      type: gp3\n      iops: 20000",
            "sources.aws.volume.iops",
            "out of range for gp3",
        ),
        (
            "    volume:\n      type: gp3\n      size_gb: 8\n      iops: 6000",
            "sources.aws.volume.iops",
            "IOPS per GiB",
        ),
        (
            "    volume:\n      type: io2\n      size_gb: 8",
            "sources.aws.volume",
            "needs `iops`",
        ),
        (
            "    volume:\n      type: io1\n      size_gb: 20\n      iops: 1000\n      throughput: 200",
            "sources.aws.volume.throughput",
            "take no throughput",
        ),
        (
            "    volume:\n      type: gp3\n      throughput: 1000",
            "sources.aws.volume.throughput",
            "needs at least 4000 IOPS",
        ),
        (
            "    volume:\n      type: gp3\n      iops: 8000\n      throughput: 1200",
            "sources.aws.volume.throughput",
            "out of range for gp3",
        ),
        (
            "    tags:\n      \"parbake:layer-hash\": forged",
            "sources.aws.tags",
            "parbake's own",
        ),
        (
            "    tags:\n      \"aws:cloudformation:stack-name\": x",
            "sources.aws.tags",
            "reserves keys starting with `aws:`",
        ),
        (
            "    tags:\n      \"team\\\"}\": x",
            "sources.aws.tags",
            "not a tag key you can set",
        ),
        (
            "    tags:\n      team: \"a\\nb\"",
            "sources.aws.tags",
            "not one EC2 takes",
        ),
    ];
    let f = Fixture::example();
    let image = f.root().join("images/debian12.yml");
    let original = std::fs::read_to_string(&image).unwrap();
    for (lines, field, message) in cases {
        let mut text = original.replace(
            "    instance_type: t3.small",
            &format!("    instance_type: t3.small\n{lines}"),
        );
        if lines.contains("copy_to_regions") {
            text = text.replace("    copy_to_regions: []\n", "");
        }
        std::fs::write(&image, &text).unwrap();
        let r = f.run(&["render", "web", "--target", "aws", "--output", "out"]);
        assert_eq!(r.code, 1, "{lines}: {}", r.stderr);
        for needle in ["images/debian12.yml:", field, message, "hint:"] {
            assert!(
                r.stderr.contains(needle),
                "{lines}: missing {needle:?} in {}",
                r.stderr
            );
        }
        // the error's line is one of the inserted setting's lines
        let first = text
            .lines()
            .position(|l| l == lines.lines().next().unwrap())
            .unwrap()
            + 1;
        let line: usize = r
            .stderr
            .split("images/debian12.yml:")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            (first..first + lines.lines().count()).contains(&line),
            "{lines}: not at lines {first}..: {}",
            r.stderr
        );
        assert!(!f.root().join("out").exists(), "{lines}: nothing written");
    }
    std::fs::write(&image, &original).unwrap();
}

/// The tag limits: at most 15 of the user's per resource (image and stack together), and a
/// stack's `parbake:` keys refused in the stack file.
#[test]
fn tag_limits_are_enforced_in_image_and_stack() {
    let f = Fixture::example();
    let many: String = (0..16).map(|i| format!("\n      t{i}: v")).collect();
    set_source(&f, &format!("    instance_type: t3.small\n    tags:{many}"));
    plan_refused(&f, &["16 tags; an AMI takes at most 15"]);

    let f = Fixture::example();
    let ten: String = (0..10).map(|i| format!("\n      i{i}: v")).collect();
    set_source(&f, &format!("    instance_type: t3.small\n    tags:{ten}"));
    let stack = f.root().join("images/stacks/web.yml");
    let text = std::fs::read_to_string(&stack).unwrap();
    let six: String = (0..6).map(|i| format!("\n  s{i}: v")).collect();
    std::fs::write(&stack, format!("{text}tags:{six}\n")).unwrap();
    plan_refused(&f, &["images/stacks/web.yml:", "16 tags with the image's"]);
    std::fs::write(&stack, format!("{text}tags:\n  \"parbake:stack\": other\n")).unwrap();
    plan_refused(&f, &["images/stacks/web.yml:", "parbake's own"]);
}

/// `plan web --target aws` exits 1 and its stderr holds each of `says`: its stderr.
fn plan_refused(f: &Fixture, says: &[&str]) -> String {
    says.iter()
        .fold(
            f.parbake(&["plan", "web", "--target", "aws"]).code(1),
            |t, s| t.stderr_contains(s),
        )
        .run()
        .stderr
}

fn aws_hashes(f: &Fixture) -> (String, String) {
    let project = parbake::project::load(f.root()).unwrap();
    let mut req = request("web", &["nginx"], Target::Aws);
    req.source_identity = Some("aws:us-east-1:ami-0123".into());
    let p = plan::plan(&project, &req).unwrap();
    (p.layers[0].hash.clone(), p.layers[1].hash.clone())
}

/// `encrypt` and `volume` change the AMI, so they are in the layer hash (and an image without
/// them keeps its hash); builder networking and tags change neither the AMI's contents nor
/// the hash (tags are re-applied on a cache hit instead).
#[test]
fn encryption_and_volume_are_in_the_layer_hash_networking_and_tags_are_not() {
    let plain = Fixture::example();
    let base = aws_hashes(&plain);
    for (what, lines, changes) in [
        ("encrypt", "    instance_type: t3.small\n    encrypt: {}", true),
        ("kms key", "    instance_type: t3.small\n    encrypt: {kms_key_id: alias/k}", true),
        ("volume", "    instance_type: t3.small\n    volume: {type: gp3}", true),
        ("volume size", "    instance_type: t3.small\n    volume: {type: gp3, size_gb: 30}", true),
        ("tags", "    instance_type: t3.small\n    tags: {team: a}", false),
        (
            "networking",
            "    instance_type: t3.small\n    ssh_interface: private_ip\n    security_group_ids: [sg-0abc1234]\n    vpc_id: vpc-0abc1234\n    subnet_filter: {\"tag:Name\": x}\n    builder_instance_profile: b",
            false,
        ),
    ] {
        let f = Fixture::example();
        set_source(&f, lines);
        let h = aws_hashes(&f);
        if changes {
            assert_ne!(h.0, base.0, "{what} changes layer 1");
            assert_ne!(h.1, base.1, "{what} changes layer 2");
        } else {
            assert_eq!(h, base, "{what} is not in the hash");
        }
    }
    // the stack's tags do not count either
    let stack = plain.root().join("images/stacks/web.yml");
    let text = std::fs::read_to_string(&stack).unwrap();
    std::fs::write(&stack, format!("{text}tags:\n  service: web\n")).unwrap();
    assert_eq!(aws_hashes(&plain), base);
}

/// A hostile tag key or filter name (an escape sequence, a line break) is shown escaped in the
/// error, never raw on the terminal.
#[test]
fn hostile_keys_are_shown_escaped_in_errors() {
    for lines in [
        "    tags:\n      \"a\\e[31mred\\nb\": x",
        "    subnet_filter:\n      \"a\\e[31mred\\nb\": x",
    ] {
        let f = Fixture::example();
        set_source(&f, &format!("    instance_type: t3.small\n{lines}"));
        let err = plan_refused(&f, &["\\u{1b}[31mred\\nb"]);
        assert!(!err.contains('\u{1b}'), "{err:?}");
    }
}
