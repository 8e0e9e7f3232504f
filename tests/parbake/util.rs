use std::path::{Path, PathBuf};
use std::process::Command;

use parbake::config::Project;
use parbake::plan::{self, Plan, PlanRequest, Target};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A project in its own temp dir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// A copy of the repository's example project (images/, roles/, packer/, parbake.yml).
    pub fn example() -> Fixture {
        let f = Fixture::bare();
        copy_dir(&repo().join("images"), &f.root().join("images"));
        copy_dir(&repo().join("roles"), &f.root().join("roles"));
        std::fs::copy(repo().join("parbake.yml"), f.root().join("parbake.yml")).unwrap();
        f
    }

    /// Only the Packer templates; tests add roles, images and stacks.
    pub fn bare() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("parbake-test-")
            .tempdir()
            .unwrap();
        copy_dir(&repo().join("packer"), &dir.path().join("packer"));
        std::fs::create_dir_all(dir.path().join("roles")).unwrap();
        std::fs::create_dir_all(dir.path().join("images/stacks")).unwrap();
        Fixture { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// A role with a one-task main.yml and the given meta dependencies.
    pub fn role(&self, name: &str, deps: &[&str]) -> &Self {
        self.write(
            &format!("roles/{name}/tasks/main.yml"),
            &format!("- name: {name} marker\n  ansible.builtin.debug:\n    msg: {name}\n"),
        );
        let deps: String = deps.iter().map(|d| format!("  - {d}\n")).collect();
        self.write(
            &format!("roles/{name}/meta/main.yml"),
            &format!(
                "galaxy_info:\n  author: test\ndependencies:{}\n",
                if deps.is_empty() {
                    " []".to_string()
                } else {
                    format!("\n{deps}")
                }
            ),
        )
    }

    pub fn image(&self, name: &str, basic: &[&str], launch_only: &[&str]) -> &Self {
        self.write(
            &format!("images/{name}.yml"),
            &format!(
                "sources:\n  qemu:\n    disk_image: parbake:debian-12\n    ssh_user: debian\n  aws:\n    region: us-east-1\n    source_ami:\n      owners: [\"136693071363\"]\n      name: debian-12-amd64-*\n    instance_type: t3.small\n    ssh_user: admin\nbasic: [{}]\nlaunch_only: [{}]\n",
                basic.join(", "),
                launch_only.join(", ")
            ),
        )
    }

    pub fn stack(&self, name: &str, image: &str, roles: &[&str]) -> &Self {
        self.write(
            &format!("images/stacks/{name}.yml"),
            &format!("image: {image}\nroles: [{}]\n", roles.join(", ")),
        )
    }

    pub fn load(&self) -> Project {
        parbake::project::load(self.root())
            .unwrap_or_else(|e| panic!("{}", parbake::error::Report(&e)))
    }

    pub fn plan(&self, stack: &str, promote: &[&str]) -> Plan {
        plan_of(&self.load(), stack, promote)
    }

    /// Runs the real binary in the project.
    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.root(), args)
    }
}

pub fn plan_of(project: &Project, stack: &str, promote: &[&str]) -> Plan {
    plan::plan(project, &request(stack, promote, Target::Qemu)).unwrap()
}

pub fn request(stack: &str, promote: &[&str], target: Target) -> PlanRequest {
    PlanRequest {
        stack: stack.into(),
        promote: promote.iter().map(|s| s.to_string()).collect(),
        target,
        source_identity: None,
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_parbake"))
        .args(args)
        .current_dir(dir)
        // the example project's tools (packer, .venv, .tools) are found via the repo
        .env(
            "PARBAKE_ANSIBLE_PLAYBOOK",
            repo().join(".venv/bin/ansible-playbook"),
        )
        .env("PARBAKE_CLOUD_INIT", repo().join(".tools/bin/cloud-init"))
        // no test reaches for an instance metadata service that is not there
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("PARBAKE_PROJECT")
        .output()
        .expect("run parbake");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The launch spec inside a user-data: the first write_files entry, base64.
pub fn launch_spec(user_data: &str) -> serde_json::Value {
    use base64::Engine;
    let doc: serde_yaml::Value = serde_yaml::from_str(user_data).unwrap();
    let entry = &doc["write_files"][0];
    assert_eq!(entry["path"].as_str(), Some("/var/lib/parbake/launch.json"));
    assert_eq!(entry["encoding"].as_str(), Some("b64"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(entry["content"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A finished command that must have succeeded: its stdout; its stderr in the failure.
pub fn succeeded(out: std::process::Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
