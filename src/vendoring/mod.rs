//! Vendored Ansible content: the roles and collections `requirements.yml` names, installed by
//! `parbake vendor` (the real `ansible-galaxy`) into the project and pinned by a lock.
//!
//! Layout, under the project root:
//! - `requirements.yml`: Ansible's own format ([`requirements`]);
//! - `requirements.lock.json`: what was installed, with versions and content hashes ([`lock`]);
//! - `vendor/roles/<full name>/`: each role, under `name` or `namespace.name`;
//! - `vendor/collections/ansible_collections/<ns>/<name>/`: each collection
//!   (`vendor/collections` is the directory to put on `ANSIBLE_COLLECTIONS_PATH`);
//! - `vendor/.parbake-hash-cache.json`: per-file digests, so that `plan` does not reread
//!   thousands of collection files ([`hash`]).
//!
//! `plan`, `render` and `bake` call [`Vendored::load`] (or [`Vendored::verify`] on bake): it
//! reads only the lock and the trees, never git or Galaxy, and refuses a missing or stale
//! vendor directory with an error that names the entry and says to run `parbake vendor`.
//! `parbake vendor` itself is [`install::vendor`].

pub mod error;
pub mod hash;
pub mod install;
pub mod lock;
pub mod requirements;
pub mod sources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::config::vendored::{VendoredCollection, VendoredRole, VENDOR_DIR};
use crate::config::VendoredContent;
pub use error::VendorError;
pub use hash::Check;
pub use lock::{Lock, LOCK_FILE};
pub use requirements::{Requested, Requirements, SourceKind, REQUIREMENTS_FILE};

type Result<T, E = VendorError> = std::result::Result<T, E>;

/// `<root>/vendor`.
pub fn vendor_dir(root: &Path) -> PathBuf {
    root.join(VENDOR_DIR)
}

/// `<root>/vendor/roles`: each vendored role is a directory here, under its full name.
pub fn roles_dir(root: &Path) -> PathBuf {
    vendor_dir(root).join("roles")
}

/// `<root>/vendor/collections`: the collections path (it holds `ansible_collections/`).
pub fn collections_dir(root: &Path) -> PathBuf {
    vendor_dir(root).join("collections")
}

/// A tree's path under the vendor directory: the key of its files in the hash cache.
pub(crate) fn role_key(name: &str) -> String {
    format!("roles/{name}")
}

pub(crate) fn collection_key(fqcn: &str) -> String {
    let (ns, name) = fqcn.split_once('.').unwrap_or((fqcn, ""));
    format!("collections/ansible_collections/{ns}/{name}")
}

/// An error about the vendor directory or the lock, with the hint that fixes it.
pub(crate) fn stale(message: impl Into<String>) -> VendorError {
    VendorError::user(message).with_hint(
        "run `parbake vendor` to install requirements.yml into vendor/ and write requirements.lock.json",
    )
}

/// The project's vendored roles and collections, checked against the lock.
#[derive(Debug, Clone)]
pub struct Vendored {
    pub root: PathBuf,
    pub lock: Lock,
    content: VendoredContent,
}

impl Vendored {
    /// The vendored content of the project at `root`, from the lock and the trees only (file
    /// digests cached: see [`hash`]). None when there is no `requirements.yml`. An error, exit
    /// 1, naming the entry and saying to run `parbake vendor`, when: the lock is missing or
    /// unreadable; an entry of `requirements.yml` is not in it; `requirements.yml` changed
    /// since it was written; a vendored tree is missing, not in the lock, or its content no
    /// longer matches the lock. A bad `requirements.yml` is a located config error.
    pub fn load(root: &Path) -> Result<Option<Vendored>> {
        Vendored::load_with(root, Check::Cached)
    }

    /// Like [`Vendored::load`], reading and hashing every byte of every tree (for bake).
    pub fn verify(root: &Path) -> Result<Option<Vendored>> {
        Vendored::load_with(root, Check::Full)
    }

