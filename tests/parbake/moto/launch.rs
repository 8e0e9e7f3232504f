//! Launch and verify on EC2: the console wait, Ctrl-C, verdicts, the instance profile.

use super::support::*;

#[test]
fn launch_wait_ready_reads_the_console_and_times_out_clearly_when_nothing_reports() {
    // moto's console output is a fixed fake boot log, so the runner's status never appears
    let p = AwsProject::new(Fixture::example());
    // a layer no other test bakes (tests share one moto server)
    p.f.replace(
        "images/debian12.yml",
        "base_timezone: Etc/UTC",
        "base_timezone: Asia/Tokyo",
    );
    p.ok(&["bake", "worker", "--target", "aws", "--json"]);
    let started = Instant::now();
    p.parbake(&[
        "launch",
        "worker",
        "--target",
        "aws",
        "--wait-ready",
        "--timeout",
        "6",
    ])
    .code(1)
    .stderr_contains("is running but its launch did not report within 6s")
    .stderr_contains("hint:")
    .run();
    assert!(started.elapsed() >= Duration::from_secs(6));
}

/// Ctrl-C in `verify --target aws` stops the wait at once, terminates the instance and exits
/// 130; it said what it was doing before, and the instance carried `parbake:expires-at`, so
/// `gc` would find it had parbake been killed instead.
#[test]
fn ctrl_c_in_an_aws_verify_terminates_its_instance_and_exits_130() {
    const REGION: &str = "us-west-1";
    let p = AwsProject::example(REGION, "America/Los_Angeles");
    p.ok(&["bake", "worker", "--target", "aws", "--json"]);
    one_ctrl_c_terminates_the_verify_instance(&p, REGION);
    a_second_ctrl_c_exits_at_once_naming_what_it_leaves(&p);
    a_launched_instance_has_no_expiry(&p, REGION);
}

fn one_ctrl_c_terminates_the_verify_instance(p: &AwsProject, region: &str) {
    let (mut child, reader) = verify_waiting(p.root(), p.store());
    let signalled = Instant::now();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    let err = reader.join().unwrap().join("\n");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(took < Duration::from_secs(20), "took {took:?} after SIGINT");
    assert!(
        err.contains("launched from ami-") && err.contains("terminated"),
        "{err}"
    );
    rt().block_on(async {
        let d = ec2(region)
            .await
            .sdk()
            .describe_instances()
            .filters(parbake::targets::aws::ec2::filter(
                "tag:parbake:purpose",
                "verify",
            ))
            .send()
            .await
            .unwrap();
        let instances: Vec<_> = d
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .collect();
        assert_eq!(instances.len(), 1);
        let i = instances[0];
        let state = i
            .state()
            .and_then(|s| s.name())
            .unwrap()
            .as_str()
            .to_string();
        assert!(
            ["shutting-down", "terminated"].contains(&state.as_str()),
            "{state}"
        );
        assert!(
            i.tags()
                .iter()
                .any(|t| t.key() == Some("parbake:expires-at")),
            "{:?}",
            i.tags()
        );
    });
}

