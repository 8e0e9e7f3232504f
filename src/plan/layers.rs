//! Layers: the base layer and the stack layer with their hashes, and the warnings about the
//! includes of the roles they run.

use std::collections::BTreeMap;

use super::hashing::LayerHasher;
use super::scope::Scope;
use super::{Layer, LayerKind};

/// The base layer, and the stack layer when something is promoted.
pub(super) fn layers(
    scope: &Scope<'_>,
    hasher: &LayerHasher,
    stack_runs: Vec<String>,
) -> Vec<Layer> {
    let (image, stack, basic) = (scope.image, scope.stack, &scope.basic);
    let base_parent = format!("source:{}", hasher.source_identity);
    let mut base_vars = scope.project.group_vars.all.clone();
    base_vars.extend(image.vars.clone());
    let (base_hash, base_inputs) = hasher.hash(LayerKind::Base, &base_parent, basic, &base_vars);
    let payload_hash = hasher.payload_hash();
    let base_run = hasher.run_hash(
        scope.project,
        LayerKind::Base,
        &base_parent,
        basic,
        &base_vars,
        &hasher.stage_apt,
        &hasher.stage_pip,
    );
    let base = Layer {
        index: 1,
        kind: LayerKind::Base,
        name: image.name.clone(),
        hash: base_hash,
        run_hash: base_run,
        payload_hash: payload_hash.clone(),
        inputs: base_inputs,
        parent: base_parent,
        runs: basic.clone(),
        baked: basic.clone(),
        vars: base_vars,
        stage_apt: hasher.stage_apt.clone(),
        stage_apt_without_recommends: hasher.stage_apt_without_recommends.clone(),
        stage_pip: hasher.stage_pip.clone(),
    };
    let mut layers = vec![base];
    if !stack_runs.is_empty() {
        let parent = format!("layer:{}", layers[0].hash);
        let mut vars = scope.project.group_vars.for_stack(&stack.name);
        vars.extend(image.vars.clone());
        vars.extend(stack.vars.clone());
        let mut baked = basic.clone();
        baked.extend(stack_runs.iter().cloned());
        let (hash, inputs) = hasher.hash(LayerKind::Stack, &parent, &stack_runs, &vars);
        let run_hash = hasher.run_hash(
            scope.project,
            LayerKind::Stack,
            &format!("run:{}", layers[0].run_hash),
            &stack_runs,
            &vars,
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        layers.push(Layer {
            index: 2,
            kind: LayerKind::Stack,
            name: format!("{}-{}", image.name, stack.name),
            hash,
            run_hash,
            payload_hash,
            inputs,
            parent,
            runs: stack_runs,
            baked,
            vars,
            stage_apt: BTreeMap::new(),
            stage_apt_without_recommends: Default::default(),
            stage_pip: BTreeMap::new(),
        });
    }
    layers
}

/// Warnings about the includes of the roles this stack runs: a templated role name (no one
/// can check or order it before run time), and an include of the entry point of a role that
/// an earlier layer baked, where the role's shim makes `tasks/main.yml` a no-op.
pub(super) fn include_warnings(scope: &Scope<'_>, layers: &[Layer]) -> Vec<String> {
    let mut warnings = Vec::new();
    // the layer each role runs in (launch: after the last layer)
    let ran_in = |r: &str| layers.iter().position(|l| l.runs.iter().any(|x| x == r));
    for name in &scope.stack_all {
        let Some(role) = scope.project.roles.get(name) else {
            continue;
        };
        for d in &role.refs.dynamic {
            warnings.push(format!(
                "{}:{}: {} with a templated name ({}): parbake cannot check or order it; the role it names must be installed on the image",
                d.file,
                d.line.unwrap_or(1),
                d.how,
                d.expression
            ));
        }
        let runs_at = ran_in(name).unwrap_or(layers.len());
        for inc in role.refs.roles.iter().filter(|i| i.runs_main()) {
            let Some(baked_at) = ran_in(&inc.role).filter(|&l| l < runs_at) else {
                continue;
            };
            warnings.push(format!(
                "{}: {} of `{}` runs its tasks/main.yml, which is a no-op where `{name}` runs: `{}` is baked in layer {} ({}); include a task file of it with `tasks_from`, or promote `{name}` into the same layer",
                inc.at(),
                inc.how,
                inc.role,
                inc.role,
                layers[baked_at].index,
                layers[baked_at].name
            ));
        }
    }
    warnings
}

/// Warnings about modules a role of the stack calls by a bare name that is not
/// ansible.builtin's, with no `collections:` keyword: ansible-core's routing finds their
/// collection (`postgresql_user` → community.postgresql), which parbake does not read, so it
/// cannot list the collection or check it is vendored.
pub(super) fn bare_module_warnings(scope: &Scope<'_>) -> Vec<String> {
    let mut warnings = Vec::new();
    for name in &scope.stack_all {
        let Some(role) = scope.project.roles.get(name) else {
            continue;
        };
        let refs = &role.refs;
        if !refs.routes_collections() {
            continue;
        }
        let first = refs
            .bare_collection_modules
            .iter()
            .next()
            .expect("not empty");
        let at = refs.at(first).unwrap_or(&role.name);
        warnings.push(format!(
            "{at}: role `{name}` calls {} by a bare name that is not ansible.builtin's; ansible-core's routing picks its collection, which plan does not list or check: write each as `namespace.collection.module`, or list the collection in the role's `collections:`",
            refs.bare_collection_modules
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    warnings
}

/// Warnings about a bake-time var that names a launch-only var (`vars: {dsn: "{{ db_password
/// }}"}` beside `launch_vars: {db_password: !secret ...}`): in a layer that runs roles at bake,
/// a role reading it templates a var that exists only at launch.
pub(super) fn launch_var_warnings(scope: &Scope<'_>, layers: &[Layer]) -> Vec<String> {
    let launch_only: Vec<&String> = scope
        .image
        .launch_vars
        .keys()
        .chain(scope.stack.launch_vars.keys())
        .collect();
    let mut warnings = Vec::new();
    for layer in layers.iter().filter(|l| !l.runs.is_empty()) {
        for (name, value) in &layer.vars {
            let crate::config::VarValue::Plain(v) = value else {
                continue;
            };
            let named: Vec<&&String> = launch_only
                .iter()
                .filter(|l| !layer.vars.contains_key(l.as_str()) && templates_name(v, l))
                .collect();
            if let Some(launch) = named.first() {
                warnings.push(format!(
                    "var `{name}` names launch var `{launch}`, which exists only at launch; layer {} ({}) runs {} at bake, where a role that reads `{name}` finds `{launch}` undefined: move `{name}` to launch_vars, or keep the roles that read it at launch",
                    layer.index,
                    layer.name,
                    layer.runs.join(", ")
                ));
            }
        }
    }
    warnings
}

/// Whether a string inside `v` has a Jinja expression (`{{ }}` or `{% %}`) naming `var`.
pub(super) fn templates_name(v: &serde_json::Value, var: &str) -> bool {
    match v {
        serde_json::Value::String(s) => jinja_names(s).any(|n| n == var),
        serde_json::Value::Array(items) => items.iter().any(|i| templates_name(i, var)),
        serde_json::Value::Object(m) => m.values().any(|i| templates_name(i, var)),
        _ => false,
    }
}

/// The identifiers inside the `{{ }}` and `{% %}` blocks of a string.
fn jinja_names(s: &str) -> impl Iterator<Item = &str> {
    let blocks = s.split("{{").skip(1).chain(s.split("{%").skip(1));
    blocks
        .map(|b| b.split(['}', '%']).next().unwrap_or(""))
        .flat_map(|b| b.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| !w.is_empty())
}
