//! The DAG as a GitLab CI pipeline: one job per layer in the `layers` stage, its parent's job
//! in `needs:` (a base needs nothing and starts at once), then each stack's verify and publish.
//! AWS credentials come by OIDC: a job's ID token is written to a file the SDK reads
//! (`AWS_WEB_IDENTITY_TOKEN_FILE`) with the role the team sets as `PARBAKE_AWS_ROLE_ARN`.

use serde_yaml::{Mapping, Value};

use super::{list, map, s, stack_env, stack_line, yaml_document, Dag, DagJob, DagLayer, DagStack};

const BAKE_LINE: &str = "parbake bake --layer \"$PARBAKE_LAYER\" --target \"$PARBAKE_TARGET\"";
const TOKEN_LINES: [&str; 2] = [
    "export AWS_WEB_IDENTITY_TOKEN_FILE=\"$(mktemp)\"",
    "printf '%s' \"$PARBAKE_AWS_ID_TOKEN\" > \"$AWS_WEB_IDENTITY_TOKEN_FILE\"",
];

pub fn render(dag: &Dag) -> String {
    let mut doc = Mapping::new();
    doc.insert(
        s("stages"),
        list(["layers", "verify", "publish"].map(String::from)),
    );
    doc.insert(
        s("variables"),
        map(vec![
            ("PARBAKE_TARGET", s(&dag.target.to_string())),
            ("AWS_ROLE_ARN", s("$PARBAKE_AWS_ROLE_ARN")),
        ]),
    );
    doc.insert(
        s("default"),
        map(vec![
            (
                "id_tokens",
                map(vec![(
                    "PARBAKE_AWS_ID_TOKEN",
                    map(vec![("aud", s("sts.amazonaws.com"))]),
                )]),
            ),
            ("before_script", list(TOKEN_LINES.map(String::from))),
        ]),
    );
    for l in &dag.layers {
        doc.insert(s(&l.job), layer_job(l));
    }
    for st in &dag.stacks {
        doc.insert(s(&st.verify.job), stack_job(st, &st.verify, "verify"));
        if let Some(p) = &st.publish {
            doc.insert(s(&p.job), stack_job(st, p, "publish"));
        }
    }
    yaml_document(&Value::Mapping(doc))
}

fn variables(pairs: Vec<(&str, &str)>, region: Option<&str>) -> Value {
    let mut v: Vec<(&str, Value)> = pairs.into_iter().map(|(k, x)| (k, s(x))).collect();
    if let Some(r) = region {
        v.push(("AWS_REGION", s(r)));
    }
    map(v)
}

fn layer_job(l: &DagLayer) -> Value {
    map(vec![
        ("stage", s("layers")),
        ("needs", list(l.needs.clone())),
        (
            "variables",
            variables(vec![("PARBAKE_LAYER", &l.hash)], l.region.as_deref()),
        ),
        ("script", list([BAKE_LINE.to_string()])),
    ])
}

fn stack_job(st: &DagStack, j: &DagJob, verb: &str) -> Value {
    map(vec![
        ("stage", s(verb)),
        ("needs", list(j.needs.clone())),
        ("variables", variables(stack_env(st), st.region.as_deref())),
        ("script", list([stack_line(verb, st)])),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::tests::wide;

    #[test]
    fn every_layer_is_a_job_needing_its_parent() {
        let dag = wide(2, 2);
        let v: Value = serde_yaml::from_str(&render(&dag)).unwrap();
        for l in &dag.layers {
            let needs = v[l.job.as_str()]["needs"].as_sequence().unwrap();
            assert_eq!(needs.len(), usize::from(l.parent.is_some()));
            assert_eq!(
                v[l.job.as_str()]["variables"]["PARBAKE_LAYER"].as_str(),
                Some(l.hash.as_str())
            );
        }
    }
}
