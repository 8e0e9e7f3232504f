//! plan: which roles bake in which layer, which run at launch, and each layer's content hash.
//! Pure: no I/O and no clock. Inputs are a loaded [`Project`] and a [`PlanRequest`].

pub mod budget;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Located, Project, Role, SourceFile, Vars};
use crate::contract as runtime;

pub const PARBAKE_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Qemu,
    Aws,
}

impl Target {
    pub const ALL: [Target; 2] = [Target::Qemu, Target::Aws];
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        Target::ALL
            .into_iter()
            .find(|t| t.to_string() == s)
            .ok_or_else(|| format!("unknown target `{s}` (qemu or aws)"))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Qemu => "qemu",
            Target::Aws => "aws",
        })
    }
}

#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub stack: String,
    /// `--promote` flags, added to the stack's default `promote:` list.
    pub promote: Vec<String>,
    pub target: Target,
    /// The resolved identity of the source image (an AMI id, a disk checksum). When None the
    /// declared source (owners and name pattern, path and checksum) stands in for it.
    pub source_identity: Option<String>,
}

impl PlanRequest {
    /// The `parbake bake` command line that bakes this request's layers (for hints).
    pub fn bake_command(&self) -> String {
        let mut s = format!("parbake bake {} --target {}", self.stack, self.target);
        for p in &self.promote {
            s.push_str(&format!(" --promote {p}"));
        }
        s
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("cannot promote launch-only role `{role}`")]
    PromoteLaunchOnly { role: String, image: String },
    #[error("cannot promote `{role}`: it depends on launch-only role `{dep}` (via {})", .chain.join(" → "))]
    PromoteDependsOnLaunchOnly {
        role: String,
        dep: String,
        chain: Vec<String>,
    },
    #[error("basic role `{role}` depends on launch-only role `{dep}` (via {})", .chain.join(" → "))]
    BasicDependsOnLaunchOnly {
        role: String,
        dep: String,
        chain: Vec<String>,
    },
    #[error("dependency cycle between roles: {}", .cycle.join(" → "))]
    Cycle { cycle: Vec<String> },
    /// A meta dependency chain longer than [`MAX_DEPENDENCY_DEPTH`] roles, located at the
    /// `dependencies:` entry that makes it too long.
    #[error("{0}")]
    TooDeep(Box<Located>),
    /// A role the stack needs (a dependency of a basic, stack or promoted role) is missing from
    /// the image's `installed` list, located at that list.
    #[error("{0}")]
    NotInstalled(Box<Located>),
    #[error("cannot promote `{role}`: it is not one of stack `{stack}`'s roles")]
    NotInStack {
        role: String,
        stack: String,
        roles: Vec<String>,
    },
    #[error("unknown role `{role}`")]
    UnknownRole { role: String, known: Vec<String> },
    /// `include_role`/`import_role` of a role that is not in the project, or not installed
    /// on the image, located at the task.
    #[error("{0}")]
    BadInclude(Box<Located>),
    /// A vendored collection that the image's ansible-core cannot run.
    #[error("{message}")]
    Ansible { message: String, hint: String },
    /// An unknown stack or image: the same error `config` gives.
    #[error(transparent)]
    Config(Box<crate::config::ConfigError>),
    #[error("image `{image}` has no `{target}` source")]
    NoSource { image: String, target: Target },
}

impl PlanError {
    pub fn hints(&self) -> Vec<String> {
        match self {
            PlanError::PromoteLaunchOnly { image, .. } => vec![format!(
                "launch-only roles do instance-specific work and always run at boot; they are listed under `launch_only` in images/{image}.yml"
            )],
            PlanError::PromoteDependsOnLaunchOnly { dep, .. } => vec![format!(
                "a baked role cannot depend on `{dep}`, which only runs at boot; move that dependency out of the role's meta/main.yml or stop promoting it"
            )],
            PlanError::BasicDependsOnLaunchOnly { .. } => {
                vec!["a basic role is baked, so none of its dependencies may be launch-only".into()]
            }
            PlanError::Cycle { .. } => vec![
                "Ansible would loop or dedupe unpredictably; remove one `dependencies:` entry in the roles' meta/main.yml".into(),
            ],
            PlanError::TooDeep(at) | PlanError::NotInstalled(at) | PlanError::BadInclude(at) => {
                at.hints.clone()
            }
            PlanError::NotInStack { roles, .. } => {
                vec![format!("roles of this stack (with dependencies): {}", roles.join(", "))]
            }
            PlanError::UnknownRole { role, known } => {
                crate::config::did_you_mean(role, known, "role")
            }
            PlanError::Config(e) => e.hints(),
            PlanError::Ansible { hint, .. } => vec![hint.clone()],
            PlanError::NoSource { image, target } => vec![format!(
                "add `sources.{target}` to images/{image}.yml, or choose another --target"
            )],
        }
    }

