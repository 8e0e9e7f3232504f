//! `parbake doctor`: what each target needs, found or missing with its install command; exit
//! 1 when the target cannot run; never a credential's value.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::{repo, Fixture};

/// A stand-in `packer` that answers `packer version` as Packer 1.6.6 does.
fn stub_packer(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("packer");
    std::fs::write(&p, "#!/bin/sh\necho 'Packer v1.6.6'\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn doctor(dir: &Path, packer: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parbake"));
    cmd.arg("doctor")
        .args(args)
        .current_dir(dir)
        .env("PARBAKE_PACKER", packer)
        .env(
            "PARBAKE_ANSIBLE_PLAYBOOK",
            repo().join(".venv/bin/ansible-playbook"),
        )
        .env("PARBAKE_CLOUD_INIT", repo().join(".tools/bin/cloud-init"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("PARBAKE_EC2_ENDPOINT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn doctor_names_what_is_missing_with_its_install_and_exits_1() {
    let f = Fixture::example();
    let out = doctor(
        f.root(),
        Path::new("/nonexistent/packer"),
        &["--target", "qemu", "--json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let packer = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "packer")
        .unwrap();
    assert_eq!(packer["status"], "missing");
    assert!(packer["problem"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/packer"));
    assert!(packer["fix"]
        .as_str()
        .unwrap()
        .contains("apt-get install packer"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: --target qemu cannot run: packer") && err.contains("hint: apt-get"),
        "{err}"
    );
}

#[test]
fn doctor_runs_outside_a_project_and_never_prints_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let packer = stub_packer(dir.path());
    let secret = "doctor-secret-value-0123456789";
    let out = doctor(
        dir.path(),
        &packer,
        &["--target", "aws"],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIADOCTORTESTKEY"),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("no project here"), "{stdout}");
    assert!(
        stdout.contains("packer amazon plugin built into Packer 1.6.6"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the environment (AWS_ACCESS_KEY_ID)"),
        "{stdout}"
    );
    assert!(stdout.contains("--target aws can run"), "{stdout}");
    for s in [&stdout, &stderr] {
        assert!(
            !s.contains(secret) && !s.contains("AKIADOCTORTESTKEY"),
            "{s}"
        );
    }
}

#[test]
fn bake_checks_first_and_fails_early_in_doctors_words() {
    let f = Fixture::example();
    let store = tempfile::tempdir().unwrap();
    let missing = Path::new("/nonexistent/packer");
    let doctor_says = doctor(f.root(), missing, &["--target", "qemu"], &[]);
    let bake = Command::new(env!("CARGO_BIN_EXE_parbake"))
        .args(["bake", "web"])
        .current_dir(f.root())
        .env("PARBAKE_PACKER", missing)
        .env("PARBAKE_STORE", store.path().join("store"))
        .output()
        .unwrap();
    assert_eq!(bake.status.code(), Some(1));
    let words = "error: --target qemu cannot run: packer (/nonexistent/packer is not installed (not on PATH))";
    for out in [&doctor_says, &bake] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{err}");
    }
    // nothing was started: no store, no base disk build
    assert!(!store.path().join("store").exists());
}
