//! Packer 1.6.6 and current Packer (1.14 with plugins amazon 1.8 and qemu 1.1), issue 11:
//! - progress told from Packer's output by content and shape, over recorded 1.6.6 samples (a
//!   null build, and an excerpt of a real qemu bake) and the same lines in the 1.13+ shape
//!   (tests/fixtures/packer-*.machine-readable.txt);
//! - `skip_credential_validation` exactly when an EC2 endpoint override is in use;
//! - `packer init` on 1.7+ only, once per build directory, with a clear error when it fails,
//!   run against tests/fixtures/fake-packer.py reporting another version and recording calls.
//!
//! The version decisions themselves have table tests in src/packer_version.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use parbake::bake::packer_output::{Line, Output};
use parbake::plan::{self, Target};
use parbake::render::{self, RenderOptions};

use crate::util::{repo, request, Fixture};

// ---- progress: what each line of `packer build -machine-readable` means -------------------

fn sample(name: &str) -> Vec<Output> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures").join(name)).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .flat_map(|raw| {
            Line::parse(raw)
                .unwrap_or_else(|| panic!("not machine-readable: {raw}"))
                .outputs()
        })
        .collect()
}

fn steps(outputs: &[Output]) -> Vec<&str> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Step(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

fn provisioner(text: &str) -> Output {
    Output::Provisioner(text.to_string())
}

#[test]
fn packer_output_recorded_1_6_6_sample() {
    let out = sample("packer-1.6.6.machine-readable.txt");
    // a step line
    assert_eq!(
        out[0],
        Output::Step("Running local shell script: /tmp/packer-shell2921910737".into())
    );
    // provisioner lines, commas unescaped, including one that looks like a step
    assert_eq!(out[1], provisioner("PLAY [parbake bake] ***"));
    assert_eq!(
        out[2],
        provisioner("TASK [nginx : Install nginx, quietly] ***")
    );
    assert_eq!(out[3], provisioner("changed: [localhost]"));
    // a PARBAKE-EVENT line
    match &out[4] {
        Output::Event(ev) => {
            assert_eq!(ev.event, "task");
            assert_eq!(ev.role.as_deref(), Some("nginx"));
            assert_eq!(ev.task.as_deref(), Some("Install nginx"));
            assert_eq!(ev.t, 1000.5);
        }
        other => panic!("not an event: {other:?}"),
    }
    assert_eq!(
        out[5],
        provisioner("==> not a step: provisioner text that looks like one")
    );
    assert!(out.contains(&provisioner(
        "fatal: [localhost]: FAILED! => {\"msg\": \"boom\"}"
    )));
    // an artifact line
    assert!(out.contains(&Output::Artifact("Null".into())), "{out:#?}");
    // an error line
    assert!(out.contains(&Output::Error(
        "Build 'null.layer' errored after 14 milliseconds 414 microseconds: Script exited with non-zero exit status: 3.Allowed exit codes are: [0]".into()
    )));
    // Packer's summaries are neither steps nor provisioner output
    assert!(out.contains(&Output::Note(
        "Build 'null.layer' finished after 14 milliseconds 142 microseconds.".into()
    )));
    assert!(out.contains(&Output::Note(
        "==> Wait completed after 14 milliseconds 318 microseconds".into()
    )));
    // and the steps are exactly Packer's own
    assert_eq!(
        steps(&out),
        [
            "Running local shell script: /tmp/packer-shell2921910737",
            "Running local shell script: /tmp/packer-shell624012809",
            "Provisioning step had errors: Running the cleanup provisioner, if present...",
        ]
    );
}

#[test]
fn packer_output_1_13_shape_means_what_1_6_6_meant() {
    let old = sample("packer-1.6.6.machine-readable.txt");
    let new = sample("packer-1.13.machine-readable.txt");
    // the samples differ only in how provisioner output arrives
    let raw = |n: &str| std::fs::read_to_string(repo().join("tests/fixtures").join(n)).unwrap();
    assert!(raw("packer-1.6.6.machine-readable.txt").contains(",ui,message,    null.layer: "));
    assert!(!raw("packer-1.13.machine-readable.txt").contains(",ui,message,"));
    assert_eq!(new, old);
}

/// A real qemu bake's output (1.6.6), and the same lines in the 1.13+ shape.
#[test]
fn packer_output_recorded_qemu_bake_in_both_shapes() {
    let name = "packer-1.6.6-qemu-bake.machine-readable.txt";
    let text = std::fs::read_to_string(repo().join("tests/fixtures").join(name)).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    // Packer 1.13+: provisioner and builder messages come as `say` with the step prefix
    let shape_1_13: Vec<String> = lines
        .iter()
        .map(|l| match l.split_once(",ui,message,") {
            Some((head, data)) => format!(
                "{head},ui,say,{}",
                data.replace("    qemu.layer:", "==> qemu.layer:")
            ),
            None => l.to_string(),
        })
        .collect();
    let parse = |ls: &[&str]| -> Vec<Output> {
        ls.iter()
            .flat_map(|l| Line::parse(l).unwrap().outputs())
            .collect()
    };
    let old = parse(&lines);
    let new = parse(&shape_1_13.iter().map(String::as_str).collect::<Vec<_>>());

    // 1.6.6: the steps are Packer's `say` lines, but for the one that is a bare path
    let says: Vec<String> = lines
        .iter()
        .filter_map(|l| l.split_once(",ui,say,==> qemu.layer: "))
        .map(|(_, t)| t.replace("%!(PACKER_COMMA)", ","))
        .collect();
    let not_steps: Vec<&String> = says
        .iter()
        .filter(|s| !steps(&old).contains(&s.as_str()))
        .collect();
    assert_eq!(not_steps.len(), 1, "{not_steps:?}");
    assert!(not_steps[0].starts_with("/var/cache/parbake/base/"));
    assert_eq!(steps(&old).len(), says.len() - 1);

    // the events are the same in both shapes
    let events = |o: &[Output]| -> Vec<String> {
        o.iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(format!("{e:?}")),
                _ => None,
            })
            .collect()
    };
    let event_lines = lines.iter().filter(|l| l.contains("PARBAKE-EVENT")).count();
    assert_eq!(events(&old).len(), event_lines);
    assert_eq!(events(&new), events(&old));

    // once provisioning starts, the steps are the same in both shapes: no Ansible line is one
    let provisioning = |o: &[Output]| -> Vec<String> {
        let s = steps(o);
        let at = s
            .iter()
            .position(|t| t.starts_with("Provisioning with shell script"))
            .unwrap();
        s[at..].iter().map(|t| t.to_string()).collect()
    };
    assert_eq!(provisioning(&new), provisioning(&old));
    assert_eq!(
        provisioning(&old).last().unwrap(),
        "Converting hard drive..."
    );
    for step in steps(&new) {
        assert!(
            !step.contains("[localhost]") && !step.ends_with("***") && !step.is_empty(),
            "{step}"
        );
    }
}

