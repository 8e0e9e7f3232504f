//! A publish target belongs to one stack: two stack files that name one launch template (or
//! one SSM parameter) are refused, because `publish` and `rollback` move the template's
//! default among one stack's versions and would otherwise land on the other stack's. The
//! same rule is checked on EC2 at publish and rollback time (`targets::aws::publish`), for
//! stacks that live in different projects.

use std::collections::BTreeMap;

use super::{ConfigError, Stack};

/// Refuses the second stack (in name order) that names a launch template or SSM parameter
/// an earlier one names, pointing at both files.
pub fn check(stacks: &BTreeMap<String, Stack>) -> Result<(), ConfigError> {
    let mut templates: BTreeMap<&str, &Stack> = BTreeMap::new();
    let mut parameters: BTreeMap<&str, &Stack> = BTreeMap::new();
    for st in stacks.values() {
        let Some(p) = &st.def.publish else { continue };
        if let Some(first) = templates.insert(&p.launch_template, st) {
            return Err(shared(
                first,
                st,
                "publish.launch_template",
                &format!("launch template `{}`", p.launch_template),
                &format!("launch_template: {}-fleet", st.name),
            ));
        }
        if let Some(name) = &p.ssm_parameter {
            if let Some(first) = parameters.insert(name, st) {
                return Err(shared(
                    first,
                    st,
                    "publish.ssm_parameter",
                    &format!("SSM parameter `{name}`"),
                    &format!("ssm_parameter: /parbake/{}/ami", st.name),
                ));
            }
        }
    }
    Ok(())
}

/// `second`'s field names what `first`'s does.
fn shared(first: &Stack, second: &Stack, field: &str, what: &str, example: &str) -> ConfigError {
    let first_line = super::yaml::locate(&first.file.text, field, None).map_or(1, |(l, _)| l);
    second
        .file
        .error_for(
            field,
            None,
            format!(
                "{what} is also named by stack `{}` ({}:{first_line}): a publish target belongs to one stack",
                first.name, first.file.display
            ),
        )
        .with_hint(format!(
            "publish and rollback move it for one stack only; give stack `{}` its own, e.g. `{example}`",
            second.name
        ))
        .into()
}
