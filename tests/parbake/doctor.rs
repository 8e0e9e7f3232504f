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

// ---- the base disk of each base the project's images use (issue 24, issue 25 item 1) -------

/// A base-disk cache where Debian 12's disk is built (an empty file stands in for it) and
/// Debian 13's is not, keyed as the embedded recipe keys them (no local CA certificates).
struct BaseCache {
    dir: tempfile::TempDir,
    no_ca: tempfile::TempDir,
}

impl BaseCache {
    fn with_debian_12_built() -> BaseCache {
        let c = BaseCache {
            dir: tempfile::tempdir().unwrap(),
            no_ca: tempfile::tempdir().unwrap(),
        };
        let out = Command::new("bash")
            .arg(repo().join("scripts/base-image.sh"))
            .args(["--base", "debian-12", "--print-path"])
            .envs(c.env())
            .output()
            .unwrap();
        let built = String::from_utf8(out.stdout).unwrap().trim().to_string();
        std::fs::create_dir_all(&built).unwrap();
        std::fs::write(Path::new(&built).join("disk.qcow2"), "").unwrap();
        c
    }

    fn env(&self) -> [(&str, &str); 2] {
        [
            ("PARBAKE_CACHE", self.dir.path().to_str().unwrap()),
            ("PARBAKE_LOCAL_CA_DIR", self.no_ca.path().to_str().unwrap()),
        ]
    }
}

/// The lines of doctor's text about `check`s whose name starts so, with their fix lines.
fn lines_about(text: &str, check: &str) -> String {
    let mut out = String::new();
    let mut keep = false;
    for l in text.lines() {
        if l.starts_with("        ") && l.trim_start().starts_with("fix:") {
            if keep {
                out.push_str(l.trim_end());
                out.push('\n');
            }
            continue;
        }
        keep = l.get(8..).is_some_and(|rest| rest.starts_with(check));
        if keep {
            out.push_str(l.trim_end());
            out.push('\n');
        }
    }
    out
}

#[test]
fn doctor_checks_the_base_disk_of_each_base_the_images_use() {
    let f = Fixture::example();
    let trixie = f
        .read("images/debian12.yml")
        .replace("parbake:debian-12", "parbake:debian-13");
    f.write("images/trixie.yml", &trixie);
    let cache = BaseCache::with_debian_12_built();
    let bin = tempfile::tempdir().unwrap();
    let out = doctor(f.root(), &stub_packer(bin.path()), &[], &cache.env());
    let text = String::from_utf8_lossy(&out.stdout);
    let about = lines_about(&text, "base disk");
    insta::with_settings!({filters => vec![
        (cache.dir.path().to_str().unwrap(), "[CACHE]"),
        (r"/base/[0-9a-f]{64}", "/base/[RECIPE]"),
    ]}, {
        insta::assert_snapshot!(about);
    });
    // the two bases have their own cache keys
    let dirs: Vec<&str> = about
        .lines()
        .filter_map(|l| l.split(&*cache.dir.path().to_string_lossy()).nth(1))
        .collect();
    assert_eq!(dirs.len(), 2, "{about}");
    assert_ne!(dirs[0][..70], dirs[1][..70], "{about}");
    // a base that is not built is a warning: the first bake builds it
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[test]
fn doctor_on_one_base_checks_only_that_base() {
    let f = Fixture::example();
    f.replace(
        "images/debian12.yml",
        "disk_image: parbake:debian-12",
        "disk_image: parbake:debian-13",
    );
    let cache = BaseCache::with_debian_12_built();
    let bin = tempfile::tempdir().unwrap();
    let out = doctor(
        f.root(),
        &stub_packer(bin.path()),
        &["--json"],
        &cache.env(),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bases: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"].as_str().unwrap().starts_with("base disk"))
        .map(|f| (f["check"].to_string(), f["status"].to_string()))
        .collect();
    assert_eq!(
        bases,
        [("\"base disk debian-13\"".into(), "\"warn\"".into())],
        "{report}"
    );
}

#[test]
fn doctor_without_a_project_checks_every_base_parbake_builds() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BaseCache::with_debian_12_built();
    let out = doctor(dir.path(), &stub_packer(dir.path()), &[], &cache.env());
    let text = String::from_utf8_lossy(&out.stdout);
    let about = lines_about(&text, "base disk");
    assert!(about.contains("ok      base disk debian-12"), "{text}");
    assert!(about.contains("warn    base disk debian-13"), "{text}");
    assert!(
        about.contains("`bash scripts/base-image.sh --base debian-13`"),
        "{text}"
    );
}

#[test]
fn plan_names_the_images_own_base_when_its_disk_is_not_built() {
    let f = Fixture::example();
    f.replace(
        "images/debian12.yml",
        "disk_image: parbake:debian-12",
        "disk_image: parbake:debian-13",
    );
    let cache = BaseCache::with_debian_12_built();
    let r = f
        .parbake(&["plan", "web", "--json"])
        .envs(&cache.env())
        .run();
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let provisional = plan["provisional"].as_str().unwrap().to_string();
    assert!(r.stderr.contains(&provisional), "{}", r.stderr);
    insta::assert_snapshot!(provisional);
    // Debian 12's disk is built, so a plan on it is not provisional
    f.replace(
        "images/debian12.yml",
        "disk_image: parbake:debian-13",
        "disk_image: parbake:debian-12",
    );
    let plan = f
        .parbake(&["plan", "web", "--json"])
        .envs(&cache.env())
        .json();
    assert!(
        plan.get("provisional").is_none_or(|p| p.is_null()),
        "{plan}"
    );
}

// ---- whether the Packer found can install the pinned plugins (issue 25 item 5) -------------

/// A stand-in `packer` of `version` whose `plugins installed` lists `installed`.
fn packer_of(dir: &Path, version: &str, installed: &[&str]) -> std::path::PathBuf {
    let p = dir.join("packer");
    let list: String = installed.iter().map(|l| format!("echo '{l}'\n")).collect();
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  version) echo 'Packer v{version}' ;;\n  plugins) {list}:;;\n  *) exit 2 ;;\nesac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn plugin_lines(root: &Path, packer: &Path, target: &str) -> (Option<i32>, String) {
    let out = doctor(root, packer, &["--target", target], &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), lines_about(&text, "packer "))
}

