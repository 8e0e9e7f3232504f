//! What `parbake vendor` checks before and after `ansible-galaxy` runs, so that vendor/ holds
//! only what the sources hold and nothing of the host:
//! - a local source (a tarball, a `type: dir` collection) must resolve inside the project;
//! - a source tree (a `type: dir` collection, a git collection cloned by parbake into a private
//!   temp dir) may hold no symlink that resolves outside its own tree, and no special file:
//!   `ansible-galaxy` copies the file a symlink points to, so a link to `~/.aws/credentials`
//!   would become locked vendor content and ship in every image;
//! - every installed tree (role or collection) obeys the same rule, so that no route (a
//!   tarball, a git role) is missed.

use std::path::{Path, PathBuf};

use super::requirements::{Requested, Requirements, SourceKind};
use super::VendorError;
use crate::process::Cmd;

type Result<T, E = VendorError> = std::result::Result<T, E>;

/// Most entries a checked tree may hold.
const MAX_ENTRIES: usize = 500_000;

/// What is wrong at a path inside a tree: the path relative to the tree, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escape {
    pub rel: String,
    pub message: String,
}

/// Every local source resolves inside the project, and every source tree parbake can see
/// before `ansible-galaxy` runs (`type: dir` collections; git collections, cloned into `tmp`)
/// keeps its symlinks inside itself.
pub fn check_sources(root: &Path, reqs: &Requirements, tmp: &Path) -> Result<()> {
    let real_root = std::fs::canonicalize(root).map_err(|e| VendorError::io("resolve", root, e))?;
    for (list, entries) in [("roles", &reqs.roles), ("collections", &reqs.collections)] {
        for (index, entry) in entries.iter().enumerate() {
            let local = matches!(entry.source, SourceKind::File | SourceKind::Dir);
            if local {
                let path = inside_project(root, &real_root, reqs, list, index, entry)?;
                if entry.source == SourceKind::Dir {
                    refuse_escapes(entry, &path)?;
                }
            } else if entry.source == SourceKind::Git && list == "collections" {
                let tree = clone_git(root, entry, &tmp.join(format!("git-{index}")))?;
                refuse_escapes(entry, &tree)?;
            }
        }
    }
    Ok(())
}

/// A local source's path, resolved: inside the project, or a located error.
fn inside_project(
    root: &Path,
    real_root: &Path,
    reqs: &Requirements,
    list: &str,
    index: usize,
    entry: &Requested,
) -> Result<PathBuf> {
    let path = super::lock::local_path(root, &entry.src);
    let real = std::fs::canonicalize(&path).ok();
    match real {
        Some(real) if real.starts_with(real_root) => {
            // a tarball is a regular file and a `type: dir` source a directory: galaxy would
            // wait forever on a FIFO, and read a device
            let ft = std::fs::metadata(&real)
                .map_err(|e| VendorError::io("inspect", &real, e))?
                .file_type();
            let want_dir = entry.source == SourceKind::Dir;
            let fits = if want_dir { ft.is_dir() } else { ft.is_file() };
            if !fits {
                let e = reqs.entry_error(
                    list,
                    index,
                    &entry.src,
                    format!(
                        "{} is {}, not a {}",
                        entry.describe(),
                        if ft.is_file() {
                            "a regular file"
                        } else {
                            crate::fsread::kind(&ft)
                        },
                        if want_dir {
                            "directory"
                        } else {
                            "regular file"
                        }
                    ),
                );
                return Err(VendorError::from(crate::config::ConfigError::from(e.with_hint(
                    "name a tarball file (type: file) or a collection directory (type: dir) inside the project",
                ))));
            }
            Ok(real)
        }
        _ => {
            let e = reqs.entry_error(
                list,
                index,
                &entry.src,
                format!(
                    "{} is outside the project (or does not exist): parbake vendors only sources inside {}",
                    entry.describe(),
                    root.display()
                ),
            );
            Err(VendorError::from(crate::config::ConfigError::from(e.with_hint(
                "copy the tarball or directory into the project (e.g. under sources/) and name it by a relative path, or publish it as a git repository or on a Galaxy server",
            ))))
        }
    }
}

