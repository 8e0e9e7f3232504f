//! Distribution (issue 27 item 2) against moto: a stack's AMI copied to two regions with
//! customer KMS keys and shared with two accounts and an OU (read back with
//! DescribeImageAttribute and DescribeSnapshotAttribute), a cache hit distributing what is
//! newly listed, the preflight refusing a share EC2 could not honour, and prune and gc
//! removing copies in each region. GetImageBlockPublicAccessState, which moto 5.2.5 lacks, is
//! checked against the API shape (lifecycle.rs's stand-in) and moto_server.py stand-in 11.

use parbake::targets::aws::ec2::Ec2;

use super::support::*;

const HOME: &str = "us-west-2";
const COPY_A: &str = "us-east-2";
const COPY_B: &str = "ap-northeast-3";
const KEY_A: &str = "arn:aws:kms:us-east-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const KEY_B: &str = "alias/ami-key";
const ACCOUNTS: [&str; 2] = ["111111111111", "222222222222"];
const OU: &str = "arn:aws:organizations::123456789012:ou/o-a1b2c3d4e5/ou-ab12-cdef3456";

/// The web stack distributing as `block` (YAML lines under `distribute:`).
fn distributing(region: &str, time_zone: &str, block: &str) -> AwsProject {
    let p = AwsProject::new(example_of_project(region, time_zone, "parbake-example"));
    p.f.replace(
        "images/stacks/web.yml",
        "launch_vars: {}\n",
        &format!("launch_vars: {{}}\ndistribute:\n{block}\n"),
    );
    p
}

fn two_regions_two_accounts(extra: &str) -> String {
    format!("  regions:\n    - {{region: {COPY_A}, kms_key_id: \"{KEY_A}\"}}\n    - {{region: {COPY_B}, kms_key_id: {KEY_B}}}\n  accounts: [\"{}\", \"{}\"{extra}]\n  organizational_units: [\"{OU}\"]", ACCOUNTS[0], ACCOUNTS[1])
}

/// The launch permissions of an AMI: account ids, OU ARNs and groups.
async fn launch_permissions(ec2: &Ec2, ami: &str) -> Vec<String> {
    let out = ec2
        .sdk()
        .describe_image_attribute()
        .image_id(ami)
        .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
        .send()
        .await
        .unwrap();
    let mut found: Vec<String> = out
        .launch_permissions()
        .iter()
        .filter_map(|p| {
            p.user_id()
                .or(p.organizational_unit_arn())
                .map(String::from)
                .or(p.group().map(|g| g.as_str().to_string()))
        })
        .collect();
    found.sort();
    found
}

/// The accounts that may create volumes from a snapshot.
async fn volume_permissions(ec2: &Ec2, snapshot: &str) -> Vec<String> {
    let out = ec2
        .sdk()
        .describe_snapshot_attribute()
        .snapshot_id(snapshot)
        .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
        .send()
        .await
        .unwrap();
    let mut found: Vec<String> = out
        .create_volume_permissions()
        .iter()
        .filter_map(|p| p.user_id().map(String::from))
        .collect();
    found.sort();
    found
}

/// A snapshot's encryption and KMS key.
async fn snapshot_key(ec2: &Ec2, snapshot: &str) -> (bool, Option<String>) {
    let out = ec2
        .sdk()
        .describe_snapshots()
        .snapshot_ids(snapshot)
        .send()
        .await
        .unwrap();
    let s = &out.snapshots()[0];
    (
        s.encrypted().unwrap_or(false),
        s.kms_key_id().map(String::from),
    )
}

