//! The contract with the image (src/contract) over the golden documents in
//! tests/fixtures/contract/: parbake's types read and write them unchanged, render writes
//! documents of their shape, and the runner's own code (tests/fixtures/check_contract.py, and
//! real runs) reads them and writes them alike, so the two sides cannot drift.
//!
//! `PARBAKE_UPDATE_FIXTURES=1 cargo test --test parbake contract::` rewrites the golden
//! documents from the example project (spec and manifest) and from a real run of the runner
//! (status and events); review the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

use parbake::contract::events::{Event, RoleTiming, Timings};
use parbake::contract::manifest::{Manifest, MANIFEST_FORMAT};
use parbake::contract::spec::{LaunchSpec, SPEC_FORMAT, SPEC_FORMATS_READ};
use parbake::contract::status::{
    parse_status_line, Status, LOG_LINE_PREFIX, STATUS_FORMAT, STATUS_LINE_PREFIX,
};
use parbake::contract::{self, IMAGE_HOME, MANIFEST_PATH, STATUS_PATH};
use parbake::plan::{self, Plan, Target};
use serde_json::{json, Value};

use crate::runner::run_runner;
use crate::util::{repo, request, Fixture};

fn golden(name: &str) -> PathBuf {
    repo().join("tests/fixtures/contract").join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn updating() -> bool {
    std::env::var_os("PARBAKE_UPDATE_FIXTURES").is_some()
}

/// The example project, its web stack with one launch var of each kind, its AWS source tagging
/// instances with their status: every field of the spec is set.
fn golden_project() -> Fixture {
    let f = Fixture::example();
    let web = read(&repo().join("images/stacks/web.yml"));
    let with_vars = web.replace(
        "launch_vars: {}\n",
        "launch_vars:\n  webapp_workers: 4\n  webapp_server_name: !unsafe \"{{ shop }}.example.com\"\n  webapp_secret_key: !secret ssm:/parbake/web/django-secret-key\n",
    );
    assert_ne!(
        web, with_vars,
        "images/stacks/web.yml has no `launch_vars: {{}}` line"
    );
    f.write("images/stacks/web.yml", &with_vars);
    let image = read(&repo().join("images/debian12.yml"));
    let tagged = image.replace(
        "    copy_to_regions: []\n",
        "    copy_to_regions: []\n    status_tag: true\n",
    );
    assert_ne!(
        image, tagged,
        "images/debian12.yml has no `copy_to_regions: []` line"
    );
    f.write("images/debian12.yml", &tagged);
    f
}

/// web on AWS with nginx promoted: a stack layer over the base, so the manifest has a stack
/// and a lineage of two.
fn golden_plan(f: &Fixture) -> Plan {
    plan::plan(&f.load(), &request("web", &["nginx"], Target::Aws)).unwrap()
}

/// `value` with hashes (every run of 64 hex digits) and the version replaced, so that a role
/// edit, a runtime change or a release does not make the golden documents stale; their shape
/// and every other value must match.
fn unhashed(value: &Value) -> Value {
    match value {
        Value::String(s) => json!(without_hashes(s)),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if k == "parbake_version" {
                        json!("<version>")
                    } else {
                        unhashed(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(unhashed).collect()),
        v => v.clone(),
    }
}

fn without_hashes(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in s.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        out.push_str(if run.len() == 64 { "<hash>" } else { &run });
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// `value` without null members: the contract reads an absent field and a null one alike.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        v => v.clone(),
    }
}

/// The type of each value, keeping object keys; an array is the set of its elements' shapes.
fn shape(value: &Value) -> Value {
    match value {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(a) => {
            let mut shapes: Vec<Value> = a.iter().map(shape).collect();
            shapes.sort_by_key(|s| s.to_string());
            shapes.dedup();
            Value::Array(shapes)
        }
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

fn events_of(text: &str) -> Vec<Event> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Event::from_json_line(l).unwrap_or_else(|| panic!("not an event: {l}")))
        .collect()
}

fn fold(events: &[Event]) -> Vec<RoleTiming> {
    let mut t = Timings::default();
    for ev in events {
        t.push(ev);
    }
    t.roles
}

#[test]
fn golden_spec_and_manifest_are_what_render_writes() {
    let f = golden_project();
    let plan = golden_plan(&f);
    let spec = parbake::render::userdata::spec(&plan).to_json();
    let manifest = parbake::render::manifest::render(&plan, plan.top());
    for (name, rendered) in [("spec.json", &spec), ("manifest.json", &manifest)] {
        if updating() {
            std::fs::write(golden(name), rendered).unwrap();
        }
        let want: Value = serde_json::from_str(&read(&golden(name))).unwrap();
        let got: Value = serde_json::from_str(rendered).unwrap();
        assert_eq!(
            unhashed(&got),
            unhashed(&want),
            "render no longer writes the golden {name}: if the format changed on purpose, \
             bump its format number, teach the runner, and rerun with PARBAKE_UPDATE_FIXTURES=1"
        );
    }
    // the user-data carries the same spec (base64 in the cloud-config)
    let ud = parbake::render::userdata::render(&plan).unwrap();
    assert_eq!(ud.spec_json, spec);
}

#[test]
fn golden_documents_round_trip_through_the_contract_types() {
    // spec and manifest: parbake writes them, byte for byte what its types serialize
    let text = read(&golden("spec.json"));
    let spec: LaunchSpec = serde_json::from_str(&text).unwrap();
    assert_eq!(spec.to_json(), text);
    assert_eq!(spec.format, SPEC_FORMAT);
    assert!(spec.status_tag && !spec.literal.is_empty() && !spec.secrets.is_empty());
    let text = read(&golden("manifest.json"));
    let manifest: Manifest = serde_json::from_str(&text).unwrap();
    assert_eq!(manifest.to_json(), text);
    assert_eq!(manifest.format, MANIFEST_FORMAT);
    assert_eq!(manifest.lineage.len(), 2);

    // status and events: the runner and the callback write them; every field they write is
    // one the contract types know (a field the types dropped would be missing here)
    let text = read(&golden("status.json"));
    let want: Value = serde_json::from_str(&text).unwrap();
    let status: Status = serde_json::from_str(&text).unwrap();
    assert_eq!(status.format, STATUS_FORMAT);
    assert_eq!(
        without_nulls(&serde_json::to_value(&status).unwrap()),
        without_nulls(&want)
    );
    let text = read(&golden("events.jsonl"));
    for line in text.lines() {
        let want: Value = serde_json::from_str(line).unwrap();
        let ev = Event::from_json_line(line).unwrap();
        assert_eq!(
            without_nulls(&serde_json::to_value(&ev).unwrap()),
            without_nulls(&want)
        );
    }
    // and what parbake reads of a status, from the console line the runner prints
    let line = format!("[  61.2] cloud-init[512]: {STATUS_LINE_PREFIX}{}", want);
    let read = parse_status_line(&line).unwrap();
    assert_eq!(read.state, status.state);
    assert_eq!(read.roles.len(), status.roles.len());
}

/// Runs the runner's side over documents: check_contract.py.
fn runner_side(spec: &Path, manifest: &Path, events: &[PathBuf]) -> Value {
    let out = Command::new("python3")
        .arg(repo().join("tests/fixtures/check_contract.py"))
        .arg(repo().join("src/contract/assets"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(spec)
        .arg(manifest)
        .args(events)
        .env_remove("PARBAKE_ROOT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn the_runner_reads_the_golden_documents_and_shares_parbakes_formats_and_paths() {
    let side = runner_side(&golden("spec.json"), &golden("manifest.json"), &[]);
    assert_eq!(side["formats"]["status"], STATUS_FORMAT);
    assert_eq!(side["formats"]["manifest"], MANIFEST_FORMAT);
    assert_eq!(side["formats"]["spec"], json!(SPEC_FORMATS_READ));
    assert!(SPEC_FORMATS_READ.contains(&SPEC_FORMAT));
    assert_eq!(side["paths"]["home"], IMAGE_HOME);
    assert_eq!(side["paths"]["manifest"], MANIFEST_PATH);
    assert_eq!(side["paths"]["status"], STATUS_PATH);
    // the console prefixes, which the runner and the callback write as literals; the log
    // tail is no longer printed (issue 21: no role output on the console)
    let runtime = runtime_python();
    assert!(!runtime.contains(&format!("\"{LOG_LINE_PREFIX}\"")));
    for literal in [STATUS_LINE_PREFIX, parbake::contract::events::PREFIX] {
        assert!(
            runtime.contains(&format!("\"{literal}\"")),
            "the runtime no longer writes {literal:?}"
        );
    }
}

/// Event lines for the edge cases, `(event, role, task, msg, t)`.
fn events_file(
    dir: &Path,
    name: &str,
    events: &[(&str, Option<&str>, &str, &str, f64)],
) -> PathBuf {
    let text: String = events
        .iter()
        .map(|(event, role, task, msg, t)| {
            let mut ev = json!({"event": event, "role": role, "task": task, "t": t});
            if matches!(*event, "failed" | "ignored") {
                ev["msg"] = json!(msg);
            }
            if *event == "play" {
                ev = json!({"event": "play", "name": task, "t": t});
            }
            ev.to_string() + "\n"
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_runner_and_parbake_fold_events_alike() {
    let dir = tempfile::tempdir().unwrap();
    let e = 1_764_650_000.0; // epoch seconds, as the callback writes them (rounded to ms)
    let cases = vec![
        golden("events.jsonl"),
        // a result with no task start before it counts, with no duration
        events_file(
            dir.path(),
            "unstarted.jsonl",
            &[
                ("play", None, "web", "", e),
                ("ok", Some("nginx"), "conf", "", e + 1.0),
                ("task", Some("nginx"), "site", "", e + 2.0),
                ("changed", Some("nginx"), "site", "", e + 2.5),
            ],
        ),
        // the first failure of a role is kept; an ignored one is a task, not a failure
        events_file(
            dir.path(),
            "failures.jsonl",
            &[
                ("task", Some("webapp"), "probe", "", e),
                ("ignored", Some("webapp"), "probe", "no such unit", e + 0.25),
                ("task", Some("webapp"), "pip", "", e + 0.25),
                (
                    "failed",
                    Some("webapp"),
                    "pip",
                    "No matching distribution",
                    e + 7.125,
                ),
                ("task", Some("webapp"), "migrate", "", e + 7.2),
                ("failed", Some("webapp"), "migrate", "later", e + 7.3),
            ],
        ),
        // a role that runs again later (its handlers) adds up; tasks outside roles do not
        // count, nor does a result whose task started in no role
        events_file(
            dir.path(),
            "interleaved.jsonl",
            &[
                ("task", None, "Gathering Facts", "", e),
                ("ok", None, "Gathering Facts", "", e + 3.001),
                ("task", Some("nginx"), "conf", "", e + 3.002),
                ("changed", Some("nginx"), "conf", "", e + 3.5),
                ("task", Some("identity"), "hostname", "", e + 3.5),
                ("changed", Some("identity"), "hostname", "", e + 4.123),
                ("task", Some("nginx"), "reload nginx", "", e + 9.999),
                ("ok", Some("nginx"), "reload nginx", "", e + 10.0),
                ("skipped", Some("identity"), "preserve", "", e + 10.0),
            ],
        ),
        // many short tasks at epoch scale: each sum rounded to the millisecond on both sides
        events_file(
            dir.path(),
            "many.jsonl",
            &(0..300)
                .flat_map(|i| {
                    let t = e + f64::from(i) * 0.337;
                    [
                        (
                            "task",
                            Some("python"),
                            "t",
                            "",
                            (t * 1000.0).round() / 1000.0,
                        ),
                        (
                            "ok",
                            Some("python"),
                            "t",
                            "",
                            ((t + 0.123) * 1000.0).round() / 1000.0,
                        ),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    ];
    let side = runner_side(&golden("spec.json"), &golden("manifest.json"), &cases);
    for (path, runner) in cases.iter().zip(side["folds"].as_array().unwrap()) {
        let ours: Vec<Value> = fold(&events_of(&read(path)))
            .iter()
            .map(|r| json!({"role": r.role, "tasks": r.tasks, "duration_s": r.duration_s, "failed": r.failed}))
            .collect();
        assert_eq!(&json!(ours), runner, "{}", path.display());
    }
    let golden_fold = side["folds"][0].as_array().unwrap();
    assert!(golden_fold.len() >= 3, "{golden_fold:?}");
}

/// A fake image root from the golden manifest: every installed role, with the example's
/// real meta dependencies and stand-in tasks (one changes, one is skipped, one fails and is
/// ignored), the callback, and the manifest itself.
fn golden_image(root: &Path) {
    let manifest: Manifest = serde_json::from_str(&read(&golden("manifest.json"))).unwrap();
    let home = root.join(IMAGE_HOME.trim_start_matches('/'));
    for role in manifest.installed.keys() {
        let dir = home.join("roles").join(role);
        std::fs::create_dir_all(dir.join("tasks")).unwrap();
        std::fs::create_dir_all(dir.join("meta")).unwrap();
        std::fs::copy(
            repo().join("roles").join(role).join("meta/main.yml"),
            dir.join("meta/main.yml"),
        )
        .unwrap();
        std::fs::write(
            dir.join("tasks/main.yml"),
            format!(
                "- name: Configure {role}\n  ansible.builtin.command: \"true\"\n\
                 - name: Check {role}\n  ansible.builtin.debug:\n    msg: \"{{{{ webapp_workers | default(1) }}}}\"\n\
                 - name: Skip on this host\n  ansible.builtin.debug:\n    msg: never\n  when: false\n\
                 - name: Probe an optional service\n  ansible.builtin.command: \"false\"\n  ignore_errors: true\n"
            ),
        )
        .unwrap();
    }
    contract::install_runtime(&home).unwrap();
    std::fs::write(home.join("manifest.json"), read(&golden("manifest.json"))).unwrap();
}

/// The golden status as a run writes it, less what depends on where it ran.
fn image_paths(status: &mut Value, root: &Path) {
    let log = status["log"].as_str().unwrap().to_string();
    status["log"] = json!(log.replace(root.to_str().unwrap(), ""));
}

#[test]
fn a_launch_from_the_golden_spec_writes_status_and_events_of_the_golden_shape() {
    let root = tempfile::Builder::new()
        .prefix("parbake-contract-")
        .tempdir()
        .unwrap();
    golden_image(root.path());
    // the golden spec, its secret a file here (not SSM) and no EC2 tag (no instance here)
    let mut spec: Value = serde_json::from_str(&read(&golden("spec.json"))).unwrap();
    let secret = root.path().join("django-secret-key");
    std::fs::write(&secret, "s3cr3t-key\n").unwrap();
    for (_, r) in spec["secrets"].as_object_mut().unwrap() {
        *r = json!(format!("file:{}", secret.display()));
    }
    spec["status_tag"] = json!(false);
    // its checks probe a real HTTP server on loopback and a stand-in systemctl (no systemd here)
    let port = crate::runner_checks::http_server();
    for check in spec["checks"].as_array_mut().unwrap() {
        if check["kind"] == "http" {
            check["port"] = json!(port);
        }
    }
    let path = crate::runner_checks::systemctl_stand_in(root.path(), &["nginx.service"]);
    let spec_path = root.path().join("launch.json");
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();

    let (code, stdout) = run_runner(root.path(), &spec_path, &[], &[("PATH", &path)]);
    assert_eq!(code, 0, "{stdout}");
    let state = root.path().join("var/lib/parbake");
    let mut status: Value = serde_json::from_str(&read(&state.join("status.json"))).unwrap();
    image_paths(&mut status, root.path());
    let events = read(&state.join("launch-events.jsonl"));
    if updating() {
        std::fs::write(
            golden("status.json"),
            serde_json::to_string_pretty(&status).unwrap() + "\n",
        )
        .unwrap();
        std::fs::write(golden("events.jsonl"), &events).unwrap();
    }
    let want: Value = serde_json::from_str(&read(&golden("status.json"))).unwrap();
    assert_eq!(shape(&status), shape(&want), "{status:#}");
    let typed: Status = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(
        without_nulls(&serde_json::to_value(&typed).unwrap()),
        without_nulls(&status)
    );
    let want_events: Vec<Value> = read(&golden("events.jsonl"))
        .lines()
        .map(|l| shape(&serde_json::from_str(l).unwrap()))
        .collect();
    for line in events.lines() {
        let ev: Value = serde_json::from_str(line).unwrap();
        assert!(
            want_events.contains(&shape(&ev)),
            "an event of a new shape: {line}"
        );
    }
    // the runner's per-role durations are its fold of these events, which parbake's matches
    let ours = fold(&events_of(&events));
    for role in &typed.roles {
        if let Some(t) = ours.iter().find(|t| t.role == role.name) {
            assert_eq!(role.duration_s, Some(t.duration_s), "{}", role.name);
            assert_eq!(role.tasks, Some(t.tasks), "{}", role.name);
        }
    }
    // the console line carries the same status
    let console = read(&root.path().join("console.log"));
    let line = console
        .lines()
        .find(|l| l.contains(STATUS_LINE_PREFIX))
        .unwrap();
    assert_eq!(parse_status_line(line).unwrap().state, "done");
}

/// The bootstrap from the rendered user-data, with its image paths moved under `root`.
fn bootstrap_in(root: &Path) -> PathBuf {
    let f = golden_project();
    let ud = parbake::render::userdata::render(&golden_plan(&f)).unwrap();
    let config: Value = serde_yaml::from_str(&ud.text).unwrap();
    let boot = config["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["path"] == "/var/lib/parbake/boot.sh")
        .unwrap();
    use base64::Engine;
    let script = base64::engine::general_purpose::STANDARD
        .decode(boot["content"].as_str().unwrap())
        .unwrap();
    let r = root.display().to_string();
    let script = String::from_utf8(script)
        .unwrap()
        .replace("/var/lib/parbake", &format!("{r}/var/lib/parbake"))
        .replace("/opt/parbake", &format!("{r}/opt/parbake"))
        .replace("/dev/console", &format!("{r}/console.log"))
        .replace("/etc/systemd/system", &format!("{r}/etc/systemd/system"));
    let path = root.join("boot.sh");
    std::fs::write(&path, script).unwrap();
    path
}

#[test]
fn the_bootstrap_writes_the_status_the_runner_writes_when_the_image_has_no_runner() {
    // the bootstrap (no runner on the image) and the runner's early failure (here: no spec)
    let boot_root = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg(bootstrap_in(boot_root.path()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let boot: Value =
        serde_json::from_str(&read(&boot_root.path().join("var/lib/parbake/status.json"))).unwrap();
    assert!(
        read(&boot_root.path().join("console.log")).contains("parbake: launch failed error="),
        "the bootstrap says so on the console"
    );

    let runner_root = tempfile::tempdir().unwrap();
    let (code, stdout) = run_runner(
        runner_root.path(),
        &runner_root.path().join("none.json"),
        &[],
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    let early: Value = serde_json::from_str(&read(
        &runner_root.path().join("var/lib/parbake/status.json"),
    ))
    .unwrap();

    // both are the contract's status, of one shape, failed with an error and no roles
    for doc in [&boot, &early] {
        let status: Status = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(without_nulls(&serde_json::to_value(&status).unwrap()), *doc);
        assert_eq!(status.format, STATUS_FORMAT);
        assert_eq!(
            (status.phase.as_str(), status.state.as_str()),
            ("launch", "failed")
        );
        assert!(status.error.is_some() && status.roles.is_empty());
    }
    assert_eq!(shape(&boot), shape(&early));
    // every field they write is one the golden status has, of the same type
    let full = shape(&serde_json::from_str(&read(&golden("status.json"))).unwrap());
    for (k, v) in shape(&boot).as_object().unwrap() {
        // (a null there is a field the golden launch left empty, such as its error)
        let golden = full
            .get(k)
            .unwrap_or_else(|| panic!("field {k} is not in the golden status"));
        if k != "roles" && *golden != json!("null") {
            assert_eq!(v, golden, "field {k}");
        }
    }
}

#[test]
fn the_bootstrap_does_nothing_where_the_unit_runs_the_launch_and_hands_over_on_older_images() {
    // an image with parbake-launch.service: the unit runs the launch; the bootstrap leaves it
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(units.join("parbake-launch.service"), contract::LAUNCH_UNIT).unwrap();
    let out = Command::new("sh")
        .arg(bootstrap_in(root.path()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("runs in parbake-launch.service"));
    assert!(!root.path().join("var/lib/parbake/status.json").exists());

    // an image baked before the unit: the bootstrap hands over to its runner, as it did
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("opt/parbake/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("parbake-roles"), "#!/bin/sh\necho \"ran: $*\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        bin.join("parbake-roles"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = Command::new("sh")
        .arg(bootstrap_in(root.path()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ran: launch ") && stdout.contains("/var/lib/parbake/launch.json"),
        "{stdout}"
    );
}

/// The runner's verdict (`FIELD_RULES`) on each (field, value), all in one Python process.
pub fn runner_field_verdicts(pairs: &[(String, String)]) -> Vec<bool> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg(repo().join("tests/fixtures/check_names.py"))
        .arg(repo().join("src/contract/assets"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(pairs).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "check_names.py failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn both_sides_hold_each_check_field_to_one_rule_on_the_golden_examples() {
    // names.json: per field, values both sides accept and values both refuse; a name parbake
    // accepts and the runner refused (`db's up`) failed every launch at boot
    let names: Value = serde_json::from_str(&read(&golden("names.json"))).unwrap();
    let mut pairs = Vec::new();
    let mut want = Vec::new();
    for (field, sets) in names.as_object().unwrap() {
        if field.starts_with('_') {
            continue;
        }
        for (set, ok) in [("accepted", true), ("refused", false)] {
            for v in sets[set].as_array().unwrap() {
                pairs.push((field.clone(), v.as_str().unwrap().to_string()));
                want.push(ok);
            }
        }
    }
    let runner = runner_field_verdicts(&pairs);
    for (((field, value), ok), runner_ok) in pairs.iter().zip(&want).zip(&runner) {
        let rule =
            parbake::config::health_checks::field_rule(field).expect("a field both sides know");
        assert_eq!(rule(value), *ok, "parbake on {field} {value:?}");
        assert_eq!(runner_ok, ok, "the runner on {field} {value:?}");
    }
}

/// Every Python file of the runtime as one text: the runner's entry point, the callback and
/// the runner's package.
fn runtime_python() -> String {
    let mut all = vec![contract::RUNNER, contract::CALLBACK];
    all.extend(contract::RUNNER_PACKAGE.iter().map(|(_, text)| *text));
    all.concat()
}

#[test]
fn the_runner_package_embeds_every_file_of_its_directory() {
    // a module added to assets/parbake_runner/ and not to RUNNER_PACKAGE would be missing on
    // every image (and from the runtime digest): the list is the directory, file for file
    let dir = repo()
        .join("src/contract/assets")
        .join(contract::RUNNER_PACKAGE_NAME);
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "__pycache__")
        .map(|e| {
            assert!(
                e.file_type().unwrap().is_file(),
                "{:?}: a flat package",
                e.path()
            );
            e.file_name().into_string().unwrap()
        })
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = contract::RUNNER_PACKAGE
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    embedded.sort();
    assert_eq!(embedded, on_disk);
    for (name, text) in contract::RUNNER_PACKAGE {
        assert!(name.ends_with(".py"), "{name}");
        assert_eq!(*text, read(&dir.join(name)), "{name}");
    }
}

#[test]
fn there_is_one_redact_which_the_runner_and_the_callback_share() {
    // once two verbatim copies (the runner's and the callback's), kept equal by a test; now
    // one function in the package's secret module, which the callback reaches through events
    let defs: Vec<&str> = contract::RUNNER_PACKAGE
        .iter()
        .filter(|(_, text)| text.contains("def redact("))
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(defs, ["secret.py"]);
    assert_eq!(runtime_python().matches("def redact(").count(), 1);
    assert!(contract::CALLBACK.contains("from parbake_runner import events"));
    let events = contract::RUNNER_PACKAGE
        .iter()
        .find(|(name, _)| *name == "events.py")
        .unwrap()
        .1;
    assert!(events.contains("from .secret import redact"));
}

#[test]
fn no_runtime_file_uses_the_deprecated_source_loader() {
    // importable names: the harnesses add the package's parent to sys.path
    let mut texts = vec![runtime_python()];
    for entry in std::fs::read_dir(repo().join("tests/fixtures")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "py") {
            texts.push(read(&path));
        }
    }
    for text in texts {
        assert!(
            !text.contains("load_module"),
            "{}",
            &text[..80.min(text.len())]
        );
    }
}

/// The payload of the web stack's base layer on disk, as Packer uploads it.
fn payload_on_disk(dir: &Path) {
    let f = Fixture::example();
    let project = f.load();
    let plan = plan::plan(&project, &request("web", &[], Target::Qemu)).unwrap();
    let files = parbake::render::render_all(&project, &plan, &Default::default()).unwrap();
    let layer0 = format!("{}/", parbake::render::layer_dir(&plan.layers[0]));
    for file in &files {
        let Some(rel) = file.path.strip_prefix(&layer0) else {
            continue;
        };
        if rel.starts_with("payload/runtime/") || rel.starts_with("payload/lib/") {
            let to = dir.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(&to, &file.contents).unwrap();
        }
    }
}

#[test]
fn in_a_bake_payload_the_runner_and_the_callback_find_the_package() {
    // the payload's layout: runtime/ (the runner, the callback: Ansible's callback_plugins at
    // bake) and lib/parbake_runner/, outside runtime/ so that Ansible loads no module of the
    // package as a plugin of its own
    let dir = tempfile::tempdir().unwrap();
    payload_on_disk(dir.path());
    let payload = dir.path().join("payload");
    assert!(payload.join("lib/parbake_runner/secret.py").is_file());
    let roles = dir.path().join("roles");
    std::fs::create_dir_all(roles.join("base/tasks")).unwrap();
    std::fs::write(roles.join("base/tasks/main.yml"), "[]\n").unwrap();
    std::fs::write(dir.path().join("shims.json"), r#"["base"]"#).unwrap();
    let out = Command::new("python3")
        .arg(payload.join("runtime/parbake-roles"))
        .args(["shim", "--roles-dir"])
        .arg(&roles)
        .arg("--out")
        .arg(dir.path().join("shim"))
        .arg("--list")
        .arg(dir.path().join("shims.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join("shim/base/tasks/main.yml").is_file());
    // the bake's Ansible, with the callback where bake.yml's ansible.cfg points
    let playbook = dir.path().join("play.yml");
    std::fs::write(
        &playbook,
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n    - name: hello\n      ansible.builtin.debug:\n        msg: hi\n",
    )
    .unwrap();
    let events = dir.path().join("events.jsonl");
    let out = Command::new(repo().join(".venv/bin/ansible-playbook"))
        .args(["-i", "localhost,"])
        .arg(&playbook)
        .env("ANSIBLE_CALLBACK_PLUGINS", payload.join("runtime"))
        .env("ANSIBLE_CALLBACKS_ENABLED", "parbake_events")
        .env("ANSIBLE_HOME", dir.path().join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.path().join("tmp"))
        .env("PARBAKE_EVENTS", &events)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("Skipping plugin"), "{all}");
    let text = read(&events);
    assert!(text.contains(r#""task": "hello""#), "{text}");
    // nothing compiled into the payload: the image's tree stays as installed
    assert!(!payload.join("lib/parbake_runner/__pycache__").exists());
}
