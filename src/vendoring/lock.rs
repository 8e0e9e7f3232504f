//! `requirements.lock.json` at the project root: what `parbake vendor` installed, written by
//! serde_json with every list sorted. For each role and collection: its full name, the entry
//! of `requirements.yml` it came from (None for a dependency `ansible-galaxy` pulled in, or a
//! git/URL collection it cannot attribute), the resolved version (a role's
//! `meta/.galaxy_install_info`, a collection's `MANIFEST.json`), a collection's
//! `requires_ansible` (`meta/runtime.yml`) and the content hash of the installed tree
//! ([`super::hash`]). Plus the sha256 of `requirements.yml` and its entries as requested, so
//! that an edited `requirements.yml` makes the lock stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::hash::{Check, HashCache};
use super::requirements::{Requested, Requirements, SourceKind};
use super::VendorError;
use super::{collection_key, role_key, stale};

type Result<T, E = VendorError> = std::result::Result<T, E>;

/// The file name, at the project root.
pub const LOCK_FILE: &str = "requirements.lock.json";
/// The lock's format; a lock of another format must be written again by `parbake vendor`.
pub const LOCK_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub format: u32,
    /// `sha256:<hex>` of `requirements.yml` as it was vendored.
    pub requirements_sha256: String,
    /// Every entry of `requirements.yml`, as requested, sorted.
    pub entries: Vec<Requested>,
    /// Sorted by name.
    pub roles: Vec<LockedRole>,
    /// Sorted by name.
    pub collections: Vec<LockedCollection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedRole {
    /// The installed name: `name` or `namespace.name`.
    pub name: String,
    pub requested: Option<Requested>,
    /// From `meta/.galaxy_install_info` (a tag, branch or commit for git sources).
    pub version: Option<String>,
    /// The content hash of `vendor/roles/<name>/`.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedCollection {
    /// `namespace.name`.
    pub name: String,
    pub requested: Option<Requested>,
    /// From `MANIFEST.json`.
    pub version: String,
    /// From `meta/runtime.yml`, as written (a PEP 440 specifier such as `>=2.14`).
    pub requires_ansible: Option<String>,
    /// The content hash of `vendor/collections/ansible_collections/<ns>/<name>/`.
    pub hash: String,
}

impl Lock {
    /// `<root>/requirements.lock.json`; None when there is none.
    pub fn read(root: &Path) -> Result<Option<Lock>> {
        let path = root.join(LOCK_FILE);
        let Some(bytes) = crate::fsread::read_optional(root, &path, crate::fsread::CONFIG_LIMIT)?
        else {
            return Ok(None);
        };
        let lock: Lock = serde_json::from_slice(&bytes).map_err(|e| {
            stale(format!("{LOCK_FILE} cannot be read: {e}"))
                .with_hint("the lock is written by `parbake vendor`; do not edit it by hand")
        })?;
        if lock.format != LOCK_FORMAT {
            return Err(stale(format!(
                "{LOCK_FILE} has format {}, this parbake reads format {LOCK_FORMAT}",
                lock.format
            )));
        }
        check_lock(&String::from_utf8_lossy(&bytes), &lock)?;
        Ok(Some(lock))
    }

