//! arm64 beside x86_64 (issue 27): the real Packer amazon-ebs builder bakes from an arm64
//! source AMI on a Graviton instance type against moto, with a single-architecture aws source,
//! and one image file with `architectures:` bakes, publishes, lists and prunes both chains.
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

/// EC2's Architecture of an AMI (DescribeImages).
async fn architecture_of(ec2: &Ec2, ami: &str) -> String {
    ec2.image(ami).await.unwrap().architecture
}

/// The arm64 AMI has the x86 one's parbake:* tags, with the same values but for what follows
/// from its own source: the architecture, the source and parent (the arm64 Debian), the
/// hashes, the source settings' digest in `inputs`, and the times.
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
    assert_eq!(a["parbake:arch"], "arm64");
    assert_eq!(x["parbake:arch"], "x86_64");
    assert_eq!(a["parbake:image"], "debian12");
    assert_eq!(a["parbake:baked"], "base,users");
    let varying = [
        "parbake:arch",
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
    let instances = instances_tagged(ec2, "parbake:layer-hash", hash).await;
    assert_eq!(instances.len(), 1, "{instances:?}");
    let i = &instances[0];
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

/// One image file, two architectures: a base layer and project ids of their own (the
/// distribution tests bake in this region too, as another project).
const BOTH_REGION: &str = "us-west-2";
const BOTH_TIME_ZONE: &str = "America/Phoenix";

/// The example's aws source baking both: x86_64 as the file says, arm64 on t4g.small from its
/// own source AMI; the web stack publishing to a launch template.
fn both_architectures(f: &Fixture) {
    f.replace(
        "images/debian12.yml",
        "    copy_to_regions: []\n",
        "    copy_to_regions: []\n    architectures:\n      x86_64: {instance_type: t3.small}\n      arm64:\n        instance_type: t4g.small\n        source_ami: {owners: [\"136693071363\"], name: debian-12-arm64-*}\n",
    )
    .replace("images/stacks/web.yml", "promote: []", "promote: [nginx]")
    .append("images/stacks/web.yml", "publish: {launch_template: web-fleet}\n");
}

#[test]
fn one_image_file_bakes_x86_64_and_arm64_each_with_its_hashes_tags_and_template() {
    let p = AwsProject::new(example_of_project(BOTH_REGION, BOTH_TIME_ZONE, "arch-both"));
    both_architectures(&p.f);
    let plans = one_plan_shows_a_chain_per_architecture(&p);
    let tops = bake_all_bakes_both_chains_tagged_by_architecture(&p, &plans);
    publish_writes_one_launch_template_per_architecture(&p, &tops);
    images_groups_by_architecture_and_prune_keeps_both_tops(&p, &tops);
    commands_of_one_ami_need_one_architecture(&p);
    a_launch_of_arm64_runs_its_chain_on_its_instance_type(&p);
    let reps = p.json(&["bake", "worker", "--target", "aws", "--json"]);
    let arches: Vec<&str> = reps
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["arch"].as_str().unwrap())
        .collect();
    assert_eq!(
        arches,
        ["arm64", "x86_64"],
        "bake STACK bakes each architecture: {reps}"
    );
    assert!(reps
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["layers"][0]["outcome"] == "cached"));
    let again = p.json(&["bake", "--all", "--target", "aws", "--json"]);
    assert_eq!(again["counts"]["baked"], 0, "{again}");
    assert_eq!(
        again["counts"]["cached"],
        again["layers"].as_array().unwrap().len()
    );
}

/// `plan web --target aws`: two plans, arm64 then x86_64, whose layers all differ in hash and
/// in nothing else a launch sees (roles run, launch roles, installed role hashes).
fn one_plan_shows_a_chain_per_architecture(p: &AwsProject) -> Vec<serde_json::Value> {
    let plans = p.json(&["plan", "web", "--target", "aws", "--json"]);
    let plans = plans.as_array().expect("one plan per architecture").clone();
    assert_eq!(plans.len(), 2);
    let (arm, x86) = (&plans[0], &plans[1]);
    assert_eq!(
        (arm["arch"].as_str(), x86["arch"].as_str()),
        (Some("arm64"), Some("x86_64"))
    );
    assert!(
        arm["provisional"].is_null() && x86["provisional"].is_null(),
        "{arm}"
    );
    let layers = |pl: &serde_json::Value| pl["layers"].as_array().unwrap().clone();
    assert_eq!(layers(arm).len(), layers(x86).len());
    for (a, x) in layers(arm).iter().zip(layers(x86).iter()) {
        assert_ne!(a["hash"], x["hash"]);
        assert_eq!((&a["runs"], &a["name"]), (&x["runs"], &x["name"]));
    }
    assert_eq!(arm["launch"], x86["launch"]);
    assert_eq!(arm["installed"], x86["installed"]);
    let text = p.ok(&["plan", "web", "--target", "aws"]);
    assert!(
        text.contains("(target aws, arm64,") && text.contains("(target aws, x86_64,"),
        "{text}"
    );
    plans
}

