//! The launch runner's checks (`checks:` in a stack file), probed for real after the roles:
//! a real HTTP server and a real listening port on loopback, real commands, real files under
//! the fake image root. `systemctl` is a stand-in on PATH here (this host has no systemd as
//! PID 1); the e2e tier probes a real unit (nginx.service) in the VM.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use serde_json::{json, Value};

use crate::runner::Image;

/// A real HTTP/1.0 server on 127.0.0.1: `/` answers 200 with a page naming the stack, `/old`
/// a redirect to `/`, anything else 404. It runs until the test ends.
pub(crate) fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 2048];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = request.split(' ').nth(1).unwrap_or("");
            let (status, extra, body) = match path {
                "/" => ("200 OK", "", "parbake webapp: stack=web instance=i-1\n"),
                "/old" => ("301 Moved Permanently", "Location: /\r\n", ""),
                _ => ("404 Not Found", "", "no such page\n"),
            };
            let _ = write!(
                conn,
                "HTTP/1.0 {status}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `systemctl` for `is-active UNIT`: active for units listed in `active`, else inactive.
/// Returns the PATH that finds it first (and the pinned ansible-core's ansible-playbook).
pub(crate) fn systemctl_stand_in(dir: &Path, active: &[&str]) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cases: String = active
        .iter()
        .map(|u| format!("  {u}) echo active; exit 0;;\n"))
        .collect();
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = is-active ] || exit 2\ncase \"$2\" in\n{cases}  *) echo inactive; exit 3;;\nesac\n"
    );
    std::fs::write(bin.join("systemctl"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    format!(
        "{}:{}:{}",
        bin.display(),
        crate::util::ansible_bin().display(),
        std::env::var("PATH").unwrap()
    )
}

/// An image whose only role is baked, so a launch runs no Ansible and goes straight to its
/// checks.
fn baked_image() -> Image {
    Image::new(&[("base", &[], "[]\n")], &["base"])
}

fn launch(img: &Image, checks: Value, path: &str) -> (i32, String, Value) {
    let spec = img.spec_with(
        &[],
        json!({}),
        json!({}),
        json!({"format": 2, "checks": checks}),
    );
    let (code, stdout) = img.run_env(&spec, &["--force"], &[("PATH", path)]);
    (code, stdout, img.status())
}

fn check_entry<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {status}"))
}

#[test]
fn every_check_kind_passes_against_a_real_service_and_the_status_says_so() {
    let img = baked_image();
    let port = http_server();
    let path = systemctl_stand_in(&img.path(""), &["nginx.service"]);
    std::fs::create_dir_all(img.path("var/lib/worker")).unwrap();
    std::fs::write(
        img.path("var/lib/worker/heartbeat.json"),
        "{\"stack\": \"worker\"}\n",
    )
    .unwrap();
    let checks = json!([
        {"name": "page", "kind": "http", "port": port, "path": "/", "status": 200, "body": "stack=web", "timeout_s": 5},
        {"name": "moved", "kind": "http", "port": port, "path": "/old", "status": 301, "timeout_s": 5},
        {"name": "proxy", "kind": "unit", "unit": "nginx.service", "timeout_s": 5},
        {"name": "listening", "kind": "port", "port": port, "timeout_s": 5},
        {"name": "true", "kind": "command", "argv": ["/bin/sh", "-c", "exit 0"], "timeout_s": 5},
        {"name": "beat", "kind": "file", "path": "/var/lib/worker/heartbeat.json", "contains": "\"stack\": \"worker\"", "max_age_s": 60, "timeout_s": 5},
    ]);
    let (code, stdout, status) = launch(&img, checks, &path);
    assert_eq!(code, 0, "{stdout}\n{status}");
    assert_eq!(status["state"], "done");
    for name in ["page", "moved", "proxy", "listening", "true", "beat"] {
        let c = check_entry(&status, name);
        assert_eq!(c["status"], "ok", "{c}");
        assert_eq!(c["attempts"], 1, "{c}");
    }
    assert!(status["timing"]["checks_s"].as_f64().is_some(), "{status}");
    let console = std::fs::read_to_string(img.path("console.log")).unwrap();
    assert!(console.contains("checks=6/6"), "{console}");
    // the console's status line carries the checks, and parbake reads them back
    let line = console
        .lines()
        .find_map(|l| l.split_once("parbake-status ").map(|(_, j)| j))
        .unwrap();
    let boot: parbake::contract::status::BootStatus = serde_json::from_str(line).unwrap();
    assert_eq!(boot.checks.len(), 6);
    assert_eq!(boot.failed_at(), "");
}

