//! `plan --budget` recommendations on synthetic ledgers: pure, no VMs.

use parbake::ledger::{Entry, Kind, RoleTime, Stats};
use parbake::plan::budget::{recommend, BudgetReport, Build, Held, Source};
use parbake::plan::Target;

use crate::util::{request, Fixture};

/// base (basic) ← a ← b ← c (c depends on b depends on a), d alone, late (launch-only).
fn project() -> Fixture {
    let f = Fixture::bare();
    f.role("base", &[])
        .role("a", &[])
        .role("b", &["a"])
        .role("c", &["b"])
        .role("d", &[])
        .role("late", &[])
        .image("img", &["base"], &["late"])
        .stack("s", "img", &["c", "d", "late"]);
    f
}

fn launch(total: f64, roles: &[(&str, f64)]) -> Entry {
    Entry {
        at: 1,
        kind: Kind::Launch,
        target: "qemu".into(),
        image: "img".into(),
        stack: Some("s".into()),
        layer: "img".into(),
        layer_hash: "h".into(),
        accelerator: "tcg".into(),
        total_s: total,
        roles: roles
            .iter()
            .map(|(r, s)| RoleTime {
                role: r.to_string(),
                seconds: *s,
                ok: true,
            })
            .collect(),
        no_roles: false,
        ok: true,
        timing: None,
    }
}

fn bake(roles: &[(&str, f64)], total: f64) -> Entry {
    Entry {
        kind: Kind::Bake,
        stack: Some("s".into()),
        ..launch(total, roles)
    }
}

/// Floor 40 s (every launch: total - roles = 40); a 10, b 20, c 30, d 5, late 15 at launch.
fn stats(late: f64) -> Stats {
    let roles = [
        ("a", 10.0),
        ("b", 20.0),
        ("c", 30.0),
        ("d", 5.0),
        ("late", late),
    ];
    let sum: f64 = roles.iter().map(|r| r.1).sum();
    let mut entries = vec![
        launch(40.0 + sum, &roles),
        // a second, slower launch: the medians sit between the two
        launch(40.0 + sum + 2.0 * sum, &roles.map(|(r, s)| (r, 3.0 * s))),
        bake(&[("a", 8.0), ("b", 16.0), ("c", 24.0), ("d", 4.0)], 100.0),
    ];
    // another image's and another target's figures must not leak in
    entries.push(Entry {
        image: "other".into(),
        ..launch(1000.0, &[("a", 900.0)])
    });
    entries.push(Entry {
        target: "aws".into(),
        ..launch(1000.0, &[("a", 900.0)])
    });
    Stats::from_entries(&entries, "qemu", "img")
}

fn rec(f: &Fixture, stats: &Stats, budget: f64) -> BudgetReport {
    rec_held(f, stats, budget, &|_| Held::Nothing)
}

fn rec_held(
    f: &Fixture,
    stats: &Stats,
    budget: f64,
    held: &dyn Fn(&parbake::plan::Layer) -> Held,
) -> BudgetReport {
    recommend(
        &f.load(),
        &request("s", &[], Target::Qemu),
        stats,
        budget,
        held,
        &|p| Ok::<_, parbake::Error>(parbake::render::userdata::render(p)?.bytes.len()),
    )
    .unwrap()
}

#[test]
fn the_estimate_is_the_floor_plus_the_launch_role_medians() {
    let f = project();
    let s = stats(15.0);
    let r = rec(&f, &s, 1000.0);
    // the floor is boot-to-ready minus the roles' own time: 40 s in both launches
    assert_eq!(r.current.floor.seconds, 40.0);
    assert_eq!(r.current.floor.source, Source::Launch);
    // a: median of 10 and 30 = 20; b 40; c 60; d 10; late 30
    let launch: Vec<(String, f64)> = r
        .current
        .launch
        .iter()
        .map(|(n, f)| (n.clone(), f.seconds))
        .collect();
    assert_eq!(
        launch,
        [
            ("a", 20.0),
            ("b", 40.0),
            ("c", 60.0),
            ("d", 10.0),
            ("late", 30.0)
        ]
        .map(|(n, s)| (n.to_string(), s))
    );
    assert_eq!(
        r.current.estimate_s,
        40.0 + 20.0 + 40.0 + 60.0 + 10.0 + 30.0
    );
    assert!(!r.current.guessed);
    // already within budget: change nothing
    assert_eq!(
        r.recommended.as_ref().unwrap().promote,
        Vec::<String>::new()
    );
}

