//! `parbake init --base B [--from PLAYBOOK]` in an existing Ansible repository: writes
//! `images/<base>.yml`, and one stack per play of the playbook, never over an existing file,
//! and lists what the plays hold that a stack cannot carry.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::names::valid_region;
use crate::config::yaml::SourceFile;
use crate::error::{Error, Result};
use crate::init::{Base, File, NotCarried};
use crate::printer::Printer;

/// A playbook is read up to this size.
const MAX_PLAYBOOK_BYTES: u64 = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The base image: debian-12 (local target and AWS), debian-13 or ubuntu-24.04 (AWS).
    #[arg(long, value_enum)]
    pub base: Base,
    /// A playbook whose plays become stacks (one per `hosts` group), e.g. site.yml.
    #[arg(long, value_name = "PLAYBOOK")]
    pub from: Option<PathBuf>,
    /// The AWS region of the image's aws source.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

#[derive(Debug, Serialize)]
pub struct InitReport {
    pub root: PathBuf,
    pub written: Vec<String>,
    pub stacks: std::collections::BTreeMap<String, Vec<String>>,
    pub not_carried: Vec<NotCarried>,
}

/// `root` is the directory init writes into (the working directory, or `--project`).
pub fn run(root: &Path, printer: Printer, args: &InitArgs) -> Result<()> {
    if !valid_region(&args.region) {
        return Err(Error::user(format!("invalid --region `{}`", args.region))
            .with_hint("give an AWS region such as us-east-1 or eu-west-1"));
    }
    let roles = known_roles(root)?;
    let image = args.base.image_name();
    let mut files = vec![crate::init::image_file(args.base, &args.region, &roles)];
    let (stacks, not_carried) = match &args.from {
        Some(p) => playbook_stacks(root, p, &roles)?,
        None => (Vec::new(), Vec::new()),
    };
    files.extend(stacks.iter().map(|s| crate::init::stack_file(s, image)));
    refuse_existing(root, &files)?;
    write_all(root, &files)?;
    let report = InitReport {
        root: root.to_path_buf(),
        written: files.iter().map(|f| f.path.clone()).collect(),
        stacks: crate::init::names(&stacks),
        not_carried,
    };
    printer.data(&report, text)
}

/// The roles on the project's roles path (`roles/`, then `ansible.cfg`'s `roles_path`) and
/// those `requirements.yml` names, sorted.
fn known_roles(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for dir in crate::config::ansible_cfg::roles_path(root)?.dirs {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        out.extend(
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().to_str().map(str::to_string)),
        );
    }
    // the roles requirements.yml asks for, which `parbake vendor` installs
    if let Some(reqs) = crate::vendoring::Requirements::load(root)? {
        out.extend(reqs.roles.iter().filter_map(|r| r.name.clone()));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The playbook's plays as stacks, read under the reading rule (inside the project, regular,
/// bounded).
fn playbook_stacks(
    root: &Path,
    playbook: &Path,
    roles: &[String],
) -> Result<(Vec<crate::init::Stack>, Vec<NotCarried>)> {
    let path = root.join(playbook);
    let text = crate::fsread::read_text(root, &path, MAX_PLAYBOOK_BYTES).map_err(|e| {
        let hint = e.hint();
        Error::user(e.to_string()).with_hint(hint)
    })?;
    let src = SourceFile::ansible(playbook.display().to_string(), text);
    Ok(crate::init::from_playbook(&src, roles)?)
}

/// Every file init would write must not exist yet: init never overwrites one.
fn refuse_existing(root: &Path, files: &[File]) -> Result<()> {
    for f in files {
        if std::fs::symlink_metadata(root.join(&f.path)).is_ok() {
            return Err(Error::user(format!(
                "{} exists: init never overwrites a file",
                f.path
            ))
            .with_hint("remove or rename it and run init again, or edit it by hand; nothing was written"));
        }
    }
    Ok(())
}

/// Writes each file new (never through a link or over a file); if one fails, the ones written
/// before it are removed, so nothing is left half done.
fn write_all(root: &Path, files: &[File]) -> Result<()> {
    let mut written: Vec<PathBuf> = Vec::new();
    for f in files {
        let path = root.join(&f.path);
        if let Err(e) = write_new(&path, f.text.as_bytes()) {
            for p in &written {
                let _ = std::fs::remove_file(p);
            }
            return Err(e);
        }
        written.push(path);
    }
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io("write", path, e))
}

fn text(r: &InitReport) -> String {
    let mut s = String::new();
    for w in &r.written {
        s.push_str(&format!("wrote {w}\n"));
    }
    for (stack, roles) in &r.stacks {
        s.push_str(&format!("stack {stack}: {}\n", roles.join(", ")));
    }
    if !r.not_carried.is_empty() {
        s.push_str("not carried over (the plays hold them; a stack cannot):\n");
        for n in &r.not_carried {
            s.push_str(&format!("  {}: {}: {}; {}\n", n.at, n.what, n.why, n.todo));
        }
    }
    s.push_str("next: choose the image's `basic` roles, then `parbake plan STACK`\n");
    s
}
