//! Hostile files and values of issue 21 (reading, YAML, config values): each class exits 1
//! with the file, the place and a hint, within a time bound, never a hang, a read outside the
//! project or a value apt or AWS would read another way.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::hostile::{fails, has};
use crate::util::{Fixture, Run};

/// What a run of the real binary cost: its result, CPU time (user and system: what the run
/// itself spent, however loaded the machine) and peak resident memory.
pub(crate) struct Measured {
    pub(crate) run: Run,
    cpu: Duration,
    max_rss_kib: i64,
}

/// The real binary started in the fixture, stdout and stderr piped.
fn spawn_parbake(f: &Fixture, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_parbake"))
        .args(args)
        .current_dir(f.root())
        .env_remove("PARBAKE_PROJECT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run parbake")
}

/// Runs parbake in the fixture, killed and failed after `limit` (a hang is a failure, not a
/// stuck test run); its peak RSS comes from wait4 on that child alone.
#[allow(clippy::zombie_processes)] // reaped by wait4, which clippy does not see
pub(crate) fn measured(f: &Fixture, args: &[&str], limit: Duration) -> Measured {
    let mut child = spawn_parbake(f, args);
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            pipe.read_to_string(&mut s).ok();
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let pid = child.id() as libc::pid_t;
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: rusage is plain data that wait4 fills in; pid is our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break (status, usage);
        }
        if started.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!("parbake {args:?} still running after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Measured {
        run: Run {
            code,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        },
        cpu: [usage.ru_utime, usage.ru_stime]
            .iter()
            .map(|t| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000))
            .sum(),
        max_rss_kib: usage.ru_maxrss,
    }
}

const HANG: Duration = Duration::from_secs(60);

/// `plan web` exits 1 with a hint within [`HANG`]; returns stderr.
fn plan_fails(f: &Fixture) -> String {
    let m = measured(f, &["plan", "web"], HANG);
    assert_eq!(m.run.code, 1, "expected exit 1:\n{}", m.run.stderr);
    assert!(m.run.stdout.is_empty(), "no data: {}", m.run.stdout);
    assert!(m.run.stderr.contains("hint: "), "a hint:\n{}", m.run.stderr);
    m.run.stderr
}

fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

const REQUIREMENTS: &str = "roles:\n  - name: geerlingguy.nginx\n    version: 3.2.0\n";

// --- the reading rule ------------------------------------------------------------------------

/// Every config file `plan` reads, as a FIFO: refused at once with the path and the kind,
/// where it used to hang (requirements.yml, the lock, a Packer template) or be skipped.
#[test]
fn a_fifo_for_any_config_file_is_refused_not_waited_on() {
    for rel in [
        "requirements.yml",
        "requirements.lock.json",
        "packer/qemu.pkr.hcl",
        "packer/plugins/required_plugins.pkr.hcl",
        "images/debian12.yml",
        "images/stacks/web.yml",
        "group_vars/all.yml",
        "group_vars/web/extra.yml",
    ] {
        let f = Fixture::example();
        if rel == "requirements.lock.json" {
            f.write("requirements.yml", REQUIREMENTS);
        }
        mkfifo(&f.root().join(rel));
        let e = plan_fails(&f);
        has(&e, &[rel, "a FIFO (named pipe)", "not a regular file"]);
    }
}

/// The hash cache is a hint: as a FIFO (or a link out of vendor/) it is no cache, at once.
#[test]
fn a_fifo_hash_cache_is_no_cache_and_no_hang() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir
        .path()
        .join("vendor")
        .join(parbake::vendoring::hash::CACHE_FILE);
    mkfifo(&cache);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let c = parbake::vendoring::hash::HashCache::open(&cache);
        tx.send(format!("{c:?}")).unwrap();
    });
    let opened = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("opening a FIFO hash cache hangs");
    assert!(opened.contains("files: {}"), "{opened}");
}

