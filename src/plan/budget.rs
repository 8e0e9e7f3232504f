//! plan: `plan STACK --budget 45s`. Estimates boot-to-ready from the timing ledger (a boot
//! floor plus the launch roles' medians) and recommends the smallest promotion that meets the
//! budget, with what it costs. Pure: the ledger's statistics come in as [`Stats`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::Project;
use crate::ledger::{median, Stats};
use crate::plan::{self, Plan, PlanError, PlanRequest};

/// Stand-ins when the ledger has nothing: TCG boot floor as measured on a 2-core host (51 s
/// bare, plus Ansible start-up), and a middling role.
pub const GUESS_FLOOR_S: f64 = 60.0;
pub const GUESS_ROLE_S: f64 = 30.0;
pub const GUESS_LAYER_OVERHEAD_S: f64 = 90.0;
/// A payload refresh with no data: boot the run layer, replace `/opt/parbake`, clean up and
/// compress (95-120 s measured under TCG on that host).
pub const GUESS_REFRESH_S: f64 = 120.0;
/// The size in bytes of a plan's user-data. The caller renders it, so the budget (like the rest
/// of plan) does not depend on render; its error `E` is the caller's.
pub type UserDataBytes<'a, E> = &'a dyn Fn(&Plan) -> Result<usize, E>;

/// Beyond this many promotable roles the search is greedy instead of exhaustive.
const EXHAUSTIVE_MAX: usize = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Median of this many launches.
    Launch,
    /// No launch timing: the median of its bakes (the same work, run at bake).
    Bake,
    /// Median of `--no-roles` launches: no Ansible start-up in it.
    BareBoot,
    /// Median of payload refreshes.
    Refresh,
    /// No data at all.
    Guess,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub seconds: f64,
    pub source: Source,
    /// Data points behind it (0 for a guess).
    pub samples: usize,
}

impl Figure {
    fn from(xs: &[f64], source: Source) -> Option<Figure> {
        median(xs).map(|m| Figure {
            seconds: round(m),
            source,
            samples: xs.len(),
        })
    }
    fn guess(seconds: f64) -> Figure {
        Figure {
            seconds,
            source: Source::Guess,
            samples: 0,
        }
    }
    pub fn mark(&self) -> &'static str {
        match self.source {
            Source::Launch => "",
            Source::Bake => " (bake median)",
            Source::BareBoot => " (--no-roles median)",
            Source::Refresh => " (refresh median)",
            Source::Guess => " (guess)",
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn floor(stats: &Stats) -> Figure {
    Figure::from(&stats.floor, Source::Launch)
        .or_else(|| Figure::from(&stats.bare_floor, Source::BareBoot))
        .unwrap_or_else(|| Figure::guess(GUESS_FLOOR_S))
}

pub fn launch_time(stats: &Stats, role: &str) -> Figure {
    stats
        .launch
        .get(role)
        .and_then(|xs| Figure::from(xs, Source::Launch))
        .or_else(|| {
            stats
                .bake
                .get(role)
                .and_then(|xs| Figure::from(xs, Source::Bake))
        })
        .unwrap_or_else(|| Figure::guess(GUESS_ROLE_S))
}

pub fn bake_time(stats: &Stats, role: &str) -> Figure {
    stats
        .bake
        .get(role)
        .and_then(|xs| Figure::from(xs, Source::Bake))
        .or_else(|| {
            stats
                .launch
                .get(role)
                .and_then(|xs| Figure::from(xs, Source::Launch))
        })
        .unwrap_or_else(|| Figure::guess(GUESS_ROLE_S))
}

/// One way to promote: the flags, what ends up baked in the stack layer, what runs at boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// `--promote` flags beyond the stack's own `promote:` list (dependencies come along).
    pub promote: Vec<String>,
    /// Roles the stack layer bakes (none: no stack layer).
    pub stack_layer_runs: Vec<String>,
    pub stack_layer_hash: Option<String>,
    pub launch: Vec<(String, Figure)>,
    pub floor: Figure,
    pub estimate_s: f64,
    pub user_data_bytes: usize,
    /// Any part of the estimate is a guess.
    pub guessed: bool,
}

/// What the target already holds for a layer, as far as the caller looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// An image with the layer's exact hash.
    Exact,
    /// No exact image, but the layer's run layer (this layer hash): a refresh makes it.
    RunLayer(String),
    /// Neither: the layer must be baked.
    Nothing,
    /// Not looked up (a cloud target: `plan` makes no API calls).
    Unknown,
}