/// The stack's top AMI in HOME, from `bake --json`.
fn top(rep: &serde_json::Value) -> String {
    let layers = rep["layers"].as_array().unwrap();
    layers.last().unwrap()["image"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Copy with KMS into two regions, launch permission for two accounts and an OU and
/// create-volume permission for the accounts in every region; the copies tagged like their
/// source, counted by `images`; a cache hit makes no second copy and shares with an account
/// added since; prune removes a replaced AMI's copies with it, gc the copies of one removed
/// by hand.
#[test]
fn a_stack_is_copied_with_kms_to_two_regions_and_shared_with_two_accounts() {
    let p = distributing(HOME, "America/Los_Angeles", &two_regions_two_accounts(""));
    let rep = p.json(&["bake", "web", "--target", "aws", "--json"]);
    let ami = top(&rep);
    let mut all = ACCOUNTS.map(String::from).to_vec();
    all.push(OU.into());
    all.sort();
    rt().block_on(async {
        let home = ec2(HOME).await;
        let source = home.image(&ami).await.unwrap();
        assert_eq!(
            launch_permissions(&home, &ami).await,
            all,
            "home AMI shared"
        );
        for s in home.snapshots_of(&ami).await.unwrap() {
            assert_eq!(volume_permissions(&home, &s).await, ACCOUNTS);
        }
        for (region, key) in [(COPY_A, KEY_A), (COPY_B, KEY_B)] {
            let c = ec2(region).await;
            let copies = c.copies_of(&ami).await.unwrap();
            assert_eq!(copies.len(), 1, "one copy in {region}");
            let copy = &copies[0];
            // the bake's report lists it
            let listed = rep["layers"].as_array().unwrap().last().unwrap()["copies"].clone();
            assert!(
                listed
                    .as_array()
                    .unwrap()
                    .contains(&serde_json::json!({"region": region, "image": copy.id})),
                "{listed}"
            );
            assert_eq!(copy.state, "available");
            assert_eq!(
                copy.tags["parbake:layer-hash"],
                source.tags["parbake:layer-hash"]
            );
            assert_eq!(copy.tags["parbake:project"], "parbake-example");
            assert_eq!(copy.tags["parbake:copy-source-region"], HOME);
            assert_eq!(launch_permissions(&c, &copy.id).await, all, "{region}");
            let snaps = c.snapshots_of(&copy.id).await.unwrap();
            assert!(!snaps.is_empty());
            for s in &snaps {
                assert_eq!(volume_permissions(&c, s).await, ACCOUNTS, "{region}");
                // moto_server.py stand-in 6 records CopyImage's Encrypted and KmsKeyId
                assert_eq!(snapshot_key(&c, s).await, (true, Some(key.to_string())));
            }
        }
    });
    let images = p.json(&["images", "--json"]);
    for region in [COPY_A, COPY_B] {
        let copy = rt().block_on(async { ec2(region).await.copies_of(&ami).await.unwrap() });
        let r = images
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["region"] == region);
        assert!(
            r.is_some_and(|r| r.to_string().contains(&format!("\"{}\"", copy[0].id))),
            "images counts the copy in {region}: {images}"
        );
    }

    // a cache hit: no second copy, and an account listed since gets its permission
    p.f.replace(
        "images/stacks/web.yml",
        "\"222222222222\"]",
        "\"222222222222\", \"333333333333\"]",
    );
    let again = p.json(&["bake", "web", "--target", "aws", "--json"]);
    assert_eq!(top(&again), ami);
    rt().block_on(async {
        for region in [COPY_A, COPY_B] {
            let c = ec2(region).await;
            let copies = c.copies_of(&ami).await.unwrap();
            assert_eq!(copies.len(), 1, "still one copy in {region}");
            assert!(launch_permissions(&c, &copies[0].id)
                .await
                .contains(&"333333333333".to_string()));
        }
    });

    // a new stack AMI replaces it: prune removes the old one and its copy in each region
    p.f.replace(
        "images/debian12.yml",
        "base_timezone: America/Los_Angeles",
        "base_timezone: America/Denver",
    );
    let newer = top(&p.json(&["bake", "web", "--target", "aws", "--json"]));
    assert_ne!(newer, ami);
    let old_copies: Vec<(String, String)> = rt().block_on(async {
        let mut v = Vec::new();
        for region in [COPY_A, COPY_B] {
            let id = ec2(region).await.copies_of(&ami).await.unwrap()[0]
                .id
                .clone();
            v.push((region.to_string(), id));
        }
        v
    });
    let decisions = prune_decisions(&p, &["prune", "--keep", "0", "--json"]);
    for (region, copy) in &old_copies {
        let (action, kinds, why) = &decisions[copy];
        assert_eq!(action, "removed", "{region}: {why}");
        assert_eq!(kinds, &["source-removed"]);
        let gone = rt().block_on(async { ec2(region).await.copies_of(&ami).await.unwrap() });
        assert!(
            gone.iter().all(|c| c.state != "available"),
            "{region}: {gone:?}"
        );
    }
    let kept = rt().block_on(async { ec2(COPY_A).await.copies_of(&newer).await.unwrap() });
    assert_eq!(decisions[&kept[0].id].1, ["source-kept"]);

    // the newest AMI deregistered by hand: prune of one copy region alone removes its copy
    // there (its source is gone), gc the other, an orphan now
    rt().block_on(async { ec2(HOME).await.deregister_image(&newer).await.unwrap() });
    let one = prune_decisions(&p, &["prune", "--keep", "0", "--region", COPY_A, "--json"]);
    let (action, kinds, why) = &one[&kept[0].id];
    assert_eq!(
        (action.as_str(), kinds.as_slice()),
        ("removed", &["source-removed".to_string()][..]),
        "{why}"
    );
    let left = p.json(&["gc", "--json"]);
    let copy = left
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "copy" && l["region"] == COPY_B);
    assert!(
        copy.is_some_and(|c| c["removed"] == true),
        "gc removes the orphan copy in {COPY_B}: {left}"
    );
    for region in [COPY_A, COPY_B] {
        let gone = rt().block_on(async { ec2(region).await.copies_of(&newer).await.unwrap() });
        assert!(gone.iter().all(|c| c.state != "available"), "{region}");
    }
    let text = p.ok(&["gc"]);
    assert!(!text.contains(" copy "), "nothing left to collect: {text}");
}