/// A second Ctrl-C exits at once and names the instance it leaves.
fn a_second_ctrl_c_exits_at_once_naming_what_it_leaves(p: &AwsProject) {
    let (mut child, reader) = verify_waiting(p.root(), p.store());
    unsafe {
        // two signals of one kind may arrive as one; SIGTERM counts as a second Ctrl-C
        libc::kill(child.id() as i32, libc::SIGINT);
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let err = reader.join().unwrap().join("\n");
    assert!(
        err.contains("left behind: instance i-") && err.contains("parbake:expires-at"),
        "{err}"
    );
}

/// A launch's instance is the user's once it runs: no expiry for gc to act on.
fn a_launched_instance_has_no_expiry(p: &AwsProject, region: &str) {
    let rep = p.json(&["launch", "worker", "--target", "aws", "--json"]);
    let id = rep["instance_id"].as_str().unwrap().to_string();
    rt().block_on(async {
        let d = ec2(region)
            .await
            .sdk()
            .describe_instances()
            .instance_ids(&id)
            .send()
            .await
            .unwrap();
        let instance = &d.reservations()[0].instances()[0];
        // IMDSv2 only, by default
        assert_eq!(
            instance
                .metadata_options()
                .and_then(|m| m.http_tokens())
                .map(|t| t.as_str()),
            Some("required")
        );
        let tags = instance.tags();
        assert!(
            !tags.iter().any(|t| t.key() == Some("parbake:expires-at")),
            "{tags:?}"
        );
        assert!(tags
            .iter()
            .any(|t| t.key() == Some("parbake:purpose") && t.value() == Some("launch")));
    });
}

/// Two stacks on one AMI each keep their own verdict: `verify alpha; verify beta; publish
/// alpha` publishes alpha as verified (one verdict tag per user-data).
#[test]
fn stacks_sharing_an_ami_each_keep_their_verify_verdict() {
    const REGION: &str = "ap-southeast-1";
    let p = AwsProject::example(REGION, "Asia/Singapore");
    let web = p.f.read("images/stacks/web.yml");
    let worker = p.f.read("images/stacks/worker.yml");
    p.f.write(
        "images/stacks/alpha.yml",
        &format!("{web}publish:\n  launch_template: alpha-fleet-test\n"),
    );
    p.f.write("images/stacks/beta.yml", &worker);
    for s in ["alpha", "beta"] {
        console_says(REGION, s, &done_status(s));
    }
    let a = p.json(&["bake", "alpha", "--target", "aws", "--json"]);
    let b = p.json(&["bake", "beta", "--target", "aws", "--json"]);
    assert_eq!(a["layers"][0]["image"], b["layers"][0]["image"], "one AMI");
    for s in ["alpha", "beta"] {
        let v = p.json(&["verify", s, "--target", "aws", "--timeout", "120", "--json"]);
        assert_eq!(v["passed"], true, "{v}");
    }
    let published = p.json(&["publish", "alpha", "--target", "aws", "--json"]);
    assert_eq!(published["verified"], true, "{published}");
    launch_wait_ready_shows_the_verdict_roles_and_checks(&p);
    // the template parbake created asks for IMDSv2 only
    rt().block_on(async {
        let v = template_version(REGION, "alpha-fleet-test", "1").await;
        let data = v.launch_template_data().unwrap();
        assert_eq!(
            data.metadata_options()
                .and_then(|m| m.http_tokens())
                .map(|t| t.as_str()),
            Some("required")
        );
    });
    verify_ignores_the_status_of_another_launch_spec(&p, REGION, &worker);
}

/// launch --wait-ready in text: the verdict, each role and each check.
fn launch_wait_ready_shows_the_verdict_roles_and_checks(p: &AwsProject) {
    p.parbake(&[
        "launch",
        "alpha",
        "--target",
        "aws",
        "--wait-ready",
        "--timeout",
        "120",
    ])
    .stdout_contains("launch done in")
    .stdout_contains("  webapp ")
    .stdout_contains("  check unit nginx.service")
    .run();
}

/// A `done` line for another launch spec is not this launch's status: verify waits on, says
/// why, and times out.
fn verify_ignores_the_status_of_another_launch_spec(p: &AwsProject, region: &str, stack: &str) {
    let mut status = done_status("gamma");
    status["spec_digest"] = "0".repeat(64).into();
    status["parbake_test_keep_digest"] = true.into();
    console_says(region, "gamma", &status);
    p.f.write("images/stacks/gamma.yml", stack);
    p.parbake(&["verify", "gamma", "--target", "aws", "--timeout", "8"])
        .code(1)
        .stderr_contains("ignoring a status line for another launch spec (000000000000")
        .stderr_contains("did not report within 8s")
        .run();
}

/// `instance_profile:` in the aws source reaches the instances parbake starts and the launch
/// template it creates (what `!secret ssm:` needs on the instance).
#[test]
fn the_instance_profile_reaches_launched_instances_and_a_created_template() {
    const REGION: &str = "eu-south-1";
    moto_instance_profile("parbake-fleet");
    let p = AwsProject::example(REGION, "Europe/Rome");
    p.f.replace(
        "images/debian12.yml",
        "    instance_type: t3.small",
        "    instance_type: t3.small\n    instance_profile: parbake-fleet",
    );
    p.f.append(
        "images/stacks/worker.yml",
        "publish:\n  launch_template: profile-fleet-test\n",
    );
    p.json(&["bake", "worker", "--target", "aws", "--json"]);
    let rep = p.json(&["launch", "worker", "--target", "aws", "--json"]);
    let id = rep["instance_id"].as_str().unwrap().to_string();
    p.json(&[
        "publish",
        "worker",
        "--target",
        "aws",
        "--unverified",
        "--json",
    ]);
    rt().block_on(async {
        let c = ec2(REGION).await;
        let d = c
            .sdk()
            .describe_instances()
            .instance_ids(&id)
            .send()
            .await
            .unwrap();
        let arn = d.reservations()[0].instances()[0]
            .iam_instance_profile()
            .and_then(|p| p.arn())
            .unwrap_or_default()
            .to_string();
        assert!(arn.ends_with("instance-profile/parbake-fleet"), "{arn}");
        let v = template_version(REGION, "profile-fleet-test", "1").await;
        let data = v.launch_template_data().unwrap();
        assert_eq!(
            data.iam_instance_profile().and_then(|p| p.name()),
            Some("parbake-fleet")
        );
    });
}

/// `verify worker --target aws` started, once it says it waits for the runner's status: the
/// child, and the thread that collects its stderr lines.
fn verify_waiting(
    project: &std::path::Path,
    store: &std::path::Path,
) -> (std::process::Child, std::thread::JoinHandle<Vec<String>>) {
    let mut child = aws(project, store)
        .args(&["verify", "worker", "--target", "aws", "--timeout", "600"])
        .spawn();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(|l| l.ok())
        {
            if line.contains("waiting for the runner's status") {
                let _ = tx.send(());
            }
            seen.push(line);
        }
        seen
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("verify never said it was waiting for the runner");
    (child, reader)
}
