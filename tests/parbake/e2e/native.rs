//! The native tier, inside `make e2e` (it needs the base layer the VM tier bakes): each launch
//! boots a baked layer's real systemd, cloud-init and launch runner in systemd-nspawn
//! (`launch --container`), in seconds instead of TCG minutes. It proves the launch mechanics,
//! which need no kernel: a reboot mid-role then resume, every web role at boot offline with
//! HTTP from the host, check pass and fail, the launch timeout naming its role, a failed role's
//! secret redacted, verify, publish, `launch --published` and rollback, and the launch after a
//! payload refresh. What only a kernel shows stays in the VM tier (see e2e.rs).
//!
//! A container's /proc/sys is the host's (read-only): sysctl values set by a role are checked
//! live in the VM tier only; here the persisted settings are.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{launched_roles, watch_stderr, Tier};

/// How long a native launch may take to report on a loaded 2-core host (a VM bake beside it).
pub(super) const NATIVE_TIMEOUT: &str = "900";

/// A container left running by `launch --container --keep`: stopped (unmounted, its network
/// namespace deleted, its run dir removed) by its report's `kept.stop`, even when an
/// assertion fails.
pub(super) struct Container(pub(super) Value);

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(stop) = self.0["kept"]["stop"].as_str() {
            let _ = Command::new("sh").arg("-c").arg(stop).status();
        }
    }
}

impl Container {
    /// Its root, as the host sees it.
    fn root(&self) -> PathBuf {
        PathBuf::from(self.0["kept"]["dir"].as_str().unwrap()).join("root")
    }

    /// A file in its root.
    fn read(&self, rel: &str) -> String {
        let p = self.root().join(rel);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    }

    /// `command` run inside it (its PID 1's namespaces).
    fn exec(&self, command: &[&str]) -> String {
        let enter = self.0["kept"]["ssh"].as_str().unwrap();
        enter_run(enter, command)
    }
}

/// `command` run with `nsenter --target PID --all` (the report's or progress line's entry).
fn enter_run(enter: &str, command: &[&str]) -> String {
    let mut words = enter.split_whitespace();
    let out = Command::new(words.next().unwrap())
        .args(words)
        .args(command)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{enter} {command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What a launch that should fail left: its exit code, its JSON report, its stderr.
fn run_failing(tier: &Tier, args: &[&str]) -> (Option<i32>, Value, String) {
    let started = Instant::now();
    let out = tier.cmd(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "e2e native: parbake {} took {:.1}s (exit {:?})",
        args.join(" "),
        started.elapsed().as_secs_f64(),
        out.status.code()
    );
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), report, err)
}

/// Every run dir a native launch made is gone: the copy removed, the root unmounted (its loop
/// device detached with it).
pub(super) fn assert_nothing_left(tier: &Tier) {
    let runs = tier.store.path().join("runs");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(runs.to_str().unwrap()),
        "a container root is still mounted: {mounts}"
    );
    let loops = Command::new("losetup").arg("-a").output().unwrap();
    let loops = String::from_utf8_lossy(&loops.stdout);
    assert!(
        !loops.contains(runs.to_str().unwrap()),
        "a loop device is left: {loops}"
    );
}

