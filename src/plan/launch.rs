//! Launch roles: the stack's roles the top layer did not bake, whether each can run offline,
//! and the vars a launch sees.

use std::collections::BTreeSet;

use crate::config::{Project, Role, Vars};

use super::order::role;
use super::scope::Scope;
use super::{LaunchRole, Layer, PlanError};

/// The stack's roles the top layer did not bake, in order: what the user-data runs.
pub(super) fn launch_roles(scope: &Scope<'_>, top: &Layer) -> Result<Vec<LaunchRole>, PlanError> {
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
        collections: collections_of(role),
    }
}

/// The collections a role's modules come from, and a collection's role's own collection.
fn collections_of(role: &Role) -> Vec<String> {
    let mut all = role.refs.collections.clone();
    if let Some((collection, _)) = crate::config::names::split_collection_role(&role.name) {
        all.insert(collection.to_string());
    }
    all.into_iter().collect()
}

/// Modules that download at run time whatever a role stages.
pub(super) const NETWORK_MODULES: [&str; 6] = [
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

/// Every var a launch sees: the stack's group vars, bake-time vars (image, then stack), then
/// launch-time vars.
pub(super) fn launch_vars(
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
