//! Vars and their lifetimes. `vars` are bake-time (hashed, passed at bake and launch);
//! `launch_vars` are launch-time (written into user-data, never hashed); a value tagged
//! `!secret ssm:/name` or `!secret file:/path` is a *reference* resolved on the instance at
//! launch. A secret's value never passes through parbake, so it can never land in user-data.
//!
//! Plain vars are templated by Ansible as usual (`{{ other_var }}` works). A value tagged
//! `!unsafe` is a *literal*: it reaches the roles byte for byte and is never templated, like
//! Ansible's own `!unsafe`. Secrets are always passed that way.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use super::yaml::SourceFile;
use super::ConfigError;

pub type Vars = BTreeMap<String, VarValue>;

#[derive(Debug, Clone, PartialEq)]
pub enum VarValue {
    Plain(serde_json::Value),
    /// `!unsafe VALUE`: passed to Ansible as unsafe, never templated.
    Literal(serde_json::Value),
    Secret(SecretRef),
}

/// Ansible's JSON encoding of an unsafe value (`ansible.parsing.ajson`): vars files are read
/// with that decoder, which wraps the inner value so that it is never templated.
pub const ANSIBLE_UNSAFE_KEY: &str = "__ansible_unsafe";

impl VarValue {
    /// The value as Ansible must read it from a JSON vars file (None for a secret, which only
    /// the instance resolves).
    pub fn ansible_json(&self) -> Option<serde_json::Value> {
        match self {
            VarValue::Plain(v) => Some(v.clone()),
            VarValue::Literal(v) => Some(unsafe_strings(v)),
            VarValue::Secret(_) => None,
        }
    }
}

/// A literal as Ansible must read it: every string leaf wrapped as `{"__ansible_unsafe": s}`,
/// lists and maps rebuilt around their wrapped leaves, numbers, booleans and null as they are
/// (they cannot be templated). Only strings are wrapped because ansible-core 2.19 and later
/// accept nothing else in the wrapper: one wrapped number, list or map makes their JSON reader
/// fail, and they silently re-read the whole vars file as YAML, where every wrapper becomes an
/// ordinary, templated map (secrets included).
pub fn unsafe_strings(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::String(_) => serde_json::json!({ ANSIBLE_UNSAFE_KEY: value }),
        J::Array(items) => J::Array(items.iter().map(unsafe_strings).collect()),
        J::Object(map) => J::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), unsafe_strings(v)))
                .collect(),
        ),
        J::Null | J::Bool(_) | J::Number(_) => value.clone(),
    }
}

impl Serialize for VarValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            VarValue::Plain(v) => v.serialize(s),
            // the same shape Ansible reads: a plain map of this shape means the same thing
            VarValue::Literal(_) => self.ansible_json().serialize(s),
            VarValue::Secret(r) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("secret", &r.to_string())?;
                m.end()
            }
        }
    }
}

/// Where the instance fetches a secret at launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// AWS SSM Parameter Store, fetched with decryption by the instance's own role.
    Ssm(String),
    /// A file present on the instance (mounted, or written by another agent).
    File(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Ssm(p) => write!(f, "ssm:{p}"),
            SecretRef::File(p) => write!(f, "file:{p}"),
        }
    }
}

pub fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks one vars section of a file and converts it.
pub fn check(
    file: &SourceFile,
    section: &str,
    raw: &BTreeMap<String, serde_yaml::Value>,
    launch: bool,
) -> Result<Vars, ConfigError> {
    let mut out = Vars::new();
    for (name, value) in raw {
        let path = if section.is_empty() {
            name.clone()
        } else {
            format!("{section}.{name}")
        };
        if !valid_var_name(name) {
            return Err(file
                .error_for(
                    &path,
                    None,
                    format!("`{name}` is not a valid Ansible variable name"),
                )
                .with_hint("use letters, digits and `_`, not starting with a digit")
                .into());
        }
        if name.starts_with("parbake_") {
            return Err(file
                .error_for(&path, None, format!("`{name}` uses the reserved prefix `parbake_`"))
                .with_hint("parbake sets parbake_stack, parbake_image, parbake_phase and parbake_layer itself")
                .into());
        }
        let converted = match value {
            serde_yaml::Value::Tagged(t) if t.tag == "secret" => {
                let secret = parse_secret(file, &path, &t.value)?;
                if !launch {
                    return Err(file
                        .error_for(&path, None, format!("secret `{name}` is a bake-time var"))
                        .with_hint("secrets are fetched on the instance at launch and are never baked; move it to `launch_vars`")
                        .into());
                }
                VarValue::Secret(secret)
            }
            serde_yaml::Value::Tagged(t) if t.tag == "unsafe" => {
                VarValue::Literal(to_json(file, &path, &t.value)?)
            }
            other => VarValue::Plain(to_json(file, &path, other)?),
        };
        out.insert(name.clone(), converted);
    }
    Ok(out)
}