/// `bake --all`: every layer of both chains baked once, each AMI tagged `parbake:arch` as
/// EC2 records its architecture, the arm64 one built on t4g.small. The top AMI of web's chain
/// per architecture.
fn bake_all_bakes_both_chains_tagged_by_architecture(
    p: &AwsProject,
    plans: &[serde_json::Value],
) -> BTreeMap<String, String> {
    let rep = p.json(&["bake", "--all", "--target", "aws", "--json"]);
    let layers = rep["layers"].as_array().unwrap();
    // per architecture: the base, and web's layer with nginx on it
    assert_eq!(layers.len(), 4, "{rep}");
    assert_eq!(rep["counts"]["baked"], 4, "{rep}");
    let mut tops = BTreeMap::new();
    rt().block_on(async {
        let ec2 = ec2(BOTH_REGION).await;
        for l in layers {
            let (ami, arch) = (l["image_id"].as_str().unwrap(), l["arch"].as_str().unwrap());
            let (tags, _) = tags_of_image(&ec2, ami).await;
            assert_eq!(tags["parbake:arch"], arch, "{l}");
            assert_eq!(architecture_of(&ec2, ami).await, arch);
            assert_eq!(tags["parbake:layer-hash"], l["hash"].as_str().unwrap());
            stack_layers_stand_on_their_own_architecture(&ec2, &tags, arch).await;
        }
        for plan in plans {
            let top = plan["layers"].as_array().unwrap().last().unwrap()["hash"].clone();
            let l = layers
                .iter()
                .find(|l| l["hash"] == top)
                .expect("web's top baked");
            let arch = plan["arch"].as_str().unwrap().to_string();
            tops.insert(arch, l["image_id"].as_str().unwrap().to_string());
        }
        let arm_base = &plans[0]["layers"][0]["hash"];
        the_builder_was_packers_graviton_instance(&ec2, arm_base.as_str().unwrap()).await;
    });
    tops
}

/// A stack layer's parent AMI is its own architecture's base.
async fn stack_layers_stand_on_their_own_architecture(
    ec2: &Ec2,
    tags: &BTreeMap<String, String>,
    arch: &str,
) {
    if tags.contains_key("parbake:stack") {
        let (parent, _) = tags_of_image(ec2, &tags["parbake:parent-ami"]).await;
        assert_eq!(parent["parbake:arch"], arch);
        assert!(!parent.contains_key("parbake:stack"));
    }
}

