//! `bake --all --emit ENGINE`: the layer DAG of `bake --all`'s plan as a CI engine's pipeline
//! (GitHub Actions, GitLab CI) or as JSON. parbake does not schedule here, it hands the DAG
//! over: each layer is one job running `parbake bake --layer HASH --target T`, its parent's job
//! is in its `needs:`, and each stack's verify and publish jobs follow its top layer.
//!
//! Pure: the [`Dag`] is made from `bake --all`'s graph and rendered as serde values, then
//! serialized. No user value is formatted into the documents: job ids are made of names that
//! `config::names` validated and hex hashes, and are checked again here ([`job_id`]); the
//! values a job's shell line needs (the hash, the stack) reach it as environment variables.

pub mod github;
pub mod gitlab;

use serde::Serialize;

use crate::bake::all::Node;
use crate::plan::Target;

/// The `format` of the JSON form; bumped only when a field changes meaning or goes away.
pub const JSON_FORMAT: u32 = 1;

/// The engines `--emit` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    GithubActions,
    Gitlab,
    Json,
}

/// One layer's job.
#[derive(Debug, Clone, Serialize)]
pub struct DagLayer {
    pub job: String,
    pub hash: String,
    pub name: String,
    /// The parent layer's hash (a stack layer's base); None for a base layer.
    pub parent: Option<String>,
    pub image: String,
    /// The architecture it is baked for (aws).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub stacks: Vec<String>,
    /// 1 for a layer without a parent, its parent's level + 1 otherwise.
    pub level: usize,
    /// The region its AMI is baked in (aws), for the job's credentials.
    pub region: Option<String>,
    pub command: Vec<String>,
    /// The jobs it needs: its parent's.
    pub needs: Vec<String>,
}

/// A stack's verify job, and its publish job when the stack publishes.
#[derive(Debug, Clone, Serialize)]
pub struct DagStack {
    pub stack: String,
    /// The architecture, when the stack's image bakes several: a verify and publish each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// The hash of the stack's top layer, the image verify launches.
    pub top: String,
    pub region: Option<String>,
    pub verify: DagJob,
    pub publish: Option<DagJob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DagJob {
    pub job: String,
    pub command: Vec<String>,
    pub needs: Vec<String>,
}

/// The whole DAG, in the JSON form's stable shape.
#[derive(Debug, Clone, Serialize)]
pub struct Dag {
    pub format: u32,
    pub target: Target,
    pub layers: Vec<DagLayer>,
    pub stacks: Vec<DagStack>,
}

/// What the plan alone does not say: each image's region and which stacks publish.
pub struct Facts<'a> {
    pub region: &'a dyn Fn(&str) -> Option<String>,
    pub publishes: &'a dyn Fn(&str) -> bool,
}

/// The longest job id: `layer-`, the longest layer name (two names of
/// `config::names::NAME_MAX` joined), `-` and 12 hash digits fit.
pub const JOB_ID_MAX: usize = 160;

/// A job id both engines accept, made of a validated name: letters, digits, `-` and `_`,
/// starting with a letter. Anything else is a bug upstream (names are validated at load).
pub fn job_id(parts: &[&str]) -> Result<String, String> {
    let id = parts.join("-");
    let ok = id.len() <= JOB_ID_MAX
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(id)
    } else {
        Err(format!("`{id}` is not a safe CI job id"))
    }
}

fn layer_command(target: Target, hash: &str) -> Vec<String> {
    let t = target.to_string();
    ["parbake", "bake", "--layer", hash, "--target", &t]
        .map(String::from)
        .to_vec()
}

fn stack_command(verb: &str, target: Target, stack: &str, arch: Option<&str>) -> Vec<String> {
    let t = target.to_string();
    let mut c: Vec<String> = ["parbake", verb, stack, "--target", &t]
        .map(String::from)
        .to_vec();
    if let Some(a) = arch {
        c.extend(["--arch".to_string(), a.to_string()]);
    }
    c
}