    /// The offending line with a caret, for the errors located in a file.
    pub fn snippet(&self) -> Option<String> {
        match self {
            PlanError::TooDeep(at) | PlanError::NotInstalled(at) | PlanError::BadInclude(at) => {
                crate::config::ConfigError::At(at.clone()).snippet()
            }
            PlanError::Config(e) => e.snippet(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    Base,
    Stack,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Layer {
    /// 1 for the base layer, 2 for the stack layer.
    pub index: u8,
    pub kind: LayerKind,
    /// `debian12` for a base layer, `debian12-web` for a stack layer.
    pub name: String,
    /// `source:<identity>` for layer 1, `layer:<hash>` for layer 2.
    pub parent: String,
    /// Roles this layer runs, in dependency order.
    pub runs: Vec<String>,
    /// Every role baked into the image once this layer is done (its parents' too).
    pub baked: Vec<String>,
    /// Bake-time vars this layer's roles see (part of the hash).
    pub vars: Vars,
    /// Roles whose packages this layer downloads for later launch (`stage_apt`), with the packages.
    pub stage_apt: BTreeMap<String, Vec<String>>,
    /// Roles whose wheels this layer downloads for later launch (`stage_pip`), with the
    /// requirements. Like `stage_apt`, part of the hash through the roles' content.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_pip: BTreeMap<String, Vec<String>>,
    /// `sha256` hex of the layer's inputs: the cache key.
    pub hash: String,
    /// `sha256` hex of what decides the result of running this layer's roles: the parent's
    /// run hash (or the source), the content of the roles run and of every role they resolve
    /// (meta dependencies, literal include/import), the bake vars, what it stages, the
    /// template and source settings, the runtime and parbake's version. A role that only
    /// rides along on the image (installed, not run here) is not in it.
    pub run_hash: String,
    /// `sha256` hex of the files every image carries for launch: every installed role, the
    /// vendored collections, the runtime and parbake's version.
    pub payload_hash: String,
    /// A readable summary of the inputs behind `hash` (role hashes, digests of vars, template
    /// and source settings), kept with each baked layer so a rebake can say what changed.
    #[serde(skip)]
    pub inputs: Inputs,
}

/// Input name → value or short digest, e.g. `role nginx` → 16 hex digits of its content hash.
pub type Inputs = BTreeMap<String, String>;

/// What changed between the inputs of an earlier bake of a layer and today's, in words.
/// Pure; empty when nothing did (a rebake forced, or a lost store entry).
pub fn changed_inputs(before: &Inputs, now: &Inputs) -> Vec<String> {
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = before.keys().chain(now.keys()).collect();
    for k in keys {
        let (a, b) = (before.get(k), now.get(k));
        if a == b {
            continue;
        }
        let what = match k.strip_prefix("role ") {
            Some(role) => match (a, b) {
                (None, _) => format!("role {role} added"),
                (_, None) => format!("role {role} removed"),
                _ => format!("role {role} changed"),
            },
            None => match k.as_str() {
                "parent" => match (a, b) {
                    (Some(a), Some(b)) if b.starts_with("layer:") => format!(
                        "parent layer changed ({} → {})",
                        short(a.trim_start_matches("layer:")),
                        short(b.trim_start_matches("layer:"))
                    ),
                    (Some(a), Some(b)) => format!(
                        "source image changed ({} → {})",
                        a.trim_start_matches("source:"),
                        b.trim_start_matches("source:")
                    ),
                    _ => "parent changed".into(),
                },
                "runs" => format!(
                    "roles run changed ({} → {})",
                    a.map_or("-", |s| s),
                    b.map_or("-", |s| s)
                ),
                "vars" => "bake vars changed".into(),
                "template" => "Packer template changed".into(),
                "source settings" => "source settings changed".into(),
                "parbake" => format!(
                    "parbake version changed ({} → {})",
                    a.map_or("-", |s| s),
                    b.map_or("-", |s| s)
                ),
                "runtime" => "parbake runtime (runner, callback) changed".into(),
                other => format!("{other} changed"),
            },
        };
        out.push(what);
    }
    out
}

/// The 16-hex prefix of a role's content hash, as the AMI tags carry it.
pub fn role_prefix(hash: &str) -> String {
    let h = hash.trim_start_matches("sha256:");
    h[..16.min(h.len())].to_string()
}

/// The layer inputs an AMI tag can hold (`parbake:inputs`): everything but the role hashes
/// (in `parbake:installed-N`), the parent and the version (their own tags).
pub const TAGGED_INPUTS: [&str; 7] = [
    "runs",
    "vars",
    "template",
    "source settings",
    "runtime",
    "ansible-core",
    "collections",
];

pub fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

impl Layer {
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Promotion {
    pub role: String,
    /// None: promoted explicitly. Some(r): pulled in as a dependency of promoted role r.
    pub required_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LaunchRole {
    pub name: String,
    pub hash: String,
    pub launch_only: bool,
    /// Packages staged on the image for this role; empty means it reaches a mirror if it installs any.
    pub staged_apt: Vec<String>,
    /// Python requirements whose wheels are staged on the image for this role (`stage_pip`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub staged_pip: Vec<String>,
    /// Whether it can run with no network, from what it stages and the modules of its tasks.
    pub offline: bool,
    /// Why: what is staged, or what reaches the network (`offline_verdict`).
    pub offline_reason: String,
    /// Collections its tasks use (`namespace.collection` of their fully qualified modules).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub parbake_version: String,
    pub target: Target,
    pub image: String,
    pub stack: String,
    pub layers: Vec<Layer>,
    pub promoted: Vec<Promotion>,
    pub launch: Vec<LaunchRole>,
    /// Role name → content hash of every role installed on the image.
    pub installed: BTreeMap<String, String>,
    /// Vars the launch roles see: bake vars plus launch vars (secrets as references).
    pub launch_vars: Vars,
    /// The bootstrap tags its EC2 instance with the launch result (`sources.aws.status_tag`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub status_tag: bool,
    /// The stack's `launch_timeout`, in seconds (the launch spec carries it).
    pub launch_timeout_s: u64,
    /// The stack's `launch_facts` (`gather_subset`), where it sets one; empty: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_facts: Option<Vec<String>>,
    /// The stack's health checks, probed on the instance after the launch roles.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::contract::spec::Check>,
    pub notes: Vec<String>,
    /// What parbake cannot check and the reader should: templated include names, includes
    /// that a baked role's shim turns into no-ops. Each starts with `file:line:`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The ansible-core the image pins (`ansible.core`); None runs the distribution's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ansible_core: Option<String>,
    /// Vendored collections installed on the image (`namespace.name` → version).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub collections: BTreeMap<String, String>,
    /// Set when the source image's identity was not known to the planner (the declared source
    /// stood in for it): the layer hashes are not the ones a bake will compute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisional: Option<String>,
}

impl Plan {
    /// The layer a stack instance boots from: the stack layer if any, else the base.
    pub fn top(&self) -> &Layer {
        self.layers
            .last()
            .expect("a plan has at least the base layer")
    }
    pub fn baked(&self) -> &[String] {
        &self.top().baked
    }
}

/// What goes into a layer hash. Serialized as canonical JSON (sorted maps) and hashed.
#[derive(Serialize)]
struct HashInputs<'a> {
    parbake_version: &'a str,
    runtime: String,
    target: Target,
    kind: LayerKind,
    parent: &'a str,
    installed: &'a BTreeMap<String, String>,
    runs: &'a [String],
    vars: &'a Vars,
    template: String,
    source: serde_json::Value,
    /// The pinned ansible-core (`ansible.core`), absent when the image runs the distribution's.
    #[serde(skip_serializing_if = "Option::is_none")]
    ansible_core: Option<&'a str>,
    /// The content hash of the vendored collections, absent without any.
    #[serde(skip_serializing_if = "Option::is_none")]
    collections: Option<&'a str>,
}

/// What the run hash covers (see [`Layer::run_hash`]).
#[derive(Serialize)]
struct RunInputs<'a> {
    parbake_version: &'a str,
    runtime: &'a str,
    target: Target,
    kind: LayerKind,
    /// The source identity (`source:…`) for a base layer, the parent's run hash (`run:…`) for
    /// a stack layer.
    parent: &'a str,
    runs: &'a [String],
    /// Content hash of each role the run resolves, by name.
    roles: BTreeMap<&'a str, &'a str>,
    vars: &'a Vars,
    stage_apt: &'a BTreeMap<String, Vec<String>>,
    stage_pip: &'a BTreeMap<String, Vec<String>>,
    template: &'a str,
    source: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    ansible_core: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collections: Option<&'a str>,
}

/// What the payload hash covers (see [`Layer::payload_hash`]).
#[derive(Serialize)]
struct PayloadInputs<'a> {
    parbake_version: &'a str,
    runtime: &'a str,
    installed: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collections: Option<&'a str>,
}

/// The roles whose content decides what running `runs` does: the run roles, every role their
/// meta dependencies resolve to (basic ones too: a shim keeps their defaults, handlers and
/// files), and every role their tasks include or import by a literal name, transitively.
fn run_closure<'p>(project: &'p Project, runs: &[String]) -> BTreeMap<&'p str, &'p str> {
    let mut out: BTreeMap<&'p str, &'p str> = BTreeMap::new();
    let mut todo: Vec<&str> = runs.iter().map(String::as_str).collect();
    while let Some(name) = todo.pop() {
        let Some((key, role)) = project.roles.get_key_value(name) else {
            continue;
        };
        if out.insert(key.as_str(), role.hash.as_str()).is_some() {
            continue;
        }
        todo.extend(role.deps.iter().map(String::as_str));
        todo.extend(role.refs.roles.iter().map(|r| r.role.as_str()));
    }
    out
}

fn json_digest16<T: Serialize>(v: &T) -> String {
    sha256_hex(&serde_json::to_vec(v).expect("serializes"))[..16].to_string()
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The longest meta dependency chain parbake accepts, in roles (the first one included).
///
/// Ansible 2.14 takes time exponential in the depth of a meta dependency chain: a chain of 15
/// one-task roles runs in about 12 s, 17 in 33 s, 20 in over two minutes. 16 keeps a bake or a
/// launch within seconds of that cost; real roles nest a handful deep.
pub const MAX_DEPENDENCY_DEPTH: usize = 16;

fn role<'p>(project: &'p Project, name: &str) -> Result<&'p Role, PlanError> {
    project
        .roles
        .get(name)
        .ok_or_else(|| PlanError::UnknownRole {
            role: name.to_string(),
            known: project.roles.keys().cloned().collect(),
        })
}

/// Dependency-first order of `roots` and everything they depend on. Roots keep their given
/// order where dependencies allow. Errors on cycles, unknown roles and chains deeper than
/// [`MAX_DEPENDENCY_DEPTH`]. Iterative, and linear in roles plus dependencies.
pub fn dependency_order(project: &Project, roots: &[String]) -> Result<Vec<String>, PlanError> {
    order_roles(project, roots, |r| {
        r.deps.iter().map(String::as_str).collect()
    })
}

/// [`dependency_order`], then the roles that a role of the result includes or imports by a
/// literal name (and that are in the result) ordered before it, as meta dependencies are. An
/// included role is not added: it runs where it is included, not on its own.
pub fn run_order(project: &Project, roots: &[String]) -> Result<Vec<String>, PlanError> {
    let closure = dependency_order(project, roots)?;
    let members: BTreeSet<&str> = closure.iter().map(String::as_str).collect();
    order_roles(project, &closure, |r| {
        let included = r.refs.roles.iter().map(|i| i.role.as_str());
        r.deps
            .iter()
            .map(String::as_str)
            .chain(included.filter(|i| members.contains(i)))
            .collect()
    })
}

/// Depth-first order of `roots` over `edges`: every role after the roles it has edges to.
fn order_roles<'p>(
    project: &'p Project,
    roots: &[String],
    edges: impl Fn(&'p Role) -> Vec<&'p str>,
) -> Result<Vec<String>, PlanError> {
    let mut order = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for root in roots {
        if done.contains(root.as_str()) {
            continue;
        }
        // the current chain from `root`: each role, its edges, and the index of the next
        let first = role(project, root)?;
        let mut path: Vec<(&Role, Vec<&str>, usize)> = vec![(first, edges(first), 0)];
        let mut on_path: BTreeSet<&str> = BTreeSet::from([first.name.as_str()]);
        while let Some((r, out, next)) = path.last_mut() {
            let r: &Role = r;
            let Some(dep) = out.get(*next).copied() else {
                path.pop();
                on_path.remove(r.name.as_str());
                done.insert(r.name.as_str());
                order.push(r.name.clone());
                continue;
            };
            *next += 1;
            if done.contains(dep) {
                continue;
            }
            if on_path.contains(dep) {
                let pos = path.iter().position(|(p, _, _)| p.name == dep).unwrap_or(0);
                let mut cycle: Vec<String> =
                    path[pos..].iter().map(|(p, _, _)| p.name.clone()).collect();
                cycle.push(dep.to_string());
                return Err(PlanError::Cycle { cycle });
            }
            if path.len() >= MAX_DEPENDENCY_DEPTH {
                let names: Vec<&str> = path.iter().map(|(p, _, _)| p.name.as_str()).collect();
                return Err(too_deep(r, &names, dep));
            }
            let next_role = role(project, dep)?;
            path.push((next_role, edges(next_role), 0));
            on_path.insert(next_role.name.as_str());
        }
    }
    Ok(order)
}

/// `a → b → c`, with the middle left out of a long chain.
fn show_chain(chain: &[&str]) -> String {
    if chain.len() <= 8 {
        return chain.join(" → ");
    }
    format!(
        "{} → … → {}",
        chain[..3].join(" → "),
        chain[chain.len() - 3..].join(" → ")
    )
}

/// The error for `role`'s dependency `dep` that makes `chain` (ending at `role`) too deep,
/// located at that entry of `role`'s meta/main.yml.
fn too_deep(role: &Role, chain: &[&str], dep: &str) -> PlanError {
    let mut full = chain.to_vec();
    full.push(dep);
    let message = format!(
        "the meta dependency chain from `{}` is more than {MAX_DEPENDENCY_DEPTH} roles deep: {}",
        full[0],
        show_chain(&full)
    );
    let file = role
        .meta_file
        .clone()
        .unwrap_or_else(|| SourceFile::new(format!("roles/{}/meta/main.yml", role.name), ""));
    let at = file
        .error_for("dependencies", Some(dep), message)
        .with_hint(format!(
            "Ansible's time grows exponentially with the depth of meta dependencies (17 roles \
             deep: about 30 s, 20: minutes); parbake accepts chains of up to \
             {MAX_DEPENDENCY_DEPTH} roles"
        ))
        .with_hint(
            "flatten the chain: list the roles in the stack's `roles:` (or the image's `basic:`) \
             instead of making each depend on the next",
        );
    PlanError::TooDeep(Box::new(at))
}

/// The dependency chain from `from` to `to`, if `to` is reachable: the first one in declared
/// order. Iterative, and visits each role once.
fn chain(project: &Project, from: &str, to: &str) -> Option<Vec<String>> {
    let mut path: Vec<(&Role, usize)> = vec![(project.roles.get(from)?, 0)];
    let mut seen: BTreeSet<&str> = BTreeSet::from([from]);
    while let Some((r, next)) = path.last_mut() {
        let r: &Role = r;
        if r.name == to {
            return Some(path.iter().map(|(p, _)| p.name.clone()).collect());
        }
        match r.deps.get(*next) {
            Some(dep) => {
                *next += 1;
                if seen.insert(dep.as_str()) {
                    if let Some(d) = project.roles.get(dep) {
                        path.push((d, 0));
                    }
                }
            }
            None => {
                path.pop();
            }
        }
    }
    None
}

/// Every role the stack needs must be installed on the image: otherwise the bake fails to
/// find it, or the runner rejects the plan at boot. Located at the image's `installed` list,
/// naming the chain from the basic or stack role that needs it.
/// Every role that a role of the stack includes or imports by a literal name must be a role
/// of the project and installed on the image: Ansible would fail at that task otherwise. Roles
/// of collections (`ns.collection.role`) come with their collection.
fn check_includes(
    project: &Project,
    image: &crate::config::Image,
    runs: &[String],
) -> Result<(), PlanError> {
    let installed: BTreeSet<&str> = image.installed.iter().map(String::as_str).collect();
    for name in runs {
        for inc in role(project, name)?
            .refs
            .roles
            .iter()
            .filter(|i| !i.in_collection())
        {
            let problem = if !project.roles.contains_key(&inc.role) {
                let known: Vec<String> = project.roles.keys().cloned().collect();
                Some((
                    format!("{} of unknown role `{}`", inc.how, inc.role),
                    crate::config::did_you_mean(&inc.role, &known, "role"),
                ))
            } else if !installed.contains(inc.role.as_str()) {
                Some((
                    format!(
                        "{} of role `{}`, which is not installed on image `{}`",
                        inc.how, inc.role, image.name
                    ),
                    vec![format!(
                        "add `{}` to `installed` in {}, or omit `installed` to install every role",
                        inc.role, image.file.display
                    )],
                ))
            } else {
                None
            };
            if let Some((message, hints)) = problem {
                return Err(PlanError::BadInclude(Box::new(include_error(
                    inc, message, hints,
                ))));
            }
        }
    }
    Ok(())
}

/// `namespace.name` → version of every vendored collection.
fn vendored_collections(project: &Project) -> BTreeMap<String, String> {
    project
        .vendored
        .iter()
        .flat_map(|v| v.collections().values())
        .map(|c| (c.name.clone(), c.version.clone()))
        .collect()
}

/// Every vendored collection's `requires_ansible` must admit the ansible-core the image runs:
/// its pin, or the distribution's.
fn check_requires_ansible(
    project: &Project,
    image: &crate::config::Image,
) -> Result<(), PlanError> {
    use crate::config::ansible_version::{satisfies, Version, DISTRIBUTION_ANSIBLE_CORE};
    let Some(v) = &project.vendored else {
        return Ok(());
    };
    let (core, whose) = match &image.def.ansible {
        Some(a) => (a.core.as_str(), "pinned in `ansible.core`"),
        None => (
            DISTRIBUTION_ANSIBLE_CORE,
            "the distribution's, as no `ansible.core` is pinned",
        ),
    };
    let version = Version::parse(core).expect("a checked version");
    for c in v.collections().values() {
        let Some(spec) = &c.requires_ansible else {
            continue;
        };
        let problem = match satisfies(&version, spec) {
            Ok(true) => continue,
            Ok(false) => format!(
                "collection {} {} requires ansible-core {spec}, but image `{}` runs ansible-core {core} ({whose})",
                c.name, c.version, image.name
            ),
            Err(clause) => format!(
                "collection {} {}: cannot read `{clause}` in its requires_ansible `{spec}`",
                c.name, c.version
            ),
        };
        return Err(PlanError::Ansible {
            message: problem,
            hint: format!(
                "pin an ansible-core the collection supports in {} (`ansible: {{core: \"X.Y.Z\"}}`), or pin an older {} in requirements.yml and run `parbake vendor`",
                image.file.display, c.name
            ),
        });
    }
    Ok(())
}

/// A located error at an include task.
fn include_error(
    inc: &crate::config::role_refs::RoleRef,
    message: String,
    hints: Vec<String>,
) -> Located {
    let column = inc.line_text.len() - inc.line_text.trim_start().len() + 1;
    Located {
        file: inc.file.clone(),
        line: inc.line.unwrap_or(1),
        column,
        field: None,
        message,
        line_text: inc.line_text.clone(),
        hints,
    }
}

fn check_installed(
    project: &Project,
    image: &crate::config::Image,
    stack: &crate::config::Stack,
    needed: &[String],
) -> Result<(), PlanError> {
    let installed: BTreeSet<&str> = image.installed.iter().map(String::as_str).collect();
    let Some(missing) = needed.iter().find(|r| !installed.contains(r.as_str())) else {
        return Ok(());
    };
    let from_basic = image.def.basic.iter().map(|r| (r, "basic role"));
    let from_stack = stack.def.roles.iter().map(|r| (r, "stack role"));
    let (root, what, path) = from_basic
        .chain(from_stack)
        .find_map(|(root, what)| Some((root, what, chain(project, root, missing)?)))
        .unwrap_or((missing, "role", vec![missing.clone()]));
    let needs = if path.len() > 1 {
        format!(
            ", but {what} `{root}` needs it: {}",
            show_chain(&path.iter().map(String::as_str).collect::<Vec<_>>())
        )
    } else {
        String::new()
    };
    let mut at = image
        .file
        .error_for(
            "installed",
            None,
            format!(
                "role `{missing}` is not installed on image `{}`{needs} (stack `{}`)",
                image.name, stack.name
            ),
        )
        .with_hint(format!(
            "add `{missing}` to `installed` in {}, or omit `installed` to install every role",
            image.file.display
        ));
    if let Some(dependent) = path.len().checked_sub(2).map(|i| &path[i]) {
        at = at.with_hint(format!(
            "`{dependent}` depends on `{missing}` in roles/{dependent}/meta/main.yml"
        ));
    }
    Err(PlanError::NotInstalled(Box::new(at)))
}

/// The identity of a source image: an input of the base layer's hash, so its format is written
/// here only. A change of format changes every base layer's hash.
pub mod source_identity {
    use crate::config::{QemuSource, SourceAmi};

