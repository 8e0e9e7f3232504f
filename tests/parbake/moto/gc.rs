//! gc on EC2: expired builders, and what a killed bake left (instance, key pair, security
//! group, volumes, claims), and nothing else.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use super::support::*;

#[test]
fn gc_terminates_only_expired_builder_instances() {
    let store = tempfile::tempdir().unwrap();
    let (expired, fresh) = builders_one_expired("us-east-1", "gc-test");
    let rep = in_repo(store.path())
        .args(&["gc", "--dry-run", "--json"])
        .json();
    let listed: Vec<&serde_json::Value> = rep
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["owner"] == "gc-test")
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["instance_id"], expired.as_str());
    assert_eq!(listed[0]["terminated"], false);
    let rep = in_repo(store.path()).args(&["gc", "--json"]).json();
    assert!(rep
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["instance_id"] == expired.as_str() && l["terminated"] == true));
    rt().block_on(async {
        let ec2 = ec2("us-east-1").await;
        let state = |id: String| {
            let c = ec2.sdk().clone();
            async move {
                let d = c
                    .describe_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .unwrap();
                d.reservations()[0].instances()[0]
                    .state()
                    .unwrap()
                    .name()
                    .unwrap()
                    .as_str()
                    .to_string()
            }
        };
        assert!(["shutting-down", "terminated"].contains(&state(expired.clone()).await.as_str()));
        assert_eq!(state(fresh.clone()).await, "running");
    });
}

/// Two builder instances of `owner` in `region`, the first expired: their ids.
fn builders_one_expired(region: &str, owner: &str) -> (String, String) {
    rt().block_on(async {
        let ec2 = ec2(region).await;
        let mut ids = Vec::new();
        for expires in [
            "1".to_string(),
            (parbake::store::now_epoch() + 3600).to_string(),
        ] {
            let tags = TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(
                    Tag::builder()
                        .key("parbake:expires-at")
                        .value(expires)
                        .build(),
                )
                .tags(Tag::builder().key("parbake:owner").value(owner).build())
                .build();
            let r = ec2
                .sdk()
                .run_instances()
                .image_id("ami-0de0b12a7f3c000b2")
                .min_count(1)
                .max_count(1)
                .tag_specifications(tags)
                .send()
                .await
                .unwrap();
            ids.push(r.instances()[0].instance_id().unwrap().to_string());
        }
        (ids[0].clone(), ids[1].clone())
    })
}

/// What a killed bake left in a region, as gc should see it.
struct Leftovers {
    instance: String,
    key: String,
    group: String,
    /// expired, fresh, untagged
    volumes: Vec<String>,
}

#[test]
fn gc_removes_what_a_killed_bake_left_and_only_that() {
    // its own region, so other tests' resources are never in the way
    const REGION: &str = "ap-southeast-2";
    let p = AwsProject::new(Fixture::example());
    p.f.replace(
        "images/debian12.yml",
        "region: us-east-1",
        &format!("region: {REGION}"),
    );
    let left = leftovers_of_a_killed_bake(REGION);
    let gc = |args: &[&str]| p.json(args).as_array().unwrap().clone();
    let listed = gc(&["gc", "--dry-run", "--json"]);
    let kinds: Vec<(String, String)> = listed
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = vec![
        ("instance".to_string(), left.instance.clone()),
        ("key-pair".to_string(), left.key.clone()),
        ("security-group".to_string(), left.group.clone()),
        ("volume".to_string(), left.volumes[0].clone()),
        ("claim".to_string(), "parbake-lock-gctest-old".to_string()),
    ];
    assert_eq!(kinds, want, "{listed:?}");
    assert!(listed.iter().all(|l| l["removed"] == false));
    let done = gc(&["gc", "--json"]);
    for l in &done {
        assert_eq!(l["removed"], true, "{l}");
    }
    only_the_expired_leftovers_are_gone(REGION, &left);
}

/// A builder's tags: expiring at `expires`, owned by `gc-test-2`.
fn expiring(kind: ResourceType, expires: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(
            Tag::builder()
                .key("parbake:expires-at")
                .value(expires)
                .build(),
        )
        .tags(
            Tag::builder()
                .key("parbake:owner")
                .value("gc-test-2")
                .build(),
        )
        .build()
}

/// What Packer makes for a build (a temporary key pair and security group, an instance), three
/// volumes (expired, fresh, untagged) and two claims (expired, fresh).
fn leftovers_of_a_killed_bake(region: &str) -> Leftovers {
    let old = "1".to_string();
    let fresh = (parbake::store::now_epoch() + 3600).to_string();
    rt().block_on(async {
        let ec2 = ec2(region).await;
        let c = ec2.sdk();
        c.create_key_pair()
            .key_name("packer_gc1")
            .send()
            .await
            .unwrap();
        let sg = c
            .create_security_group()
            .group_name("packer_gc1")
            .description("packer temporary")
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_string();
        let amis = c.describe_images().owners("amazon").send().await.unwrap();
        let ami = amis.images()[0].image_id().unwrap().to_string();
        let r = c
            .run_instances()
            .image_id(ami)
            .min_count(1)
            .max_count(1)
            .key_name("packer_gc1")
            .security_group_ids(&sg)
            .tag_specifications(expiring(ResourceType::Instance, &old))
            .send()
            .await
            .unwrap();
        let instance = r.instances()[0].instance_id().unwrap().to_string();
        let mut volumes = Vec::new();
        for expires in [Some(&old), Some(&fresh), None] {
            let mut v = c
                .create_volume()
                .availability_zone(format!("{region}a"))
                .size(1);
            if let Some(e) = expires {
                v = v.tag_specifications(expiring(ResourceType::Volume, e));
            }
            volumes.push(v.send().await.unwrap().volume_id().unwrap().to_string());
        }
        for (name, expires) in [
            ("parbake-lock-gctest-old", &old),
            ("parbake-lock-gctest-new", &fresh),
        ] {
            c.create_key_pair()
                .key_name(name)
                .tag_specifications(expiring(ResourceType::KeyPair, expires))
                .send()
                .await
                .unwrap();
        }
        Leftovers {
            instance,
            key: "packer_gc1".to_string(),
            group: sg,
            volumes,
        }
    })
}

