//! Planner behaviour on a synthetic role graph, and invariants over every promotion subset.

use parbake::plan::{self, PlanError, Target};

use crate::util::{request, Fixture};

/// a ← b, a ← c, (b, c) ← d, lo (launch-only) ← e, d ← f; g is outside the stack.
fn graph() -> Fixture {
    let f = Fixture::bare();
    f.role("a", &[])
        .role("b", &["a"])
        .role("c", &["a"])
        .role("d", &["b", "c"])
        .role("lo", &[])
        .role("e", &["lo"])
        .role("f", &["d"])
        .role("g", &[])
        .image("img", &["a"], &["lo"])
        .stack("s", "img", &["d", "e", "lo", "f"]);
    f
}

fn err(f: &Fixture, promote: &[&str]) -> PlanError {
    plan::plan(&f.load(), &request("s", promote, Target::Qemu)).unwrap_err()
}

#[test]
fn nothing_promoted_bakes_basic_roles_and_launches_the_rest_in_dependency_order() {
    let p = graph().plan("s", &[]);
    assert_eq!(p.layers.len(), 1);
    assert_eq!(p.layers[0].runs, ["a"]);
    let launch: Vec<&str> = p.launch.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(launch, ["b", "c", "d", "lo", "e", "f"]);
    assert!(
        p.launch
            .iter()
            .find(|r| r.name == "lo")
            .unwrap()
            .launch_only
    );
    assert_eq!(p.installed.len(), 8, "every role is installed by default");
}

#[test]
fn promoting_a_role_pulls_in_its_dependencies_and_shrinks_launch() {
    let p = graph().plan("s", &["d"]);
    assert_eq!(p.layers.len(), 2);
    assert_eq!(p.layers[1].runs, ["b", "c", "d"]);
    assert_eq!(p.layers[1].baked, ["a", "b", "c", "d"]);
    assert_eq!(p.layers[1].parent, format!("layer:{}", p.layers[0].hash));
    let why: Vec<(&str, Option<&str>)> = p
        .promoted
        .iter()
        .map(|x| (x.role.as_str(), x.required_by.as_deref()))
        .collect();
    assert_eq!(why, [("b", Some("d")), ("c", Some("d")), ("d", None)]);
    let launch: Vec<&str> = p.launch.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(launch, ["lo", "e", "f"]);
    assert!(p.notes.iter().any(|n| n.contains("`b` is promoted too")));
}

#[test]
fn promoting_does_not_change_the_base_layer() {
    let f = graph();
    assert_eq!(
        f.plan("s", &[]).layers[0].hash,
        f.plan("s", &["f"]).layers[0].hash
    );
}

#[test]
fn promoting_a_launch_only_role_is_an_error() {
    assert!(
        matches!(err(&graph(), &["lo"]), PlanError::PromoteLaunchOnly { role, .. } if role == "lo")
    );
}

