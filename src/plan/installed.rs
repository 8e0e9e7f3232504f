//! Installed roles: every role a stack needs or includes is installed on the image, and each
//! vendored collection admits the image's ansible-core.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Located, Project};

use super::order::{chain, role, show_chain};
use super::PlanError;

/// Every role the stack needs must be installed on the image: otherwise the bake fails to
/// find it, or the runner rejects the plan at boot. Located at the image's `installed` list,
/// naming the chain from the basic or stack role that needs it.
/// Every role that a role of the stack includes or imports by a literal name must be a role
/// of the project and installed on the image: Ansible would fail at that task otherwise. Roles
/// of collections (`ns.collection.role`) come with their collection.
pub(super) fn check_includes(
    project: &Project,
    image: &crate::config::Image,
    runs: &[String],
) -> Result<(), PlanError> {
    let installed: BTreeSet<&str> = image.installed.iter().map(String::as_str).collect();
    for name in runs {
        for inc in role(project, name)?.refs.roles.iter() {
            let problem = if inc.in_collection() {
                // a collection's role comes with its collection: it must resolve, installed
                // or not (the overlay links it from the collection when it is not)
                collection_include_problem(project, name, inc)
            } else if !project.roles.contains_key(&inc.role) {
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

/// Why an include of a collection's role (`ns.collection.role`) does not resolve: a malformed
/// name, its collection not vendored, or the collection without that role.
/// A collection's role including one of its own collection is left to the collection, which
/// ships whole (its hash is in every layer hash): Ansible also resolves names parbake does
/// not plan, such as nested roles (`ovirt.ovirt.infra.roles.mac_pools`).
fn collection_include_problem(
    project: &Project,
    includer: &str,
    inc: &crate::config::role_refs::RoleRef,
) -> Option<(String, Vec<String>)> {
    let own = crate::config::names::split_collection_role(includer)
        .is_some_and(|(collection, _)| inc.role.starts_with(&format!("{collection}.")));
    if own || project.roles.contains_key(&inc.role) {
        return None;
    }
    crate::config::vendored::collection_role_problem(&inc.role, project.vendored.as_ref())
        .map(|(message, hints)| (format!("{} of `{}`: {message}", inc.how, inc.role), hints))
}

/// `namespace.name` → version of every vendored collection.
pub(super) fn vendored_collections(project: &Project) -> BTreeMap<String, String> {
    project
        .vendored
        .iter()
        .flat_map(|v| v.collections().values())
        .map(|c| (c.name.clone(), c.version.clone()))
        .collect()
}

/// Every vendored collection's `requires_ansible` must admit the ansible-core the image runs
/// on `target`: its pin, or its base's package.
pub(super) fn check_requires_ansible(
    project: &Project,
    image: &crate::config::Image,
    target: &str,
) -> Result<(), PlanError> {
    use crate::config::ansible_version::{image_core, satisfies, Version};
    let Some(v) = &project.vendored else {
        return Ok(());
    };
    let (core, whose) = image_core(&image.def, target);
    let version = Version::parse(&core).expect("a checked version");
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

/// The ansible-core an image runs on a target, for [`check_role_limits`].
struct ImageCore {
    image: String,
    version: crate::config::ansible_version::Version,
    core: String,
    whose: String,
    hint: String,
}

/// Each role the stack runs (at bake or at launch), with the roles it includes, against the
/// ansible-core the image runs on `target`: its `galaxy_info.min_ansible_version`, and the
/// builtin modules it calls that this ansible-core lacks, each at its file and line.
pub(super) fn check_role_limits(
    project: &Project,
    image: &crate::config::Image,
    target: &str,
    runs: &[String],
) -> Result<(), PlanError> {
    use crate::config::ansible_version::{image_core, Version};
    let (core, whose) = image_core(&image.def, target);
    let at = ImageCore {
        image: image.name.clone(),
        version: Version::parse(&core).expect("a checked version"),
        core,
        whose,
        hint: format!(
            "pin an ansible-core that has it in {} (`ansible: {{core: \"X.Y.Z\"}}`), or use a base whose package does",
            image.file.display
        ),
    };
    let no_baked = BTreeSet::new();
    let mut checked = BTreeSet::new();
    for top in runs {
        let reached = super::order::reached_at_launch(project, role(project, top)?, &no_baked);
        for r in reached {
            if checked.insert(r.name.as_str()) {
                check_min_ansible(r, &at)?;
                check_builtin_modules(r, &at)?;
            }
        }
    }
    Ok(())
}

/// A role's `galaxy_info.min_ansible_version` against the image's ansible-core.
fn check_min_ansible(r: &crate::config::Role, at: &ImageCore) -> Result<(), PlanError> {
    use crate::config::ansible_version::Version;
    let (Some((min, line)), Some(file)) = (&r.min_ansible, &r.meta_file) else {
        return Ok(());
    };
    if Version::parse(min).is_none_or(|m| at.version >= m) {
        return Ok(());
    }
    let message = format!(
        "role `{}` needs ansible-core {min} or later; image `{}` runs {} ({})",
        r.name, at.image, at.core, at.whose
    );
    let field = Some("galaxy_info.min_ansible_version".to_string());
    let located = file
        .error_at(*line, 1, field, message)
        .with_hint(at.hint.clone());
    Err(PlanError::RoleNeedsAnsible(Box::new(located)))
}

/// The builtin modules a role calls that the image's ansible-core lacks, at the first call.
fn check_builtin_modules(r: &crate::config::Role, at: &ImageCore) -> Result<(), PlanError> {
    for (module, (file, line, text)) in &r.refs.limited_modules {
        let Some(why) = crate::config::builtin_modules::missing_in(module, &at.version) else {
            continue;
        };
        let located = Located {
            file: file.clone(),
            line: *line,
            column: text.len() - text.trim_start().len() + 1,
            field: None,
            message: format!(
                "role `{}` calls {why} ({}, on image `{}`)",
                r.name, at.whose, at.image
            ),
            line_text: text.clone(),
            hints: vec![at.hint.clone()],
        };
        return Err(PlanError::RoleNeedsAnsible(Box::new(located)));
    }
    Ok(())
}

/// A located error at an include task.
pub(super) fn include_error(
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

pub(super) fn check_installed(
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
        let file = project
            .roles
            .get(dependent)
            .and_then(|r| r.meta_file.as_ref());
        let place = file.map_or("its meta/main.yml".to_string(), |f| f.display.clone());
        at = at.with_hint(format!("`{dependent}` depends on `{missing}` in {place}"));
    }
    Err(PlanError::NotInstalled(Box::new(at)))
}
