//! Hostile output paths and signals (issue 9, items 5 and 6), `--budget` durations and the
//! `plan --json` user-data verdict (item 7). Every case runs the real binary, with a timeout:
//! a hang is a failure, not a stuck test run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use crate::util::{repo, Fixture, Run};

const TIMEOUT: Duration = Duration::from_secs(60);

fn command(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_parbake"));
    c.args(args)
        .current_dir(dir)
        .env(
            "PARBAKE_ANSIBLE_PLAYBOOK",
            repo().join(".venv/bin/ansible-playbook"),
        )
        .env("PARBAKE_CLOUD_INIT", repo().join(".tools/bin/cloud-init"))
        .env_remove("PARBAKE_PROJECT")
        .env_remove("PARBAKE_TEST_PAUSE_AT")
        .env_remove("PARBAKE_TEST_PAUSE_SECONDS")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A running parbake whose stderr is read line by line as it comes.
struct Running {
    child: Child,
    lines: Receiver<String>,
    stderr: Vec<String>,
    stdout: std::thread::JoinHandle<Vec<u8>>,
}

impl Running {
    fn start(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Running {
        let mut child = command(dir, args, envs).spawn().expect("run parbake");
        let err = child.stderr.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stdout = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        Running {
            child,
            lines,
            stderr: Vec::new(),
            stdout,
        }
    }

    /// Waits (at most [`TIMEOUT`]) for a stderr line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.stderr.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no stderr line with {needle:?} in time:\n{}",
                        self.stderr.join("\n")
                    );
                }
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child with a valid signal number.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, sig) },
            0
        );
    }

    /// Waits (at most [`TIMEOUT`]) for the exit; a hang kills the child and fails the test.
    fn finish(mut self) -> Run {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("parbake did not exit in time:\n{}", self.stderr.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.join().unwrap();
        // the reader thread ends at EOF, once the process is gone
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stderr.push(l);
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: self.stderr.join("\n"),
        }
    }
}

/// Runs to the end with a timeout.
fn run(dir: &Path, args: &[&str]) -> Run {
    Running::start(dir, args, &[]).finish()
}

fn fails_with(dir: &Path, args: &[&str], needles: &[&str]) -> Run {
    let r = run(dir, args);
    assert_eq!(r.code, 1, "expected exit 1 for {args:?}:\n{}", r.stderr);
    assert!(r.stderr.contains("hint: "), "no hint:\n{}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "missing {n:?} in:\n{}", r.stderr);
    }
    r
}

/// Every entry under `dir` (not following links): relative path → kind and contents.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for e in std::fs::read_dir(root.join(rel)).unwrap() {
            let e = e.unwrap();
            let path = rel.join(e.file_name());
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(path.clone(), "dir".into());
                walk(root, &path, out);
            } else if ft.is_symlink() {
                out.insert(
                    path,
                    format!("link {}", std::fs::read_link(e.path()).unwrap().display()),
                );
            } else if ft.is_file() {
                out.insert(
                    path,
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned(),
                );
            } else {
                out.insert(path, "special".into());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, Path::new(""), &mut out);
    out
}

/// Names in `dir` starting with `.parbake-`.
fn transient(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".parbake-"))
        .collect()
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- 1. render directory ownership -------------------------------------------------------

#[test]
fn render_dir_ownership_a_users_plan_json_does_not_make_a_render() {
    let f = Fixture::example();
    let out = f.root().join("mine");
    std::fs::create_dir_all(out.join("notes")).unwrap();
    std::fs::write(out.join("plan.json"), "{\"my\": \"own plan\"}\n").unwrap();
    std::fs::write(out.join("budget.xlsx"), "numbers").unwrap();
    std::fs::write(out.join("notes/todo.txt"), "call Bob").unwrap();
    let before = tree(&out);
    fails_with(
        f.root(),
        &["render", "web", "-o", s(&out)],
        &["not an earlier parbake render", "no .parbake-render.json"],
    );
    assert_eq!(tree(&out), before, "the directory is unchanged");
    assert!(transient(f.root()).is_empty(), "{:?}", transient(f.root()));
}

