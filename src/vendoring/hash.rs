//! Content hashes of vendored trees, with a cache of per-file digests (issue 12, item 7).
//!
//! A tree's hash is sha256 over its files sorted by relative path, each as
//! `"{x|f} {len(rel)} {rel}\n"` followed by the 32 bytes of the file's own sha256: like
//! `config::roles::hash_tree` (paths, exec bits, bytes; the same walk, which refuses links out
//! of the project, special files and loops), but composed from per-file digests so that those
//! can be cached.
//!
//! The cache (`vendor/.parbake-hash-cache.json`, beside the trees it describes, so that a
//! fresh `parbake vendor` starts a fresh one) maps each file, by its path under `vendor/`, to
//! its digest and the stat it was read with: size, mtime and ctime in ns, inode, device and
//! mode. A file whose stat still matches is not read again. A file modified less than
//! [`RACY_NS`] before the hashing started is hashed but not cached, so that a write within the
//! filesystem's timestamp granularity cannot hide behind a cached digest. The cache is a hint
//! only: unreadable or of another format, it is ignored; not writable, it is not written.
//! [`Check::Full`] ignores it and reads every byte (bake uses it).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::roles::{self, Refusal};

/// The cache file's name, in the vendor directory.
pub const CACHE_FILE: &str = ".parbake-hash-cache.json";
const CACHE_FORMAT: u32 = 1;
/// Files modified this recently (ns) before hashing began are not cached.
const RACY_NS: i64 = 1_000_000_000;

/// How much to trust the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Reuse a file's cached digest while its stat matches (plan, render).
    Cached,
    /// Read and hash every file (bake).
    Full,
}

/// What a file's digest was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
    mode: u32,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Stamp {
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
            mode: meta.mode() & 0o7777,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    #[serde(flatten)]
    stamp: Stamp,
    sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    files: BTreeMap<String, Cached>,
}

/// A tree's hash and how it was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHash {
    /// `sha256:<hex>`.
    pub hash: String,
    pub files: usize,
    /// Files read and hashed (not taken from the cache).
    pub read: usize,
}

/// The per-file digest cache of one vendor directory.
#[derive(Debug)]
pub struct HashCache {
    path: PathBuf,
    files: BTreeMap<String, Cached>,
    seen: BTreeSet<String>,
    changed: bool,
}

impl HashCache {
    /// The cache at `path`; empty when it is missing, unreadable or of another format.
    pub fn open(path: &Path) -> HashCache {
        // the reading rule, inside the vendor directory: a FIFO or a link out is no cache
        let vendor = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let files = crate::fsread::read(vendor, path, crate::fsread::CONFIG_LIMIT)
            .ok()
            .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
            .filter(|c| c.format == CACHE_FORMAT)
            .map(|c| c.files)
            .unwrap_or_default();
        HashCache {
            path: path.to_path_buf(),
            files,
            seen: BTreeSet::new(),
            changed: false,
        }
    }

    /// Writes the cache atomically when it changed, keeping only the files hashed since it
    /// was opened. A cache that cannot be written is left as it was (it is only a hint).
    pub fn save(mut self) {
        let before = self.files.len();
        self.files.retain(|k, _| self.seen.contains(k));
        if !self.changed && self.files.len() == before {
            return;
        }
        let file = CacheFile {
            format: CACHE_FORMAT,
            files: self.files,
        };
        if let Ok(bytes) = serde_json::to_vec(&file) {
            let _ = crate::write::write_file(&self.path, &bytes);
        }
    }

