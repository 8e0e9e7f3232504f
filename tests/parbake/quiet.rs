//! `-q` silences every progress line and note, the ones written outside a command's own
//! printer included (the store's "waiting for another run" line).

use std::process::Command;
use std::time::{Duration, Instant};

use parbake::bake::all::{AllReport, Outcome};

use crate::util::{repo, Fixture};

/// One image on a fake local base disk and one stack, baked by the stand-in Packer.
fn project() -> Fixture {
    let f = Fixture::bare();
    f.role("base", &[]).role("app", &[]);
    for file in ["disk.qcow2", "vmlinuz", "initrd.img"] {
        f.write(&format!("base/alpha/{file}"), "fake");
    }
    f.write(
        "images/alpha.yml",
        "sources:\n  qemu:\n    disk_image: base/alpha/disk.qcow2\n    ssh_user: debian\nbasic: [base]\n",
    );
    f.write("images/stacks/a1.yml", "image: alpha\nroles: [app]\n");
    f
}

fn bake_all(
    f: &Fixture,
    store: &std::path::Path,
    args: &[&str],
    fail: &str,
) -> (i32, AllReport, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parbake"))
        .args(args)
        .args(["bake", "--all", "--json"])
        .current_dir(f.root())
        .env(
            "PARBAKE_PACKER",
            repo().join("tests/fixtures/fake-packer.py"),
        )
        .env("PARBAKE_ACCEL", "tcg")
        .env("PARBAKE_STORE", store)
        .env("FAKE_PACKER_SECONDS", "0.1")
        .env("FAKE_PACKER_FAIL", fail)
        .env_remove("PARBAKE_PROJECT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: AllReport =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

#[test]
fn quiet_silences_the_wait_for_a_layer_another_run_bakes() {
    let f = project();
    let store = tempfile::tempdir().unwrap();
    // learn the layer's hash from a failed bake, then hold its lock as another run would
    let (_, r, _) = bake_all(&f, store.path(), &[], "alpha");
    let hash = r.layers[0].hash.clone();
    let lock = store.path().join("locks").join(format!("{hash}.lock"));
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "2"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (code, r, err) = bake_all(&f, store.path(), &["-q"], "");
    holder.wait().unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(r.layers[0].outcome, Outcome::Baked, "{r:?}");
    // it did wait on the lock, and said nothing about it
    assert!(started.elapsed() > Duration::from_millis(1200), "no wait");
    assert!(!err.contains("being baked by another run"), "{err}");
    assert_eq!(err, "", "-q leaves stderr empty on success");
}