/// What getting the recommended stack layer takes now, given what the target holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Build {
    /// Already baked: nothing to build.
    Cached { layer: String },
    /// A payload refresh of its cached run layer: no role runs.
    Refresh {
        layer: String,
        run_layer: String,
        estimate: Figure,
    },
    /// A bake of the whole stack layer from the base's run layer: every role it runs, plus a
    /// layer's overhead.
    Bake {
        layer: String,
        estimate_s: f64,
        guessed: bool,
        /// The target's images were not looked up, so a cached layer may make this cheaper.
        unchecked: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Added bake time for the stack layer: the newly baked roles, plus a stack layer's own
    /// overhead when there was none.
    pub extra_bake_s: f64,
    pub extra_bake: Vec<(String, Figure)>,
    pub layer_overhead: Option<Figure>,
    /// Layers that stop being current (their replacements must be baked).
    pub invalidates: Vec<String>,
    pub adds: Vec<String>,
    pub user_data_bytes_before: usize,
    pub user_data_bytes_after: usize,
    /// What building the recommended stack layer takes now (None: no stack layer).
    pub build: Option<Build>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReport {
    pub stack: String,
    pub target: String,
    pub budget_s: f64,
    pub accelerator: Option<String>,
    pub ledger_launches: usize,
    pub ledger_bakes: usize,
    pub current: Choice,
    /// The smallest promotion meeting the budget; None when none does.
    pub recommended: Option<Choice>,
    pub cost: Option<Cost>,
    /// The fastest launch promotion can give (everything promotable baked).
    pub fastest: Choice,
    /// Launch-only roles and their share of the fastest estimate (they can never be baked).
    pub launch_only_s: f64,
    pub notes: Vec<String>,
}

impl BudgetReport {
    pub fn met(&self) -> bool {
        self.recommended.is_some()
    }
}

fn option_of<E>(
    plan: &Plan,
    extra: &[String],
    stats: &Stats,
    user_data_bytes: UserDataBytes<E>,
) -> Result<Choice, E> {
    let floor = floor(stats);
    let launch: Vec<(String, Figure)> = plan
        .launch
        .iter()
        .map(|r| (r.name.clone(), launch_time(stats, &r.name)))
        .collect();
    let estimate_s = round(floor.seconds + launch.iter().map(|(_, f)| f.seconds).sum::<f64>());
    let guessed =
        floor.source == Source::Guess || launch.iter().any(|(_, f)| f.source == Source::Guess);
    let stack_layer = plan.layers.get(1);
    Ok(Choice {
        promote: extra.to_vec(),
        stack_layer_runs: stack_layer.map(|l| l.runs.clone()).unwrap_or_default(),
        stack_layer_hash: stack_layer.map(|l| l.hash.clone()),
        launch,
        floor,
        estimate_s,
        user_data_bytes: user_data_bytes(plan)?,
        guessed,
    })
}

/// Every subset of `items` in order of size (then position), as index lists.
fn subsets_by_size(n: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = (0u32..(1 << n))
        .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect())
        .collect();
    out.sort_by_key(|s: &Vec<usize>| s.len());
    out
}

/// The promotion sets `recommend` tries: every subset of the promotable roles when there are
/// few, else the slowest roles first, one more at a time.
fn candidates(promotable: &[String], stats: &Stats, notes: &mut Vec<String>) -> Vec<Vec<String>> {
    if promotable.len() <= EXHAUSTIVE_MAX {
        return subsets_by_size(promotable.len())
            .into_iter()
            .map(|s| s.iter().map(|&i| promotable[i].clone()).collect())
            .collect();
    }
    notes.push(format!(
        "{} promotable roles: searched greedily (slowest first), not exhaustively",
        promotable.len()
    ));
    let mut by_time = promotable.to_vec();
    by_time.sort_by(|a, b| {
        launch_time(stats, b)
            .seconds
            .total_cmp(&launch_time(stats, a).seconds)
    });
    (0..=by_time.len()).map(|k| by_time[..k].to_vec()).collect()
}

/// Every distinct stack layer reachable by the candidates (the first candidate to reach one
/// stands for it), planned and estimated.
fn options<E>(
    project: &Project,
    req: &PlanRequest,
    stats: &Stats,
    candidates: Vec<Vec<String>>,
    user_data_bytes: UserDataBytes<E>,
    notes: &mut Vec<String>,
) -> Vec<(Choice, Plan)> {
    let mut seen: BTreeMap<Vec<String>, (Choice, Plan)> = BTreeMap::new();
    for extra in candidates {
        let mut r = req.clone();
        r.promote.extend(extra.iter().cloned());
        match plan::plan(project, &r) {
            Ok(p) => {
                let key: Vec<String> = p.layers.get(1).map(|l| l.runs.clone()).unwrap_or_default();
                if let std::collections::btree_map::Entry::Vacant(v) = seen.entry(key) {
                    if let Ok(o) = option_of(&p, &extra, stats, user_data_bytes) {
                        v.insert((o, p));
                    }
                }
            }
            Err(e) => notes.push(format!("cannot promote {}: {e}", extra.join(", "))),
        }
    }
    seen.into_values().collect()
}