#[test]
fn the_smallest_promotion_that_meets_the_budget_wins() {
    let f = project();
    let s = stats(15.0);
    // now 200 s. Promoting d saves 10 (190); a saves 20 (180); b brings a: 60 (140);
    // c brings b and a: 120 (80).
    let r = rec(&f, &s, 185.0);
    let best = r.recommended.unwrap();
    assert_eq!(
        best.promote,
        ["a"],
        "one role (a, 180 s) beats d (190 s, over)"
    );
    assert_eq!(best.estimate_s, 180.0);
    let r = rec(&f, &s, 175.0);
    let best = r.recommended.unwrap();
    // a+d (170 s) and b (which brings a: 140 s) both bake two roles; the lower estimate wins
    assert_eq!(best.stack_layer_runs, ["a", "b"]);
    assert_eq!(best.promote, ["b"]);
    assert_eq!(best.estimate_s, 140.0);
    // the cost: bake medians of what is newly baked, plus a stack layer's overhead
    // (this ledger's stack bake: 100 s total - 52 s of roles = 48 s)
    let cost = r.cost.unwrap();
    assert_eq!(cost.extra_bake_s, 8.0 + 16.0 + 48.0);
    assert_eq!(cost.adds.len(), 1, "a new stack layer");
    assert!(
        cost.invalidates.is_empty(),
        "there was no stack layer to replace"
    );
    assert!(cost.user_data_bytes_after < cost.user_data_bytes_before);
}

#[test]
fn a_dependency_chain_is_promoted_whole_and_costed_whole() {
    let f = project();
    let s = stats(15.0);
    let r = rec(&f, &s, 90.0);
    let best = r.recommended.unwrap();
    assert_eq!(best.promote, ["c"], "one flag; its dependencies come along");
    assert_eq!(best.stack_layer_runs, ["a", "b", "c"]);
    assert_eq!(best.estimate_s, 40.0 + 10.0 + 30.0);
    let cost = r.cost.unwrap();
    let baked: Vec<&str> = cost.extra_bake.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(baked, ["a", "b", "c"]);
}

#[test]
fn an_impossible_budget_says_so_with_the_fastest_option() {
    let f = project();
    let s = stats(15.0);
    let r = rec(&f, &s, 60.0);
    assert!(r.recommended.is_none() && r.cost.is_none());
    // everything promotable baked: floor 40 + late 30
    assert_eq!(r.fastest.estimate_s, 70.0);
    assert_eq!(r.fastest.stack_layer_runs, ["a", "b", "c", "d"]);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("no promotion can meet it")),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_launch_only_role_that_dominates_cannot_be_promoted_away() {
    let f = project();
    // late takes 300 s at launch (median of 300 and 900 = 600); nothing else matters
    let s = stats(300.0);
    let r = rec(&f, &s, 300.0);
    assert!(r.recommended.is_none());
    assert_eq!(r.launch_only_s, 600.0);
    assert!(!r.fastest.launch.is_empty());
    assert!(r.fastest.launch.iter().all(|(n, _)| n == "late"));
}

#[test]
fn without_timing_data_the_figures_are_marked_guesses() {
    let f = project();
    let r = rec(&f, &Stats::default(), 100.0);
    assert!(r.current.guessed);
    assert_eq!(r.current.floor.source, Source::Guess);
    assert!(
        r.notes.iter().any(|n| n.contains("GUESSES")),
        "{:?}",
        r.notes
    );
    // bake timings stand in for launch timings when a role was never launched
    let only_bakes = Stats::from_entries(&[bake(&[("d", 4.0)], 50.0)], "qemu", "img");
    let r = rec(&f, &only_bakes, 1000.0);
    let d = r.current.launch.iter().find(|(n, _)| n == "d").unwrap();
    assert_eq!((d.1.seconds, d.1.source), (4.0, Source::Bake));
}