// ---- skip_credential_validation -----------------------------------------------------------

#[test]
fn skip_credential_validation_exactly_with_an_endpoint_override() {
    let f = Fixture::example();
    let project = f.load();
    let plan = plan::plan(&project, &request("web", &["nginx"], Target::Aws)).unwrap();
    for (endpoint, skip) in [("", false), ("http://127.0.0.1:5000", true)] {
        let opts = RenderOptions {
            aws: render::AwsOptions {
                ec2_endpoint: endpoint.into(),
                ..Default::default()
            },
            ..RenderOptions::default()
        };
        let files = render::render_all(&project, &plan, &opts).unwrap();
        let mut var_files = 0;
        for file in &files {
            if file.path.ends_with(render::packer::VAR_FILE) {
                var_files += 1;
                let v: serde_json::Value = serde_json::from_slice(&file.contents).unwrap();
                assert_eq!(v["endpoint_ec2"], endpoint, "{}", file.path);
                assert_eq!(v["skip_credential_validation"], skip, "{}", file.path);
                assert_eq!(v["skip_region_validation"], skip, "{}", file.path);
            }
            if file.path.ends_with(render::packer::TEMPLATE_FILE) {
                // both sources (the provisioned one and the test-only no-provision one)
                let text = String::from_utf8(file.contents.clone()).unwrap();
                let set = text
                    .lines()
                    .filter(|l| {
                        let l: Vec<&str> = l.split_whitespace().collect();
                        l == [
                            "skip_credential_validation",
                            "=",
                            "var.skip_credential_validation",
                        ]
                    })
                    .count();
                assert_eq!(set, 2, "{}", file.path);
            }
        }
        assert_eq!(var_files, 2, "one var-file per layer");
    }
}

// ---- packer init, with a stand-in Packer of another version --------------------------------

/// A temp dir with the stand-in's call log and plugin directory.
struct FakePacker {
    dir: tempfile::TempDir,
    version: &'static str,
}

