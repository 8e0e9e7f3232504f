//! prune on EC2: what it keeps and why, and projects that never prune each other.

use aws_sdk_ec2::types::Tag;

use super::support::*;

/// The AMIs of the prune test by key: (key, AMI name: higher sorts newer on CreationDate ties,
/// stack, parent key).
const LAYOUT: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    ("Bz", "pb-base-1", None, None),
    ("Ba", "pb-base-2", None, None),
    ("Bb", "pb-base-3", None, None),
    ("Bc", "pb-base-4", None, None),
    ("Bd", "pb-base-5", None, None),
    ("Sa", "pb-web-1", Some("web"), Some("Ba")),
    ("Sb", "pb-web-2", Some("web"), Some("Bb")),
    ("Sc", "pb-web-3", Some("web"), Some("Bc")),
];

#[test]
fn prune_keeps_newest_parents_used_and_referenced_amis_and_removes_the_rest_with_snapshots() {
    // its own region, so it never touches other tests' AMIs
    const REGION: &str = "eu-west-2";
    let ids = the_layout_made_by_hand(REGION);
    let store = tempfile::tempdir().unwrap();
    let decisions = |args: &[&str]| -> BTreeMap<String, (String, String)> {
        let rep = in_repo(store.path()).args(args).json();
        rep.as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let s = |k: &str| d[k].as_str().unwrap().to_string();
                (s("ami"), (s("action"), s("why")))
            })
            .collect()
    };
    let dry = decisions(&[
        "prune",
        "--keep",
        "1",
        "--dry-run",
        "--region",
        REGION,
        "--json",
    ]);
    let expect = [
        ("Bd", "keep", "newest available AMI of image debian12"),
        ("Sc", "keep", "newest available AMI of stack debian12/web"),
        ("Bc", "keep", "parent of kept AMI"),
        (
            "Sb",
            "keep",
            "default version 1 of launch template pb-web-lt",
        ),
        ("Bb", "keep", "parent of kept AMI"),
        ("Ba", "keep", "used by instance"),
        (
            "Sa",
            "remove",
            "older than the 1 newest of stack debian12/web",
        ),
        ("Bz", "remove", "older than the 1 newest of image debian12"),
    ];
    for (key, action, why) in expect {
        let (a, w) = &dry[&ids[key]];
        assert_eq!(a, action, "{key}: {w}");
        assert!(w.starts_with(why), "{key}: {w}");
    }
    // for real: the two go, with their snapshots; nothing else changes
    let snaps = snapshots_of_amis(REGION, &[&ids["Sa"], &ids["Bz"]]);
    assert!(!snaps.is_empty());
    let done = decisions(&["prune", "--keep", "1", "--region", REGION, "--json"]);
    assert_eq!(done[&ids["Sa"]].0, "removed");
    assert_eq!(done[&ids["Bz"]].0, "removed");
    only_the_removed_and_their_snapshots_are_gone(REGION, &ids, &snaps);
}

/// [`LAYOUT`] made by hand in `region` as tagged AMIs of the example project, Ba running an
/// instance and Sb in a launch template: their ids by key.
fn the_layout_made_by_hand(region: &str) -> BTreeMap<&'static str, String> {
    rt().block_on(async {
        let ec2 = ec2(region).await;
        let c = ec2.sdk();
        let builder = debian_instance(c).await;
        let mut ids: BTreeMap<&str, String> = BTreeMap::new();
        for &(key, name, stack, parent) in LAYOUT {
            let ami = c
                .create_image()
                .instance_id(&builder)
                .name(name)
                .send()
                .await
                .unwrap()
                .image_id()
                .unwrap()
                .to_string();
            let mut tags = vec![
                ("parbake:layer-hash", format!("{:0>64}", key.len())),
                ("parbake:image", "debian12".to_string()),
                ("parbake:project", "parbake-example".to_string()),
            ];
            if let Some(s) = stack {
                tags.push(("parbake:stack", s.to_string()));
            }
            if let Some(p) = parent {
                tags.push(("parbake:parent-ami", ids[p].clone()));
            }
            let mut req = c.create_tags().resources(&ami);
            for (k, v) in tags {
                req = req.tags(Tag::builder().key(k).value(v).build());
            }
            req.send().await.unwrap();
            ids.insert(key, ami);
        }
        // Ba runs an instance; Sb is in a launch template
        c.run_instances()
            .image_id(&ids["Ba"])
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .unwrap();
        c.create_launch_template()
            .launch_template_name("pb-web-lt")
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id(&ids["Sb"])
                    .build(),
            )
            .send()
            .await
            .unwrap();
        ids
    })
}

