//! `bake --all --emit` and `bake --layer` against moto: the emitted pipelines for the example
//! project (snapshots, then actionlint and GitLab's JSON schema on them), the DAG's jobs run
//! in order with two workers racing on each job, and the bad inputs.

use parbake::bake::all::{AllReport, Outcome};

use super::support::*;

const EMIT_FILTERS: [(&str, &str); 2] =
    [(r"[0-9a-f]{64}", "[HASH]"), (r"[0-9a-f]{12}", "[HASH12]")];

/// `bake --all --emit ENGINE --target aws` in the repository's example project: its stdout.
fn emitted(engine: &str) -> String {
    let store = tempfile::tempdir().unwrap();
    let out = in_repo(store.path())
        .args(&["bake", "--all", "--emit", engine, "--target", "aws"])
        .run();
    assert!(
        !store.path().exists() || std::fs::read_dir(store.path()).unwrap().next().is_none(),
        "emitting created a store"
    );
    out.stdout
}

macro_rules! emit_snap {
    ($name:ident, $engine:expr) => {
        #[test]
        fn $name() {
            let text = emitted($engine);
            insta::with_settings!({filters => EMIT_FILTERS.to_vec(), snapshot_path => "../snapshots"}, {
                insta::assert_snapshot!(text);
            });
        }
    };
}

emit_snap!(emit_github_actions, "github-actions");
emit_snap!(emit_gitlab, "gitlab");
emit_snap!(emit_json, "json");

/// A validator from the project's .venv, or None (with the reason said) when it is missing
/// outside CI; in CI (`CI` set) a missing validator fails the test.
pub(super) fn validator(name: &str) -> Option<std::path::PathBuf> {
    let bin = repo().join(".venv/bin").join(name);
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing from .venv (scripts/setup.sh installs it) and CI is set"
    );
    eprintln!("SKIPPED: {name} is not in .venv: run `make setup` (scripts/setup.sh)");
    None
}

pub(super) fn check(mut cmd: Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_emitted_github_workflow_passes_actionlint() {
    let Some(actionlint) = validator("actionlint") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join(".github/workflows/parbake-layers.yml");
    std::fs::create_dir_all(wf.parent().unwrap()).unwrap();
    std::fs::write(&wf, emitted("github-actions")).unwrap();
    // the team's setup action the jobs use (docs/nightly.md shows one)
    let action = dir.path().join(".github/actions/parbake-setup/action.yml");
    std::fs::create_dir_all(action.parent().unwrap()).unwrap();
    std::fs::write(
        &action,
        "name: parbake-setup\ndescription: parbake and Packer\nruns:\n  using: composite\n  steps:\n    - run: parbake --version\n      shell: bash\n",
    )
    .unwrap();
    let mut cmd = Command::new(actionlint);
    cmd.current_dir(dir.path()).arg("-no-color").arg(&wf);
    check(cmd);
}

#[test]
fn the_emitted_gitlab_pipeline_passes_gitlabs_schema() {
    let Some(checker) = validator("check-jsonschema") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".gitlab-ci.yml");
    std::fs::write(&file, emitted("gitlab")).unwrap();
    let mut cmd = Command::new(checker);
    cmd.args(["--builtin-schema", "vendor.gitlab-ci"])
        .arg(&file);
    check(cmd);
}

/// The example project with both stacks promoted (three layers: the base, web and worker on
/// it) in its own region.
fn promoted_example(region: &str) -> Fixture {
    let f = Fixture::example();
    f.replace(
        "images/debian12.yml",
        "region: us-east-1",
        &format!("region: {region}"),
    );
    for (stack, promote) in [("web", "nginx, webapp"), ("worker", "worker")] {
        f.replace(
            &format!("images/stacks/{stack}.yml"),
            "promote: []",
            &format!("promote: [{promote}]"),
        );
    }
    f
}

/// One emitted layer job: its job id, hash, level and argv after `parbake`.
struct Job {
    id: String,
    hash: String,
    level: u64,
    argv: Vec<String>,
}