/// The web stack with nothing promoted, booted natively on layer 1 with a link to the host
/// only: every role runs at boot from what the bake staged (packages, wheels, the vendored role
/// and collection), both checks pass, and the Django app answers the host over HTTP. Returns
/// the roles that ran at launch.
pub(super) fn launch_nothing_promoted(tier: &Tier) -> Vec<String> {
    let c = Container(tier.json(&[
        "launch",
        "web",
        "--container",
        "--host-link",
        "--keep",
        "--timeout",
        NATIVE_TIMEOUT,
        "--json",
    ]));
    assert_eq!(c.0["accelerator"], "nspawn", "{}", c.0);
    assert_eq!(c.0["status"]["state"], "done");
    let all = launched_roles(&c.0);
    assert_eq!(
        all,
        ["acme.tuning", "nginx", "python", "webapp", "identity"]
    );
    // the vendored namespaced role and its collection module ran at launch: the settings are
    // persisted and its handler ran (live values: the VM tier, /proc/sys is the host's here)
    assert!(c
        .read("etc/sysctl.d/60-acme-tuning.conf")
        .contains("vm.swappiness=13"));
    assert!(c
        .read("var/lib/acme-tuning.applied")
        .starts_with("swappiness "));
    super::assert_web_checks(&c.0);
    assert_eq!(
        c.exec(&["systemctl", "is-active", "parbake-ready.target"]),
        "active"
    );
    // from the host, over the container's private link
    let url = c.0["kept"]["http"].as_str().unwrap();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let body = super::http_get_at(host, 80);
    let instance = c.0["instance_id"].as_str().unwrap();
    assert!(
        body.contains("stack=web") && body.contains(instance),
        "{body}"
    );
    // the runner's breakdown counts from the container's start, not the host's boot
    let t = &c.0["status"]["timing"];
    let boot_to_runner = t["boot_to_runner_s"].as_f64().unwrap();
    assert!(
        boot_to_runner < c.0["boot_to_ready_s"].as_f64().unwrap(),
        "{t}"
    );
    eprintln!(
        "e2e native: nothing promoted: boot-to-ready {}s ({})",
        c.0["boot_to_ready_s"], t
    );
    all
}