/// The snapshots behind `amis`.
fn snapshots_of_amis(region: &str, amis: &[&str]) -> Vec<String> {
    rt().block_on(async {
        let ec2 = ec2(region).await;
        let mut s = Vec::new();
        for ami in amis {
            let r = ec2
                .sdk()
                .describe_images()
                .image_ids(*ami)
                .send()
                .await
                .unwrap();
            s.extend(
                r.images()[0]
                    .block_device_mappings()
                    .iter()
                    .filter_map(|m| m.ebs()?.snapshot_id().map(String::from)),
            );
        }
        s
    })
}

fn only_the_removed_and_their_snapshots_are_gone(
    region: &str,
    ids: &BTreeMap<&str, String>,
    snaps: &[String],
) {
    rt().block_on(async {
        let ec2 = ec2(region).await;
        let left = ec2
            .describe_images(
                &["self".to_string()],
                vec![parbake::targets::aws::ec2::filter(
                    "tag-key",
                    "parbake:layer-hash",
                )],
            )
            .await
            .unwrap();
        let left: BTreeSet<String> = left.into_iter().map(|a| a.id).collect();
        for key in ["Bd", "Sc", "Bc", "Sb", "Bb", "Ba"] {
            assert!(left.contains(&ids[key]), "{key} was removed");
        }
        assert!(!left.contains(&ids["Sa"]) && !left.contains(&ids["Bz"]));
        for s in snaps {
            let r = ec2.sdk().describe_snapshots().snapshot_ids(s).send().await;
            assert!(
                r.is_err() || r.unwrap().snapshots().is_empty(),
                "snapshot {s} survived"
            );
        }
    });
}

/// A change baked and then reverted makes the older AMI the current one again: prune keeps it
/// whatever its age, saying why, and `userdata` still finds it afterwards.
#[test]
fn prune_never_removes_the_ami_a_stack_uses_now_after_a_revert() {
    const REGION: &str = "ap-south-1";
    let p = AwsProject::example(REGION, "Asia/Kolkata");
    let original = p.f.read("images/debian12.yml");
    let bake = |what: &str| -> String {
        let rep = p.json(&["bake", "web", "--target", "aws", "--json"]);
        assert_eq!(rep["layers"][0]["outcome"], what, "{rep}");
        rep["layers"][0]["image"].as_str().unwrap().to_string()
    };
    let current = bake("baked");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.f.replace("images/debian12.yml", "Asia/Kolkata", "Asia/Colombo");
    let newer = bake("baked");
    assert_ne!(current, newer);
    p.f.write("images/debian12.yml", &original);
    assert_eq!(bake("cached"), current, "the revert is a cache hit");

    for dry in [true, false] {
        let mut args = vec!["prune", "--keep", "1", "--region", REGION, "--json"];
        if dry {
            args.push("--dry-run");
        }
        let d = prune_decisions(&p, &args);
        let (action, _, why) = &d[&current];
        assert_eq!(action, "keep", "{why}");
        assert!(why.starts_with("current AMI of stack"), "{why}");
        assert_eq!(d[&newer].0, "keep", "{:?}", d[&newer]);
    }
    let out = p.ok(&["userdata", "web", "--target", "aws"]);
    assert!(!out.is_empty());
}

