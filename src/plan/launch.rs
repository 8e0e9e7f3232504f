//! Launch roles: the stack's roles the top layer did not bake, whether each can run offline,
//! and the vars a launch sees.

use std::collections::BTreeSet;

use crate::config::{Project, Role, Vars};

use super::order::{reached_at_launch, role};
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
                scope.project,
                scope.image,
                role(scope.project, r)?,
                scope.launch_only.contains(r.as_str()),
                &baked,
            ))
        })
        .collect()
}

/// A role as the launch runs it: with the roles it reaches by `include_role` and
/// `import_role` (and their meta dependencies) that `baked` did not bake, since those run
/// within it at launch.
pub fn launch_role(
    project: &Project,
    image: &crate::config::Image,
    role: &Role,
    launch_only: bool,
    baked: &BTreeSet<&str>,
) -> LaunchRole {
    let reached = reached_at_launch(project, role, baked);
    let staged: Vec<Staged> = reached
        .iter()
        .map(|r| staged_for(project, image, r))
        .collect();
    let (offline, offline_reason) = offline_verdict(&reached, &staged);
    let own = &staged[0];
    LaunchRole {
        name: role.name.clone(),
        hash: role.hash.clone(),
        launch_only,
        staged_apt: own.apt.clone(),
        staged_pip: own.pip.clone(),
        offline,
        offline_reason,
        collections: collections_of(&reached),
    }
}

/// The collections the roles' modules come from, and a collection's role's own collection.
fn collections_of(roles: &[&Role]) -> Vec<String> {
    let mut all = BTreeSet::new();
    for role in roles {
        all.extend(role.refs.collections.iter().cloned());
        if let Some((collection, _)) = crate::config::names::split_collection_role(&role.name) {
            all.insert(collection.to_string());
        }
    }
    all.into_iter().collect()
}

/// What the base layer of `image` stages for a role: its own `meta/parbake.yml`, then the
/// image's and every one of the image's stacks' `staging:` for it (the base layer is shared by
/// those stacks, so it takes the union).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Staged {
    pub apt: Vec<String>,
    pub pip: Vec<String>,
    /// Whether the packages are downloaded with their Recommends.
    pub recommends: bool,
}

pub fn staged_for(project: &Project, image: &crate::config::Image, role: &Role) -> Staged {
    let mut out = Staged {
        apt: role.meta.stage_apt.clone(),
        pip: role.meta.stage_pip.clone(),
        recommends: role.stages_recommends(),
    };
    let stacks = project
        .stacks
        .values()
        .filter(|s| s.def.image == image.name);
    let declared = std::iter::once(&image.def.staging).chain(stacks.map(|s| &s.def.staging));
    for s in declared.filter_map(|m| m.get(&role.name)) {
        for p in &s.apt {
            if !out.apt.contains(p) {
                out.apt.push(p.clone());
            }
        }
        for r in &s.pip {
            if !out.pip.contains(r) {
                out.pip.push(r.clone());
            }
        }
        if let Some(r) = s.apt_recommends {
            out.recommends = r;
        }
    }
    out
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
/// its task files and of the roles it reaches (`reached[0]` is the role; see
/// [`reached_at_launch`]; `command` and `shell` are not read) against what is staged for them
/// (`staged`, one per role, [`staged_for`]; a role's staging covers the roles it includes). apt with `update_cache` and
/// `cache_valid_time` runs offline when packages are staged (the runner makes the staged lists
/// count as fresh); without `cache_valid_time` it refreshes on every run. pip runs offline
/// when wheels are staged (the runner points pip at them, with no index).
pub fn offline_verdict(reached: &[&Role], staged: &[Staged]) -> (bool, String) {
    let stages_apt = staged.iter().any(|s| !s.apt.is_empty());
    let stages_pip = staged.iter().any(|s| !s.pip.is_empty());
    let mut needs = Vec::new();
    for (i, role) in reached.iter().enumerate() {
        let within = match i {
            0 => String::new(),
            _ => format!(" (in {}, which it includes)", role.name),
        };
        needs.extend(
            role_needs(role, stages_apt, stages_pip)
                .into_iter()
                .map(|n| format!("{n}{within}")),
        );
    }
    if !needs.is_empty() {
        return (false, format!("needs the network: {}", needs.join("; ")));
    }
    let staged = match (stages_apt, stages_pip) {
        (true, true) => "packages and wheels staged",
        (true, false) => "packages staged",
        (false, true) => "wheels staged",
        (false, false) => "none of its modules reaches the network",
    };
    (true, format!("offline: {staged}"))
}

/// What in one role's own task files reaches the network, given whether the launch role
/// stages packages and wheels.
fn role_needs(role: &Role, stages_apt: bool, stages_pip: bool) -> Vec<String> {
    let refs = &role.refs;
    let uses = |m: &str| refs.modules.contains(m);
    let mut needs = Vec::new();
    if (uses("apt") || uses("package")) && !stages_apt {
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
    if uses("pip") && !stages_pip {
        needs.push("installs with pip and stages no wheels".to_string());
    }
    let fetches: Vec<&str> = NETWORK_MODULES.into_iter().filter(|m| uses(m)).collect();
    if !fetches.is_empty() {
        needs.push(format!("downloads at launch ({})", fetches.join(", ")));
    }
    needs
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
