//! docs/iam-policy.json held against the calls moto recorded.

use std::collections::BTreeSet;

use crate::util::repo;

use super::support::*;

/// Policy actions the moto tier does not record in [`check_iam_policy`]'s scenario, each
/// with the reason.
const UNRECORDED: &[(&str, &str)] = &[
    ("ec2:DescribeImageAttribute", "Packer amazon-ebs (its documented policy); not called by Packer 1.6.6 on the no-communicator build moto runs"),
    ("ec2:DescribeInstanceStatus", "Packer amazon-ebs (its documented policy); not called on the no-communicator build"),
    ("ec2:DescribeRegions", "Packer amazon-ebs with region validation, which is off against an endpoint"),
    ("ec2:DescribeSnapshots", "distribute's preflight reads the snapshots' encryption (moto tests in moto/distribute.rs); Packer amazon-ebs (its documented policy)"),
    ("ec2:DescribeSubnets", "Packer amazon-ebs with a subnet or VPC filter, which the example does not set"),
    ("ec2:DescribeTags", "Packer amazon-ebs (its documented policy)"),
    ("ec2:RegisterImage", "Packer amazon-ebs (its documented policy); amazon-ebs itself uses CreateImage"),
    ("ec2:CopyImage", "Packer, for copy_to_regions (moto test copy_to_regions_makes_tagged_copies, another region), and distribute.regions (moto test a_stack_is_copied_with_kms_to_two_regions_and_shared_with_two_accounts)"),
    ("ec2:GetEbsEncryptionByDefault", "distribute's preflight for a copy region without kms_key_id (moto test the_preflight_refuses_a_share_the_aws_managed_key_would_block)"),
    ("ec2:GetImageBlockPublicAccessState", "distribute with public: true (moto_server.py stand-in 11, test a_public_share_reads_image_block_public_access_first)"),
    ("ec2:CreateSnapshot", "Packer amazon-ebs (its documented policy); CreateImage makes the snapshots"),
    ("ec2:CreateVolume", "Packer amazon-ebs (its documented policy); RunInstances makes the volume"),
    ("ec2:AttachVolume", "Packer amazon-ebs (its documented policy)"),
    ("ec2:DetachVolume", "Packer amazon-ebs (its documented policy)"),
    ("ec2:ModifyInstanceAttribute", "Packer, for ENA or SR-IOV support, not set by the template"),
    ("ec2:ModifySnapshotAttribute", "distribute's create-volume permission for accounts (moto test a_stack_is_copied_with_kms_to_two_regions_and_shared_with_two_accounts); Packer's snapshot_users, not set by the template"),
    ("ec2:GetPasswordData", "Packer, for Windows builders only"),
    ("ec2:EnableImageDeprecation", "bake, with deprecate_after, which the example does not set; moto 5.2.5 has no deprecation (stand-in test deprecation_sends_the_ami_and_the_time)"),
    ("ec2:DeleteVolume", "gc, for a volume a killed bake left (moto test gc_removes_what_a_killed_bake_left_and_only_that)"),
    ("ec2:DeleteLaunchTemplate", "publish's undo of a template it created, when a later step fails (moto test publish_that_fails_at_ssm_puts_the_launch_template_back_and_says_so)"),
    ("ec2:DeleteLaunchTemplateVersions", "publish's undo of a version it added, when a later step fails (same test; moto_server.py's stand-in)"),
    ("iam:PassRole", "IAM, for instance_profile; moto's tier does not enforce IAM"),
    ("ec2:DescribeVpcs", "Packer amazon-ebs with vpc_filter (moto test production_settings_reach_the_builder_the_amis_their_snapshots_and_instances, another region)"),
    ("kms:DescribeKey", "Packer's encrypt_boot with kms_key_id, through EC2; the moto tier runs no KMS"),
    ("kms:CreateGrant", "Packer's encrypt_boot with kms_key_id, through EC2; the moto tier runs no KMS"),
    ("kms:Decrypt", "Packer's encrypt_boot with kms_key_id, through EC2; the moto tier runs no KMS"),
    ("kms:ReEncrypt*", "Packer's encrypt_boot with kms_key_id, through EC2; the moto tier runs no KMS"),
    ("kms:GenerateDataKeyWithoutPlaintext", "Packer's encrypt_boot with kms_key_id, through EC2; the moto tier runs no KMS"),
    ("ssm:StartSession", "Packer with ssh_interface: session_manager; moto runs no guest to open a session to"),
    ("ssm:TerminateSession", "Packer with ssh_interface: session_manager; moto runs no guest to open a session to"),
];

/// Holds docs/iam-policy.json against the EC2 and SSM calls moto recorded in `region` (the
/// nightly scenario's): each recorded call is allowed, and each allowed action was recorded
/// or is in [`UNRECORDED`] with its reason. moto does not evaluate IAM, so the conditions
/// are not proven here, only the action list. docs/aws.md shows the file as it is.
pub fn check_iam_policy(region: &str) {
    let file = std::fs::read_to_string(repo().join("docs/iam-policy.json")).unwrap();
    let docs = std::fs::read_to_string(repo().join("docs/aws.md")).unwrap();
    let shown = docs
        .split_once("## IAM policy")
        .and_then(|(_, rest)| rest.split_once("```json\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(json, _)| json)
        .expect("docs/aws.md shows the policy in a json block under \"## IAM policy\"");
    assert_eq!(
        shown, file,
        "docs/aws.md's policy is not docs/iam-policy.json"
    );
    let policy: serde_json::Value = serde_json::from_str(&file).unwrap();
    let mut allowed = BTreeSet::new();
    for st in policy["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow", "{st}");
        match &st["Action"] {
            serde_json::Value::String(a) => {
                allowed.insert(a.clone());
            }
            serde_json::Value::Array(v) => {
                allowed.extend(v.iter().map(|a| a.as_str().unwrap().to_string()));
            }
            other => panic!("Action {other}"),
        }
    }
    let log = actions_dir(&moto().console_dir).join(format!("{region}.log"));
    let recorded: BTreeSet<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(service, _)| ["ec2", "ssm"].contains(service))
        .map(|(service, action)| format!("{service}:{action}"))
        .collect();
    let denied: Vec<&String> = recorded.difference(&allowed).collect();
    assert!(
        denied.is_empty(),
        "recorded but not in docs/iam-policy.json: {denied:?}"
    );
    let unused: Vec<&String> = allowed
        .iter()
        .filter(|a| !recorded.contains(*a) && !UNRECORDED.iter().any(|(u, _)| u == a))
        .collect();
    assert!(
        unused.is_empty(),
        "in the policy, never recorded and no reason given: {unused:?}"
    );
    let stale: Vec<&str> = UNRECORDED
        .iter()
        .map(|(a, _)| *a)
        .filter(|a| recorded.contains(*a) || !allowed.contains(*a))
        .collect();
    assert!(
        stale.is_empty(),
        "UNRECORDED lists recorded or unknown actions: {stale:?}"
    );
}
