//! parbake on a repository it did not write (`tests/fixtures/team-repo`: `ansible.cfg` with a
//! `roles_path`, a role from a git repository in `roles/requirements.yml`, `group_vars/`, a
//! `site.yml` with two plays), with the binary copied outside the source tree and nothing of
//! parbake's repository in the project: `init --from`, `vendor`, `plan` with and without a
//! promotion, `render`, `userdata` through `cloud-init schema`, and `validate`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{copy_dir, repo, Run, Test};

/// The installed binary, the repository's copy, and the git repository of its Galaxy role.
pub(crate) struct Team {
    bin: PathBuf,
    pub(crate) root: PathBuf,
    store: PathBuf,
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

pub(crate) fn team() -> Team {
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
    // where Ansible users keep their roles' requirements, and beside it their collections'
    // (Debian's ansible.posix, as a local directory: the test has no Galaxy server)
    std::fs::write(root.join("roles/requirements.yml"), reqs).unwrap();
    let posix = repo().join(
        ".tools/ansible-collections/usr/lib/python3/dist-packages/ansible_collections/ansible/posix",
    );
    assert!(
        posix.is_dir(),
        "{} is missing: run `make setup`",
        posix.display()
    );
    copy_dir(&posix, &root.join("collections/src/ansible.posix"));
    std::fs::write(
        root.join("collections/requirements.yml"),
        "---\ncollections:\n  - name: ./collections/src/ansible.posix\n    type: dir\n",
    )
    .unwrap();
    Team {
        bin,
        store: root.join("../store"),
        root,
        _dir: dir,
    }
}

impl Team {
    /// The team's images in another store (the e2e tier's, shared with its other steps).
    pub(crate) fn with_store(mut self, store: &Path) -> Team {
        self.store = store.to_path_buf();
        self
    }

    pub(crate) fn parbake(&self, args: &[&str]) -> Test {
        Test::new(&self.root)
            .program(&self.bin)
            .args(args)
            .local_tools()
            .env(
                "PARBAKE_ANSIBLE_GALAXY",
                repo().join(".venv/bin/ansible-galaxy"),
            )
            .env("PARBAKE_STORE", &self.store)
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
        .stdout_contains("vendored 1 role(s) and 1 collection(s)")
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
    // a pair keeps roles in the first file and collections in the second
    std::fs::remove_file(t.root.join("requirements.yml")).unwrap();
    let roles_reqs = t.root.join("roles/requirements.yml");
    let text = std::fs::read_to_string(&roles_reqs).unwrap();
    std::fs::write(
        &roles_reqs,
        format!("{text}collections:\n  - name: community.general\n"),
    )
    .unwrap();
    t.parbake(&["vendor", "--force"])
        .code(1)
        .stderr_contains("roles/requirements.yml:6:1: `collections:` here, while collections/requirements.yml is the project's file for them")
        .stderr_contains("hint: move these entries into collections/requirements.yml")
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