#[test]
fn render_dir_ownership_files_the_marker_does_not_list_are_never_deleted() {
    let f = Fixture::example();
    let out = f.root().join("out");
    let r = run(f.root(), &["render", "web", "-o", s(&out)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(".parbake-render.json")).unwrap()).unwrap();
    assert_eq!(marker["parbake_version"], env!("CARGO_PKG_VERSION"));
    let listed: Vec<&str> = marker["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(listed.contains(&"plan.json") && listed.contains(&"user-data"));
    for l in &listed {
        assert!(out.join(l).is_file(), "{l} listed and written");
    }
    // an earlier render holding only its own files is replaced
    let r = run(f.root(), &["render", "web", "-o", s(&out)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // a file and a directory of the user's, beside and inside parbake's own directories
    std::fs::write(out.join("mine.txt"), "keep me").unwrap();
    std::fs::create_dir_all(out.join("layers/extra")).unwrap();
    std::fs::write(out.join("layers/extra/x"), "keep me too").unwrap();
    let before = tree(&out);
    fails_with(
        f.root(),
        &["render", "web", "-o", s(&out)],
        &["files parbake did not write", "mine.txt", "layers/extra/"],
    );
    assert_eq!(tree(&out), before, "nothing deleted");
    // a marker that is not parbake's format is not a licence either
    let other = f.root().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join(".parbake-render.json"), "not json").unwrap();
    std::fs::write(other.join("data"), "x").unwrap();
    let before = tree(&other);
    fails_with(
        f.root(),
        &["render", "web", "-o", s(&other)],
        &["cannot be read"],
    );
    assert_eq!(tree(&other), before);
}

// ---- 2. non-regular outputs --------------------------------------------------------------

#[test]
fn non_regular_output_a_fifo_is_refused_without_hanging() {
    let f = Fixture::example();
    let fifo = f.root().join("pipe");
    mkfifo(&fifo);
    fails_with(
        f.root(),
        &["userdata", "web", "-o", s(&fifo)],
        &["is a FIFO", "stdout"],
    );
    assert!(is_fifo(&fifo), "the FIFO is still a FIFO");
    fails_with(f.root(), &["render", "web", "-o", s(&fifo)], &["is a FIFO"]);
    assert!(is_fifo(&fifo));
    assert!(transient(f.root()).is_empty());
}

#[test]
fn non_regular_output_a_symlink_is_refused_and_its_target_unchanged() {
    let f = Fixture::example();
    let target = f.root().join("precious.txt");
    std::fs::write(&target, "precious").unwrap();
    let link = f.root().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    fails_with(
        f.root(),
        &["userdata", "web", "-o", s(&link)],
        &["is a symbolic link"],
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // render onto a link to a directory (even an earlier render)
    let dir = f.root().join("rendered");
    assert_eq!(run(f.root(), &["render", "web", "-o", s(&dir)]).code, 0);
    let dlink = f.root().join("dlink");
    std::os::unix::fs::symlink(&dir, &dlink).unwrap();
    let before = tree(&dir);
    fails_with(
        f.root(),
        &["render", "web", "-o", s(&dlink)],
        &["is a symbolic link"],
    );
    assert_eq!(tree(&dir), before);
    assert!(std::fs::symlink_metadata(&dlink)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// A character device to aim `-o` at, never the system's own when a regression could replace
/// it: a null device made in `dir` (root can), else /dev/null when not root (then the rename a
/// regression would do into /dev fails).
fn char_device(dir: &Path) -> Option<PathBuf> {
    let node = dir.join("null-device");
    let made = Command::new("mknod")
        .args(["-m", "666"])
        .arg(&node)
        .args(["c", "1", "3"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if made {
        return Some(node);
    }
    // SAFETY: geteuid(2) has no preconditions.
    (unsafe { libc::geteuid() } != 0).then(|| PathBuf::from("/dev/null"))
}

#[test]
fn non_regular_output_a_device_is_refused_and_dash_is_stdout() {
    use std::os::unix::fs::FileTypeExt;
    let f = Fixture::example();
    match char_device(f.root()) {
        Some(dev) => {
            fails_with(
                f.root(),
                &["userdata", "web", "-o", s(&dev)],
                &[&format!("{} is a character device", dev.display())],
            );
            assert!(std::fs::symlink_metadata(&dev)
                .unwrap()
                .file_type()
                .is_char_device());
        }
        None => eprintln!("SKIP the device case: root without mknod, and /dev/null is too dear"),
    }
    let r = run(f.root(), &["userdata", "web", "-o", "-"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("#cloud-config\n"), "{}", r.stdout);
    assert!(!f.root().join("-").exists());
    fails_with(f.root(), &["render", "web", "-o", "-"], &["not stdout"]);
}

// ---- 3. outputs inside the project's inputs ----------------------------------------------

#[test]
fn output_inside_project_inputs_is_refused() {
    let f = Fixture::example();
    let roles_before = tree(&f.root().join("roles"));
    let images_before = tree(&f.root().join("images"));
    std::os::unix::fs::symlink(f.root().join("roles/nginx"), f.root().join("sneaky")).unwrap();
    for args in [
        vec!["userdata", "web", "-o", "roles/nginx/files/ud"],
        vec!["userdata", "web", "-o", "images/stacks/evil.yml"],
        vec!["userdata", "web", "-o", "nowhere/../roles/nginx/x"],
        vec!["userdata", "web", "-o", "sneaky/templates/ud"],
        vec!["render", "web", "-o", "roles/new"],
        vec!["render", "web", "-o", "images/out"],
        vec!["render", "web", "-o", "sneaky/../../roles/out"],
    ] {
        fails_with(f.root(), &args, &["inside the project's"]);
    }
    // the same through an absolute path
    let abs = f.root().join("roles/webapp/ud");
    fails_with(
        f.root(),
        &["userdata", "web", "-o", s(&abs)],
        &["inside the project's roles/"],
    );
    assert_eq!(tree(&f.root().join("roles")), roles_before);
    assert_eq!(tree(&f.root().join("images")), images_before);
    // beside them is fine
    let r = run(f.root(), &["userdata", "web", "-o", "rolesish/ud"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

// ---- 4. orphaned staging dirs ------------------------------------------------------------

/// A pid that was alive a moment ago and is not any more.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn orphaned_staging_dirs_of_dead_processes_are_removed() {
    let f = Fixture::example();
    let parent = f.root().join("renders");
    std::fs::create_dir_all(&parent).unwrap();
    // a real parbake paused mid-render, its staging dir beside the target (it swept the
    // directory before it paused: the entries below come after)
    let mut live = Running::start(
        f.root(),
        &["render", "web", "-o", s(&parent.join("a"))],
        &[
            ("PARBAKE_TEST_PAUSE_AT", "commit"),
            ("PARBAKE_TEST_PAUSE_SECONDS", "60"),
        ],
    );
    live.wait_for("test pause at commit");
    let live_staging = format!(".parbake-render-{}-", live.child.id());
    assert!(
        transient(&parent)
            .iter()
            .any(|n| n.starts_with(&live_staging)),
        "{:?}",
        transient(&parent)
    );

    let dead = dead_pid();
    let stale = [
        format!(".parbake-render-{dead}-a1b2c3"),
        format!(".parbake-old-{dead}-a1b2c3"),
    ];
    for d in &stale {
        std::fs::create_dir_all(parent.join(d).join("layers")).unwrap();
        std::fs::write(parent.join(d).join("layers/big"), "x".repeat(4096)).unwrap();
    }
    let stale_tmp = format!(".parbake-tmp-{dead}-zz9");
    std::fs::write(parent.join(&stale_tmp), "half a user-data").unwrap();
    // this test's own process is alive (and, as a test binary of the crate, named parbake-…)
    let mine = format!(".parbake-render-{}-q9", std::process::id());
    std::fs::create_dir_all(parent.join(&mine)).unwrap();
    // names parbake never gives are left alone
    std::fs::create_dir_all(parent.join(".parbake-render-xyz")).unwrap();

    let r = run(f.root(), &["render", "web", "-o", s(&parent.join("b"))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let left = transient(&parent);
    for gone in stale.iter().chain([&stale_tmp]) {
        assert!(!left.contains(gone), "{gone} should be removed: {left:?}");
    }
    assert!(left.contains(&mine), "{left:?}");
    assert!(
        left.contains(&".parbake-render-xyz".to_string()),
        "{left:?}"
    );
    assert!(
        left.iter().any(|n| n.starts_with(&live_staging)),
        "a live render's staging dir is kept: {left:?}"
    );
    // userdata -o sweeps its directory too
    let dead = dead_pid();
    let stale_tmp = format!(".parbake-tmp-{dead}-k2");
    std::fs::write(parent.join(&stale_tmp), "half").unwrap();
    let r = run(f.root(), &["userdata", "web", "-o", s(&parent.join("ud"))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!transient(&parent).contains(&stale_tmp));

    live.signal(libc::SIGINT);
    let r = live.finish();
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert!(!parent.join("a").exists());
    assert!(
        !transient(&parent)
            .iter()
            .any(|n| n.starts_with(&live_staging)),
        "{:?}",
        transient(&parent)
    );
}

// ---- 5. user mistakes exit 1 -------------------------------------------------------------

#[test]
fn user_mistakes_on_output_paths_exit_1() {
    let f = Fixture::example();
    let dir = f.root().join("adir");
    std::fs::create_dir_all(&dir).unwrap();
    fails_with(
        f.root(),
        &["userdata", "web", "-o", s(&dir)],
        &["is a directory", "DIR/user-data"],
    );
    let file = f.root().join("afile");
    std::fs::write(&file, "mine").unwrap();
    fails_with(
        f.root(),
        &["render", "web", "-o", s(&file)],
        &["is a regular file, not a directory"],
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    // a parent that cannot be created: a regular file is in the way
    let under_file = file.join("sub/ud");
    fails_with(
        f.root(),
        &["userdata", "web", "-o", s(&under_file)],
        &["cannot create the directory"],
    );
    fails_with(
        f.root(),
        &["render", "web", "-o", s(&file.join("out"))],
        &["cannot create the directory"],
    );
    // clap refuses an empty value itself
    assert_eq!(run(f.root(), &["userdata", "web", "-o", ""]).code, 1);
    for bad in [".", ".."] {
        fails_with(
            f.root(),
            &["userdata", "web", "-o", bad],
            &["does not name a file"],
        );
    }
    fails_with(
        f.root(),
        &["render", "web", "-o", "."],
        &["does not name a file"],
    );
    // a new parent is created
    let r = run(f.root(), &["userdata", "web", "-o", "new/deeper/ud"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(f.root().join("new/deeper/ud").is_file());
}

// ---- 6. signals --------------------------------------------------------------------------

const PAUSE: [(&str, &str); 2] = [
    ("PARBAKE_TEST_PAUSE_AT", "commit"),
    ("PARBAKE_TEST_PAUSE_SECONDS", "60"),
];

fn interrupted(f: &Fixture, args: &[&str], sig: libc::c_int) -> Run {
    let mut r = Running::start(f.root(), args, &PAUSE);
    r.wait_for("test pause at commit");
    r.signal(sig);
    let r = r.finish();
    assert_eq!(r.code, 130, "{args:?}:\n{}", r.stderr);
    assert!(
        r.stdout.is_empty(),
        "no data after an interrupt: {}",
        r.stdout
    );
    r
}

#[test]
fn signals_an_interrupted_render_keeps_the_previous_render() {
    let f = Fixture::example();
    let out = f.root().join("out");
    assert_eq!(run(f.root(), &["render", "web", "-o", s(&out)]).code, 0);
    let before = tree(&out);
    // a different render, so a replaced directory would show
    for (sig, promote) in [(libc::SIGINT, "nginx"), (libc::SIGTERM, "webapp")] {
        interrupted(
            &f,
            &["render", "web", "--promote", promote, "-o", s(&out)],
            sig,
        );
        assert_eq!(tree(&out), before, "the previous render is untouched");
        assert!(transient(f.root()).is_empty(), "{:?}", transient(f.root()));
    }
    let fresh = f.root().join("fresh");
    interrupted(&f, &["render", "web", "-o", s(&fresh)], libc::SIGTERM);
    assert!(!fresh.exists());
    assert!(transient(f.root()).is_empty(), "{:?}", transient(f.root()));
}

#[test]
fn signals_an_interrupted_userdata_or_plan_writes_nothing() {
    let f = Fixture::example();
    let ud = f.root().join("ud");
    interrupted(&f, &["userdata", "web", "-o", s(&ud)], libc::SIGTERM);
    assert!(!ud.exists());
    assert!(transient(f.root()).is_empty(), "{:?}", transient(f.root()));
    std::fs::write(&ud, "old").unwrap();
    interrupted(&f, &["userdata", "web", "-o", s(&ud)], libc::SIGINT);
    assert_eq!(std::fs::read_to_string(&ud).unwrap(), "old");
    interrupted(&f, &["userdata", "web"], libc::SIGINT);
    interrupted(&f, &["plan", "web"], libc::SIGINT);
    interrupted(&f, &["plan", "web", "--json"], libc::SIGTERM);
    interrupted(&f, &["plan", "web", "--budget", "2m"], libc::SIGINT);
}

#[test]
fn signals_an_interrupted_validate_stops_its_validators() {
    let f = Fixture::example();
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().to_str().unwrap();
    let started = Instant::now();
    let mut r = Running::start(f.root(), &["validate"], &[("TMPDIR", tmpdir)]);
    // the first check is done; the next validator is starting or running
    r.wait_for("ok  ");
    r.signal(libc::SIGINT);
    let r = r.finish();
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert!(
        !r.stderr.contains(" checks, "),
        "stopped before the end:\n{}",
        r.stderr
    );
    assert!(started.elapsed() < TIMEOUT);
    // between two validators (held before the first one): no check runs at all
    let mut r = Running::start(
        f.root(),
        &["validate", "--json"],
        &[
            ("TMPDIR", tmpdir),
            ("PARBAKE_TEST_PAUSE_AT", "check"),
            ("PARBAKE_TEST_PAUSE_SECONDS", "60"),
        ],
    );
    r.wait_for("test pause at check");
    r.signal(libc::SIGTERM);
    let r = r.finish();
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("parbake-validate-"))
        .collect();
    assert!(
        left.is_empty(),
        "validate's render dirs are removed: {left:?}"
    );
}

// ---- 7. --budget durations ---------------------------------------------------------------

#[test]
fn budget_durations_must_be_finite_and_positive() {
    let f = Fixture::example();
    for bad in [
        "inf", "infinity", "1e999", "NaN", "0s", "0", "-5", "-5s", "1e3", "0m0s",
    ] {
        let arg = format!("--budget={bad}");
        let r = fails_with(
            f.root(),
            &["plan", "web", &arg],
            &[&format!("invalid --budget `{bad}`"), "45s, 2m or 1m30s"],
        );
        assert!(r.stdout.is_empty());
    }
    let r = run(f.root(), &["plan", "web", "--budget", "1.5m", "--json"]);
    assert_ne!(r.code, 2, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["budget_s"], 90.0);
}

// ---- 8. plan --json user-data verdict ----------------------------------------------------

#[test]
fn plan_json_carries_the_user_data_verdict_and_exit_status() {
    let f = Fixture::example();
    let r = run(f.root(), &["plan", "web", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["stack"], "web", "the plan's own fields stay");
    let ud = &v["user_data"];
    assert_eq!(ud["verdict"], "fits");
    assert_eq!(ud["limit_bytes"], 16384);
    assert!(ud["raw_bytes"].as_u64().unwrap() > 0);
    assert!(ud["gzipped_bytes"].as_u64().unwrap() > 0);
    assert_eq!(ud["sent_bytes"], ud["raw_bytes"]);

    // incompressible launch_vars: over 16 KiB even gzipped
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let blob: String = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect();
    f.write(
        "images/stacks/web.yml",
        &format!(
            "image: debian12\nroles: [nginx, webapp, identity]\nlaunch_vars:\n  blob: \"{blob}\"\n"
        ),
    );
    let text = run(f.root(), &["plan", "web"]);
    let json = run(f.root(), &["plan", "web", "--json"]);
    assert_eq!(text.code, 1, "{}", text.stderr);
    assert_eq!(json.code, text.code, "the same status as text mode");
    for r in [&text, &json] {
        assert!(r.stderr.contains("even gzipped"), "{}", r.stderr);
        assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    }
    assert!(text.stdout.contains("TOO LARGE"), "{}", text.stdout);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let ud = &v["user_data"];
    assert_eq!(ud["verdict"], "too-large");
    assert_eq!(ud["sent_bytes"], serde_json::Value::Null);
    assert!(ud["gzipped_bytes"].as_u64().unwrap() > 16384);
    assert!(ud["raw_bytes"].as_u64().unwrap() > ud["gzipped_bytes"].as_u64().unwrap());
    assert!(ud["parts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p[0].as_str().unwrap().contains("var blob")));
}
