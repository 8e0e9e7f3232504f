//! The launch runner (`parbake-roles`, baked into every image) run for real on this host with
//! the pinned ansible-core, against a fake image root (PARBAKE_ROOT): the manifest check, the
//! shims for baked roles, per-role status, re-runs, failures and secrets.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::util::repo;

struct Image {
    root: tempfile::TempDir,
}

impl Image {
    /// roles: (name, dependencies, tasks YAML). `baked`: roles the fake image's manifest says it baked.
    fn new(roles: &[(&str, &[&str], &str)], baked: &[&str]) -> Image {
        let root = tempfile::Builder::new()
            .prefix("parbake-runner-")
            .tempdir()
            .unwrap();
        let home = root.path().join("opt/parbake");
        for (name, deps, tasks) in roles {
            let dir = home.join("roles").join(name);
            std::fs::create_dir_all(dir.join("tasks")).unwrap();
            std::fs::create_dir_all(dir.join("meta")).unwrap();
            std::fs::write(dir.join("tasks/main.yml"), tasks).unwrap();
            let deps: Vec<String> = deps.iter().map(|d| format!("  - {d}\n")).collect();
            std::fs::write(
                dir.join("meta/main.yml"),
                format!("dependencies:\n{}", deps.concat()),
            )
            .unwrap();
        }
        std::fs::create_dir_all(home.join("lib/callback_plugins")).unwrap();
        std::fs::write(
            home.join("lib/callback_plugins/parbake_events.py"),
            parbake::runtime::CALLBACK,
        )
        .unwrap();
        let installed: serde_json::Map<String, Value> = roles
            .iter()
            .map(|(n, _, _)| (n.to_string(), json!(hash(n))))
            .collect();
        let baked: serde_json::Map<String, Value> = baked
            .iter()
            .map(|n| (n.to_string(), json!(hash(n))))
            .collect();
        std::fs::write(
            home.join("manifest.json"),
            json!({"format": 1, "layer": {"name": "img-test", "hash": "f".repeat(64)}, "installed": installed, "baked": baked}).to_string(),
        )
        .unwrap();
        Image { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn spec(&self, launch: &[&str], baked: &[&str], vars: Value, secrets: Value) -> PathBuf {
        let spec = json!({
            "format": 1, "stack": "web", "image": "img", "layer": "f".repeat(64), "layer_name": "img-test",
            "baked": baked.iter().map(|n| (n.to_string(), json!(hash(n)))).collect::<serde_json::Map<_, _>>(),
            "roles": launch.iter().map(|n| json!({"name": n, "hash": hash(n)})).collect::<Vec<_>>(),
            "vars": vars, "secrets": secrets,
        });
        let p = self.path("launch.json");
        std::fs::write(&p, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
        p
    }

    fn run(&self, spec: &Path, extra: &[&str]) -> (i32, String) {
        self.run_env(spec, extra, &[])
    }

    fn run_env(&self, spec: &Path, extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        let path = format!(
            "{}:{}",
            repo().join(".venv/bin").display(),
            std::env::var("PATH").unwrap()
        );
        let out = Command::new("python3")
            .arg(repo().join("src/assets/parbake-roles.py"))
            .arg("launch")
            .arg(spec)
            .args(extra)
            .env("PARBAKE_ROOT", self.root.path())
            .env("PARBAKE_CONSOLE", self.path("console.log"))
            .env("PATH", path)
            .env("ANSIBLE_HOME", self.path("ansible-home"))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn status(&self) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.path("var/lib/parbake/status.json")).unwrap(),
        )
        .unwrap()
    }

    fn role_status(&self, role: &str) -> String {
        self.status()["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == role)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Roles that ran at least one task, from the events file.
    fn roles_with_events(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path("var/lib/parbake/launch-events.jsonl"))
            .unwrap_or_default();
        let mut roles: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "task")
            .filter_map(|e| e["role"].as_str().map(String::from))
            .collect();
        roles.dedup();
        roles
    }
}

fn hash(role: &str) -> String {
    format!("sha256:{:0>64}", role.len())
}

fn touch(marker: &str) -> String {
    format!("- name: mark {marker}\n  ansible.builtin.copy:\n    content: \"{{{{ greeting | default('x') }}}}\"\n    dest: \"{{{{ out_dir }}}}/{marker}\"\n    mode: \"0644\"\n")
}

fn standard() -> Image {
    Image::new(
        &[
            ("base", &[], &touch("base")),
            ("nginx", &["base"], &touch("nginx")),
            ("webapp", &["nginx"], &touch("webapp")),
            (
                "boom",
                &[],
                "- name: fail on purpose\n  ansible.builtin.fail:\n    msg: boom went the role\n",
            ),
        ],
        &["base"],
    )
}

#[test]
fn runs_launch_roles_in_order_and_never_reruns_a_baked_dependency() {
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec(
        &["nginx", "webapp"],
        &["base"],
        json!({"out_dir": out, "greeting": "hello"}),
        json!({}),
    );
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 0, "{stdout}");
    let st = img.status();
    assert_eq!(st["state"], "done");
    assert_eq!(img.role_status("nginx"), "ok");
    assert_eq!(img.role_status("webapp"), "ok");
    assert!(st["roles"][0]["duration_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        std::fs::read_to_string(out.join("webapp")).unwrap(),
        "hello"
    );
    // base is baked: webapp → nginx → base meta dependency resolved to the shim
    assert!(
        !out.join("base").exists(),
        "a baked dependency ran again at launch"
    );
    assert_eq!(img.roles_with_events(), ["nginx", "webapp"]);
    let console = std::fs::read_to_string(img.path("console.log")).unwrap();
    assert!(
        console.contains("parbake: launch done stack=web roles=2 ok=2"),
        "{console}"
    );
    assert!(console.contains("parbake-status {"), "{console}");
    assert!(
        !img.path("run/parbake/vars.json").exists(),
        "resolved vars are removed after the run"
    );
}

#[test]
fn a_rerun_skips_roles_that_succeeded_and_force_runs_them_again() {
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec(&["nginx"], &["base"], json!({"out_dir": out}), json!({}));
    assert_eq!(img.run(&spec, &[]).0, 0);
    std::fs::remove_file(out.join("nginx")).unwrap();
    assert_eq!(img.run(&spec, &[]).0, 0);
    assert_eq!(img.role_status("nginx"), "skipped");
    assert!(!out.join("nginx").exists(), "a succeeded role ran again");
    assert_eq!(img.run(&spec, &["--force"]).0, 0);
    assert_eq!(img.role_status("nginx"), "ok");
    assert!(out.join("nginx").exists());
}

#[test]
fn a_failing_role_is_named_later_roles_do_not_run_and_a_rerun_retries_only_the_rest() {
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec(
        &["nginx", "boom", "webapp"],
        &["base"],
        json!({"out_dir": out}),
        json!({}),
    );
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 1);
    let st = img.status();
    assert_eq!(st["state"], "failed");
    assert!(
        st["error"].as_str().unwrap().contains("role boom failed"),
        "{st}"
    );
    assert_eq!(img.role_status("nginx"), "ok");
    assert_eq!(img.role_status("boom"), "failed");
    assert_eq!(img.role_status("webapp"), "not-run");
    assert!(stdout.contains("failed_role=boom"), "{stdout}");
    assert!(
        stdout.contains("parbake-log | "),
        "the log tail goes to the console: {stdout}"
    );
    // again: nginx is skipped, boom fails again
    assert_eq!(img.run(&spec, &[]).0, 1);
    assert_eq!(img.role_status("nginx"), "skipped");
    assert_eq!(img.role_status("boom"), "failed");
}

