//! Bake and cache on EC2: real Packer amazon-ebs, AMI tags, cache hits, refreshes, bake --all
//! across machines, plan and render against EC2.

use std::time::{Duration, Instant};

use crate::util::launch_spec;

use super::support::*;

/// The repository's own example project against moto in us-east-1, with a store of its own.
fn repo_project() -> (tempfile::TempDir, impl Fn(&[&str]) -> Test) {
    let store = tempfile::tempdir().unwrap();
    let path = store.path().to_path_buf();
    (store, move |args: &[&str]| in_repo(&path).args(args))
}

#[test]
fn aws_bake_with_real_packer_tags_the_ami_caches_and_bakes_a_stack_layer_on_it() {
    let (store, parbake) = repo_project();
    let ami1 = layer_one_is_baked_with_real_packer(&parbake);
    the_same_bake_is_a_cache_hit_without_packer(&parbake, store.path(), &ami1);
    let ami2 = a_promote_bakes_layer_two_on_layer_one(&parbake, &ami1);
    images_shows_the_lineage_and_a_changed_role_makes_it_stale(&parbake, &ami1, &ami2);
    userdata_runs_exactly_the_roles_each_ami_did_not_bake(&parbake, &ami1, &ami2);
    userdata_refuses_an_ami_whose_role_changed(&ami1);
    launch_runs_the_instance_with_exactly_userdatas_bytes(&parbake, store.path(), &ami2);
}

/// Step 1, layer 1: source AMI resolved, real Packer amazon-ebs build, AMI id from the manifest;
/// the AMI, its snapshots and the builder instance tagged. Its AMI.
fn layer_one_is_baked_with_real_packer(parbake: &impl Fn(&[&str]) -> Test) -> String {
    let rep = parbake(&["bake", "web", "--target", "aws", "--json"])
        .stderr_contains("source AMI in us-east-1: ami-0de0b12a7f3c000b2")
        .json();
    let l1 = &rep["layers"][0];
    assert_eq!(l1["outcome"], "baked");
    let ami1 = l1["image"].as_str().unwrap().to_string();
    assert!(ami1.starts_with("ami-"));
    let hash = l1["hash"].as_str().unwrap().to_string();
    rt().block_on(async {
        let ec2 = ec2("us-east-1").await;
        let (tags, snaps) = tags_of_image(&ec2, &ami1).await;
        assert_eq!(tags["parbake:layer-hash"], hash);
        assert_eq!(tags["parbake:image"], "debian12");
        assert_eq!(tags["parbake:parent-ami"], "ami-0de0b12a7f3c000b2");
        assert_eq!(tags["parbake:baked"], "base,users");
        assert_eq!(tags["parbake:source-ami"], "ami-0de0b12a7f3c000b2");
        assert!(tags["parbake:created-at"].parse::<u64>().unwrap() > 1_700_000_000);
        assert!(tags.contains_key("parbake:installed-1") && tags.contains_key("parbake:version"));
        // snapshots carry the same tags
        assert!(!snaps.is_empty());
        let s = ec2
            .sdk()
            .describe_snapshots()
            .snapshot_ids(&snaps[0])
            .send()
            .await
            .unwrap();
        let st: Vec<_> = s.snapshots()[0]
            .tags()
            .iter()
            .filter(|t| t.key() == Some("parbake:layer-hash"))
            .collect();
        assert_eq!(st.len(), 1);
        builders_are_tagged_for_gc_and_not_left_running(&ec2, &hash).await;
    });
    ami1
}

/// The builder instances of layer `hash` were tagged so `gc` can find leftovers, and none is
/// left running.
async fn builders_are_tagged_for_gc_and_not_left_running(ec2: &Ec2, hash: &str) {
    let instances = instances_tagged(ec2, "parbake:layer-hash", hash).await;
    assert!(!instances.is_empty());
    for i in instances {
        let keys: Vec<_> = i.tags().iter().filter_map(|t| t.key()).collect();
        assert!(
            keys.contains(&"parbake:owner")
                && keys.contains(&"parbake:run-id")
                && keys.contains(&"parbake:expires-at"),
            "{keys:?}"
        );
        assert_ne!(
            i.state().and_then(|s| s.name()).map(|n| n.as_str()),
            Some("running")
        );
    }
}

