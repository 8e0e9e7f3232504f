use std::path::{Path, PathBuf};
use std::process::Command;

use parbake::config::Project;
use parbake::plan::{self, Plan, PlanRequest, Target};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of the ansible-playbook the runner tier runs (`make test-runner-matrix`):
/// `PARBAKE_TEST_ANSIBLE` names a minor of the matrix `make setup` installs (2.14 is the pinned
/// `.venv`, the others `.tools/ansible-core/<minor>`) or a directory holding ansible-playbook;
/// unset, the pinned `.venv`. A missing one fails the test: it never passes silently.
pub fn ansible_bin() -> PathBuf {
    let bin = match std::env::var("PARBAKE_TEST_ANSIBLE") {
        Err(_) => repo().join(".venv/bin"),
        Ok(v) if v == "2.14" || v == "pinned" => repo().join(".venv/bin"),
        Ok(v) if v.contains('/') => PathBuf::from(v),
        Ok(v) => repo().join(".tools/ansible-core").join(v).join("bin"),
    };
    assert!(
        bin.join("ansible-playbook").exists(),
        "{} has no ansible-playbook: run `make setup` (PARBAKE_TEST_ANSIBLE: 2.14, 2.17, 2.19, 2.20, 2.21 or a directory)",
        bin.display()
    );
    bin
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

    /// The text of the project file `rel`.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap()
    }

    /// Replaces `from` (which must be there) by `to` in the project file `rel`.
    pub fn replace(&self, rel: &str, from: &str, to: &str) -> &Self {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} has no {from:?}");
        self.write(rel, &text.replace(from, to))
    }

    /// Adds `text` at the end of the project file `rel`.
    pub fn append(&self, rel: &str, text: &str) -> &Self {
        self.write(rel, &(self.read(rel) + text))
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

    /// `parbake ARGS` in the project with the example's tools, to be checked (see [`Test`]).
    pub fn parbake(&self, args: &[&str]) -> Test {
        Test::new(self.root()).local_tools().args(args)
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

/// A finished run of the binary: its exit code and its output.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as JSON (stderr in the failure).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    Test::new(dir).local_tools().args(args).output()
}

/// One run of the real binary, built step by step as just's `Test` and uv's `TestContext` do:
/// where (a project directory), the environment, the arguments, then what it must do (its
/// exit code, 0 unless told; what stdout and stderr hold). [`Test::run`] checks all of it and
/// returns the [`Run`] for further checks; a failed check shows both streams.
///
/// Every run has no instance metadata service to reach and no `PARBAKE_PROJECT` from the
/// caller's environment.
pub struct Test {
    program: std::ffi::OsString,
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, Option<std::ffi::OsString>)>,
    code: i32,
    checks: Vec<Check>,
}

enum Check {
    StdoutContains(String),
    StderrContains(String),
    StdoutIs(String),
    StderrIs(String),
    StdoutJson(serde_json::Value),
}

impl Test {
    /// `parbake` run in `dir`.
    pub fn new(dir: &Path) -> Test {
        Test {
            program: env!("CARGO_BIN_EXE_parbake").into(),
            dir: dir.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            code: 0,
            checks: Vec::new(),
        }
        // no test reaches for an instance metadata service that is not there
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("PARBAKE_PROJECT")
    }

    /// The example project's tools (ansible-playbook in .venv, cloud-init in .tools), found
    /// through the repository.
    pub fn local_tools(self) -> Test {
        self.env(
            "PARBAKE_ANSIBLE_PLAYBOOK",
            repo().join(".venv/bin/ansible-playbook"),
        )
        .env("PARBAKE_CLOUD_INIT", repo().join(".tools/bin/cloud-init"))
        // validate's venvs of other ansible-core versions: those `make setup` installed
        .env("PARBAKE_ANSIBLE_CACHE", repo().join(".tools/ansible-cache"))
    }

    /// Another program in parbake's place (a script that runs parbake, say), with the same
    /// directory, environment and checks.
    pub fn program(mut self, program: impl AsRef<std::ffi::OsStr>) -> Test {
        self.program = program.as_ref().to_os_string();
        self
    }

