//! The launch runner (`parbake-roles`, baked into every image) run for real on this host with
//! the pinned ansible-core, against a fake image root (PARBAKE_ROOT): the manifest check, the
//! shims for baked roles, per-role status, re-runs, failures and secrets.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::util::repo;

pub(crate) struct Image {
    root: tempfile::TempDir,
}

impl Image {
    /// roles: (name, dependencies, tasks YAML). `baked`: roles the fake image's manifest says it baked.
    pub(crate) fn new(roles: &[(&str, &[&str], &str)], baked: &[&str]) -> Image {
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
        // the runtime where the payload install puts it: the callback imports the package
        parbake::contract::install_runtime(&home).unwrap();
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

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub(crate) fn spec(
        &self,
        launch: &[&str],
        baked: &[&str],
        vars: Value,
        secrets: Value,
    ) -> PathBuf {
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

    /// A launch spec from `spec`'s defaults with `fields` set over them (`format`, `literal`...).
    pub(crate) fn spec_with(
        &self,
        launch: &[&str],
        vars: Value,
        secrets: Value,
        fields: Value,
    ) -> PathBuf {
        let p = self.spec(launch, &[], vars, secrets);
        let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for (k, v) in fields.as_object().unwrap() {
            spec[k] = v.clone();
        }
        std::fs::write(&p, spec.to_string()).unwrap();
        p
    }

    /// Every file a launch shows or leaves behind that parbake prints or reports from.
    fn reported(&self, stdout: &str) -> Vec<(String, String)> {
        let mut out = vec![("stdout".to_string(), stdout.to_string())];
        for rel in [
            "console.log",
            "var/lib/parbake/status.json",
            "var/lib/parbake/launch-events.jsonl",
        ] {
            out.push((
                rel.to_string(),
                std::fs::read_to_string(self.path(rel)).unwrap_or_default(),
            ));
        }
        out
    }

    pub(crate) fn run(&self, spec: &Path, extra: &[&str]) -> (i32, String) {
        self.run_env(spec, extra, &[])
    }

    pub(crate) fn run_env(
        &self,
        spec: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (i32, String) {
        run_runner(self.root.path(), spec, extra, env)
    }

    pub(crate) fn status(&self) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.path("var/lib/parbake/status.json")).unwrap(),
        )
        .unwrap()
    }