#[test]
fn the_cli_exits_1_on_an_impossible_budget_and_rejects_a_bad_duration() {
    let f = project();
    let out = f.run(&["plan", "s", "--budget", "10s"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.contains("no promotion meets 10s"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("no promotion of stack s meets the 10s budget"),
        "{}",
        out.stderr
    );
    let out = f.run(&["plan", "s", "--budget", "soon"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("invalid --budget `soon`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("45s, 2m or 1m30s"), "{}", out.stderr);
    let out = f.run(&["plan", "s", "--budget", "1h", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r: BudgetReport = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(r.budget_s, 3600.0);
}

/// What building the recommended stack layer takes now follows what the store holds: a bake
/// of all its roles, a refresh of its cached run layer (no role runs: the refresh median),
/// or nothing.
#[test]
fn the_cost_to_build_now_is_a_bake_a_refresh_or_nothing_by_what_the_store_holds() {
    let f = project();
    let mut s = stats(15.0);
    // promoting c brings a and b: the stack layer runs a, b and c (bake medians 8, 16, 24)
    // plus this ledger's stack-layer overhead of 48 s
    let build = |s: &Stats, held: &dyn Fn(&parbake::plan::Layer) -> Held| {
        let r = rec_held(&f, s, 90.0, held);
        assert_eq!(r.recommended.unwrap().stack_layer_runs, ["a", "b", "c"]);
        r.cost.unwrap().build.unwrap()
    };
    match build(&s, &|_| Held::Nothing) {
        Build::Bake {
            estimate_s,
            guessed,
            unchecked,
            layer,
        } => {
            assert_eq!(estimate_s, 8.0 + 16.0 + 24.0 + 48.0);
            assert!(!guessed && !unchecked);
            assert!(layer.starts_with("img-s ("), "{layer}");
        }
        other => panic!("{other:?}"),
    }
    // a cloud target is not looked up: a bake, said to be unchecked
    assert!(matches!(
        build(&s, &|_| Held::Unknown),
        Build::Bake {
            unchecked: true,
            ..
        }
    ));
    // the run layer is cached: a refresh, at the guess until the ledger has refreshes
    let run = |l: &parbake::plan::Layer| {
        assert_eq!(l.runs, ["a", "b", "c"], "asked about the stack layer");
        Held::RunLayer("9".repeat(64))
    };
    match build(&s, &run) {
        Build::Refresh {
            run_layer,
            estimate,
            ..
        } => {
            assert_eq!(run_layer, "999999999999");
            assert_eq!(
                (estimate.seconds, estimate.source),
                (parbake::plan::budget::GUESS_REFRESH_S, Source::Guess)
            );
        }
        other => panic!("{other:?}"),
    }
    let mut refresh = bake(&[], 70.0);
    refresh.kind = Kind::Refresh;
    let mut entries = vec![refresh.clone(), refresh.clone(), refresh];
    entries[0].total_s = 90.0;
    entries[1].total_s = 50.0;
    s.refresh = Stats::from_entries(&entries, "qemu", "img").refresh;
    assert_eq!(s.refresh.len(), 3, "refreshes count as refreshes");
    match build(&s, &run) {
        Build::Refresh { estimate, .. } => {
            assert_eq!((estimate.seconds, estimate.source), (70.0, Source::Refresh));
            assert_eq!(estimate.samples, 3);
        }
        other => panic!("{other:?}"),
    }
    // a refresh tells nothing about roles: no role's bake median moved
    assert_eq!(Stats::from_entries(&entries, "qemu", "img").bake.len(), 0);
    assert!(matches!(build(&s, &|_| Held::Exact), Build::Cached { .. }));
}
