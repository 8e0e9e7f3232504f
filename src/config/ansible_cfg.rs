//! The project's `ansible.cfg`, read as Ansible reads it (Python's configparser, strict): only
//! `[defaults] roles_path`, which says where the team's roles live. Its entries are searched in
//! order after `roles/`, as Ansible searches them after the playbook's own `roles/`; the first
//! role of a name wins. An entry must stay inside the project; one that does not exist is a
//! warning unless none does.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::yaml::SourceFile;
use super::ConfigError;

pub const ANSIBLE_CFG: &str = "ansible.cfg";

/// Where the roles are: directories relative to the project root, in search order, and the
/// warnings about entries that do not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolesPath {
    pub dirs: Vec<String>,
    pub warnings: Vec<String>,
}

/// The role directories of the project at `root`: `roles/`, then `ansible.cfg`'s `roles_path`
/// entries that exist. Without an `ansible.cfg` (or without `roles_path`), `roles/` alone.
pub fn roles_path(root: &Path) -> Result<RolesPath, ConfigError> {
    let cfg = root.join(ANSIBLE_CFG);
    if std::fs::symlink_metadata(&cfg).is_err() {
        return Ok(RolesPath {
            dirs: vec!["roles".into()],
            warnings: Vec::new(),
        });
    }
    let text = crate::fsread::read_text(root, &cfg, 1 << 20)?;
    let src = SourceFile::ansible(ANSIBLE_CFG, text);
    let sections = parse_ini(&src)?;
    let Some((value, line)) = sections.get("defaults").and_then(|d| d.get("roles_path")) else {
        return Ok(RolesPath {
            dirs: vec!["roles".into()],
            warnings: Vec::new(),
        });
    };
    entries(root, &src, value, *line)
}

/// Each `roles_path` entry (`:`-separated), checked: inside the project, existing.
fn entries(
    root: &Path,
    src: &SourceFile,
    value: &str,
    line: usize,
) -> Result<RolesPath, ConfigError> {
    let mut out = RolesPath {
        dirs: vec!["roles".into()],
        warnings: Vec::new(),
    };
    let mut existing = 0;
    for entry in value.split(':').map(str::trim).filter(|e| !e.is_empty()) {
        let rel = inside(root, entry).ok_or_else(|| {
            src.error_at(line, 1, Some("roles_path".into()), format!("roles_path entry `{entry}` leaves the project"))
                .with_hint("parbake reads roles only inside the project: give a path relative to ansible.cfg, such as roles or ../ inside it")
        })?;
        if !root.join(&rel).is_dir() {
            out.warnings.push(format!(
                "{ANSIBLE_CFG}:{line}: roles_path entry `{entry}` does not exist; it is skipped, as Ansible skips it"
            ));
            continue;
        }
        check_no_link_out(root, &rel, src, line, entry)?;
        existing += 1;
        if !out.dirs.contains(&rel) {
            out.dirs.push(rel);
        }
    }
    if existing == 0 && !root.join("roles").is_dir() {
        return Err(src
            .error_at(
                line,
                1,
                Some("roles_path".into()),
                "no roles_path entry exists, and there is no roles/",
            )
            .with_hint("create the role directories, or point roles_path at the ones you have")
            .into());
    }
    Ok(out)
}