    pub fn args(mut self, args: &[&str]) -> Test {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Test {
        self.env
            .push((key.to_string(), Some(value.as_ref().to_os_string())));
        self
    }

    pub fn envs(mut self, vars: &[(&str, &str)]) -> Test {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    pub fn env_remove(mut self, key: &str) -> Test {
        self.env.push((key.to_string(), None));
        self
    }

    /// The exit code the run must have (0 unless told).
    pub fn code(mut self, code: i32) -> Test {
        self.code = code;
        self
    }

    pub fn stdout_contains(mut self, text: &str) -> Test {
        self.checks.push(Check::StdoutContains(text.into()));
        self
    }

    pub fn stderr_contains(mut self, text: &str) -> Test {
        self.checks.push(Check::StderrContains(text.into()));
        self
    }

    pub fn stdout_is(mut self, text: &str) -> Test {
        self.checks.push(Check::StdoutIs(text.into()));
        self
    }

    pub fn stderr_is(mut self, text: &str) -> Test {
        self.checks.push(Check::StderrIs(text.into()));
        self
    }

    /// stdout parses as JSON equal to `value`.
    pub fn stdout_json(mut self, value: serde_json::Value) -> Test {
        self.checks.push(Check::StdoutJson(value));
        self
    }

    /// The command, not yet started.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args).current_dir(&self.dir);
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    /// Started with stdout and stderr piped, for a test that signals it or reads it as it
    /// runs; [`Test::finish`] checks it once it ends.
    pub fn spawn(&self) -> std::process::Child {
        self.command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start parbake")
    }

    /// Run to the end, unchecked.
    pub fn output(&self) -> Run {
        let out = self.command().output().expect("run parbake");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run to the end, with every check.
    pub fn run(self) -> Run {
        let run = self.output();
        self.check(run)
    }

    /// Waits for `child` (from [`Test::spawn`]) and applies every check.
    pub fn finish(self, child: std::process::Child) -> Run {
        let out = child.wait_with_output().expect("wait for parbake");
        self.check(Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Run to the end, with every check; stdout as JSON.
    pub fn json(self) -> serde_json::Value {
        self.run().json()
    }

    fn check(&self, run: Run) -> Run {
        let shown = || {
            format!(
                "{} {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.program.to_string_lossy(),
                self.args.join(" "),
                run.stdout,
                run.stderr
            )
        };
        assert_eq!(run.code, self.code, "exit code\n{}", shown());
        for c in &self.checks {
            match c {
                Check::StdoutContains(t) => {
                    assert!(run.stdout.contains(t), "stdout lacks {t:?}\n{}", shown())
                }
                Check::StderrContains(t) => {
                    assert!(run.stderr.contains(t), "stderr lacks {t:?}\n{}", shown())
                }
                Check::StdoutIs(t) => assert_eq!(&run.stdout, t, "stdout\n{}", shown()),
                Check::StderrIs(t) => assert_eq!(&run.stderr, t, "stderr\n{}", shown()),
                Check::StdoutJson(v) => assert_eq!(&run.json(), v, "stdout JSON\n{}", shown()),
            }
        }
        run
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

/// The builder checks what it is told and fails when a check does not hold.
#[test]
fn the_test_builder_checks_the_exit_code_both_streams_and_json() {
    let f = Fixture::example();
    let store = tempfile::tempdir().unwrap();
    let images = || {
        f.parbake(&["images", "--target", "qemu", "--json"])
            .env("PARBAKE_STORE", store.path())
    };
    let run = images()
        .stdout_json(serde_json::json!([]))
        .stdout_is("[]\n")
        .stderr_is("")
        .run();
    assert_eq!(run.json(), serde_json::json!([]));
    f.parbake(&["prune", "--target", "qemu", "--dry-run"])
        .code(1)
        .stderr_contains("--keep <KEEP>")
        .run();
    for wrong in [
        images().code(1),
        images().stdout_contains("ami-"),
        images().stderr_contains("error"),
        images().stdout_json(serde_json::json!({})),
    ] {
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wrong.run()));
        assert!(failed.is_err(), "a check that does not hold passed");
    }
}