/// 2. the same bake again: found by tag, no Packer.
fn the_same_bake_is_a_cache_hit_without_packer(
    parbake: &impl Fn(&[&str]) -> Test,
    store: &Path,
    ami1: &str,
) {
    let fake = store.join("fake-packer");
    let marker = store.join("packer-ran");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rep = parbake(&["bake", "web", "--target", "aws", "--json"])
        .env("PARBAKE_PACKER", &fake)
        .json();
    assert_eq!(rep["layers"][0]["outcome"], "cached");
    assert_eq!(rep["layers"][0]["image"], ami1);
    assert!(!marker.exists(), "a cache hit ran Packer");
}

/// 3. promote: layer 2 bakes from layer 1's AMI. Its AMI.
fn a_promote_bakes_layer_two_on_layer_one(
    parbake: &impl Fn(&[&str]) -> Test,
    ami1: &str,
) -> String {
    let rep = parbake(&[
        "bake",
        "web",
        "--target",
        "aws",
        "--promote",
        "nginx",
        "--json",
    ])
    .json();
    assert_eq!(rep["layers"][0]["outcome"], "cached");
    assert_eq!(rep["layers"][1]["outcome"], "baked");
    let ami2 = rep["layers"][1]["image"].as_str().unwrap().to_string();
    rt().block_on(async {
        let ec2 = ec2("us-east-1").await;
        let (tags, _) = tags_of_image(&ec2, &ami2).await;
        assert_eq!(tags["parbake:parent-ami"], ami1);
        assert_eq!(
            tags["parbake:parent-layer"],
            rep["layers"][0]["hash"].as_str().unwrap()
        );
        assert_eq!(tags["parbake:stack"], "web");
        assert_eq!(tags["parbake:baked"], "base,users,nginx");
    });
    ami2
}

/// The node of AMI `id` in `images --json`'s regions, searched through the children.
fn find_image(regions: &serde_json::Value, id: &str) -> Option<serde_json::Value> {
    fn walk(n: &serde_json::Value, id: &str) -> Option<serde_json::Value> {
        if n["id"] == id {
            return Some(n.clone());
        }
        n["children"].as_array()?.iter().find_map(|c| walk(c, id))
    }
    regions
        .as_array()?
        .iter()
        .flat_map(|r| r["images"].as_array().unwrap().iter())
        .find_map(|n| walk(n, id))
}

/// 3b. the lineage tree: layer 2 under layer 1, both current; a changed role makes them stale.
fn images_shows_the_lineage_and_a_changed_role_makes_it_stale(
    parbake: &impl Fn(&[&str]) -> Test,
    ami1: &str,
    ami2: &str,
) {
    let tree = parbake(&["images", "--json"]).json();
    let base = find_image(&tree, ami1).expect("layer 1 AMI listed");
    assert_eq!(base["status"], "current", "{base}");
    assert_eq!(base["children"][0]["id"], ami2, "{base}");
    assert_eq!(base["children"][0]["status"], "current");
    assert_eq!(base["children"][0]["stack"], "web");
    let f = Fixture::example();
    f.append("roles/base/defaults/main.yml", "\n# changed\n");
    let tree = changed_copy(&f).args(&["images", "--json"]).json();
    let base = find_image(&tree, ami1).unwrap();
    assert_eq!(base["status"], "stale", "{base}");
    assert_eq!(base["children"][0]["status"], "stale");
}

