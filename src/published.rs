//! record: the local target's publications. `parbake publish STACK` points the stack at a
//! baked layer and its exact user-data, as a launch template's default version does on EC2;
//! `parbake rollback STACK` moves the pointer back; `parbake launch STACK --published` boots
//! exactly what it points at, whatever the project says today.
//!
//! ```text
//! .parbake/published/<stack>.json                      versions, the default, the rollback trail
//! .parbake/published/<stack>/<sha256>.user-data        each published user-data, byte for byte
//! ```
//! Versions are never changed once written; publish and rollback move `default_version` under
//! a lock, and the file is replaced atomically.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::Store;

/// One published version: a layer and the user-data that goes with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Publication {
    pub version: u32,
    pub image: String,
    pub layer_index: u8,
    pub layer: String,
    pub layer_hash: String,
    /// Roles the user-data runs at launch.
    pub launch_roles: usize,
    pub userdata_sha256: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// It passed `verify` with exactly this user-data; false only when published with
    /// `--unverified`, which is recorded here.
    pub verified: bool,
}

/// A stack's publications.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Published {
    pub stack: String,
    pub default_version: u32,
    pub versions: Vec<Publication>,
    /// The versions that were the default before the current one, oldest first: `rollback`
    /// returns to the last of them.
    #[serde(default)]
    pub trail: Vec<u32>,
}

impl Published {
    pub fn version(&self, v: u32) -> Option<&Publication> {
        self.versions.iter().find(|p| p.version == v)
    }

    /// The version launches use.
    pub fn current(&self) -> &Publication {
        self.version(self.default_version)
            .expect("the default version is one of the versions")
    }

    /// Where `rollback` would go.
    pub fn rollback_target(&self) -> Option<&Publication> {
        self.trail.last().and_then(|v| self.version(*v))
    }
}

fn dir(store: &Store) -> PathBuf {
    store.root.join("published")
}

fn file(store: &Store, stack: &str) -> PathBuf {
    dir(store).join(format!("{stack}.json"))
}

fn user_data_path(store: &Store, stack: &str, sha256: &str) -> PathBuf {
    dir(store).join(stack).join(format!("{sha256}.user-data"))
}

/// A stack's publications, if it has any. A file parbake cannot read is an error, never
/// "nothing published": prune must not take it for that.
pub fn load(store: &Store, stack: &str) -> Result<Option<Published>> {
    let path = file(store, stack);
    let Some(bytes) =
        crate::fsread::read_optional(&store.root, &path, crate::fsread::RECORD_LIMIT)?
    else {
        return Ok(None);
    };
    let p: Published = serde_json::from_slice(&bytes).map_err(|e| {
        Error::user(format!("{} is not a publish record: {e}", path.display()))
            .with_hint("it is written by `parbake publish`; restore it from a backup, or remove it to start the stack's publications again")
    })?;
    if p.version(p.default_version).is_none() {
        return Err(Error::user(format!(
            "{}: the default version {} is not among its versions",
            path.display(),
            p.default_version
        )));
    }
    Ok(Some(p))
}

/// Every stack's publications in the store.
pub fn all(store: &Store) -> Result<Vec<Published>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir(store)) else {
        return Ok(out);
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(String::from)
        })
        .collect();
    names.sort();
    for stack in names {
        if let Some(p) = load(store, &stack)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// The user-data of a published version, checked against its digest.
pub fn user_data(store: &Store, stack: &str, p: &Publication) -> Result<Vec<u8>> {
    let path = user_data_path(store, stack, &p.userdata_sha256);
    let bytes = crate::fsread::read(&store.root, &path, crate::fsread::RECORD_LIMIT)?;
    if crate::plan::sha256_hex(&bytes) != p.userdata_sha256 {
        return Err(
            Error::user(format!("{} does not match its digest", path.display()))
                .with_hint("the store was changed by hand; publish the stack again"),
        );
    }
    Ok(bytes)
}

/// Holds the stack's publish lock while `change` reads and rewrites its record.
fn locked<T>(
    store: &Store,
    stack: &str,
    change: impl FnOnce(Option<Published>) -> Result<(Published, T)>,
) -> Result<T> {
    let d = dir(store);
    std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
    let lock_path = d.join(format!(".{stack}.lock"));
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| Error::io("create lock", &lock_path, e))?;
    lock.lock().map_err(|e| Error::io("lock", &lock_path, e))?;
    let (record, out) = change(load(store, stack)?)?;
    let text = serde_json::to_string_pretty(&record).expect("a publish record serializes") + "\n";
    crate::write::write_file(&file(store, stack), text.as_bytes())?;
    Ok(out)
}

