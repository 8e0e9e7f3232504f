//! record: the local image store, `.parbake/` in the project (or `$PARBAKE_STORE`).
//!
//! ```text
//! .parbake/images/<layer hash>/disk.qcow2     the layer's disk (complete, or absent)
//!                              manifest.json  the image manifest baked into it
//!                              record.json    what was baked, when, how long, per-role timings
//!                              bake.log       Packer's full output
//!                              verified/<user-data sha256>.json
//!                                             `parbake verify`'s verdict with that user-data
//! .parbake/build/   in-progress bakes (removed on success, failure and Ctrl-C)
//! .parbake/runs/    launched VMs (removed on exit unless --keep)
//! .parbake/logs/    logs of failed bakes and of launches
//! ```
//! A layer directory appears by one rename once everything in it is written, so a layer is
//! either fully in the store or not at all.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::contract::events::RoleTiming;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerRecord {
    pub format: u32,
    pub parbake_version: String,
    pub target: String,
    pub image: String,
    pub stack: Option<String>,
    pub index: u8,
    pub name: String,
    pub hash: String,
    pub parent: String,
    pub runs: Vec<String>,
    pub baked: Vec<String>,
    /// Kernel and initrd for direct kernel boot (from the base disk image).
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub accelerator: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    pub bake_duration_s: f64,
    pub roles: Vec<RoleTiming>,
    /// What went into the hash, so the next bake of this layer can say what changed.
    #[serde(default)]
    pub inputs: crate::plan::Inputs,
    /// The layer's run hash and payload hash (absent in records from before them).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_hash: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload_hash: String,
    /// A payload refresh: the layer hash of the run layer it refreshed (its disk's backing
    /// file). None for a bake, which ran its roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_of: Option<String>,
}

