//! Issue 27 item 2, `distribute:`: each bad-input class refused at its file and line with a
//! hint, and what the layer hash covers (nothing of it). The moto tests that copy and share
//! are in moto/distribute.rs.

use parbake::plan::{self, Target};

use crate::util::{request, Fixture};

/// A good block: two regions with their own customer keys, two accounts, an OU.
const GOOD: &str = "    distribute:
      regions:
        - {region: eu-west-1, kms_key_id: \"arn:aws:kms:eu-west-1:123456789012:alias/ami-key\"}
        - region: eu-central-1
          kms_key_id: alias/ami-key
      accounts: [\"111111111111\", \"222222222222\"]
      organizational_units: [\"arn:aws:organizations::123456789012:ou/o-a1b2c3d4e5/ou-ab12-cdef3456\"]";

/// Adds `lines` under the image's `instance_type` line; the text written.
fn set_image(f: &Fixture, lines: &str) -> String {
    let image = f.root().join("images/debian12.yml");
    let text = std::fs::read_to_string(&image).unwrap().replace(
        "    instance_type: t3.small\n",
        &format!("    instance_type: t3.small\n{lines}\n"),
    );
    std::fs::write(&image, &text).unwrap();
    text
}

/// Replaces the stack's `launch_vars: {}` with `lines`; the text written.
fn set_stack(f: &Fixture, lines: &str) -> String {
    let stack = f.root().join("images/stacks/web.yml");
    let text = std::fs::read_to_string(&stack)
        .unwrap()
        .replace("launch_vars: {}\n", &format!("{lines}\n"));
    std::fs::write(&stack, &text).unwrap();
    text
}

/// `plan web --target aws` exits 1 naming `file` at the line of `written` that holds `at`,
/// with `says` and a hint.
fn refused_at(f: &Fixture, file: &str, written: &str, at: &str, says: &str) {
    let r = f.run(&["plan", "web", "--target", "aws"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let line = written.lines().position(|l| l.contains(at)).unwrap() + 1;
    for needle in [&format!("{file}:{line}:"), says, "hint:"] {
        assert!(
            r.stderr.contains(needle),
            "missing {needle:?} in {}",
            r.stderr
        );
    }
}

#[test]
fn a_good_distribute_block_plans() {
    let f = Fixture::example();
    set_image(&f, GOOD);
    set_stack(
        &f,
        "launch_vars: {}\ndistribute: {accounts: [\"333333333333\"], public: true}",
    );
    let r = f.run(&["plan", "web", "--target", "aws"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_region_that_is_not_a_region_is_refused() {
    let f = Fixture::example();
    let t = set_image(&f, "    distribute:\n      regions:\n        - region: eu-west-1\n        - {region: \"Europe\"}");
    refused_at(
        &f,
        "images/debian12.yml",
        &t,
        "Europe",
        "\"Europe\" is not an AWS region",
    );
}

#[test]
fn the_home_region_a_repeated_region_and_one_in_copy_to_regions_are_refused() {
    let f = Fixture::example();
    let t = set_image(&f, "    distribute:\n      regions: [{region: us-east-1}]");
    refused_at(
        &f,
        "images/debian12.yml",
        &t,
        "[{region: us-east-1}]",
        "the region the AMI is baked in",
    );
    let f = Fixture::example();
    let t = set_image(&f, "    distribute:\n      regions:\n        - region: eu-west-1\n        - region: eu-west-1 # again");
    refused_at(&f, "images/debian12.yml", &t, "# again", "listed twice");
    let f = Fixture::example();
    let t = set_image(&f, "    distribute:\n      regions: [{region: eu-west-2}]")
        .replace("copy_to_regions: []", "copy_to_regions: [eu-west-2]");
    std::fs::write(f.root().join("images/debian12.yml"), &t).unwrap();
    refused_at(
        &f,
        "images/debian12.yml",
        &t,
        "{region: eu-west-2}",
        "also in `copy_to_regions`",
    );
}

#[test]
fn a_kms_key_that_is_not_a_key_arn_or_alias_is_refused() {
    for (key, says) in [
        ("arn:aws:kms:eu-west-1:1234:key/x", "is not a KMS key"),
        ("ami-key", "is not a KMS key"),
        ("alias/aws/ebs", "AWS-managed key"),
        (
            "arn:aws:kms:us-west-2:123456789012:alias/k",
            "is in us-west-2, not in eu-west-1",
        ),
    ] {
        let f = Fixture::example();
        let t = set_image(&f, &format!("    distribute:\n      regions:\n        - region: eu-west-1\n          kms_key_id: \"{key}\""));
        refused_at(&f, "images/debian12.yml", &t, "kms_key_id", says);
    }
}

#[test]
fn an_account_id_that_is_not_12_digits_is_refused() {
    let f = Fixture::example();
    let t = set_image(
        &f,
        "    distribute:\n      accounts:\n        - \"111111111111\"\n        - \"12345\"",
    );
    refused_at(
        &f,
        "images/debian12.yml",
        &t,
        "\"12345\"",
        "\"12345\" is not a 12-digit AWS account id",
    );
    let f = Fixture::example();
    let t = set_stack(
        &f,
        "launch_vars: {}\ndistribute:\n  accounts: [\"1234567890123\"]",
    );
    refused_at(
        &f,
        "images/stacks/web.yml",
        &t,
        "1234567890123",
        "not a 12-digit",
    );
}

#[test]
fn an_ou_arn_that_is_not_one_is_refused() {
    let f = Fixture::example();
    let t = set_stack(
        &f,
        "launch_vars: {}\ndistribute:\n  organizational_units:\n    - ou-ab12-cdef3456",
    );
    refused_at(
        &f,
        "images/stacks/web.yml",
        &t,
        "- ou-ab12",
        "is not an organizational unit ARN",
    );
}

#[test]
fn a_public_share_not_written_as_public_true_is_refused() {
    let f = Fixture::example();
    let t = set_image(&f, "    distribute:\n      accounts: [all]");
    refused_at(
        &f,
        "images/debian12.yml",
        &t,
        "[all]",
        "share the AMI with everyone",
    );
    let f = Fixture::example();
    let t = set_stack(&f, "launch_vars: {}\ndistribute:\n  public: \"yes\"");
    let r = f.run(&["plan", "web", "--target", "aws"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let line = t.lines().position(|l| l.contains("public:")).unwrap() + 1;
    assert!(
        r.stderr.contains(&format!("images/stacks/web.yml:{line}:")),
        "{}",
        r.stderr
    );
}

#[test]
fn public_true_with_secrets_in_launch_vars_is_refused() {
    let secret = "launch_vars:\n  db_password: !secret ssm:/web/db";
    let f = Fixture::example();
    let t = set_stack(&f, &format!("{secret}\ndistribute:\n  public: true"));
    refused_at(
        &f,
        "images/stacks/web.yml",
        &t,
        "public: true",
        "secret in the launch vars (`db_password`)",
    );
    // the image's public: true reaches a stack without its own distribute
    let f = Fixture::example();
    set_image(&f, "    distribute: {public: true}");
    let t = set_stack(&f, secret);
    refused_at(
        &f,
        "images/stacks/web.yml",
        &t,
        "db_password",
        "AMIs are public",
    );
}

fn aws_hashes(f: &Fixture) -> Vec<String> {
    let project = parbake::project::load(f.root()).unwrap();
    let mut req = request("web", &["nginx"], Target::Aws);
    req.source_identity = Some("aws:us-east-1:ami-0123".into());
    let p = plan::plan(&project, &req).unwrap();
    p.layers.iter().map(|l| l.hash.clone()).collect()
}

/// Distribution does not change what is in an AMI: not in the layer hash, so listing a region
/// or an account rebakes nothing (the cached AMI is distributed instead).
#[test]
fn distribute_is_not_in_the_layer_hash() {
    let base = aws_hashes(&Fixture::example());
    let f = Fixture::example();
    set_image(&f, GOOD);
    set_stack(
        &f,
        "launch_vars: {}\ndistribute: {accounts: [\"333333333333\"], public: true}",
    );
    assert_eq!(aws_hashes(&f), base);
}

/// `plan --target aws` shows where the launched AMI goes (snapshot of that section), and
/// `--json` carries the block; the stack's `distribute` replaces the image's.
#[test]
fn plan_shows_the_distribution() {
    let f = Fixture::example();
    set_image(&f, GOOD);
    let r = f.run(&["plan", "web", "--target", "aws"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let section: String = r
        .stdout
        .split("\n\n")
        .find(|p| p.starts_with("distributes layer"))
        .unwrap_or_else(|| panic!("no distribution in {}", r.stdout))
        .to_string();
    insta::assert_snapshot!(section);
    set_stack(&f, "launch_vars: {}\ndistribute: {public: true}");
    let r = f.run(&["plan", "web", "--target", "aws", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["distribute"]["public"], true);
    assert_eq!(plan["distribute"]["regions"], serde_json::json!([]));
    let qemu = f.run(&["plan", "web", "--target", "qemu", "--format", "json"]);
    assert!(!qemu.stdout.contains("distribute"), "{}", qemu.stdout);
}