    pub fn load_with(root: &Path, check: Check) -> Result<Option<Vendored>> {
        let Some(reqs) = Requirements::load(root)? else {
            return Ok(None);
        };
        let Some(lock) = Lock::read(root)? else {
            return Err(stale(format!(
                "{REQUIREMENTS_FILE} is not vendored yet: there is no {LOCK_FILE}"
            )));
        };
        check_entries(&reqs, &lock)?;
        let vendor = vendor_dir(root);
        let mut cache = hash::HashCache::open(&vendor.join(hash::CACHE_FILE));
        let roles = check_roles(root, &lock, &mut cache, check)?;
        let collections = check_collections(root, &lock, &mut cache, check)?;
        cache.save();
        Ok(Some(Vendored {
            root: root.to_path_buf(),
            lock,
            content: VendoredContent::new(roles, collections),
        }))
    }

    /// What config and plan read of it.
    pub fn content(&self) -> &VendoredContent {
        &self.content
    }

    /// Vendored roles by full name.
    pub fn roles(&self) -> &BTreeMap<String, VendoredRole> {
        self.content.roles()
    }

    /// Vendored collections by `namespace.name`.
    pub fn collections(&self) -> &BTreeMap<String, VendoredCollection> {
        self.content.collections()
    }

    /// `<root>/vendor/collections`, for `ANSIBLE_COLLECTIONS_PATH`.
    pub fn collections_path(&self) -> PathBuf {
        collections_dir(&self.root)
    }

    /// Every file the lock's collection hashes cover, as paths under
    /// [`Vendored::collections_path`] (`ansible_collections/<ns>/<name>/<rel>`), sorted: what
    /// bake packs, and nothing else (no hidden or `.info` entries beside the trees, no loose
    /// files).
    pub fn collection_files(&self) -> Result<Vec<String>> {
        let within = std::fs::canonicalize(&self.root)
            .map_err(|e| VendorError::io("resolve", &self.root, e))?;
        let mut out = Vec::new();
        for c in self.collections().values() {
            let files = hash::tree_files(&within, &c.dir).map_err(|r| {
                stale(format!(
                    "vendored collection `{}`: {}: {}",
                    c.name,
                    r.path.display(),
                    r.message
                ))
            })?;
            let key = collection_key(&c.name);
            let prefix = key.strip_prefix("collections/").unwrap_or(&key);
            out.extend(files.into_iter().map(|(rel, _)| format!("{prefix}/{rel}")));
        }
        out.sort();
        Ok(out)
    }

    /// The vendored collections as one gzipped tar at `to`: exactly
    /// [`Vendored::collection_files`], file symlinks stored as the content they were hashed
    /// with.
    pub fn pack_collections(&self, to: &Path) -> Result<()> {
        let files = self.collection_files()?;
        let dir = crate::write::private_temp("parbake-pack-")
            .tempdir()
            .map_err(|e| VendorError::io("create a temp dir", std::env::temp_dir(), e))?;
        let list = dir.path().join("files");
        let mut text = Vec::new();
        for f in &files {
            text.extend_from_slice(f.as_bytes());
            text.push(0);
        }
        std::fs::write(&list, text).map_err(|e| VendorError::io("write", &list, e))?;
        crate::process::Cmd::new("pack the vendored collections", "tar")
            .args(["--create", "--gzip", "--file"])
            .arg(to)
            .arg("--directory")
            .arg(self.collections_path())
            .args([
                "--dereference",
                "--no-recursion",
                "--null",
                "--verbatim-files-from",
            ])
            .arg("--files-from")
            .arg(&list)
            .run_checked()?;
        Ok(())
    }

    /// One hash over every collection (name, version, content hash), for the layer hash.
    pub fn collections_hash(&self) -> String {
        self.content.collections_hash()
    }
}

/// Every entry of `requirements.yml` is in the lock, and the file is the one vendored.
fn check_entries(reqs: &Requirements, lock: &Lock) -> Result<()> {
    for entry in reqs.entries() {
        if !lock.entries.contains(entry) {
            return Err(stale(format!(
                "{}: {} is not in {LOCK_FILE}",
                reqs.shown(),
                entry.describe()
            )));
        }
    }
    if reqs.sha256 != lock.requirements_sha256 {
        return Err(stale(format!(
            "{} changed since {LOCK_FILE} was written",
            reqs.shown()
        )));
    }
    Ok(())
}

