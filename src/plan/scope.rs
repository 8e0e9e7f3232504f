//! Scope and promotions: what a plan is about (stack, image, role sets) and which roles the
//! stack layer bakes.

use std::collections::BTreeSet;

use crate::config::Project;

use super::installed::{
    check_includes, check_installed, check_requires_ansible, check_role_limits,
};
use super::order::chain;
use super::order::{dependency_order, run_order};
use super::{PlanError, PlanRequest, Promotion};

/// What a plan is about: the stack, its image, and the role sets every step reads.
pub(super) struct Scope<'p> {
    pub(super) project: &'p Project,
    pub(super) req: &'p PlanRequest,
    pub(super) stack: &'p crate::config::Stack,
    pub(super) image: &'p crate::config::Image,
    pub(super) launch_only: BTreeSet<&'p str>,
    /// The basic roles and their dependencies, in order.
    pub(super) basic: Vec<String>,
    /// Everything the stack runs (basic roles first), in dependency order.
    pub(super) stack_all: Vec<String>,
}

impl Scope<'_> {
    pub(super) fn is_basic(&self, role: &str) -> bool {
        self.basic.iter().any(|b| b == role)
    }
}

/// The stack and image, the whole dependency graph checked, the basic roles checked, and
/// the stack's roles in order, all installed.
pub(super) fn scope<'p>(
    project: &'p Project,
    req: &'p PlanRequest,
) -> Result<Scope<'p>, PlanError> {
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
    let target = req.target.to_string();
    check_requires_ansible(project, image, &target)?;
    check_role_limits(project, image, &target, &stack_all)?;
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
pub(super) type Promoted = (Vec<Promotion>, Vec<String>, Vec<String>);

pub(super) fn promotions(scope: &Scope<'_>) -> Result<Promoted, PlanError> {
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
pub(super) fn check_promotable(scope: &Scope<'_>, p: &str) -> Result<(), PlanError> {
    let vendored = scope.project.vendored.as_ref();
    if let Some((message, hints)) = (!scope.project.roles.contains_key(p))
        .then(|| crate::config::vendored::collection_role_problem(p, vendored))
        .flatten()
    {
        return Err(PlanError::CollectionRole {
            message: format!("cannot promote `{p}`: {message}"),
            hints,
        });
    }
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
