//! Launch roles: the stack's roles the top layer did not bake, whether each can run offline,
//! and the vars a launch sees.

use std::collections::BTreeSet;

use crate::config::role_refs::OPAQUE_MODULES;
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
    let (offline_verdict, offline_reason) = offline_verdict(&reached, &staged);
    let own = &staged[0];
    LaunchRole {
        name: role.name.clone(),
        hash: role.hash.clone(),
        launch_only,
        staged_apt: own.apt.clone(),
        staged_pip: own.pip.clone(),
        offline: offline_verdict == Verdict::Offline,
        offline_verdict,
        offline_reason,
        collections: collections_of(&reached),
    }
}

/// The collections the roles' modules come from, and a collection's role's own collection.
fn collections_of(roles: &[&Role]) -> Vec<String> {
    let mut all = BTreeSet::new();
    for role in roles {
        all.extend(role.refs.collections.iter().cloned());
        all.extend(role.refs.collections_keyword.iter().cloned());
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
    /// `offline: true`, in the role's meta/parbake.yml or a `staging:` entry: what plan
    /// cannot read in the role needs no network.
    pub declared_offline: bool,
}

pub fn staged_for(project: &Project, image: &crate::config::Image, role: &Role) -> Staged {
    let mut out = Staged {
        apt: role.meta.stage_apt.clone(),
        pip: role.meta.stage_pip.clone(),
        recommends: role.stages_recommends(),
        declared_offline: role.meta.offline,
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
        out.declared_offline |= s.offline;
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

/// What plan says of a launch role and the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing it runs reaches the network, or what does is staged.
    Offline,
    /// A task it runs reaches the network and nothing staged covers it.
    Network,
    /// Nothing plan reads needs the network, but it runs what plan cannot read (a command,
    /// a role included by a templated name), and no one has said that needs no network.
    Unknown,
}

/// Whether a role can run at launch with no network, and why: a static look at the modules of
/// its task files and of the roles it reaches (`reached[0]` is the role; see
/// [`reached_at_launch`]) against what is staged for them (`staged`, one per role,
/// [`staged_for`]; a role's staging covers the roles it includes). apt with `update_cache` and
/// a non-zero `cache_valid_time` runs offline when packages are staged (the runner makes the
/// staged lists count as fresh); otherwise it refreshes on every run. pip runs offline when
/// wheels are staged (the runner points pip at them, with no index). What plan cannot read
/// (`command`, `shell` ..., a templated role name) makes the verdict unknown, unless the role
/// or a `staging:` entry says `offline: true`.
pub fn offline_verdict(reached: &[&Role], staged: &[Staged]) -> (Verdict, String) {
    let stages_apt = staged.iter().any(|s| !s.apt.is_empty());
    let stages_pip = staged.iter().any(|s| !s.pip.is_empty());
    let (mut needs, mut unread) = (Vec::new(), Vec::new());
    for (i, role) in reached.iter().enumerate() {
        let within = match i {
            0 => String::new(),
            _ => format!(" (in {}, which it includes)", role.name),
        };
        let tag = |n: String| format!("{n}{within}");
        needs.extend(
            role_needs(role, stages_apt, stages_pip)
                .into_iter()
                .map(tag),
        );
        if !(staged[0].declared_offline || staged[i].declared_offline) {
            unread.extend(role_unread(role).into_iter().map(tag));
        }
    }
    if !needs.is_empty() {
        return (
            Verdict::Network,
            format!("needs the network: {}", needs.join("; ")),
        );
    }
    if !unread.is_empty() {
        return (
            Verdict::Unknown,
            format!(
                "unknown: {}, which plan does not read; if that needs no network, say `offline: true` in the role's meta/parbake.yml or in `staging:` for it",
                unread.join("; ")
            ),
        );
    }
    let declared = staged.iter().any(|s| s.declared_offline);
    let staged = match (stages_apt, stages_pip) {
        (true, true) => "packages and wheels staged",
        (true, false) => "packages staged",
        (false, true) => "wheels staged",
        (false, false) if declared => "declared (`offline: true`)",
        (false, false) => "none of its modules reaches the network",
    };
    (Verdict::Offline, format!("offline: {staged}"))
}

/// What in one role's own task files plan cannot read: the first call of each command-like
/// module, and each role included by a templated name.
fn role_unread(role: &Role) -> Vec<String> {
    let refs = &role.refs;
    let commands = OPAQUE_MODULES
        .iter()
        .filter_map(|m| refs.at(m).map(|at| format!("runs `{m}` ({at})")));
    let dynamic = refs.dynamic.iter().map(|d| match d.line {
        Some(l) => format!("includes a role named `{}` ({}:{l})", d.expression, d.file),
        None => format!("includes a role named `{}` ({})", d.expression, d.file),
    });
    commands.chain(dynamic).collect()
}

/// What in one role's own task files reaches the network, given whether the launch role
/// stages packages and wheels.
fn role_needs(role: &Role, stages_apt: bool, stages_pip: bool) -> Vec<String> {
    let refs = &role.refs;
    let first = |modules: &[&str]| modules.iter().find_map(|m| refs.at(m)).map(str::to_string);
    let mut needs = Vec::new();
    if let Some(at) = first(&["apt", "package"]).filter(|_| !stages_apt) {
        needs.push(format!("installs packages ({at}) and stages none"));
    }
    if !refs.apt_refresh_always.is_empty() {
        needs.push(format!(
            "refreshes the apt lists on every run (update_cache with no cache_valid_time, or 0, in {})",
            refs.apt_refresh_always
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(at) = first(&["pip"]).filter(|_| !stages_pip) {
        needs.push(format!("installs with pip ({at}) and stages no wheels"));
    }
    let fetches: Vec<String> = NETWORK_MODULES
        .into_iter()
        .filter_map(|m| refs.at(m).map(|at| format!("{m} at {at}")))
        .collect();
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