impl Dag {
    /// The DAG of `bake --all`'s graph: one job per distinct layer, then per stack.
    pub fn from_nodes(nodes: &[Node], target: Target, facts: &Facts) -> Result<Dag, String> {
        let mut layers: Vec<DagLayer> = Vec::with_capacity(nodes.len());
        for n in nodes {
            let parent = n.parent.map(|p| &layers[p]);
            let job = job_id(&["layer", &n.layer.name, n.layer.short_hash()])?;
            layers.push(DagLayer {
                job,
                hash: n.layer.hash.clone(),
                name: n.layer.name.clone(),
                parent: parent.map(|p| p.hash.clone()),
                image: n.plan.image.clone(),
                arch: n.plan.arch.clone(),
                stacks: n.stacks.clone(),
                level: parent.map_or(1, |p| p.level + 1),
                region: (facts.region)(&n.plan.image),
                command: layer_command(target, &n.layer.hash),
                needs: parent.map(|p| p.job.clone()).into_iter().collect(),
            });
        }
        let stacks = stacks_of(nodes, &layers, target, facts)?;
        Ok(Dag {
            format: JSON_FORMAT,
            target,
            layers,
            stacks,
        })
    }

    /// The layers of each level, in order: level 1 first.
    pub fn levels(&self) -> Vec<Vec<&DagLayer>> {
        let depth = self.layers.iter().map(|l| l.level).max().unwrap_or(0);
        (1..=depth)
            .map(|d| self.layers.iter().filter(|l| l.level == d).collect())
            .collect()
    }

    pub fn layer(&self, hash: &str) -> Option<&DagLayer> {
        self.layers.iter().find(|l| l.hash == hash)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the DAG serializes") + "\n"
    }
}

/// Each stack's top layer (the deepest layer that lists it), its verify and publish jobs.
fn stacks_of(
    nodes: &[Node],
    layers: &[DagLayer],
    target: Target,
    facts: &Facts,
) -> Result<Vec<DagStack>, String> {
    let mut names: Vec<&String> = nodes.iter().flat_map(|n| &n.stacks).collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for stack in names {
        let mine: Vec<&DagLayer> = layers.iter().filter(|l| l.stacks.contains(stack)).collect();
        let mut arches: Vec<Option<&String>> = mine.iter().map(|l| l.arch.as_ref()).collect();
        arches.sort();
        arches.dedup();
        let several = arches.len() > 1;
        for arch in arches {
            let Some(top) = mine
                .iter()
                .filter(|l| l.arch.as_ref() == arch)
                .max_by_key(|l| l.level)
            else {
                continue;
            };
            let arch = arch.filter(|_| several).cloned();
            out.push(stack_jobs(stack, arch, top, target, facts)?);
        }
    }
    Ok(out)
}

/// One stack's (one architecture's) verify job on its top layer, and its publish job.
fn stack_jobs(
    stack: &str,
    arch: Option<String>,
    top: &DagLayer,
    target: Target,
    facts: &Facts,
) -> Result<DagStack, String> {
    let id = |verb: &str| match &arch {
        Some(a) => job_id(&[verb, stack, a]),
        None => job_id(&[verb, stack]),
    };
    let verify = DagJob {
        job: id("verify")?,
        command: stack_command("verify", target, stack, arch.as_deref()),
        needs: vec![top.job.clone()],
    };
    let publish = (facts.publishes)(stack)
        .then(|| -> Result<DagJob, String> {
            Ok(DagJob {
                job: id("publish")?,
                command: stack_command("publish", target, stack, arch.as_deref()),
                needs: vec![verify.job.clone()],
            })
        })
        .transpose()?;
    Ok(DagStack {
        stack: stack.to_string(),
        arch,
        top: top.hash.clone(),
        region: top.region.clone(),
        verify,
        publish,
    })
}

/// The document for an engine, as text.
pub fn render(dag: &Dag, engine: Engine) -> String {
    match engine {
        Engine::Json => dag.to_json(),
        Engine::GithubActions => github::render(dag),
        Engine::Gitlab => gitlab::render(dag),
    }
}

/// A YAML document with a comment on top saying where it comes from (fixed text).
pub(crate) fn yaml_document(value: &serde_yaml::Value) -> String {
    let body = serde_yaml::to_string(value).expect("the pipeline serializes");
    format!(
        "# Generated by `parbake bake --all --emit`: the layer DAG of `bake --all`'s plan.\n\
         # Do not edit; emit it again when the plan changes (docs/nightly.md).\n{body}"
    )
}

/// The shell line of a stack's verify or publish job; its values come from the job's
/// environment ([`stack_env`], and `PARBAKE_TARGET`).
fn stack_line(verb: &str, st: &DagStack) -> String {
    let mut line = format!("parbake {verb} \"$PARBAKE_STACK\" --target \"$PARBAKE_TARGET\"");
    if st.arch.is_some() {
        line.push_str(" --arch \"$PARBAKE_ARCH\"");
    }
    line
}