/// `bake web` in `p`, whose layer 1 must have `outcome`: its AMI.
fn bake_web(p: &AwsProject, outcome: &str) -> String {
    let rep = p.json(&["bake", "web", "--target", "aws", "--json"]);
    assert_eq!(rep["layers"][0]["outcome"], outcome, "{rep}");
    rep["layers"][0]["image"].as_str().unwrap().to_string()
}

/// Two checkouts of different repositories with the same image and stack names (and so the
/// same layer hashes) in one account and region: neither's bake is a cache hit on the other's
/// AMI, `images` lists only its own, and prune in one never counts or removes the other's, nor
/// an AMI with no project tag. A project without an id cannot prune.
#[test]
fn two_projects_with_the_same_image_names_share_no_cache_and_never_prune_each_other() {
    const REGION: &str = "il-central-1";
    let a = AwsProject::new(example_of_project(REGION, "Asia/Jerusalem", "team-a"));
    let b = AwsProject::new(example_of_project(REGION, "Asia/Jerusalem", "team-b"));
    let a1 = bake_web(&a, "baked");
    // the same layer hash in another project: baked, not a cache hit on team-a's AMI
    let b1 = bake_web(&b, "baked");
    assert_ne!(a1, b1);
    assert_eq!(bake_web(&b, "cached"), b1);
    amis_and_snapshots_carry_their_project(REGION, &[(&a1, "team-a"), (&b1, "team-b")]);
    // team-a moves on: a1 is no longer its current AMI
    std::thread::sleep(Duration::from_millis(1100));
    a.f.replace("images/debian12.yml", "Asia/Jerusalem", "Asia/Amman");
    let a2 = bake_web(&a, "baked");
    let legacy = an_ami_without_a_project(REGION);
    images_lists_only_its_own_and_counts_the_others(&b, REGION, &b1);
    let amis = ProjectAmis { a1, a2, b1, legacy };
    prune_in_b_keeps_the_others(&b, REGION, &amis);
    prune_in_a_removes_only_its_own_stale_ami(&a, REGION, &amis);
    // team-b's bake still hits its own AMI; its userdata finds it
    assert_eq!(bake_web(&b, "cached"), amis.b1);
    b.ok(&["userdata", "web", "--target", "aws"]);
    a_project_without_an_id_bakes_but_cannot_prune(&b, REGION);
}

/// The AMIs of the two-projects test: team-a's old and current, team-b's, and one with no
/// project tag.
struct ProjectAmis {
    a1: String,
    a2: String,
    b1: String,
    legacy: String,
}

fn amis_and_snapshots_carry_their_project(region: &str, amis: &[(&String, &str)]) {
    rt().block_on(async {
        let ec2 = ec2(region).await;
        for &(ami, id) in amis {
            let (tags, snaps) = tags_of_image(&ec2, ami).await;
            assert_eq!(tags["parbake:project"], id, "{ami}: {tags:?}");
            for s in snaps {
                let r = ec2
                    .sdk()
                    .describe_snapshots()
                    .snapshot_ids(&s)
                    .send()
                    .await
                    .unwrap();
                let tags: BTreeMap<_, _> = r.snapshots()[0]
                    .tags()
                    .iter()
                    .map(|t| (t.key().unwrap(), t.value().unwrap()))
                    .collect();
                assert_eq!(tags.get("parbake:project"), Some(&id), "{s}");
            }
        }
    });
}

/// An AMI of the same image and stack with no project tag, as parbake made before ids.
fn an_ami_without_a_project(region: &str) -> String {
    rt().block_on(async {
        let c = ec2(region).await.sdk().clone();
        let builder = debian_instance(&c).await;
        let ami = c
            .create_image()
            .instance_id(&builder)
            .name("pb-legacy-web")
            .send()
            .await
            .unwrap()
            .image_id()
            .unwrap()
            .to_string();
        let mut req = c.create_tags().resources(&ami);
        for (k, v) in [
            ("parbake:layer-hash", "1".repeat(64)),
            ("parbake:image", "debian12".into()),
            ("parbake:stack", "web".into()),
        ] {
            req = req.tags(Tag::builder().key(k).value(v).build());
        }
        req.send().await.unwrap();
        c.terminate_instances()
            .instance_ids(&builder)
            .send()
            .await
            .unwrap();
        ami
    })
}

