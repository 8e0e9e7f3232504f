//! Where the external programs are: an environment override, then the project-local install
//! made by `make setup` (.venv, .tools), then PATH.

use std::path::{Path, PathBuf};

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

    /// `(major, minor, patch)` of the installed Packer.
    pub fn packer_version(&self) -> Result<(u32, u32, u32), crate::process::ProcessError> {
        let out = Cmd::new("read the Packer version", &self.packer)
            .arg("version")
            .run_checked()?;
        Ok(parse_packer_version(&out.text()).unwrap_or((0, 0, 0)))
    }
}

/// Parses `Packer v1.6.6` (and `Packer v1.11.2 ...`).
pub fn parse_packer_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut it = v.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

/// Packer 1.7 introduced `required_plugins`; 1.6.6 rejects the block.
pub fn is_modern_packer(v: (u32, u32, u32)) -> bool {
    v >= (1, 7, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn packer_versions() {
        assert_eq!(parse_packer_version("Packer v1.6.6\n"), Some((1, 6, 6)));
        assert_eq!(
            parse_packer_version("Packer v1.11.2\n\nYour version..."),
            Some((1, 11, 2))
        );
        assert!(!is_modern_packer((1, 6, 6)));
        assert!(is_modern_packer((1, 11, 2)));
    }
}
