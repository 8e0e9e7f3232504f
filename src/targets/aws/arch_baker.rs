//! Architectures on aws: which chains a stack command runs for, and `bake --all` across them:
//! one [`AwsBaker`] per architecture's view of the project (its sources projected), and one
//! baker over them that hands each layer to its plan's architecture.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::bake::AwsBaker;
use crate::bake::{LayerBaker, LayerResult};
use crate::config::Project;
use crate::error::{Error, Result};
use crate::plan::{Layer, Plan, PlanRequest};
use crate::progress::Progress;

/// The chains of `image` a stack command runs for: `arch` when given (one the image bakes),
/// else every one its `architectures:` lists; `[None]` for a source without that map (the
/// project as loaded) or an image without an aws source (the planner says why).
pub fn chains(image: &crate::config::Image, arch: Option<&str>) -> Result<Vec<Option<String>>> {
    let Some(source) = image.def.sources.aws.as_ref() else {
        return Ok(vec![None]);
    };
    let arches = source.arches();
    match arch {
        Some(a) if !arches.iter().any(|x| x == a) => Err(Error::user(format!(
            "image {} bakes {}, not {a}",
            image.name,
            arches.join(" and ")
        ))
        .with_hint(format!(
            "list {a} under `sources.aws.architectures` in {} (see docs/aws.md, \"Architectures\")",
            image.file.display
        ))),
        Some(a) if !source.architectures.is_empty() => Ok(vec![Some(a.to_string())]),
        _ if source.architectures.is_empty() => Ok(vec![None]),
        _ => Ok(arches.into_iter().map(Some).collect()),
    }
}

/// Each architecture's baker, by architecture.
pub struct ByArch(BTreeMap<String, AwsBaker>);

impl ByArch {
    fn of(&self, plan: &Plan) -> Result<&AwsBaker> {
        let arch = plan.arch.as_deref().unwrap_or("x86_64");
        self.0
            .get(arch)
            .ok_or_else(|| Error::Internal(format!("no baker for {arch} (stack {})", plan.stack)))
    }
}

/// Every request planned by its architecture's baker (each stack once per architecture its
/// image bakes); a stack whose image has no aws source gets the planner's own error.
pub fn plan_all(
    project: &Project,
    requests: &[PlanRequest],
    force: bool,
    dry_run: bool,
    progress: &mut Progress,
) -> Result<(Arc<dyn LayerBaker>, Vec<Plan>)> {
    let mut bakers = BTreeMap::new();
    let mut plans = Vec::new();
    for (arch, view) in project.arch_views() {
        // what a baker notes about the project (test mode, no project id) is said once
        let quiet = Progress::lines(true, false);
        let said = if bakers.is_empty() {
            &*progress
        } else {
            &quiet
        };
        let b = if dry_run {
            AwsBaker::peek(&view, force, said)?
        } else {
            AwsBaker::new(&view, force, said)?
        };
        for r in requests
            .iter()
            .filter(|r| view.stacks.contains_key(&r.stack))
        {
            plans.push(b.plan(r, progress)?);
        }
        bakers.insert(arch, b);
    }
    let planned = |r: &PlanRequest| plans.iter().any(|p| p.stack == r.stack);
    if let Some(r) = requests.iter().find(|r| !planned(r)) {
        crate::plan::plan(project, r)?;
        return Err(Error::Internal(format!(
            "stack {} was not planned",
            r.stack
        )));
    }
    Ok((Arc::new(ByArch(bakers)), plans))
}

impl LayerBaker for ByArch {
    fn cached(&self, plan: &Plan, layer: &Layer) -> Result<Option<LayerResult>> {
        self.of(plan)?.cached(plan, layer)
    }

    fn run_layer(&self, plan: &Plan, layer: &Layer) -> Result<Option<LayerResult>> {
        self.of(plan)?.run_layer(plan, layer)
    }

    fn previous_inputs(&self, plan: &Plan, layer: &Layer) -> Option<crate::plan::Inputs> {
        self.of(plan).ok()?.previous_inputs(plan, layer)
    }

    fn inputs_of(&self, plan: &Plan, layer: &LayerResult) -> Option<crate::plan::Inputs> {
        self.of(plan).ok()?.inputs_of(plan, layer)
    }

    fn bake(
        &self,
        plan: &Plan,
        layer: &Layer,
        parent: Option<&LayerResult>,
        progress: &mut Progress,
    ) -> Result<LayerResult> {
        self.of(plan)?.bake(plan, layer, parent, progress)
    }

    fn what(&self) -> String {
        let whats: std::collections::BTreeSet<String> = self.0.values().map(|b| b.what()).collect();
        whats.into_iter().collect::<Vec<_>>().join(", ")
    }
}