/// `entry` as a normalized path relative to `root`, or None when it leaves it (an absolute
/// path outside, `..` above the root, `~`).
fn inside(root: &Path, entry: &str) -> Option<String> {
    if entry.starts_with('~') || entry.contains('$') {
        return None;
    }
    let p = Path::new(entry);
    let rel = if p.is_absolute() {
        p.strip_prefix(root).ok()?.to_path_buf()
    } else {
        p.to_path_buf()
    };
    let mut parts: Vec<String> = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// An entry that resolves (through a link) outside the project is refused.
fn check_no_link_out(
    root: &Path,
    rel: &str,
    src: &SourceFile,
    line: usize,
    entry: &str,
) -> Result<(), ConfigError> {
    let within = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let real = std::fs::canonicalize(root.join(rel)).unwrap_or_else(|_| PathBuf::from("/"));
    if real.starts_with(&within) {
        return Ok(());
    }
    Err(src
        .error_at(
            line,
            1,
            Some("roles_path".into()),
            format!(
                "roles_path entry `{entry}` is a link that leaves the project (to {})",
                real.display()
            ),
        )
        .with_hint("copy the roles into the project, or point roles_path at a directory inside it")
        .into())
}

/// Each section's options: the value and its 1-based line.
type Sections = BTreeMap<String, BTreeMap<String, (String, usize)>>;

/// Sections of key = value (or key: value) pairs with their lines, as configparser reads
/// them strictly: a line that is neither a section, an option, a continuation nor a comment is
/// an error, and so is a key twice in one section.
fn parse_ini(src: &SourceFile) -> Result<Sections, ConfigError> {
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    let mut last_key: Option<String> = None;
    for (i, raw) in src.text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = Some(name.trim().to_string());
            sections.entry(name.trim().to_string()).or_default();
            last_key = None;
            continue;
        }
        let (Some(section), false) = (&current, line.starts_with([' ', '\t'])) else {
            // a continuation of the last value, or text before any section
            match (&current, &last_key) {
                (Some(s), Some(k)) => {
                    let v = sections.get_mut(s).and_then(|m| m.get_mut(k));
                    if let Some((v, _)) = v {
                        v.push(' ');
                        v.push_str(trimmed);
                    }
                    continue;
                }
                _ => return Err(not_ini(src, n)),
            }
        };
        let Some((key, value)) = trimmed.split_once(['=', ':']) else {
            return Err(not_ini(src, n));
        };
        let key = key.trim().to_lowercase();
        let options = sections.entry(section.clone()).or_default();
        if let Some((_, first)) = options.get(&key) {
            return Err(src
                .error_at(
                    n,
                    1,
                    Some(key.clone()),
                    format!("`{key}` is set twice in [{section}] (first at line {first})"),
                )
                .with_hint("Ansible refuses a duplicate option: keep one")
                .into());
        }
        options.insert(key.clone(), (value.trim().to_string(), n));
        last_key = Some(key);
    }
    Ok(sections)
}

fn not_ini(src: &SourceFile, line: usize) -> ConfigError {
    src.error_at(line, 1, None, "ansible.cfg is not INI: this line is no `[section]`, `key = value` or comment")
        .with_hint("ansible.cfg is read as Ansible reads it (INI, as Python's configparser): fix the line, or put it under a section")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(cfg: &str, dirs: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(ANSIBLE_CFG), cfg).unwrap();
        for dir in dirs {
            std::fs::create_dir_all(d.path().join(dir)).unwrap();
        }
        d
    }

    #[test]
    fn roles_path_entries_follow_roles_in_order_and_a_missing_one_is_a_warning() {
        let d = project(
            "[defaults]\nroles_path = ./team-roles:galaxy/roles:gone\n",
            &["team-roles", "galaxy/roles"],
        );
        let rp = roles_path(d.path()).unwrap();
        assert_eq!(rp.dirs, ["roles", "team-roles", "galaxy/roles"]);
        assert_eq!(rp.warnings.len(), 1);
        assert!(rp.warnings[0].contains("`gone` does not exist"), "{rp:?}");
    }

    #[test]
    fn no_cfg_or_no_roles_path_means_roles() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(roles_path(d.path()).unwrap().dirs, ["roles"]);
        let d = project("[defaults]\nforks = 5\n", &[]);
        assert_eq!(roles_path(d.path()).unwrap().dirs, ["roles"]);
    }

    #[test]
    fn each_bad_ansible_cfg_is_an_error_with_its_line_and_a_hint() {
        let outside = tempfile::tempdir().unwrap();
        let link = project("[defaults]\nroles_path = linked\n", &[]);
        std::os::unix::fs::symlink(outside.path(), link.path().join("linked")).unwrap();
        for (d, says) in [
            (project("[defaults]\nroles_path = /etc/ansible/roles\n", &[]), "ansible.cfg:2:1: field `roles_path`: roles_path entry `/etc/ansible/roles` leaves the project"),
            (project("[defaults]\nroles_path = ../other\n", &[]), "leaves the project"),
            (project("[defaults]\nroles_path = a:b\n", &[]), "no roles_path entry exists, and there is no roles/"),
            (project("just some text\n", &[]), "ansible.cfg:1:1: ansible.cfg is not INI"),
            (project("[defaults]\nforks = 5\nforks = 6\n", &[]), "ansible.cfg:3:1: field `forks`: `forks` is set twice in [defaults] (first at line 2)"),
            (link, "is a link that leaves the project"),
        ] {
            let e = roles_path(d.path()).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
            assert!(!e.hints().is_empty());
        }
    }
}