    /// A local disk: as declared (`parbake:debian-12`, a path or URL) with its checksum.
    pub fn qemu(q: &QemuSource) -> String {
        format!("qemu:{}@{}", q.disk_image, q.checksum)
    }

    /// A resolved source AMI in its region.
    pub fn aws(region: &str, ami_id: &str) -> String {
        format!("aws:{region}:{ami_id}")
    }

    /// The declared source AMI, standing in for its identity before it is resolved.
    pub fn aws_declared(a: &SourceAmi) -> String {
        format!(
            "aws:owners={};name={};arch={}",
            a.owners.join(","),
            a.name,
            a.architecture
        )
    }
}

/// What a plan is about: the stack, its image, and the role sets every step reads.
struct Scope<'p> {
    project: &'p Project,
    req: &'p PlanRequest,
    stack: &'p crate::config::Stack,
    image: &'p crate::config::Image,
    launch_only: BTreeSet<&'p str>,
    /// The basic roles and their dependencies, in order.
    basic: Vec<String>,
    /// Everything the stack runs (basic roles first), in dependency order.
    stack_all: Vec<String>,
}

impl Scope<'_> {
    fn is_basic(&self, role: &str) -> bool {
        self.basic.iter().any(|b| b == role)
    }
}

pub fn plan(project: &Project, req: &PlanRequest) -> Result<Plan, PlanError> {
    let scope = scope(project, req)?;
    let (promoted, stack_runs, notes) = promotions(&scope)?;
    let hasher = LayerHasher::new(&scope)?;
    let layers = layers(&scope, &hasher, stack_runs);
    let launch = launch_roles(&scope, layers.last().expect("the base layer"))?;
    let warnings = include_warnings(&scope, &layers);
    let (stack, image) = (scope.stack, scope.image);
    Ok(Plan {
        parbake_version: PARBAKE_VERSION.to_string(),
        target: req.target,
        image: image.name.clone(),
        stack: stack.name.clone(),
        layers,
        promoted,
        launch,
        installed: hasher.installed,
        launch_vars: launch_vars(scope.project, image, stack),
        status_tag: req.target == Target::Aws
            && image.def.sources.aws.as_ref().is_some_and(|a| a.status_tag),
        launch_timeout_s: stack.launch_timeout_s,
        launch_facts: stack.launch_facts.clone(),
        checks: stack.checks.clone(),
        notes,
        warnings,
        ansible_core: image.def.ansible.as_ref().map(|a| a.core.clone()),
        collections: vendored_collections(project),
        provisional: req
            .source_identity
            .is_none()
            .then(|| provisional_sentence(req.target)),
    })
}

