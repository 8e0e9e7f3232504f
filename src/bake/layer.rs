//! `bake --layer HASH`: exactly one planned layer of `bake --all`'s graph, the job a CI engine
//! runs for it (`bake --all --emit`). Its parent must be there already (a cache hit by hash, or
//! for a parent no stack launches, its run layer, as `bake --all` takes it); a missing parent
//! is an error naming the job that bakes it, never a bake of the parent here. A layer already
//! there is a cache hit. The target's bake takes its claim, so two jobs racing for one layer
//! bake it once: the other waits and finds it cached.

use std::time::Instant;

use crate::bake::all::{count, initial_outcome, not_refreshed, AllReport, Node, Outcome};
use crate::bake::{layer_label, round, LayerBaker, LayerResult};
use crate::error::{Error, Result};
use crate::plan::Target;
use crate::progress::Progress;

/// The shortest hash prefix `--layer` takes.
pub const MIN_PREFIX: usize = 12;

/// The node whose layer hash is `wanted` (or starts with it, when at least [`MIN_PREFIX`] hex
/// digits name one layer).
pub fn find(nodes: &[Node], wanted: &str, target: Target) -> Result<usize> {
    let wanted = wanted.to_ascii_lowercase();
    let hits: Vec<usize> = (0..nodes.len())
        .filter(|&i| {
            let h = &nodes[i].layer.hash;
            *h == wanted || (wanted.len() >= MIN_PREFIX && h.starts_with(&wanted))
        })
        .collect();
    match hits[..] {
        [i] => Ok(i),
        [] => Err(Error::user(format!(
            "layer {wanted} is not in the plan of any image or stack on {target}"
        ))
        .with_hint(format!(
            "the project changed since the pipeline was emitted (or the hash is mistyped): emit it again with `parbake bake --all --emit ENGINE --target {target}`; `parbake bake --all --dry-run --target {target}` lists the planned layers"
        ))),
        _ => Err(Error::user(format!("`{wanted}` starts more than one planned layer's hash"))
            .with_hint("give the full 64-digit hash, as the emitted pipeline does")),
    }
}

/// What the parent of node `i` stands as, or the error that names the job to run first.
fn parent_result(baker: &dyn LayerBaker, nodes: &[Node], i: usize) -> Result<Option<LayerResult>> {
    let Some(p) = nodes[i].parent else {
        return Ok(None);
    };
    let parent = &nodes[p];
    if let Some(hit) = baker.cached(&parent.plan, &parent.layer)? {
        return Ok(Some(hit));
    }
    if !parent.launched {
        if let Some(run) = baker.run_layer(&parent.plan, &parent.layer)? {
            return Ok(Some(run));
        }
    }
    // the emitted pipeline's job id (`emit::Dag::from_nodes`)
    let job = format!("layer-{}-{}", parent.layer.name, parent.layer.short_hash());
    Err(Error::user(format!(
        "{} needs its parent layer {} ({}), which is not baked yet",
        layer_label(&nodes[i].layer),
        parent.layer.name,
        parent.layer.short_hash()
    ))
    .with_hint(format!(
        "run the parent's job `{job}` (`parbake bake --layer {} --target {}`) first: the emitted pipeline's `needs:` does; this job never bakes a parent itself",
        parent.layer.hash, parent.plan.target
    )))
}

/// Bakes node `i` of `bake --all`'s graph, or finds it cached; the summary in `bake --all`'s
/// shape, with this one layer.
pub fn run(
    baker: &dyn LayerBaker,
    nodes: &[Node],
    i: usize,
    target: Target,
    progress: &mut Progress,
) -> Result<AllReport> {
    let started = Instant::now();
    let n = &nodes[i];
    let mut o = initial_outcome(n);
    let result = match there_already(baker, n, progress)? {
        Some((hit, why)) => {
            o.why = why;
            hit
        }
        None => {
            let parent = parent_result(baker, nodes, i)?;
            o.why = why(baker, n)?;
            baker.bake(&n.plan, &n.layer, parent.as_ref(), progress)?
        }
    };
    o.outcome = match result.outcome {
        Outcome::Cached | Outcome::Refreshed => result.outcome,
        _ => Outcome::Baked,
    };
    o.duration_s = result.duration_s;
    o.image_id = Some(result.image.clone());
    o.copies = result.copies;
    o.roles = result.roles;
    o.log = result.log;
    progress.finish();
    let layers = vec![o];
    Ok(AllReport {
        target,
        jobs: 1,
        accelerator: baker.what(),
        duration_s: round(started.elapsed().as_secs_f64()),
        counts: count(&layers),
        dry_run: false,
        layers,
        verified: Vec::new(),
    })
}

/// The layer when it needs no bake: cached by hash, or (no stack launches it) its run layer.
fn there_already(
    baker: &dyn LayerBaker,
    n: &Node,
    progress: &Progress,
) -> Result<Option<(LayerResult, Vec<String>)>> {
    if let Some(hit) = baker.cached(&n.plan, &n.layer)? {
        progress.line(&format!(
            "{}: cached{}, no Packer run (a cache hit: another job or run baked it)",
            layer_label(&n.layer),
            crate::bake::as_ami(&hit)
        ));
        return Ok(Some((hit, Vec::new())));
    }
    if !n.launched {
        if let Some(run) = baker.run_layer(&n.plan, &n.layer)? {
            let why = not_refreshed(&run);
            progress.line(&format!("{}: {why}", layer_label(&n.layer)));
            return Ok(Some((run, vec![why])));
        }
    }
    Ok(None)
}

/// Why the layer is built, as `bake --all` says it: what its payload refresh changes, or what
/// changed since the newest earlier bake of a layer with its name.
fn why(baker: &dyn LayerBaker, n: &Node) -> Result<Vec<String>> {
    if let Some(run) = baker.run_layer(&n.plan, &n.layer)? {
        let before = baker.inputs_of(&n.plan, &run);
        return Ok(crate::bake::all::why_refresh(&n.layer, before.as_ref()));
    }
    let previous = baker.previous_inputs(&n.plan, &n.layer);
    Ok(crate::bake::all::why(
        &n.layer,
        previous.as_ref(),
        None,
        false,
    ))
}
