//! Roles under `roles/`: their meta dependencies, parbake metadata, and content hash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::model::RoleMetaFile;
use super::yaml::SourceFile;
use super::ConfigError;

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    /// Absolute directory of the role.
    pub dir: PathBuf,
    /// Direct dependencies from `meta/main.yml`, in declared order.
    pub deps: Vec<String>,
    /// `sha256:<hex>` over every file's relative path, mode and contents (sorted by path).
    pub hash: String,
    pub meta: RoleMetaFile,
    /// Relative paths of the files that make up the hash, sorted.
    pub files: Vec<String>,
    /// `roles/<name>/meta/main.yml`, kept to point at a bad dependency.
    pub meta_file: Option<SourceFile>,
}

/// Files that are never part of a role's content (editor and VCS noise).
fn ignored(name: &str) -> bool {
    name == ".git"
        || name == "__pycache__"
        || name == ".DS_Store"
        || name.ends_with(".pyc")
        || name.ends_with(".swp")
        || name.ends_with('~')
}

pub fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub fn load_roles(root: &Path) -> Result<BTreeMap<String, Role>, ConfigError> {
    let dir = root.join("roles");
    let mut roles = BTreeMap::new();
    let entries = std::fs::read_dir(&dir).map_err(|source| ConfigError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Io {
            path: dir.clone(),
            source,
        })?;
        if entry.path().is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !ignored(&name) && !name.starts_with('.') {
                names.push(name);
            }
        }
    }
    names.sort();
    for name in names {
        let role = load_role(root, &name)?;
        roles.insert(name, role);
    }
    Ok(roles)
}

fn load_role(root: &Path, name: &str) -> Result<Role, ConfigError> {
    let dir = root.join("roles").join(name);
    let role_err = |message: String, hints: Vec<String>| ConfigError::Role {
        role: name.to_string(),
        path: dir.clone(),
        message,
        hints,
    };
    if !valid_role_name(name) {
        return Err(role_err(
            "the directory name is not a valid role name".into(),
            vec!["use letters, digits, `_` and `-` only".into()],
        ));
    }
    let tasks = dir.join("tasks/main.yml");
    if !tasks.is_file() {
        return Err(role_err(
            format!("has no tasks/main.yml (looked for {})", tasks.display()),
            vec![format!(
                "create roles/{name}/tasks/main.yml (a list of tasks, `[]` if none), or remove the directory"
            )],
        ));
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    // A YAML syntax error in tasks is reported here, with its location, rather than by Ansible later.
    let tasks_file = SourceFile::ansible(format!("roles/{name}/tasks/main.yml"), read(&tasks)?);
    if !tasks_file.text.trim().is_empty() {
        tasks_file.parse::<serde_yaml::Value>()?;
    }

    let mut deps = Vec::new();
    let mut meta_file = None;
    let meta_path = dir.join("meta/main.yml");
    if meta_path.is_file() {
        let file = SourceFile::ansible(format!("roles/{name}/meta/main.yml"), read(&meta_path)?);
        let value: serde_yaml::Value = if file.text.trim().is_empty() {
            serde_yaml::Value::Null
        } else {
            file.parse()?
        };
        if let Some(list) = value.get("dependencies") {
            let Some(list) = list.as_sequence() else {
                return Err(file
                    .error_for("dependencies", None, "`dependencies` must be a list")
                    .into());
            };
            for dep in list {
                // Ansible accepts `- name`, `- role: name` and `- name: name`
                let dep_name = dep
                    .as_str()
                    .or_else(|| dep.get("role").and_then(|v| v.as_str()))
                    .or_else(|| dep.get("name").and_then(|v| v.as_str()));
                match dep_name {
                    Some(d) => deps.push(d.to_string()),
                    None => {
                        return Err(file
                            .error_for(
                                "dependencies",
                                None,
                                "a dependency must be a role name or a mapping with `role:`",
                            )
                            .into())
                    }
                }
            }
        }
        meta_file = Some(file);
    }

    let parbake_meta = dir.join("meta/parbake.yml");
    let meta = if parbake_meta.is_file() {
        let file = SourceFile::new(
            format!("roles/{name}/meta/parbake.yml"),
            read(&parbake_meta)?,
        );
        let meta: RoleMetaFile = file.parse()?;
        super::check_role_meta(&file, &meta)?;
        meta
    } else {
        RoleMetaFile::default()
    };

    let (hash, files) = hash_dir(&dir)?;
    Ok(Role {
        name: name.to_string(),
        dir,
        deps,
        hash,
        meta,
        files,
        meta_file,
    })
}

/// Content hash of a directory tree: independent of file order and mtimes, sensitive to
/// every byte, every relative path and the executable bit.
pub fn hash_dir(dir: &Path) -> Result<(String, Vec<String>), ConfigError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for rel in &files {
        let path = dir.join(rel);
        let meta = std::fs::symlink_metadata(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let (kind, content) = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            ("l", target.to_string_lossy().into_owned().into_bytes())
        } else {
            let exec = {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o111 != 0
            };
            let bytes = std::fs::read(&path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            (if exec { "x" } else { "f" }, bytes)
        };
        // length-prefixed fields: no concatenation of two inputs can collide with a third
        hasher.update(format!("{kind} {} {}\n", rel.len(), rel).as_bytes());
        hasher.update((content.len() as u64).to_le_bytes());
        hasher.update(&content);
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), files))
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if ignored(&name) {
            continue;
        }
        let path = entry.path();
        let ft = entry.file_type().map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        if ft.is_dir() {
            collect(base, &path, out)?;
        } else {
            let rel = path.strip_prefix(base).expect("under base");
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}
