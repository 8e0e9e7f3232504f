//! Writing generated files: whole trees atomically (a staging dir beside the target, then a
//! rename), single files through a temp file and rename. A failed or interrupted write leaves
//! nothing behind; what a killed parbake left (named with its pid) goes on the next write there.
//!
//! Outputs the user names with `-o` are checked first: never through a symlink, never onto a
//! FIFO, socket or device, never inside the project's inputs, and a directory is replaced only
//! when parbake's marker says it owns everything in it. Mistakes there exit 1.

use std::collections::BTreeSet;
use std::fs::FileType;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsread::ReadError;
use crate::interrupt::{checkpoint, point, Interrupted};
use crate::render::RenderedFile;

/// Why a write failed. The top-level error keeps each kind's message, hints and exit code.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A path parbake chose could not be written (an internal error, exit 2).
    #[error("{context}: {}", .path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An output path the user named is refused or cannot be written (exit 1).
    #[error("{message}")]
    User { message: String, hints: Vec<String> },
    /// The marker of an earlier render is refused by the reading rule.
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl WriteError {
    fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WriteError::Io {
            context,
            path: path.into(),
            source,
        }
    }

    fn user(message: impl Into<String>) -> Self {
        WriteError::User {
            message: message.into(),
            hints: Vec::new(),
        }
    }

    fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            WriteError::User { message, mut hints } => {
                hints.push(hint.into());
                WriteError::User { message, hints }
            }
            other => other,
        }
    }
}

type Result<T, E = WriteError> = std::result::Result<T, E>;

/// The file a render leaves in its directory, listing what it owns; a later render replaces
/// the directory only when the marker lists every file in it.
pub const RENDER_MARKER: &str = ".parbake-render.json";

/// Names of parbake's transient entries, each followed by `PID-UNIQUE`.
const STAGING_PREFIX: &str = ".parbake-render-";
const OLD_PREFIX: &str = ".parbake-old-";
const TEMP_PREFIX: &str = ".parbake-tmp-";

/// Contents of [`RENDER_MARKER`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderMarker {
    pub parbake_version: String,
    /// Every file of the render, relative to its directory (the marker itself aside).
    pub files: Vec<String>,
}

/// Writes `files` under `dir`, creating directories. For fresh directories parbake made.
pub fn write_tree(dir: &Path, files: &[RenderedFile]) -> Result<()> {
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| WriteError::io("create directory", parent, e))?;
        }
        std::fs::write(&path, &f.contents).map_err(|e| WriteError::io("write", &path, e))?;
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| WriteError::io("chmod", &path, e))?;
        }
    }
    Ok(())
}