#[test]
fn a_role_hash_mismatch_fails_before_running_anything_naming_image_role_and_hashes() {
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec(&["nginx"], &["base"], json!({"out_dir": out}), json!({}));
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace(&hash("nginx"), "sha256:0bad");
    std::fs::write(&spec, text).unwrap();
    let (code, _) = img.run(&spec, &[]);
    assert_eq!(code, 1);
    let err = img.status()["error"].as_str().unwrap().to_string();
    for needle in ["role nginx", "img-test", "sha256:0bad", &hash("nginx")] {
        assert!(err.contains(needle), "{needle} missing in {err}");
    }
    assert!(!out.join("nginx").exists());
    assert_eq!(img.role_status("nginx"), "not-run");
}

#[test]
fn a_role_the_user_data_expects_baked_but_the_image_lacks_is_refused() {
    let img = standard();
    let spec = img.spec(
        &["webapp"],
        &["base", "nginx"],
        json!({"out_dir": "/nonexistent"}),
        json!({}),
    );
    assert_eq!(img.run(&spec, &[]).0, 1);
    let err = img.status()["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("role nginx is not baked into image img-test"),
        "{err}"
    );
}

#[test]
fn an_image_without_a_manifest_fails_clearly() {
    let img = standard();
    std::fs::remove_file(img.path("opt/parbake/manifest.json")).unwrap();
    let spec = img.spec(&["nginx"], &["base"], json!({}), json!({}));
    assert_eq!(img.run(&spec, &[]).0, 1);
    assert!(img.status()["error"]
        .as_str()
        .unwrap()
        .contains("has no parbake manifest"));
}

