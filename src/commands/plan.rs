//! `parbake plan STACK [--promote ROLE] [--budget DURATION]`: the layers, their roles and
//! hashes, what runs at launch, and the user-data's size and verdict; with `--budget`, the
//! smallest promotion that meets a boot-time budget.

use std::fmt::Write;

use serde::Serialize;

use super::Ctx;
use crate::error::{Error, Result};
use crate::plan::budget::{BudgetReport, Build, Choice, Cost, Figure};
use crate::plan::{LayerKind, Plan};
use crate::render::{RenderError, UserData};

/// Whether the user-data fits EC2's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Fits,
    TooLarge,
}

/// The user-data's size and verdict, as `plan` reports it in text and JSON alike.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserDataSize {
    /// The cloud-config text.
    pub raw_bytes: usize,
    /// The same, gzipped.
    pub gzipped_bytes: usize,
    /// What EC2 or the seed gets (raw when it fits, else gzipped); None when too large.
    pub sent_bytes: Option<usize>,
    pub sent_gzipped: bool,
    pub limit_bytes: usize,
    pub verdict: Verdict,
    /// (part, raw bytes), largest launch vars included.
    pub parts: Vec<(String, usize)>,
}

impl UserDataSize {
    /// The verdict of a user-data render: its size when it fits, the figures of the error when
    /// it does not even gzipped.
    pub fn of(rendered: &Result<UserData, RenderError>) -> UserDataSize {
        match rendered {
            Ok(ud) => UserDataSize {
                raw_bytes: ud.text.len(),
                gzipped_bytes: if ud.gzipped {
                    ud.bytes.len()
                } else {
                    crate::render::userdata::gzip(ud.text.as_bytes()).len()
                },
                sent_bytes: Some(ud.bytes.len()),
                sent_gzipped: ud.gzipped,
                limit_bytes: crate::render::USERDATA_LIMIT,
                verdict: Verdict::Fits,
                parts: ud.parts.clone(),
            },
            Err(RenderError::UserDataTooLarge {
                raw,
                gzipped,
                limit,
                parts,
                ..
            }) => UserDataSize {
                raw_bytes: *raw,
                gzipped_bytes: *gzipped,
                sent_bytes: None,
                sent_gzipped: false,
                limit_bytes: *limit,
                verdict: Verdict::TooLarge,
                parts: parts.clone(),
            },
        }
    }

    fn text(&self) -> String {
        match self.sent_bytes {
            Some(sent) => format!(
                "user-data: {sent} bytes{} of {} allowed",
                if self.sent_gzipped {
                    format!(" (gzipped from {})", self.raw_bytes)
                } else {
                    String::new()
                },
                self.limit_bytes
            ),
            None => format!(
                "user-data: TOO LARGE: {} bytes even gzipped ({} raw) of {} allowed",
                self.gzipped_bytes, self.raw_bytes, self.limit_bytes
            ),
        }
    }
}

/// `plan --json`: the plan's fields and the user-data verdict.
#[derive(Debug, Serialize)]
pub struct PlanJson<'a> {
    #[serde(flatten)]
    pub plan: &'a Plan,
    pub user_data: &'a UserDataSize,
    /// The Packer template every layer of the plan bakes with.
    pub template: TemplateUse,
}

/// A plan's Packer template: its file, and whether parbake's embedded copy or the project's
/// own file is used (its text is in each layer's hash either way).
#[derive(Debug, Serialize, Clone)]
pub struct TemplateUse {
    pub file: &'static str,
    /// `embedded`, or the project's file that overrides it.
    pub origin: String,
}

fn template_use(ctx: &Ctx, target: crate::plan::Target) -> TemplateUse {
    let file = crate::targets::backend(target).template();
    TemplateUse {
        file,
        origin: ctx.project.templates.origin(file).to_string(),
    }
}

