//! `architectures:` in an aws source (issue 27): its bad values refused at their line with a
//! hint, `--arch` where it cannot apply, and the architecture in the layer hash and nowhere
//! else. Bakes, publishes and prunes of both chains are in `moto::arch`.

use parbake::plan::{self, Target};

use crate::util::{request, Fixture};

/// The Debian arm64 source AMI, as an `architectures.arm64` entry gives it.
const ARM64_AMI: &str = "source_ami: {owners: [\"136693071363\"], name: debian-12-arm64-*}";

/// The example with `lines` inserted after its aws source's `instance_type` line.
fn with_lines(lines: &str) -> Fixture {
    let f = Fixture::example();
    f.replace(
        "images/debian12.yml",
        "    instance_type: t3.small\n",
        &format!("    instance_type: t3.small\n{lines}\n"),
    );
    f
}

/// The example baking x86_64 as it is and arm64 on t4g.small from its own source AMI.
fn both() -> Fixture {
    with_lines(&format!(
        "    architectures:\n      x86_64: {{}}\n      arm64: {{instance_type: t4g.small, {ARM64_AMI}}}"
    ))
}

/// One bad value per class: `plan --target aws` exits 1 naming the file, the line that
/// holds `at`, the message and a hint, and writes nothing.
#[test]
fn bad_architectures_are_refused_at_their_line_with_a_hint() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "    architectures:\n      aarch64: {instance_type: t4g.small}",
            "aarch64:",
            "unknown architecture `aarch64`",
            "EC2 calls 64-bit ARM `arm64`",
        ),
        (
            "    architectures:\n      riscv64: {}",
            "riscv64:",
            "unknown architecture `riscv64`",
            "parbake bakes x86_64 and arm64",
        ),
        (
            &format!("    architectures:\n      x86_64: {{}}\n      arm64: {{instance_type: t3.large, {ARM64_AMI}}}"),
            "arm64: {instance_type: t3.large",
            "arm64 builds on its instance type `t3.large`, which is x86_64",
            "give arm64 a Graviton type",
        ),
        (
            &format!("    architectures:\n      x86_64: {{}}\n      arm64: {{{ARM64_AMI}}}"),
            "instance_type: t3.small",
            "arm64 builds on the source's instance type `t3.small`, which is x86_64",
            "t4g.small",
        ),
        (
            "    architectures:\n      x86_64: {instance_type: m7g.large}",
            "x86_64: {instance_type: m7g.large}",
            "x86_64 builds on its instance type `m7g.large`, which is arm64",
            "give x86_64 an x86 type",
        ),
        (
            "    architectures:\n      x86_64: {}\n      arm64: {instance_type: t4g.small}",
            "arm64: {instance_type: t4g.small}",
            "arm64 takes the source's `source_ami`, whose name `debian-12-amd64-*` names amd64",
            "give arm64 its own",
        ),
        (
            "    architectures:\n      arm64:\n        instance_type: t4g.small\n        source_ami: {owners: [\"136693071363\"], name: debian-12-arm64-*, architecture: x86_64}",
            "source_ami: {owners",
            "architecture `x86_64` under `architectures.arm64`",
            "the key names the architecture",
        ),
        (
            "    architectures:\n      arm64: {instance_type: \"t4g small\"}",
            "arm64: {instance_type: \"t4g small\"}",
            "\"t4g small\" is not an EC2 instance type",
            "t4g.small",
        ),
        (
            "    architectures:\n      arm64:\n        instance_type: t4g.small\n        source_ami: {owners: [\"12345\"], name: debian-12-arm64-*}",
            "source_ami: {owners: [\"12345\"]",
            "\"12345\" is not an AMI owner",
            "12-digit account id",
        ),
    ];
    for (lines, at, message, hint) in cases {
        let f = with_lines(lines);
        let r = f.run(&["render", "web", "--target", "aws", "--output", "out"]);
        assert_eq!(r.code, 1, "{lines}: {}", r.stderr);
        let text = f.read("images/debian12.yml");
        let want = text.lines().position(|l| l.contains(at)).expect("the line") + 1;
        let located = format!("images/debian12.yml:{want}:");
        for needle in [located.as_str(), message, "hint:", hint] {
            assert!(
                r.stderr.contains(needle),
                "{lines}: missing {needle:?} in {}",
                r.stderr
            );
        }
        assert!(!f.root().join("out").exists(), "{lines}: nothing written");
    }
}