/// Adds a version with this layer and user-data and makes it the default; returns it and the
/// version it replaced as the default.
pub fn publish(
    store: &Store,
    stack: &str,
    mut version: Publication,
    user_data: &[u8],
) -> Result<(Publication, Option<Publication>)> {
    let ud = user_data_path(store, stack, &version.userdata_sha256);
    if let Some(parent) = ud.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    }
    crate::write::write_file(&ud, user_data)?;
    locked(store, stack, |old| {
        let mut record = old.unwrap_or(Published {
            stack: stack.to_string(),
            default_version: 0,
            versions: Vec::new(),
            trail: Vec::new(),
        });
        let previous = record.version(record.default_version).cloned();
        version.version = record.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        if let Some(p) = &previous {
            record.trail.push(p.version);
        }
        record.default_version = version.version;
        record.versions.push(version.clone());
        Ok((record, (version, previous)))
    })
}

/// Moves the default back to the version before it; returns (from, to).
pub fn rollback(
    store: &Store,
    stack: &str,
    unverified: bool,
) -> Result<(Publication, Publication)> {
    locked(store, stack, |old| {
        let Some(mut record) = old else {
            return Err(
                Error::user(format!("stack {stack} has never been published"))
                    .with_hint(format!("publish it first: parbake publish {stack}")),
            );
        };
        let from = record.current().clone();
        let Some(to) = record.rollback_target().cloned() else {
            return Err(Error::user(format!(
                "stack {stack} has no earlier published version to roll back to (the default is version {}, its first)",
                from.version
            ))
            .with_hint("publish the version you want instead"));
        };
        if !to.verified && !unverified {
            return Err(unverified_target(stack, &format!("version {}", to.version)));
        }
        record.trail.pop();
        record.default_version = to.version;
        Ok((record, (from, to)))
    })
}

/// A rollback that would land on a version published with `--unverified`.
pub fn unverified_target(stack: &str, version: &str) -> Error {
    Error::user(format!(
        "stack {stack} would roll back to {version}, which was published unverified; nothing was changed"
    ))
    .with_hint(format!(
        "roll back to it anyway with `parbake rollback {stack} --unverified`, or publish a verified version"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(layer: &str) -> Publication {
        Publication {
            version: 0,
            image: "debian12".into(),
            layer_index: 1,
            layer: layer.into(),
            layer_hash: format!("{layer:0>64}"),
            launch_roles: 1,
            userdata_sha256: crate::plan::sha256_hex(layer.as_bytes()),
            at: 1,
            verified: true,
        }
    }

    #[test]
    fn rollback_lands_on_an_unverified_version_only_when_told() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store {
            root: tmp.path().to_path_buf(),
        };
        let unverified = Publication {
            verified: false,
            ..version("a")
        };
        publish(&store, "web", unverified, b"a").unwrap();
        publish(&store, "web", version("b"), b"b").unwrap();
        let e = rollback(&store, "web", false).unwrap_err();
        assert!(e.to_string().contains("published unverified"), "{e}");
        assert_eq!(load(&store, "web").unwrap().unwrap().default_version, 2);
        let (from, to) = rollback(&store, "web", true).unwrap();
        assert_eq!((from.version, to.version), (2, 1));
    }

    #[test]
    fn publish_moves_the_default_forward_and_rollback_walks_the_trail_back() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store {
            root: tmp.path().to_path_buf(),
        };
        assert!(load(&store, "web").unwrap().is_none());
        assert!(rollback(&store, "web", false).is_err());
        let (v1, prev) = publish(&store, "web", version("a"), b"a").unwrap();
        assert_eq!((v1.version, prev), (1, None));
        let e = rollback(&store, "web", false).unwrap_err();
        assert!(
            e.to_string().contains("no earlier published version"),
            "{e}"
        );
        publish(&store, "web", version("b"), b"b").unwrap();
        let (v3, prev) = publish(&store, "web", version("c"), b"c").unwrap();
        assert_eq!((v3.version, prev.unwrap().version), (3, 2));
        let (from, to) = rollback(&store, "web", false).unwrap();
        assert_eq!((from.version, to.version), (3, 2));
        let (from, to) = rollback(&store, "web", false).unwrap();
        assert_eq!((from.version, to.version), (2, 1));
        assert!(rollback(&store, "web", false).is_err());
        // publishing after a rollback adds a version; rolling back returns to where it was
        let (v4, prev) = publish(&store, "web", version("d"), b"d").unwrap();
        assert_eq!((v4.version, prev.unwrap().version), (4, 1));
        let p = load(&store, "web").unwrap().unwrap();
        assert_eq!(p.default_version, 4);
        assert_eq!(p.rollback_target().unwrap().version, 1);
        assert_eq!(user_data(&store, "web", p.current()).unwrap(), b"d");
        // a user-data changed by hand is refused
        let path = user_data_path(&store, "web", &p.current().userdata_sha256);
        std::fs::write(&path, b"tampered").unwrap();
        assert!(user_data(&store, "web", p.current()).is_err());
        // an unreadable record is an error, not "never published"
        std::fs::write(file(&store, "web"), "{").unwrap();
        assert!(load(&store, "web").is_err());
    }
}
