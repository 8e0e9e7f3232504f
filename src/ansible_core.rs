//! The ansible-core `validate` checks a stack's playbooks with: the one its image runs (its
//! `ansible.core` pin, else its Debian base's package), so a role that needs a newer
//! ansible-core fails here, not at launch. The host's ansible-playbook when its version is
//! that one; else a venv per version, cached under `PARBAKE_ANSIBLE_CACHE` (default
//! `~/.cache/parbake/ansible-core`), made the first time with the host's python3 and pip from
//! PyPI. `PARBAKE_VALIDATE_ANSIBLE=host` keeps the host's, said as such.

use std::path::{Path, PathBuf};

use crate::config::ansible_version::{python_range, Version};
use crate::error::{Error, Result};
use crate::process::Cmd;
use crate::tools::Tools;

/// The ansible-playbook a check runs, and what to call it in the check's line.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub playbook: PathBuf,
    pub label: String,
}

/// The host's ansible-core version, from `ansible-playbook --version` (`[core 2.14.18]`).
pub fn host_version(tools: &Tools) -> Option<String> {
    let out = Cmd::new("read the ansible-core version", &tools.ansible_playbook)
        .arg("--version")
        .run_checked()
        .ok()?;
    let text = out.text();
    let core = text.split("[core ").nth(1)?;
    Some(core.split(']').next()?.trim().to_string())
}

/// Where a venv of ansible-core `version` is cached.
pub fn cache_dir(version: &str) -> PathBuf {
    let base = match std::env::var_os("PARBAKE_ANSIBLE_CACHE") {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
            home.join(".cache/parbake/ansible-core")
        }
    };
    base.join(version)
}

/// The ansible-playbook of ansible-core `core` (`whose`: the pin, or the base's package).
pub fn choose(tools: &Tools, host: Option<&str>, core: &str, whose: &str) -> Result<Chosen> {
    let host_label = |what: &str| Chosen {
        playbook: tools.ansible_playbook.clone(),
        label: what.to_string(),
    };
    let Some(host) = host else {
        // a host ansible-playbook whose version cannot be read (a wrapper): it is what there is
        return Ok(host_label(&format!(
            "the host's ansible-playbook (its version unread; the image runs {core})"
        )));
    };
    if host == core {
        return Ok(host_label(&format!("ansible-core {core}, {whose}")));
    }
    if std::env::var("PARBAKE_VALIDATE_ANSIBLE").as_deref() == Ok("host") {
        return Ok(host_label(&format!(
            "the host's ansible-core {host}, not the image's {core} (PARBAKE_VALIDATE_ANSIBLE=host)"
        )));
    }
    let dir = cache_dir(core);
    let playbook = dir.join("bin/ansible-playbook");
    if !playbook.exists() {
        install(tools, core, whose, &dir)?;
    }
    Ok(Chosen {
        playbook,
        label: format!("ansible-core {core}, {whose}"),
    })
}

/// A venv of ansible-core `core` at `dir`, built beside it and moved in whole.
fn install(tools: &Tools, core: &str, whose: &str, dir: &Path) -> Result<()> {
    let hint = format!(
        "the image runs ansible-core {core} ({whose}) and validate checks with it: give it a venv at {} (`python3 -m venv DIR && DIR/bin/pip install ansible-core=={core}`), or set PARBAKE_VALIDATE_ANSIBLE=host to check with the host's",
        dir.display()
    );
    check_python(tools, core).map_err(|e| e.with_hint(hint.clone()))?;
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    let partial = parent.join(format!(".{core}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let built = Cmd::new("make a venv for ansible-core", &tools.python3)
        .args(["-m", "venv"])
        .arg(&partial)
        .run_checked()
        .and_then(|_| {
            Cmd::new(
                format!("install ansible-core {core} from PyPI"),
                partial.join("bin/pip"),
            )
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("ansible-core=={core}"))
            .run_checked()
        });
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(Error::user(format!(
            "cannot install ansible-core {core} for the syntax checks: {e}"
        ))
        .with_hint(hint));
    }
    if !partial.join("bin/ansible-playbook").exists() {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(Error::user(format!(
            "installing ansible-core {core} for the syntax checks left no ansible-playbook"
        ))
        .with_hint(hint));
    }
    std::fs::rename(&partial, dir).map_err(|e| Error::io("move into place", dir, e))
}

/// The host's python3 must run ansible-core `core` as a controller.
fn check_python(tools: &Tools, core: &str) -> Result<()> {
    let (Some(version), Some(python)) = (Version::parse(core), python_version(tools)) else {
        return Ok(());
    };
    let Some((low, high)) = python_range(&version) else {
        return Ok(());
    };
    if python < low || python > high {
        return Err(Error::user(format!(
            "ansible-core {core} runs on Python {low} to {high}; this host's python3 is {python}"
        )));
    }
    Ok(())
}

fn python_version(tools: &Tools) -> Option<Version> {
    let out = Cmd::new("read the Python version", &tools.python3)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .run_checked()
        .ok()?;
    Version::parse(out.text().trim())
}