/// Why a plan's layer hashes are provisional: its source's identity stood in as declared.
pub fn provisional_sentence(target: Target) -> String {
    match target {
        Target::Qemu => "layer hashes are provisional: the base disk image is not built yet, and \
                         they change once it is (make base-image)"
            .to_string(),
        Target::Aws => "layer hashes are provisional: the source AMI was not resolved (no EC2 \
                        access), so the declared name pattern stands in for it; bake, userdata \
                        and images resolve it and may show other hashes"
            .to_string(),
    }
}

/// The stack and image, the whole dependency graph checked, the basic roles checked, and
/// the stack's roles in order, all installed.
fn scope<'p>(project: &'p Project, req: &'p PlanRequest) -> Result<Scope<'p>, PlanError> {
    let config = |e| PlanError::Config(Box::new(e));
    let stack = project.stack(&req.stack).map_err(config)?;
    let image = project.image(&stack.def.image).map_err(config)?;
    let launch_only: BTreeSet<&str> = image.def.launch_only.iter().map(String::as_str).collect();

    // the whole dependency graph must be acyclic (and not too deep), not only the part this
    // stack uses
    let all: Vec<String> = project.roles.keys().cloned().collect();
    dependency_order(project, &all)?;

    let basic = run_order(project, &image.def.basic)?;
    for b in &image.def.basic {
        for dep in dependency_order(project, std::slice::from_ref(b))? {
            if launch_only.contains(dep.as_str()) {
                return Err(PlanError::BasicDependsOnLaunchOnly {
                    chain: chain(project, b, &dep).unwrap_or_default(),
                    role: b.clone(),
                    dep,
                });
            }
        }
    }
    let mut stack_roots = image.def.basic.clone();
    stack_roots.extend(stack.def.roles.iter().cloned());
    let stack_all = run_order(project, &stack_roots)?;
    check_installed(project, image, stack, &stack_all)?;
    check_includes(project, image, &stack_all)?;
    check_requires_ansible(project, image)?;
    Ok(Scope {
        project,
        req,
        stack,
        image,
        launch_only,
        basic,
        stack_all,
    })
}