/// `git clone` of a git collection at its version, into `dir`, as `ansible-galaxy` would
/// clone it; returns the collection's tree (the clone, or its `#subdir`).
fn clone_git(root: &Path, entry: &Requested, dir: &Path) -> Result<PathBuf> {
    let url = entry.src.strip_prefix("git+").unwrap_or(&entry.src);
    let (url, subdir) = url.split_once('#').unwrap_or((url, ""));
    let (url, inline_version) = match url.rsplit_once(',') {
        Some((u, v)) if !u.is_empty() => (u, Some(v)),
        _ => (url, None),
    };
    super::requirements::check_git_src(url).map_err(VendorError::user)?;
    Cmd::new(format!("clone {} to check it", entry.describe()), "git")
        .args(["clone", "--quiet", "--"])
        .arg(url)
        .arg(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .cwd(root)
        .run_checked()?;
    let version = entry
        .version
        .as_deref()
        .or(inline_version)
        .filter(|v| *v != "*" && !v.is_empty());
    if let Some(v) = version {
        // `--end-of-options`: a version never reads as an option (requirements.rs also refuses
        // a leading `-`)
        Cmd::new(format!("check out {}", entry.describe()), "git")
            .arg("-C")
            .arg(dir)
            .args(["checkout", "--quiet", "--end-of-options", v, "--"])
            .run_checked()?;
    }
    let base = std::fs::canonicalize(dir).map_err(|e| VendorError::io("resolve", dir, e))?;
    let tree = base.join(subdir.trim_matches('/'));
    let real = std::fs::canonicalize(&tree).map_err(|e| VendorError::io("resolve", &tree, e))?;
    if !real.starts_with(&base) {
        return Err(VendorError::user(format!(
            "{}: `#{subdir}` is outside the repository",
            entry.describe()
        )));
    }
    Ok(real)
}

fn refuse_escapes(entry: &Requested, tree: &Path) -> Result<()> {
    let what = entry.describe();
    tree_escapes(tree).map_err(|e| escape_error(&what, &e))
}

/// The error for a tree that links outside itself or holds a special file.
pub fn escape_error(what: &str, e: &Escape) -> VendorError {
    VendorError::user(format!("{what}: {:?} {}", e.rel, e.message))
        .with_hint("ansible-galaxy copies what a symlink points to: a link out of the collection would put a file of this machine into vendor/ and every image")
        .with_hint("replace the link by the file itself (or a link inside the tree), and remove FIFOs, sockets and devices")
}

/// The first path in `tree` that is a symlink resolving outside `tree` (or dangling, or a
/// loop), or a special file. Real `.git` directories are not entered (git's own data; Galaxy
/// skips them too).
pub fn tree_escapes(tree: &Path) -> std::result::Result<(), Escape> {
    let top = std::fs::canonicalize(tree).map_err(|e| Escape {
        rel: ".".into(),
        message: format!("cannot be resolved: {e}"),
    })?;
    let mut pending = vec![(top.clone(), String::new())];
    let mut seen = 0usize;
    while let Some((dir, rel_dir)) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Escape {
            rel: rel_dir.clone(),
            message: format!("cannot be read: {e}"),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| Escape {
                rel: rel_dir.clone(),
                message: format!("cannot be read: {e}"),
            })?;
            seen += 1;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel_dir.is_empty() {
                name.clone()
            } else {
                format!("{rel_dir}/{name}")
            };
            if seen > MAX_ENTRIES {
                return Err(Escape {
                    rel,
                    message: format!("is past the {MAX_ENTRIES}th entry: the tree is too large"),
                });
            }
            let ft = entry.file_type().map_err(|e| Escape {
                rel: rel.clone(),
                message: format!("cannot be read: {e}"),
            })?;
            if ft.is_symlink() {
                check_link(&top, &entry.path(), &rel)?;
            } else if ft.is_dir() {
                if name != ".git" {
                    pending.push((entry.path(), rel));
                }
            } else if !ft.is_file() {
                return Err(Escape {
                    rel,
                    message: "is a special file (a FIFO, socket or device), not a regular file"
                        .into(),
                });
            }
        }
    }
    Ok(())
}

/// A symlink must resolve inside `top` (a link to a directory inside is walked there).
fn check_link(top: &Path, path: &Path, rel: &str) -> std::result::Result<(), Escape> {
    let target = std::fs::read_link(path)
        .map(|t| t.display().to_string())
        .unwrap_or_default();
    match std::fs::canonicalize(path) {
        Ok(real) if real.starts_with(top) => {
            let meta = std::fs::metadata(&real).map_err(|e| Escape {
                rel: rel.to_string(),
                message: format!("cannot be read: {e}"),
            })?;
            if meta.is_file() || meta.is_dir() {
                Ok(())
            } else {
                Err(Escape {
                    rel: rel.to_string(),
                    message: format!("is a symlink to a special file ({target:?})"),
                })
            }
        }
        Ok(real) => Err(Escape {
            rel: rel.to_string(),
            message: format!(
                "is a symlink to {:?}, outside its own tree",
                real.display().to_string()
            ),
        }),
        Err(e) => Err(Escape {
            rel: rel.to_string(),
            message: format!("is a symlink ({target:?}) that cannot be resolved: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_out_of_the_tree_or_a_fifo_is_an_escape_and_a_link_inside_is_not() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("c");
        std::fs::create_dir_all(tree.join("plugins")).unwrap();
        std::fs::write(tree.join("README.md"), "x").unwrap();
        std::fs::write(d.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../README.md", tree.join("plugins/readme")).unwrap();
        assert_eq!(tree_escapes(&tree), Ok(()));
        std::os::unix::fs::symlink("../../secret", tree.join("plugins/creds")).unwrap();
        let e = tree_escapes(&tree).unwrap_err();
        assert_eq!(e.rel, "plugins/creds");
        assert!(e.message.contains("outside its own tree"), "{e:?}");
        std::fs::remove_file(tree.join("plugins/creds")).unwrap();
        let fifo = std::ffi::CString::new(tree.join("pipe").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(tree_escapes(&tree).unwrap_err().rel, "pipe");
    }
}