    /// The hash of the tree `dir`, whose files are cached under `key/` (its path under the
    /// vendor directory). Symlinks must stay inside `within` (the project root).
    pub fn tree_hash(
        &mut self,
        within: &Path,
        dir: &Path,
        key: &str,
        check: Check,
    ) -> Result<TreeHash, Refusal> {
        let started = now_ns();
        let within = std::fs::canonicalize(within).map_err(|e| Refusal {
            path: within.to_path_buf(),
            message: format!("cannot resolve the directory: {e}"),
            hints: vec!["check the project directory exists and is readable".into()],
        })?;
        let found = tree_files(&within, dir)?;
        let mut hasher = Sha256::new();
        let mut read = 0;
        for (rel, source) in &found {
            let cache_key = format!("{key}/{rel}");
            let (digest, mode, fresh) = self
                .file_digest(&cache_key, source, check, started)
                .map_err(|e| Refusal {
                    path: dir.join(rel),
                    message: format!("cannot read: {e}"),
                    hints: vec![
                        "check the file is a readable regular file and is not being replaced"
                            .into(),
                    ],
                })?;
            read += usize::from(fresh);
            let kind = if mode & 0o111 != 0 { "x" } else { "f" };
            hasher.update(format!("{kind} {} {}\n", rel.len(), rel).as_bytes());
            hasher.update(digest);
            self.seen.insert(cache_key);
        }
        Ok(TreeHash {
            hash: format!("sha256:{}", hex::encode(hasher.finalize())),
            files: found.len(),
            read,
        })
    }

    /// A file's sha256 and mode, from the cache when its stat matches; whether it was read.
    fn file_digest(
        &mut self,
        key: &str,
        source: &Path,
        check: Check,
        started: i64,
    ) -> std::io::Result<([u8; 32], u32, bool)> {
        let before = Stamp::of(&std::fs::metadata(source)?);
        if check == Check::Cached {
            if let Some(c) = self.files.get(key).filter(|c| c.stamp == before) {
                if let Some(d) = decode_digest(&c.sha256) {
                    return Ok((d, before.mode, false));
                }
            }
        }
        let (bytes, mode) = roles::read_regular(source)?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let after = Stamp::of(&std::fs::metadata(source)?);
        let settled = before == after && after.mtime_ns.max(after.ctime_ns) < started - RACY_NS;
        if settled {
            self.files.insert(
                key.to_string(),
                Cached {
                    stamp: after,
                    sha256: hex::encode(digest),
                },
            );
            self.changed = true;
        } else if self.files.remove(key).is_some() {
            self.changed = true;
        }
        Ok((digest, mode, true))
    }
}

/// The files of the tree `dir` that its hash covers, as (relative path, canonical source),
/// sorted; symlinks must stay inside `within` (canonical). The one list both the lock's hash
/// and bake's payload are made from.
pub fn tree_files(within: &Path, dir: &Path) -> Result<Vec<(String, PathBuf)>, Refusal> {
    let top = roles::resolve(within, dir, dir)?;
    roles::walk(within, &top, dir)
}

fn decode_digest(hex_text: &str) -> Option<[u8; 32]> {
    hex::decode(hex_text).ok()?.try_into().ok()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("t/a")).unwrap();
        std::fs::write(d.path().join("t/a/one"), "1").unwrap();
        std::fs::write(d.path().join("t/two"), "2").unwrap();
        d
    }

    #[test]
    fn the_cache_skips_reading_settled_files_and_sees_every_change() {
        let d = tree();
        let root = d.path();
        let cache_path = root.join("cache.json");
        let hash = |check| {
            let mut c = HashCache::open(&cache_path);
            let h = c.tree_hash(root, &root.join("t"), "t", check).unwrap();
            c.save();
            h
        };
        // fresh files are hashed but not cached (the racy window)
        let first = hash(Check::Cached);
        assert_eq!((first.files, first.read), (2, 2));
        assert_eq!(hash(Check::Cached).read, 2);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let cold = hash(Check::Cached);
        let warm = hash(Check::Cached);
        assert_eq!(cold.hash, first.hash);
        assert_eq!((warm.hash.clone(), warm.read), (first.hash.clone(), 0));
        assert_eq!(hash(Check::Full).read, 2);
        // a change of bytes (same size), of mode, or a new file changes the hash
        std::fs::write(root.join("t/two"), "3").unwrap();
        let edited = hash(Check::Cached);
        assert_ne!(edited.hash, first.hash);
        assert_eq!(edited.read, 1);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("t/a/one"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        assert_ne!(hash(Check::Cached).hash, edited.hash);
    }

    #[test]
    fn a_corrupt_cache_is_ignored() {
        let d = tree();
        let cache_path = d.path().join("cache.json");
        std::fs::write(&cache_path, "{not json").unwrap();
        let mut c = HashCache::open(&cache_path);
        let h = c
            .tree_hash(d.path(), &d.path().join("t"), "t", Check::Cached)
            .unwrap();
        assert_eq!(h.files, 2);
    }
}