/// The preflight, before any copy: a copy region without a key where EBS encrypts by default
/// would get the region's default (AWS-managed) key, which cannot be shared; refused with
/// the hint to name a customer key, and no copy made.
#[test]
fn the_preflight_refuses_a_share_the_aws_managed_key_would_block() {
    const REGION: &str = "eu-central-2";
    const COPY: &str = "ap-southeast-3";
    rt().block_on(async {
        ec2(COPY)
            .await
            .sdk()
            .enable_ebs_encryption_by_default()
            .send()
            .await
            .unwrap();
    });
    let p = distributing(
        REGION,
        "Europe/Zurich",
        &format!(
            "  regions: [{{region: {COPY}}}]\n  accounts: [\"{}\"]",
            ACCOUNTS[0]
        ),
    );
    let err = p.fails(&["bake", "web", "--target", "aws"]);
    assert!(
        err.contains(&format!("cannot share the AMI in {COPY}")) && err.contains("default EBS key"),
        "{err}"
    );
    assert!(err.contains("aws/ebs") && err.contains(&format!("hint: give the region a customer-managed key: `- {{region: {COPY}, kms_key_id: alias/NAME}}`")), "{err}");
    let copies = rt().block_on(async { ec2(COPY).await.parbake_amis().await.unwrap() });
    assert!(
        copies.is_empty(),
        "no copy before the preflight passes: {copies:?}"
    );

    // the image encrypted with the account's default key (no `kms_key_id` named): refused too
    let p = distributing(
        REGION,
        "Europe/Zurich",
        &format!("  accounts: [\"{}\"]", ACCOUNTS[0]),
    );
    p.f.replace(
        "images/debian12.yml",
        "    instance_type: t3.small\n",
        "    instance_type: t3.small\n    encrypt: {}\n",
    );
    let err = p.fails(&["bake", "web", "--target", "aws"]);
    assert!(
        err.contains(&format!("cannot share the AMI in {REGION}: snapshot snap-")),
        "{err}"
    );
    assert!(
        err.contains("hint: set `encrypt: {kms_key_id: …}`"),
        "{err}"
    );
}

/// `public: true`: image block public access read in each region (stand-in 11) and reported;
/// blocked, the share is refused before any copy; unblocked, the AMI is public (Group=all).
#[test]
fn a_public_share_reads_image_block_public_access_first() {
    const REGION: &str = "ap-southeast-5";
    let p = distributing(REGION, "Asia/Kuala_Lumpur", "  public: true");
    let blocked = moto().console_dir.join(REGION);
    std::fs::create_dir_all(&blocked).unwrap();
    std::fs::write(
        blocked.join("image-block-public-access"),
        "block-new-sharing",
    )
    .unwrap();
    let err = p.fails(&["bake", "web", "--target", "aws"]);
    assert!(
        err.contains(&format!(
            "image block public access in {REGION} is `block-new-sharing`"
        )) && err.contains("hint: "),
        "{err}"
    );
    std::fs::remove_file(blocked.join("image-block-public-access")).unwrap();
    let r = p
        .parbake(&["bake", "web", "--target", "aws", "--json"])
        .run();
    assert!(
        r.stderr.contains(&format!(
            "note: image block public access in {REGION}: unblocked"
        )),
        "{}",
        r.stderr
    );
    let ami = top(&serde_json::from_str(&r.stdout).unwrap());
    let perms = rt().block_on(async { launch_permissions(&ec2(REGION).await, &ami).await });
    assert_eq!(perms, ["all"]);
}

/// GetImageBlockPublicAccessState against the API shape (moto 5.2.5 has none).
#[test]
fn image_block_public_access_state_is_read_in_the_api_shape() {
    use super::lifecycle::{answer, connect, has, params, stand_in};
    let (url, seen) = stand_in(vec![(
        "GetImageBlockPublicAccessState",
        answer(
            "GetImageBlockPublicAccessState",
            "<imageBlockPublicAccessState>block-new-sharing</imageBlockPublicAccessState><managedBy>account</managedBy>",
        ),
    )]);
    let state = rt()
        .block_on(connect(&url).image_block_public_access())
        .unwrap();
    assert_eq!(state, "block-new-sharing");
    assert!(has(
        &params(&seen)[0],
        "Action",
        "GetImageBlockPublicAccessState"
    ));
}

/// LaunchPermission with an OU, as the SDK sends it (`LaunchPermission.Add.N.OrganizationalUnitArn`).
#[test]
fn an_ou_share_sends_its_arn_in_the_api_shape() {
    use super::lifecycle::{answer, connect, has, params, stand_in};
    use parbake::targets::aws::ec2_share::Share;
    let (url, seen) = stand_in(vec![(
        "ModifyImageAttribute",
        answer("ModifyImageAttribute", "<return>true</return>"),
    )]);
    let share = Share {
        accounts: vec![ACCOUNTS[0].into()],
        organizational_units: vec![OU.into()],
        public: false,
    };
    rt().block_on(connect(&url).share_image("ami-0123456789abcdef0", &share))
        .unwrap();
    let req = &params(&seen)[0];
    assert!(
        has(req, "LaunchPermission.Add.1.UserId", ACCOUNTS[0]),
        "{req:?}"
    );
    assert!(
        req.iter()
            .any(|(k, v)| k == "LaunchPermission.Add.2.OrganizationalUnitArn"
                && v.contains("ou-ab12-cdef3456")),
        "{req:?}"
    );
}
