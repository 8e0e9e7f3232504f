//! plan: which roles bake in which layer, which run at launch, and each layer's content hash.
//! Pure: no I/O and no clock. Inputs are a loaded [`Project`] and a [`PlanRequest`].

pub mod budget;
mod hashing;
mod installed;
mod launch;
mod layers;
mod order;
mod scope;
pub mod source_identity;
mod var_notes;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::config::{Located, Project, Vars};

pub use hashing::sha256_hex;
pub use launch::{launch_role, offline_verdict, Staged, Verdict};
pub use order::{dependency_order, run_order, MAX_DEPENDENCY_DEPTH};

use hashing::LayerHasher;
use installed::vendored_collections;
use launch::{launch_roles, launch_vars};
use layers::{include_warnings, layers};
use scope::{promotions, scope};

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
    /// A collection's role (`--promote ns.collection.role`) that does not resolve: its
    /// collection not vendored, the collection without it, or a malformed name.
    #[error("{message}")]
    CollectionRole { message: String, hints: Vec<String> },
    /// `include_role`/`import_role` of a role that is not in the project, or not installed
    /// on the image, located at the task.
    #[error("{0}")]
    BadInclude(Box<Located>),
    /// A vendored collection that the image's ansible-core cannot run.
    #[error("{message}")]
    Ansible { message: String, hint: String },
    /// A role whose `min_ansible_version`, or a builtin module it calls, the image's
    /// ansible-core does not meet, located at the meta key or the task.
    #[error("{0}")]
    RoleNeedsAnsible(Box<Located>),
    /// An unknown stack or image: the same error `config` gives.
    #[error(transparent)]
    Config(Box<crate::config::ConfigError>),
    #[error("image `{image}` has no `{target}` source")]
    NoSource { image: String, target: Target },
    /// An image whose aws source bakes several architectures, planned without choosing one.
    #[error("image `{image}` bakes {}: plan one architecture at a time", .arches.join(" and "))]
    ArchNotChosen { image: String, arches: Vec<String> },
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
            PlanError::TooDeep(at)
            | PlanError::NotInstalled(at)
            | PlanError::BadInclude(at)
            | PlanError::RoleNeedsAnsible(at) => {
                at.hints.clone()
            }
            PlanError::NotInStack { roles, .. } => {
                vec![format!("roles of this stack (with dependencies): {}", roles.join(", "))]
            }
            PlanError::UnknownRole { role, known } => {
                crate::config::did_you_mean(role, known, "role")
            }
            PlanError::CollectionRole { hints, .. } => hints.clone(),
            PlanError::Config(e) => e.hints(),
            PlanError::Ansible { hint, .. } => vec![hint.clone()],
            PlanError::NoSource { image, target } => vec![format!(
                "add `sources.{target}` to images/{image}.yml, or choose another --target"
            )],
            PlanError::ArchNotChosen { arches, .. } => {
                vec![format!("pass --arch {}", arches.join(" or --arch "))]
            }
        }
    }

    /// The offending line with a caret, for the errors located in a file.
    pub fn snippet(&self) -> Option<String> {
        match self {
            PlanError::TooDeep(at)
            | PlanError::NotInstalled(at)
            | PlanError::BadInclude(at)
            | PlanError::RoleNeedsAnsible(at) => {
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
    /// Of those, the roles whose packages are downloaded without their Recommends (the role
    /// installs with `install_recommends: false`, or says `stage_apt_recommends: false`).
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub stage_apt_without_recommends: BTreeSet<String>,
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
    /// Whether it can run with no network, from what it stages and the modules of its tasks:
    /// true only when the verdict is `offline`.
    pub offline: bool,
    /// `offline`, `network` or `unknown` (what plan cannot read decides it).
    pub offline_verdict: Verdict,
    /// Why: what is staged, what reaches the network, or what plan cannot read
    /// (`offline_verdict`).
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
    /// On aws, the architecture the chain is baked for (`x86_64`, `arm64`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// On aws, where the AMI the stack launches goes after its bake (`distribute:`, the
    /// stack's or its image's). Not in any layer hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribute: Option<crate::config::model::Distribute>,
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
    /// Whether the image installs a role of a collection (`ns.collection.role`): then its
    /// shims include an overlay of that collection, found before the vendored one.
    pub fn installs_collection_roles(&self) -> bool {
        self.installed
            .keys()
            .any(|r| crate::config::names::valid_collection_role(r))
    }
}

pub fn plan(project: &Project, req: &PlanRequest) -> Result<Plan, PlanError> {
    let scope = scope(project, req)?;
    let (promoted, stack_runs, mut notes) = promotions(&scope)?;
    notes.extend(var_notes::unread_stack_vars(&scope));
    let hasher = LayerHasher::new(&scope)?;
    let layers = layers(&scope, &hasher, stack_runs);
    let launch = launch_roles(&scope, layers.last().expect("the base layer"))?;
    let mut warnings = include_warnings(&scope, &layers);
    warnings.extend(layers::launch_var_warnings(&scope, &layers));
    warnings.extend(layers::bare_module_warnings(&scope));
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
            .then(|| provisional_sentence(req.target, image)),
        distribute: (req.target == Target::Aws)
            .then(|| crate::config::distribute::of(project, &image.name, Some(&stack.name)))
            .flatten(),
        arch: (req.target == Target::Aws)
            .then_some(image.def.sources.aws.as_ref())
            .flatten()
            .map(|a| a.source_ami.architecture.clone()),
    })
}

/// Why a plan's layer hashes are provisional: its source's identity stood in as declared.
/// On qemu it names the image's own base disk and how it gets built.
pub fn provisional_sentence(target: Target, image: &crate::config::Image) -> String {
    match target {
        Target::Qemu => {
            let disk = image
                .def
                .sources
                .qemu
                .as_ref()
                .map(|q| q.disk_image.as_str());
            match disk.and_then(|d| d.strip_prefix("parbake:")) {
                Some(base) => format!(
                    "layer hashes are provisional: the parbake:{base} base disk image is not \
                     built yet, and they change once it is (the first bake builds it; or `{}` \
                     in parbake's repository)",
                    crate::config::file_checks::base_build_command(base)
                ),
                None => "layer hashes are provisional: the base disk image was not read, so \
                         its path stands in for it"
                    .to_string(),
            }
        }
        Target::Aws => "layer hashes are provisional: the source AMI was not resolved (no EC2 \
                        access), so the declared name pattern stands in for it; bake, userdata \
                        and images resolve it and may show other hashes"
            .to_string(),
    }
}