/// `publish web`: one launch template per architecture (a version holds one AMI and one
/// instance type), each with its chain's top AMI and instance type.
fn publish_writes_one_launch_template_per_architecture(
    p: &AwsProject,
    tops: &BTreeMap<String, String>,
) {
    // the fleet's template from before the image baked arm64 too
    rt().block_on(async {
        let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
            .image_id(X86_DEBIAN)
            .build();
        ec2(BOTH_REGION)
            .await
            .sdk()
            .create_launch_template()
            .launch_template_name("web-fleet")
            .launch_template_data(data)
            .send()
            .await
            .unwrap();
    });
    // each architecture verified in turn, its verdict on its own AMI
    console_says(BOTH_REGION, "web", &done_status("web"));
    let verified = p.json(&["verify", "web", "--target", "aws", "--json"]);
    let amis: Vec<&str> = verified
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["passed"], true, "{v}");
            v["ami"].as_str().unwrap()
        })
        .collect();
    assert_eq!(amis, [tops["arm64"].as_str(), tops["x86_64"].as_str()]);
    let reps = p.json(&["publish", "web", "--target", "aws", "--json"]);
    for r in reps.as_array().unwrap() {
        assert_eq!(r["verified"], true, "{r}");
        let note = r["notes"][0].as_str().unwrap_or_default();
        assert!(
            note.starts_with("launch template web-fleet is no longer published to"),
            "{r}"
        );
    }
    let names: Vec<&str> = reps
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["launch_template"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-fleet-arm64", "web-fleet-x86_64"], "{reps}");
    for (arch, instance_type) in [("arm64", "t4g.small"), ("x86_64", "t3.small")] {
        let v = rt().block_on(template_version(
            BOTH_REGION,
            &format!("web-fleet-{arch}"),
            "$Default",
        ));
        let data = v.launch_template_data().unwrap();
        assert_eq!(data.image_id(), Some(tops[arch].as_str()), "{arch}");
        assert_eq!(
            data.instance_type().map(|t| t.as_str()),
            Some(instance_type)
        );
    }
    // other user-data published to both, then rolled back on both
    change_a_launch_var(&p.f, "images/stacks/web.yml");
    p.ok(&["verify", "web", "--target", "aws"]);
    p.ok(&["publish", "web", "--target", "aws"]);
    let back = p.json(&["rollback", "web", "--target", "aws", "--json"]);
    assert_eq!(back.as_array().unwrap().len(), 2, "{back}");
    for arch in ["arm64", "x86_64"] {
        let name = format!("web-fleet-{arch}");
        let v = rt().block_on(template_version(BOTH_REGION, &name, "$Default"));
        assert_eq!(v.version_number(), Some(1), "{arch}: {back}");
    }
    // one architecture alone: arm64's template has nothing before its default now
    p.parbake(&["rollback", "web", "--target", "aws", "--arch", "arm64"])
        .code(1)
        .stderr_contains("web-fleet-arm64")
        .run();
}

/// `images` lists each architecture's AMIs under its own heading, all current; `prune` keeps
/// both chains' tops.
fn images_groups_by_architecture_and_prune_keeps_both_tops(
    p: &AwsProject,
    tops: &BTreeMap<String, String>,
) {
    let text = p.ok(&["images", "--target", "aws"]);
    let (arm, x86) = (
        text.find("\n  arm64\n").unwrap(),
        text.find("\n  x86_64\n").unwrap(),
    );
    assert!(arm < x86, "{text}");
    assert!(text[arm..x86].contains(&tops["arm64"]) && text[x86..].contains(&tops["x86_64"]));
    let json = p.json(&["images", "--target", "aws", "--json"]);
    let roots = json[0]["images"].as_array().unwrap();
    assert!(roots.iter().all(|n| n["status"] == "current"), "{json}");
    let decisions = prune_decisions(
        p,
        &[
            "prune",
            "--target",
            "aws",
            "--keep",
            "0",
            "--dry-run",
            "--json",
        ],
    );
    for ami in tops.values() {
        let (action, kinds, why) = &decisions[ami];
        assert_eq!(action, "keep", "{why}");
        assert!(kinds.iter().any(|k| k == "current"), "{kinds:?}");
    }
}

/// `launch --arch arm64`: the arm64 chain's AMI on the arm64 instance type, IMDSv2 as ever.
fn a_launch_of_arm64_runs_its_chain_on_its_instance_type(p: &AwsProject) {
    let rep = p.json(&[
        "launch", "worker", "--target", "aws", "--arch", "arm64", "--json",
    ]);
    let id = rep["instance_id"].as_str().unwrap().to_string();
    rt().block_on(async {
        let ec2 = ec2(BOTH_REGION).await;
        let i = instance(&ec2, &id).await;
        assert_eq!(i.instance_type().map(|t| t.as_str()), Some("t4g.small"));
        let (tags, _) = tags_of_image(&ec2, i.image_id().unwrap()).await;
        assert_eq!(tags["parbake:arch"], "arm64");
        assert_eq!(i.architecture().map(|a| a.as_str()), Some("arm64"));
    });
}