/// Boots the minimal stack natively (no network), reboots the container while role `tick`
/// runs, and checks that the unit resumed the launch: `tick` ran on both boots (nspawn gives
/// each start its own boot id), the launch is done, ready is reached. The stack `reboot` makes
/// tick's first run wait 40 minutes, so the reboot always lands mid-role once tick wrote its
/// boot line.
pub(super) fn reboot_mid_role(tier: &Tier) {
    let started = Instant::now();
    let out_path = tier.store.path().join("reboot-native.json");
    let mut child = tier
        .cmd(&[
            "launch",
            "reboot",
            "--container",
            "--keep",
            "--timeout",
            NATIVE_TIMEOUT,
            "--json",
        ])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the progress line of each start: `container started: nsenter --target PID --all ; root R`
    let (rx, reader) = watch_stderr(&mut child, true, |line| {
        let rest = line.split("container started: ").nth(1)?;
        let (enter, root) = rest.split_once(" ; root ").unwrap();
        Some((enter.to_string(), root.to_string()))
    });
    let (enter, root) = rx
        .recv_timeout(Duration::from_secs(600))
        .expect("the container started");
    // tick has started once it wrote its boot line (read from the host)
    let boots = Path::new(&root).join("var/lib/tick.boots");
    let deadline = Instant::now() + Duration::from_secs(600);
    while std::fs::read_to_string(&boots).map_or(true, |s| s.trim().is_empty()) {
        assert!(Instant::now() < deadline, "tick never wrote its boot line");
        std::thread::sleep(Duration::from_millis(500));
    }
    enter_run(&enter, &["systemctl", "reboot"]);
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    assert!(status.success(), "{}", lines.join("\n"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the container rebooted: starting it again on the same root")),
        "{}",
        lines.join("\n")
    );
    let c = Container(serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap());
    eprintln!(
        "e2e native: launch reboot with a reboot mid-role took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(c.0["status"]["state"], "done");
    let boots = c.read("var/lib/tick.boots");
    assert_eq!(boots.lines().count(), 2, "tick ran on both boots: {boots}");
    assert_eq!(c.read("var/lib/tick.done"), "done");
    let status: Value = serde_json::from_str(&c.read("var/lib/parbake/status.json")).unwrap();
    assert_eq!(status["resumed"], 1, "{status}");
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(
        c.exec(&["systemctl", "is-active", "parbake-ready.target"]),
        "active"
    );
}

/// Checks after the roles, natively: one passes, one cannot; `verify` exits 1 naming the
/// failed check, and its report says which passed.
pub(super) fn check_pass_and_fail(tier: &Tier) {
    let (code, report, err) = run_failing(
        tier,
        &[
            "verify",
            "checked",
            "--container",
            "--timeout",
            NATIVE_TIMEOUT,
            "--json",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("launch of checked failed at check `file /var/lib/never-written`"),
        "{err}"
    );
    let status = &report["launch"]["status"];
    let checks: Vec<(&str, &str)> = status["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [
            ("file /var/lib/tick.done", "ok"),
            ("file /var/lib/never-written", "failed")
        ],
        "{report}"
    );
    assert_eq!(status["state"], "failed");
    assert_eq!(report["verification"]["passed"], false, "{report}");
}

/// The stack's launch_timeout passes while a role runs: the launch fails, naming the role.
pub(super) fn launch_timeout_names_its_role(tier: &Tier) {
    let started = Instant::now();
    let (code, report, err) = run_failing(
        tier,
        &[
            "verify",
            "slow",
            "--container",
            "--timeout",
            NATIVE_TIMEOUT,
            "--json",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    let error = report["launch"]["status"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("1m (launch_timeout) passed since the launch started, while role tick"),
        "{report}"
    );
    assert!(err.contains("in role `tick`"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(600),
        "the timeout did not stop the launch"
    );
}

/// The one file in `dir` whose name starts with `prefix`.
fn only_entry(dir: &Path, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{prefix}* in {}: {found:?}", dir.display());
    found[0].clone()
}

/// A role fails with a secret in its message (kept, to look inside): parbake's error and
/// status.json show the role and the failed task, never the secret; the launch log on the
/// instance (root only) holds Ansible's full output; no role output reaches the console.
pub(super) fn failed_role_redacts_its_secret(tier: &Tier) {
    let (code, report, err) = run_failing(
        tier,
        &[
            "launch",
            "leaky",
            "--container",
            "--keep",
            "--timeout",
            NATIVE_TIMEOUT,
            "--json",
        ],
    );
    // the error says how to enter and stop the kept container
    let hint = |after: &str, until: char| {
        let at = err.find(after).unwrap_or_else(|| panic!("{after}: {err}")) + after.len();
        err[at..].split(until).next().unwrap().trim().to_string()
    };
    let c = Container(serde_json::json!({"kept": {
        "ssh": hint("to look into: ", ';'),
        "stop": hint("stop it with: ", '\n'),
        "dir": only_entry(&tier.store.path().join("runs"), "leaky-"),
    }}));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("launch of leaky failed in role `leak`"),
        "{err}"
    );
    assert!(err.contains("/var/log/parbake/launch.log"), "{err}");
    // --json: the failed launch's report on stdout, with the instance's status
    assert_eq!(report["status"]["state"], "failed", "{report}");
    assert_eq!(report["status"]["roles"][0]["name"], "leak", "{report}");
    let stdout = report.to_string();
    // the secret: a file on the instance, made by its first boot
    let secret = c.exec(&["cat", "/etc/machine-id"]);
    assert_eq!(secret.len(), 32, "{secret}");
    let status = c.exec(&["cat", "/var/lib/parbake/status.json"]);
    assert!(status.contains("<secret db_password>"), "{status}");
    let console = only_entry(&tier.store.path().join("logs"), "launch-leaky-");
    let console = std::fs::read_to_string(console).unwrap();
    for (what, text) in [
        ("stderr", err.as_str()),
        ("stdout", &stdout),
        ("status.json", &status),
        ("the console", &console),
    ] {
        assert!(!text.contains(&secret), "{what} shows the secret:\n{text}");
    }
    assert!(
        !console.contains("ROLE-SAYS"),
        "role output reached the console"
    );
    let log = c.exec(&["cat", "/var/log/parbake/launch.log"]);
    assert!(
        log.contains(&secret),
        "the role did not run with the secret"
    );
    let mode = c.exec(&["stat", "-c", "%a", "/var/log/parbake/launch.log"]);
    assert_eq!(mode, "600", "launch.log holds the unredacted output");
}

/// `verify --container` boots the minimal stack natively and records a passed verdict under
/// the exact user-data's digest; `publish` points the stack at it (v1). A second verify and
/// publish with other launch vars (v2, in a copy of the project) moves the default;
/// `launch --published --container` boots exactly v2's user-data; `rollback` goes back to v1,
/// which `launch --published` then boots.
pub(super) fn verify_publish_launch_published_and_rollback(tier: &Tier) {
    let v1 = super::verify_and_publish_the_minimal_stack(tier, &["--container"]);
    let copy = super::project_copy(tier);
    let mini = copy.path().join("images/stacks/mini.yml");
    let text = std::fs::read_to_string(&mini).unwrap();
    std::fs::write(&mini, format!("{text}launch_vars:\n  tick_sleep: 2\n")).unwrap();
    let in_copy = |args: &[&str]| {
        let out = tier.cmd(args).current_dir(copy.path()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "parbake {args:?}: {err}");
        out.stdout
    };
    let v2 = parbake::plan::sha256_hex(&in_copy(&["userdata", "mini"]));
    assert_ne!(v1, v2);
    let verified: Value = serde_json::from_slice(&in_copy(&[
        "verify",
        "mini",
        "--container",
        "--timeout",
        NATIVE_TIMEOUT,
        "--json",
    ]))
    .unwrap();
    assert_eq!(verified["verification"]["passed"], true, "{verified}");
    assert_eq!(verified["launch"]["accelerator"], "nspawn", "{verified}");
    let published: Value =
        serde_json::from_slice(&in_copy(&["publish", "mini", "--json"])).unwrap();
    assert_eq!(published["published"]["userdata_sha256"], v2.as_str());
    let launched = |digest: &str| {
        let r = tier.json(&[
            "launch",
            "mini",
            "--published",
            "--container",
            "--timeout",
            NATIVE_TIMEOUT,
            "--json",
        ]);
        assert_eq!(r["status"]["state"], "done", "{r}");
        assert_eq!(r["userdata_sha256"], digest, "{r}");
    };
    launched(&v2);
    let back = tier.cmd(&["rollback", "mini"]).output().unwrap();
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    launched(&v1);
}

/// Ctrl-C during a native launch: exit 130, the container halted, its root unmounted (the loop
/// device detached with it), its copy and run dir removed. The other thread may run its own
/// native launch meanwhile, so only this launch's run dir counts.
pub(super) fn interrupt_a_native_launch(tier: &Tier) {
    let mut child = tier
        .cmd(&[
            "launch",
            "reboot",
            "--container",
            "--timeout",
            NATIVE_TIMEOUT,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (rx, reader) = watch_stderr(&mut child, false, |line| {
        // `launching reboot natively (systemd-nspawn) from layer … as i-…: …`
        if line.starts_with("launching reboot natively") {
            let id = line.split(" as ").nth(1).and_then(|r| r.split(':').next());
            if let Some(id) = id {
                return Some(Some(id.to_string()));
            }
        }
        line.contains("role tick").then_some(None)
    });
    let id = rx
        .recv_timeout(Duration::from_secs(300))
        .unwrap()
        .expect("the launch names its instance first");
    let run = tier.store.path().join(format!("runs/reboot-{id}"));
    assert!(run.join("root/etc").is_dir(), "the root is mounted");
    rx.recv_timeout(Duration::from_secs(300))
        .expect("role tick started");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{}", lines.join("\n"));
    assert!(!run.exists(), "the run dir is left: {}", run.display());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(run.to_str().unwrap()), "{mounts}");
    let loops = Command::new("losetup").arg("-a").output().unwrap();
    let loops = String::from_utf8_lossy(&loops.stdout);
    assert!(!loops.contains(run.to_str().unwrap()), "{loops}");
}