/// The promotions (the stack's defaults, then the flags, without repeats) with the
/// dependencies they bring, the stack layer's roles in order, and notes for the reader.
/// What promotion decides: the promotions, the stack layer's roles in order, notes.
type Promoted = (Vec<Promotion>, Vec<String>, Vec<String>);

fn promotions(scope: &Scope<'_>) -> Result<Promoted, PlanError> {
    let (project, stack) = (scope.project, scope.stack);
    let mut explicit: Vec<String> = Vec::new();
    for p in stack.def.promote.iter().chain(&scope.req.promote) {
        if !explicit.contains(p) {
            explicit.push(p.clone());
        }
    }
    let mut notes = Vec::new();
    let mut promoted: Vec<Promotion> = Vec::new();
    let mut promoted_set: BTreeSet<String> = BTreeSet::new();
    for p in &explicit {
        check_promotable(scope, p)?;
        if scope.is_basic(p) {
            notes.push(format!(
                "`{p}` is already baked in the base layer (basic); promoting it changes nothing"
            ));
            continue;
        }
        for dep in dependency_order(project, std::slice::from_ref(p))? {
            if scope.launch_only.contains(dep.as_str()) {
                return Err(PlanError::PromoteDependsOnLaunchOnly {
                    chain: chain(project, p, &dep).unwrap_or_default(),
                    role: p.clone(),
                    dep,
                });
            }
            if scope.is_basic(&dep) || promoted_set.contains(&dep) {
                continue;
            }
            promoted_set.insert(dep.clone());
            let required_by = (!explicit.contains(&dep)).then(|| p.clone());
            promoted.push(Promotion {
                role: dep,
                required_by,
            });
        }
    }
    // stack layer order: dependency order restricted to the promoted set
    let stack_runs: Vec<String> = scope
        .stack_all
        .iter()
        .filter(|r| promoted_set.contains(r.as_str()))
        .cloned()
        .collect();
    for p in &promoted {
        if let Some(by) = &p.required_by {
            notes.push(format!(
                "`{}` is promoted too: `{by}` depends on it",
                p.role
            ));
        }
    }
    Ok((promoted, stack_runs, notes))
}

