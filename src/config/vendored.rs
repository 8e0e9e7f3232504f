//! The vendored content as config and plan read it: the roles under `vendor/roles` and the
//! collections with their versions. `crate::vendoring` checks `requirements.yml`, the lock and
//! the trees, and hands a [`VendoredContent`] to [`Project::load`](super::Project::load):
//! vendoring depends on config, and config never names vendoring.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The vendor directory's name, at the project root.
pub const VENDOR_DIR: &str = "vendor";

/// A vendored role.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VendoredRole {
    /// `name` or `namespace.name`.
    pub name: String,
    /// Absolute: `<root>/vendor/roles/<name>`.
    pub dir: PathBuf,
    pub version: Option<String>,
    /// Content hash of the tree (see `crate::vendoring::hash`), as in the lock.
    pub hash: String,
}

/// A vendored collection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VendoredCollection {
    /// `namespace.name`.
    pub name: String,
    /// Absolute: `<root>/vendor/collections/ansible_collections/<ns>/<name>`.
    pub dir: PathBuf,
    pub version: String,
    /// `requires_ansible` from `meta/runtime.yml`, as written (e.g. `>=2.15.0`).
    pub requires_ansible: Option<String>,
    pub hash: String,
}

/// The project's vendored roles and collections, as the lock says and the trees were checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VendoredContent {
    roles: BTreeMap<String, VendoredRole>,
    collections: BTreeMap<String, VendoredCollection>,
}

impl VendoredContent {
    pub fn new(
        roles: BTreeMap<String, VendoredRole>,
        collections: BTreeMap<String, VendoredCollection>,
    ) -> Self {
        VendoredContent { roles, collections }
    }

    /// Vendored roles by full name.
    pub fn roles(&self) -> &BTreeMap<String, VendoredRole> {
        &self.roles
    }

    /// Vendored collections by `namespace.name`.
    pub fn collections(&self) -> &BTreeMap<String, VendoredCollection> {
        &self.collections
    }

    /// One hash over every collection (name, version, content hash), for the layer hash:
    /// `sha256:<hex>` of their canonical JSON, sorted by name.
    pub fn collections_hash(&self) -> String {
        let items: Vec<(&str, &str, &str)> = self
            .collections
            .values()
            .map(|c| (c.name.as_str(), c.version.as_str(), c.hash.as_str()))
            .collect();
        let json = serde_json::to_vec(&items).expect("strings serialize");
        format!("sha256:{}", hex::encode(Sha256::digest(json)))
    }
}

/// What is wrong with a role named `name` that no loaded role has, when the name is written
/// as a collection's role: (message, hints). None for any other name (an unknown role).
pub fn collection_role_problem(
    name: &str,
    vendored: Option<&VendoredContent>,
) -> Option<(String, Vec<String>)> {
    if !super::names::names_collection_role(name) {
        return None;
    }
    let Some((collection, role)) = super::names::split_collection_role(name) else {
        return Some((
            format!("`{name}` is not a valid role name"),
            vec![
                super::names::COLLECTION_ROLE_RULE.into(),
                super::names::ROLE_NAME_RULE.into(),
            ],
        ));
    };
    let found = vendored.and_then(|v| v.collections().get(collection));
    let Some(c) = found else {
        return Some((
            format!("role `{name}` is in collection `{collection}`, which is not vendored"),
            vec![format!(
                "add the collection to requirements.yml (`collections: [{{name: {collection}}}]`, \
                 or a local `type: file` tarball), then run `parbake vendor`"
            )],
        ));
    };
    let known = collection_roles(&c.dir);
    Some((
        format!(
            "collection `{collection}` {} has no role `{role}`",
            c.version
        ),
        vec![if known.is_empty() {
            format!("`{collection}` has no roles/ directory: name a role of another collection")
        } else {
            format!(
                "roles of `{collection}`: {}",
                known
                    .iter()
                    .map(|r| format!("{collection}.{r}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }],
    ))
}

/// The role directories' names under a collection's `roles/`, sorted.
fn collection_roles(collection: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(collection.join("roles"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}