/// group_vars follow the role-tree rule (HIGH 4): a link that resolves outside the project
/// is refused, so the file's content never reaches the user-data, vars.json or plan.json.
#[test]
fn group_vars_linked_from_outside_the_project_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("credentials.yml");
    std::fs::write(&secret, "aws_secret: hunter2-from-outside\n").unwrap();
    for rel in ["group_vars/all.yml", "group_vars/web/creds.yml"] {
        let f = Fixture::example();
        std::fs::create_dir_all(f.root().join(rel).parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&secret, f.root().join(rel)).unwrap();
        let e = plan_fails(&f);
        has(
            &e,
            &[rel, "outside", "hint: parbake reads only files inside"],
        );
        assert!(!e.contains("hunter2"), "{e}");
    }
    // the whole directory linked out, too
    let f = Fixture::example();
    std::os::unix::fs::symlink(outside.path(), f.root().join("group_vars")).unwrap();
    std::fs::rename(&secret, outside.path().join("all.yml")).unwrap();
    let e = plan_fails(&f);
    has(&e, &["group_vars/all.yml", "outside"]);
    // a link inside the project is fine
    let g = Fixture::example();
    g.write("shared/all.yml", "greeting: hello\n");
    std::fs::create_dir_all(g.root().join("group_vars")).unwrap();
    std::os::unix::fs::symlink("../shared/all.yml", g.root().join("group_vars/all.yml")).unwrap();
    let r = g.run(&["plan", "web"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A file over the size bound is refused with the limit named, before it is parsed.
#[test]
fn an_oversized_config_file_is_refused_with_the_limit() {
    let f = Fixture::example();
    let big = format!("a: \"{}\"\n", "x".repeat(17 << 20));
    f.write("group_vars/all.yml", &big);
    let e = plan_fails(&f);
    has(&e, &["group_vars/all.yml", "limit of 16 MiB", "hint: "]);
}

// --- YAML bombs ------------------------------------------------------------------------------

/// One anchor aliased thousands of times (a 17 KB file that took 2 GB and 40 s): refused by
/// its expanded size, fast and small.
#[test]
fn an_alias_bomb_is_refused_by_its_expanded_size() {
    let mut text = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let row = vec![format!("*l{}", i - 1); 10].join(", ");
        text.push_str(&format!("l{i}: &l{i} [{row}]\n"));
    }
    text.push_str(&format!("bomb: [{}]\n", vec!["*l9"; 2500].join(", ")));
    for rel in ["group_vars/all.yml", "roles/nginx/tasks/main.yml"] {
        let f = Fixture::example();
        f.write(rel, &text);
        let m = measured(&f, &["plan", "web"], HANG);
        assert_eq!(m.run.code, 1, "{}", m.run.stderr);
        has(
            &m.run.stderr,
            &[
                rel,
                "limit of 50000 nodes",
                "hint: write the data out with fewer aliases",
            ],
        );
        assert!(m.cpu < Duration::from_secs(2), "{:?}", m.cpu);
        assert!(m.max_rss_kib < 256 << 10, "{} KiB", m.max_rss_kib);
    }
}

/// Deep flow nesting (`[[[…]]]`, quadratic in the scanner: 400 KB took 12 minutes) and deep
/// block nesting: refused at the depth limit, fast.
#[test]
fn deep_nesting_is_refused_at_the_depth_limit() {
    let flow = format!("a: {}{}\n", "[".repeat(400_000), "]".repeat(400_000));
    let mut block = String::new();
    for i in 0..200 {
        block.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
    }
    for text in [flow, block] {
        let f = Fixture::example();
        f.write("group_vars/all.yml", &text);
        let m = measured(&f, &["plan", "web"], HANG);
        assert_eq!(m.run.code, 1, "{}", m.run.stderr);
        has(
            &m.run.stderr,
            &["group_vars/all.yml:", "limit of 64 levels", "hint: flatten"],
        );
        assert!(!m.run.stderr.contains("syntax error"), "{}", m.run.stderr);
        assert!(m.cpu < Duration::from_secs(2), "{:?}", m.cpu);
    }
}

/// SIGTERM while a large (within the limits) YAML file is parsed and planned: parsing is
/// bounded, so the command reaches its next checkpoint soon and exits 130 with no data.
#[test]
fn sigterm_while_parsing_exits_130_with_nothing_on_stdout() {
    let f = Fixture::example();
    let row = vec!["x"; 1000].join(", ");
    let uses = vec!["*a"; 48].join(", ");
    f.write(
        "group_vars/all.yml",
        &format!("a: &a [{row}]\nb: [{uses}]\n"),
    );
    let child = spawn_parbake(&f, &["plan", "web"]);
    std::thread::sleep(Duration::from_millis(150));
    let sent = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let waited = sent.elapsed();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "no data after SIGTERM");
    assert!(
        waited < Duration::from_secs(3),
        "exited {waited:?} after SIGTERM"
    );
}

