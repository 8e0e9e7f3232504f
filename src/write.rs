//! Writing generated files: whole trees atomically (a temp dir beside the target, then a
//! rename), single files through a temp file and rename. A failed write leaves nothing behind.

use std::path::Path;

use crate::error::{Error, Result};
use crate::render::RenderedFile;

/// Marker a render leaves so a later render may replace the directory.
pub const RENDER_MARKER: &str = "plan.json";

pub fn write_tree(dir: &Path, files: &[RenderedFile]) -> Result<()> {
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("create directory", parent, e))?;
        }
        std::fs::write(&path, &f.contents).map_err(|e| Error::io("write", &path, e))?;
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io("chmod", &path, e))?;
        }
    }
    Ok(())
}

/// Replaces `dir` with exactly `files`, atomically. Refuses to replace a non-empty directory
/// that is not an earlier render.
pub fn replace_tree(dir: &Path, files: &[RenderedFile]) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if dir.exists() {
        let non_empty = std::fs::read_dir(dir)
            .map_err(|e| Error::io("read", dir, e))?
            .next()
            .is_some();
        if non_empty && !dir.join(RENDER_MARKER).exists() {
            return Err(Error::user(format!(
                "{} exists and is not an earlier parbake render; not replacing it",
                dir.display()
            ))
            .with_hint("choose an empty or new directory with -o"));
        }
    }
    std::fs::create_dir_all(&parent).map_err(|e| Error::io("create directory", &parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".parbake-render-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io("create a temp dir in", &parent, e))?;
    write_tree(staging.path(), files)?;
    let old = parent.join(format!(".parbake-old-{}", std::process::id()));
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| Error::io("move aside", dir, e))?;
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, dir) {
        let _ = std::fs::remove_dir_all(&staged);
        if old.exists() {
            let _ = std::fs::rename(&old, dir);
        }
        return Err(Error::io("move into place", dir, e));
    }
    if old.exists() {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

pub fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&parent)
        .map_err(|e| Error::io("create a temp file in", &parent, e))?;
    use std::io::Write;
    tmp.write_all(contents)
        .map_err(|e| Error::io("write", tmp.path().to_path_buf(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("write", path, e.error))?;
    Ok(())
}

/// Copies a directory tree (files, directories, symlinks as links; modes kept).
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io("create directory", to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io("read", from, e))? {
        let entry = entry.map_err(|e| Error::io("read", from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ft = entry.file_type().map_err(|e| Error::io("stat", &src, e))?;
        if ft.is_dir() {
            copy_dir(&src, &dst)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&src).map_err(|e| Error::io("read link", &src, e))?;
            std::os::unix::fs::symlink(target, &dst).map_err(|e| Error::io("link", &dst, e))?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| Error::io("copy", &src, e))?;
        }
    }
    Ok(())
}