#[test]
fn doctor_says_when_packer_before_1_14_cannot_install_the_pinned_plugins() {
    let f = Fixture::example();
    let bin = tempfile::tempdir().unwrap();
    let mut seen = String::new();
    for (version, target) in [
        ("1.10.0", "qemu"),
        ("1.13.2", "aws"),
        ("1.14.3", "qemu"),
        ("1.6.6", "aws"),
    ] {
        let (_, lines) = plugin_lines(f.root(), &packer_of(bin.path(), version, &[]), target);
        seen.push_str(&format!("== Packer {version}, --target {target}\n{lines}"));
    }
    insta::with_settings!({filters => vec![(bin.path().to_str().unwrap(), "[BIN]")]}, {
        insta::assert_snapshot!(seen);
    });
    // before 1.14 the target cannot run; from 1.14 the first bake installs the plugin
    assert!(
        seen.contains("MISSING packer qemu plugin   Packer 1.10.0 cannot install"),
        "{seen}"
    );
    assert!(
        seen.contains("MISSING packer amazon plugin Packer 1.13.2 cannot install"),
        "{seen}"
    );
    assert!(
        seen.contains("warn    packer qemu plugin   not installed yet: Packer 1.14.3"),
        "{seen}"
    );
}

#[test]
fn doctor_takes_an_installed_plugin_the_pin_admits_and_the_projects_own_pins() {
    let f = Fixture::example();
    let bin = tempfile::tempdir().unwrap();
    let dir = "/home/ci/.config/packer/plugins/github.com/hashicorp/qemu";
    // installed at a version the pin admits: nothing to install
    let ok = format!("{dir}/packer-plugin-qemu_v1.1.4_x5.0_linux_amd64");
    let (code, lines) = plugin_lines(f.root(), &packer_of(bin.path(), "1.10.0", &[&ok]), "qemu");
    assert_eq!(code, Some(0), "{lines}");
    assert!(
        lines.contains(&format!("ok      packer qemu plugin   {ok}")),
        "{lines}"
    );
    // installed at a version the pin refuses: `packer init` would have to install another
    let old = format!("{dir}/packer-plugin-qemu_v1.0.9_x5.0_linux_amd64");
    let (code, lines) = plugin_lines(f.root(), &packer_of(bin.path(), "1.10.0", &[&old]), "qemu");
    assert_eq!(code, Some(1), "{lines}");
    assert!(
        lines.contains("cannot install github.com/hashicorp/qemu `~> 1.1.4`"),
        "{lines}"
    );
    // the project's own pins are the ones checked: 1.1.3 is still on GitHub
    f.replace(
        "packer/plugins/required_plugins.pkr.hcl",
        "\"~> 1.1.4\"",
        "\"~> 1.1.3\"",
    );
    let (code, lines) = plugin_lines(f.root(), &packer_of(bin.path(), "1.10.0", &[]), "qemu");
    assert_eq!(code, Some(0), "{lines}");
    assert!(
        lines.contains("warn    packer qemu plugin   not installed yet"),
        "{lines}"
    );
}

#[test]
fn doctor_says_when_the_projects_files_do_not_load_and_checks_every_base() {
    let f = Fixture::example();
    f.append("images/debian12.yml", "no_such_field: 1\n");
    let bin = tempfile::tempdir().unwrap();
    let cache = BaseCache::with_debian_12_built();
    let out = doctor(
        f.root(),
        &stub_packer(bin.path()),
        &["--json"],
        &cache.env(),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let project = &findings[0];
    assert_eq!(project["status"], "warn", "{report}");
    let problem = project["problem"].as_str().unwrap();
    assert!(
        problem.contains("its files do not load") && problem.contains("images/debian12.yml"),
        "{problem}"
    );
    assert!(
        project["fix"].as_str().is_some_and(|f| !f.is_empty()),
        "{report}"
    );
    let bases: Vec<&str> = findings
        .iter()
        .filter_map(|f| f["check"].as_str())
        .filter(|c| c.starts_with("base disk"))
        .collect();
    assert_eq!(bases, ["base disk debian-12", "base disk debian-13"]);
}
