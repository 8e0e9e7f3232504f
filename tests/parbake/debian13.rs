//! Debian 13 as a local base beside Debian 12: `disk_image: parbake:debian-13` plans with its
//! own recipe identity in the layer hash, Debian 12's recipe (so its cache and every layer
//! baked on it) stays as it was, and an unknown `parbake:` label is refused at load.
//!
//! `e2e_debian13` (`make e2e-debian13`, PARBAKE_E2E_DEBIAN13=1; not part of `make e2e`) bakes
//! the example web stack's base layer on Debian 13 with Packer and qemu and launches it
//! natively (`launch --container`, root) with its checks passing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::util::{repo, Fixture};

/// The recipe hashes with no local CA certificates: Debian 12's is the one every cache and
/// layer hash before Debian 13 was keyed by, and must not change by accident.
const DEBIAN_12_RECIPE: &str = "feb0372fa040dd664c5cc7a16c8f1140b65dcd5379ebfff83f8046a355299207";
const DEBIAN_13_RECIPE: &str = "a84e69868f5dcc3420c5f498b8f17798b05fe0f91437b7df053dcf5648684807";

fn on_debian_13(f: &Fixture) {
    f.replace(
        "images/debian12.yml",
        "disk_image: parbake:debian-12",
        "disk_image: parbake:debian-13",
    );
}

/// `plan web --json`'s first layer, with a base-disk cache at `cache` and no local CAs.
fn base_layer(f: &Fixture, cache: &Path) -> Value {
    let no_ca = tempfile::tempdir().unwrap();
    f.parbake(&["plan", "web", "--json"])
        .env("PARBAKE_CACHE", cache)
        .env("PARBAKE_LOCAL_CA_DIR", no_ca.path())
        .json()["layers"][0]
        .clone()
}

#[test]
fn an_unknown_parbake_label_is_refused_at_load_naming_the_known_ones() {
    let f = Fixture::example();
    f.replace(
        "images/debian12.yml",
        "disk_image: parbake:debian-12",
        "disk_image: parbake:debian-14",
    );
    for cmd in ["plan", "validate"] {
        f.parbake(&[cmd, "web"])
            .code(1)
            .stderr_contains("images/debian12.yml:7")
            .stderr_contains("\"parbake:debian-14\" is not a base disk parbake builds")
            .stderr_contains("`parbake:debian-12`, `parbake:debian-13`")
            .stderr_contains("hint:")
            .run();
    }
}

#[test]
fn debian_13_has_its_own_identity_and_debian_12_keeps_its_recipe() {
    let cache = tempfile::tempdir().unwrap();
    let d12 = Fixture::example();
    let d13 = Fixture::example();
    on_debian_13(&d13);
    // nothing built: the declared source, and the two bases differ
    let (a, b) = (
        base_layer(&d12, cache.path()),
        base_layer(&d13, cache.path()),
    );
    assert_eq!(a["parent"], "source:qemu:parbake:debian-12@none");
    assert_eq!(b["parent"], "source:qemu:parbake:debian-13@none");
    assert_ne!(a["hash"], b["hash"]);
    // built (as base-image.sh leaves them): each is keyed by its own recipe hash
    for recipe in [DEBIAN_12_RECIPE, DEBIAN_13_RECIPE] {
        let dir = cache.path().join("base").join(recipe);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("disk.qcow2"), "").unwrap();
    }
    let (a, b) = (
        base_layer(&d12, cache.path()),
        base_layer(&d13, cache.path()),
    );
    assert_eq!(
        a["parent"],
        format!("source:qemu:parbake:debian-12@recipe:{DEBIAN_12_RECIPE}")
    );
    assert_eq!(
        b["parent"],
        format!("source:qemu:parbake:debian-13@recipe:{DEBIAN_13_RECIPE}")
    );
    assert_ne!(a["hash"], b["hash"]);
}

