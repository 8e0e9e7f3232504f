//! `bake --all`: every image's and stack's layers, deduplicated by hash, baked parents first
//! with at most `jobs` bakes at once. Unchanged layers are cache hits (no Packer); a rebaked
//! base cascades to the stack layers on it (their hashes include it); a failed layer's
//! children are skipped and reported while unrelated layers carry on.
//!
//! The graph and the scheduler are pure (tested without bakes); [`run`] drives them on tokio
//! with any [`LayerBaker`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::bake::{layer_label, round, LayerBaker, LayerResult};
use crate::contract::events::RoleTiming;
use crate::error::{Error, Result};
use crate::plan::{changed_inputs, Layer, Plan, Target};
use crate::progress::Progress;

/// One layer to bake: the first plan that contains it, and the stacks that share it.
#[derive(Debug, Clone)]
pub struct Node {
    pub plan: Plan,
    pub layer: Layer,
    /// Index of the parent layer's node (a stack layer's base).
    pub parent: Option<usize>,
    pub stacks: Vec<String>,
    /// Some stack launches this layer (it is the top of a plan). A layer no stack launches
    /// needs only its run layer: its children build on that, so its payload is not refreshed.
    pub launched: bool,
}

/// The layer graph of a set of plans: each distinct layer hash once, parents before children.
pub fn graph(plans: &[Plan]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_hash: BTreeMap<String, usize> = BTreeMap::new();
    for plan in plans {
        let mut parent = None;
        for layer in &plan.layers {
            let i = match by_hash.get(&layer.hash) {
                Some(&i) => i,
                None => {
                    nodes.push(Node {
                        plan: plan.clone(),
                        layer: layer.clone(),
                        parent,
                        stacks: Vec::new(),
                        launched: false,
                    });
                    by_hash.insert(layer.hash.clone(), nodes.len() - 1);
                    nodes.len() - 1
                }
            };
            if !nodes[i].stacks.contains(&plan.stack) {
                nodes[i].stacks.push(plan.stack.clone());
            }
            if plan.layers.last().map(|l| &l.hash) == Some(&layer.hash) {
                nodes[i].launched = true;
            }
            parent = Some(i);
        }
    }
    nodes
}

pub use super::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Done(Outcome),
}

/// Which node may start next. Pure: no clock and no I/O.
#[derive(Debug)]
pub struct Schedule {
    parents: Vec<Option<usize>>,
    state: Vec<State>,
}

impl Schedule {
    /// `cached[i]`: node i needs no bake.
    pub fn new(parents: Vec<Option<usize>>, cached: &[bool]) -> Schedule {
        let state = cached
            .iter()
            .map(|&c| {
                if c {
                    State::Done(Outcome::Cached)
                } else {
                    State::Waiting
                }
            })
            .collect();
        Schedule { parents, state }
    }

    /// A waiting node whose parent is baked or cached, marked running; lowest index first.
    pub fn next_ready(&mut self) -> Option<usize> {
        let i = (0..self.state.len()).find(|&i| {
            self.state[i] == State::Waiting
                && match self.parents[i] {
                    None => true,
                    Some(p) => {
                        matches!(self.state[p], State::Done(Outcome::Baked | Outcome::Cached))
                    }
                }
        })?;
        self.state[i] = State::Running;
        Some(i)
    }

    /// Records a finished bake. On failure every waiting descendant is skipped; they are
    /// returned.
    pub fn finish(&mut self, i: usize, ok: bool) -> Vec<usize> {
        self.state[i] = State::Done(if ok { Outcome::Baked } else { Outcome::Failed });
        if ok {
            return Vec::new();
        }
        self.skip_below(i)
    }

    fn skip_below(&mut self, i: usize) -> Vec<usize> {
        let mut skipped = Vec::new();
        for c in 0..self.state.len() {
            if self.parents[c] == Some(i) && self.state[c] == State::Waiting {
                self.state[c] = State::Done(Outcome::Skipped);
                skipped.push(c);
                skipped.extend(self.skip_below(c));
            }
        }
        skipped
    }