impl FakePacker {
    fn new(version: &'static str) -> FakePacker {
        FakePacker {
            dir: tempfile::tempdir().unwrap(),
            version,
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The real parbake in `root`, with the stand-in Packer and no-op ansible and cloud-init.
    fn parbake(&self, root: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_parbake"));
        c.args(args)
            .current_dir(root)
            .env(
                "PARBAKE_PACKER",
                repo().join("tests/fixtures/fake-packer.py"),
            )
            .env("FAKE_PACKER_VERSION", self.version)
            .env("FAKE_PACKER_CALLS", self.dir.path().join("calls"))
            .env("FAKE_PACKER_SECONDS", "0")
            .env("PACKER_PLUGIN_PATH", self.dir.path().join("plugins"))
            .env("PARBAKE_ANSIBLE_PLAYBOOK", "true")
            .env("PARBAKE_CLOUD_INIT", "true")
            .env("PARBAKE_ACCEL", "tcg")
            .env("PARBAKE_STORE", self.store())
            .env_remove("FAKE_PACKER_INIT_FAIL")
            .env_remove("FAKE_PACKER_FAIL")
            .env_remove("PARBAKE_PROJECT");
        c
    }

    /// Every call but `version`: (command, directory).
    fn calls(&self) -> Vec<(String, PathBuf)> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("version"))
            .map(|l| {
                let (argv, cwd) = l.split_once('\t').unwrap();
                (argv.to_string(), PathBuf::from(cwd))
            })
            .collect()
    }
}

fn output(mut c: Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_runs_packer_init_only_on_1_7_and_later() {
    let f = Fixture::example();
    for (version, init) in [("1.6.6", false), ("1.7.0", true), ("1.14.3", true)] {
        let fake = FakePacker::new(version);
        let (code, stdout, stderr) = output(fake.parbake(
            f.root(),
            &["validate", "worker", "--target", "qemu", "--json"],
        ));
        // the stand-in fails `validate` on 1.7+ until `init` has run, and on 1.6.6 when
        // required_plugins.pkr.hcl is there
        assert_eq!(code, 0, "Packer {version}: {stderr}");
        let calls = fake.calls();
        let inits: Vec<_> = calls.iter().filter(|(c, _)| c == "init .").collect();
        assert_eq!(
            inits.len(),
            usize::from(init),
            "Packer {version}: {calls:?}"
        );
        let validates = calls
            .iter()
            .filter(|(c, _)| c.starts_with("validate"))
            .count();
        assert!(validates >= 2, "{calls:?}");
        if init {
            assert_eq!(calls[0].0, "init .", "init comes first: {calls:?}");
        }
        let checks: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
        let init_checks: Vec<_> = checks
            .iter()
            .filter(|c| c["validator"] == "packer init")
            .collect();
        assert_eq!(init_checks.len(), usize::from(init), "{stdout}");
        if init {
            assert!(init_checks[0]["output"]
                .as_str()
                .unwrap()
                .contains("Installed plugin github.com/hashicorp/qemu"));
        }
    }
}

#[test]
fn validate_without_the_plugin_source_fails_with_a_hint_for_offline_machines() {
    let f = Fixture::example();
    let fake = FakePacker::new("1.14.3");
    let mut c = fake.parbake(f.root(), &["validate", "worker", "--target", "qemu"]);
    c.env("FAKE_PACKER_INIT_FAIL", "1");
    let (code, _, stderr) = output(c);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: `packer init` could not install the Packer plugins"),
        "{stderr}"
    );
    assert!(stderr.contains("no such host"), "the init output: {stderr}");
    assert!(
        stderr.contains("hint:") && stderr.contains("PACKER_PLUGIN_PATH"),
        "{stderr}"
    );
    assert!(
        !fake.calls().iter().any(|(c, _)| c.starts_with("validate")),
        "nothing is validated without the plugins"
    );
}

/// Issue 25: Packer 1.7 to 1.13 cannot install the pinned plugins at all (their releases are
/// not on GitHub); a failed `packer init` there says so and names Packer 1.14, while on 1.14+
/// it says where the plugins come from instead.
#[test]
fn a_failed_packer_init_says_when_this_packer_cannot_install_the_pins() {
    let f = Fixture::example();
    for (version, cannot) in [("1.10.0", true), ("1.14.3", false)] {
        let fake = FakePacker::new(version);
        let mut c = fake.parbake(f.root(), &["validate", "worker", "--target", "qemu"]);
        c.env("FAKE_PACKER_INIT_FAIL", "1");
        let (code, _, stderr) = output(c);
        assert_eq!(code, 1, "{stderr}");
        let said = stderr.contains(&format!(
            "hint: Packer {version} cannot install github.com/hashicorp/qemu `~> 1.1.4`"
        ));
        assert_eq!(said, cannot, "Packer {version}: {stderr}");
        assert_eq!(
            stderr.contains("install Packer 1.14.0 or newer (docs/setup.md)"),
            cannot,
            "{stderr}"
        );
        // the example carries its own copy of the pins: the error names it
        assert!(
            stderr.contains(
                "hint: the plugins come from packer/plugins/required_plugins.pkr.hcl, this \
                 project's own file"
            ),
            "{stderr}"
        );
        let from = if cannot {
            "their GitHub releases"
        } else {
            "releases.hashicorp.com"
        };
        assert!(stderr.contains(from), "Packer {version}: {stderr}");
    }
}

