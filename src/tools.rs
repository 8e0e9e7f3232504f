//! Where the external programs are: an environment override, then the project-local install
//! made by `make setup` (.venv, .tools), then PATH.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::packer_version::Version;
use crate::process::Cmd;

#[derive(Debug, Clone)]
pub struct Tools {
    pub packer: PathBuf,
    pub ansible_playbook: PathBuf,
    pub cloud_init: PathBuf,
    pub python3: PathBuf,
}

fn pick(env: &str, local: &[PathBuf], name: &str) -> PathBuf {
    if let Some(v) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    local
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(name))
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
            python3: pick(
                "PARBAKE_PYTHON3",
                &[PathBuf::from("/usr/bin/python3")],
                "python3",
            ),
        }
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
        Err(Error::user(message)
            .with_hint(format!(
                "Packer {version} runs the qemu and amazon builders as plugins; `packer init` installs the versions packer/plugins/required_plugins.pkr.hcl names, from github.com/hashicorp/qemu and github.com/hashicorp/amazon"
            ))
            .with_hint(
                "without access to GitHub: on a machine that has it, install the plugins into a directory (`PACKER_PLUGIN_PATH=DIR packer plugins install github.com/hashicorp/qemu VERSION`, and the same for amazon), copy DIR here and set PACKER_PLUGIN_PATH=DIR; README \"Packer versions\" names the versions",
            ))
    }
}
