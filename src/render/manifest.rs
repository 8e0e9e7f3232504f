//! The image manifest of a layer (its format is `contract::manifest`): written into every
//! image at /opt/parbake/manifest.json, and kept per layer under /opt/parbake/layers/.

use crate::contract::manifest::{LayerKind, LayerRef, Manifest, MANIFEST_FORMAT};
use crate::plan::{self, Layer, Plan};

fn layer_ref(l: &Layer) -> LayerRef {
    LayerRef {
        index: l.index,
        kind: match l.kind {
            plan::LayerKind::Base => LayerKind::Base,
            plan::LayerKind::Stack => LayerKind::Stack,
        },
        name: l.name.clone(),
        hash: l.hash.clone(),
        parent: l.parent.clone(),
        runs: l.runs.clone(),
        run_hash: l.run_hash.clone(),
        payload_hash: l.payload_hash.clone(),
    }
}

pub fn build(plan: &Plan, layer: &Layer) -> Manifest {
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
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Manifest {
        format: MANIFEST_FORMAT,
        parbake_version: plan.parbake_version.clone(),
        target: plan.target.to_string(),
        image: plan.image.clone(),
        stack: (layer.kind == plan::LayerKind::Stack).then(|| plan.stack.clone()),
        layer: layer_ref(layer),
        lineage,
        installed: plan.installed.clone(),
        baked: layer
            .baked
            .iter()
            .map(|r| (r.clone(), plan.installed[r].clone()))
            .collect(),
        staged_apt: staged,
    }
}

pub fn render(plan: &Plan, layer: &Layer) -> String {
    build(plan, layer).to_json()
}