/// A single-architecture source whose AMI is arm64 needs a Graviton type too.
#[test]
fn an_arm64_source_with_an_x86_instance_type_is_refused() {
    let f = Fixture::example();
    f.replace(
        "images/debian12.yml",
        "architecture: x86_64",
        "architecture: arm64",
    );
    let r = f.run(&["plan", "web", "--target", "aws"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let line = f
        .read("images/debian12.yml")
        .lines()
        .position(|l| l.contains("instance_type: t3.small"))
        .unwrap()
        + 1;
    assert!(
        r.stderr.contains(&format!("images/debian12.yml:{line}:"))
            && r.stderr
                .contains("arm64 builds on the source's instance type `t3.small`, which is x86_64"),
        "{}",
        r.stderr
    );
}

/// `--arch` the target or image cannot bake is refused, naming what can be.
#[test]
fn an_architecture_the_target_or_image_does_not_bake_is_refused() {
    let f = Fixture::example();
    for args in [
        &["plan", "web", "--arch", "arm64"][..],
        &["bake", "web", "--arch", "arm64"],
        &["launch", "web", "--container", "--arch", "arm64"],
        &["verify", "web", "--arch", "arm64"],
    ] {
        f.parbake(args)
            .code(1)
            .stderr_contains("the local target builds x86_64 only, not arm64")
            .stderr_contains("hint: bake and launch arm64 on EC2: --target aws --arch arm64")
            .run();
    }
    f.parbake(&["plan", "web", "--target", "aws", "--arch", "arm64"])
        .code(1)
        .stderr_contains("image debian12 bakes x86_64, not arm64")
        .stderr_contains("sources.aws.architectures")
        .run();
}

/// Each architecture's plan (its source projected), with `identity` as its resolved source.
fn arch_plan(f: &Fixture, arch: Option<&str>, identity: &str) -> plan::Plan {
    let project = parbake::project::load(f.root()).unwrap();
    let project = match arch {
        Some(a) => project.for_arch(a),
        None => project,
    };
    let mut req = request("web", &["nginx"], Target::Aws);
    req.source_identity = Some(identity.into());
    plan::plan(&project, &req).unwrap()
}

fn hashes(p: &plan::Plan) -> Vec<String> {
    p.layers.iter().map(|l| l.hash.clone()).collect()
}

/// A plan as JSON without what the architecture decides: its hashes, its parent identities,
/// the inputs that record them, and `arch` itself.
fn without_the_architecture(p: &plan::Plan) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap();
    v.as_object_mut().unwrap().remove("arch");
    for l in v["layers"].as_array_mut().unwrap() {
        for k in ["hash", "run_hash", "parent", "inputs"] {
            l.as_object_mut().unwrap().remove(k);
        }
    }
    v
}

/// The architecture changes every layer hash and nothing else in the plan; a file that adds
/// `architectures:` keeps its x86_64 hashes (adding arm64 rebakes nothing); a multi-arch image
/// is never planned without choosing one.
#[test]
fn the_architecture_changes_the_layer_hash_and_nothing_else() {
    let plain = Fixture::example();
    let x86 = "aws:us-east-1:ami-0123:x86_64";
    let before = arch_plan(&plain, None, x86);
    let f = both();
    let after = arch_plan(&f, Some("x86_64"), x86);
    assert_eq!(
        hashes(&before),
        hashes(&after),
        "adding arm64 changes no x86_64 hash"
    );
    // the identity's architecture alone changes every layer
    let other = arch_plan(&plain, None, "aws:us-east-1:ami-0123:arm64");
    for (a, b) in hashes(&before).iter().zip(hashes(&other).iter()) {
        assert_ne!(a, b);
    }
    // the arm64 chain: other hashes, the same plan otherwise
    let arm = arch_plan(&f, Some("arm64"), "aws:us-east-1:ami-0456:arm64");
    for (a, b) in hashes(&after).iter().zip(hashes(&arm).iter()) {
        assert_ne!(a, b);
    }
    assert_eq!(arm.arch.as_deref(), Some("arm64"));
    assert_eq!(
        without_the_architecture(&after),
        without_the_architecture(&arm)
    );
    let project = parbake::project::load(f.root()).unwrap();
    let err = plan::plan(&project, &request("web", &[], Target::Aws)).unwrap_err();
    assert_eq!(err.hints(), ["pass --arch arm64 or --arch x86_64"]);
}

/// One generated `architectures:` entry: its key, instance type and source AMI name (None:
/// the source's own).
type Entry = (&'static str, Option<&'static str>, Option<&'static str>);

const KEYS: &[&str] = &["x86_64", "arm64", "aarch64", "amd64", "i386", "riscv64"];
const TYPES: &[&str] = &[
    "t3.small",
    "t4g.small",
    "m7g.large",
    "c7gn.xlarge",
    "m7i-flex.large",
    "a1.medium",
    "g5g.xlarge",
    "g4dn.xlarge",
    "is4gen.large",
    "x2iedn.large",
    "t4g small",
];
const NAMES: &[&str] = &["debian-12-arm64-*", "debian-12-amd64-*", "debian-12-*"];

fn entries() -> impl proptest::strategy::Strategy<Value = Vec<Entry>> {
    let entry = (
        proptest::sample::select(KEYS),
        proptest::option::of(proptest::sample::select(TYPES)),
        proptest::option::of(proptest::sample::select(NAMES)),
    );
    proptest::collection::vec(entry, 0..4)
}

/// The rules, said once more independently of the code: a known key, a valid type of that
/// architecture, and no inherited name that names the other one.
fn accepted(entries: &[Entry]) -> bool {
    let graviton = |t: &str| {
        let family = t.split('.').next().unwrap();
        family == "a1"
            || family
                .trim_start_matches(char::is_alphabetic)
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .contains('g')
    };
    entries.iter().all(|(key, t, name)| {
        let t = t.unwrap_or("t3.small");
        let inherited_wrong = name.is_none() && *key == "arm64";
        ["x86_64", "arm64"].contains(key)
            && !t.contains(' ')
            && graviton(t) == (*key == "arm64")
            && !inherited_wrong
    })
}

fn entries_yaml(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "    architectures: {}\n".into();
    }
    let mut s = String::from("    architectures:\n");
    for (key, t, name) in entries {
        if t.is_none() && name.is_none() {
            s.push_str(&format!("      {key}: {{}}\n"));
            continue;
        }
        s.push_str(&format!("      {key}:\n"));
        if let Some(t) = t {
            s.push_str(&format!("        instance_type: {t:?}\n"));
        }
        if let Some(n) = name {
            s.push_str(&format!(
                "        source_ami: {{owners: [\"136693071363\"], name: {n:?}}}\n"
            ));
        }
    }
    s
}

/// Every generated `architectures:` map is taken exactly when the rules say; a refusal is
/// located in the image file with a hint; a map taken plans one chain per key, each with its
/// own hashes, on an instance type of its architecture.
#[test]
fn every_architectures_map_is_taken_or_refused_as_the_rules_say() {
    let n = crate::properties::cases("PARBAKE_PROPTEST_CASES", 256);
    let started = std::time::Instant::now();
    let f = Fixture::example();
    let original = f.read("images/debian12.yml");
    let (mut taken, mut refused) = (0, 0);
    for case in crate::properties::generate(entries(), n, crate::properties::seed()) {
        // a key given twice is YAML's duplicate key, refused by the linter: keep the first
        let mut seen = std::collections::BTreeSet::new();
        let case: Vec<Entry> = case.into_iter().filter(|e| seen.insert(e.0)).collect();
        let text = original.replace(
            "    instance_type: t3.small\n",
            &format!("    instance_type: t3.small\n{}", entries_yaml(&case)),
        );
        f.write("images/debian12.yml", &text);
        match parbake::project::load(f.root()) {
            Err(e) => {
                refused += 1;
                assert!(!accepted(&case), "{case:?} refused: {e}");
                let s = e.to_string();
                assert!(
                    s.starts_with("images/debian12.yml:")
                        && !s.starts_with("images/debian12.yml:1:1"),
                    "{case:?}: {s}"
                );
                assert!(!e.hints().is_empty(), "{case:?}: {s} has no hint");
            }
            Ok(project) => {
                taken += 1;
                assert!(accepted(&case), "{case:?} taken");
                chains_are_their_own(&project, &case);
            }
        }
    }
    assert!(taken > 0 && refused > 0, "taken {taken}, refused {refused}");
    eprintln!(
        "architectures tier: {n} maps, {taken} taken, {refused} refused at their line, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Each key's chain: its arch, an instance type of it, hashes no other chain has.
fn chains_are_their_own(project: &parbake::config::Project, case: &[Entry]) {
    let mut seen = std::collections::BTreeSet::new();
    for (key, _, _) in case {
        let view = project.for_arch(key);
        let src = view.images["debian12"].def.sources.aws.as_ref().unwrap();
        let arch = parbake::config::arch::instance_arch(&src.instance_type);
        assert_eq!(arch, Some(*key), "{case:?}");
        let mut req = request("web", &[], Target::Aws);
        req.source_identity = Some(format!("aws:us-east-1:ami-0123:{key}"));
        let p = plan::plan(&view, &req).unwrap();
        assert_eq!(p.arch.as_deref(), Some(*key));
        assert!(seen.insert(p.layers[0].hash.clone()), "{case:?}");
    }
}

/// `validate` checks each architecture's chain with the real validators (Packer, ansible-core,
/// cloud-init), each named.
#[test]
fn validate_checks_each_architectures_chain() {
    let f = both();
    let out = f
        .parbake(&["validate", "web", "--target", "aws"])
        .code(0)
        .run()
        .stderr;
    for arch in ["arm64", "x86_64"] {
        for check in ["packer validate", "cloud-init schema"] {
            assert!(
                out.lines()
                    .any(|l| l.contains(check)
                        && l.contains(&format!("(aws {arch}, as configured)"))),
                "{arch} {check}: {out}"
            );
        }
    }
}