#[test]
fn each_failing_check_kind_fails_the_launch_naming_the_check() {
    let img = baked_image();
    let port = http_server();
    let closed = closed_port();
    let path = systemctl_stand_in(&img.path(""), &[]);
    let stale = img.path("var/lib/stale");
    std::fs::create_dir_all(img.path("var/lib")).unwrap();
    std::fs::write(&stale, "ok\n").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let (no_answer, nothing) = (
        format!("no HTTP answer from 127.0.0.1:{closed}"),
        format!("nothing accepts connections on 127.0.0.1:{closed}"),
    );
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"kind": "http", "port": port, "path": "/missing", "status": 200}),
            "GET /missing answered 404, expected 200",
        ),
        (
            json!({"kind": "http", "port": port, "path": "/", "status": 200, "body": "stack=worker"}),
            "without \"stack=worker\" in the body",
        ),
        (
            json!({"kind": "http", "port": closed, "path": "/", "status": 200}),
            &no_answer,
        ),
        (
            json!({"kind": "unit", "unit": "nginx.service"}),
            "unit nginx.service is inactive, not active",
        ),
        (json!({"kind": "port", "port": closed}), &nothing),
        (
            json!({"kind": "command", "argv": ["/bin/sh", "-c", "echo the-output; exit 3"]}),
            "/bin/sh exited 3 (its output is in the launch log)",
        ),
        (
            json!({"kind": "command", "argv": ["/nonexistent/check"]}),
            "/nonexistent/check cannot run",
        ),
        (
            json!({"kind": "file", "path": "/var/lib/missing"}),
            "/var/lib/missing: No such file or directory",
        ),
        (
            json!({"kind": "file", "path": "/var/lib/stale", "max_age_s": 60}),
            "ago, more than 1m",
        ),
        (
            json!({"kind": "file", "path": "/var/lib/stale", "contains": "ready"}),
            "/var/lib/stale does not contain \"ready\"",
        ),
    ];
    for (i, (mut check, says)) in cases.into_iter().enumerate() {
        let name = format!("case {i}");
        check["name"] = json!(name);
        check["timeout_s"] = json!(1);
        let passing = json!({"name": "first", "kind": "port", "port": port, "timeout_s": 5});
        let (code, stdout, status) = launch(&img, json!([passing, check]), &path);
        assert_eq!(code, 1, "{stdout}\n{status}");
        assert_eq!(status["state"], "failed");
        let error = status["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("check {name} failed: ")) && error.contains(says),
            "{says}: {error}"
        );
        assert_eq!(check_entry(&status, "first")["status"], "ok");
        assert_eq!(check_entry(&status, &name)["status"], "failed");
        let console = std::fs::read_to_string(img.path("console.log")).unwrap();
        assert!(console.contains("checks=1/2"), "{console}");
        // a command's output stays in the root-only launch log, out of status.json
        assert!(!status.to_string().contains("the-output"), "{status}");
    }
    let log = std::fs::read_to_string(img.path("var/log/parbake/launch.log")).unwrap();
    assert!(log.contains("the-output"), "{log}");
}

#[test]
fn a_check_is_retried_until_it_passes_and_a_later_run_probes_again() {
    let img = baked_image();
    let path = systemctl_stand_in(&img.path(""), &[]);
    let ready = img.path("var/lib/ready");
    let check =
        json!([{"name": "ready", "kind": "file", "path": "/var/lib/ready", "timeout_s": 1}]);
    let (code, _, status) = launch(&img, check.clone(), &path);
    assert_eq!(code, 1);
    assert_eq!(
        status["error"],
        "check ready failed: /var/lib/ready: No such file or directory"
    );
    // the same spec run again (the next boot, or by hand) probes again and passes
    std::fs::write(&ready, "").unwrap();
    let spec = img.spec_with(
        &[],
        json!({}),
        json!({}),
        json!({"format": 2, "checks": check}),
    );
    let (code, stdout) = img.run_env(&spec, &[], &[("PATH", &path)]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(img.status()["state"], "done");
    // a check whose subject appears while it is probed passes on a later attempt
    std::fs::remove_file(&ready).unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(2500));
        std::fs::write(&ready, "").unwrap();
    });
    let slow =
        json!([{"name": "ready", "kind": "file", "path": "/var/lib/ready", "timeout_s": 20}]);
    let (code, stdout, status) = launch(&img, slow, &path);
    writer.join().unwrap();
    assert_eq!(code, 0, "{stdout}");
    let attempts = check_entry(&status, "ready")["attempts"].as_u64().unwrap();
    assert!(attempts >= 2, "{status}");
}