/// A role named for promotion must exist, be part of the stack, and not be launch-only.
fn check_promotable(scope: &Scope<'_>, p: &str) -> Result<(), PlanError> {
    if !scope.project.roles.contains_key(p) {
        return Err(PlanError::UnknownRole {
            role: p.to_string(),
            known: scope.project.roles.keys().cloned().collect(),
        });
    }
    if scope.launch_only.contains(p) {
        return Err(PlanError::PromoteLaunchOnly {
            role: p.to_string(),
            image: scope.image.name.clone(),
        });
    }
    if !scope.stack_all.iter().any(|r| r == p) {
        return Err(PlanError::NotInStack {
            role: p.to_string(),
            stack: scope.stack.name.clone(),
            roles: scope.stack_all.clone(),
        });
    }
    Ok(())
}

/// Everything a layer hash is made of apart from the layer's own kind, parent, roles and vars.
struct LayerHasher {
    target: Target,
    installed: BTreeMap<String, String>,
    template_digest: String,
    runtime_digest: String,
    source: serde_json::Value,
    source_identity: String,
    /// Packages and wheels the base layer downloads: those of every installed role it does not
    /// run. Not hashed on their own: each comes from a role's meta/parbake.yml, which is part of
    /// that role's content hash, and which roles are basic is the layer's `runs`.
    stage_apt: BTreeMap<String, Vec<String>>,
    stage_pip: BTreeMap<String, Vec<String>>,
    ansible_core: Option<String>,
    collections: Option<String>,
}