/// Random YAML with anchors, aliases and nesting: every `plan` ends (0 or 1, never a crash)
/// within 2 s of CPU and well under 1 GB. `PARBAKE_PROPTEST_CASES` raises the count (default 24).
#[test]
fn random_aliases_and_nesting_parse_bounded_in_time_and_memory() {
    let cases = std::env::var("PARBAKE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    // around the bombs of the issue: a few levels of wide anchors used thousands of times,
    // and nests up to 400 KB deep
    let strategy = (
        1usize..6,
        1usize..40,
        prop_oneof![0usize..200, 10_000usize..200_000],
        proptest::bool::ANY,
        "[a-z]{0,64}",
        0usize..4000,
    );
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let f = Fixture::example();
    let worst = std::cell::Cell::new((Duration::ZERO, 0i64));
    runner
        .run(&strategy, |(levels, fanout, depth, flow, leaf, uses)| {
            let text = bomb(levels, fanout, depth, flow, &leaf, uses);
            f.write("group_vars/all.yml", &text);
            let m = measured(&f, &["plan", "web"], HANG);
            prop_assert!(
                m.run.code == 0 || m.run.code == 1,
                "exit {}: {}",
                m.run.code,
                m.run.stderr
            );
            prop_assert!(m.cpu < Duration::from_secs(2), "{:?}", m.cpu);
            prop_assert!(m.max_rss_kib < 512 << 10, "{} KiB", m.max_rss_kib);
            let (t, rss) = worst.get();
            worst.set((t.max(m.cpu), rss.max(m.max_rss_kib)));
            Ok(())
        })
        .unwrap();
    let (t, rss) = worst.get();
    eprintln!("{cases} cases: most CPU {t:?}, largest {} MiB", rss >> 10);
}

/// `levels` anchors each repeating the last `fanout` times, used `uses` times, beside a
/// `depth`-deep nest (flow or block).
fn bomb(levels: usize, fanout: usize, depth: usize, flow: bool, leaf: &str, uses: usize) -> String {
    let mut text = format!("v0: &a0 {leaf:?}\n");
    for i in 1..levels {
        let row = vec![format!("*a{}", i - 1); fanout].join(", ");
        text.push_str(&format!("v{i}: &a{i} [{row}]\n"));
    }
    let top = format!("*a{}", levels - 1);
    text.push_str(&format!(
        "uses: [{}]\n",
        vec![top.as_str(); uses].join(", ")
    ));
    if flow {
        text.push_str(&format!(
            "deep: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        ));
    } else {
        text.push_str("deep:\n");
        for i in 0..depth.min(300) {
            text.push_str(&format!("{}- \n", " ".repeat(2 * i + 2)));
        }
    }
    text
}

// --- config values ---------------------------------------------------------------------------

/// `stage_apt: [pkg-]` would reach apt as "remove pkg": refused with the rule.
#[test]
fn stage_apt_entries_apt_would_read_as_removal_are_refused() {
    for bad in ["nginx-", "nginx=1.22-", "nginx=1.0+"] {
        let f = Fixture::example();
        f.write(
            "roles/nginx/meta/parbake.yml",
            &format!("stage_apt: [curl, {bad}]\n"),
        );
        let e = fails(&f, &["plan", "web"]);
        has(
            &e,
            &[
                "roles/nginx/meta/parbake.yml:1:",
                "field `stage_apt`",
                bad,
                "not a Debian package name",
                "never ending in `-`",
            ],
        );
    }
}

/// SSM parameter names AWS rejects are refused at their line, naming what is wrong.
#[test]
fn ssm_parameter_names_aws_rejects_are_refused() {
    let deep = "/a".repeat(16);
    for (name, why) in [
        ("/parbake/web/", "ends in `/`"),
        (deep.as_str(), "16 levels"),
        ("/Ssm/web", "reserved"),
    ] {
        let f = Fixture::example();
        let stack = std::fs::read_to_string(f.root().join("images/stacks/web.yml")).unwrap();
        f.write(
            "images/stacks/web.yml",
            &format!(
                "{stack}publish:\n  launch_template: web-fleet\n  ssm_parameter: \"{name}\"\n"
            ),
        );
        let e = fails(&f, &["plan", "web"]);
        has(
            &e,
            &[
                "images/stacks/web.yml:",
                "field `publish.ssm_parameter`",
                why,
                "at most 15 levels",
            ],
        );
    }
}

/// `$USER` reaches the `parbake:owner` tag only as a value EC2 takes; anything else is
/// `parbake`.
#[test]
fn the_owner_tag_is_a_valid_tag_value_or_the_fallback() {
    use parbake::config::names::{owner_tag_value, valid_tag_value};
    for user in ["alice", "bob@example.com", "svc.ci-1"] {
        assert_eq!(owner_tag_value(Some(user)), user);
    }
    let long = "u".repeat(300);
    for user in [
        "",
        "a b",
        "x\"y",
        "a\nb",
        "\u{1b}[2J",
        "a;id",
        long.as_str(),
    ] {
        let v = owner_tag_value(Some(user));
        assert_eq!(v, "parbake", "{user:?}");
        assert!(valid_tag_value(&v));
    }
    assert_eq!(owner_tag_value(None), "parbake");
}