#[test]
fn file_secrets_are_resolved_on_the_instance_and_missing_ones_fail() {
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let secret = img.path("secret.txt");
    std::fs::write(&secret, "s3cr3t\n").unwrap();
    let spec = img.spec(
        &["nginx"],
        &["base"],
        json!({"out_dir": out}),
        json!({"greeting": format!("file:{}", secret.display())}),
    );
    assert_eq!(img.run(&spec, &[]).0, 0);
    assert_eq!(
        std::fs::read_to_string(out.join("nginx")).unwrap(),
        "s3cr3t"
    );
    let spec = img.spec(
        &["nginx"],
        &["base"],
        json!({"out_dir": out}),
        json!({"greeting": "file:/nonexistent/secret"}),
    );
    assert_eq!(img.run(&spec, &["--force"]).0, 1);
    assert!(img.status()["error"]
        .as_str()
        .unwrap()
        .contains("secret greeting"));
}

#[test]
fn the_runner_signs_like_botocore() {
    // the SigV4 signer against botocore's (in .venv with moto), an independent implementation
    let out = Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tests/fixtures/check_sigv4.py"))
        .arg(repo().join("src/assets/parbake-roles.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn with_status_tag_the_runner_tags_its_ec2_instance_and_a_failure_to_tag_changes_nothing() {
    use std::io::BufRead;
    let region = "us-west-1";
    let instance = crate::moto::rt().block_on(async {
        let ec2 = crate::moto::ec2(region).await;
        let r = ec2
            .client
            .run_instances()
            .image_id("ami-0de0b12a7f3c000b2")
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .unwrap();
        r.instances()[0].instance_id().unwrap().to_string()
    });
    /// The fake metadata service, stopped however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut imds = Command::new("python3")
        .arg(repo().join("tests/fixtures/fake_imds.py"))
        .args([&instance, region])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = imds.stdout.take().unwrap();
    let imds = Stop(imds);
    let mut port = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut port)
        .unwrap();
    let imds_url = format!("http://127.0.0.1:{}", port.trim());

    let img = Image::new(&[("ok", &[], "- ansible.builtin.debug: {msg: hi}\n")], &[]);
    let mut spec: Value = serde_json::from_str(
        &std::fs::read_to_string(img.spec(&["ok"], &[], json!({}), json!({}))).unwrap(),
    )
    .unwrap();
    spec["status_tag"] = json!(true);
    let spec_path = img.path("launch.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let (code, out) = img.run_env(
        &spec_path,
        &[],
        &[
            ("PARBAKE_IMDS", &imds_url),
            ("PARBAKE_EC2_ENDPOINT", &crate::moto::moto().url),
        ],
    );
    let console = std::fs::read_to_string(img.path("console.log")).unwrap();
    assert_eq!(code, 0, "{out}\n{console}");
    assert!(
        console.contains(&format!(
            "parbake: tagged instance {instance} parbake:status=done"
        )),
        "{console}"
    );
    let tags = crate::moto::rt().block_on(async {
        let ec2 = crate::moto::ec2(region).await;
        let r = ec2
            .client
            .describe_instances()
            .instance_ids(&instance)
            .send()
            .await
            .unwrap();
        r.reservations()[0].instances()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    assert_eq!(tags["parbake:status"], "done");
    assert!(
        tags["parbake:status-detail"].starts_with("done total="),
        "{tags:?}"
    );
    drop(imds);

    // no metadata service (not EC2, or IMDS blocked): said on the console, result unchanged
    let img = Image::new(&[("ok", &[], "- ansible.builtin.debug: {msg: hi}\n")], &[]);
    std::fs::write(img.path("launch.json"), spec.to_string()).unwrap();
    let (code, out) = img.run_env(
        &img.path("launch.json"),
        &[],
        &[("PARBAKE_IMDS", "http://127.0.0.1:9")],
    );
    let console = std::fs::read_to_string(img.path("console.log")).unwrap();
    assert_eq!(code, 0, "{out}\n{console}");
    assert!(
        console.contains("could not tag the instance with its status"),
        "{console}"
    );
    assert_eq!(img.status()["state"], "done");
}