/// What the lock says about a tree against what is on disk: missing, extra, or stale.
fn compare_tree(
    root: &Path,
    cache: &mut hash::HashCache,
    check: Check,
    what: &str,
    dir: &Path,
    key: &str,
    locked_hash: &str,
) -> Result<()> {
    let shown = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
    if !dir.is_dir() {
        return Err(stale(format!("{what} is missing: {shown} does not exist")));
    }
    let now = cache.tree_hash(root, dir, key, check).map_err(|r| {
        stale(format!(
            "{what} ({shown}): {}: {}",
            r.path.display(),
            r.message
        ))
    })?;
    if now.hash != locked_hash {
        return Err(stale(format!(
            "{what} is stale: {shown} has changed since `parbake vendor` (content hash {}, the lock says {})",
            short(&now.hash),
            short(locked_hash)
        ))
        .with_hint("to keep a local change, make it a role of your own under roles/ instead of editing vendor/"));
    }
    Ok(())
}

fn short(hash: &str) -> &str {
    let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
    &hex[..hex.len().min(12)]
}

/// Trees on disk that the lock does not list.
fn refuse_extra(
    root: &Path,
    what: &str,
    on_disk: Vec<(String, PathBuf)>,
    locked: &[&str],
) -> Result<()> {
    for (name, dir) in on_disk {
        if !locked.contains(&name.as_str()) {
            let shown = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
            return Err(stale(format!(
                "{what} `{name}` ({shown}) is not in {LOCK_FILE}"
            )));
        }
    }
    Ok(())
}

/// A name read from the lock becomes a path: it must be one `parbake vendor` could write.
fn check_locked_name(name: &str, valid: bool) -> Result<()> {
    if valid {
        return Ok(());
    }
    Err(stale(format!(
        "{LOCK_FILE} names {name:?}, which is not a valid role or collection name"
    ))
    .with_hint("the lock is written by `parbake vendor`; do not edit it by hand"))
}

fn check_roles(
    root: &Path,
    lock: &Lock,
    cache: &mut hash::HashCache,
    check: Check,
) -> Result<BTreeMap<String, VendoredRole>> {
    let vendor = vendor_dir(root);
    let locked: Vec<&str> = lock.roles.iter().map(|r| r.name.as_str()).collect();
    refuse_extra(
        root,
        "vendored role",
        lock::installed_roles(&vendor)?,
        &locked,
    )?;
    let mut out = BTreeMap::new();
    for r in &lock.roles {
        check_locked_name(&r.name, requirements::valid_role_name(&r.name))?;
        let dir = roles_dir(root).join(&r.name);
        let what = format!("vendored role `{}`", r.name);
        compare_tree(root, cache, check, &what, &dir, &role_key(&r.name), &r.hash)?;
        out.insert(
            r.name.clone(),
            VendoredRole {
                name: r.name.clone(),
                dir,
                version: r.version.clone(),
                hash: r.hash.clone(),
            },
        );
    }
    Ok(out)
}

fn check_collections(
    root: &Path,
    lock: &Lock,
    cache: &mut hash::HashCache,
    check: Check,
) -> Result<BTreeMap<String, VendoredCollection>> {
    let vendor = vendor_dir(root);
    let locked: Vec<&str> = lock.collections.iter().map(|c| c.name.as_str()).collect();
    refuse_extra(
        root,
        "vendored collection",
        lock::installed_collections(&vendor)?,
        &locked,
    )?;
    let mut out = BTreeMap::new();
    for c in &lock.collections {
        check_locked_name(&c.name, requirements::valid_collection_name(&c.name))?;
        let key = collection_key(&c.name);
        let dir = vendor.join(&key);
        let what = format!("vendored collection `{}`", c.name);
        compare_tree(root, cache, check, &what, &dir, &key, &c.hash)?;
        out.insert(
            c.name.clone(),
            VendoredCollection {
                name: c.name.clone(),
                dir,
                version: c.version.clone(),
                requires_ansible: c.requires_ansible.clone(),
                hash: c.hash.clone(),
            },
        );
    }
    Ok(out)
}