#[test]
fn promoting_a_role_that_depends_on_a_launch_only_role_is_an_error() {
    match err(&graph(), &["e"]) {
        PlanError::PromoteDependsOnLaunchOnly { role, dep, chain } => {
            assert_eq!((role.as_str(), dep.as_str()), ("e", "lo"));
            assert_eq!(chain, ["e", "lo"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn promoting_a_basic_role_is_a_no_op_with_a_note() {
    let p = graph().plan("s", &["a"]);
    assert_eq!(p.layers.len(), 1);
    assert!(p.notes[0].contains("already baked"));
}

#[test]
fn promoting_a_role_outside_the_stack_or_unknown_is_an_error() {
    assert!(matches!(err(&graph(), &["g"]), PlanError::NotInStack { role, .. } if role == "g"));
    assert!(
        matches!(err(&graph(), &["nope"]), PlanError::UnknownRole { role, .. } if role == "nope")
    );
}

#[test]
fn a_dependency_cycle_is_an_error_naming_the_cycle() {
    let f = graph();
    f.role("x", &["y"]).role("y", &["z"]).role("z", &["x"]);
    match err(&f, &[]) {
        PlanError::Cycle { cycle } => assert_eq!(cycle, ["x", "y", "z", "x"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_basic_role_may_not_depend_on_a_launch_only_role() {
    let f = Fixture::bare();
    f.role("a", &["lo"])
        .role("lo", &[])
        .image("img", &["a"], &["lo"])
        .stack("s", "img", &["a"]);
    assert!(matches!(
        err(&f, &[]),
        PlanError::BasicDependsOnLaunchOnly { .. }
    ));
}

#[test]
fn invariants_hold_for_every_promotion_subset() {
    let f = graph();
    let project = f.load();
    let promotable = ["b", "c", "d", "f"];
    for mask in 0u32..(1 << promotable.len()) {
        let promote: Vec<&str> = promotable
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, r)| *r)
            .collect();
        let p = crate::util::plan_of(&project, "s", &promote);
        let baked = p.baked().to_vec();
        let launch: Vec<String> = p.launch.iter().map(|r| r.name.clone()).collect();
        // baked and launched are disjoint and together are the stack's closure
        let mut all: Vec<String> = baked.iter().chain(&launch).cloned().collect();
        all.sort();
        assert_eq!(
            all,
            ["a", "b", "c", "d", "e", "f", "lo"],
            "promote {promote:?}"
        );
        // every promoted role is baked, with its dependencies
        for r in &promote {
            assert!(baked.contains(&r.to_string()));
            for d in plan::dependency_order(&project, &[r.to_string()]).unwrap() {
                assert!(baked.contains(&d), "{d} (dep of {r}) must be baked");
            }
        }
        // launch order respects dependencies among launch roles
        for (i, r) in launch.iter().enumerate() {
            for d in &project.roles[r].deps {
                if let Some(j) = launch.iter().position(|x| x == d) {
                    assert!(j < i, "{d} must run before {r} in {launch:?}");
                }
            }
        }
        // a stack layer exists exactly when something beyond basic is promoted
        assert_eq!(p.layers.len() == 2, !promote.is_empty());
        assert!(!baked.contains(&"lo".to_string()));
    }
}

#[test]
fn example_web_stack_promote_nginx_moves_nginx_into_a_stack_layer() {
    let f = Fixture::example();
    let before = f.plan("web", &[]);
    let after = f.plan("web", &["nginx"]);
    assert_eq!(after.layers[1].runs, ["nginx"]);
    assert_eq!(after.launch.len(), before.launch.len() - 1);
    assert!(!after.launch.iter().any(|r| r.name == "nginx"));
    // web and worker share the base layer
    assert_eq!(f.plan("worker", &[]).layers[0].hash, before.layers[0].hash);
}

#[test]
fn status_tag_reaches_the_aws_launch_spec_only_and_never_the_layer_hash() {
    let f = crate::util::Fixture::example();
    let before = f.plan("web", &[]);
    let aws_before = parbake::plan::plan(
        &f.load(),
        &crate::util::request("web", &[], parbake::plan::Target::Aws),
    )
    .unwrap();
    let path = f.root().join("images/debian12.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "copy_to_regions: []",
            "copy_to_regions: []\n    status_tag: true",
        ),
    )
    .unwrap();
    let project = f.load();
    let aws = parbake::plan::plan(
        &project,
        &crate::util::request("web", &[], parbake::plan::Target::Aws),
    )
    .unwrap();
    let qemu = parbake::plan::plan(
        &project,
        &crate::util::request("web", &[], parbake::plan::Target::Qemu),
    )
    .unwrap();
    assert!(aws.status_tag && !qemu.status_tag);
    assert_eq!(
        aws.layers[0].hash, aws_before.layers[0].hash,
        "launch-time only"
    );
    assert_eq!(qemu.layers[0].hash, before.layers[0].hash);
    let ud = parbake::render::userdata::render(&aws).unwrap();
    assert_eq!(crate::util::launch_spec(&ud.text)["status_tag"], true);
    let qemu_ud = parbake::render::userdata::render(&qemu).unwrap();
    assert!(crate::util::launch_spec(&qemu_ud.text)
        .get("status_tag")
        .is_none());
}