    /// The lock as written: pretty JSON and a newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a lock serializes") + "\n"
    }

    /// Writes `<root>/requirements.lock.json` atomically.
    pub fn write(&self, root: &Path) -> Result<()> {
        Ok(crate::write::write_file(
            &root.join(LOCK_FILE),
            self.to_json().as_bytes(),
        )?)
    }

    /// The lock of the trees installed under `vendor` (a vendor directory, possibly staged)
    /// for `reqs`, hashing them with `cache`.
    pub fn build(
        root: &Path,
        vendor: &Path,
        reqs: &Requirements,
        cache: &mut HashCache,
    ) -> Result<Lock> {
        let mut roles = Vec::new();
        for (name, dir) in installed_roles(vendor)? {
            let requested = reqs
                .roles
                .iter()
                .find(|r| r.name.as_deref() == Some(name.as_str()))
                .cloned();
            let version = role_version(&dir)
                .map(|v| metadata_string(&format!("vendored role `{name}`"), "version", v))
                .transpose()?;
            roles.push(LockedRole {
                version,
                hash: tree_hash(cache, root, &dir, &role_key(&name), &name)?,
                name,
                requested,
            });
        }
        let mut collections = Vec::new();
        for (name, dir) in installed_collections(vendor)? {
            let info = collection_info(&dir, &name)?;
            let what = format!("vendored collection `{name}`");
            collections.push(LockedCollection {
                requested: None,
                version: metadata_string(&what, "version", info.version)?,
                requires_ansible: requires_ansible(&dir, &name)?
                    .map(|r| metadata_string(&what, "requires_ansible", r))
                    .transpose()?,
                hash: tree_hash(cache, root, &dir, &collection_key(&name), &name)?,
                name,
            });
        }
        attribute_collections(root, reqs, &mut collections);
        let mut entries: Vec<Requested> = reqs.entries().cloned().collect();
        entries.sort();
        Ok(Lock {
            format: LOCK_FORMAT,
            requirements_sha256: reqs.sha256.clone(),
            entries,
            roles,
            collections,
        })
    }
}

/// Every string of the lock on one line (no control characters: they would reach the
/// terminal), and no entry, role or collection listed twice. An error names the file and the
/// line.
fn check_lock(text: &str, lock: &Lock) -> Result<()> {
    let mut strings: Vec<&str> = vec![&lock.requirements_sha256];
    let requested = |r: &'_ Requested| -> Vec<String> {
        let mut v = vec![r.kind.clone(), r.src.clone()];
        v.extend(r.version.clone());
        v.extend(r.name.clone());
        v
    };
    let mut owned: Vec<String> = Vec::new();
    for r in lock
        .entries
        .iter()
        .chain(lock.roles.iter().filter_map(|r| r.requested.as_ref()))
        .chain(lock.collections.iter().filter_map(|c| c.requested.as_ref()))
    {
        owned.extend(requested(r));
    }
    for r in &lock.roles {
        strings.extend([r.name.as_str(), r.hash.as_str()]);
        strings.extend(r.version.as_deref());
    }
    for c in &lock.collections {
        strings.extend([c.name.as_str(), c.version.as_str(), c.hash.as_str()]);
        strings.extend(c.requires_ansible.as_deref());
    }
    strings.extend(owned.iter().map(String::as_str));
    if let Some(bad) = strings.iter().find(|s| !crate::config::names::one_line(s)) {
        return Err(lock_error(
            text,
            bad,
            format!("holds a control character in {bad:?}"),
        ));
    }
    let twice = |names: Vec<String>| -> Option<String> {
        let mut seen = std::collections::BTreeSet::new();
        names.into_iter().find(|n| !seen.insert(n.clone()))
    };
    let dup = twice(lock.roles.iter().map(|r| r.name.clone()).collect())
        .map(|n| ("role", n))
        .or_else(|| {
            twice(lock.collections.iter().map(|c| c.name.clone()).collect())
                .map(|n| ("collection", n))
        })
        .or_else(|| {
            let mut seen = std::collections::BTreeSet::new();
            lock.entries
                .iter()
                .find(|e| !seen.insert(*e))
                .map(|e| ("entry", e.src.clone()))
        });
    if let Some((what, name)) = dup {
        return Err(lock_error(
            text,
            &name,
            format!("lists {what} {name:?} twice"),
        ));
    }
    Ok(())
}

/// `requirements.lock.json:LINE: MESSAGE` at the first line that holds `value` (as JSON
/// writes it), with the hint that fixes a bad lock.
fn lock_error(text: &str, value: &str, message: String) -> VendorError {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    let line = text
        .lines()
        .position(|l| !value.is_empty() && l.contains(&quoted))
        .map_or(1, |i| i + 1);
    stale(format!("{LOCK_FILE}:{line}: {message}"))
        .with_hint("the lock is written by `parbake vendor`; do not edit it by hand")
}

