//! Layer hashes: what each hash covers (inputs, run, payload), the run closure, and the
//! `LayerHasher` that holds everything a hash takes beyond the layer itself.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Project, Role, Vars};
use crate::contract as runtime;

use super::order::role;
use super::scope::Scope;
use super::{role_prefix, source_identity, Inputs, LayerKind, PlanError, Target, PARBAKE_VERSION};

/// What goes into a layer hash. Serialized as canonical JSON (sorted maps) and hashed.
#[derive(Serialize)]
pub(super) struct HashInputs<'a> {
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
    /// `staging:` declared in the image file and its stacks' files (a role's own staging is in
    /// its content hash), absent without any.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    staging: &'a BTreeMap<String, Vec<crate::config::model::Staging>>,
}

/// What the run hash covers (see [`Layer::run_hash`](super::Layer::run_hash)).
#[derive(Serialize)]
pub(super) struct RunInputs<'a> {
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
    /// The vendored collections the run's roles use (`namespace.name` → `version hash`): a
    /// collection no role of the run names does not change what the run does. Every one, when
    /// a role calls a module by a bare non-builtin name with no `collections:` keyword.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    collections: BTreeMap<&'a str, String>,
}

/// The vendored collections the roles of a run closure use: those of their fully qualified
/// modules, their `collections:` keywords, any dotted name in their files (a filter or lookup
/// like `acme.tools.shout`) and their own (a collection's role); all of them
/// when one calls a bare non-builtin module name with no keyword (ansible-core's routing
/// picks its collection, which plan does not read).
pub(super) fn run_collections<'p>(
    project: &'p Project,
    closure: &BTreeMap<&'p str, &'p str>,
) -> BTreeMap<&'p str, String> {
    let Some(vendored) = project.vendored.as_ref() else {
        return BTreeMap::new();
    };
    let roles = || closure.keys().filter_map(|r| project.roles.get(*r));
    let routed = roles().any(|r| r.refs.routes_collections());
    let mut used = std::collections::BTreeSet::new();
    for role in roles() {
        used.extend(role.refs.collections.iter().map(String::as_str));
        used.extend(role.refs.collections_keyword.iter().map(String::as_str));
        used.extend(role.dotted_collections.iter().map(String::as_str));
        if let Some((c, _)) = crate::config::names::split_collection_role(&role.name) {
            used.insert(c);
        }
    }
    vendored
        .collections()
        .iter()
        .filter(|(name, _)| routed || used.contains(name.as_str()))
        .map(|(name, c)| (name.as_str(), format!("{} {}", c.version, c.hash)))
        .collect()
}

/// What the payload hash covers (see [`Layer::payload_hash`](super::Layer::payload_hash)).
#[derive(Serialize)]
pub(super) struct PayloadInputs<'a> {
    parbake_version: &'a str,
    runtime: &'a str,
    installed: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collections: Option<&'a str>,
}