#[test]
fn checks_run_after_the_roles_and_a_failed_role_skips_them() {
    let writes = "- name: write the file the check reads\n  ansible.builtin.copy:\n    content: \"up\\n\"\n    dest: \"{{ out_dir }}/app.state\"\n    mode: \"0644\"\n";
    let img = Image::new(
        &[
            ("app", &[], writes),
            (
                "boom",
                &[],
                "- name: fail on purpose\n  ansible.builtin.fail:\n    msg: boom\n",
            ),
        ],
        &[],
    );
    let out = img.path("srv");
    std::fs::create_dir_all(&out).unwrap();
    let check = json!([{"name": "state", "kind": "file", "path": "/srv/app.state", "contains": "up", "timeout_s": 1}]);
    let spec = img.spec_with(
        &["app"],
        json!({"out_dir": out}),
        json!({}),
        json!({"format": 2, "facts": [], "checks": check}),
    );
    let (code, stdout) = img.run(&spec, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(check_entry(&img.status(), "state")["status"], "ok");
    // a failed role fails the launch before any check is probed
    let spec = img.spec_with(
        &["boom"],
        json!({}),
        json!({}),
        json!({"format": 2, "facts": [], "checks": check}),
    );
    let (code, _) = img.run(&spec, &[]);
    assert_eq!(code, 1);
    let status = img.status();
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("role boom failed"),
        "{status}"
    );
    assert!(status.get("checks").is_none(), "{status}");
}

#[test]
fn a_malformed_check_in_the_spec_is_refused_before_any_role_runs() {
    let img = baked_image();
    for (checks, says) in [
        (json!({"kind": "port"}), "field checks must be a JSON array"),
        (
            json!([{"kind": "ping", "name": "x", "timeout_s": 1}]),
            "each check needs a kind",
        ),
        (
            json!([{"kind": "port", "port": 22, "timeout_s": 1}]),
            "each check needs a unique name",
        ),
        (
            json!([{"kind": "port", "name": "a", "port": 22, "timeout_s": 1}, {"kind": "port", "name": "a", "port": 23, "timeout_s": 1}]),
            "each check needs a unique name",
        ),
        (
            json!([{"kind": "port", "name": "a", "port": 70000, "timeout_s": 1}]),
            "check \"a\" (port) has a missing or malformed field",
        ),
        (
            json!([{"kind": "http", "name": "a", "port": 80, "path": "x", "status": 200, "timeout_s": 1}]),
            "check \"a\" (http)",
        ),
        (
            json!([{"kind": "command", "name": "a", "argv": ["sh", "-c", "x"], "timeout_s": 1}]),
            "check \"a\" (command)",
        ),
        (
            json!([{"kind": "unit", "name": "a", "unit": "x; reboot", "timeout_s": 1}]),
            "check \"a\" (unit)",
        ),
        (
            json!([{"kind": "file", "name": "a", "path": "rel", "timeout_s": 1}]),
            "check \"a\" (file)",
        ),
        (
            json!([{"kind": "port", "name": "a", "port": 22, "timeout_s": 0}]),
            "check \"a\" (port)",
        ),
    ] {
        let spec = img.spec_with(
            &[],
            json!({}),
            json!({}),
            json!({"format": 2, "checks": checks}),
        );
        let (code, stdout) = img.run(&spec, &["--force"]);
        assert_eq!(code, 1, "{stdout}");
        let status = img.status();
        let error = status["error"].as_str().unwrap();
        assert!(error.contains(says), "{says}: {error}");
    }
}