fn parse_secret(
    file: &SourceFile,
    path: &str,
    value: &serde_yaml::Value,
) -> Result<SecretRef, ConfigError> {
    let text = value.as_str().unwrap_or("");
    if let Some(p) = text.strip_prefix("ssm:") {
        if !p.is_empty() {
            return Ok(SecretRef::Ssm(p.to_string()));
        }
    }
    if let Some(p) = text.strip_prefix("file:") {
        if p.starts_with('/') {
            return Ok(SecretRef::File(p.to_string()));
        }
    }
    Err(file
        .error_for(
            path,
            None,
            "a `!secret` must name where the instance fetches it; a literal value would be written into user-data",
        )
        .with_hint("write `!secret ssm:/parameter/name` (SSM Parameter Store) or `!secret file:/path/on/instance`")
        .into())
}

fn to_json(
    file: &SourceFile,
    path: &str,
    v: &serde_yaml::Value,
) -> Result<serde_json::Value, ConfigError> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => serde_json::Value::Null,
        Y::Bool(b) => (*b).into(),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                match serde_json::Number::from_f64(f) {
                    Some(n) => serde_json::Value::Number(n),
                    None => {
                        return Err(file
                            .error_for(path, None, format!("`{n}` is not a finite number"))
                            .with_hint("quote it to pass a string; vars are written as JSON, which has no infinity or NaN")
                            .into())
                    }
                }
            }
        }
        Y::String(s) => s.clone().into(),
        Y::Sequence(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|i| to_json(file, path, i))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut obj = serde_json::Map::new();
            for (k, val) in m {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => {
                        return Err(file
                            .error_for(path, None, "map keys in vars must be strings")
                            .into())
                    }
                };
                if key.starts_with("__ansible_") {
                    return Err(file
                        .error_for(path, None, format!("map key `{key}` is reserved"))
                        .with_hint("Ansible reads `__ansible_*` keys in JSON vars files as encodings (unsafe, vault); rename it, or tag the whole var `!unsafe` for a literal")
                        .into());
                }
                obj.insert(key, to_json(file, path, val)?);
            }
            serde_json::Value::Object(obj)
        }
        Y::Tagged(t) => return Err(nested_tag(file, path, &t.tag.to_string()).into()),
    })
}

/// A tag inside a var's value (a list item, a map value), at the tag's own line: only a whole
/// var is `!secret` or `!unsafe`. `tag` is as serde_yaml shows it, `!` included.
fn nested_tag(file: &SourceFile, path: &str, tag: &str) -> crate::config::Located {
    let name = path.rsplit('.').next().unwrap_or(path);
    let (line, column) = tag_line(&file.text, path, tag).unwrap_or((1, 1));
    let at = |message: String| file.error_at(line, column, Some(path.to_string()), message);
    match tag.trim_start_matches('!') {
        "secret" => at(format!("`!secret` inside the value of `{name}`: only a whole var can be a secret"))
            .with_hint(format!("make the secret a launch var of its own and reference it where the structure needs it:\n  launch_vars:\n    {name}_password: !secret ssm:/path/to/it\n    {name}: [{{password: \"{{{{ {name}_password }}}}\"}}]\nthe instance fetches it at launch and Ansible reads it unsafe, never templated")),
        "unsafe" => at(format!("`!unsafe` inside the value of `{name}`: only a whole var is tagged"))
            .with_hint(format!("tag the whole var, `{name}: !unsafe ...`: every string inside it is then literal")),
        _ => at(format!("unsupported YAML tag `{tag}` inside the value of `{name}`"))
            .with_hint("only a whole var can be `!secret` or `!unsafe`; other tags are not supported"),
    }
}

/// The line and column of `tag` (as `!secret`) at or below the var at `path`: the tag's own
/// line, best effort.
fn tag_line(text: &str, path: &str, tag: &str) -> Option<(usize, usize)> {
    let (start, _) = crate::config::yaml::locate(text, path, None)?;
    text.lines()
        .enumerate()
        .skip(start.saturating_sub(1))
        .find_map(|(i, l)| l.find(tag).map(|c| (i + 1, c + 1)))
        .or(Some((start, 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_literal_wraps_its_string_leaves_only() {
        let lit =
            VarValue::Literal(json!({"n": 5, "b": true, "z": null, "l": [1, "{{ x }}"], "s": "a"}));
        let u = |s: &str| json!({ ANSIBLE_UNSAFE_KEY: s });
        assert_eq!(
            lit.ansible_json().unwrap(),
            json!({"n": 5, "b": true, "z": null, "l": [1, u("{{ x }}")], "s": u("a")})
        );
        assert_eq!(
            VarValue::Literal(json!(7)).ansible_json().unwrap(),
            json!(7)
        );
        assert_eq!(
            VarValue::Literal(json!("{{ x }}")).ansible_json().unwrap(),
            u("{{ x }}")
        );
    }
}