/// One image on a fake local base disk, and a stack that promotes its role: two layers.
fn qemu_project() -> Fixture {
    let f = Fixture::bare();
    f.role("base", &[]).role("app", &[]);
    for file in ["disk.qcow2", "vmlinuz", "initrd.img"] {
        f.write(&format!("base/img/{file}"), "fake");
    }
    f.write(
        "images/img.yml",
        "sources:\n  qemu:\n    disk_image: base/img/disk.qcow2\n    ssh_user: debian\nbasic: [base]\n",
    );
    f.write("images/stacks/s.yml", "image: img\nroles: [app]\n");
    f
}

/// The progress lines a bake printed on stderr, without their times.
fn progress_steps(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split_once("s] ").filter(|_| l.starts_with('[')))
        .map(|(_, step)| step.to_string())
        .collect()
}

#[test]
fn bake_runs_packer_init_once_per_build_dir_with_its_output_in_the_log() {
    let f = qemu_project();
    let mut seen = Vec::new();
    for (version, init) in [("1.6.6", false), ("1.14.3", true)] {
        let fake = FakePacker::new(version);
        let (code, stdout, stderr) =
            output(fake.parbake(f.root(), &["bake", "s", "--promote", "app", "--json"]));
        assert_eq!(code, 0, "Packer {version}: {stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let layers = report["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        // each build directory: `init` once (1.7+), then `build`, in that directory
        let calls = fake.calls();
        let builds: Vec<&PathBuf> = calls
            .iter()
            .filter(|(c, _)| c.starts_with("build"))
            .map(|(_, d)| d)
            .collect();
        assert_eq!(builds.len(), 2, "{calls:?}");
        assert_ne!(builds[0], builds[1]);
        for dir in builds {
            let here: Vec<&str> = calls
                .iter()
                .filter(|(_, d)| d == dir)
                .map(|(c, _)| c.split(' ').next().unwrap())
                .collect();
            let want: &[&str] = if init { &["init", "build"] } else { &["build"] };
            assert_eq!(here, want, "Packer {version} in {}", dir.display());
        }
        // the log starts with the version parbake saw, then init's output
        let log = std::fs::read_to_string(layers[0]["log"].as_str().unwrap()).unwrap();
        assert!(
            log.starts_with(&format!("parbake: Packer {version}: ")),
            "{log}"
        );
        assert_eq!(
            log.contains("Installed plugin github.com/hashicorp/qemu v1.1.4"),
            init,
            "{log}"
        );
        // the provisioner's Ansible output is never a progress step, in either shape
        let steps = progress_steps(&stderr);
        for step in &steps {
            for ansible in ["PLAY", "TASK [", "changed: [", "localhost : ok="] {
                assert!(!step.contains(ansible), "Packer {version}: {step}");
            }
        }
        assert!(
            steps
                .iter()
                .any(|s| s.ends_with("Waiting for SSH to become available...")),
            "{stderr}"
        );
        assert!(steps.iter().any(|s| s.ends_with("role app")), "{stderr}");
        seen.push(
            steps
                .into_iter()
                .filter(|s| !s.contains("packer init"))
                .collect::<Vec<_>>(),
        );
    }
    // and what progress shows does not depend on how Packer sent the lines
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn bake_without_the_plugin_source_fails_with_a_hint_and_keeps_the_log() {
    let f = qemu_project();
    let fake = FakePacker::new("1.14.3");
    let mut c = fake.parbake(f.root(), &["bake", "s"]);
    c.env("FAKE_PACKER_INIT_FAIL", "1");
    let (code, _, stderr) = output(c);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: `packer init` could not install the Packer plugins"),
        "{stderr}"
    );
    assert!(stderr.contains("PACKER_PLUGIN_PATH"), "{stderr}");
    let log = stderr
        .lines()
        .find_map(|l| l.strip_prefix("hint: the full output is in "))
        .unwrap_or_else(|| panic!("no log named: {stderr}"));
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("no such host"), "{text}");
    assert!(
        !fake.calls().iter().any(|(c, _)| c.starts_with("build")),
        "nothing is built without the plugins"
    );
}
