//! `parbake vendor [--force]`: installs the roles and collections of `requirements.yml` into
//! `vendor/` with the real `ansible-galaxy`, and writes `requirements.lock.json`. Runs before
//! the project is loaded, so that it can repair a stale vendor directory that `plan` refuses.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::printer::Printer;
use crate::vendoring::{self, Lock};

#[derive(Debug, clap::Args)]
pub struct VendorArgs {
    /// Install again even when vendor/ and the lock already match requirements.yml.
    #[arg(long)]
    pub force: bool,
}

/// The report: the lock, and whether anything was installed.
#[derive(Debug, Serialize)]
pub struct VendorReport {
    pub up_to_date: bool,
    pub lock: Lock,
}

pub fn run(root: &Path, printer: Printer, args: &VendorArgs) -> Result<()> {
    let galaxy = ansible_galaxy(root);
    // the files as found; an error finding them is the vendor run's, below
    let files = match vendoring::requirements::find(root) {
        Ok(Some(found)) => found.shown(),
        _ => vendoring::REQUIREMENTS_FILE.to_string(),
    };
    printer.note(format!(
        "vendoring {files} into {}/ with {}",
        vendoring::VENDOR_DIR,
        galaxy.display()
    ));
    let outcome = vendoring::install::vendor(root, &galaxy, args.force, |line| {
        printer.note(format!("  | {line}"));
    })?;
    let report = VendorReport {
        up_to_date: outcome.up_to_date,
        lock: outcome.lock,
    };
    printer.data(&report, text)
}

/// `ansible-galaxy`: PARBAKE_ANSIBLE_GALAXY; the project's .venv only with
/// PARBAKE_PROJECT_TOOLS=1; the one beside an ansible-playbook named by
/// PARBAKE_ANSIBLE_PLAYBOOK; then PATH and the parbake binary's directory.
pub(crate) fn ansible_galaxy(root: &Path) -> PathBuf {
    if let Some(v) = std::env::var_os("PARBAKE_ANSIBLE_GALAXY").filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    let beside = std::env::var_os("PARBAKE_ANSIBLE_PLAYBOOK")
        .filter(|v| !v.is_empty())
        .and_then(|p| PathBuf::from(p).parent().map(|d| d.join("ansible-galaxy")))
        .filter(|p| p.is_file());
    let venv = Some(root.join(".venv/bin/ansible-galaxy"))
        .filter(|p| crate::tools::project_tools_allowed() && p.is_file());
    venv.or(beside)
        .unwrap_or_else(|| crate::tools::pick("PARBAKE_ANSIBLE_GALAXY", &[], "ansible-galaxy"))
}

fn text(r: &VendorReport) -> String {
    let lock = &r.lock;
    let mut s = format!(
        "{} {} role(s) and {} collection(s) ({})\n",
        if r.up_to_date {
            "up to date:"
        } else {
            "vendored"
        },
        lock.roles.len(),
        lock.collections.len(),
        vendoring::LOCK_FILE
    );
    let short = |h: &str| {
        h.trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>()
    };
    let from = |req: &Option<vendoring::Requested>| match req {
        Some(q) => format!("{} {}", q.source, q.src),
        None => "dependency".to_string(),
    };
    for role in &lock.roles {
        s.push_str(&format!(
            "role        {:<32} {:<12} {}  {}\n",
            role.name,
            role.version.as_deref().unwrap_or("-"),
            short(&role.hash),
            from(&role.requested)
        ));
    }
    for c in &lock.collections {
        let requires = c
            .requires_ansible
            .as_deref()
            .map(|r| format!("  (ansible {r})"))
            .unwrap_or_default();
        s.push_str(&format!(
            "collection  {:<32} {:<12} {}  {}{requires}\n",
            c.name,
            c.version,
            short(&c.hash),
            from(&c.requested)
        ));
    }
    s
}