/// The smallest option within the budget: fewest roles baked in the stack layer, then fewest
/// flags, then the lowest estimate.
fn smallest_within(options: &[(Choice, Plan)], budget_s: f64) -> Option<(Choice, Plan)> {
    options
        .iter()
        .filter(|o| o.0.estimate_s <= budget_s)
        .min_by(|a, b| {
            (a.0.stack_layer_runs.len(), a.0.promote.len())
                .cmp(&(b.0.stack_layer_runs.len(), b.0.promote.len()))
                .then(a.0.estimate_s.total_cmp(&b.0.estimate_s))
        })
        .cloned()
}

/// Recommends the smallest promotion (fewest roles baked in the stack layer; then the lowest
/// estimate) whose estimated boot-to-ready is within `budget_s`. `req` is the stack as it is
/// planned now (its `promote:` list plus any flags), with the source identity resolved.
/// `held` says what the target already has of a layer, for the cost of building it now;
/// `user_data_bytes` is the size of a plan's user-data (the caller renders it).
pub fn recommend<E: From<PlanError>>(
    project: &Project,
    req: &PlanRequest,
    stats: &Stats,
    budget_s: f64,
    held: &dyn Fn(&plan::Layer) -> Held,
    user_data_bytes: UserDataBytes<E>,
) -> Result<BudgetReport, E> {
    let now = plan::plan(project, req)?;
    let current = option_of(&now, &[], stats, user_data_bytes)?;
    let promotable: Vec<String> = now
        .launch
        .iter()
        .filter(|r| !r.launch_only)
        .map(|r| r.name.clone())
        .collect();
    let mut notes = Vec::new();
    let candidates = candidates(&promotable, stats, &mut notes);
    let options = options(project, req, stats, candidates, user_data_bytes, &mut notes);
    notes.sort();
    notes.dedup();
    let fastest = options
        .iter()
        .min_by(|a, b| a.0.estimate_s.total_cmp(&b.0.estimate_s))
        .map(|o| o.0.clone())
        .unwrap_or_else(|| current.clone());
    let best = smallest_within(&options, budget_s);
    let launch_only_s = round(
        fastest
            .launch
            .iter()
            .filter(|(r, _)| now.launch.iter().any(|l| &l.name == r && l.launch_only))
            .map(|(_, f)| f.seconds)
            .sum(),
    );
    if best.is_none() && launch_only_s + fastest.floor.seconds > budget_s {
        notes.push(format!(
            "the boot floor ({:.1}s) and the launch-only roles ({:.1}s) alone exceed the budget; no promotion can meet it",
            fastest.floor.seconds, launch_only_s
        ));
    }
    let cost = best
        .as_ref()
        .map(|(o, p)| cost_of(&now, &current, o, p, stats, held));
    if current.guessed || fastest.guessed {
        notes.push(
            "parts of these estimates are GUESSES (no timing data): bake and launch the stack once to measure".into(),
        );
    }
    Ok(BudgetReport {
        stack: now.stack.clone(),
        target: now.target.to_string(),
        budget_s,
        accelerator: stats.accelerator.clone(),
        ledger_launches: stats.launches,
        ledger_bakes: stats.bakes,
        current,
        recommended: best.map(|b| b.0),
        cost,
        fastest,
        launch_only_s,
        notes,
    })
}