impl LayerHasher {
    fn new(scope: &Scope<'_>) -> Result<LayerHasher, PlanError> {
        let (project, image, req) = (scope.project, scope.image, scope.req);
        let installed_roles: Vec<&Role> = image
            .installed
            .iter()
            .map(|r| role(project, r))
            .collect::<Result<_, _>>()?;
        let no_source = || PlanError::NoSource {
            image: image.name.clone(),
            target: req.target,
        };
        // the template, the source settings, and the declared source standing in for its identity
        let (template, source, declared) = match req.target {
            Target::Qemu => {
                let q = image.def.sources.qemu.as_ref().ok_or_else(no_source)?;
                (
                    &project.templates.qemu,
                    serde_json::to_value(q),
                    source_identity::qemu(q),
                )
            }
            Target::Aws => {
                let aws = image.def.sources.aws.as_ref().ok_or_else(no_source)?;
                (
                    &project.templates.amazon_ebs,
                    serde_json::to_value(aws),
                    source_identity::aws_declared(&aws.source_ami),
                )
            }
        };
        Ok(LayerHasher {
            target: req.target,
            installed: installed_roles
                .iter()
                .map(|r| (r.name.clone(), r.hash.clone()))
                .collect(),
            template_digest: sha256_hex(template.as_bytes()),
            runtime_digest: runtime::digest(),
            source: source.expect("source settings serialize to JSON"),
            source_identity: req.source_identity.clone().unwrap_or(declared),
            stage_apt: installed_roles
                .iter()
                .filter(|r| !scope.is_basic(&r.name))
                .filter(|r| !r.meta.stage_apt.is_empty())
                .map(|r| (r.name.clone(), r.meta.stage_apt.clone()))
                .collect(),
            stage_pip: installed_roles
                .iter()
                .filter(|r| !scope.is_basic(&r.name))
                .filter(|r| !r.meta.stage_pip.is_empty())
                .map(|r| (r.name.clone(), r.meta.stage_pip.clone()))
                .collect(),
            ansible_core: image.def.ansible.as_ref().map(|a| a.core.clone()),
            collections: project
                .vendored
                .as_ref()
                .filter(|v| !v.collections().is_empty())
                .map(|v| v.collections_hash()),
        })
    }

    /// The layer's run hash (see [`Layer::run_hash`]); `stage` is what the layer downloads.
    #[allow(clippy::too_many_arguments)]
    fn run_hash(
        &self,
        project: &Project,
        kind: LayerKind,
        parent: &str,
        runs: &[String],
        vars: &Vars,
        stage_apt: &BTreeMap<String, Vec<String>>,
        stage_pip: &BTreeMap<String, Vec<String>>,
    ) -> String {
        let inputs = RunInputs {
            parbake_version: PARBAKE_VERSION,
            runtime: &self.runtime_digest,
            target: self.target,
            kind,
            parent,
            runs,
            roles: run_closure(project, runs),
            vars,
            stage_apt,
            stage_pip,
            template: &self.template_digest,
            source: &self.source,
            ansible_core: self.ansible_core.as_deref(),
            collections: self.collections.as_deref(),
        };
        sha256_hex(&serde_json::to_vec(&inputs).expect("run inputs serialize"))
    }

    /// The payload hash (see [`Layer::payload_hash`]): the same for every layer of an image.
    fn payload_hash(&self) -> String {
        let inputs = PayloadInputs {
            parbake_version: PARBAKE_VERSION,
            runtime: &self.runtime_digest,
            installed: &self.installed,
            collections: self.collections.as_deref(),
        };
        sha256_hex(&serde_json::to_vec(&inputs).expect("payload inputs serialize"))
    }

    /// The layer's hash, and the summary of its inputs kept to say later what changed.
    fn hash(
        &self,
        kind: LayerKind,
        parent: &str,
        runs: &[String],
        vars: &Vars,
    ) -> (String, Inputs) {
        let inputs = HashInputs {
            parbake_version: PARBAKE_VERSION,
            runtime: self.runtime_digest.clone(),
            target: self.target,
            kind,
            parent,
            installed: &self.installed,
            runs,
            vars,
            template: self.template_digest.clone(),
            source: self.source.clone(),
            ansible_core: self.ansible_core.as_deref(),
            collections: self.collections.as_deref(),
        };
        let hash = sha256_hex(&serde_json::to_vec(&inputs).expect("hash inputs serialize"));
        let mut summary: Inputs = self
            .installed
            .iter()
            .map(|(r, h)| (format!("role {r}"), role_prefix(h)))
            .collect();
        summary.insert("parbake".into(), PARBAKE_VERSION.into());
        summary.insert("runtime".into(), self.runtime_digest[..16].to_string());
        summary.insert("parent".into(), parent.to_string());
        summary.insert("runs".into(), runs.join(","));
        summary.insert("vars".into(), json_digest16(vars));
        summary.insert("template".into(), self.template_digest[..16].to_string());
        if let Some(core) = &self.ansible_core {
            summary.insert("ansible-core".into(), core.clone());
        }
        if let Some(c) = &self.collections {
            summary.insert("collections".into(), role_prefix(c));
        }
        summary.insert("source settings".into(), json_digest16(&self.source));
        (hash, summary)
    }
}