fn jobs_of(dag: &serde_json::Value) -> Vec<Job> {
    dag["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| Job {
            id: l["job"].as_str().unwrap().into(),
            hash: l["hash"].as_str().unwrap().into(),
            level: l["level"].as_u64().unwrap(),
            argv: l["command"].as_array().unwrap()[1..]
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect(),
        })
        .collect()
}

/// Runs every job of one level at once, each by two workers (two stores: two machines that
/// share only EC2; each builder pauses, so the two overlap): their reports and stderr, by
/// layer hash.
fn race_level(
    f: &Fixture,
    stores: [&Path; 2],
    jobs: &[&Job],
) -> BTreeMap<String, Vec<(AllReport, String)>> {
    let mut running = Vec::new();
    for job in jobs {
        for store in stores {
            let mut argv: Vec<&str> = job.argv.iter().map(String::as_str).collect();
            argv.push("--json");
            let t = aws(f.root(), store)
                .args(&argv)
                .env("PARBAKE_CLAIM_POLL_SECONDS", "1")
                .env("PARBAKE_TEST_PAUSE_SECONDS", "3");
            let child = t.spawn();
            running.push((job.hash.clone(), t, child));
        }
    }
    let mut out: BTreeMap<String, Vec<(AllReport, String)>> = BTreeMap::new();
    for (hash, t, child) in running {
        let run = t.finish(child);
        let r: AllReport = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
        out.entry(hash).or_default().push((r, run.stderr));
    }
    out
}

#[test]
fn the_emitted_dag_raced_by_two_workers_bakes_every_layer_once_as_bake_all_would() {
    const REGION: &str = "us-east-2";
    let f = promoted_example(REGION);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dag = aws(f.root(), a.path())
        .args(&["bake", "--all", "--emit", "json", "--target", "aws"])
        .json();
    let jobs = jobs_of(&dag);
    let before: AllReport = serde_json::from_str(
        &aws(f.root(), a.path())
            .args(&["bake", "--all", "--dry-run", "--target", "aws", "--json"])
            .run()
            .stdout,
    )
    .unwrap();
    a_child_before_its_parent_is_refused(&f, a.path(), &jobs);
    let mut reports: BTreeMap<String, Vec<(AllReport, String)>> = BTreeMap::new();
    for level in 1..=jobs.iter().map(|j| j.level).max().unwrap() {
        let these: Vec<&Job> = jobs.iter().filter(|j| j.level == level).collect();
        reports.extend(race_level(&f, [a.path(), b.path()], &these));
    }
    let mut merged = Vec::new();
    for job in &jobs {
        let (rs, errs): (Vec<AllReport>, Vec<String>) = reports[&job.hash].iter().cloned().unzip();
        let outcomes: Vec<Outcome> = rs.iter().map(|r| r.layers[0].outcome).collect();
        let baked = outcomes.iter().filter(|o| **o == Outcome::Baked).count();
        assert_eq!(baked, 1, "{}: {outcomes:?}", job.id);
        assert!(
            outcomes.contains(&Outcome::Cached),
            "{}: {outcomes:?}",
            job.id
        );
        // the other worker met the claim: it waited, then took the AMI as a cache hit
        let loser = &errs[outcomes.iter().position(|o| *o == Outcome::Cached).unwrap()];
        assert!(
            loser.contains("is being baked by another run (claim parbake-lock-")
                && loser.contains("(baked by another run meanwhile)"),
            "{}: {loser}",
            job.id
        );
        assert_eq!(
            rs[0].layers[0].image_id, rs[1].layers[0].image_id,
            "one AMI"
        );
        let amis = rt().block_on(async {
            ec2(REGION)
                .await
                .layer_amis(&example_scope(), &job.hash)
                .await
                .unwrap()
        });
        assert_eq!(amis.len(), 1, "{} was baked {} times", job.id, amis.len());
        let won = rs
            .iter()
            .find(|r| r.layers[0].outcome == Outcome::Baked)
            .unwrap();
        merged.push(won.layers[0].clone());
    }
    // the jobs' summary is what bake --all said it would do, layer for layer
    type Line = (String, String, Outcome, Vec<String>);
    let said: Vec<Line> = before
        .layers
        .iter()
        .map(|l| (l.name.clone(), l.hash.clone(), l.outcome, l.why.clone()))
        .collect();
    let done: Vec<Line> = merged
        .iter()
        .map(|l| {
            (
                l.name.clone(),
                l.hash.clone(),
                Outcome::ToBake,
                l.why.clone(),
            )
        })
        .collect();
    assert_eq!(said, done);
    assert_eq!(before.counts.to_bake, jobs.len());
    a_retried_job_and_bake_all_afterwards_are_cache_hits(&f, a.path(), &jobs, &merged);
}