/// `parbake verify`'s verdict on a layer booted as a stack's top image with one user-data,
/// kept per user-data digest: `publish` asks for a passed one with exactly the user-data it
/// would publish.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verification {
    pub stack: String,
    pub layer: String,
    pub layer_hash: String,
    /// sha256 of the user-data the instance booted with.
    pub userdata_sha256: String,
    pub passed: bool,
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub boot_to_ready_s: f64,
    pub accelerator: String,
    pub instance_id: String,
    /// The checks that passed, by name.
    pub checks: Vec<String>,
    /// Where and why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn for_project(project_root: &Path) -> Store {
        let root = std::env::var_os("PARBAKE_STORE")
            .map(PathBuf::from)
            .unwrap_or_else(|| project_root.join(".parbake"));
        Store { root }
    }

    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn layer_dir(&self, hash: &str) -> PathBuf {
        self.images().join(hash)
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn builds(&self) -> PathBuf {
        self.root.join("build")
    }
    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    fn verified_dir(&self, hash: &str) -> PathBuf {
        self.layer_dir(hash).join("verified")
    }

    /// Records a verdict on a layer in the store (replacing an earlier one with the same
    /// user-data); returns the file.
    pub fn record_verification(&self, v: &Verification) -> Result<PathBuf> {
        let dir = self.verified_dir(&v.layer_hash);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let path = dir.join(format!("{}.json", v.userdata_sha256));
        let text = serde_json::to_string_pretty(v).expect("a verification serializes") + "\n";
        crate::write::write_file(&path, text.as_bytes())?;
        Ok(path)
    }

    /// The verdict on a layer with this user-data, if it was verified with it.
    pub fn verification(&self, hash: &str, userdata_sha256: &str) -> Option<Verification> {
        let path = self
            .verified_dir(hash)
            .join(format!("{userdata_sha256}.json"));
        serde_json::from_slice(&self.read_record(&path)?).ok()
    }

    /// Every verdict on a layer, newest first.
    pub fn verifications(&self, hash: &str) -> Vec<Verification> {
        let mut out: Vec<Verification> = std::fs::read_dir(self.verified_dir(hash))
            .into_iter()
            .flatten()
            .filter_map(|e| self.read_record(&e.ok()?.path()))
            .filter_map(|t| serde_json::from_slice(&t).ok())
            .collect();
        out.sort_by_key(|v: &Verification| std::cmp::Reverse(v.at));
        out
    }

    /// The record of a complete layer, if the store has one.
    pub fn layer(&self, hash: &str) -> Option<LayerRecord> {
        let dir = self.layer_dir(hash);
        if !dir.join("disk.qcow2").is_file() {
            return None;
        }
        let text = self.read_record(&dir.join("record.json"))?;
        serde_json::from_slice(&text).ok()
    }

    /// A record of the store, by the reading rule (inside the store, regular, bounded); a
    /// record that breaks it counts as absent, like one that does not parse.
    fn read_record(&self, path: &Path) -> Option<Vec<u8>> {
        crate::fsread::read(&self.root, path, crate::fsread::RECORD_LIMIT).ok()
    }

    /// The newest complete record of a layer with this name (any hash): the bake a new one
    /// replaces, for "why was it rebaked".
    pub fn latest_named(&self, name: &str) -> Option<LayerRecord> {
        std::fs::read_dir(self.images())
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| self.layer(e.file_name().to_str()?))
            .filter(|r| r.name == name)
            .max_by_key(|r| r.created_at)
    }

    /// The newest complete bake (not a refresh) with this run hash: an image that ran exactly
    /// these roles on exactly this parent run, whichever payload it carries.
    pub fn run_layer(&self, run_hash: &str) -> Option<LayerRecord> {
        if run_hash.is_empty() {
            return None;
        }
        std::fs::read_dir(self.images())
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| self.layer(e.file_name().to_str()?))
            .filter(|r| r.run_hash == run_hash && r.refresh_of.is_none())
            .max_by_key(|r| r.created_at)
    }

    pub fn ensure_dirs(&self) -> Result<()> {
        for d in [self.images(), self.logs(), self.builds(), self.runs()] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create the image store", &d, e))?;
        }
        Ok(())
    }

    /// Moves a finished layer directory into place. An existing copy is replaced when
    /// `replace` (a forced rebake), else kept (another run got there first).
    pub fn commit(&self, staged: &Path, hash: &str, replace: bool) -> Result<PathBuf> {
        let dest = self.layer_dir(hash);
        if dest.exists() && replace {
            let old = self
                .root
                .join(format!("images/.replaced-{hash}-{}", std::process::id()));
            std::fs::rename(&dest, &old)
                .map_err(|e| Error::io("move the old layer aside", &dest, e))?;
            if let Err(e) = std::fs::rename(staged, &dest) {
                let _ = std::fs::rename(&old, &dest); // put the old layer back
                return Err(Error::io("move the layer into the store", &dest, e));
            }
            let _ = std::fs::remove_dir_all(&old);
            return Ok(dest);
        }
        if dest.exists() {
            let _ = std::fs::remove_dir_all(staged);
            return Ok(dest);
        }
        std::fs::rename(staged, &dest)
            .map_err(|e| Error::io("move the layer into the store", &dest, e))?;
        Ok(dest)
    }

    /// An exclusive lock on one layer, so two runs never bake it at once; the second waits,
    /// saying so on stderr whatever `-q` says. A caller with a printer or a progress uses
    /// [`Store::lock_layer_then`] instead.
    pub fn lock_layer(&self, hash: &str) -> Result<std::fs::File> {
        self.lock_layer_then(hash, |line| crate::printer::stderr::line(line))
    }

    /// [`Store::lock_layer`], telling `waiting` why it waits (a progress line, which `-q`
    /// silences) before it blocks.
    pub fn lock_layer_then(&self, hash: &str, waiting: impl FnOnce(&str)) -> Result<std::fs::File> {
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let path = dir.join(format!("{hash}.lock"));
        let f = std::fs::File::create(&path).map_err(|e| Error::io("create lock", &path, e))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting(&format!(
                    "parbake: layer {} is being baked by another run; waiting for it",
                    &hash[..12]
                ));
                f.lock().map_err(|e| Error::io("lock", &path, e))?;
                Ok(f)
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
        }
    }
}

/// How many parents up a node's lineage goes within `parents` (id → parent id), counting only
/// parents that are listed; bounded, so a loop ends.
pub fn depth(parents: &std::collections::BTreeMap<String, Option<String>>, id: &str) -> usize {
    let mut d = 0;
    let mut current = id;
    while let Some(Some(p)) = parents.get(current) {
        if d > 32 || !parents.contains_key(p) || p == current {
            break;
        }
        d += 1;
        current = p;
    }
    d
}

pub fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