/// The base layer, and the stack layer when something is promoted.
fn layers(scope: &Scope<'_>, hasher: &LayerHasher, stack_runs: Vec<String>) -> Vec<Layer> {
    let (image, stack, basic) = (scope.image, scope.stack, &scope.basic);
    let base_parent = format!("source:{}", hasher.source_identity);
    let mut base_vars = scope.project.group_vars.all.clone();
    base_vars.extend(image.vars.clone());
    let (base_hash, base_inputs) = hasher.hash(LayerKind::Base, &base_parent, basic, &base_vars);
    let payload_hash = hasher.payload_hash();
    let base_run = hasher.run_hash(
        scope.project,
        LayerKind::Base,
        &base_parent,
        basic,
        &base_vars,
        &hasher.stage_apt,
        &hasher.stage_pip,
    );
    let base = Layer {
        index: 1,
        kind: LayerKind::Base,
        name: image.name.clone(),
        hash: base_hash,
        run_hash: base_run,
        payload_hash: payload_hash.clone(),
        inputs: base_inputs,
        parent: base_parent,
        runs: basic.clone(),
        baked: basic.clone(),
        vars: base_vars,
        stage_apt: hasher.stage_apt.clone(),
        stage_pip: hasher.stage_pip.clone(),
    };
    let mut layers = vec![base];
    if !stack_runs.is_empty() {
        let parent = format!("layer:{}", layers[0].hash);
        let mut vars = scope.project.group_vars.for_stack(&stack.name);
        vars.extend(image.vars.clone());
        vars.extend(stack.vars.clone());
        let mut baked = basic.clone();
        baked.extend(stack_runs.iter().cloned());
        let (hash, inputs) = hasher.hash(LayerKind::Stack, &parent, &stack_runs, &vars);
        let run_hash = hasher.run_hash(
            scope.project,
            LayerKind::Stack,
            &format!("run:{}", layers[0].run_hash),
            &stack_runs,
            &vars,
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        layers.push(Layer {
            index: 2,
            kind: LayerKind::Stack,
            name: format!("{}-{}", image.name, stack.name),
            hash,
            run_hash,
            payload_hash,
            inputs,
            parent,
            runs: stack_runs,
            baked,
            vars,
            stage_apt: BTreeMap::new(),
            stage_pip: BTreeMap::new(),
        });
    }
    layers
}

/// The stack's roles the top layer did not bake, in order: what the user-data runs.
fn launch_roles(scope: &Scope<'_>, top: &Layer) -> Result<Vec<LaunchRole>, PlanError> {
    let baked: BTreeSet<&str> = top.baked.iter().map(String::as_str).collect();
    scope
        .stack_all
        .iter()
        .filter(|r| !baked.contains(r.as_str()))
        .map(|r| {
            Ok(launch_role(
                role(scope.project, r)?,
                scope.launch_only.contains(r.as_str()),
            ))
        })
        .collect()
}

/// A role as the launch runs it.
pub fn launch_role(role: &Role, launch_only: bool) -> LaunchRole {
    let (offline, offline_reason) = offline_verdict(role);
    LaunchRole {
        name: role.name.clone(),
        hash: role.hash.clone(),
        launch_only,
        staged_apt: role.meta.stage_apt.clone(),
        staged_pip: role.meta.stage_pip.clone(),
        offline,
        offline_reason,
        collections: role.refs.collections.iter().cloned().collect(),
    }
}

/// Modules that download at run time whatever a role stages.
const NETWORK_MODULES: [&str; 6] = [
    "get_url",
    "uri",
    "git",
    "apt_repository",
    "apt_key",
    "deb822_repository",
];

/// Whether a role can run at launch with no network, and why: a static look at the modules of
/// its task files (`command` and `shell` are not read) against what its meta/parbake.yml
/// stages. apt with `update_cache` and `cache_valid_time` runs offline when its packages are
/// staged (the runner makes the staged lists count as fresh); without `cache_valid_time` it
/// refreshes on every run. pip runs offline when its wheels are staged (the runner points
/// pip at them, with no index).
pub fn offline_verdict(role: &Role) -> (bool, String) {
    let (refs, meta) = (&role.refs, &role.meta);
    let uses = |m: &str| refs.modules.contains(m);
    let mut needs = Vec::new();
    if (uses("apt") || uses("package")) && meta.stage_apt.is_empty() {
        needs.push("installs packages and stages none".to_string());
    }
    if !refs.apt_refresh_always.is_empty() {
        needs.push(format!(
            "refreshes the apt lists on every run (update_cache without cache_valid_time in {})",
            refs.apt_refresh_always
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if uses("pip") && meta.stage_pip.is_empty() {
        needs.push("installs with pip and stages no wheels".to_string());
    }
    let fetches: Vec<&str> = NETWORK_MODULES.into_iter().filter(|m| uses(m)).collect();
    if !fetches.is_empty() {
        needs.push(format!("downloads at launch ({})", fetches.join(", ")));
    }
    if !needs.is_empty() {
        return (false, format!("needs the network: {}", needs.join("; ")));
    }
    let staged = match (meta.stage_apt.is_empty(), meta.stage_pip.is_empty()) {
        (false, false) => "packages and wheels staged",
        (false, true) => "packages staged",
        (true, false) => "wheels staged",
        (true, true) => "none of its modules reaches the network",
    };
    (true, format!("offline: {staged}"))
}

/// Warnings about the includes of the roles this stack runs: a templated role name (no one
/// can check or order it before run time), and an include of the entry point of a role that
/// an earlier layer baked, where the role's shim makes `tasks/main.yml` a no-op.
fn include_warnings(scope: &Scope<'_>, layers: &[Layer]) -> Vec<String> {
    let mut warnings = Vec::new();
    // the layer each role runs in (launch: after the last layer)
    let ran_in = |r: &str| layers.iter().position(|l| l.runs.iter().any(|x| x == r));
    for name in &scope.stack_all {
        let Some(role) = scope.project.roles.get(name) else {
            continue;
        };
        for d in &role.refs.dynamic {
            warnings.push(format!(
                "{}:{}: {} with a templated name ({}): parbake cannot check or order it; the role it names must be installed on the image",
                d.file,
                d.line.unwrap_or(1),
                d.how,
                d.expression
            ));
        }
        let runs_at = ran_in(name).unwrap_or(layers.len());
        for inc in role.refs.roles.iter().filter(|i| i.runs_main()) {
            let Some(baked_at) = ran_in(&inc.role).filter(|&l| l < runs_at) else {
                continue;
            };
            warnings.push(format!(
                "{}: {} of `{}` runs its tasks/main.yml, which is a no-op where `{name}` runs: `{}` is baked in layer {} ({}); include a task file of it with `tasks_from`, or promote `{name}` into the same layer",
                inc.at(),
                inc.how,
                inc.role,
                inc.role,
                layers[baked_at].index,
                layers[baked_at].name
            ));
        }
    }
    warnings
}

/// Every var a launch sees: the stack's group vars, bake-time vars (image, then stack), then
/// launch-time vars.
fn launch_vars(
    project: &Project,
    image: &crate::config::Image,
    stack: &crate::config::Stack,
) -> Vars {
    let mut vars = project.group_vars.for_stack(&stack.name);
    vars.extend(image.vars.clone());
    vars.extend(stack.vars.clone());
    vars.extend(image.launch_vars.clone());
    vars.extend(stack.launch_vars.clone());
    vars
}