/// images: each project sees its own AMIs, and says how many others it left out.
fn images_lists_only_its_own_and_counts_the_others(p: &AwsProject, region: &str, own: &str) {
    let tree = p.json(&["images", "--json"]);
    let listing = tree
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == region)
        .unwrap();
    let listed: Vec<&str> = listing["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [own], "{tree}");
    assert_eq!(
        (&listing["other_projects"], &listing["without_project"]),
        (&serde_json::json!(2), &serde_json::json!(1)),
        "{tree}"
    );
}

/// prune in team-b, dry run then for real: team-a's AMIs and the untagged one stay.
fn prune_in_b_keeps_the_others(b: &AwsProject, region: &str, amis: &ProjectAmis) {
    for dry in [true, false] {
        let mut args = vec!["prune", "--keep", "1", "--region", region, "--json"];
        if dry {
            args.push("--dry-run");
        }
        let d = prune_decisions(b, &args);
        assert_eq!(d[&amis.b1].0, "keep");
        // web and worker both launch layer 1 today
        assert_eq!(
            d[&amis.b1].1,
            ["current", "current", "newest"],
            "{:?}",
            d[&amis.b1]
        );
        for ami in [&amis.a1, &amis.a2] {
            assert_eq!(d[ami].0, "keep");
            assert_eq!(d[ami].1, ["other-project"], "{:?}", d[ami]);
            assert!(
                d[ami].2.contains("parbake:project = team-a"),
                "{:?}",
                d[ami]
            );
        }
        assert_eq!(d[&amis.legacy].0, "keep");
        assert_eq!(d[&amis.legacy].1, ["no-project"], "{:?}", d[&amis.legacy]);
    }
}

/// prune in team-a: its own stale AMI goes, team-b's and the untagged one stay.
fn prune_in_a_removes_only_its_own_stale_ami(a: &AwsProject, region: &str, amis: &ProjectAmis) {
    let d = prune_decisions(a, &["prune", "--keep", "1", "--region", region, "--json"]);
    assert_eq!(
        (d[&amis.a1].0.as_str(), d[&amis.a1].1.as_slice()),
        ("removed", ["beyond-keep".to_string()].as_slice()),
        "{:?}",
        d[&amis.a1]
    );
    assert_eq!(
        d[&amis.a2].1,
        ["current", "current", "newest"],
        "{:?}",
        d[&amis.a2]
    );
    assert_eq!(d[&amis.b1].1, ["other-project"], "{:?}", d[&amis.b1]);
    assert_eq!(d[&amis.legacy].1, ["no-project"], "{:?}", d[&amis.legacy]);
    rt().block_on(async {
        let ec2 = ec2(region).await;
        for ami in [&amis.b1, &amis.a2, &amis.legacy] {
            assert_eq!(ec2.image(ami).await.unwrap().state, "available", "{ami}");
        }
    });
}

/// A project without an id may bake (only untagged AMIs are its: not b1), but not prune.
fn a_project_without_an_id_bakes_but_cannot_prune(b: &AwsProject, region: &str) {
    std::fs::remove_file(b.root().join("parbake.yml")).unwrap();
    let out = b
        .parbake(&["bake", "web", "--target", "aws", "--json"])
        .stderr_contains("note: no project id in parbake.yml")
        .run();
    let rep = out.json();
    assert_eq!(rep["layers"][0]["outcome"], "baked", "{rep}");
    let unscoped = rep["layers"][0]["image"].as_str().unwrap().to_string();
    rt().block_on(async {
        let (tags, _) = tags_of_image(&ec2(region).await, &unscoped).await;
        assert!(!tags.contains_key("parbake:project"), "{tags:?}");
    });
    b.parbake(&["prune", "--keep", "1", "--region", region, "--dry-run"])
        .code(1)
        .stderr_contains("prune needs a project id")
        .stderr_contains("hint: add `project: NAME` to parbake.yml")
        .run();
}