/// The roles whose content decides what running `runs` does: the run roles, every role their
/// meta dependencies resolve to (basic ones too: a shim keeps their defaults, handlers and
/// files), and every role their tasks include or import by a literal name, transitively.
pub(super) fn run_closure<'p>(project: &'p Project, runs: &[String]) -> BTreeMap<&'p str, &'p str> {
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

pub(super) fn json_digest16<T: Serialize>(v: &T) -> String {
    sha256_hex(&serde_json::to_vec(v).expect("serializes"))[..16].to_string()
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Everything a layer hash is made of apart from the layer's own kind, parent, roles and vars.
pub(super) struct LayerHasher {
    pub(super) target: Target,
    pub(super) installed: BTreeMap<String, String>,
    pub(super) template_digest: String,
    pub(super) runtime_digest: String,
    pub(super) source: serde_json::Value,
    pub(super) source_identity: String,
    /// Packages and wheels the base layer downloads: those of every installed role it does not
    /// run. Not hashed on their own: each comes from a role's meta/parbake.yml, which is part of
    /// that role's content hash, and which roles are basic is the layer's `runs`.
    pub(super) stage_apt: BTreeMap<String, Vec<String>>,
    /// The roles of `stage_apt` staged without Recommends (from their content too).
    pub(super) stage_apt_without_recommends: std::collections::BTreeSet<String>,
    pub(super) stage_pip: BTreeMap<String, Vec<String>>,
    pub(super) ansible_core: Option<String>,
    pub(super) collections: Option<String>,
    /// `staging:` declared for each role in the image file, then in its stacks' files (by
    /// stack name): part of the base layer's hash, as a role's meta/parbake.yml is.
    pub(super) declared_staging: BTreeMap<String, Vec<crate::config::model::Staging>>,
}

impl LayerHasher {
    pub(super) fn new(scope: &Scope<'_>) -> Result<LayerHasher, PlanError> {
        let (project, image, req) = (scope.project, scope.image, scope.req);
        let installed_roles: Vec<&Role> = image
            .installed
            .iter()
            .map(|r| role(project, r))
            .collect::<Result<_, _>>()?;
        // what the base layer stages: for each installed role it does not run
        let staged: Vec<(String, super::launch::Staged)> = installed_roles
            .iter()
            .filter(|r| !scope.is_basic(&r.name))
            .map(|r| (r.name.clone(), super::launch::staged_for(project, image, r)))
            .collect();
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
                if !aws.architectures.is_empty() {
                    return Err(PlanError::ArchNotChosen {
                        image: image.name.clone(),
                        arches: aws.arches(),
                    });
                }
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
            stage_apt: staged
                .iter()
                .filter(|(_, s)| !s.apt.is_empty())
                .map(|(r, s)| (r.clone(), s.apt.clone()))
                .collect(),
            stage_apt_without_recommends: staged
                .iter()
                .filter(|(_, s)| !s.apt.is_empty() && !s.recommends)
                .map(|(r, _)| r.clone())
                .collect(),
            stage_pip: staged
                .iter()
                .filter(|(_, s)| !s.pip.is_empty())
                .map(|(r, s)| (r.clone(), s.pip.clone()))
                .collect(),
            ansible_core: image.def.ansible.as_ref().map(|a| a.core.clone()),
            declared_staging: declared_staging(project, image),
            collections: project
                .vendored
                .as_ref()
                .filter(|v| !v.collections().is_empty())
                .map(|v| v.collections_hash()),
        })
    }

    /// The layer's run hash (see [`Layer::run_hash`](super::Layer::run_hash)); `stage` is what the layer downloads.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_hash(
        &self,
        project: &Project,
        kind: LayerKind,
        parent: &str,
        runs: &[String],
        vars: &Vars,
        stage_apt: &BTreeMap<String, Vec<String>>,
        stage_pip: &BTreeMap<String, Vec<String>>,
    ) -> String {
        let closure = run_closure(project, runs);
        let inputs = RunInputs {
            parbake_version: PARBAKE_VERSION,
            runtime: &self.runtime_digest,
            target: self.target,
            kind,
            parent,
            runs,
            collections: run_collections(project, &closure),
            roles: closure,
            vars,
            stage_apt,
            stage_pip,
            template: &self.template_digest,
            source: &self.source,
            ansible_core: self.ansible_core.as_deref(),
        };
        sha256_hex(&serde_json::to_vec(&inputs).expect("run inputs serialize"))
    }

    /// The payload hash (see [`Layer::payload_hash`](super::Layer::payload_hash)): the same for every layer of an image.
    pub(super) fn payload_hash(&self) -> String {
        let inputs = PayloadInputs {
            parbake_version: PARBAKE_VERSION,
            runtime: &self.runtime_digest,
            installed: &self.installed,
            collections: self.collections.as_deref(),
        };
        sha256_hex(&serde_json::to_vec(&inputs).expect("payload inputs serialize"))
    }

    /// The layer's hash, and the summary of its inputs kept to say later what changed.
    pub(super) fn hash(
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
            staging: &self.declared_staging,
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

/// Every `staging:` entry for the image: the image file's, then its stacks' in name order.
fn declared_staging(
    project: &Project,
    image: &crate::config::Image,
) -> BTreeMap<String, Vec<crate::config::model::Staging>> {
    let stacks = project
        .stacks
        .values()
        .filter(|s| s.def.image == image.name);
    let mut out: BTreeMap<String, Vec<crate::config::model::Staging>> = BTreeMap::new();
    for map in std::iter::once(&image.def.staging).chain(stacks.map(|s| &s.def.staging)) {
        for (role, s) in map {
            out.entry(role.clone()).or_default().push(s.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{json_digest16, sha256_hex};

    #[test]
    fn sha256_hex_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn json_digest16_is_the_prefix_of_the_json_hash() {
        let v = serde_json::json!({"b": 1, "a": [2]});
        let json = serde_json::to_vec(&v).unwrap();
        assert_eq!(json_digest16(&v), sha256_hex(&json)[..16]);
    }
}