/// `parbake` in a changed copy of the example against moto, with no store of its own and
/// provisioning not skipped.
fn changed_copy(f: &Fixture) -> Test {
    Test::new(f.root())
        .env("PARBAKE_EC2_ENDPOINT", &moto().url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
}

/// 4. user-data from the AMIs' tags: exactly the roles each AMI did not bake.
fn userdata_runs_exactly_the_roles_each_ami_did_not_bake(
    parbake: &impl Fn(&[&str]) -> Test,
    ami1: &str,
    ami2: &str,
) {
    let ud = parbake(&["userdata", "web", "--target", "aws", "--ami", ami1]).run();
    let spec = launch_spec(&ud.stdout);
    assert_eq!(spec_roles(&spec), ["nginx", "python", "webapp", "identity"]);
    assert_eq!(
        spec["baked"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["base", "users"]
    );
    let ud = parbake(&["userdata", "web", "--target", "aws", "--ami", ami2]).run();
    assert_eq!(
        spec_roles(&launch_spec(&ud.stdout)),
        ["python", "webapp", "identity"]
    );
    // without --ami: the AMI of the stack's current top layer, found by its hash
    let ud = parbake(&["userdata", "web", "--target", "aws", "--promote", "nginx"])
        .stderr_contains(&format!("for AMI {ami2}"))
        .run();
    assert_eq!(
        spec_roles(&launch_spec(&ud.stdout)),
        ["python", "webapp", "identity"]
    );
}

/// 5. a role changed since the AMI was baked: refused, naming the AMI and the role.
fn userdata_refuses_an_ami_whose_role_changed(ami1: &str) {
    let f = Fixture::example();
    f.append("roles/webapp/defaults/main.yml", "\n# changed\n");
    let out = changed_copy(&f)
        .args(&["userdata", "web", "--target", "aws", "--ami", ami1])
        .code(1)
        .stdout_is("")
        .stderr_contains("hint:")
        .run();
    let err = out.stderr;
    assert!(
        err.contains(&format!("AMI {ami1}")) && err.contains("role `webapp` differs"),
        "{err}"
    );
}

/// 6. launch: RunInstances with exactly the user-data `parbake userdata` writes, tagged.
fn launch_runs_the_instance_with_exactly_userdatas_bytes(
    parbake: &impl Fn(&[&str]) -> Test,
    store: &Path,
    ami2: &str,
) {
    let ud_file = store.join("ud");
    parbake(&[
        "userdata",
        "web",
        "--target",
        "aws",
        "--promote",
        "nginx",
        "-o",
        ud_file.to_str().unwrap(),
    ])
    .run();
    let expected = std::fs::read(&ud_file).unwrap();
    let rep = parbake(&[
        "launch",
        "web",
        "--target",
        "aws",
        "--promote",
        "nginx",
        "--json",
    ])
    .json();
    assert_eq!(rep["state"], "running");
    assert_eq!(rep["ami"], ami2);
    let instance = rep["instance_id"].as_str().unwrap().to_string();
    rt().block_on(async {
        let ec2 = ec2("us-east-1").await;
        assert_eq!(
            user_data_of(&ec2, &instance).await,
            expected,
            "the instance's user-data is byte for byte `parbake userdata`"
        );
        let d = ec2
            .sdk()
            .describe_instances()
            .instance_ids(&instance)
            .send()
            .await
            .unwrap();
        let i = &d.reservations()[0].instances()[0];
        assert_eq!(i.image_id(), Some(ami2));
        assert!(i
            .tags()
            .iter()
            .any(|t| t.key() == Some("parbake:stack") && t.value() == Some("web")));
        ec2.sdk()
            .terminate_instances()
            .instance_ids(&instance)
            .send()
            .await
            .unwrap();
    });
}

/// The user-data of `instance`, decoded.
async fn user_data_of(ec2: &Ec2, instance: &str) -> Vec<u8> {
    use base64::Engine;
    let attr = ec2
        .sdk()
        .describe_instance_attribute()
        .instance_id(instance)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let b64 = attr.user_data().and_then(|u| u.value()).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

#[test]
fn copy_to_regions_makes_tagged_copies() {
    let p = AwsProject::new(Fixture::example());
    p.f.replace(
        "images/debian12.yml",
        "copy_to_regions: []",
        "copy_to_regions: [eu-west-1]",
    );
    let rep = p.json(&["bake", "web", "--target", "aws", "--json"]);
    let hash = rep["layers"][0]["hash"].as_str().unwrap().to_string();
    rt().block_on(async {
        let home = ec2("us-east-1")
            .await
            .layer_amis(&example_scope(), &hash)
            .await
            .unwrap();
        assert_eq!(home.len(), 1);
        assert_eq!(home[0].id, rep["layers"][0]["image"].as_str().unwrap());
        let copies = ec2("eu-west-1")
            .await
            .layer_amis(&example_scope(), &hash)
            .await
            .unwrap();
        assert_eq!(copies.len(), 1, "one tagged copy in eu-west-1");
        assert_ne!(copies[0].id, home[0].id);
        assert_eq!(copies[0].tags["parbake:image"], "debian12");
        assert_eq!(copies[0].tags["parbake:baked"], "base,users");
        // IMDSv2 on the copy too (moto stand-in 5 in tests/fixtures/moto_server.py)
        let imds = ec2("eu-west-1")
            .await
            .sdk()
            .describe_image_attribute()
            .image_id(&copies[0].id)
            .attribute(aws_sdk_ec2::types::ImageAttributeName::ImdsSupport)
            .send()
            .await
            .unwrap();
        assert_eq!(imds.imds_support().and_then(|v| v.value()), Some("v2.0"));
    });
}

#[test]
fn ctrl_c_during_an_aws_bake_leaves_no_running_instance() {
    let p = AwsProject::new(Fixture::example());
    // a layer no other test bakes
    p.f.replace(
        "images/debian12.yml",
        "base_timezone: Etc/UTC",
        "base_timezone: Europe/Oslo",
    );
    let owner = format!("ctrlc-{}", std::process::id());
    let bake = p
        .parbake(&["bake", "web", "--target", "aws"])
        .envs(&[("PARBAKE_TEST_PAUSE_SECONDS", "120"), ("USER", &owner)])
        .code(130);
    let child = bake.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt().block_on(instances_of("us-east-1", &owner, "running")) == 0 {
        assert!(Instant::now() < deadline, "the builder instance never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let err = bake.finish(child).stderr;
    assert_eq!(
        rt().block_on(instances_of("us-east-1", &owner, "running")),
        0,
        "a builder instance is still running:\n{err}"
    );
    let builds: Vec<_> = std::fs::read_dir(p.store().join("build"))
        .unwrap()
        .collect();
    assert!(builds.is_empty(), "build dirs left");
}

/// `plan --target aws` resolves the source AMI read-only, as `userdata` does, so its layer
/// hashes are the ones `bake` computes; without EC2 it still plans, and says (in text and
/// JSON) that its hashes are provisional.
#[test]
fn plan_on_aws_shows_the_hashes_bake_computes_or_says_they_are_provisional() {
    const REGION: &str = "ap-northeast-1";
    let p = AwsProject::example(REGION, "Asia/Tokyo");
    let plan = p.json(&["plan", "web", "--target", "aws", "--json"]);
    assert!(plan.get("provisional").is_none(), "{plan}");
    let bake = p.json(&["bake", "web", "--target", "aws", "--json"]);
    assert_eq!(plan["layers"][0]["hash"], bake["layers"][0]["hash"]);
    render_names_the_resolved_source_ami(&p, &bake);

    // EC2 unreachable: a closed port on this machine
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = p
        .parbake(&["plan", "web", "--target", "aws", "--json"])
        .env("PARBAKE_EC2_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .run();
    let plan = out.json();
    let sentence = plan["provisional"]
        .as_str()
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(
        sentence.starts_with("layer hashes are provisional"),
        "{sentence}"
    );
    assert!(out.stderr.contains(sentence), "{}", out.stderr);
    assert_ne!(plan["layers"][0]["hash"], bake["layers"][0]["hash"]);
}

/// render's var-file names the resolved source AMI, not a placeholder.
fn render_names_the_resolved_source_ami(p: &AwsProject, bake: &serde_json::Value) {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("r");
    p.ok(&[
        "render",
        "web",
        "--target",
        "aws",
        "-o",
        dir.to_str().unwrap(),
    ]);
    let vars = std::fs::read_to_string(dir.join("layers/1-debian12/parbake.pkrvars.json")).unwrap();
    let source = bake["layers"][0]["parent"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!vars.contains("ami-00000000000000000"), "{vars}");
    assert!(
        vars.contains("\"source_ami\": \"ami-") || vars.contains("\"source_ami\":\"ami-"),
        "{vars} {source}"
    );
}

/// The project id ends every AMI name; a name that would pass EC2's 128 characters with it is
/// refused before Packer runs, naming the layer, the name and what to shorten.
#[test]
fn an_ami_name_too_long_with_the_project_id_is_refused_before_packer() {
    const REGION: &str = "ap-east-1";
    let id = "a-project-id-of-thirty-two-chars";
    assert_eq!(id.len(), 32);
    let p = AwsProject::new(example_of_project(REGION, "Asia/Hong_Kong", id));
    p.f.replace(
        "images/debian12.yml",
        "ami_name: parbake-{layer}-{hash}",
        &format!("ami_name: {}-{{layer}}-{{hash}}", "n".repeat(90)),
    );
    let err = p.fails(&["bake", "web", "--target", "aws"]);
    assert!(
        err.contains("the AMI name of layer debian12 would be 145 characters, more than EC2's 128"),
        "{err}"
    );
    assert!(err.contains(&format!("-{id}`")), "{err}");
    assert!(
        err.contains("hint: shorten `sources.aws.ami_name` in images/debian12.yml, or the project id in parbake.yml"),
        "{err}"
    );
    assert!(!err.contains("with Packer"), "Packer ran:\n{err}");
    rt().block_on(async {
        let amis = ec2(REGION)
            .await
            .describe_images(
                &["self".to_string()],
                vec![parbake::targets::aws::ec2::filter(
                    "tag:parbake:project",
                    id,
                )],
            )
            .await
            .unwrap();
        assert!(amis.is_empty(), "{amis:?}");
    });
}