fn only_the_expired_leftovers_are_gone(region: &str, left: &Leftovers) {
    rt().block_on(async {
        let ec2 = ec2(region).await;
        let c = ec2.sdk();
        let keys: Vec<String> = c
            .describe_key_pairs()
            .send()
            .await
            .unwrap()
            .key_pairs()
            .iter()
            .filter_map(|k| k.key_name().map(String::from))
            .collect();
        assert!(
            !keys.contains(&left.key) && !keys.contains(&"parbake-lock-gctest-old".to_string())
        );
        assert!(
            keys.contains(&"parbake-lock-gctest-new".to_string()),
            "{keys:?}"
        );
        let vols: Vec<String> = c
            .describe_volumes()
            .send()
            .await
            .unwrap()
            .volumes()
            .iter()
            .filter_map(|v| v.volume_id().map(String::from))
            .collect();
        assert!(!vols.contains(&left.volumes[0]));
        assert!(
            vols.contains(&left.volumes[1]) && vols.contains(&left.volumes[2]),
            "{vols:?}"
        );
    });
}

#[test]
fn gc_after_a_sigkilled_aws_bake_leaves_nothing_of_it_and_nothing_else_is_touched() {
    // its own region and layer: gc here sees only this test's leftovers
    const REGION: &str = "sa-east-1";
    let p = AwsProject::example(REGION, "Africa/Nairobi");
    let owner = format!("sigkill-{}", std::process::id());
    // unrelated resources gc must leave alone
    rt().block_on(async {
        let c = ec2(REGION).await;
        c.sdk()
            .create_key_pair()
            .key_name("someone-elses")
            .send()
            .await
            .unwrap();
        c.sdk()
            .create_security_group()
            .group_name("someone-elses")
            .description("not parbake's")
            .send()
            .await
            .unwrap();
    });
    a_bake_is_killed_with_its_builder_running(&p, REGION, &owner);
    let removed: Vec<serde_json::Value> =
        serde_json::from_value(p.json(&["gc", "--json"])).unwrap();
    let count = |kind: &str| {
        removed
            .iter()
            .filter(|l| l["kind"] == kind && l["removed"] == true)
            .count()
    };
    eprintln!(
        "gc after the SIGKILLed bake removed: {} instance(s), {} key pair(s), {} security group(s), {} volume(s), {} claim(s)",
        count("instance"),
        count("key-pair"),
        count("security-group"),
        count("volume"),
        count("claim")
    );
    assert_eq!(count("instance"), 1, "{removed:?}");
    assert_eq!(count("claim"), 1, "{removed:?}");
    nothing_of_the_bake_is_left_and_the_unrelated_stays(REGION, &owner);
}

/// `bake worker` held with its builder running, then killed with Packer and its plugins, all
/// at once, as when the machine dies: the builder runs on.
fn a_bake_is_killed_with_its_builder_running(p: &AwsProject, region: &str, owner: &str) {
    let mut child = p
        .parbake(&["bake", "worker", "--target", "aws"])
        .envs(&[
            ("PARBAKE_TEST_PAUSE_SECONDS", "120"),
            ("PARBAKE_TEST_BUILDER_TTL_SECONDS", "1"),
            ("USER", owner),
        ])
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(180);
    while rt().block_on(instances_of(region, owner, "running")) == 0 {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the builder instance never ran:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let pids = descendants(child.id() as i32);
    for pid in pids.iter().chain([child.id() as i32].iter()) {
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        rt().block_on(instances_of(region, owner, "running")),
        1,
        "the killed bake's builder runs on"
    );
}

fn nothing_of_the_bake_is_left_and_the_unrelated_stays(region: &str, owner: &str) {
    rt().block_on(async {
        assert_eq!(instances_of(region, owner, "running").await, 0);
        let c = ec2(region).await;
        let keys: Vec<String> = c
            .sdk()
            .describe_key_pairs()
            .send()
            .await
            .unwrap()
            .key_pairs()
            .iter()
            .filter_map(|k| k.key_name().map(String::from))
            .collect();
        assert_eq!(keys, ["someone-elses"], "only the unrelated key pair stays");
        let groups: Vec<String> = c
            .sdk()
            .describe_security_groups()
            .send()
            .await
            .unwrap()
            .security_groups()
            .iter()
            .filter_map(|g| g.group_name().map(String::from))
            .filter(|n| n != "default")
            .collect();
        assert_eq!(groups, ["someone-elses"], "only the unrelated group stays");
        let volumes = c
            .sdk()
            .describe_volumes()
            .filters(parbake::targets::aws::ec2::filter(
                "tag:parbake:owner",
                owner,
            ))
            .send()
            .await
            .unwrap();
        let left: Vec<_> = volumes
            .volumes()
            .iter()
            .filter(|v| v.state().map(|s| s.as_str()) != Some("deleting"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    });
}

/// Every descendant of `pid` (children first found through /proc's parent links).
fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(child) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<i32>().ok());
            if ppid == Some(p) {
                out.push(child);
                todo.push(child);
            }
        }
    }
    out
}
