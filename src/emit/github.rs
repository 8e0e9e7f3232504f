//! The DAG as a GitHub Actions workflow: one job per layer, its parent's job in `needs:`.
//! A level wider than [`WIDE`] layers becomes matrix jobs instead, each under GitHub's 256
//! jobs per matrix ([`MATRIX_MAX`]), its entries grouped by the job their parents are in so a
//! shard needs few others. The stacks' verify and publish jobs follow.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::{list, map, s, stack_env, stack_line, yaml_document, Dag, DagJob, DagLayer, DagStack};

/// A level with more layers than this is emitted as matrices.
pub const WIDE: usize = 32;
/// GitHub's limit of jobs one matrix may generate.
pub const MATRIX_MAX: usize = 256;

/// The shell line of a layer's job: the hash comes in through the environment.
const BAKE_LINE: &str = "parbake bake --layer \"$PARBAKE_LAYER\" --target \"$PARBAKE_TARGET\"";

pub fn render(dag: &Dag) -> String {
    let mut jobs = Mapping::new();
    // a layer's hash → the workflow job that bakes it (its own, or its matrix shard)
    let mut job_of: BTreeMap<String, String> = BTreeMap::new();
    for (i, level) in dag.levels().iter().enumerate() {
        if level.len() <= WIDE {
            for l in level {
                jobs.insert(s(&l.job), layer_job(dag, l, &job_of));
                job_of.insert(l.hash.clone(), l.job.clone());
            }
            continue;
        }
        for (k, shard) in shards(level, &job_of).into_iter().enumerate() {
            let id = format!("level-{}-shard-{}", i + 1, k + 1);
            jobs.insert(s(&id), matrix_job(dag, &shard, &job_of));
            for l in shard {
                job_of.insert(l.hash.clone(), id.clone());
            }
        }
    }
    for st in &dag.stacks {
        let top_job = job_of.get(&st.top).cloned().unwrap_or_default();
        jobs.insert(s(&st.verify.job), stack_job(dag, st, &st.verify, &top_job));
        if let Some(p) = &st.publish {
            jobs.insert(s(&p.job), stack_job(dag, st, p, &st.verify.job));
        }
    }
    yaml_document(&map(vec![
        ("name", s("parbake layers")),
        ("on", map(vec![("workflow_dispatch", map(vec![]))])),
        (
            "permissions",
            map(vec![("contents", s("read")), ("id-token", s("write"))]),
        ),
        ("jobs", Value::Mapping(jobs)),
    ]))
}

/// A level's layers in shards of at most [`MATRIX_MAX`], grouped by their parents' job.
pub fn shards<'a>(
    level: &[&'a DagLayer],
    job_of: &BTreeMap<String, String>,
) -> Vec<Vec<&'a DagLayer>> {
    let mut sorted: Vec<&DagLayer> = level.to_vec();
    sorted.sort_by_key(|l| parent_job(l, job_of).unwrap_or_default());
    sorted.chunks(MATRIX_MAX).map(|c| c.to_vec()).collect()
}

fn parent_job(l: &DagLayer, job_of: &BTreeMap<String, String>) -> Option<String> {
    l.parent.as_ref().and_then(|p| job_of.get(p)).cloned()
}

/// The steps every job starts with: the checkout, the team's parbake and Packer, and AWS
/// credentials by OIDC for the region (none on a target without one).
fn setup_steps(region: Option<Value>) -> Vec<Value> {
    let mut steps = vec![
        map(vec![("uses", s("actions/checkout@v5"))]),
        map(vec![
            ("name", s("parbake and Packer")),
            ("uses", s("./.github/actions/parbake-setup")),
        ]),
    ];
    if let Some(region) = region {
        steps.push(map(vec![
            ("uses", s("aws-actions/configure-aws-credentials@v6")),
            (
                "with",
                map(vec![
                    ("role-to-assume", s("${{ vars.PARBAKE_AWS_ROLE_ARN }}")),
                    ("aws-region", region),
                ]),
            ),
        ]));
    }
    steps
}

fn job(name: Value, needs: Vec<String>, steps: Vec<Value>, extra: Vec<(&str, Value)>) -> Value {
    let mut pairs = vec![("name", name), ("runs-on", s("ubuntu-latest"))];
    if !needs.is_empty() {
        pairs.push(("needs", list(needs)));
    }
    pairs.extend(extra);
    pairs.push(("steps", Value::Sequence(steps)));
    map(pairs)
}

fn bake_step(target: &str, layer: Value) -> Value {
    map(vec![
        ("name", s("bake the layer")),
        ("run", s(BAKE_LINE)),
        (
            "env",
            map(vec![
                ("PARBAKE_LAYER", layer),
                ("PARBAKE_TARGET", s(target)),
            ]),
        ),
    ])
}

fn layer_job(dag: &Dag, l: &DagLayer, job_of: &BTreeMap<String, String>) -> Value {
    let mut steps = setup_steps(l.region.as_deref().map(s));
    steps.push(bake_step(&dag.target.to_string(), s(&l.hash)));
    let name = format!("bake {} ({})", l.name, &l.hash[..12]);
    job(
        s(&name),
        parent_job(l, job_of).into_iter().collect(),
        steps,
        vec![],
    )
}

