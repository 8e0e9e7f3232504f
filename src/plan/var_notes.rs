//! Notes about stack vars no role of the stack reads: a var meant for a basic role (which
//! runs in the base layer, where stack vars never reach), or one no role names at all.

use super::scope::Scope;

/// One note per stack var (`vars` and `launch_vars` of the stack file) that no role the
/// stack runs past its base layer names, nor another var's template. Names are matched as
/// identifiers in the roles' tasks, handlers, defaults, vars, templates and meta, so a var
/// read only through `lookup('vars', ...)` with a built name can be missed: a note, never an
/// error.
pub(super) fn unread_stack_vars(scope: &Scope<'_>) -> Vec<String> {
    let stack = scope.stack;
    let mut notes = Vec::new();
    for name in stack.vars.keys().chain(stack.launch_vars.keys()) {
        if read_by_stack_roles(scope, name) || named_by_another_var(scope, name) {
            continue;
        }
        let basic: Vec<&str> = scope
            .basic
            .iter()
            .filter(|r| names(scope, r, name))
            .map(String::as_str)
            .collect();
        notes.push(match basic.as_slice() {
            [] => format!(
                "stack var `{name}`: no role of stack `{}` names it; check its spelling against the roles' defaults",
                stack.name
            ),
            roles => format!(
                "stack var `{name}` is read only by basic role(s) {}, which run in the base layer, where stack vars never reach; set it in {} `vars:` instead",
                roles.join(", "),
                scope.image.file.display
            ),
        });
    }
    notes
}

/// Whether a role the stack runs after its base layer (its own roles, their dependencies and
/// what they include) names `var`.
fn read_by_stack_roles(scope: &Scope<'_>, var: &str) -> bool {
    scope
        .stack_all
        .iter()
        .filter(|r| !scope.is_basic(r))
        .any(|r| names(scope, r, var))
}

fn names(scope: &Scope<'_>, role: &str, var: &str) -> bool {
    scope
        .project
        .roles
        .get(role)
        .is_some_and(|r| r.words.contains(var))
}

/// Whether another var the stack's roles see names `var` in a template.
fn named_by_another_var(scope: &Scope<'_>, var: &str) -> bool {
    let (image, stack) = (scope.image, scope.stack);
    let all = [
        &image.vars,
        &stack.vars,
        &image.launch_vars,
        &stack.launch_vars,
    ];
    all.iter()
        .flat_map(|vars| vars.iter())
        .filter(|(k, _)| k.as_str() != var)
        .any(|(_, v)| match v {
            crate::config::VarValue::Plain(v) => super::layers::templates_name(v, var),
            _ => false,
        })
}
