//! `bake --all`, fast tier: the real binary, real planning, store, locks and tokio scheduling,
//! with a stand-in Packer (tests/fixtures/fake-packer.py) that logs when each layer's build
//! starts and ends. Real bakes of the same paths run in the e2e tier.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use parbake::bake::all::{AllReport, Outcome};

use crate::util::{repo, Fixture};

/// Two images (alpha, beta) on fake local base disks, beta installing only its own roles; stacks promoting one role each, and one
/// that promotes nothing (it shares alpha's base layer).
fn project() -> Fixture {
    let f = Fixture::bare();
    for r in ["base", "r1", "r2", "r3", "late"] {
        f.role(r, &[]);
    }
    for img in ["alpha", "beta"] {
        for file in ["disk.qcow2", "vmlinuz", "initrd.img"] {
            f.write(&format!("base/{img}/{file}"), "fake");
        }
        f.write(
            &format!("images/{img}.yml"),
            &format!("sources:\n  qemu:\n    disk_image: base/{img}/disk.qcow2\n    ssh_user: debian\nbasic: [base]\nlaunch_only: [late]\n{}",
                // alpha installs every role (the default); beta only what its stack needs
                if img == "beta" { "installed: [base, r3, late]\n" } else { "" }),
        );
    }
    for (stack, img, roles) in [
        ("a1", "alpha", "r1"),
        ("a2", "alpha", "r2"),
        ("b1", "beta", "r3"),
    ] {
        f.write(
            &format!("images/stacks/{stack}.yml"),
            &format!("image: {img}\nroles: [{roles}, late]\npromote: [{roles}]\n"),
        );
    }
    f.write(
        "images/stacks/plain.yml",
        "image: alpha\nroles: [r1, late]\n",
    );
    f
}

struct Tier {
    f: Fixture,
    store: tempfile::TempDir,
    log: PathBuf,
}

impl Tier {
    fn new() -> Tier {
        let store = tempfile::tempdir().unwrap();
        let log = store.path().join("fake-packer.log");
        Tier {
            f: project(),
            store,
            log,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_parbake"));
        c.args(args)
            .current_dir(self.f.root())
            .env(
                "PARBAKE_PACKER",
                repo().join("tests/fixtures/fake-packer.py"),
            )
            .env("PARBAKE_ACCEL", "tcg")
            .env("PARBAKE_STORE", self.store.path())
            .env("FAKE_PACKER_LOG", &self.log)
            .env("FAKE_PACKER_SECONDS", "0.6")
            .env_remove("PARBAKE_PROJECT")
            .env_remove("FAKE_PACKER_FAIL");
        c
    }

    /// `bake --all --json` plus extra args: (exit code, report, stderr).
    fn bake_all(&self, extra: &[&str], env: &[(&str, &str)]) -> (i32, AllReport, String) {
        let mut args = vec!["bake", "--all", "--json"];
        args.extend_from_slice(extra);
        let mut c = self.cmd(&args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report: AllReport = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bad JSON ({e}): {}\n{stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (out.status.code().unwrap_or(-1), report, stderr)
    }

    /// The fake Packer's log: (event, layer, time).
    fn events(&self) -> Vec<(String, String, f64)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let p: Vec<&str> = l.split(' ').collect();
                (p[0].to_string(), p[1].to_string(), p[2].parse().unwrap())
            })
            .collect()
    }

    fn clear_log(&self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

fn outcomes(r: &AllReport) -> BTreeMap<String, Outcome> {
    r.layers
        .iter()
        .map(|l| (l.name.clone(), l.outcome))
        .collect()
}

fn why<'a>(r: &'a AllReport, name: &str) -> &'a [String] {
    &r.layers.iter().find(|l| l.name == name).unwrap().why
}