    /// Skips every node still waiting (after Ctrl-C); returns them.
    pub fn skip_waiting(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, s) in self.state.iter_mut().enumerate() {
            if *s == State::Waiting {
                *s = State::Done(Outcome::Skipped);
                out.push(i);
            }
        }
        out
    }

    pub fn running(&self) -> usize {
        self.state.iter().filter(|s| **s == State::Running).count()
    }

    pub fn outcome(&self, i: usize) -> Option<Outcome> {
        match self.state[i] {
            State::Done(o) => Some(o),
            _ => None,
        }
    }
}

/// Why a layer is (re)baked, in words: what changed since the newest earlier bake of a layer
/// with its name, with a parent rebaked in this run called a cascade.
pub fn why(
    layer: &Layer,
    previous: Option<&crate::plan::Inputs>,
    parent_rebaked: Option<&str>,
    force: bool,
) -> Vec<String> {
    if force {
        return vec!["--force".into()];
    }
    let Some(prev) = previous else {
        return vec![format!("first bake of layer {}", layer.name)];
    };
    if prev.is_empty() {
        // baked by a parbake that did not record its inputs
        return vec!["the earlier bake of this layer recorded no inputs to compare".into()];
    }
    let mut out: Vec<String> = changed_inputs(prev, &layer.inputs)
        .into_iter()
        .filter(|w| parent_rebaked.is_none() || !w.starts_with("parent layer changed"))
        .collect();
    if let Some(p) = parent_rebaked {
        out.insert(0, format!("cascade: parent layer {p} is rebaked"));
    }
    if out.is_empty() {
        out.push("not in the store (removed, or baked on another machine)".into());
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerOutcome {
    pub name: String,
    pub index: u8,
    pub hash: String,
    pub image: String,
    /// On aws, the architecture it is baked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub stacks: Vec<String>,
    pub outcome: Outcome,
    pub duration_s: f64,
    /// The baked or cached disk (qemu) or AMI id (aws).
    pub image_id: Option<String>,
    /// Why it was (or would have been) baked; empty for cache hits.
    pub why: Vec<String>,
    pub error: Option<String>,
    pub roles: Vec<RoleTiming>,
    pub log: Option<std::path::PathBuf>,
    /// On aws, the copies `distribute:` keeps of its AMI in other regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<super::RegionCopy>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub baked: usize,
    /// Payload refreshes of cached run layers (no role ran).
    #[serde(default)]
    pub refreshed: usize,
    pub cached: usize,
    pub failed: usize,
    pub skipped: usize,
    /// `--dry-run`: the layers that would be baked.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub to_bake: usize,
    /// `--dry-run`: the layers that would be refreshed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub to_refresh: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllReport {
    pub target: Target,
    pub jobs: usize,
    pub accelerator: String,
    pub duration_s: f64,
    pub counts: Counts,
    /// `--dry-run`: nothing was baked, launched or built; `to-bake` layers would be.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub layers: Vec<LayerOutcome>,
    /// With `--verify`: each stack verified after its layers, in stack order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified: Vec<StackVerdict>,
}

/// `bake --all --verify`: one stack's verification, launched on its new (or not yet verified)
/// top image with its user-data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackVerdict {
    pub stack: String,
    pub layer: String,
    pub hash: String,
    /// `passed`, `failed`, or `skipped` (its layers did not bake); `to-verify` in a dry run.
    pub outcome: String,
    /// Why it was verified (`top image baked`, `not verified with this user-data yet`).
    pub why: String,
    #[serde(default)]
    pub boot_to_ready_s: Option<f64>,
    #[serde(default)]
    pub userdata_sha256: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl AllReport {
    /// Every layer baked or cached, and every verification passed.
    pub fn ok(&self) -> bool {
        self.counts.failed == 0 && self.counts.skipped == 0 && self.verify_failed() == 0
    }

    /// Verifications that did not pass (failed, or skipped because a layer failed).
    pub fn verify_failed(&self) -> usize {
        self.verified
            .iter()
            .filter(|v| v.outcome != "passed")
            .count()
    }
}

pub struct AllOptions {
    pub target: Target,
    pub jobs: usize,
    pub force: bool,
    pub quiet: bool,
    pub verbose: bool,
}

/// One layer's bake on the blocking pool, and what it needs there.
struct BakeJob {
    baker: Arc<dyn LayerBaker>,
    nodes: Arc<Vec<Node>>,
    i: usize,
    parent: Option<LayerResult>,
    quiet: bool,
    verbose: bool,
    /// One spinner cannot show concurrent bakes: with -j > 1 each bake prints plain lines.
    plain: bool,
}

impl BakeJob {
    /// Bakes the layer: its index, its result, and how long it took.
    fn run(self) -> (usize, Result<LayerResult>, f64) {
        let t = Instant::now();
        let mut progress = if self.plain {
            Progress::lines(self.quiet, self.verbose)
        } else {
            Progress::new(self.quiet, self.verbose)
        };
        let n = &self.nodes[self.i];
        let r = self
            .baker
            .bake(&n.plan, &n.layer, self.parent.as_ref(), &mut progress);
        progress.finish();
        (self.i, r, t.elapsed().as_secs_f64())
    }
}

/// After a layer's bake: a failed layer's children are skipped, and after Ctrl-C every layer
/// still waiting is.
fn settle(
    sched: &mut Schedule,
    nodes: &[Node],
    i: usize,
    ok: bool,
    progress: &Progress,
    outcomes: &mut [LayerOutcome],
) {
    for c in sched.finish(i, ok) {
        progress.line(&format!(
            "{}: skipped, its parent layer {} failed",
            layer_label(&nodes[c].layer),
            nodes[i].layer.name
        ));
        outcomes[c].error = Some(format!("parent layer {} failed", nodes[i].layer.name));
    }
    if crate::interrupt::interrupted() {
        for c in sched.skip_waiting() {
            outcomes[c].error = Some("interrupted before it started".into());
        }
    }
}

/// Bakes every node that is not cached, at most `opts.jobs` at a time, on tokio.
pub fn run(
    baker: Arc<dyn LayerBaker>,
    nodes: Vec<Node>,
    opts: &AllOptions,
    progress: &Progress,
) -> Result<AllReport> {
    let started = Instant::now();
    let jobs = opts.jobs.max(1);
    let mut outcomes: Vec<LayerOutcome> = nodes.iter().map(initial_outcome).collect();
    // the cache, and the reasons, before anything runs
    let mut results = cache_hits(baker.as_ref(), &nodes, &mut outcomes)?;
    let mut cached: Vec<bool> = results.iter().map(Option::is_some).collect();
    let runs = run_layers(baker.as_ref(), &nodes, &cached)?;
    unlaunched_runs(&nodes, &runs, &mut cached, &mut results, &mut outcomes);
    explain_rebakes(
        baker.as_ref(),
        &nodes,
        &cached,
        &runs,
        opts,
        progress,
        &mut outcomes,
    );
    let mut sched = Schedule::new(nodes.iter().map(|n| n.parent).collect(), &cached);
    let nodes = Arc::new(nodes);
    let rt = crate::runtime::runtime(crate::runtime::Threads::Pool { blocking: jobs })?;
    let (quiet, verbose, plain) = (opts.quiet, opts.verbose, jobs > 1);
    rt.block_on(async {
        let mut set: tokio::task::JoinSet<(usize, Result<LayerResult>, f64)> =
            tokio::task::JoinSet::new();
        loop {
            while !crate::interrupt::interrupted() && sched.running() < jobs {
                let Some(i) = sched.next_ready() else { break };
                let parent = nodes[i].parent.and_then(|p| results[p].clone());
                let job = BakeJob {
                    baker: baker.clone(),
                    nodes: nodes.clone(),
                    i,
                    parent,
                    quiet,
                    verbose,
                    plain,
                };
                set.spawn_blocking(move || job.run());
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let (i, r, secs) = joined.map_err(|e| Error::Internal(format!("bake task: {e}")))?;
            let ok = record(
                &nodes[i],
                r,
                secs,
                progress,
                &mut outcomes[i],
                &mut results[i],
            );
            settle(&mut sched, &nodes, i, ok, progress, &mut outcomes);
        }
        Ok::<(), Error>(())
    })?;
    Ok(AllReport {
        target: opts.target,
        jobs,
        accelerator: baker.what(),
        duration_s: round(started.elapsed().as_secs_f64()),
        counts: count(&outcomes),
        dry_run: false,
        layers: outcomes,
        verified: Vec::new(),
    })
}

/// `bake --all --dry-run`: what [`run`] would bake and why, from the same cache lookups and
/// reasons, with nothing baked: every layer not in the store is `to-bake` (a layer on one is a
/// cascade). Pipelines show it before they spend money.
pub fn dry_run(
    baker: &dyn LayerBaker,
    nodes: &[Node],
    opts: &AllOptions,
    progress: &Progress,
) -> Result<AllReport> {
    let started = Instant::now();
    let mut outcomes: Vec<LayerOutcome> = nodes.iter().map(initial_outcome).collect();
    let mut results = cache_hits(baker, nodes, &mut outcomes)?;
    let mut cached: Vec<bool> = results.iter().map(Option::is_some).collect();
    let runs = run_layers(baker, nodes, &cached)?;
    unlaunched_runs(nodes, &runs, &mut cached, &mut results, &mut outcomes);
    explain_rebakes(baker, nodes, &cached, &runs, opts, progress, &mut outcomes);
    for (o, run) in outcomes.iter_mut().zip(&runs) {
        if o.outcome == Outcome::Skipped {
            // a layer no stack launches whose run is cached is Cached already
            o.outcome = if run.is_some() {
                Outcome::ToRefresh
            } else {
                Outcome::ToBake
            };
        }
    }
    Ok(AllReport {
        target: opts.target,
        jobs: opts.jobs.max(1),
        accelerator: "none (dry run)".into(),
        duration_s: round(started.elapsed().as_secs_f64()),
        counts: count(&outcomes),
        dry_run: true,
        layers: outcomes,
        verified: Vec::new(),
    })
}

/// A layer's outcome before anything is known: skipped until baked, cached or failed.
pub(crate) fn initial_outcome(n: &Node) -> LayerOutcome {
    LayerOutcome {
        name: n.layer.name.clone(),
        index: n.layer.index,
        hash: n.layer.hash.clone(),
        image: n.plan.image.clone(),
        arch: n.plan.arch.clone(),
        stacks: n.stacks.clone(),
        outcome: Outcome::Skipped,
        duration_s: 0.0,
        image_id: None,
        why: Vec::new(),
        error: None,
        roles: Vec::new(),
        log: None,
        copies: Vec::new(),
    }
}

/// The layers already baked: their results (None for the others), their outcomes set.
fn cache_hits(
    baker: &dyn LayerBaker,
    nodes: &[Node],
    outcomes: &mut [LayerOutcome],
) -> Result<Vec<Option<LayerResult>>> {
    let mut results: Vec<Option<LayerResult>> = vec![None; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        if let Some(hit) = baker.cached(&n.plan, &n.layer)? {
            outcomes[i].outcome = Outcome::Cached;
            outcomes[i].image_id = Some(hit.image.clone());
            outcomes[i].copies = hit.copies.clone();
            outcomes[i].roles = hit.roles.clone();
            outcomes[i].log = hit.log.clone();
            results[i] = Some(hit);
        }
    }
    Ok(results)
}

/// For each layer that is not cached, the cached run layer a bake would refresh (same run
/// hash), if there is one.
fn run_layers(
    baker: &dyn LayerBaker,
    nodes: &[Node],
    cached: &[bool],
) -> Result<Vec<Option<LayerResult>>> {
    nodes
        .iter()
        .zip(cached)
        .map(|(n, &hit)| {
            if hit {
                Ok(None)
            } else {
                baker.run_layer(&n.plan, &n.layer)
            }
        })
        .collect()
}

/// A layer that no stack launches and whose run is cached is done: its run layer is what its
/// children build on, so it is reported cached (saying so) and its payload is not refreshed.
fn unlaunched_runs(
    nodes: &[Node],
    runs: &[Option<LayerResult>],
    cached: &mut [bool],
    results: &mut [Option<LayerResult>],
    outcomes: &mut [LayerOutcome],
) {
    for (i, n) in nodes.iter().enumerate() {
        let Some(run) = runs[i].as_ref().filter(|_| !n.launched && !cached[i]) else {
            continue;
        };
        cached[i] = true;
        outcomes[i].outcome = Outcome::Cached;
        outcomes[i].image_id = Some(run.image.clone());
        outcomes[i].why = vec![not_refreshed(run)];
        results[i] = Some(run.clone());
    }
}

/// What a cached run layer that is not refreshed is reported with.
pub fn not_refreshed(run: &LayerResult) -> String {
    format!(
        "run layer {} cached; no stack launches this layer, so its payload is not refreshed",
        &run.hash[..12.min(run.hash.len())]
    )
}

/// Why a layer whose run is cached is refreshed: the payload parts that changed since the run
/// layer was baked (role content, collections, the runtime).
pub fn why_refresh(layer: &Layer, run_layer_inputs: Option<&crate::plan::Inputs>) -> Vec<String> {
    let Some(before) = run_layer_inputs else {
        return vec!["payload changed".into()];
    };
    let mut roles = Vec::new();
    let mut other = Vec::new();
    for w in changed_inputs(before, &layer.inputs) {
        if let Some(r) = w.strip_prefix("role ") {
            roles.push(r.strip_suffix(" changed").unwrap_or(r).to_string());
        } else if !w.starts_with("parent layer changed") {
            other.push(w);
        }
    }
    let mut out: Vec<String> = roles
        .iter()
        .map(|r| format!("payload changed: role {r}"))
        .collect();
    out.extend(other.into_iter().map(|w| format!("payload changed: {w}")));
    if out.is_empty() {
        out.push("payload changed".into());
    }
    out
}

/// Why each layer to bake is baked or refreshed (kept in the report), said before anything
/// runs.
fn explain_rebakes(
    baker: &dyn LayerBaker,
    nodes: &[Node],
    cached: &[bool],
    runs: &[Option<LayerResult>],
    opts: &AllOptions,
    progress: &Progress,
    outcomes: &mut [LayerOutcome],
) {
    for (i, n) in nodes.iter().enumerate() {
        if cached[i] {
            continue;
        }
        if let Some(run) = &runs[i] {
            outcomes[i].why = why_refresh(&n.layer, baker.inputs_of(&n.plan, run).as_ref());
            progress.line(&format!(
                "{}: to refresh run layer {}: {}",
                layer_label(&n.layer),
                &run.hash[..12],
                outcomes[i].why.join("; ")
            ));
            continue;
        }
        // a refreshed parent (or one whose run layer stands in) is no cascade
        let parent_rebaked = n
            .parent
            .filter(|&p| !cached[p] && runs[p].is_none())
            .map(|p| nodes[p].layer.name.as_str());
        let previous = if opts.force {
            None
        } else {
            baker.previous_inputs(&n.plan, &n.layer)
        };
        outcomes[i].why = why(&n.layer, previous.as_ref(), parent_rebaked, opts.force);
        if n.parent.is_some_and(|p| runs[p].is_some()) {
            // a refreshed parent's new hash is its payload, said by the role lines already
            outcomes[i]
                .why
                .retain(|w| !w.starts_with("parent layer changed"));
        }
        progress.line(&format!(
            "{}: to bake: {}",
            layer_label(&n.layer),
            outcomes[i].why.join("; ")
        ));
    }
    let todo = cached.iter().filter(|c| !**c).count();
    let refresh = runs
        .iter()
        .zip(cached)
        .filter(|(r, c)| r.is_some() && !**c)
        .count();
    if todo > 0 {
        progress.line(&format!(
            "bake --all: {} layer(s), {} cached, {} to bake, {} to refresh, up to {} at once",
            nodes.len(),
            nodes.len() - todo,
            todo - refresh,
            refresh,
            opts.jobs.max(1)
        ));
    }
}

/// Records a finished bake in its outcome (and its result, for the children); false when it
/// failed.
fn record(
    node: &Node,
    r: Result<LayerResult>,
    secs: f64,
    progress: &Progress,
    o: &mut LayerOutcome,
    result: &mut Option<LayerResult>,
) -> bool {
    match r {
        Ok(res) => {
            o.outcome = match res.outcome {
                Outcome::Cached | Outcome::Refreshed => res.outcome,
                _ => Outcome::Baked,
            };
            o.duration_s = res.duration_s;
            o.image_id = Some(res.image.clone());
            o.copies = res.copies.clone();
            o.roles = res.roles.clone();
            o.log = res.log.clone();
            *result = Some(res);
            true
        }
        Err(e) => {
            progress.line(&format!(
                "{}: FAILED after {secs:.1}s",
                layer_label(&node.layer)
            ));
            crate::printer::stderr::text(crate::error::Report(&e).to_string());
            o.outcome = Outcome::Failed;
            o.duration_s = round(secs);
            o.error = Some(e.to_string());
            false
        }
    }
}

pub(crate) fn count(outcomes: &[LayerOutcome]) -> Counts {
    let mut counts = Counts::default();
    for o in outcomes {
        match o.outcome {
            Outcome::Baked => counts.baked += 1,
            Outcome::Refreshed => counts.refreshed += 1,
            Outcome::Cached => counts.cached += 1,
            Outcome::Failed => counts.failed += 1,
            Outcome::Skipped => counts.skipped += 1,
            Outcome::ToBake => counts.to_bake += 1,
            Outcome::ToRefresh => counts.to_refresh += 1,
        }
    }
    counts
}

/// The summary table: the counts, then one line per layer and per verified stack.
pub fn summary_text(r: &AllReport) -> String {
    let mut s = summary_head(r);
    let arches: std::collections::BTreeSet<_> = r.layers.iter().map(|l| &l.arch).collect();
    for l in &r.layers {
        // the architecture beside the name when the run bakes several
        let name = match &l.arch {
            Some(a) if arches.len() > 1 => format!("{} {a}", l.name),
            _ => l.name.clone(),
        };
        let took = match l.outcome {
            Outcome::ToBake | Outcome::ToRefresh => "-".to_string(),
            _ => format!("{:.1}s", l.duration_s),
        };
        s.push_str(&format!(
            "  {:<10} {:<22} {:<12} {:>8}  {:<22} {}\n",
            l.outcome.to_string(),
            name,
            &l.hash[..12],
            took,
            short_image_id(l.image_id.as_deref()),
            layer_detail(l)
        ));
    }
    for v in &r.verified {
        s.push_str(&format!(
            "  verify     {:<22} {:<12} {:>8}  {:<22} {}{}\n",
            v.stack,
            &v.hash[..12],
            v.boot_to_ready_s
                .map(|t| format!("{t:.1}s"))
                .unwrap_or_else(|| "-".into()),
            v.outcome,
            v.why,
            v.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    s
}

/// The summary's first line: what ran where, and the counts.
fn summary_head(r: &AllReport) -> String {
    if r.dry_run {
        return format!(
            "bake --all --dry-run on {}: {} to bake, {} to refresh, {} cached (nothing was baked)\n",
            r.target, r.counts.to_bake, r.counts.to_refresh, r.counts.cached
        );
    }
    format!(
        "bake --all on {} ({}), -j {}: {} baked, {} refreshed, {} cached, {} failed, {} skipped in {:.1}s\n",
        r.target,
        r.accelerator,
        r.jobs,
        r.counts.baked,
        r.counts.refreshed,
        r.counts.cached,
        r.counts.failed,
        r.counts.skipped,
        r.duration_s
    )
}

/// An image id as the table shows it: a store path by its layer directory, which says it all.
fn short_image_id(id: Option<&str>) -> String {
    id.map(|i| {
        std::path::Path::new(i)
            .parent()
            .and_then(|p| p.file_name())
            .filter(|_| i.ends_with(".qcow2"))
            .map(|d| format!("store:{}", &d.to_string_lossy()[..12.min(d.len())]))
            .unwrap_or_else(|| i.to_string())
    })
    .unwrap_or_else(|| "-".into())
}

/// Why a layer baked or is cached; for a failure, the first line of the error without the
/// command line (the JSON has it all).
fn layer_detail(l: &LayerOutcome) -> String {
    match l.outcome {
        Outcome::Cached
        | Outcome::Baked
        | Outcome::ToBake
        | Outcome::Refreshed
        | Outcome::ToRefresh => l.why.join("; "),
        Outcome::Failed | Outcome::Skipped => {
            let full = l.error.clone().unwrap_or_default();
            let mut d = full
                .split(" failed: `")
                .next()
                .unwrap_or(&full)
                .trim_end_matches(':')
                .to_string();
            if !l.why.is_empty() {
                d.push_str(&format!(" (to bake: {})", l.why.join("; ")));
            }
            d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_wait_for_parents_and_failures_skip_descendants() {
        // 0 base A, 1 stack on A, 2 base B, 3 stack on B, 4 stack on A
        let parents = vec![None, Some(0), None, Some(2), Some(0)];
        let mut s = Schedule::new(parents, &[false, false, false, false, false]);
        assert_eq!(s.next_ready(), Some(0));
        assert_eq!(s.next_ready(), Some(2));
        assert_eq!(s.next_ready(), None, "stack layers wait for their bases");
        assert_eq!(s.finish(0, false), vec![1, 4]);
        assert_eq!(s.next_ready(), None);
        assert!(s.finish(2, true).is_empty());
        assert_eq!(s.next_ready(), Some(3));
        assert!(s.finish(3, true).is_empty());
        assert_eq!(s.next_ready(), None);
        assert_eq!(s.outcome(1), Some(Outcome::Skipped));
        assert_eq!(s.outcome(3), Some(Outcome::Baked));
    }

    #[test]
    fn the_text_summary_keeps_the_reason_and_drops_the_command_line() {
        let layer = |name: &str, outcome, error: Option<&str>, why: &[&str]| LayerOutcome {
            name: name.into(),
            index: 2,
            hash: "ab".repeat(32),
            image: "debian12".into(),
            arch: None,
            stacks: vec!["web".into()],
            outcome,
            duration_s: 12.34,
            image_id: Some(format!("/s/images/{}/disk.qcow2", "cd".repeat(32))),
            why: why.iter().map(|w| w.to_string()).collect(),
            error: error.map(String::from),
            roles: Vec::new(),
            log: None,
            copies: Vec::new(),
        };
        let r = AllReport {
            target: Target::Qemu,
            jobs: 2,
            accelerator: "tcg".into(),
            duration_s: 20.0,
            counts: Counts {
                baked: 1,
                failed: 1,
                ..Counts::default()
            },
            dry_run: false,
            layers: vec![
                layer("debian12-web", Outcome::Baked, None, &["role nginx changed"]),
                layer(
                    "debian12-broken",
                    Outcome::Failed,
                    Some("bake layer 2 x with Packer: role `nginx` failed at Write nginx.conf: failed to validate failed: `packer build .` exited with status 1"),
                    &["first bake of layer debian12-broken"],
                ),
            ],
            verified: vec![StackVerdict {
                stack: "web".into(),
                layer: "debian12-web".into(),
                hash: "ab".repeat(32),
                outcome: "failed".into(),
                why: "top image baked".into(),
                boot_to_ready_s: Some(98.5),
                userdata_sha256: None,
                error: Some("launch failed at check `http :80/`".into()),
            }],
        };
        assert!(!r.ok());
        assert_eq!(r.verify_failed(), 1);
        let text = summary_text(&r);
        assert!(
            text.contains("  verify     web                    abababababab    98.5s  failed                 top image baked: launch failed at check `http :80/`"),
            "{text}"
        );
        assert!(
            text.starts_with(
                "bake --all on qemu (tcg), -j 2: 1 baked, 0 refreshed, 0 cached, 1 failed, 0 skipped in 20.0s\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "baked      debian12-web           abababababab    12.3s  store:cdcdcdcdcdcd"
            ),
            "{text}"
        );
        assert!(text.contains("role nginx changed"), "{text}");
        assert!(
            text.contains(
                "role `nginx` failed at Write nginx.conf: failed to validate (to bake: first bake"
            ),
            "{text}"
        );
        assert!(!text.contains("packer build"), "{text}");
    }

    #[test]
    fn cached_parents_release_children_at_once() {
        let mut s = Schedule::new(vec![None, Some(0), Some(0)], &[true, false, false]);
        assert_eq!(s.next_ready(), Some(1));
        assert_eq!(s.next_ready(), Some(2));
        assert_eq!(s.running(), 2);
    }
}