/// `files` plus the marker that lists them.
fn with_marker(files: &[RenderedFile]) -> Vec<RenderedFile> {
    let marker = RenderMarker {
        parbake_version: env!("CARGO_PKG_VERSION").to_string(),
        files: files
            .iter()
            .map(|f| f.path.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let mut out = files.to_vec();
    out.push(RenderedFile::text(
        RENDER_MARKER,
        serde_json::to_string_pretty(&marker).expect("marker serializes") + "\n",
    ));
    out
}

/// Replaces `dir` with exactly `files` (and the marker), atomically. Refuses a symlink, a
/// non-directory, and a non-empty directory holding anything the marker of an earlier render
/// does not list.
pub fn replace_tree(dir: &Path, files: &[RenderedFile]) -> Result<()> {
    named_target(dir)?;
    check_render_dir(dir)?;
    let parent = parent_of(dir);
    create_parent(&parent)?;
    sweep_orphans(&parent);
    let prefix = format!("{STAGING_PREFIX}{}-", std::process::id());
    let staging = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(&parent)
        .map_err(|e| user_io("create a staging directory in", &parent, e))?;
    write_tree(staging.path(), &with_marker(files))?;
    checkpoint(point::COMMIT)?;
    // again: the directory may have changed while the files were written
    check_render_dir(dir)?;
    let unique = staging
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(prefix.as_str()))
        .unwrap_or("x")
        .to_string();
    let old = parent.join(format!("{OLD_PREFIX}{}-{unique}", std::process::id()));
    let had_old = std::fs::symlink_metadata(dir).is_ok();
    if had_old {
        std::fs::rename(dir, &old).map_err(|e| user_io("move aside", dir, e))?;
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, dir) {
        let _ = std::fs::remove_dir_all(&staged);
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        return Err(user_io("move into place", dir, e));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Writes a file atomically (temp file beside it, then a rename). For paths parbake chose;
/// see [`write_output_file`] for `-o FILE`.
pub fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomically(path, contents, |context, path, e| {
        WriteError::io(context, path, e)
    })
}

/// Writes the file a user named with `-o`, atomically. Refuses a directory, a symlink, a
/// FIFO, a socket or a device (stdout is `-`, handled by the caller); creates missing parent
/// directories. Every failure is a user error naming the path.
pub fn write_output_file(path: &Path, contents: &[u8]) -> Result<()> {
    named_target(path)?;
    check_output_file(path)?;
    create_parent(&parent_of(path))?;
    write_atomically(path, contents, user_io)
}

fn write_atomically(
    path: &Path,
    contents: &[u8],
    err: fn(&'static str, &Path, std::io::Error) -> WriteError,
) -> Result<()> {
    let parent = parent_of(path);
    sweep_orphans(&parent);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .tempfile_in(&parent)
        .map_err(|e| err("create a temp file in", &parent, e))?;
    use std::io::Write;
    tmp.write_all(contents)
        .map_err(|e| err("write", tmp.path(), e))?;
    checkpoint(point::COMMIT)?;
    tmp.persist(path).map_err(|e| err("write", path, e.error))?;
    Ok(())
}

fn user_io(context: &'static str, path: &Path, e: std::io::Error) -> WriteError {
    WriteError::user(format!("cannot {context} {}: {e}", path.display()))
        .with_hint("check the -o path: its directory must exist or be creatable, and writable")
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An output path must end in a name: not empty, `.`, `..` or `/`.
fn named_target(path: &Path) -> Result<()> {
    match path.components().next_back() {
        Some(Component::Normal(_)) => Ok(()),
        _ => Err(WriteError::user(format!(
            "-o `{}` does not name a file or directory",
            path.display()
        ))
        .with_hint("give the output by name, e.g. -o out/web")),
    }
}

fn create_parent(parent: &Path) -> Result<()> {
    std::fs::create_dir_all(parent).map_err(|e| {
        WriteError::user(format!(
            "cannot create the directory {}: {e}",
            parent.display()
        ))
        .with_hint("give -o a path whose parent exists or can be created")
    })
}

/// "a FIFO", "a directory", …: what a non-file output path is, for error messages.
fn kind(ft: &FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a regular file"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// What is at `path` now, without following a symlink; None when nothing is.
fn existing(path: &Path) -> Result<Option<FileType>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m.file_type())),
        // ENOTDIR: a file where a parent directory should be; creating the parent says so
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            Ok(None)
        }
        Err(e) => Err(user_io("inspect", path, e)),
    }
}

fn check_output_file(path: &Path) -> Result<()> {
    let Some(ft) = existing(path)? else {
        return Ok(());
    };
    if ft.is_file() {
        return Ok(());
    }
    let hint = if ft.is_dir() {
        "give a file name inside it, e.g. -o DIR/user-data"
    } else if ft.is_symlink() {
        "parbake does not write through links: give the file the link points to, or a new name"
    } else {
        "to send the output to a pipe or device, write to stdout (-o - or no -o) and redirect it"
    };
    Err(WriteError::user(format!(
        "{} is {}; -o writes a regular file and replaces it whole",
        path.display(),
        kind(&ft)
    ))
    .with_hint(hint))
}

/// A render's `-o DIR` must be new, empty, or an earlier render that holds nothing else.
fn check_render_dir(dir: &Path) -> Result<()> {
    let Some(ft) = existing(dir)? else {
        return Ok(());
    };
    if !ft.is_dir() {
        let hint = if ft.is_symlink() {
            "parbake does not replace a link: give the directory it points to, or a new one"
        } else {
            "render writes a directory: give a new or empty directory, or an earlier render"
        };
        return Err(WriteError::user(format!(
            "{} is {}, not a directory; not replacing it",
            dir.display(),
            kind(&ft)
        ))
        .with_hint(hint));
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| user_io("read", dir, e))?;
    if entries.next().is_none() {
        return Ok(());
    }
    let marker = read_marker(dir)?;
    let mut foreign = Vec::new();
    unowned(dir, Path::new(""), &owned(&marker), &mut foreign)?;
    if foreign.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = foreign.iter().take(5).cloned().collect();
    let more = if foreign.len() > shown.len() {
        format!(" and {} more", foreign.len() - shown.len())
    } else {
        String::new()
    };
    Err(WriteError::user(format!(
        "{} holds files parbake did not write: {}{more}; not replacing it",
        dir.display(),
        shown.join(", ")
    ))
    .with_hint(format!(
        "move them out, or choose another directory with -o (parbake deletes only what its {RENDER_MARKER} lists)"
    )))
}