fn cost_of(
    now: &Plan,
    current: &Choice,
    rec: &Choice,
    rec_plan: &Plan,
    stats: &Stats,
    held: &dyn Fn(&plan::Layer) -> Held,
) -> Cost {
    let before: BTreeSet<&String> = current.stack_layer_runs.iter().collect();
    let extra_bake: Vec<(String, Figure)> = rec
        .stack_layer_runs
        .iter()
        .filter(|r| !before.contains(r))
        .map(|r| (r.clone(), bake_time(stats, r)))
        .collect();
    let layer_overhead = (current.stack_layer_hash.is_none() && rec.stack_layer_hash.is_some())
        .then(|| layer_overhead(stats));
    let extra_bake_s = round(
        extra_bake.iter().map(|(_, f)| f.seconds).sum::<f64>()
            + layer_overhead.as_ref().map_or(0.0, |f| f.seconds),
    );
    let mut invalidates = Vec::new();
    let mut adds = Vec::new();
    if rec.stack_layer_hash != current.stack_layer_hash {
        if let (Some(old), Some(l)) = (&current.stack_layer_hash, now.layers.get(1)) {
            invalidates.push(format!("{} ({})", l.name, &old[..12]));
        }
        if let (Some(new), Some(l)) = (&rec.stack_layer_hash, rec_plan.layers.get(1)) {
            adds.push(format!("{} ({})", l.name, &new[..12]));
        }
    }
    Cost {
        extra_bake_s,
        extra_bake,
        layer_overhead,
        invalidates,
        adds,
        user_data_bytes_before: current.user_data_bytes,
        user_data_bytes_after: rec.user_data_bytes,
        build: rec_plan.layers.get(1).map(|l| build_now(l, held(l), stats)),
    }
}

/// A stack layer's bake time beyond its roles: the ledger's median, or a guess.
fn layer_overhead(stats: &Stats) -> Figure {
    Figure::from(&stats.layer_overhead, Source::Bake)
        .unwrap_or_else(|| Figure::guess(GUESS_LAYER_OVERHEAD_S))
}

/// What building `layer` takes now: nothing when the target has it, a refresh when it has
/// its run layer, else a bake of all its roles.
fn build_now(layer: &plan::Layer, held: Held, stats: &Stats) -> Build {
    let name = format!("{} ({})", layer.name, layer.short_hash());
    match held {
        Held::Exact => Build::Cached { layer: name },
        Held::RunLayer(run) => Build::Refresh {
            layer: name,
            run_layer: plan::short(&run).to_string(),
            estimate: Figure::from(&stats.refresh, Source::Refresh)
                .unwrap_or_else(|| Figure::guess(GUESS_REFRESH_S)),
        },
        Held::Nothing | Held::Unknown => {
            let overhead = layer_overhead(stats);
            let roles: Vec<Figure> = layer.runs.iter().map(|r| bake_time(stats, r)).collect();
            Build::Bake {
                layer: name,
                estimate_s: round(overhead.seconds + roles.iter().map(|f| f.seconds).sum::<f64>()),
                guessed: overhead.source == Source::Guess
                    || roles.iter().any(|f| f.source == Source::Guess),
                unchecked: held == Held::Unknown,
            }
        }
    }
}

/// `45s`, `2m`, `1m30s`, `1h`, `1.5m`, `90` (seconds). None for anything else, and for a
/// total that is not positive and finite: `0s`, `-5`, `inf`, `infinity`, `NaN`, `1e999`, or
/// digits enough to overflow.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let total = if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        decimal(s)?
    } else {
        let mut total = 0.0;
        let mut rest = s;
        while !rest.is_empty() {
            let end = rest.find(['h', 'm', 's'])?;
            let n = decimal(&rest[..end])?;
            total += n * match rest.as_bytes()[end] {
                b'h' => 3600.0,
                b'm' => 60.0,
                _ => 1.0,
            };
            rest = &rest[end + 1..];
        }
        total
    };
    (total.is_finite() && total > 0.0).then_some(total)
}

/// A plain decimal: digits with at most one `.`, and at least one digit (no sign, exponent,
/// `inf` or `NaN`).
fn decimal(t: &str) -> Option<f64> {
    let plain = t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && t.bytes().filter(|&b| b == b'.').count() <= 1;
    plain.then(|| t.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("45s"), Some(45.0));
        assert_eq!(parse_duration("2m"), Some(120.0));
        assert_eq!(parse_duration("1m30s"), Some(90.0));
        assert_eq!(parse_duration("90"), Some(90.0));
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("30s5"), None);
        assert_eq!(parse_duration("1.5m"), Some(90.0));
        assert_eq!(parse_duration("1h"), Some(3600.0));
        for bad in [
            "inf",
            "infinity",
            "Infinity",
            "NaN",
            "1e999",
            "1e3",
            "0s",
            "0",
            "0m0s",
            "-5",
            "-5s",
            "",
            "s",
            "m5",
            ".",
            "1..5s",
            "+5",
            &"9".repeat(400),
            &format!("{}s", "9".repeat(400)),
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn subsets_smallest_first() {
        let s = subsets_by_size(3);
        assert_eq!(s.len(), 8);
        assert!(s[0].is_empty());
        assert!(s[1..4].iter().all(|x| x.len() == 1));
        assert_eq!(s[7], vec![0, 1, 2]);
    }
}
