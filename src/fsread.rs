//! The one rule for every file parbake reads that a user can reach (issue 21, "Reading"):
//! links are resolved and the result must stay inside the allowed root; the file is opened
//! with `O_NONBLOCK` (a FIFO swapped in cannot block) and `O_NOFOLLOW`, fstat'ed as a regular
//! file (a FIFO, socket or device is refused with its kind named, before and after opening),
//! and read up to a size bound (a larger file is refused with the limit named). A regular file
//! on a local filesystem cannot block, so no timeout is needed once these hold.
//!
//! Exceptions, each commented where it is: `/proc` and `/sys` files (the kernel's, bounded
//! and never a FIFO), and files parbake itself just wrote in a private temp dir.

use std::io::Read;
use std::path::{Path, PathBuf};

/// parbake's own config files: images, stacks, group_vars, requirements.yml, the lock, the
/// hash cache, Packer templates.
pub const CONFIG_LIMIT: u64 = 16 << 20;
/// Records in the image store (publish records, verdicts, layer records, the ledger).
pub const RECORD_LIMIT: u64 = 64 << 20;

/// Why a file was not read: the path as the user knows it, and what is wrong.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub problem: Problem,
}

#[derive(Debug)]
pub enum Problem {
    NotFound,
    /// Resolves (through links) to a path outside the allowed root.
    Outside {
        resolved: PathBuf,
        root: PathBuf,
    },
    Dangling,
    Loop,
    /// A FIFO, socket, device or directory, in words.
    NotRegular(&'static str),
    TooLarge {
        limit: u64,
    },
    NotUtf8,
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        match &self.problem {
            Problem::NotFound => write!(f, "cannot read {path}: no such file"),
            Problem::Outside { resolved, root } => write!(
                f,
                "refused to read {path}: it resolves to {}, outside {}",
                resolved.display(),
                root.display()
            ),
            Problem::Dangling => write!(f, "cannot read {path}: a dangling symlink"),
            Problem::Loop => write!(f, "cannot read {path}: a symlink loop"),
            Problem::NotRegular(kind) => {
                write!(
                    f,
                    "refused to read {path}: it is {kind}, not a regular file"
                )
            }
            Problem::TooLarge { limit } => write!(
                f,
                "refused to read {path}: it is larger than the limit of {}",
                size(*limit)
            ),
            Problem::NotUtf8 => write!(f, "cannot read {path}: it is not UTF-8 text"),
            Problem::Io(e) => write!(f, "cannot read {path}: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self.problem, Problem::NotFound)
    }

    pub fn hint(&self) -> String {
        match &self.problem {
            Problem::NotFound | Problem::Dangling => "check the path, or restore the file".into(),
            Problem::Outside { root, .. } => format!(
                "parbake reads only files inside {}: copy the file in, or link to a copy inside it",
                root.display()
            ),
            Problem::Loop => "remove the link or point it at a file".into(),
            Problem::NotRegular(_) => "replace it with a regular file: parbake reads only \
                 regular files (a FIFO or a device could block or never end)"
                .into(),
            Problem::TooLarge { limit } => format!(
                "parbake reads at most {} from this file; split it, or check it is the file \
                 you meant",
                size(*limit)
            ),
            Problem::NotUtf8 => "save the file as UTF-8".into(),
            Problem::Io(_) => "check the file is readable".into(),
        }
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// What a non-regular file is, in words.
pub fn kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "a special file"
    }
}

/// The bytes of `path`, which must resolve inside `root`, be a regular file and hold at most
/// `limit` bytes.
pub fn read(root: &Path, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let err = |problem| ReadError {
        path: path.to_path_buf(),
        problem,
    };
    // no root (a store not made yet): no file in it either
    let root = std::fs::canonicalize(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => err(Problem::NotFound),
        _ => err(Problem::Io(e)),
    })?;
    let resolved = match std::fs::canonicalize(path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            return Err(err(if link {
                Problem::Dangling
            } else {
                Problem::NotFound
            }));
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(err(Problem::Loop)),
        Err(e) => return Err(err(Problem::Io(e))),
    };
    if !resolved.starts_with(&root) {
        return Err(err(Problem::Outside { resolved, root }));
    }
    // refuse special files before opening them: opening a device can have effects of its own
    let ft = std::fs::symlink_metadata(&resolved)
        .map_err(|e| err(Problem::Io(e)))?
        .file_type();
    if !ft.is_file() {
        return Err(err(Problem::NotRegular(kind(&ft))));
    }
    read_opened(&resolved, limit).map_err(err)
}

/// [`read`] as UTF-8 text.
pub fn read_text(root: &Path, path: &Path, limit: u64) -> Result<String, ReadError> {
    let bytes = read(root, path, limit)?;
    String::from_utf8(bytes).map_err(|_| ReadError {
        path: path.to_path_buf(),
        problem: Problem::NotUtf8,
    })
}

/// [`read`], with None for a file that does not exist.
pub fn read_optional(root: &Path, path: &Path, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
    match read(root, path, limit) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens a link-free path without following a final link (one swapped in since it was
/// resolved) and without blocking, checks it is still a regular file, and reads at most
/// `limit` bytes.
fn read_opened(path: &Path, limit: u64) -> Result<Vec<u8>, Problem> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Problem::Loop,
            _ => Problem::Io(e),
        })?;
    let meta = file.metadata().map_err(Problem::Io)?;
    if !meta.is_file() {
        return Err(Problem::NotRegular(kind(&meta.file_type())));
    }
    if meta.len() > limit {
        return Err(Problem::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // one byte more than the limit tells a file that grew since the fstat
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(Problem::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Problem::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(root: &Path, path: &Path, limit: u64) -> String {
        match read(root, path, limit) {
            Ok(_) => "ok".into(),
            Err(e) => format!("{:?}", e.problem)
                .split(['(', ' ', '{'])
                .next()
                .unwrap()
                .to_string(),
        }
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn each_kind_of_file_gets_its_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        std::fs::create_dir(&root).unwrap();
        let p = |rel: &str| root.join(rel);
        std::fs::write(p("ok.yml"), "a: 1\n").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink("ok.yml", p("inside")).unwrap();
        std::os::unix::fs::symlink("../secret", p("outside")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", p("zero")).unwrap();
        std::os::unix::fs::symlink("gone", p("dangling")).unwrap();
        std::os::unix::fs::symlink("loop", p("loop")).unwrap();
        std::fs::create_dir(p("dir")).unwrap();
        mkfifo(&p("fifo"));
        let sock = std::os::unix::net::UnixListener::bind(p("sock")).unwrap();
        for (rel, want) in [
            ("ok.yml", "ok"),
            ("inside", "ok"),
            ("missing", "NotFound"),
            ("outside", "Outside"),
            ("zero", "Outside"),
            ("dangling", "Dangling"),
            ("loop", "Loop"),
            ("dir", "NotRegular"),
            ("fifo", "NotRegular"),
            ("sock", "NotRegular"),
        ] {
            assert_eq!(problem(&root, &p(rel), 100), want, "{rel}");
        }
        drop(sock);
        // a device inside the root (here: the root is /dev)
        assert_eq!(
            problem(Path::new("/dev"), Path::new("/dev/null"), 100),
            "NotRegular"
        );
        let e = read(&root, &p("fifo"), 100).unwrap_err();
        assert!(e.to_string().contains("a FIFO (named pipe)"), "{e}");
        // the size bound, named
        assert_eq!(problem(&root, &p("ok.yml"), 5), "ok");
        let e = read(&root, &p("ok.yml"), 4).unwrap_err();
        assert!(e.to_string().contains("limit of 4 bytes"), "{e}");
        assert!(e.hint().contains("at most 4 bytes"), "{}", e.hint());
        assert_eq!(read_optional(&root, &p("missing"), 9).unwrap(), None);
        let no_root = root.join("store");
        assert_eq!(
            read_optional(&no_root, &no_root.join("x"), 9).unwrap(),
            None
        );
    }
}
