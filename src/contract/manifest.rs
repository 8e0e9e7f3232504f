//! `/opt/parbake/manifest.json`, the image manifest: a versioned JSON document written into
//! every image (and kept per layer under /opt/parbake/layers/). parbake writes it at bake time
//! (`render::manifest`); the runner reads it at launch to check the image against the spec.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The format parbake writes and the runner reads (its `MANIFEST_FORMAT`). Also tagged on AMIs
/// as `parbake:manifest-format`.
pub const MANIFEST_FORMAT: u32 = 1;

/// Which kind of layer a manifest describes (serialized as the plan's `LayerKind` is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    Base,
    Stack,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRef {
    pub index: u8,
    pub kind: LayerKind,
    pub name: String,
    pub hash: String,
    pub parent: String,
    pub runs: Vec<String>,
    /// What running this layer's roles depended on (`plan::Layer::run_hash`); absent in
    /// manifests written before run hashes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_hash: String,
    /// The payload every image of this layer carries (`plan::Layer::payload_hash`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub parbake_version: String,
    pub target: String,
    pub image: String,
    /// The stack of a stack layer; null on a base layer, which every stack of the image shares.
    pub stack: Option<String>,
    pub layer: LayerRef,
    /// This layer and its parents, base first.
    pub lineage: Vec<LayerRef>,
    /// Every role on the image with its content hash.
    pub installed: BTreeMap<String, String>,
    /// Roles baked into the image (all layers so far) with their content hash.
    pub baked: BTreeMap<String, String>,
    pub staged_apt: BTreeMap<String, Vec<String>>,
}

impl Manifest {
    /// The manifest as written into the image: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serializes") + "\n"
    }
}
