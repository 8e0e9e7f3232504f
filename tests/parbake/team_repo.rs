//! parbake on a repository it did not write (`tests/fixtures/team-repo`: `ansible.cfg` with a
//! `roles_path`, a role from a git repository in `roles/requirements.yml`, `group_vars/`, a
//! `site.yml` with two plays), with the binary copied outside the source tree and nothing of
//! parbake's repository in the project: `init --from`, `vendor`, `plan` with and without a
//! promotion, `render`, `userdata` through `cloud-init schema`, and `validate`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{copy_dir, repo, Run, Test};

/// The installed binary, the repository's copy, and the git repository of its Galaxy role.
struct Team {
    bin: PathBuf,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn team() -> Team {
    let dir = tempfile::Builder::new()
        .prefix("parbake-team-")
        .tempdir()
        .unwrap();
    let bin = dir.path().join("bin/parbake");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_parbake"), &bin).unwrap();
    let motd = dir.path().join("motd");
    copy_dir(&repo().join("tests/fixtures/team-repo-deps/motd"), &motd);
    git(&motd, &["init", "-q"]);
    git(&motd, &["add", "."]);
    git(&motd, &["commit", "-qm", "motd 1.0.0"]);
    git(&motd, &["tag", "v1.0.0"]);
    let root = dir.path().join("repo");
    copy_dir(&repo().join("tests/fixtures/team-repo"), &root);
    let reqs = format!(
        "---\nroles:\n  - src: git+file://{}\n    version: v1.0.0\n    name: acme.motd\n",
        motd.display()
    );
    // where Ansible users keep their roles' requirements
    std::fs::write(root.join("roles/requirements.yml"), reqs).unwrap();
    Team {
        bin,
        root,
        _dir: dir,
    }
}

impl Team {
    fn parbake(&self, args: &[&str]) -> Test {
        Test::new(&self.root)
            .program(&self.bin)
            .args(args)
            .local_tools()
            .env(
                "PARBAKE_ANSIBLE_GALAXY",
                repo().join(".venv/bin/ansible-galaxy"),
            )
            .env("PARBAKE_STORE", self.root.join("../store"))
    }

    fn run(&self, args: &[&str]) -> Run {
        self.parbake(args).run()
    }
}

#[test]
fn a_team_repository_goes_from_init_to_validate_with_the_installed_binary() {
    let t = team();
    let init = t
        .parbake(&[
            "init",
            "--base",
            "debian-12",
            "--from",
            "site.yml",
            "--json",
        ])
        .json();
    assert_eq!(
        init["stacks"]["web"],
        serde_json::json!(["common", "webserver", "acme.motd"])
    );
    assert_eq!(
        init["stacks"]["workers"],
        serde_json::json!(["common", "acme.motd"])
    );
    let left: Vec<&str> = init["not_carried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        left,
        ["`tags` on role webserver", "`pre_tasks`", "`serial`"]
    );
    // the user's one edit: which roles run at bake
    let image = t.root.join("images/debian12.yml");
    let text = std::fs::read_to_string(&image)
        .unwrap()
        .replace("basic: []", "basic: [common]");
    std::fs::write(&image, text).unwrap();
    t.parbake(&["vendor"])
        .stdout_contains("vendored 1 role(s)")
        .run();
    plans(&t);
    renders(&t);
    t.parbake(&["validate"]).stderr_contains(", 0 failed").run();
    assert!(!t.root.join("packer").exists() && !t.root.join("scripts").exists());
    // a second requirements file is refused, naming both
    std::fs::write(t.root.join("requirements.yml"), "collections: []\n").unwrap();
    t.parbake(&["vendor", "--force"])
        .code(1)
        .stderr_contains(
            "roles/requirements.yml:1:1: a second requirements file beside requirements.yml",
        )
        .stderr_contains("hint: merge them into requirements.yml")
        .run();
}

/// Each stack plans, with and without a promotion; the missing Galaxy roles directory of
/// `roles_path` is a warning.
fn plans(t: &Team) {
    for (stack, promote, runs_at_launch) in [
        ("web", None, "runs at launch (2 roles, in order)"),
        (
            "web",
            Some("webserver"),
            "runs at launch (1 roles, in order)",
        ),
        ("workers", None, "runs at launch (1 roles, in order)"),
        (
            "workers",
            Some("acme.motd"),
            "nothing: the image has every role of the stack baked",
        ),
    ] {
        let mut args = vec!["plan", stack];
        args.extend(promote.iter().flat_map(|p| ["--promote", p]));
        t.parbake(&args)
            .stdout_contains(runs_at_launch)
            .stdout_contains("template: packer/qemu.pkr.hcl (parbake's own, embedded)")
            .stderr_contains("roles_path entry `galaxy_roles` does not exist")
            .run();
    }
}

/// `render` writes the layers; `userdata` passes the real `cloud-init schema`.
fn renders(t: &Team) {
    let out = t.root.join("../rendered");
    let r = t.run(&[
        "render",
        "web",
        "--promote",
        "webserver",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ud = t.root.join("../web.user-data");
    t.parbake(&["userdata", "web", "-o", ud.to_str().unwrap()])
        .run();
    let schema = Command::new(repo().join(".tools/bin/cloud-init"))
        .args(["schema", "-c"])
        .arg(&ud)
        .output()
        .unwrap();
    assert!(
        schema.status.success(),
        "{}",
        String::from_utf8_lossy(&schema.stderr)
    );
}

/// The named tier `make e2e-team` (PARBAKE_E2E_TEAM=1; not part of `make e2e`): the team's
/// repository on a Debian 13 base, its `web` stack's base layer baked by Packer (qemu), then
/// launched natively with its launch roles and a check passing.
#[test]
fn e2e_team_repo_on_debian_13_bakes_and_launches() {
    if std::env::var("PARBAKE_E2E_TEAM").as_deref() != Ok("1") {
        eprintln!("e2e_team_repo: skipped (set PARBAKE_E2E_TEAM=1, as `make e2e-team` does)");
        return;
    }
    let t = team();
    t.parbake(&["init", "--base", "debian-13", "--from", "site.yml"])
        .run();
    let image = t.root.join("images/debian13.yml");
    let text = std::fs::read_to_string(&image)
        .unwrap()
        .replace("basic: []", "basic: [common]");
    std::fs::write(&image, text).unwrap();
    // the team's check: the message of the day the launch writes
    let stack = t.root.join("images/stacks/web.yml");
    let mut text = std::fs::read_to_string(&stack).unwrap();
    text.push_str("checks:\n  - file: /etc/motd\n    contains: Managed by the platform team.\n");
    std::fs::write(&stack, text).unwrap();
    t.parbake(&["vendor"]).run();
    let timed = |args: &[&str]| {
        let started = std::time::Instant::now();
        let out = t.parbake(args).json();
        eprintln!(
            "e2e_team_repo: parbake {} took {:.1}s",
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        out
    };
    let bake = timed(&["bake", "web", "--json"]);
    assert_eq!(bake["layers"][0]["roles"][0]["role"], "common", "{bake}");
    let launch = timed(&["launch", "web", "--container", "--timeout", "900", "--json"]);
    assert_eq!(launch["accelerator"], "nspawn", "{launch}");
    assert_eq!(launch["status"]["state"], "done", "{launch}");
    let ok = |list: &str| -> Vec<String> {
        launch["status"][list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "ok")
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ok("roles"), ["webserver", "acme.motd"], "{launch}");
    assert_eq!(ok("checks").len(), 1, "{launch}");
    eprintln!(
        "e2e_team_repo: boot-to-ready {}s",
        launch["boot_to_ready_s"]
    );
}
