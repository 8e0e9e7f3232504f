//! Where the external programs are: an environment override (`PARBAKE_PACKER`,
//! `PARBAKE_ANSIBLE_PLAYBOOK`, ...), then `PATH`, then the directory of the parbake binary.
//! A project's own `.venv` and `.tools` (what `make setup` installs) are used only when the
//! user asks for them with `PARBAKE_PROJECT_TOOLS=1`, and are then tried first: a tree that
//! `--project` names is not trusted to supply programs by default.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::packer_version::Version;
use crate::process::Cmd;

/// Set to `1` to run the project's `.venv/bin` and `.tools/bin` programs.
pub const PROJECT_TOOLS_ENV: &str = "PARBAKE_PROJECT_TOOLS";

#[derive(Debug, Clone)]
pub struct Tools {
    pub packer: PathBuf,
    pub ansible_playbook: PathBuf,
    pub cloud_init: PathBuf,
    pub python3: PathBuf,
}

/// Whether the user asked for the project's own programs (`PARBAKE_PROJECT_TOOLS=1`).
pub fn project_tools_allowed() -> bool {
    std::env::var_os(PROJECT_TOOLS_ENV).is_some_and(|v| v == "1")
}

/// A program: `env` when set; the project's `local` copies when allowed; `name` on PATH;
/// `name` beside the parbake binary; else the bare name (its run then fails with the
/// install hint).
pub fn pick(env: &str, local: &[PathBuf], name: &str) -> PathBuf {
    if let Some(v) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    let local = local.iter().filter(|_| project_tools_allowed()).cloned();
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .filter(|d| d.is_absolute())
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)));
    local
        .chain(on_path)
        .chain(beside)
        .find(|p| is_executable(p))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Tools {
    pub fn locate(root: &Path) -> Tools {
        Tools {
            packer: pick("PARBAKE_PACKER", &[], "packer"),
            ansible_playbook: pick(
                "PARBAKE_ANSIBLE_PLAYBOOK",
                &[root.join(".venv/bin/ansible-playbook")],
                "ansible-playbook",
            ),
            cloud_init: pick(
                "PARBAKE_CLOUD_INIT",
                &[root.join(".tools/bin/cloud-init")],
                "cloud-init",
            ),
            // the system's python3 (not the project's) runs the on-image runner's shim builder
            python3: match std::env::var_os("PARBAKE_PYTHON3").filter(|v| !v.is_empty()) {
                None if is_executable(Path::new("/usr/bin/python3")) => {
                    PathBuf::from("/usr/bin/python3")
                }
                _ => pick("PARBAKE_PYTHON3", &[], "python3"),
            },
        }
    }

    /// Each program and the path chosen for it, for reports.
    pub fn chosen(&self) -> [(&'static str, &Path); 4] {
        [
            ("packer", &self.packer),
            ("ansible-playbook", &self.ansible_playbook),
            ("cloud-init", &self.cloud_init),
            ("python3", &self.python3),
        ]
    }

    /// The installed Packer's version (`0.0.0` when its `packer version` cannot be read).
    pub fn packer_version(&self) -> Result<Version, crate::process::ProcessError> {
        let out = Cmd::new("read the Packer version", &self.packer)
            .arg("version")
            .run_checked()?;
        Ok(Version::parse(&out.text()).unwrap_or_default())
    }

    /// `packer init` in `dir`, for Packer 1.7+: installs the plugins `required_plugins.pkr.hcl`
    /// names, unless a matching version is installed already (then it needs no network). Each
    /// output line goes to `on_line`; the output is returned. A failure is a user error that
    /// says how to install the plugins without GitHub.
    pub fn packer_init(
        &self,
        dir: &Path,
        version: Version,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, Error> {
        let out = Cmd::new("install the Packer plugins", &self.packer)
            .args(["init", "."])
            .env("CHECKPOINT_DISABLE", "1")
            .env("PACKER_NO_COLOR", "1")
            .cwd(dir)
            .run_streaming(&mut on_line)?;
        if out.success() {
            return Ok(out.text());
        }
        let mut message = format!(
            "`packer init` could not install the Packer plugins ({})",
            match out.code {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".into(),
            }
        );
        for l in out.tail(15) {
            message.push_str("\n  | ");
            message.push_str(&l);
        }
        let mut err = Error::user(message).with_hint(format!(
            "Packer {version} runs the qemu and amazon builders as plugins; `packer init` installs the versions required_plugins.pkr.hcl names, from {}",
            crate::packer_version::official_plugins_from(version)
        ));
        for hint in crate::packer_version::init_hints(version, &rendered_plugins(dir)) {
            err = err.with_hint(hint);
        }
        Err(err.with_hint(
            "without access to it: on a machine that has it, install the plugins into a directory (`PACKER_PLUGIN_PATH=DIR packer plugins install github.com/hashicorp/qemu VERSION`, and the same for amazon), copy DIR here and set PACKER_PLUGIN_PATH=DIR; docs/setup.md has the steps",
        ))
    }
}

/// The `required_plugins.pkr.hcl` parbake rendered in `dir` (empty if it cannot be read: the
/// hints that need it are then left out).
fn rendered_plugins(dir: &Path) -> String {
    let file = dir.join(crate::render::packer::PLUGINS_FILE);
    crate::fsread::read_text(dir, &file, 64 * 1024).unwrap_or_default()
}
