//! The shipped `examples/nightly.sh` on EC2 (moto).

use super::iam_policy::check_iam_policy;
use super::support::*;

/// Where [`nightly_sh`] writes its reports.
fn reports(p: &AwsProject) -> std::path::PathBuf {
    p.store().join("reports")
}

/// The newest report whose name starts with `prefix` (`bake-`, `prune-`).
fn latest(p: &AwsProject, prefix: &str) -> serde_json::Value {
    let mut files: Vec<_> = std::fs::read_dir(reports(p))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    files.sort();
    serde_json::from_str(&std::fs::read_to_string(files.last().unwrap()).unwrap()).unwrap()
}

/// `examples/nightly.sh` on EC2 (moto, real Packer amazon-ebs): a new stack bakes, verifies
/// and publishes version 1 of its launch template; a changed role rebakes, verifies and
/// publishes version 2; `rollback` makes version 1 the default again. moto runs no guest, so
/// the stack's instances "print" the runner's done status through moto_server.py's console
/// switch; the real runner's status path is proven in the VM tier.
#[test]
fn the_nightly_example_publishes_a_verified_launch_template_version_and_rollback_undoes_it() {
    const REGION: &str = "eu-west-3";
    let p = AwsProject::example(REGION, "Asia/Kathmandu");
    let web = p.f.read("images/stacks/web.yml");
    for s in ["web", "worker"] {
        std::fs::remove_file(p.root().join(format!("images/stacks/{s}.yml"))).unwrap();
    }
    p.f.write(
        "images/stacks/nightly.yml",
        &format!("{web}publish:\n  launch_template: nightly-fleet-test\n"),
    );
    // what the stack's runner prints on the console when its launch is done
    console_says(REGION, "nightly", &done_status("nightly"));
    let template = || {
        rt().block_on(async {
            ec2(REGION)
                .await
                .launch_template("nightly-fleet-test")
                .await
                .unwrap()
                .expect("the launch template")
        })
    };

    // night 1: the stack is new
    let err = nightly_sh(&p);
    assert!(err.contains("published nightly"), "{err}");
    let bake = latest(&p, "bake-");
    assert_eq!(bake["counts"]["baked"], 1, "{bake}");
    assert_eq!(bake["verified"][0]["stack"], "nightly", "{bake}");
    assert_eq!(bake["verified"][0]["outcome"], "passed", "{bake}");
    let ami1 = bake["layers"][0]["image_id"].as_str().unwrap().to_string();
    let lt = template();
    assert_eq!((lt.default_version, lt.versions.len()), (1, 1));
    assert_eq!(lt.versions[0].image_id.as_deref(), Some(ami1.as_str()));
    assert!(lt.versions[0].description.contains(" verified"), "{lt:?}");

    let ami2 = night_2_refreshes_verifies_and_publishes_version_2(&p, &ami1);
    let lt = template();
    assert_eq!((lt.default_version, lt.versions.len()), (2, 2));
    assert_eq!(lt.versions[1].image_id.as_deref(), Some(ami2.as_str()));
    // prune kept both: the published default and the rollback target
    let prune = latest(&p, "prune-");
    let decisions = prune.as_array().unwrap_or_else(|| panic!("{prune}"));
    for ami in [&ami1, &ami2] {
        let d = decisions
            .iter()
            .find(|d| d["ami"] == ami.as_str())
            .unwrap_or_else(|| panic!("{ami} not in {prune}"));
        assert_eq!(d["action"], "keep", "{d}");
    }
    // rollback is one command
    p.ok(&["rollback", "nightly", "--target", "aws"]);
    let lt = template();
    assert_eq!(lt.default_version, 1, "{lt:?}");
    both_amis_passed_verify(REGION, &[&ami1, &ami2]);
}

/// Night 2: a launch role changed; no layer runs it, so the image's run is cached and its
/// payload is refreshed (a new AMI), then verified and published. The new AMI.
fn night_2_refreshes_verifies_and_publishes_version_2(p: &AwsProject, ami1: &str) -> String {
    p.f.append("roles/webapp/tasks/main.yml", "# changed tonight\n");
    let err = nightly_sh(p);
    assert!(err.contains("published nightly"), "{err}");
    let bake = latest(p, "bake-");
    assert_eq!(
        (&bake["counts"]["baked"], &bake["counts"]["refreshed"]),
        (&serde_json::json!(0), &serde_json::json!(1)),
        "{bake}"
    );
    assert_eq!(
        bake["layers"][0]["why"],
        serde_json::json!(["payload changed: role webapp"]),
        "{bake}"
    );
    assert_eq!(bake["verified"][0]["outcome"], "passed", "{bake}");
    let ami2 = bake["layers"][0]["image_id"].as_str().unwrap().to_string();
    assert_ne!(ami1, ami2);
    ami2
}

fn both_amis_passed_verify(region: &str, amis: &[&String]) {
    rt().block_on(async {
        let ec2 = ec2(region).await;
        for ami in amis {
            let (tags, _) = tags_of_image(&ec2, ami).await;
            assert_eq!(
                tags.get("parbake:verify-result").map(String::as_str),
                Some("passed"),
                "{ami}: {tags:?}"
            );
        }
    });
}

/// The shipped `examples/nightly.sh` in `p` against moto (provisioning skipped), which
/// must exit 0 within 10 minutes; its stderr.
fn nightly_sh(p: &AwsProject) -> String {
    let nightly = aws(p.root(), p.store())
        .program("bash")
        .args(&[repo().join("examples/nightly.sh").to_str().unwrap()])
        .env("PARBAKE", env!("CARGO_BIN_EXE_parbake"))
        .env("TARGET", "aws")
        .env("REPORTS", reports(p));
    let child = nightly.spawn();
    let pid = child.id();
    // a watchdog: a verify that never sees the status would wait 30 minutes
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(600);
        while Instant::now() < until {
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    });
    let out = nightly.finish(child);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    out.stderr
}