fn read_marker(dir: &Path) -> Result<RenderMarker> {
    let path = dir.join(RENDER_MARKER);
    let not_a_render = |why: String| {
        WriteError::user(format!(
            "{} is not empty and is not an earlier parbake render ({why}); not replacing it",
            dir.display()
        ))
        .with_hint("choose a new or empty directory with -o")
        .with_hint(format!(
            "a render by an older parbake has no {RENDER_MARKER}: remove it yourself once you have checked it holds nothing else"
        ))
    };
    match existing(&path)? {
        Some(ft) if ft.is_file() => {}
        Some(ft) => {
            return Err(not_a_render(format!(
                "its {RENDER_MARKER} is {}",
                kind(&ft)
            )))
        }
        None => return Err(not_a_render(format!("no {RENDER_MARKER}"))),
    }
    let text = crate::fsread::read(dir, &path, crate::fsread::RECORD_LIMIT)?;
    serde_json::from_slice(&text)
        .map_err(|e| not_a_render(format!("its {RENDER_MARKER} cannot be read: {e}")))
}

/// The marker's files (and the marker), and every directory above them.
struct Owned {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

fn owned(marker: &RenderMarker) -> Owned {
    let mut files: BTreeSet<PathBuf> = marker.files.iter().map(PathBuf::from).collect();
    files.insert(PathBuf::from(RENDER_MARKER));
    let dirs = files
        .iter()
        .flat_map(|f| f.ancestors().skip(1))
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    Owned { files, dirs }
}

/// Collects the entries under `root/rel` that `owned` does not account for (a directory
/// parbake does not own is reported whole, not entered).
fn unowned(root: &Path, rel: &Path, owned: &Owned, out: &mut Vec<String>) -> Result<()> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| user_io("read", &dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| user_io("read", &dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = rel.join(entry.file_name());
        let ft = entry
            .file_type()
            .map_err(|e| user_io("inspect", &entry.path(), e))?;
        if ft.is_dir() && owned.dirs.contains(&path) {
            unowned(root, &path, owned, out)?;
        } else if ft.is_dir() {
            out.push(format!("{}/", path.display()));
        } else if !owned.files.contains(&path) {
            out.push(path.display().to_string());
        }
    }
    Ok(())
}

/// Refuses an output path inside one of `inputs` (the project's roles/, images/, packer/),
/// after resolving `..` and symlinks: writing there would change a role's hash or add a config
/// file.
pub fn refuse_inside(path: &Path, inputs: &[PathBuf]) -> Result<()> {
    let resolved = resolve(path)?;
    for input in inputs {
        let Ok(input) = input.canonicalize() else {
            continue;
        };
        if resolved.starts_with(&input) {
            let name = input.file_name().unwrap_or_default().to_string_lossy();
            return Err(WriteError::user(format!(
                "-o {} is inside the project's {name}/ ({}); writing there would change the project's inputs (a role's hash, an image or stack file)",
                path.display(),
                input.display()
            ))
            .with_hint("write outside roles/, images/ and packer/, e.g. -o /tmp/out"));
        }
    }
    Ok(())
}

/// `path` made absolute with every symlink and `..` resolved as the kernel would, for the
/// part that exists; the rest (which cannot hold links) is appended with `..` applied.
fn resolve(path: &Path) -> Result<PathBuf> {
    let mut out = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        std::env::current_dir()
            .and_then(|d| d.canonicalize())
            .map_err(|e| WriteError::io("read the current directory", ".", e))?
    };
    let mut exists = true;
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                let next = out.join(name);
                if exists {
                    match next.canonicalize() {
                        Ok(real) => {
                            out = real;
                            continue;
                        }
                        Err(_) => exists = false,
                    }
                }
                out = next;
            }
        }
    }
    Ok(out)
}

