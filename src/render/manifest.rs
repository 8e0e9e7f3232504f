//! The image manifest: a versioned JSON document written into every image at
//! /opt/parbake/manifest.json, and kept per layer under /opt/parbake/layers/.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::plan::{Layer, LayerKind, Plan};

pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Serialize)]
pub struct LayerRef<'a> {
    pub index: u8,
    pub kind: LayerKind,
    pub name: &'a str,
    pub hash: &'a str,
    pub parent: &'a str,
    pub runs: &'a [String],
}

#[derive(Serialize)]
pub struct Manifest<'a> {
    pub format: u32,
    pub parbake_version: &'a str,
    pub target: String,
    pub image: &'a str,
    /// The stack of a stack layer; null on a base layer, which every stack of the image shares.
    pub stack: Option<&'a str>,
    pub layer: LayerRef<'a>,
    /// This layer and its parents, base first.
    pub lineage: Vec<LayerRef<'a>>,
    /// Every role on the image with its content hash.
    pub installed: &'a BTreeMap<String, String>,
    /// Roles baked into the image (all layers so far) with their content hash.
    pub baked: BTreeMap<&'a str, &'a str>,
    pub staged_apt: BTreeMap<&'a str, &'a [String]>,
}

fn layer_ref(l: &Layer) -> LayerRef<'_> {
    LayerRef {
        index: l.index,
        kind: l.kind,
        name: &l.name,
        hash: &l.hash,
        parent: &l.parent,
        runs: &l.runs,
    }
}

pub fn build<'a>(plan: &'a Plan, layer: &'a Layer) -> Manifest<'a> {
    let lineage = plan
        .layers
        .iter()
        .take_while(|l| l.index <= layer.index)
        .map(layer_ref)
        .collect();
    let staged = plan
        .layers
        .iter()
        .take_while(|l| l.index <= layer.index)
        .flat_map(|l| l.stage_apt.iter())
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    Manifest {
        format: MANIFEST_FORMAT,
        parbake_version: &plan.parbake_version,
        target: plan.target.to_string(),
        image: &plan.image,
        stack: (layer.kind == LayerKind::Stack).then_some(plan.stack.as_str()),
        layer: layer_ref(layer),
        lineage,
        installed: &plan.installed,
        baked: layer
            .baked
            .iter()
            .map(|r| (r.as_str(), plan.installed[r].as_str()))
            .collect(),
        staged_apt: staged,
    }
}

pub fn render(plan: &Plan, layer: &Layer) -> String {
    serde_json::to_string_pretty(&build(plan, layer)).expect("manifest serializes") + "\n"
}