/// The verdicts of a bake report, by stack.
fn verdicts(bake: &serde_json::Value) -> BTreeMap<String, String> {
    bake["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("stack"), s("outcome"))
        })
        .collect()
}

/// Per stack (web, worker) of the end-to-end test: its template's default version, its number
/// of versions, and the default's AMI.
fn defaults(region: &str) -> Vec<(i64, usize, Option<String>)> {
    rt().block_on(async {
        let ec2 = ec2(region).await;
        let mut out = Vec::new();
        for s in ["web", "worker"] {
            let lt = ec2
                .launch_template(&format!("{s}-nightly-e2e"))
                .await
                .unwrap()
                .expect("the launch template");
            let default = lt
                .versions
                .iter()
                .find(|v| v.number == lt.default_version)
                .and_then(|v| v.image_id.clone());
            out.push((lt.default_version, lt.versions.len(), default));
        }
        out
    })
}

/// One night of the end-to-end test: both stacks published and passed, and both templates'
/// default at `version` (of as many) on the AMI the night baked, which it returns.
fn a_night_publishes_both(p: &AwsProject, region: &str, version: i64) -> String {
    let err = nightly_sh(p);
    assert!(
        err.contains("published web") && err.contains("published worker"),
        "{err}"
    );
    let bake = latest(p, "bake-");
    let both_passed: BTreeMap<String, String> = [("web", "passed"), ("worker", "passed")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(verdicts(&bake), both_passed, "{bake}");
    let ami = bake["layers"][0]["image_id"].as_str().unwrap().to_string();
    let d = defaults(region);
    assert!(
        d.iter()
            .all(|(v, n, default)| (*v, *n) == (version, version as usize)
                && default.as_deref() == Some(ami.as_str())),
        "{d:?}"
    );
    ami
}

/// The shipped `examples/nightly.sh` on a copy of the example project as it is (web and
/// worker, which share their base AMI), each stack publishing to a launch template: night 1
/// bakes, verifies both stacks, publishes both and prunes; a role edit; night 2 refreshes,
/// verifies, publishes and prunes again, each night with exit 0. The runners' done status
/// comes through moto_server.py's console switch, in this test's own region.
#[test]
fn the_nightly_example_runs_end_to_end_on_the_example_project_after_a_role_edit() {
    const REGION: &str = "me-central-1";
    let p = AwsProject::example(REGION, "Asia/Dubai");
    for s in ["web", "worker"] {
        p.f.append(
            &format!("images/stacks/{s}.yml"),
            &format!(
                "publish:\n  launch_template: {s}-nightly-e2e\n  ssm_parameter: /parbake-e2e/{s}/ami\n"
            ),
        );
        console_says(REGION, s, &done_status(s));
    }
    let ami1 = a_night_publishes_both(&p, REGION, 1);
    // a role edit: webapp runs at launch, so night 2 refreshes the payload and republishes
    p.f.append("roles/webapp/tasks/main.yml", "# changed tonight\n");
    let ami2 = a_night_publishes_both(&p, REGION, 2);
    assert_ne!(ami1, ami2);
    prune_kept_the_defaults_and_the_rollback_targets(&p, &ami1, &ami2);

    // the rest of what a team runs, so the IAM policy's test sees every call: a launch, a
    // rollback, and a prune that removes an AMI with its snapshot
    p.ok(&["launch", "web", "--target", "aws"]);
    p.ok(&["rollback", "web", "--target", "aws"]);
    let (older, newer) = ghost_stack_amis(REGION);
    let d = prune_decisions(&p, &["prune", "--keep", "1", "--region", REGION, "--json"]);
    assert_eq!(d[&older].0, "removed", "{:?}", d[&older]);
    assert_eq!(d[&newer].1, ["newest"], "{:?}", d[&newer]);
    check_iam_policy(REGION);
}

/// Prune ran and kept both: the published defaults and the rollback targets.
fn prune_kept_the_defaults_and_the_rollback_targets(p: &AwsProject, ami1: &str, ami2: &str) {
    let prune = latest(p, "prune-");
    for ami in [ami1, ami2] {
        let d = prune
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["ami"] == ami)
            .unwrap_or_else(|| panic!("{ami} not in {prune}"));
        assert_eq!(d["action"], "keep", "{d}");
        let kinds: Vec<&str> = d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        let want = if ami == ami2 {
            "template-default"
        } else {
            "rollback-target"
        };
        assert!(kinds.contains(&want), "{ami}: {d}");
    }
}

/// Two AMIs of the example project (`parbake-example`) of a stack `ghost` no stack file
/// names, the first older: prune --keep 1 removes it.
fn ghost_stack_amis(region: &str) -> (String, String) {
    rt().block_on(async {
        use aws_sdk_ec2::types::Tag;
        let c = ec2(region).await.sdk().clone();
        let builder = debian_instance(&c).await;
        let mut ids = Vec::new();
        for name in ["pb-ghost-1", "pb-ghost-2"] {
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
            let mut req = c.create_tags().resources(&ami);
            for (k, v) in [
                ("parbake:layer-hash", "2".repeat(64)),
                ("parbake:image", "debian12".into()),
                ("parbake:stack", "ghost".into()),
                ("parbake:project", "parbake-example".into()),
            ] {
                req = req.tags(Tag::builder().key(k).value(v).build());
            }
            req.send().await.unwrap();
            ids.push(ami);
        }
        c.terminate_instances()
            .instance_ids(&builder)
            .send()
            .await
            .unwrap();
        (ids[0].clone(), ids[1].clone())
    })
}