/// A string from a collection's or a role's metadata must be one line: it is locked and
/// printed.
fn metadata_string(what: &str, field: &str, value: String) -> Result<String> {
    if crate::config::names::one_line(&value) {
        return Ok(value);
    }
    Err(VendorError::user(format!(
        "{what}: its {field} {value:?} holds a control character"
    ))
    .with_hint("fix the source's metadata (MANIFEST.json, galaxy.yml, meta/runtime.yml): a version is one line of text"))
}

fn tree_hash(
    cache: &mut HashCache,
    root: &Path,
    dir: &Path,
    key: &str,
    name: &str,
) -> Result<String> {
    cache
        .tree_hash(root, dir, key, Check::Full)
        .map(|t| t.hash)
        .map_err(|r| {
            let mut e = VendorError::user(format!(
                "vendored `{name}`: {}: {}",
                r.path.display(),
                r.message
            ));
            for h in r.hints {
                e = e.with_hint(h);
            }
            e
        })
}

/// Entries of a directory, sorted, as (name, path); nothing when it does not exist.
fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(VendorError::io("read the directory", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| VendorError::io("read the directory", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_dir()) && !name.starts_with('.') {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Role directories under `<vendor>/roles/`, by name.
pub fn installed_roles(vendor: &Path) -> Result<Vec<(String, PathBuf)>> {
    subdirs(&vendor.join("roles"))
}

/// Collection directories under `<vendor>/collections/ansible_collections/<ns>/<name>/`, by
/// full name. `<ns>/<name>-<version>.info` (Galaxy's install records) are not collections.
pub fn installed_collections(vendor: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for (ns, ns_dir) in subdirs(&vendor.join("collections/ansible_collections"))? {
        for (name, dir) in subdirs(&ns_dir)? {
            if !name.ends_with(".info") {
                out.push((format!("{ns}.{name}"), dir));
            }
        }
    }
    Ok(out)
}

/// The `version` of a role's `meta/.galaxy_install_info`, if any.
fn role_version(dir: &Path) -> Option<String> {
    let path = dir.join("meta/.galaxy_install_info");
    let text = crate::fsread::read_text(dir, &path, crate::fsread::CONFIG_LIMIT).ok()?;
    let value: serde_yaml::Value = crate::config::yaml::from_str_bounded(&text).ok()?;
    match value.get("version")? {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
struct Manifest {
    collection_info: CollectionInfo,
}

#[derive(Debug, Deserialize)]
struct CollectionInfo {
    namespace: String,
    name: String,
    version: String,
}

/// A collection's `MANIFEST.json`, which must name the directory it is in.
fn collection_info(dir: &Path, fqcn: &str) -> Result<CollectionInfo> {
    let path = dir.join("MANIFEST.json");
    let bytes = crate::fsread::read(dir, &path, crate::fsread::CONFIG_LIMIT).map_err(|e| {
        VendorError::user(format!(
            "vendored collection `{fqcn}` has no readable MANIFEST.json: {e}"
        ))
        .with_hint("run `parbake vendor` again; an installed collection always has one")
    })?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        VendorError::user(format!("vendored collection `{fqcn}`: MANIFEST.json: {e}"))
    })?;
    let info = m.collection_info;
    if format!("{}.{}", info.namespace, info.name) != fqcn {
        return Err(VendorError::user(format!(
            "vendored collection `{fqcn}`: MANIFEST.json names it {:?}",
            format!("{}.{}", info.namespace, info.name)
        )));
    }
    Ok(info)
}

/// `requires_ansible` of a collection's `meta/runtime.yml`, if it has one.
fn requires_ansible(dir: &Path, fqcn: &str) -> Result<Option<String>> {
    let path = dir.join("meta/runtime.yml");
    let Some(bytes) = crate::fsread::read_optional(dir, &path, crate::fsread::CONFIG_LIMIT)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let value: serde_yaml::Value = crate::config::yaml::from_str_bounded(&text).map_err(|e| {
        VendorError::user(format!(
            "vendored collection `{fqcn}`: meta/runtime.yml: {e}"
        ))
    })?;
    Ok(value
        .get("requires_ansible")
        .and_then(|v| v.as_str())
        .map(str::to_string))
}

/// The entry each installed collection came from: Galaxy entries by name, `dir` entries by
/// the directory's MANIFEST.json or galaxy.yml, `file` entries by the tarball's
/// MANIFEST.json; a lone git/URL entry gets the one collection nothing else explains.
fn attribute_collections(root: &Path, reqs: &Requirements, locked: &mut [LockedCollection]) {
    let mut by_name: BTreeMap<String, Requested> = BTreeMap::new();
    let mut unknown = Vec::new();
    for r in &reqs.collections {
        let name = match r.source {
            SourceKind::Galaxy => r.name.clone(),
            SourceKind::Dir => dir_collection_name(&local_path(root, &r.src)),
            SourceKind::File => tarball_collection_name(root, &local_path(root, &r.src)),
            SourceKind::Git | SourceKind::Url => None,
        };
        match name {
            Some(n) => {
                by_name.insert(n, r.clone());
            }
            None => unknown.push(r.clone()),
        }
    }
    for c in locked.iter_mut() {
        c.requested = by_name.get(&c.name).cloned();
    }
    let mut left = locked.iter_mut().filter(|c| c.requested.is_none());
    if let ([only], Some(c), None) = (unknown.as_slice(), left.next(), left.next()) {
        c.requested = Some(only.clone());
    }
}

/// A path as `ansible-galaxy` reads it, run in the project root.
pub(crate) fn local_path(root: &Path, src: &str) -> PathBuf {
    let src = src.strip_prefix("file://").unwrap_or(src);
    match src.strip_prefix("~/") {
        Some(rest) => {
            std::env::var_os("HOME").map_or(root.join(src), |h| PathBuf::from(h).join(rest))
        }
        None => root.join(src),
    }
}

fn dir_collection_name(dir: &Path) -> Option<String> {
    let limit = crate::fsread::CONFIG_LIMIT;
    if let Ok(bytes) = crate::fsread::read(dir, &dir.join("MANIFEST.json"), limit) {
        let m: Manifest = serde_json::from_slice(&bytes).ok()?;
        return Some(format!(
            "{}.{}",
            m.collection_info.namespace, m.collection_info.name
        ));
    }
    let text = crate::fsread::read_text(dir, &dir.join("galaxy.yml"), limit).ok()?;
    let v: serde_yaml::Value = crate::config::yaml::from_str_bounded(&text).ok()?;
    Some(format!(
        "{}.{}",
        v.get("namespace")?.as_str()?,
        v.get("name")?.as_str()?
    ))
}

/// The collection name in a built tarball's `MANIFEST.json` (a top-level member).
/// The largest collection tarball parbake reads a name from (galaxy's own limit is lower).
const TARBALL_MAX: u64 = 256 << 20;

fn tarball_collection_name(root: &Path, path: &Path) -> Option<String> {
    use std::io::Read;
    // the one reading rule: a regular file inside the project, bounded, never waited on
    let bytes = crate::fsread::read(root, path, TARBALL_MAX).ok()?;
    let mut tar = flate2::read::GzDecoder::new(bytes.as_slice()).take(64 << 20);
    let mut header = [0u8; 512];
    loop {
        tar.read_exact(&mut header).ok()?;
        if header.iter().all(|b| *b == 0) {
            return None;
        }
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_string();
        let size_text = String::from_utf8_lossy(&header[124..136])
            .trim_matches(['\0', ' '])
            .to_string();
        let size = u64::from_str_radix(&size_text, 8).ok()?;
        let mut body = Vec::new();
        (&mut tar)
            .take(size.div_ceil(512) * 512)
            .read_to_end(&mut body)
            .ok()?;
        if name.trim_start_matches("./") == "MANIFEST.json" && header[156] != b'x' {
            body.truncate(size as usize);
            let m: Manifest = serde_json::from_slice(&body).ok()?;
            return Some(format!(
                "{}.{}",
                m.collection_info.namespace, m.collection_info.name
            ));
        }
    }
}