/// The checks' launch, killed after `limit` seconds (a test of a hang fails, never hangs):
/// exit code, stdout, status.json and the seconds it took.
fn launch_within(img: &Image, checks: Value, path: &str, limit: u64) -> (i32, String, Value, f64) {
    let spec = img.spec_with(
        &[],
        json!({}),
        json!({}),
        json!({"format": 2, "checks": checks}),
    );
    let started = std::time::Instant::now();
    let (code, stdout) = crate::runner::run_runner_within(
        &img.path(""),
        &spec,
        &["--force"],
        &[("PATH", path)],
        Some(limit),
    );
    (code, stdout, img.status(), started.elapsed().as_secs_f64())
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn a_file_check_reads_only_a_bounded_regular_file_and_never_blocks() {
    // issue 21: `contains:` on a FIFO (or /proc/kmsg) hung the runner forever; /dev/zero never
    // ends. Every read is of a regular file, without blocking, at most 1 MiB.
    let img = baked_image();
    let path = systemctl_stand_in(&img.path(""), &[]);
    let lib = img.path("var/lib");
    std::fs::create_dir_all(&lib).unwrap();
    mkfifo(&lib.join("fifo"));
    std::os::unix::fs::symlink("/dev/zero", lib.join("zero")).unwrap();
    std::os::unix::fs::symlink("fifo", lib.join("to-fifo")).unwrap();
    std::fs::create_dir_all(img.path("proc")).unwrap();
    mkfifo(&img.path("proc/kmsg"));
    // the text past the first MiB is not looked at; the first MiB is
    let mut big = vec![b'x'; (1 << 20) + 10];
    big.extend_from_slice(b"late-marker");
    big[100..112].copy_from_slice(b"early-marker");
    std::fs::write(lib.join("big"), &big).unwrap();
    let cases = [
        ("/var/lib/fifo", "ready", "not a regular file (a FIFO)"),
        ("/var/lib/to-fifo", "ready", "not a regular file (a FIFO)"),
        (
            "/var/lib/zero",
            "ready",
            "resolves outside the instance's root",
        ),
        ("/proc/kmsg", "ready", "pseudo-filesystem (/proc)"),
        (
            "/var/lib/big",
            "late-marker",
            "does not contain \"late-marker\"",
        ),
    ];
    for (file, contains, says) in cases {
        let check = json!({"name": "c", "kind": "file", "path": file, "contains": contains, "timeout_s": 1});
        let (code, stdout, status, took) = launch_within(&img, json!([check]), &path, 30);
        assert_eq!(code, 1, "{file}: {stdout}");
        let error = check_entry(&status, "c")["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(error.contains(says), "{file}: {error}");
        assert!(took < 15.0, "{file} took {took:.1}s");
    }
    let check = json!({"name": "c", "kind": "file", "path": "/var/lib/big", "contains": "early-marker", "timeout_s": 1});
    let (code, stdout, _, _) = launch_within(&img, json!([check]), &path, 30);
    assert_eq!(code, 0, "{stdout}");
}

/// A server that answers 200 and then sends its body a byte at a time, forever, or (with
/// `first_line`) answers that line, which is not HTTP.
fn trickling_server(first_line: Option<&'static str>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf);
                if let Some(line) = first_line {
                    let _ = write!(conn, "{line}\r\n\r\n");
                    return;
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                );
                while conn.write_all(b"1\r\nx\r\n").is_ok() {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
        }
    });
    port
}

#[test]
fn an_http_check_has_one_deadline_and_never_shows_what_the_service_sent() {
    // issue 21: a streaming endpoint kept an http check reading forever; a service's first
    // bytes reached status.json and the console through the error
    let img = baked_image();
    let path = systemctl_stand_in(&img.path(""), &[]);
    let stream = trickling_server(None);
    let check = json!({"name": "s", "kind": "http", "port": stream, "path": "/", "status": 200,
                       "body": "never-sent", "timeout_s": 2});
    let (code, stdout, status, took) = launch_within(&img, json!([check]), &path, 60);
    assert_eq!(code, 1, "{stdout}");
    let error = check_entry(&status, "s")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("within"), "{error}");
    assert!(took < 20.0, "the streaming check took {took:.1}s");

    let liar = trickling_server(Some("SERVICE-SAID-THIS token=abc123"));
    let check = json!({"name": "l", "kind": "http", "port": liar, "path": "/", "status": 200, "timeout_s": 1});
    let (code, stdout, status, _) = launch_within(&img, json!([check]), &path, 60);
    assert_eq!(code, 1, "{stdout}");
    let error = check_entry(&status, "l")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("not an HTTP answer"), "{error}");
    let console = std::fs::read_to_string(img.path("console.log")).unwrap();
    for (what, text) in [
        ("status.json", status.to_string()),
        ("console", console),
        ("stdout", stdout),
    ] {
        assert!(
            !text.contains("SERVICE-SAID"),
            "{what} shows the service's bytes: {text}"
        );
    }
}