/// The environment a stack's job sets for [`stack_line`]: the stack, and its architecture
/// when it is one architecture's job.
fn stack_env(st: &DagStack) -> Vec<(&'static str, &str)> {
    let mut env = vec![("PARBAKE_STACK", st.stack.as_str())];
    env.extend(st.arch.as_deref().map(|a| ("PARBAKE_ARCH", a)));
    env
}

/// A YAML string.
fn s(v: &str) -> serde_yaml::Value {
    serde_yaml::Value::String(v.to_string())
}

/// A YAML mapping of the pairs, in their order.
fn map(pairs: Vec<(&str, serde_yaml::Value)>) -> serde_yaml::Value {
    let mut m = serde_yaml::Mapping::new();
    for (k, v) in pairs {
        m.insert(s(k), v);
    }
    serde_yaml::Value::Mapping(m)
}

/// A YAML sequence of strings.
fn list(items: impl IntoIterator<Item = String>) -> serde_yaml::Value {
    serde_yaml::Value::Sequence(items.into_iter().map(serde_yaml::Value::String).collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic DAG: `bases` base layers, each with `per_base` stack layers.
    pub fn wide(bases: usize, per_base: usize) -> Dag {
        let mut layers = Vec::new();
        for b in 0..bases {
            let hash = format!("{:064x}", b);
            let job = job_id(&["layer", &format!("img{b}"), &hash[..12]]).unwrap();
            layers.push(layer(&job, &hash, None, 1, Vec::new()));
            for s in 0..per_base {
                let h = format!("{:064x}", 1_000_000 + b * 1000 + s);
                let j = job_id(&["layer", &format!("img{b}-s{s}"), &h[..12]]).unwrap();
                layers.push(layer(&j, &h, Some(hash.clone()), 2, vec![job.clone()]));
            }
        }
        Dag {
            format: JSON_FORMAT,
            target: Target::Aws,
            layers,
            stacks: Vec::new(),
        }
    }

    fn layer(
        job: &str,
        hash: &str,
        parent: Option<String>,
        level: usize,
        needs: Vec<String>,
    ) -> DagLayer {
        DagLayer {
            job: job.into(),
            hash: hash.into(),
            name: job.into(),
            parent,
            image: "img".into(),
            arch: None,
            stacks: Vec::new(),
            level,
            region: Some("us-east-1".into()),
            command: layer_command(Target::Aws, hash),
            needs,
        }
    }

    #[test]
    fn job_ids_refuse_what_an_engine_would_not_take() {
        assert_eq!(
            job_id(&["layer", "debian12-web", "ab12"]).unwrap(),
            "layer-debian12-web-ab12"
        );
        for bad in ["a b", "x:y", "${{ x }}", "\"q\"", "é"] {
            assert!(job_id(&["layer", bad]).is_err(), "{bad}");
        }
        assert!(job_id(&["1layer"]).is_err());
        assert!(job_id(&[&"a".repeat(JOB_ID_MAX + 1)]).is_err());
        let longest = format!("{0}-{0}", "n".repeat(crate::config::names::NAME_MAX));
        assert!(job_id(&["layer", &longest, &"f".repeat(12)]).is_ok());
    }

    proptest::proptest! {
        /// Whatever a name holds, an accepted job id is plain: safe characters only, and a
        /// YAML key that reads back as itself.
        #[test]
        fn an_accepted_job_id_is_plain(s in "(\\PC{0,30})|([a-zA-Z0-9_:#'\" ${}{}.-]{0,30})") {
            if let Ok(id) = job_id(&["layer", &s]) {
                proptest::prop_assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
                let mut m = serde_yaml::Mapping::new();
                m.insert(serde_yaml::Value::String(id.clone()), serde_yaml::Value::Null);
                let text = serde_yaml::to_string(&m).unwrap();
                proptest::prop_assert!(text.starts_with(&format!("{id}:")), "{}", text);
            }
        }
    }

    #[test]
    fn levels_put_parents_before_children() {
        let dag = wide(3, 2);
        let levels = dag.levels();
        assert_eq!(levels.len(), 2);
        assert_eq!((levels[0].len(), levels[1].len()), (3, 6));
    }
}