/// A command about one AMI (userdata, launch, render) needs `--arch`; the local target builds
/// x86_64 only and says so.
fn commands_of_one_ami_need_one_architecture(p: &AwsProject) {
    let err = p.fails(&["userdata", "web", "--target", "aws", "-o", "/dev/null"]);
    assert!(
        err.contains("stack web's image bakes arm64 and x86_64"),
        "{err}"
    );
    assert!(
        err.contains("hint: add --arch arm64 or --arch x86_64"),
        "{err}"
    );
    let err = p.fails(&["launch", "web", "--target", "aws"]);
    assert!(err.contains("a launch needs one"), "{err}");
    p.ok(&[
        "userdata",
        "web",
        "--target",
        "aws",
        "--arch",
        "arm64",
        "--explain",
    ]);
    let err = p.fails(&["plan", "web", "--target", "aws", "--arch", "ppc64"]);
    assert!(
        err.contains("invalid value 'ppc64' for '--arch <ARCH>'")
            && err.contains("[possible values: x86_64, arm64]"),
        "{err}"
    );
    let err = p.fails(&["launch", "web", "--arch", "arm64"]);
    assert!(
        err.contains("the local target builds x86_64 only, not arm64"),
        "{err}"
    );
    assert!(err.contains("--target aws --arch arm64"), "{err}");
}

/// `bake --all --emit`: both chains' layers, and a verify and publish job per architecture
/// (`--arch` on their command lines); the GitHub workflow passes actionlint and the GitLab
/// pipeline GitLab's schema.
#[test]
fn the_emitted_pipeline_verifies_and_publishes_each_architecture() {
    // a project of its own beside the other test's (the job below bakes): its AMIs are out of
    // that test's scope, and no test lists a region's AMIs of every project here
    let p = AwsProject::new(example_of_project(BOTH_REGION, "Asia/Jakarta", "arch-emit"));
    both_architectures(&p.f);
    let dag = p.json(&["bake", "--all", "--emit", "json", "--target", "aws"]);
    let layers = dag["layers"].as_array().unwrap();
    let arches: BTreeSet<&str> = layers.iter().map(|l| l["arch"].as_str().unwrap()).collect();
    assert_eq!(arches, BTreeSet::from(["arm64", "x86_64"]));
    let web: Vec<&serde_json::Value> = dag["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stack"] == "web")
        .collect();
    let jobs: Vec<&str> = web
        .iter()
        .map(|s| s["verify"]["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["verify-web-arm64", "verify-web-x86_64"], "{dag}");
    for s in &web {
        let arch = s["arch"].as_str().unwrap();
        let top = layers.iter().find(|l| l["hash"] == s["top"]).unwrap();
        assert_eq!(top["arch"], arch);
        let publish = s["publish"]["command"].as_array().unwrap();
        assert_eq!(
            publish[publish.len() - 2..],
            [serde_json::json!("--arch"), serde_json::json!(arch)]
        );
    }
    // an arm64 layer's job bakes it on its own chain, once
    let arm_base = layers
        .iter()
        .find(|l| l["arch"] == "arm64" && l["parent"].is_null())
        .unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let job = ["bake", "--layer", &arm_base, "--target", "aws", "--json"];
    let first = p.json(&job);
    assert_eq!(first["counts"]["baked"], 1, "{first}");
    assert_eq!(first["layers"][0]["arch"], "arm64");
    assert_eq!(p.json(&job)["counts"]["cached"], 1);
    let dir = tempfile::tempdir().unwrap();
    if let Some(actionlint) = super::emit::validator("actionlint") {
        let wf = dir.path().join(".github/workflows/parbake-layers.yml");
        std::fs::create_dir_all(wf.parent().unwrap()).unwrap();
        std::fs::write(
            &wf,
            p.ok(&[
                "bake",
                "--all",
                "--emit",
                "github-actions",
                "--target",
                "aws",
            ]),
        )
        .unwrap();
        let action = dir.path().join(".github/actions/parbake-setup/action.yml");
        std::fs::create_dir_all(action.parent().unwrap()).unwrap();
        std::fs::write(&action, "name: parbake-setup\ndescription: parbake\nruns:\n  using: composite\n  steps:\n    - run: parbake --version\n      shell: bash\n").unwrap();
        let mut cmd = std::process::Command::new(actionlint);
        cmd.current_dir(dir.path()).arg("-no-color").arg(&wf);
        super::emit::check(cmd);
    }
    if let Some(checker) = super::emit::validator("check-jsonschema") {
        let file = dir.path().join(".gitlab-ci.yml");
        std::fs::write(
            &file,
            p.ok(&["bake", "--all", "--emit", "gitlab", "--target", "aws"]),
        )
        .unwrap();
        let mut cmd = std::process::Command::new(checker);
        cmd.args(["--builtin-schema", "vendor.gitlab-ci"])
            .arg(&file);
        super::emit::check(cmd);
    }
}