/// Removes, from `dir`, the staging dirs, set-aside renders and temp files of parbake
/// processes that are gone (killed before they could clean up). Best effort, never fails.
pub fn sweep_orphans(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(orphan_pid) else {
            continue;
        };
        if pid == std::process::id() || parbake_alive(pid) {
            continue;
        }
        let path = entry.path();
        let _ = match entry.file_type() {
            Ok(ft) if ft.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) => Err(e),
        };
    }
}

/// The pid in a transient entry's name: `.parbake-render-PID-UNIQUE` and the like.
fn orphan_pid(name: &str) -> Option<u32> {
    let rest = [STAGING_PREFIX, OLD_PREFIX, TEMP_PREFIX]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let (pid, unique) = rest.split_once('-')?;
    if unique.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether `pid` is a running parbake process. A pid now used by another program counts as
/// gone; when that cannot be told (no /proc), a live pid counts as parbake.
pub fn parbake_alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks that the process exists.
    let exists = unsafe { libc::kill(p, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // reading rule exception (src/fsread.rs): the kernel's /proc file
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        // the binary, or a test binary of this crate (`parbake-HASH`)
        Ok(comm) => comm.trim_end().starts_with("parbake"),
        Err(_) => true,
    }
}

/// A temp dir builder whose directories are private: mode 0700 (tempfile's default is 0777
/// less the umask), named at random, never a fixed shared path. All of parbake's temporary
/// state goes through it.
pub fn private_temp(prefix: &str) -> tempfile::Builder<'_, 'static> {
    use std::os::unix::fs::PermissionsExt;
    let mut b = tempfile::Builder::new();
    b.prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700));
    b
}

/// Whether kill(2) with signal 0 says `pid` is gone: only ESRCH means no such process. EPERM
/// means it exists and belongs to someone else (alive: never clean up after it).
pub fn kill_says_gone(status: i32, errno: Option<i32>) -> bool {
    status != 0 && errno == Some(libc::ESRCH)
}

/// Whether a process `pid` exists (of any user).
pub fn process_exists(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks that the process exists.
    let status = unsafe { libc::kill(p, 0) };
    !kill_says_gone(status, std::io::Error::last_os_error().raw_os_error())
}

/// Copies a directory tree (files, directories, symlinks as links; modes kept).
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| WriteError::io("create directory", to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| WriteError::io("read", from, e))? {
        let entry = entry.map_err(|e| WriteError::io("read", from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ft = entry
            .file_type()
            .map_err(|e| WriteError::io("stat", &src, e))?;
        if ft.is_dir() {
            copy_dir(&src, &dst)?;
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(&src).map_err(|e| WriteError::io("read link", &src, e))?;
            std::os::unix::fs::symlink(target, &dst)
                .map_err(|e| WriteError::io("link", &dst, e))?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| WriteError::io("copy", &src, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_esrch_means_a_process_is_gone() {
        assert!(kill_says_gone(-1, Some(libc::ESRCH)));
        // another user's live process: alive, its files are not ours to clean up
        assert!(!kill_says_gone(-1, Some(libc::EPERM)));
        assert!(!kill_says_gone(0, None));
        assert!(process_exists(1));
        assert!(process_exists(std::process::id()));
    }

    #[test]
    fn private_temp_dirs_are_0700() {
        use std::os::unix::fs::PermissionsExt;
        let d = private_temp("parbake-test-").tempdir().unwrap();
        let mode = std::fs::metadata(d.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn orphan_names_carry_the_pid() {
        assert_eq!(orphan_pid(".parbake-render-123-abc"), Some(123));
        assert_eq!(orphan_pid(".parbake-old-9-x"), Some(9));
        assert_eq!(orphan_pid(".parbake-tmp-77-Zq1"), Some(77));
        assert_eq!(orphan_pid(".parbake-render-abc"), None);
        assert_eq!(orphan_pid(".parbake-render-12-"), None);
        assert_eq!(orphan_pid(".parbake-render--1-x"), None);
        assert_eq!(orphan_pid("plan.json"), None);
    }

    #[test]
    fn the_marker_owns_its_files_and_their_directories() {
        let o = owned(&RenderMarker {
            parbake_version: "0".into(),
            files: vec!["layers/1-a/payload/bake.yml".into(), "plan.json".into()],
        });
        assert!(o.files.contains(Path::new(RENDER_MARKER)));
        assert!(o.dirs.contains(Path::new("layers/1-a/payload")));
        assert!(o.dirs.contains(Path::new("layers")));
        assert!(!o.dirs.contains(Path::new("")));
    }
}