/// Most builds running at the same moment, from start/end (or fail) times.
fn max_overlap(events: &[(String, String, f64)]) -> usize {
    let mut points: Vec<(f64, i32)> = events
        .iter()
        .map(|(e, _, t)| (*t, if e == "start" { 1 } else { -1 }))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut cur, mut max) = (0, 0);
    for (_, d) in points {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

fn time_of(events: &[(String, String, f64)], what: &str, layer: &str) -> f64 {
    events
        .iter()
        .find(|(e, l, _)| e == what && l == layer)
        .unwrap_or_else(|| panic!("no `{what} {layer}` in {events:?}"))
        .2
}

#[test]
fn bakes_parents_first_within_the_job_bound_then_caches_everything() {
    let t = Tier::new();
    let (code, r, err) = t.bake_all(&["-j", "2"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r.layers.len(), 5, "two bases and three stack layers: {r:?}");
    assert_eq!(r.counts.baked, 5);
    assert!(r.ok());
    let plain = r.layers.iter().find(|l| l.name == "alpha").unwrap();
    assert_eq!(
        plain.stacks,
        ["a1", "a2", "plain"],
        "one base layer shared by three stacks"
    );
    assert_eq!(why(&r, "alpha"), ["first bake of layer alpha"]);
    let ev = t.events();
    for (child, parent) in [
        ("alpha-a1", "alpha"),
        ("alpha-a2", "alpha"),
        ("beta-b1", "beta"),
    ] {
        assert!(
            time_of(&ev, "start", child) >= time_of(&ev, "end", parent),
            "{child} started before {parent} finished: {ev:?}"
        );
    }
    assert_eq!(
        max_overlap(&ev),
        2,
        "-j 2 runs two bakes at once, never more: {ev:?}"
    );
    for l in &r.layers {
        let id = l.image_id.as_deref().unwrap();
        assert!(Path::new(id).is_file(), "{id}");
        // a base layer's disk is whole; a stack layer's is an overlay of its parent's, named
        // relative to it
        let backing = parbake::targets::qemu::disk::backing_file(Path::new(id)).unwrap();
        let parent = r
            .layers
            .iter()
            .find(|p| p.index == 1 && p.image == l.image)
            .unwrap();
        let expected = (l.index == 2).then(|| format!("../{}/disk.qcow2", parent.hash));
        assert_eq!(backing, expected, "{}", l.name);
    }

    // nothing changed: no Packer at all (not even `packer version`), everything cached
    t.clear_log();
    let (code, again, err) = t.bake_all(&[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(again.counts.cached, 5, "{again:?}");
    assert!(t.events().is_empty(), "Packer ran: {:?}", t.events());
    assert!(!t.log.exists());

    // the text summary names every layer and its outcome
    let out = t.cmd(&["bake", "--all"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("0 baked, 0 refreshed, 5 cached, 0 failed, 0 skipped"),
        "{text}"
    );
    assert_eq!(text.matches("cached ").count(), 5, "{text}");
}

#[test]
fn one_job_bakes_one_layer_at_a_time() {
    let t = Tier::new();
    let (code, r, err) = t.bake_all(&["-j", "1"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r.counts.baked, 5);
    assert_eq!(max_overlap(&t.events()), 1, "{:?}", t.events());
}

/// The layers the fake Packer built, by kind: (baked, refreshed), sorted.
fn builds(t: &Tier) -> (Vec<String>, Vec<String>) {
    let ev = t.events();
    let mut refreshed: Vec<String> = ev
        .iter()
        .filter(|e| e.0 == "refresh")
        .map(|e| e.1.clone())
        .collect();
    let mut baked: Vec<String> = ev
        .iter()
        .filter(|e| e.0 == "start" && !refreshed.contains(&e.1))
        .map(|e| e.1.clone())
        .collect();
    baked.sort();
    refreshed.sort();
    (baked, refreshed)
}

fn record(t: &Tier, r: &AllReport, name: &str) -> serde_json::Value {
    let hash = &r.layers.iter().find(|l| l.name == name).unwrap().hash;
    let path = t.store.path().join("images").join(hash).join("record.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn edit(t: &Tier, role: &str) {
    t.f.write(
        &format!("roles/{role}/tasks/main.yml"),
        &format!("- name: {role} changed\n  ansible.builtin.debug:\n    msg: changed\n"),
    );
    t.clear_log();
}

#[test]
fn a_role_edit_rebakes_only_the_layers_that_run_it_and_refreshes_the_payload_of_the_rest() {
    let t = Tier::new();
    let (code, first, err) = t.bake_all(&[], &[]);
    assert_eq!(code, 0, "{err}");

    // r1 runs only in a1's layer: a1 is rebaked; alpha and a2 carry r1's files only, so
    // their run is cached and their payload is refreshed; beta does not install r1
    edit(&t, "r1");
    let (code, r, err) = t.bake_all(&[], &[]);
    assert_eq!(code, 0, "{err}");
    let o = outcomes(&r);
    assert_eq!(o["alpha"], Outcome::Refreshed);
    assert_eq!(o["alpha-a1"], Outcome::Baked);
    assert_eq!(o["alpha-a2"], Outcome::Refreshed);
    assert_eq!(o["beta"], Outcome::Cached);
    assert_eq!(o["beta-b1"], Outcome::Cached);
    assert_eq!(
        (r.counts.baked, r.counts.refreshed, r.counts.cached),
        (1, 2, 2)
    );
    assert_eq!(why(&r, "alpha"), ["payload changed: role r1"]);
    assert_eq!(why(&r, "alpha-a2"), ["payload changed: role r1"]);
    assert_eq!(
        why(&r, "alpha-a1"),
        ["role r1 changed"],
        "no cascade from a refresh"
    );
    assert_eq!(
        builds(&t),
        (
            vec!["alpha-a1".to_string()],
            vec!["alpha".to_string(), "alpha-a2".to_string()]
        )
    );
    // a refresh is an overlay on the run layer it refreshes; the rebaked stack layer is built
    // on alpha's run layer (the first bake), not on alpha's refresh
    let alpha_run = &first
        .layers
        .iter()
        .find(|l| l.name == "alpha")
        .unwrap()
        .hash;
    let refresh = record(&t, &r, "alpha");
    assert_eq!(refresh["refresh_of"], alpha_run.as_str());
    assert_eq!(refresh["parent"], format!("layer:{alpha_run}"));
    assert_eq!(refresh["runs"], serde_json::json!(["base"]));
    let a1 = record(&t, &r, "alpha-a1");
    assert_eq!(a1["parent"], format!("layer:{alpha_run}"));
    assert!(a1.get("refresh_of").is_none());
    assert_eq!(
        a1["run_hash"].as_str().unwrap().len(),
        64,
        "the record keeps the run hash"
    );
    let backing = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(
            t.store
                .path()
                .join("images")
                .join(&r.layers.iter().find(|l| l.name == "alpha").unwrap().hash)
                .join("disk.qcow2"),
        )
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&backing.stdout).unwrap();
    assert_eq!(
        info["backing-filename"],
        format!("../{alpha_run}/disk.qcow2")
    );

    // a launch-only role (installed everywhere, run by no layer): no run layer is rebaked
    edit(&t, "late");
    let (code, r, err) = t.bake_all(&[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (r.counts.baked, r.counts.refreshed, r.counts.cached),
        (0, 4, 1),
        "{r:?}"
    );
    assert_eq!(builds(&t).0, Vec::<String>::new());
    assert_eq!(why(&r, "beta-b1"), ["payload changed: role late"]);
    // no stack launches beta's base layer (b1 promotes): its run layer is enough, and b1's
    // refresh builds on b1's own run layer
    let beta = r.layers.iter().find(|l| l.name == "beta").unwrap();
    assert_eq!(beta.outcome, Outcome::Cached);
    assert!(
        beta.why[0]
            .ends_with("cached; no stack launches this layer, so its payload is not refreshed"),
        "{:?}",
        beta.why
    );
    // a refresh of a refreshed layer starts from the run layer again
    assert_eq!(record(&t, &r, "alpha")["refresh_of"], alpha_run.as_str());

    // unchanged: everything cached, no Packer
    t.clear_log();
    let (code, r, _) = t.bake_all(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!(r.counts.cached, 5);
    assert!(t.events().is_empty());

    // a basic role runs in the base layer: its run hash changes and cascades to the stacks
    edit(&t, "base");
    let (code, r, err) = t.bake_all(&[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!((r.counts.baked, r.counts.refreshed), (5, 0), "{r:?}");
    assert_eq!(
        why(&r, "alpha-a2")[0],
        "cascade: parent layer alpha is rebaked"
    );

    // a stack's bake vars are only in its own layer's run hash
    t.f.write(
        "images/stacks/a2.yml",
        "image: alpha\nroles: [r2, late]\npromote: [r2]\nvars:\n  tuning: 2\n",
    );
    let (code, r, err) = t.bake_all(&[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!((r.counts.baked, r.counts.refreshed), (1, 0), "{r:?}");
    assert_eq!(outcomes(&r)["alpha-a2"], Outcome::Baked);
    assert_eq!(why(&r, "alpha-a2"), ["bake vars changed"]);
}

#[test]
fn force_rebakes_every_layer_even_when_its_run_is_cached() {
    let t = Tier::new();
    assert_eq!(t.bake_all(&[], &[]).0, 0);
    edit(&t, "late");
    let (code, r, err) = t.bake_all(&["--force"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!((r.counts.baked, r.counts.refreshed), (5, 0), "{r:?}");
    assert_eq!(builds(&t).1, Vec::<String>::new());
}

/// The dry run's outcomes, with `to-bake` as the real run would report it.
fn as_baked(r: &AllReport) -> BTreeMap<String, Outcome> {
    outcomes(r)
        .into_iter()
        .map(|(k, o)| {
            (
                k,
                match o {
                    Outcome::ToBake => Outcome::Baked,
                    Outcome::ToRefresh => Outcome::Refreshed,
                    o => o,
                },
            )
        })
        .collect()
}

#[test]
fn a_dry_run_says_what_would_bake_and_why_bakes_nothing_and_matches_the_real_run() {
    let t = Tier::new();
    let store_entries = || std::fs::read_dir(t.store.path()).unwrap().count();
    let before = store_entries();
    let (code, dry, err) = t.bake_all(&["--dry-run", "--verify"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(dry.dry_run);
    assert_eq!((dry.counts.to_bake, dry.counts.cached), (5, 0), "{dry:?}");
    assert_eq!(why(&dry, "alpha"), ["first bake of layer alpha"]);
    assert_eq!(why(&dry, "alpha-a1"), ["first bake of layer alpha-a1"]);
    // nothing ran and nothing was written: no Packer, no store directories, no locks
    assert!(t.events().is_empty(), "{:?}", t.events());
    assert_eq!(store_entries(), before, "the dry run wrote to the store");
    // --verify: every stack whose top image would bake would be verified
    let to_verify: Vec<(&str, &str)> = dry
        .verified
        .iter()
        .map(|v| (v.stack.as_str(), v.outcome.as_str()))
        .collect();
    assert_eq!(
        to_verify,
        [
            ("a1", "to-verify"),
            ("a2", "to-verify"),
            ("b1", "to-verify"),
            ("plain", "to-verify")
        ]
    );
    let (code, real, err) = t.bake_all(&[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(as_baked(&dry), outcomes(&real));

    // one role edited: the dry run names the same layers and reasons as the run that follows
    t.f.write(
        "roles/r1/tasks/main.yml",
        "- name: r1 changed\n  ansible.builtin.debug:\n    msg: changed\n",
    );
    t.clear_log();
    let (code, dry, err) = t.bake_all(&["--dry-run"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(t.events().is_empty());
    assert_eq!(
        (dry.counts.to_bake, dry.counts.to_refresh, dry.counts.cached),
        (1, 2, 2),
        "{dry:?}"
    );
    assert_eq!(why(&dry, "alpha-a1"), ["role r1 changed"]);
    assert_eq!(why(&dry, "alpha"), ["payload changed: role r1"]);
    assert!(dry.verified.is_empty(), "no --verify, no verdicts");
    let text = t.cmd(&["bake", "--all", "--dry-run"]).output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with(
            "bake --all --dry-run on qemu: 1 to bake, 2 to refresh, 2 cached (nothing was baked)\n"
        ),
        "{text}"
    );
    assert!(text.contains("  to-bake    alpha-a1 "), "{text}");
    assert!(text.contains("  to-refresh alpha "), "{text}");
    assert!(text.contains("role r1 changed"), "{text}");
    let (code, real, err) = t.bake_all(&[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(as_baked(&dry), outcomes(&real));
    for l in &dry.layers {
        assert_eq!(&l.why, why(&real, &l.name), "{}", l.name);
    }

    // unchanged: nothing to bake
    let (code, dry, _) = t.bake_all(&["--dry-run"], &[]);
    assert_eq!(code, 0);
    assert_eq!((dry.counts.to_bake, dry.counts.cached), (0, 5));
}

#[test]
fn a_failed_base_skips_its_stack_layers_and_the_others_carry_on() {
    let t = Tier::new();
    let (code, r, err) = t.bake_all(&[], &[("FAKE_PACKER_FAIL", "alpha")]);
    assert_eq!(code, 1, "{err}");
    let o = outcomes(&r);
    assert_eq!(o["alpha"], Outcome::Failed);
    assert_eq!(o["alpha-a1"], Outcome::Skipped);
    assert_eq!(o["alpha-a2"], Outcome::Skipped);
    assert_eq!(o["beta"], Outcome::Baked);
    assert_eq!(o["beta-b1"], Outcome::Baked);
    assert_eq!((r.counts.failed, r.counts.skipped), (1, 2));
    let skipped = r.layers.iter().find(|l| l.name == "alpha-a1").unwrap();
    assert_eq!(skipped.error.as_deref(), Some("parent layer alpha failed"));
    assert!(err.contains("fake failure of layer alpha"), "{err}");
    assert!(
        err.contains("1 layer(s) failed and 2 were skipped"),
        "{err}"
    );
    // nothing half-done is left: no alpha layer in the store, no build directories
    let alpha = &r.layers.iter().find(|l| l.name == "alpha").unwrap().hash;
    assert!(!t.store.path().join("images").join(alpha).exists());
    let builds: Vec<_> = std::fs::read_dir(t.store.path().join("build"))
        .unwrap()
        .collect();
    assert!(builds.is_empty(), "{builds:?}");

    // fixed: the next run bakes only what failed or was skipped
    let (code, r, err) = t.bake_all(&[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!((r.counts.baked, r.counts.cached), (3, 2), "{r:?}");
}

#[test]
fn a_layer_locked_by_another_run_is_waited_for() {
    let t = Tier::new();
    // learn beta's layer hash, then hold its lock the way another parbake run would
    let (_, r, _) = t.bake_all(&[], &[("FAKE_PACKER_FAIL", "alpha,beta")]);
    let beta = r
        .layers
        .iter()
        .find(|l| l.name == "beta")
        .unwrap()
        .hash
        .clone();
    let lock = t.store.path().join("locks").join(format!("{beta}.lock"));
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "3"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    t.clear_log();
    let (code, r, err) = t.bake_all(&[], &[]);
    holder.wait().unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "layer {} is being baked by another run; waiting for it",
            &beta[..12]
        )),
        "{err}"
    );
    assert_eq!(outcomes(&r)["beta"], Outcome::Baked);
    // it waited: beta's build began only once the other holder let go (3 s after it began)
    let ev = t.events();
    let first = ev.iter().map(|e| e.2).fold(f64::MAX, f64::min);
    assert!(time_of(&ev, "start", "beta") - first > 1.5, "{ev:?}");
}

#[test]
fn the_nightly_example_script_bakes_and_reports_on_the_local_target() {
    let t = Tier::new();
    let reports = t.store.path().join("reports");
    let run = |fail: &str| {
        let mut c = Command::new("bash");
        c.arg(repo().join("examples/nightly.sh"))
            .current_dir(t.f.root())
            .env("PARBAKE", env!("CARGO_BIN_EXE_parbake"))
            .env("TARGET", "qemu")
            .env("REPORTS", &reports)
            .env(
                "PARBAKE_PACKER",
                repo().join("tests/fixtures/fake-packer.py"),
            )
            .env("PARBAKE_ACCEL", "tcg")
            .env("PARBAKE_STORE", t.store.path())
            .env("FAKE_PACKER_SECONDS", "0.1")
            .env("FAKE_PACKER_FAIL", fail)
            .env_remove("PARBAKE_PROJECT");
        c.output().unwrap()
    };
    let out = run("beta-b1");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // beta-b1 bakes now, and the script verifies its stack: the fake Packer's layer has no
    // disk to boot, so the verdict is a failure, the script exits 1 and publishes nothing
    let out = run("");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("1 stack(s) did not pass verify"), "{err}");
    assert!(!err.contains("published "), "{err}");
    let mut summaries: Vec<_> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("bake-")
        })
        .collect();
    summaries.sort();
    let last: AllReport =
        serde_json::from_str(&std::fs::read_to_string(summaries.last().unwrap()).unwrap()).unwrap();
    assert_eq!((last.counts.baked, last.counts.cached), (1, 4), "{last:?}");
    assert_eq!(last.verified.len(), 1, "{:?}", last.verified);
    assert_eq!(last.verified[0].outcome, "failed");
    assert!(last.verified[0].error.is_some());
    let published: Vec<_> = std::fs::read_dir(&reports)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("publish-"))
        .collect();
    assert!(published.is_empty(), "{published:?}");
    // and it pruned the local store, keeping what is current
    let prunes = std::fs::read_dir(&reports)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("prune-"))
        .count();
    assert_eq!(prunes, 2);
}

#[test]
fn ctrl_c_stops_the_bakes_starts_nothing_new_and_exits_130() {
    let t = Tier::new();
    let child = t
        .cmd(&["bake", "--all", "-j", "1", "--json"])
        .env("FAKE_PACKER_SECONDS", "20")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the first build is running
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while t.events().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no build started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let r: AllReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r.counts.baked + r.counts.cached, 0, "{r:?}");
    assert_eq!(
        r.counts.failed, 1,
        "the running bake was interrupted: {r:?}"
    );
    assert_eq!(r.counts.skipped, 4, "nothing new started: {r:?}");
    let started = t.events().iter().filter(|e| e.0 == "start").count();
    assert_eq!(started, 1);
    let builds: Vec<_> = std::fs::read_dir(t.store.path().join("build"))
        .unwrap()
        .collect();
    assert!(builds.is_empty(), "{builds:?}");
}

#[test]
fn bake_stack_refreshes_only_the_top_layer_and_builds_on_the_run_layers_under_it() {
    let t = Tier::new();
    assert_eq!(t.bake_all(&[], &[]).0, 0);
    edit(&t, "late");
    let out = t.cmd(&["bake", "a2", "--json"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["layers"][0]["outcome"], "cached", "{rep}");
    assert_eq!(rep["layers"][1]["outcome"], "refreshed", "{rep}");
    assert!(
        err.contains("no stack launches this layer, so its payload is not refreshed"),
        "{err}"
    );
    assert_eq!(builds(&t), (vec![], vec!["alpha-a2".to_string()]));
    // the stack with no promotions launches the base layer itself: that one is refreshed
    t.clear_log();
    let out = t.cmd(&["bake", "plain", "--json"]).output().unwrap();
    assert!(out.status.success());
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["layers"][0]["outcome"], "refreshed", "{rep}");
    assert_eq!(builds(&t), (vec![], vec!["alpha".to_string()]));
}

/// Packer's plugin sockets live in its TMPDIR, and a Unix socket path holds at most 107 bytes:
/// a store deep in the file system must still bake (the stand-in Packer refuses a long TMPDIR
/// with the real error).
#[test]
fn a_store_with_a_long_path_still_bakes() {
    let t = Tier::new();
    let deep = t
        .store
        .path()
        .join("a-store-path-long-enough-that-a-temp-dir-inside-its-build-directories")
        .join("would-not-hold-a-plugin-socket");
    std::fs::create_dir_all(&deep).unwrap();
    let out = t
        .cmd(&["bake", "a1", "--json"])
        .env("PARBAKE_STORE", &deep)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&crate::util::succeeded(out)).unwrap();
    assert_eq!(report["layers"][1]["outcome"], "baked", "{report}");
}

/// `plan --budget` costs what building the recommended stack layer takes with the store as it
/// is: nothing once it is baked, a refresh of its run layer once only the payload changed.
#[test]
fn plan_budget_costs_a_refresh_when_the_store_holds_the_run_layer() {
    let t = Tier::new();
    let budget = |t: &Tier| {
        // no timing data: a 60 s floor and 30 s per role; r1 and late at launch make 120 s,
        // promoting r1 makes 90 s
        let out = t
            .cmd(&["plan", "plain", "--budget", "100s"])
            .output()
            .unwrap();
        String::from_utf8(crate::util::succeeded(out)).unwrap()
    };
    let text = budget(&t);
    assert!(text.contains("recommendation: --promote r1"), "{text}");
    assert!(text.contains("now: baking alpha-plain ("), "{text}");

    crate::util::succeeded(
        t.cmd(&["bake", "plain", "--promote", "r1"])
            .output()
            .unwrap(),
    );
    // keep the estimates at their guesses: the fake bake's role times would move them
    std::fs::remove_file(t.store.path().join("ledger.jsonl")).unwrap();
    let text = budget(&t);
    assert!(
        text.contains("is already baked: nothing to build"),
        "{text}"
    );

    // a launch-only role's edit changes the payload only: the run layer stands
    edit(&t, "late");
    let text = budget(&t);
    assert!(
        text.contains("now: a payload refresh of its cached run layer"),
        "{text}"
    );
    assert!(text.contains("(no role runs)"), "{text}");
}
