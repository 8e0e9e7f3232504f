//! `group_vars/` at the project root, read the way Ansible reads an inventory's group_vars for
//! a host in groups `all` and its stack's name: `group_vars/all.yml` (or `.yaml`, `.json`, or a
//! directory `group_vars/all/` of such files, in name order), then the same for the stack.
//!
//! They are vars like an image's `vars`, with the lowest precedence of parbake's vars: the
//! shared base layer sees `all`, a stack layer and the launch see `all` then the stack's group,
//! and the image's and stack's own `vars`/`launch_vars` override both (see the README). So
//! they are hashed into the layers that run roles, like every bake-time var. Groups named after
//! no stack are never read (no instance is in them).

use std::collections::BTreeMap;
use std::path::Path;

use super::vars::{self, Vars};
use super::yaml::SourceFile;
use super::ConfigError;

/// Vars of group `all` and of each stack's group.
#[derive(Debug, Clone, Default)]
pub struct GroupVars {
    pub all: Vars,
    pub stacks: BTreeMap<String, Vars>,
}

impl GroupVars {
    /// The group vars an instance of `stack` sees: `all`, then the stack's group.
    pub fn for_stack(&self, stack: &str) -> Vars {
        let mut v = self.all.clone();
        v.extend(self.stacks.get(stack).cloned().unwrap_or_default());
        v
    }
}

const EXTENSIONS: [&str; 3] = ["yml", "yaml", "json"];

pub fn load<'a>(
    root: &Path,
    stacks: impl Iterator<Item = &'a String>,
) -> Result<GroupVars, ConfigError> {
    let dir = root.join("group_vars");
    if !dir.is_dir() {
        return Ok(GroupVars::default());
    }
    let mut out = GroupVars {
        all: group(root, "all")?,
        stacks: BTreeMap::new(),
    };
    for s in stacks {
        let v = group(root, s)?;
        if !v.is_empty() {
            out.stacks.insert(s.clone(), v);
        }
    }
    Ok(out)
}

/// One group's vars: its file, then its directory's files in name order, later files winning.
fn group(root: &Path, name: &str) -> Result<Vars, ConfigError> {
    let mut vars = Vars::new();
    for rel in group_files(root, name)? {
        let path = root.join(&rel);
        // inside the project after resolving links, like role trees (issue 21, item 4)
        let text = crate::fsread::read_text(root, &path, crate::fsread::CONFIG_LIMIT)?;
        let file = SourceFile::new(rel, text);
        if file.text.trim().is_empty() {
            continue;
        }
        let raw: BTreeMap<String, serde_yaml::Value> = file.parse()?;
        vars.extend(vars::check(&file, "", &raw, false)?);
    }
    Ok(vars)
}

/// A group_vars entry that is there and not a directory: a FIFO, a dangling link or a link
/// out of the project is then read, and refused by the reading rule, never skipped.
fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok() && !path.is_dir()
}

/// `group_vars/NAME.{yml,yaml,json}` and `group_vars/NAME/*.{yml,yaml,json}`, relative to root.
fn group_files(root: &Path, name: &str) -> Result<Vec<String>, ConfigError> {
    let mut files = Vec::new();
    for ext in EXTENSIONS {
        let rel = format!("group_vars/{name}.{ext}");
        if present(&root.join(&rel)) {
            files.push(rel);
        }
    }
    let dir = root.join("group_vars").join(name);
    if dir.is_dir() {
        let entries = std::fs::read_dir(&dir).map_err(|source| ConfigError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| present(&e.path()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                !n.starts_with('.') && EXTENSIONS.iter().any(|x| n.ends_with(&format!(".{x}")))
            })
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|n| format!("group_vars/{name}/{n}")));
    }
    Ok(files)
}