#[test]
fn the_recipe_script_knows_both_bases_and_refuses_others() {
    let no_ca = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let path_of = |args: &[&str]| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/base-image.sh"))
            .args(args)
            .env("PARBAKE_CACHE", cache.path())
            .env("PARBAKE_LOCAL_CA_DIR", no_ca.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let base = cache.path().join("base");
    let d12 = path_of(&["--print-path"]);
    assert_eq!(d12.1, base.join(DEBIAN_12_RECIPE).display().to_string());
    assert_eq!(path_of(&["--base", "debian-12", "--print-path"]).1, d12.1);
    let d13 = path_of(&["--base", "debian-13", "--print-path"]);
    assert_eq!(d13.1, base.join(DEBIAN_13_RECIPE).display().to_string());
    let bad = path_of(&["--base", "debian-14", "--print-path"]);
    assert_eq!(bad.0, Some(1));
    assert!(bad.2.contains("known: debian-12, debian-13"), "{}", bad.2);
}

/// The proof on a real Debian 13 disk: the example web stack's base layer baked by Packer
/// (qemu), then launched natively with every launch role and both checks passing.
#[test]
fn e2e_debian13() {
    if std::env::var("PARBAKE_E2E_DEBIAN13").as_deref() != Ok("1") {
        eprintln!(
            "e2e_debian13: skipped (set PARBAKE_E2E_DEBIAN13=1, as `make e2e-debian13` does)"
        );
        return;
    }
    let project = tempfile::Builder::new()
        .prefix("parbake-e2e-debian13-")
        .tempdir_in(repo().join("target"))
        .unwrap();
    for d in ["images", "roles", "packer"] {
        crate::util::copy_dir(&repo().join(d), &project.path().join(d));
    }
    std::fs::copy(
        repo().join("parbake.yml"),
        project.path().join("parbake.yml"),
    )
    .unwrap();
    let image = project.path().join("images/debian12.yml");
    let text = std::fs::read_to_string(&image).unwrap();
    assert!(text.contains("disk_image: parbake:debian-12"));
    std::fs::write(
        &image,
        text.replace("parbake:debian-12", "parbake:debian-13"),
    )
    .unwrap();
    let store = tempfile::Builder::new()
        .prefix("parbake-e2e-debian13-store-")
        .tempdir_in(repo().join("target"))
        .unwrap();
    let run = |args: &[&str]| -> Value {
        let started = Instant::now();
        let out_path = store.path().join("stdout.json");
        let status = Command::new(env!("CARGO_BIN_EXE_parbake"))
            .args(args)
            .current_dir(project.path())
            .env("PARBAKE_STORE", store.path())
            .env_remove("PARBAKE_PROJECT")
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(Stdio::inherit())
            .status()
            .unwrap();
        let stdout = std::fs::read_to_string(&out_path).unwrap();
        eprintln!(
            "e2e_debian13: parbake {} took {:.1}s",
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        assert!(status.success(), "parbake {args:?} failed:\n{stdout}");
        serde_json::from_str(&stdout).unwrap_or(Value::Null)
    };
    let plan = run(&["plan", "web", "--json"]);
    let parent = plan["layers"][0]["parent"].as_str().unwrap().to_string();
    assert!(
        parent.starts_with("source:qemu:parbake:debian-13@recipe:"),
        "the Debian 13 disk is built first (make e2e-debian13 does): {parent}"
    );
    run(&["bake", "web", "--json"]);
    let launch = run(&["launch", "web", "--container", "--timeout", "900", "--json"]);
    assert_eq!(launch["accelerator"], "nspawn", "{launch}");
    assert_eq!(launch["status"]["state"], "done", "{launch}");
    let ok = |list: &str| -> Vec<String> {
        launch["status"][list]
            .as_array()
            .unwrap_or_else(|| panic!("no {list} in the launch report: {launch}"))
            .iter()
            .filter(|r| r["status"] == "ok")
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ok("roles"),
        ["nginx", "python", "webapp", "identity"],
        "{launch}"
    );
    assert_eq!(
        ok("checks"),
        ["http :80/", "unit nginx.service"],
        "{launch}"
    );
    eprintln!(
        "e2e_debian13: boot-to-ready {}s; roles {}",
        launch["boot_to_ready_s"], launch["status"]["roles"]
    );
}