/// One shard of a wide level: a matrix over its layers. It runs unless the run was cancelled,
/// so one failed parent does not hold back the others' children: a child whose parent is
/// missing fails at once, naming it.
fn matrix_job(dag: &Dag, shard: &[&DagLayer], job_of: &BTreeMap<String, String>) -> Value {
    let mut needs: Vec<String> = shard.iter().filter_map(|l| parent_job(l, job_of)).collect();
    needs.dedup();
    let entries = shard
        .iter()
        .map(|l| {
            let mut pairs = vec![("hash", s(&l.hash)), ("name", s(&l.name))];
            if let Some(r) = &l.region {
                pairs.push(("region", s(r)));
            }
            map(pairs)
        })
        .collect();
    let region = shard[0]
        .region
        .as_ref()
        .map(|_| s("${{ matrix.layer.region }}"));
    let mut steps = setup_steps(region);
    steps.push(bake_step(
        &dag.target.to_string(),
        s("${{ matrix.layer.hash }}"),
    ));
    let mut extra = vec![(
        "strategy",
        map(vec![
            ("fail-fast", Value::Bool(false)),
            ("matrix", map(vec![("layer", Value::Sequence(entries))])),
        ]),
    )];
    if !needs.is_empty() {
        extra.insert(0, ("if", s("${{ !cancelled() }}")));
    }
    job(s("bake ${{ matrix.layer.name }}"), needs, steps, extra)
}

/// A stack's verify or publish job.
fn stack_job(dag: &Dag, st: &DagStack, j: &DagJob, needs: &str) -> Value {
    let verb = &j.command[1];
    let mut steps = setup_steps(st.region.as_deref().map(s));
    let mut env: Vec<(&str, Value)> = stack_env(st).into_iter().map(|(k, v)| (k, s(v))).collect();
    env.insert(1, ("PARBAKE_TARGET", s(&dag.target.to_string())));
    let mut name = format!("{verb} {}", st.stack);
    if let Some(a) = &st.arch {
        name.push_str(&format!(" {a}"));
    }
    steps.push(map(vec![
        ("name", s(verb)),
        ("run", s(&stack_line(verb, st))),
        ("env", map(env)),
    ]));
    job(s(&name), vec![needs.to_string()], steps, vec![])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::tests::wide;

    fn jobs(text: &str) -> Mapping {
        let v: Value = serde_yaml::from_str(text).unwrap();
        v["jobs"].as_mapping().unwrap().clone()
    }

    #[test]
    fn a_narrow_dag_is_one_job_per_layer_with_its_parent_in_needs() {
        let dag = wide(2, 3);
        let j = jobs(&render(&dag));
        assert_eq!(j.len(), 8);
        let child = &dag.layers[1];
        assert_eq!(
            j[child.job.as_str()]["needs"][0].as_str(),
            Some(dag.layers[0].job.as_str())
        );
        assert!(j[dag.layers[0].job.as_str()].get("needs").is_none());
    }

    #[test]
    fn a_wide_level_is_sharded_under_the_matrix_limit_and_keeps_every_edge() {
        // 300 bases with 2 stack layers each: level 1 has 300 layers, level 2 has 600
        let dag = wide(300, 2);
        let j = jobs(&render(&dag));
        assert_eq!(j.len(), 2 + 3, "300 in 2 shards, 600 in 3");
        every_layer_once_with_its_parent(&dag, &j);
        for (id, job) in &j {
            assert_eq!(job["strategy"]["fail-fast"], Value::Bool(false), "{id:?}");
        }
        let level2 = &j["level-2-shard-1"];
        assert_eq!(level2["if"].as_str(), Some("${{ !cancelled() }}"));
        assert!(j["level-1-shard-1"].get("if").is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Whatever the DAG's width, every layer is baked by one job, no matrix passes 256,
        /// and every stack layer's job needs its parent's.
        #[test]
        fn any_width_keeps_every_layer_and_edge(bases in 1usize..600, per_base in 0usize..3) {
            let dag = wide(bases, per_base);
            every_layer_once_with_its_parent(&dag, &jobs(&render(&dag)));
        }
    }

    /// Each layer in exactly one job (its own or a shard's), shards within the limit, and
    /// each child's job needing its parent's.
    fn every_layer_once_with_its_parent(dag: &Dag, j: &Mapping) {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (id, job) in j {
            let id = id.as_str().unwrap().to_string();
            match job["strategy"]["matrix"]["layer"].as_sequence() {
                Some(entries) => {
                    assert!(entries.len() <= MATRIX_MAX, "{id}: {}", entries.len());
                    for e in entries {
                        let h = e["hash"].as_str().unwrap().to_string();
                        assert!(seen.insert(h, id.clone()).is_none(), "a layer twice");
                    }
                }
                None => {
                    if let Some(l) = dag.layers.iter().find(|l| l.job == id) {
                        assert!(seen.insert(l.hash.clone(), id.clone()).is_none());
                    }
                }
            }
        }
        assert_eq!(seen.len(), dag.layers.len(), "every layer once");
        for l in dag.layers.iter().filter(|l| l.parent.is_some()) {
            let parent_job = &seen[l.parent.as_ref().unwrap()];
            let needs: Vec<&str> = j[seen[&l.hash].as_str()]["needs"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap())
                .collect();
            assert!(
                needs.contains(&parent_job.as_str()),
                "{} lost its parent",
                l.name
            );
        }
    }
}