    pub(crate) fn role_status(&self, role: &str) -> String {
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
    pub(crate) fn roles_with_events(&self) -> Vec<String> {
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

/// The runner, run for real (the pinned ansible-core) against the fake image root `root`; its
/// exit code and stdout.
pub fn run_runner(root: &Path, spec: &Path, extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    run_runner_within(root, spec, extra, env, None)
}

/// The runner, killed after `limit` seconds when one is given (exit 124, coreutils' timeout):
/// a test of something that once hung fails instead of hanging.
pub fn run_runner_within(
    root: &Path,
    spec: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
    limit: Option<u64>,
) -> (i32, String) {
    let path = format!(
        "{}:{}",
        crate::util::ansible_bin().display(),
        std::env::var("PATH").unwrap()
    );
    let mut cmd = match limit {
        Some(secs) => {
            let mut c = Command::new("timeout");
            c.args(["-k", "5", &secs.to_string(), "python3"]);
            c
        }
        None => Command::new("python3"),
    };
    let out = cmd
        .arg(repo().join("src/contract/assets/parbake-roles.py"))
        .arg("launch")
        .arg(spec)
        .args(extra)
        .env("PARBAKE_ROOT", root)
        .env("PARBAKE_CONSOLE", root.join("console.log"))
        .env("PATH", path)
        .env("ANSIBLE_HOME", root.join("ansible-home"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
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
    // where the time went: ansible's start, the facts, the roles; the parts add up
    let t = &st["timing"];
    let part = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("{k} in {t}"));
    assert!(part("playbook_start_s") > 0.0, "{t}");
    assert!(part("facts_s") > 0.0, "{t}");
    assert!(part("roles_s") > 0.0, "{t}");
    assert_eq!(part("handlers_s"), 0.0, "{t}");
    assert!(
        t["boot_to_runner_s"].is_null(),
        "a fake root has no uptime: {t}"
    );
    let line = console
        .lines()
        .find_map(|l| l.split_once("parbake-status ").map(|(_, j)| j))
        .unwrap();
    let status: parbake::contract::status::BootStatus = serde_json::from_str(line).unwrap();
    let text = status
        .timing
        .expect("the console carries the timing")
        .text();
    assert!(text.contains("facts ") && text.contains("roles "), "{text}");
}

/// In a container (systemd-nspawn) /proc/uptime is the host's: the boot up to the runner is
/// counted from the container's PID 1 start (issue 22: it read 1,791 s natively).
#[test]
fn boot_to_runner_in_a_container_counts_from_its_pid_1_not_the_hosts_boot() {
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(img.path("proc/1")).unwrap();
    std::fs::create_dir_all(img.path("run/systemd")).unwrap();
    std::fs::write(img.path("proc/uptime"), "1800.50 3000.00\n").unwrap();
    // PID 1 started 1,780 s after the host booted (field 22, in clock ticks)
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let mut stat = vec!["1".to_string(), "(sys temd)".into(), "S".into()];
    stat.extend((4..22).map(|i| i.to_string()));
    stat.push((1780 * hz).to_string());
    stat.extend((23..=52).map(|i| i.to_string()));
    std::fs::write(img.path("proc/1/stat"), stat.join(" ") + "\n").unwrap();
    let spec = img.spec(&["nginx"], &["base"], json!({"out_dir": out}), json!({}));
    let run = |img: &Image| {
        let (code, stdout) = img.run(&spec, &["--force"]);
        assert_eq!(code, 0, "{stdout}");
        img.status()["timing"]["boot_to_runner_s"].as_f64()
    };
    assert_eq!(run(&img), Some(1800.5), "a VM: the kernel's uptime");
    std::fs::write(img.path("run/systemd/container"), "systemd-nspawn\n").unwrap();
    assert_eq!(
        run(&img),
        Some(20.5),
        "a container: since its PID 1 started"
    );
}

#[test]
fn a_run_after_success_does_nothing_fast_and_force_runs_the_roles_again() {
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec(&["nginx"], &["base"], json!({"out_dir": out}), json!({}));
    assert_eq!(img.run(&spec, &[]).0, 0);
    let done = img.status();
    std::fs::remove_file(out.join("nginx")).unwrap();
    // every later boot: parbake-launch.service starts the runner again
    let started = std::time::Instant::now();
    let (code, stdout) = img.run(&spec, &[]);
    let took = started.elapsed();
    println!(
        "a run after success took {:.3}s (python start included)",
        took.as_secs_f64()
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        took.as_secs_f64() < 1.0,
        "a run after success took {took:?}"
    );
    assert!(stdout.contains("already done for this spec"), "{stdout}");
    assert!(
        !stdout.contains("parbake-status"),
        "nothing is announced again: {stdout}"
    );
    assert_eq!(
        img.status(),
        done,
        "status.json is left as the launch wrote it"
    );
    assert!(!out.join("nginx").exists(), "a succeeded role ran again");
    assert_eq!(img.run(&spec, &["--force"]).0, 0);
    assert_eq!(img.role_status("nginx"), "ok");
    assert!(out.join("nginx").exists());
}

/// A role that writes its marker, then sleeps `secs` (long enough to be killed in).
fn slow(marker: &str, secs: u32) -> String {
    format!(
        "{}- name: sleep in {marker}\n  ansible.builtin.command: sleep {secs}\n",
        touch(marker)
    )
}

/// The runner started in the background, as parbake-launch.service starts it.
fn spawn_runner(img: &Image, spec: &Path) -> std::process::Child {
    let path = format!(
        "{}:{}",
        crate::util::ansible_bin().display(),
        std::env::var("PATH").unwrap()
    );
    Command::new("python3")
        .arg(repo().join("src/contract/assets/parbake-roles.py"))
        .arg("launch")
        .arg(spec)
        .env("PARBAKE_ROOT", img.path(""))
        .env("PARBAKE_CONSOLE", img.path("console.log"))
        .env("PATH", path)
        .env("ANSIBLE_HOME", img.path("ansible-home"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (at most 120 s) until `role` is `running` in status.json and `marker` exists.
fn wait_running(img: &Image, role: &str, marker: &Path) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < until {
        let running = std::fs::read_to_string(img.path("var/lib/parbake/status.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|st| {
                st["roles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["name"] == role && r["status"] == "running")
            });
        if running && marker.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "role {role} never ran: {}",
        std::fs::read_to_string(img.path("var/lib/parbake/status.json")).unwrap_or_default()
    );
}

/// The processes of group `pgid` that are not zombies (an exited process whose parent,
/// here possibly a container's init, has not reaped it), as (pid, state).
fn live_members(pgid: i32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            out.push((
                entry.file_name().to_string_lossy().into_owned(),
                stat.clone(),
            ));
        }
    }
    out
}

/// The pids of `pid`'s children (Linux: /proc/PID/task/PID/children).
fn children(pid: u32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[test]
fn a_launch_killed_mid_role_resumes_skipping_done_roles_and_rerunning_the_interrupted_one() {
    let img = Image::new(
        &[
            ("base", &[], &touch("base")),
            ("nginx", &[], &touch("nginx")),
            ("webapp", &[], &slow("webapp", 300)),
            ("identity", &[], &touch("identity")),
        ],
        &["base"],
    );
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec(
        &["nginx", "webapp", "identity"],
        &["base"],
        json!({"out_dir": out}),
        json!({}),
    );
    let mut runner = spawn_runner(&img, &spec);
    wait_running(&img, "webapp", &out.join("webapp"));
    assert_eq!(
        img.role_status("nginx"),
        "ok",
        "a finished role is recorded as it finishes"
    );
    assert_eq!(img.role_status("identity"), "pending");
    // what a power cut does: SIGKILL the runner and ansible-playbook's whole process group
    // (its own session), so nothing gets to clean up
    for child in children(runner.id()) {
        unsafe { libc::kill(-child, libc::SIGKILL) };
    }
    runner.kill().unwrap();
    runner.wait().unwrap();
    let first = img.status();
    assert_eq!(first["state"], "running", "{first}");
    assert_eq!(img.role_status("webapp"), "running");

    // the next start: webapp is made quick (the marker says it ran again), nginx must not run
    std::fs::write(
        img.path("opt/parbake/roles/webapp/tasks/main.yml"),
        touch("webapp-again"),
    )
    .unwrap();
    std::fs::remove_file(out.join("nginx")).unwrap();
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 0, "{stdout}");
    let st = img.status();
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(st["resumed"], 1, "{st}");
    assert_eq!(
        st["started_at"], first["started_at"],
        "the launch keeps its first start"
    );
    assert!(
        !out.join("nginx").exists(),
        "a role done before the kill ran again"
    );
    assert!(
        out.join("webapp-again").exists(),
        "the interrupted role did not run again"
    );
    assert!(out.join("identity").exists());
    assert_eq!(img.role_status("nginx"), "ok");
    let webapp = &st["roles"][1];
    assert_eq!(webapp["status"], "ok");
    assert!(
        webapp["note"]
            .as_str()
            .unwrap()
            .starts_with("interrupted ("),
        "{webapp}"
    );
    assert_eq!(img.roles_with_events(), ["webapp", "identity"]);
    assert!(
        stdout.contains("parbake: resuming the launch of stack web (resume 1"),
        "{stdout}"
    );
    assert!(stdout.contains("run again: webapp"), "{stdout}");
    assert!(
        stdout.contains("parbake: launch done stack=web roles=3 ok=3"),
        "{stdout}"
    );
    assert!(!img.path("run/parbake/vars.json").exists());
}

#[test]
fn a_launch_stopped_by_sigterm_stops_ansible_and_resumes_at_the_next_start() {
    let img = Image::new(&[("webapp", &[], &slow("webapp", 300))], &[]);
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec(&["webapp"], &[], json!({"out_dir": out}), json!({}));
    let mut runner = spawn_runner(&img, &spec);
    wait_running(&img, "webapp", &out.join("webapp"));
    let group = children(runner.id());
    unsafe { libc::kill(runner.id() as i32, libc::SIGTERM) };
    let code = runner.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        code.signal(),
        Some(libc::SIGTERM),
        "the runner ends as killed by SIGTERM"
    );
    for pgid in group {
        // the runner SIGKILLs stragglers as it leaves; the kernel takes a moment to reap them
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut alive = live_members(pgid);
        while !alive.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
            alive = live_members(pgid);
        }
        assert!(
            alive.is_empty(),
            "ansible-playbook's group {pgid} still runs {alive:?}"
        );
    }
    assert_eq!(img.status()["state"], "running");
    assert!(
        !img.path("run/parbake/vars.json").exists(),
        "resolved vars are removed"
    );
    std::fs::write(
        img.path("opt/parbake/roles/webapp/tasks/main.yml"),
        touch("webapp-again"),
    )
    .unwrap();
    assert_eq!(img.run(&spec, &[]).0, 0);
    assert_eq!(img.status()["resumed"], 1);
    assert!(out.join("webapp-again").exists());
}

#[test]
fn the_launch_timeout_fails_the_launch_naming_the_running_role_and_stops_ansible() {
    let img = Image::new(
        &[
            ("nginx", &[], &touch("nginx")),
            ("webapp", &[], &slow("webapp", 300)),
            ("identity", &[], &touch("identity")),
        ],
        &[],
    );
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec_with(
        &["nginx", "webapp", "identity"],
        json!({"out_dir": out}),
        json!({}),
        json!({"format": 2, "launch_timeout_s": 12}),
    );
    let started = std::time::Instant::now();
    let (code, stdout) = img.run(&spec, &[]);
    let took = started.elapsed().as_secs_f64();
    println!("a launch with a 12 s timeout ended after {took:.1}s");
    assert_eq!(code, 1, "{stdout}");
    assert!(
        took < 40.0,
        "the timeout did not stop the launch: {took:.1}s"
    );
    let st = img.status();
    assert_eq!(st["state"], "failed");
    assert_eq!(st["launch_timeout_s"], 12);
    let error = st["error"].as_str().unwrap();
    assert!(
        error.starts_with("launch timeout: 12s (launch_timeout) passed"),
        "{error}"
    );
    assert!(
        error.contains("while role webapp was running at task \"webapp : sleep in webapp\""),
        "{error}"
    );
    assert_eq!(img.role_status("nginx"), "ok");
    assert_eq!(img.role_status("webapp"), "failed");
    assert_eq!(img.role_status("identity"), "not-run");
    assert!(
        stdout.contains(
            "parbake: launch failed stack=web roles=3 ok=1 skipped=0 failed=1 failed_role=webapp"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("parbake-status {"), "{stdout}");
    assert!(!out.join("identity").exists());
}

/// An image whose launch was interrupted in webapp two minutes ago, with a one-minute
/// launch timeout (the machine was down since): its spec, and the roles' output directory.
fn resumed_after_the_deadline() -> (Image, PathBuf, PathBuf) {
    let img = Image::new(
        &[
            ("nginx", &[], &touch("nginx")),
            ("webapp", &[], &touch("webapp")),
        ],
        &[],
    );
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec_with(
        &["nginx", "webapp"],
        json!({"out_dir": out}),
        json!({}),
        json!({"launch_timeout_s": 60}),
    );
    let digest = sha256_hex(&std::fs::read(&spec).unwrap());
    let then = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 120.0;
    std::fs::create_dir_all(img.path("var/lib/parbake")).unwrap();
    std::fs::write(
        img.path("var/lib/parbake/status.json"),
        json!({"format": 1, "phase": "launch", "state": "running", "stack": "web", "image": "img",
               "spec_digest": digest, "started_at": then, "boot_id": "an-earlier-boot",
               "roles": [{"name": "nginx", "status": "ok", "duration_s": 1.0, "tasks": 1},
                         {"name": "webapp", "status": "running", "duration_s": null}]})
        .to_string(),
    )
    .unwrap();
    (img, spec, out)
}

/// The resumed launch failed at once, naming the role it was interrupted in; nothing ran.
fn failed_naming_the_interrupted_role(img: &Image, out: &Path, code: i32, stdout: &str) {
    assert_eq!(code, 1, "{stdout}");
    let st = img.status();
    assert!(
        st["error"]
            .as_str()
            .unwrap()
            .contains("1m (launch_timeout) passed since the launch started, while role webapp"),
        "{st}"
    );
    assert_eq!(img.role_status("webapp"), "failed");
    assert!(
        st["roles"][1]["note"]
            .as_str()
            .unwrap()
            .contains("the machine rebooted"),
        "{st}"
    );
    assert!(
        !out.join("webapp").exists(),
        "a role ran after the deadline"
    );
    assert!(stdout.contains("failed_role=webapp"), "{stdout}");
}

#[test]
fn a_resume_after_the_deadline_fails_at_once_naming_the_interrupted_role() {
    let (img, spec, out) = resumed_after_the_deadline();
    let (code, stdout) = img.run(&spec, &[]);
    failed_naming_the_interrupted_role(&img, &out, code, &stdout);
}

/// The race that made the test above flaky, made certain: the deadline's backstop was armed
/// for 10 ms when the deadline had passed already, so a start slower than that (here reading
/// the manifest takes 0.3 s) was cut short as "while starting". A resume past its deadline
/// arms no alarm: it only plans its roles from local files and fails naming the role.
#[test]
fn a_resume_after_the_deadline_names_the_role_however_slow_its_start() {
    let (img, spec, out) = resumed_after_the_deadline();
    let script = r#"
import sys, time
sys.path.insert(0, sys.argv[1])
from parbake_runner import cli, launch
slow = launch.read_manifest
def read_manifest(*args):
    time.sleep(0.3)
    return slow(*args)
launch.read_manifest = read_manifest
sys.exit(cli.main(["launch", sys.argv[2]]))
"#;
    let out_ = Command::new("timeout")
        .args(["-k", "5", "60", "python3", "-B", "-c", script])
        .arg(repo().join("src/contract/assets"))
        .arg(&spec)
        .env("PARBAKE_ROOT", img.root.path())
        .env("PARBAKE_CONSOLE", img.path("console.log"))
        .env("ANSIBLE_HOME", img.path("ansible-home"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out_.stdout).into_owned();
    let code = out_.status.code().unwrap_or(-1);
    failed_naming_the_interrupted_role(&img, &out, code, &stdout);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
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
        stdout.contains("/var/log/parbake/launch.log (root only)")
            && !stdout.contains("parbake-log | "),
        "the console says where the log is, and shows none of it: {stdout}"
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
fn a_file_secret_is_a_bounded_regular_file_named_without_symlinks() {
    // issue 21: a FIFO hung the launch, /dev/zero read until memory ran out, symlinks were
    // followed. Each is refused at once, naming why and showing none of the file.
    let img = Image::new(&[("keep", &[], &writes(&["token"]))], &[]);
    let dir = img.path("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(Command::new("mkfifo")
        .arg(dir.join("fifo"))
        .status()
        .unwrap()
        .success());
    std::fs::write(dir.join("real"), "hunter2-real\n").unwrap();
    std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
    std::os::unix::fs::symlink(&dir, img.path("linked-dir")).unwrap();
    std::fs::write(dir.join("big"), "hunter2-big".repeat(7000)).unwrap();
    let cases = [
        (dir.join("fifo"), "not a regular file (a FIFO)"),
        ("/dev/zero".into(), "/dev is a pseudo-filesystem"),
        (dir.join("link"), "it is a symbolic link"),
        (img.path("linked-dir/real"), "linked-dir is a symbolic link"),
        (dir.join("big"), "larger than 65536 bytes"),
        (dir.join("../secrets/real"), "absolute and normal"),
    ];
    for (file, says) in cases {
        let spec = img.spec_with(
            &["keep"],
            json!({"out_dir": img.path("out")}),
            json!({"token": format!("file:{}", file.display())}),
            json!({"format": 2}),
        );
        let started = std::time::Instant::now();
        let (code, stdout) = run_runner_within(img.root.path(), &spec, &["--force"], &[], Some(30));
        assert_eq!(code, 1, "{}: {stdout}", file.display());
        assert!(started.elapsed().as_secs() < 15, "{}", file.display());
        let err = img.status()["error"].as_str().unwrap().to_string();
        assert!(
            err.contains("secret token") && err.contains(says),
            "{says}: {err}"
        );
        for (what, text) in img.reported(&stdout) {
            assert!(!text.contains("hunter2"), "{what} shows the secret: {text}");
        }
    }
}

#[test]
fn the_launch_timeout_bounds_secret_resolution() {
    // issue 21: an `ssm:` secret whose aws CLI never answers held the launch forever, outside
    // the launch timeout
    let img = Image::new(&[("keep", &[], &writes(&["token"]))], &[]);
    let bin = img.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("aws"), "#!/bin/sh\nexec sleep 600\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("aws"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        crate::util::ansible_bin().display(),
        std::env::var("PATH").unwrap()
    );
    let spec = img.spec_with(
        &["keep"],
        json!({"out_dir": img.path("out")}),
        json!({"token": "ssm:/app/token"}),
        json!({"format": 2, "launch_timeout_s": 3}),
    );
    let started = std::time::Instant::now();
    let (code, stdout) = run_runner_within(
        img.root.path(),
        &spec,
        &[],
        &[("PATH", path.as_str())],
        Some(60),
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(started.elapsed().as_secs() < 20, "{stdout}");
    let err = img.status()["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("secret token") && err.contains("launch timeout"),
        "{err}"
    );
}

#[test]
fn the_launch_deadline_interrupts_a_step_that_blocks_past_it() {
    // the backstop: a step that blocks anyway (here a check's probe stuck in a read) is
    // interrupted by SIGALRM after the deadline, and the launch fails naming it
    let img = Image::new(&[("base", &[], "[]\n")], &["base"]);
    let spec = img.spec_with(
        &[],
        json!({}),
        json!({}),
        json!({"format": 2, "launch_timeout_s": 2,
               "checks": [{"name": "stuck", "kind": "port", "port": 1, "timeout_s": 1},
                          {"name": "later", "kind": "port", "port": 1, "timeout_s": 1}]}),
    );
    let script = r#"
import os, sys
sys.path.insert(0, sys.argv[1])
from parbake_runner import base, checks, deadline, launch, spec
deadline.Deadline.BACKSTOP_S = 1
def stuck(c, wait, log):
    rfd, wfd = os.pipe()
    os.read(rfd, 1)  # never answers
checks.PROBES["port"] = stuck
launch_spec, digest = spec.read_spec(sys.argv[2])
for d in (base.STATE, base.LOGS, base.RUN):
    os.makedirs(d, exist_ok=True)
sys.exit(launch.Launch(launch_spec, digest, None).run())
"#;
    let started = std::time::Instant::now();
    let out = Command::new("timeout")
        .args(["-k", "5", "60", "python3", "-B", "-c", script])
        .arg(repo().join("src/contract/assets"))
        .arg(&spec)
        .env("PARBAKE_ROOT", img.root.path())
        .env("PARBAKE_CONSOLE", img.path("console.log"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed().as_secs() < 15);
    let st = img.status();
    let err = st["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{st}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        err.contains("launch timeout: 2s") && err.contains("check stuck was being probed"),
        "{err}"
    );
    let checks = st["checks"].as_array().unwrap();
    assert_eq!(checks[0]["status"], "failed", "{st}");
    assert_eq!(checks[1]["status"], "not-run", "{st}");
}

#[test]
fn the_launch_unit_has_a_finite_start_timeout_above_any_launch_timeout() {
    // the unit is the same on every image, launch_timeout is per stack (1m to 24h): the unit
    // allows the longest and a margin; the runner enforces the stack's own deadline
    let unit = parbake::contract::LAUNCH_UNIT;
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStartSec="))
        .expect("a TimeoutStartSec");
    assert_ne!(line, "infinity");
    let secs: u64 = line
        .split_whitespace()
        .map(|p| {
            let (n, unit) = p.split_at(p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len()));
            let n: u64 = n.parse().unwrap();
            n * match unit {
                "h" => 3600,
                "min" => 60,
                "s" | "" => 1,
                u => panic!("unit {u}"),
            }
        })
        .sum();
    let max = parbake::config::LAUNCH_TIMEOUT_MAX_S;
    // after the deadline: the backstop (30 s), stopping ansible-playbook (10 s + 5 s), the
    // status tag (up to 16 s of IMDS and EC2 calls)
    assert!(
        secs >= max + 120 && secs <= max + 3600,
        "TimeoutStartSec={line}"
    );
    assert!(
        runner_module("base.py").contains(&format!("MAX_LAUNCH_TIMEOUT_S = {max}\n")),
        "the runner refuses a spec above parbake's maximum"
    );
}

#[test]
fn the_runner_signs_like_botocore() {
    // the SigV4 signer against botocore's (in .venv with moto), an independent implementation
    let out = Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tests/fixtures/check_sigv4.py"))
        .arg(repo().join("src/contract/assets"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
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
            .sdk()
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
            .sdk()
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

/// A role that writes each named var to `{{ out_dir }}/NAME` with `copy: content`.
fn writes(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            format!("- name: write {n}\n  ansible.builtin.copy:\n    content: \"{{{{ {n} }}}}\"\n    dest: \"{{{{ out_dir }}}}/{n}\"\n    mode: \"0600\"\n")
        })
        .collect()
}

#[test]
fn secret_is_never_templated() {
    let img = Image::new(&[("keep", &[], &writes(&["token"]))], &[]);
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let marker = img.path("MARKER");
    let value = format!(
        "{{{{ lookup('pipe','touch {}') }}}}\n{{% raw %}}{{{{ not jinja {{% endraw %}} {{{{ 'unclosed \u{e9}\u{2028}\"q\" \\ end",
        marker.display()
    );
    let secret = img.path("secret.txt");
    // a file: secret loses its trailing newlines, nothing else
    std::fs::write(&secret, format!("{value}\n\n")).unwrap();
    let spec = img.spec_with(
        &["keep"],
        json!({"out_dir": out}),
        json!({"token": format!("file:{}", secret.display())}),
        json!({"format": 2}),
    );
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(
        std::fs::read(out.join("token")).unwrap(),
        value.as_bytes(),
        "the secret reached the role changed"
    );
    assert!(!marker.exists(), "the secret was evaluated as Jinja");
}

#[test]
fn literal_var_is_never_templated() {
    let img = Image::new(
        &[(
            "keep",
            &[],
            &(writes(&["lit", "plain"])
                + &writes(&["lit_key"]).replace("{{ lit_key }}", "{{ litmap.k }}")),
        )],
        &[],
    );
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let marker = img.path("MARKER");
    let lit = format!(
        "{{{{ lookup('pipe','touch {}') }}}} {{{{ 1 + 1 }}}} {{% raw %}}",
        marker.display()
    );
    let spec = img.spec_with(
        &["keep"],
        json!({"out_dir": out, "lit": lit, "litmap": {"k": "{{ 1 + 1 }}"}, "plain": "{{ 1 + 1 }}"}),
        json!({}),
        json!({"format": 2, "literal": ["lit", "litmap"]}),
    );
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(std::fs::read_to_string(out.join("lit")).unwrap(), lit);
    assert_eq!(
        std::fs::read_to_string(out.join("lit_key")).unwrap(),
        "{{ 1 + 1 }}"
    );
    assert!(!marker.exists(), "a literal var was evaluated as Jinja");
    // the documented decision: plain vars are templated as Ansible always does
    assert_eq!(std::fs::read_to_string(out.join("plain")).unwrap(), "2");
}

#[test]
fn failing_role_does_not_leak_secret() {
    // every shown form of this secret (quoted, escaped, repr, per line) keeps its words
    let words = ["hunter2", "XYZZY-second-line"];
    let value = format!("{} it's \"quoted\" \\ w\u{f6}rd\n{}", words[0], words[1]);
    let tasks = "- name: connect with {{ db_password }}\n  ansible.builtin.shell: \"echo {{ db_password | quote }} >&2; echo {{ db_password | quote }}; exit 3\"\n";
    let img = Image::new(&[("leak", &[], tasks)], &[]);
    let secret = img.path("secret.txt");
    std::fs::write(&secret, &value).unwrap();
    let spec = img.spec_with(
        &["leak"],
        json!({}),
        json!({"db_password": format!("file:{}", secret.display())}),
        json!({"format": 2}),
    );
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(img.role_status("leak"), "failed");
    let st = img.status();
    // Ansible's own words differ by version: "non-zero return code" to 2.20, "The command
    // exited with a non-zero return code." from 2.21
    let error = st["error"].as_str().unwrap();
    assert!(
        error.contains("role leak failed at leak : connect with <secret db_password> (leak/tasks/main.yml:1): ")
            && error.contains("non-zero return code"),
        "{st}"
    );
    let console = std::fs::read_to_string(img.path("console.log")).unwrap();
    assert!(
        !console.contains("parbake-log | ") && !console.contains("non-zero return code"),
        "no role output reaches the console: {console}"
    );
    assert!(stdout.contains("failed_role=leak"), "{stdout}");
    let log = std::fs::read_to_string(img.path("var/log/parbake/launch.log")).unwrap();
    assert!(
        log.contains(words[0]),
        "the role did not run with the secret: {log}"
    );
    for (file, text) in img.reported(&stdout) {
        for word in words {
            assert!(!text.contains(word), "{file} shows the secret:\n{text}");
        }
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(img.path("var/log/parbake/launch.log"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o600,
        "launch.log holds Ansible's unredacted output"
    );
    for left in ["vars.json", "secrets.json"] {
        assert!(
            !img.path("run/parbake").join(left).exists(),
            "{left} left behind"
        );
    }
}

#[test]
fn a_failing_roles_output_never_reaches_the_console_and_nested_json_hides_no_secret() {
    // issue 21: a secret with `"`, `\` and non-ASCII in JSON that is itself put in JSON is
    // escaped two and three times in Ansible's failure line; the console showed it. Now the
    // console carries parbake's sentence only, and status.json and the events hide it at
    // any depth.
    let value = "s3cr3t \"Zebra\" \\ w\u{f6}rd";
    let tasks = "- name: post the config\n  ansible.builtin.fail:\n    msg: \"ROLE-SAYS {{ {'request': ({'password': db_password} | to_json)} | to_json }}\"\n";
    let img = Image::new(&[("leak", &[], tasks)], &[]);
    let secret = img.path("secret.txt");
    std::fs::write(&secret, value).unwrap();
    let spec = img.spec_with(
        &["leak"],
        json!({}),
        json!({"db_password": format!("file:{}", secret.display())}),
        json!({"format": 2}),
    );
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 1, "{stdout}");
    let log = std::fs::read_to_string(img.path("var/log/parbake/launch.log")).unwrap();
    assert!(
        log.contains("s3cr3t"),
        "the role did not fail with the secret: {log}"
    );
    for (file, text) in img.reported(&stdout) {
        for word in ["s3cr3t", "Zebra"] {
            assert!(!text.contains(word), "{file} shows the secret:\n{text}");
        }
    }
    let console = std::fs::read_to_string(img.path("console.log")).unwrap();
    assert!(
        !console.contains("ROLE-SAYS") && !stdout.contains("ROLE-SAYS"),
        "role output reached the console: {console}"
    );
    assert!(
        console
            .contains(r#"role leak failed at task \"leak : post the config\"; its output is in"#)
            && console.contains("/var/log/parbake/launch.log (root only)"),
        "{console}"
    );
    // status.json (on the instance) keeps the role's message, redacted
    let st = img.status();
    let err = st["error"].as_str().unwrap();
    assert!(
        err.contains("ROLE-SAYS") && err.contains("<secret db_password>"),
        "{err}"
    );
}

#[test]
fn a_secret_that_is_not_utf8_fails_without_showing_it() {
    let img = Image::new(&[("keep", &[], &writes(&["token"]))], &[]);
    let secret = img.path("secret.bin");
    std::fs::write(&secret, b"hunter2\xff\xfe").unwrap();
    let spec = img.spec_with(
        &["keep"],
        json!({"out_dir": img.path("out")}),
        json!({"token": format!("file:{}", secret.display())}),
        json!({"format": 2}),
    );
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 1, "{stdout}");
    let err = img.status()["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("secret token") && err.contains("not UTF-8"),
        "{err}"
    );
    for (file, text) in img.reported(&stdout) {
        assert!(
            !text.contains("hunter2"),
            "{file} shows the secret:\n{text}"
        );
    }
}

#[test]
fn a_format_1_spec_without_the_newer_fields_still_runs() {
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    // no vars, secrets, literal or baked at all: each is taken as empty
    let img2 = Image::new(
        &[("hello", &[], "- ansible.builtin.debug: {msg: hi}\n")],
        &[],
    );
    let spec = img2.path("launch.json");
    std::fs::write(
        &spec,
        json!({"format": 1, "stack": "web", "image": "img",
               "roles": [{"name": "hello", "hash": hash("hello")}]})
        .to_string(),
    )
    .unwrap();
    let (code, stdout) = img2.run(&spec, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(img2.role_status("hello"), "ok");
    // vars and secrets but no `literal`: plain vars are templated as before
    let spec = img.spec(
        &["nginx"],
        &["base"],
        json!({"out_dir": out, "greeting": "{{ 'hi' }}"}),
        json!({}),
    );
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(std::fs::read_to_string(out.join("nginx")).unwrap(), "hi");
}

#[test]
fn an_unknown_spec_format_is_refused() {
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    for format in [json!(3), json!("2"), json!(true), json!(null)] {
        let spec = img.spec_with(
            &["nginx"],
            json!({"out_dir": out}),
            json!({}),
            json!({"format": format}),
        );
        let (code, stdout) = img.run(&spec, &[]);
        assert_eq!(code, 1, "{stdout}");
        let st = img.status();
        assert_eq!(st["state"], "failed");
        let err = st["error"].as_str().unwrap();
        assert!(
            err.contains(&format!("has format {format}")) && err.contains("reads formats 1 and 2"),
            "{err}"
        );
        assert!(stdout.contains("parbake-status {"), "{stdout}");
        assert!(
            !out.join("nginx").exists(),
            "a role ran from a spec of format {format}"
        );
    }
}

#[test]
fn a_malformed_spec_is_refused_with_the_field() {
    let img = standard();
    let cases = [
        (
            json!({"format": 2, "literal": ["nope"]}),
            "literal \"nope\" names no entry of vars",
        ),
        (
            json!({"format": 2, "vars": {"v": {"__ansible_vault": "x"}}, "literal": ["v"]}),
            "literal var v holds a map key __ansible_vault",
        ),
        (
            json!({"format": 2, "secrets": {"s": 1}}),
            "secret s must be a reference string",
        ),
        (
            json!({"format": 2, "vars": []}),
            "field vars must be a JSON object",
        ),
        (
            json!({"format": 2, "roles": [{"name": "nginx"}]}),
            "each of roles must be",
        ),
        (
            json!({"format": 2, "facts": "min"}),
            "field facts must be a list of Ansible gather_subset names",
        ),
        (
            json!({"format": 2, "facts": ["min", "network; touch /x"]}),
            "field facts must be a list of Ansible gather_subset names",
        ),
    ];
    for (fields, needle) in cases {
        let spec = img.spec_with(&["nginx"], json!({}), json!({}), fields);
        let (code, stdout) = img.run(&spec, &[]);
        assert_eq!(code, 1, "{stdout}");
        let err = img.status()["error"].as_str().unwrap().to_string();
        assert!(err.contains(needle), "{needle} missing in {err}");
    }
    std::fs::write(img.path("launch.json"), "{not json").unwrap();
    let (code, _) = img.run(&img.path("launch.json"), &[]);
    assert_eq!(code, 1);
    assert!(img.status()["error"]
        .as_str()
        .unwrap()
        .contains("is not JSON"));
}

#[test]
fn redaction_hides_every_shown_form_of_a_secret() {
    // the one redact() (the runner's, which the callback uses), on fixed cases and random ones
    let cases = std::env::var("PARBAKE_REDACT_CASES").unwrap_or_else(|_| "300".into());
    let out = Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tests/fixtures/check_redact.py"))
        .arg(repo().join("src/contract/assets"))
        .arg(repo().join("src/contract/assets/parbake_events.py"))
        .arg(cases)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A module of the runner's package, by file name.
fn runner_module(name: &str) -> &'static str {
    parbake::contract::RUNNER_PACKAGE
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no {name} in the runner's package"))
        .1
}

#[test]
fn the_runner_defaults_the_launch_timeout_as_parbake_does() {
    let line = format!(
        "DEFAULT_LAUNCH_TIMEOUT_S = {}\n",
        parbake::config::DEFAULT_LAUNCH_TIMEOUT_S
    );
    assert!(
        runner_module("base.py").contains(&line),
        "the runner's default is not {line}"
    );
}

/// The launch units, checked by the host's own systemd (`systemd-analyze verify`) in a fake
/// root where the runner exists; skipped, saying so, where there is no usable systemd-analyze.
#[test]
fn the_launch_units_verify_with_systemd_analyze() {
    use parbake::contract::{
        LAUNCH_UNIT, LAUNCH_UNIT_NAME, READY_TARGET, READY_TARGET_NAME, UNIT_DIR,
    };
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join(UNIT_DIR.trim_start_matches('/'));
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(units.join(LAUNCH_UNIT_NAME), LAUNCH_UNIT).unwrap();
    std::fs::write(units.join(READY_TARGET_NAME), READY_TARGET).unwrap();
    let bin = root.path().join("opt/parbake/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("parbake-roles"), parbake::contract::RUNNER).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        bin.join("parbake-roles"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let verify = |root: &Path| {
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.display()))
            .args([LAUNCH_UNIT_NAME, READY_TARGET_NAME])
            .output()
    };
    let out = match verify(root.path()) {
        Ok(out) => out,
        Err(e) => {
            println!("SKIPPED: no systemd-analyze here ({e}); the launch units are not verified");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
    // and it does catch a broken unit here: a target requiring a unit that does not exist
    std::fs::write(
        units.join(READY_TARGET_NAME),
        READY_TARGET.replace("Requires=parbake-launch", "Requires=parbake-lunch"),
    )
    .unwrap();
    assert!(
        !verify(root.path()).unwrap().status.success(),
        "systemd-analyze verify checks nothing here"
    );
    // neither unit holds anything Ansible would template when the bake copies it
    for text in [LAUNCH_UNIT, READY_TARGET] {
        assert!(!["{{", "{%", "{#"].iter().any(|t| text.contains(t)));
    }
}

#[test]
fn an_image_with_a_pinned_ansible_core_launches_with_its_venv() {
    // the venv the bake makes for `ansible: {core: ...}`: here a wrapper that notes it ran
    // and hands over to the tier's ansible-core (util::ansible_bin)
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let venv_bin = img.path("opt/parbake/ansible/bin");
    std::fs::create_dir_all(&venv_bin).unwrap();
    let marker = img.path("pinned-ran");
    let wrapper = venv_bin.join("ansible-playbook");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho pinned >> {}\nexec {} \"$@\"\n",
            marker.display(),
            crate::util::ansible_bin()
                .join("ansible-playbook")
                .display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = img.spec(&["nginx"], &["base"], json!({"out_dir": out}), json!({}));
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "pinned\n");
    let log = std::fs::read_to_string(img.path("var/log/parbake/launch.log")).unwrap();
    assert!(
        log.contains(&format!("with {}:", wrapper.display())),
        "the launch log names the ansible-playbook it ran: {log}"
    );
}

#[test]
fn the_spec_facts_choose_what_the_launch_gathers() {
    // a role that records one fact of the `min` subset and one of `hardware`
    let facts = "- name: record facts\n  ansible.builtin.copy:\n    content: \"{{ ansible_hostname | default('absent') }} {{ ansible_memtotal_mb | default('absent') }} {{ ansible_is_chroot | default('absent') }}\"\n    dest: \"{{ out_dir }}/facts\"\n    mode: \"0644\"\n";
    let img = Image::new(&[("probe", &[], facts)], &[]);
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let gathered = |fields: Value| {
        let spec = img.spec_with(&["probe"], json!({"out_dir": out}), json!({}), fields);
        let (code, stdout) = img.run(&spec, &["--force"]);
        assert_eq!(code, 0, "{stdout}");
        let events =
            std::fs::read_to_string(img.path("var/lib/parbake/launch-events.jsonl")).unwrap();
        let words: Vec<String> = std::fs::read_to_string(out.join("facts"))
            .unwrap()
            .split(' ')
            .map(String::from)
            .collect();
        (events.contains("Gathering Facts"), words)
    };
    // no `facts` (Ansible's default): every subset, hardware included
    let (ran, words) = gathered(json!({"format": 2}));
    assert!(ran);
    assert_ne!(words[0], "absent");
    assert!(words[1].parse::<u64>().is_ok(), "{words:?}");
    assert_ne!(words[2], "absent");
    // `min`: the hostname, not the memory, and not the chroot test (not in `min`)
    let (ran, words) = gathered(json!({"format": 2, "facts": ["min"]}));
    assert!(ran);
    assert_ne!(words[0], "absent");
    assert_eq!(words[1..], ["absent", "absent"]);
    // a collector by name: `[min, chroot]`, what the example stacks use
    let (_, words) = gathered(json!({"format": 2, "facts": ["min", "chroot"]}));
    assert_eq!(words[1], "absent");
    assert_ne!(words[2], "absent");
    // none: no fact gathering at all
    let (ran, words) = gathered(json!({"format": 2, "facts": []}));
    assert!(!ran);
    assert_eq!(words, ["absent", "absent", "absent"]);
}

#[test]
fn the_installed_runner_finds_its_package_as_on_an_image() {
    // the image's layout: /opt/parbake/bin/parbake-roles, the one entry point, imports the
    // package from /opt/parbake/lib/parbake_runner/, where the callback finds it too
    let img = standard();
    let out = img.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let spec = img.spec(&["nginx"], &["base"], json!({"out_dir": out}), json!({}));
    let path = format!(
        "{}:{}",
        crate::util::ansible_bin().display(),
        std::env::var("PATH").unwrap()
    );
    let run = Command::new("python3")
        .arg(img.path("opt/parbake/bin/parbake-roles"))
        .arg("launch")
        .arg(&spec)
        .env("PARBAKE_ROOT", img.path(""))
        .env("PARBAKE_CONSOLE", img.path("console.log"))
        .env("PATH", path)
        .env("ANSIBLE_HOME", img.path("ansible-home"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}{run:?}");
    assert_eq!(img.role_status("nginx"), "ok");
    assert_eq!(img.roles_with_events(), ["nginx"]);
    assert!(out.join("nginx").is_file());
    // nothing compiled on the image: /opt/parbake stays as the payload install left it
    assert!(!img
        .path("opt/parbake/lib/parbake_runner/__pycache__")
        .exists());
}

/// A role's entry in status.json.
fn role_entry(status: &Value, name: &str) -> Value {
    status["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()
        .clone()
}

/// The runner names what failed (third-party roles reach others through includes and
/// dependencies): a task of an included role counts toward the planned role that includes it,
/// and a playbook that stops with no failed task (a parse error in an included file) fails
/// the role it was in, with where, never `ok`.
#[test]
fn a_failure_inside_an_included_role_or_file_is_the_planned_roles_named_with_where() {
    let img = Image::new(
        &[
            ("first", &[], "- ansible.builtin.debug: {msg: first}\n"),
            (
                "wrapper",
                &[],
                "- name: Harden\n  ansible.builtin.include_role:\n    name: inner\n",
            ),
            (
                "inner",
                &[],
                "- ansible.builtin.debug: {msg: inner}\n- name: Install auditd\n  ansible.builtin.fail: {msg: no network}\n",
            ),
            (
                "parsebroken",
                &[],
                "- ansible.builtin.debug: {msg: start}\n- name: Setup\n  ansible.builtin.include_tasks: setup.yml\n",
            ),
            ("last", &[], "- ansible.builtin.debug: {msg: last}\n"),
        ],
        &[],
    );
    std::fs::write(
        img.path("opt/parbake/roles/parsebroken/tasks/setup.yml"),
        "- name: A module no one has\n  nosuch.collection.module: {x: 1}\n",
    )
    .unwrap();
    let spec = img.spec(&["first", "wrapper", "last"], &[], json!({}), json!({}));
    let (code, _) = img.run(&spec, &[]);
    assert_eq!(code, 1);
    let st = img.status();
    let entry = |name: &str| role_entry(&st, name);
    assert_eq!(entry("first")["status"], "ok", "{st}");
    assert_eq!(entry("wrapper")["status"], "failed", "{st}");
    assert_eq!(
        entry("wrapper")["tasks"],
        3,
        "the include and inner's two: {st}"
    );
    assert!(
        st["error"].as_str().unwrap().contains(
            "role wrapper failed at inner : Install auditd (inner/tasks/main.yml:2): no network"
        ),
        "{st}"
    );
    assert_eq!(entry("last")["status"], "not-run", "{st}");

    let spec = img.spec(&["first", "parsebroken", "last"], &[], json!({}), json!({}));
    let (code, _) = img.run(&spec, &["--force"]);
    assert_eq!(code, 1);
    let st = img.status();
    let entry = |name: &str| role_entry(&st, name);
    assert_eq!(entry("parsebroken")["status"], "failed", "{st}");
    let error = entry("parsebroken")["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("ansible-playbook stopped with exit ")
            && error.contains(" in parsebroken at tasks/setup.yml:1"),
        "{st}"
    );
    assert_eq!(entry("last")["status"], "not-run", "{st}");
}
