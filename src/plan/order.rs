//! Role order: the dependency-first order of roles, the run order with includes, and the
//! errors for cycles and chains too deep.

use std::collections::BTreeSet;

use super::PlanError;
use crate::config::{Project, Role, SourceFile};

/// The longest meta dependency chain parbake accepts, in roles (the first one included).
///
/// Ansible 2.14 takes time exponential in the depth of a meta dependency chain: a chain of 15
/// one-task roles runs in about 12 s, 17 in 33 s, 20 in over two minutes. 16 keeps a bake or a
/// launch within seconds of that cost; real roles nest a handful deep.
pub const MAX_DEPENDENCY_DEPTH: usize = 16;

pub(super) fn role<'p>(project: &'p Project, name: &str) -> Result<&'p Role, PlanError> {
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
pub(super) fn order_roles<'p>(
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
pub(super) fn show_chain(chain: &[&str]) -> String {
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
pub(super) fn too_deep(role: &Role, chain: &[&str], dep: &str) -> PlanError {
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
pub(super) fn chain(project: &Project, from: &str, to: &str) -> Option<Vec<String>> {
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

/// `role`, then every role it reaches by include or import, and their meta dependencies, that
/// runs at launch (not in `baked`: a baked role is a shim with no tasks), each once. A role
/// the project did not read (a collection's nested role) is left out: its collection ships
/// whole.
pub fn reached_at_launch<'a>(
    project: &'a Project,
    role: &'a Role,
    baked: &BTreeSet<&str>,
) -> Vec<&'a Role> {
    let mut out = vec![role];
    let mut seen: BTreeSet<&str> = BTreeSet::from([role.name.as_str()]);
    let mut i = 0;
    while i < out.len() {
        let next: Vec<&str> = out[i]
            .refs
            .roles
            .iter()
            .map(|r| r.role.as_str())
            .chain(if i == 0 {
                Vec::new()
            } else {
                out[i].deps.iter().map(String::as_str).collect()
            })
            .collect();
        for name in next {
            if baked.contains(name) || !seen.insert(name) {
                continue;
            }
            if let Some(r) = project.roles.get(name) {
                out.push(r);
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::show_chain;

    #[test]
    fn a_short_chain_is_shown_whole() {
        assert_eq!(show_chain(&["a", "b", "c"]), "a → b → c");
    }

    #[test]
    fn a_long_chain_keeps_three_at_each_end() {
        let chain = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        assert_eq!(show_chain(&chain), "a → b → c → … → g → h → i");
    }
}