/// `bake --layer` for a stack layer before its base is baked: exit 1, naming the parent's job.
fn a_child_before_its_parent_is_refused(f: &Fixture, store: &Path, jobs: &[Job]) {
    let child = jobs.iter().find(|j| j.level == 2).unwrap();
    let parent = jobs.iter().find(|j| j.level == 1).unwrap();
    let argv: Vec<&str> = child.argv.iter().map(String::as_str).collect();
    let err = aws(f.root(), store).args(&argv).code(1).run().stderr;
    assert!(err.contains("which is not baked yet"), "{err}");
    assert!(
        err.contains(&format!("hint: run the parent's job `{}`", parent.id)),
        "{err}"
    );
    assert!(err.contains("never bakes a parent itself"), "{err}");
}

/// A job run again (a retry, a duplicate) is a cache hit, and so is every layer for `bake
/// --all`, with the AMIs the jobs made.
fn a_retried_job_and_bake_all_afterwards_are_cache_hits(
    f: &Fixture,
    store: &Path,
    jobs: &[Job],
    merged: &[parbake::bake::all::LayerOutcome],
) {
    let mut argv: Vec<&str> = jobs[0].argv.iter().map(String::as_str).collect();
    argv.push("--json");
    let out = aws(f.root(), store).args(&argv).run();
    let again: AllReport = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(again.layers[0].outcome, Outcome::Cached);
    assert!(out.stderr.contains("no Packer run"), "{}", out.stderr);
    let all: AllReport = serde_json::from_str(
        &aws(f.root(), store)
            .args(&["bake", "--all", "--target", "aws", "--json"])
            .run()
            .stdout,
    )
    .unwrap();
    assert_eq!(all.counts.cached, merged.len(), "{all:?}");
    for l in merged {
        let there = all.layers.iter().find(|x| x.hash == l.hash).unwrap();
        assert_eq!((&there.name, &there.image_id), (&l.name, &l.image_id));
    }
}

#[test]
fn bad_emit_and_layer_inputs_are_clear_errors() {
    let store = tempfile::tempdir().unwrap();
    let err = in_repo(store.path())
        .args(&["bake", "--all", "--emit", "jenkins", "--target", "aws"])
        .code(1)
        .run()
        .stderr;
    assert!(
        err.contains("invalid value 'jenkins' for '--emit <ENGINE>'"),
        "{err}"
    );
    assert!(
        err.contains("[possible values: github-actions, gitlab, json]"),
        "{err}"
    );
    let err = in_repo(store.path())
        .args(&["bake", "--layer", &"0".repeat(64), "--target", "aws"])
        .code(1)
        .run()
        .stderr;
    assert!(
        err.contains("is not in the plan of any image or stack on aws"),
        "{err}"
    );
    assert!(
        err.contains("hint: the project changed since the pipeline was emitted"),
        "{err}"
    );
    let err = in_repo(store.path())
        .args(&["bake", "--all", "--emit", "json"])
        .code(1)
        .run()
        .stderr;
    assert!(err.contains("--emit"), "{err}");
    assert!(err.contains("add --target aws"), "{err}");
}