/// `plan` as text: the layer table, what is promoted, what runs at launch, the user-data
/// verdict, the installed roles and the planner's notes.
pub fn plan_table(plan: &Plan, ud: &UserDataSize, template: &TemplateUse) -> String {
    let mut s = String::new();
    let arch = plan
        .arch
        .as_ref()
        .map(|a| format!(", {a}"))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "stack {} on image {} (target {}{arch}, parbake {})\n",
        plan.stack, plan.image, plan.target, plan.parbake_version
    );
    s.push_str(&layer_table(plan));
    let from = match template.origin.as_str() {
        "embedded" => "parbake's own, embedded",
        _ => "the project's own file",
    };
    let _ = writeln!(s, "  template: {} ({from})", template.file);
    s.push('\n');
    s.push_str(&promoted_text(plan));
    s.push_str(&launch_text(plan));
    s.push_str(&distribute_text(plan));
    let _ = writeln!(s, "\n{}", ud.text());
    let _ = writeln!(
        s,
        "installed on the image ({} roles): {}",
        plan.installed.len(),
        plan.installed
            .iter()
            .map(|(r, h)| format!("{r} {}", &h.trim_start_matches("sha256:")[..8]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for n in &plan.notes {
        let _ = writeln!(s, "note: {n}");
    }
    for w in &plan.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

/// Where the launched AMI goes after its bake (aws `distribute:`), when anywhere.
fn distribute_text(plan: &Plan) -> String {
    let mut s = String::new();
    let Some(d) = &plan.distribute else {
        return s;
    };
    let _ = writeln!(
        s,
        "\ndistributes layer {} after its bake:",
        plan.top().index
    );
    for r in &d.regions {
        let key = r
            .kms_key_id
            .as_deref()
            .unwrap_or("the region's default EBS key");
        let _ = writeln!(s, "  copy to {:<16} encrypted with {key}", r.region);
    }
    let list = |v: &[String]| match v.is_empty() {
        true => "none".to_string(),
        false => v.join(", "),
    };
    let _ = writeln!(
        s,
        "  launch permission: accounts {}; OUs {}",
        list(&d.accounts),
        list(&d.organizational_units)
    );
    let _ = writeln!(
        s,
        "  create-volume permission on its snapshots: accounts {}",
        list(&d.accounts)
    );
    if d.public {
        let _ = writeln!(
            s,
            "  public: every AWS account may launch it (public: true)"
        );
    }
    s
}

/// The layers as an aligned table, then each layer's parent.
fn layer_table(plan: &Plan) -> String {
    let rows: Vec<[String; 5]> = plan
        .layers
        .iter()
        .map(|l| {
            [
                l.index.to_string(),
                match l.kind {
                    LayerKind::Base => "base".into(),
                    LayerKind::Stack => "stack".into(),
                },
                l.name.clone(),
                l.short_hash().to_string(),
                if l.runs.is_empty() {
                    "-".into()
                } else {
                    l.runs.join(", ")
                },
            ]
        })
        .collect();
    let head = ["LAYER", "KIND", "NAME", "HASH", "BAKES"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([head[i].len()])
                .max()
                .unwrap()
        })
        .collect();
    let line = |cols: &[&str]| {
        let mut l = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i == cols.len() - 1 {
                l.push_str(c);
            } else {
                let _ = write!(l, "{:<w$}  ", c, w = widths[i]);
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut s = line(&head);
    for r in &rows {
        s.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    for l in &plan.layers {
        let _ = writeln!(s, "  layer {} parent: {}", l.index, l.parent);
        let _ = writeln!(
            s,
            "  layer {} run hash {} (its roles' result), payload hash {} (what it carries)",
            l.index,
            &l.run_hash[..12.min(l.run_hash.len())],
            &l.payload_hash[..12.min(l.payload_hash.len())]
        );
    }
    s
}

fn promoted_text(plan: &Plan) -> String {
    let mut s = String::new();
    if !plan.promoted.is_empty() {
        let _ = writeln!(s, "promoted into the stack layer:");
        for p in &plan.promoted {
            match &p.required_by {
                None => {
                    let _ = writeln!(s, "  {}", p.role);
                }
                Some(by) => {
                    let _ = writeln!(s, "  {} (dependency of {by})", p.role);
                }
            }
        }
    }
    s
}

/// The launch roles in order, each with whether it can run with no network and why, and what
/// it stages.
fn launch_text(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "runs at launch ({} roles, in order):", plan.launch.len());
    if plan.launch.is_empty() {
        let _ = writeln!(s, "  nothing: the image has every role of the stack baked");
    }
    for r in &plan.launch {
        let mut notes = Vec::new();
        if r.launch_only {
            notes.push("launch-only".to_string());
        }
        notes.push(r.offline_reason.clone());
        if !r.staged_apt.is_empty() {
            notes.push(format!("packages: {}", r.staged_apt.join(" ")));
        }
        if !r.staged_pip.is_empty() {
            notes.push(format!("wheels: {}", r.staged_pip.join(" ")));
        }
        if !r.collections.is_empty() {
            notes.push(format!("collections: {}", r.collections.join(", ")));
        }
        let _ = writeln!(s, "  {:<12} {}", r.name, notes.join("; "));
    }
    if let Some(hint) = staging_hint(plan) {
        let _ = writeln!(s, "  {hint}");
    }
    let _ = writeln!(s, "{}", launch_settings(plan));
    for c in &plan.checks {
        let _ = writeln!(s, "  check {} (within {}s)", c.name, c.timeout_s);
    }
    s
}

/// How to make the first launch role that installs unstaged packages run offline: the stack
/// file's `staging:` for it.
fn staging_hint(plan: &Plan) -> Option<String> {
    let r = plan.launch.iter().find(|r| {
        r.offline_verdict == crate::plan::Verdict::Network
            && r.offline_reason.contains("stages none")
    })?;
    Some(format!(
        "hint: to run {} with no network, name the packages it installs in images/stacks/{}.yml: `staging: {{{}: {{apt: [PACKAGE, ...]}}}}` (their Recommends follow its apt tasks)",
        r.name, plan.stack, r.name
    ))
}

/// `launch timeout 60m; facts: all; 2 checks after the roles:`, the launch's own settings.
fn launch_settings(plan: &Plan) -> String {
    let facts = match &plan.launch_facts {
        None => "all".to_string(),
        Some(f) if f.is_empty() => "none".to_string(),
        Some(f) => f.join(", "),
    };
    let checks = match plan.checks.len() {
        0 => "no checks".to_string(),
        1 => "1 check after the roles:".to_string(),
        n => format!("{n} checks after the roles:"),
    };
    format!(
        "launch timeout {}; facts: {facts}; {checks}",
        duration_words(plan.launch_timeout_s)
    )
}

/// 3600 → `60m`, 5400 → `90m`, 90 → `1m30s`.
fn duration_words(s: u64) -> String {
    match (s / 60, s % 60) {
        (0, sec) => format!("{sec}s"),
        (m, 0) => format!("{m}m"),
        (m, sec) => format!("{m}m{sec}s"),
    }
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub stack: super::StackArgs,
    /// Estimate boot-to-ready from the timing ledger and recommend the smallest promotion
    /// that meets this budget (`45s`, `2m`, `1m30s`); exit 1 when none can.
    #[arg(long, value_name = "DURATION")]
    pub budget: Option<String>,
}

pub fn run(ctx: &Ctx, args: PlanArgs) -> Result<()> {
    match &args.budget {
        Some(budget) => run_budget(ctx, &args.stack, budget),
        None => run_plan(ctx, &args.stack),
    }
}

/// The plan, and one verdict on the user-data for both formats: the size is reported, then
/// a user-data too large exits 1.
fn run_plan(ctx: &Ctx, stack: &super::StackArgs) -> Result<()> {
    let mut plans = Vec::new();
    for arch in stack.arches(ctx)? {
        let ctx = ctx.for_arch(arch.as_deref());
        let plan = crate::plan::plan(&ctx.project, &stack.resolved_request(&ctx))?;
        let ud = crate::render::userdata::render(&plan);
        let size = UserDataSize::of(&ud);
        plans.push((plan, size, ud.err()));
    }
    let template = template_use(ctx, stack.target);
    let docs: Vec<PlanJson> = plans
        .iter()
        .map(|(plan, size, _)| PlanJson {
            plan,
            user_data: size,
            template: template.clone(),
        })
        .collect();
    // one architecture: its plan as today; several: an array, one plan per chain
    ctx.printer
        .data_each(&docs, |p| plan_table(p.plan, p.user_data, &p.template))?;
    match plans.into_iter().find_map(|(_, _, e)| e) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn run_budget(ctx: &Ctx, stack: &super::StackArgs, budget: &str) -> Result<()> {
    let budget_s = crate::plan::budget::parse_duration(budget).ok_or_else(|| {
        Error::user(format!(
            "invalid --budget `{budget}`: not a positive, finite duration"
        ))
        .with_hint("give a duration such as 45s, 2m or 1m30s (units h, m and s), or a number of seconds such as 90")
    })?;
    let arch = stack.one_arch(ctx, "a budget")?;
    let ctx = &*ctx.for_arch(arch.as_deref());
    let req = stack.resolved_request(ctx);
    let store = crate::store::Store::for_project(ctx.root());
    let entries = crate::ledger::Ledger::in_store(&store.root).load()?;
    let image = &ctx.project.stack(&stack.stack)?.def.image;
    let stats = crate::ledger::Stats::from_entries(&entries, &stack.target.to_string(), image);
    // on aws plan makes no cloud calls: the cost says the AMIs were not looked up
    let target = crate::targets::backend(stack.target);
    let held = |layer: &crate::plan::Layer| target.held(&ctx.project, layer);
    let user_data_bytes =
        |p: &crate::plan::Plan| Ok::<_, Error>(crate::render::userdata::render(p)?.bytes.len());
    let report = crate::plan::budget::recommend(
        &ctx.project,
        &req,
        &stats,
        budget_s,
        &held,
        &user_data_bytes,
    )?;
    ctx.printer.data(&report, budget_text)?;
    if !report.met() {
        return Err(Error::user(format!(
            "no promotion of stack {} meets the {budget} budget (fastest estimate {:.1}s)",
            report.stack, report.fastest.estimate_s
        ))
        .with_hint("raise the budget, or make the launch-only roles faster; the estimate per role is above"));
    }
    Ok(())
}

fn figure_text(f: &Figure) -> String {
    format!("{:.1}s{}", f.seconds, f.mark())
}

/// An option's estimate by part, its stack layer and its user-data size.
fn describe(o: &Choice) -> String {
    let mut t = format!(
        "  estimate {:.1}s = floor {}",
        o.estimate_s,
        figure_text(&o.floor)
    );
    for (role, f) in &o.launch {
        t.push_str(&format!(" + {role} {}", figure_text(f)));
    }
    t.push('\n');
    t.push_str(&format!(
        "  stack layer bakes: {}; user-data {} bytes\n",
        if o.stack_layer_runs.is_empty() {
            "no stack layer".to_string()
        } else {
            o.stack_layer_runs.join(", ")
        },
        o.user_data_bytes
    ));
    t
}

/// `plan --budget` as text.
pub fn budget_text(r: &BudgetReport) -> String {
    let mut s = format!(
        "stack {} on {} ({}): budget {:.0}s boot-to-ready\n",
        r.stack,
        r.target,
        r.accelerator.as_deref().unwrap_or("no timing data yet"),
        r.budget_s
    );
    s.push_str(&format!(
        "timing ledger: {} launch(es), {} bake(s)\n\n",
        r.ledger_launches, r.ledger_bakes
    ));
    s.push_str(&format!(
        "now ({}):\n{}",
        if r.current.estimate_s <= r.budget_s {
            "within budget"
        } else {
            "over budget"
        },
        describe(&r.current)
    ));
    match (&r.recommended, &r.cost) {
        (Some(rec), Some(_)) if rec.promote.is_empty() => {
            s.push_str("\nrecommendation: change nothing; the stack already meets the budget\n");
        }
        (Some(rec), Some(cost)) => s.push_str(&recommendation_text(r, rec, cost)),
        _ => {
            s.push_str(&format!(
                "\nno promotion meets {:.0}s. The fastest launch promotion gives:\n{}",
                r.budget_s,
                describe(&r.fastest)
            ));
        }
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

/// The recommended promotion, its estimate and what it costs.
fn recommendation_text(r: &BudgetReport, rec: &Choice, cost: &Cost) -> String {
    let mut s = format!(
        "\nrecommendation: --promote {}\n{}",
        rec.promote.join(" --promote "),
        describe(rec)
    );
    let mut parts: Vec<String> = cost
        .extra_bake
        .iter()
        .map(|(r, f)| format!("{r} {}", figure_text(f)))
        .collect();
    if let Some(o) = &cost.layer_overhead {
        parts.push(format!("stack layer overhead {}", figure_text(o)));
    }
    s.push_str(&format!(
        "  cost: +{:.1}s bake ({}); user-data {} -> {} bytes\n",
        cost.extra_bake_s,
        parts.join(", "),
        cost.user_data_bytes_before,
        cost.user_data_bytes_after
    ));
    s.push_str(&format!(
        "  layers: {}{}; the base layer and other stacks are unaffected\n",
        if cost.adds.is_empty() {
            "none added".to_string()
        } else {
            format!("bakes {}", cost.adds.join(", "))
        },
        if cost.invalidates.is_empty() {
            String::new()
        } else {
            format!(", replacing {}", cost.invalidates.join(", "))
        }
    ));
    if let Some(b) = &cost.build {
        s.push_str(&format!("  now: {}\n", build_text(b)));
    }
    s.push_str(&format!(
        "  to keep it: add {} to `promote:` in images/stacks/{}.yml\n",
        rec.promote.join(", "),
        r.stack
    ));
    s
}

/// What building the recommended stack layer takes now, in words.
fn build_text(b: &Build) -> String {
    match b {
        Build::Cached { layer } => format!("{layer} is already baked: nothing to build"),
        Build::Refresh {
            layer,
            run_layer,
            estimate,
        } => format!(
            "a payload refresh of its cached run layer ({run_layer}) makes {layer}, about {} (no role runs)",
            figure_text(estimate)
        ),
        Build::Bake {
            layer,
            estimate_s,
            guessed,
            unchecked,
        } => format!(
            "baking {layer} takes about {estimate_s:.1}s{}{}",
            if *guessed { " (partly a guess)" } else { "" },
            if *unchecked {
                "; the target's images were not looked up, so a cached run layer may make it a refresh"
            } else {
                ""
            }
        ),
    }
}
