//! `checks:` in a stack file: health checks that run on the instance after the launch roles
//! (the runner's `run_check`), so the same gate holds on qemu, on EC2 and in production
//! launches. A check names its kind by the key that holds its subject:
//!
//! ```yaml
//! checks:
//!   - http: /            # GET http://127.0.0.1:80/ answers 200 ...
//!     body: stack=web    # ... with this in the body
//!   - unit: nginx.service
//!   - port: 8000
//!   - command: [/usr/bin/test, -s, /etc/app.conf]
//!   - file: /var/lib/worker/heartbeat
//!     max_age: 2m
//! ```
//!
//! Each is probed until it passes or its `timeout` (default 30s) passes. Checks are
//! launch-time only: they travel in the launch spec, never in a layer hash. Their values reach
//! the spec through serde_json and the runner runs a command's argv without a shell.

use super::model::CheckDef;
use super::yaml::SourceFile;
use super::ConfigError;
use super::Located;
use crate::contract::spec::{Check, CheckKind};

/// The most checks a stack may have: each can wait its timeout at every launch.
pub const MAX_CHECKS: usize = 64;
/// A check's timeout when it sets none.
pub const DEFAULT_CHECK_TIMEOUT_S: u64 = 30;
const KINDS: &str = "http, unit, port, command or file";
const MAX_TEXT: usize = 4096;

/// The kind of a check as written, and the fields that kind takes besides `name` and
/// `timeout`.
fn kind_of(def: &CheckDef) -> Result<(&'static str, &'static [&'static str]), String> {
    let named: Vec<&str> = [
        ("http", def.http.is_some()),
        ("unit", def.unit.is_some()),
        ("command", def.command.is_some()),
        ("file", def.file.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    match named[..] {
        [] if def.port.is_some() => Ok(("port", &["port"])),
        [] => Err(format!("a check names its kind: one of {KINDS}")),
        ["http"] => Ok(("http", &["http", "port", "status", "body"])),
        ["unit"] => Ok(("unit", &["unit"])),
        ["command"] => Ok(("command", &["command"])),
        ["file"] => Ok(("file", &["file", "contains", "max_age"])),
        _ => Err(format!(
            "a check has one kind; this one has {}",
            named.join(" and ")
        )),
    }
}

/// The fields set on a check, by name, besides `name` and `timeout`.
fn fields_set(def: &CheckDef) -> Vec<&'static str> {
    [
        ("http", def.http.is_some()),
        ("unit", def.unit.is_some()),
        ("port", def.port.is_some()),
        ("command", def.command.is_some()),
        ("file", def.file.is_some()),
        ("status", def.status.is_some()),
        ("body", def.body.is_some()),
        ("contains", def.contains.is_some()),
        ("max_age", def.max_age.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect()
}

/// A problem with one check: the field it is in, the message and the hint.
struct Problem {
    field: &'static str,
    message: String,
    hint: String,
}

fn problem(field: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Problem {
    Problem {
        field,
        message: message.into(),
        hint: hint.into(),
    }
}

/// `checks:` validated into what the launch spec carries, in order.
pub fn check_checks(file: &SourceFile, defs: &[CheckDef]) -> Result<Vec<Check>, ConfigError> {
    if defs.len() > MAX_CHECKS {
        return Err(file
            .error_for("checks", None, format!("{} checks; at most {MAX_CHECKS}", defs.len()))
            .with_hint("each check can wait its timeout at every launch: keep the ones that tell a broken instance from a working one")
            .into());
    }
    if let Some((i, field, tag)) = tagged(&file.text) {
        let p = problem(
            field,
            format!("a check's value cannot be tagged `{tag}`"),
            "checks hold plain values: a secret is resolved for the roles only, and a check's values are never templated",
        );
        return Err(located(file, i, p).into());
    }
    let mut out: Vec<Check> = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        let check = one_check(def).map_err(|p| located(file, i, p))?;
        if out.iter().any(|c| c.name == check.name) {
            let p = problem(
                "name",
                format!("two checks are named `{}`", check.name),
                "give one of them its own `name:`",
            );
            return Err(located(file, i, p).into());
        }
        out.push(check);
    }
    Ok(out)
}

/// The first tagged value (`!secret`, `!unsafe`) in `checks:`, which the typed reading would
/// take as its plain text: the item, its field and the tag.
fn tagged(text: &str) -> Option<(usize, &'static str, String)> {
    use serde_yaml::Value;
    let doc: Value = serde_yaml::from_str(text).ok()?;
    let items = doc.get("checks")?.as_sequence()?;
    for (i, item) in items.iter().enumerate() {
        let Some(map) = item.as_mapping() else {
            continue;
        };
        for (key, value) in map {
            let inner: Vec<&Value> = match value {
                Value::Sequence(s) => s.iter().chain([value]).collect(),
                v => vec![v],
            };
            if let Some(Value::Tagged(t)) =
                inner.into_iter().find(|v| matches!(v, Value::Tagged(_)))
            {
                let field = FIELDS
                    .iter()
                    .find(|f| key.as_str() == Some(**f))
                    .copied()
                    .unwrap_or("kind");
                return Some((i, field, t.tag.to_string()));
            }
        }
    }
    None
}

/// Every field a check takes.
const FIELDS: [&str; 11] = [
    "name", "http", "unit", "port", "command", "file", "status", "body", "contains", "max_age",
    "timeout",
];

/// The error for check `index`, at the line of its field where the file shows it.
fn located(file: &SourceFile, index: usize, p: Problem) -> Located {
    let (line, column) = locate_item_field(&file.text, "checks", index, p.field)
        .unwrap_or_else(|| super::yaml::locate(&file.text, "checks", None).unwrap_or((1, 1)));
    file.error_at(
        line,
        column,
        Some(format!("checks[{index}].{}", p.field)),
        p.message,
    )
    .with_hint(p.hint)
}

fn one_check(def: &CheckDef) -> Result<Check, Problem> {
    let (kind, takes) = kind_of(def).map_err(|m| {
        problem(
            "kind",
            m,
            "write one of `http: /path`, `unit: name.service`, `port: 8000`, `command: [/abs/path, arg]` or `file: /abs/path`",
        )
    })?;
    if let Some(extra) = fields_set(def).into_iter().find(|f| !takes.contains(f)) {
        return Err(problem(
            extra,
            format!("`{extra}` does not belong to a {kind} check"),
            format!(
                "a {kind} check takes {}, `name` and `timeout`",
                takes
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let timeout_s = match &def.timeout {
        None => DEFAULT_CHECK_TIMEOUT_S,
        Some(v) => duration(v, 1, 3600).map_err(|m| {
            problem(
                "timeout",
                m,
                "a check's timeout is 1s to 1h with units, e.g. `timeout: 2m`; omitted: 30s",
            )
        })?,
    };
    let kind = match kind {
        "http" => http(def)?,
        "unit" => {
            let unit = def.unit.clone().unwrap_or_default();
            if !valid_unit(&unit) {
                return Err(problem(
                    "unit",
                    format!("{unit:?} is not a systemd unit name"),
                    "name the unit as systemctl does, e.g. `unit: nginx.service` (letters, digits and `:_.@-`)",
                ));
            }
            CheckKind::Unit { unit }
        }
        "port" => CheckKind::Port {
            port: port(def.port)?,
        },
        "command" => command(def.command.as_deref().unwrap_or_default())?,
        _ => file_check(def)?,
    };
    let name =
        match &def.name {
            Some(n) if valid_check_name(n) => n.clone(),
            Some(n) => return Err(problem(
                "name",
                format!("{n:?} is not a check name"),
                "a check name is printable ASCII, 1 to 128 characters, not starting with a space",
            )),
            None => default_name(&kind),
        };
    Ok(Check {
        name,
        kind,
        timeout_s,
    })
}

fn http(def: &CheckDef) -> Result<CheckKind, Problem> {
    let path = def.http.clone().unwrap_or_default();
    if !valid_http_path(&path) {
        return Err(problem(
            "http",
            format!("{path:?} is not a URL path"),
            "write the path the check GETs from 127.0.0.1, starting with `/`, with no spaces (percent-encode them), e.g. `http: /healthz`",
        ));
    }
    let port = match def.port {
        None => 80,
        p => port(p)?,
    };
    let status = def.status.unwrap_or(200);
    if !(100..=599).contains(&status) {
        return Err(problem(
            "status",
            format!("{status} is not an HTTP status"),
            "the status the page must answer, 100 to 599; omitted: 200",
        ));
    }
    if let Some(body) = &def.body {
        text("body", body)?;
    }
    Ok(CheckKind::Http {
        port,
        path,
        status: status as u16,
        body: def.body.clone(),
    })
}

fn port(p: Option<u64>) -> Result<u16, Problem> {
    match p {
        Some(p @ 1..=65535) => Ok(p as u16),
        Some(p) => Err(problem(
            "port",
            format!("{p} is not a TCP port"),
            "a port is 1 to 65535; the check connects to 127.0.0.1",
        )),
        None => Err(problem("port", "no port", "write `port: 8000`")),
    }
}

fn command(argv: &[String]) -> Result<CheckKind, Problem> {
    let hint = "write the argv as a list whose first item is an absolute path, e.g. `command: [/usr/bin/test, -s, /etc/app.conf]`; no shell runs it";
    match argv.first() {
        None => return Err(problem("command", "the command is empty", hint)),
        Some(a) if !a.starts_with('/') => {
            return Err(problem(
                "command",
                format!("{a:?} is not an absolute path"),
                hint,
            ))
        }
        _ => {}
    }
    if argv.len() > 64 {
        return Err(problem(
            "command",
            format!("{} arguments; at most 64", argv.len()),
            hint,
        ));
    }
    for a in argv {
        text("command", a)?;
    }
    Ok(CheckKind::Command {
        argv: argv.to_vec(),
    })
}

fn file_check(def: &CheckDef) -> Result<CheckKind, Problem> {
    let path = def.file.clone().unwrap_or_default();
    text("file", &path)?;
    if !valid_file_path(&path) {
        return Err(problem(
            "file",
            format!("{path:?} is not an absolute path"),
            "write the file's absolute path, without `..`, e.g. `file: /var/lib/worker/heartbeat`",
        ));
    }
    if let Some(c) = &def.contains {
        text("contains", c)?;
    }
    let max_age_s = match &def.max_age {
        None => None,
        Some(v) => Some(duration(v, 1, 24 * 3600).map_err(|m| {
            problem(
                "max_age",
                m,
                "how recently the file must have been written, 1s to 24h with units, e.g. `max_age: 2m`",
            )
        })?),
    };
    Ok(CheckKind::File {
        path,
        contains: def.contains.clone(),
        max_age_s,
    })
}

/// A value a check matches or runs: 1 to 4096 bytes, no control character.
fn text(field: &'static str, value: &str) -> Result<(), Problem> {
    if !valid_text(value) {
        return Err(problem(
            field,
            format!("`{field}` must be 1 to {MAX_TEXT} bytes with no control characters"),
            "checks match and run plain text; put anything longer or binary in a file the role writes, and check that",
        ));
    }
    Ok(())
}

/// A duration with units within [min, max] seconds.
fn duration(v: &serde_yaml::Value, min: u64, max: u64) -> Result<u64, String> {
    match v.as_str().map(|s| (s, super::duration::parse_duration(s))) {
        Some((_, Some(s))) if (min..=max).contains(&s) => Ok(s),
        Some((t, Some(_))) => Err(format!("{t:?} is out of range")),
        Some((t, None)) => Err(format!("{t:?} is not a duration")),
        None => match v {
            serde_yaml::Value::Number(n) => Err(format!("{n} has no unit")),
            _ => Err("a duration such as `30s`".into()),
        },
    }
}

/// A value a check matches or runs (`body`, `contains`, each item of `command`, a file's
/// path): 1 to 4096 bytes, no control character.
pub fn valid_text(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_TEXT && !value.chars().any(char::is_control)
}

/// An http check's path: `/` then printable ASCII but the space, at most 1024 bytes.
pub fn valid_http_path(path: &str) -> bool {
    path.starts_with('/') && path.len() <= 1024 && path.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// A file check's path: a text, absolute, with no `..` component.
pub fn valid_file_path(path: &str) -> bool {
    valid_text(path) && path.starts_with('/') && !path.split('/').any(|c| c == "..")
}

/// The rule of each text field of a check (and of the spec's role names, `role`), by the name
/// the runner's `FIELD_RULES` and tests/fixtures/contract/names.json give it: one rule per
/// field on both sides.
pub fn field_rule(field: &str) -> Option<fn(&str) -> bool> {
    Some(match field {
        "name" => valid_check_name,
        "http" => valid_http_path,
        "unit" => valid_unit,
        "text" => valid_text,
        "file" => valid_file_path,
        "role" => super::names::valid_role_ref,
        _ => return None,
    })
}

/// A systemd unit name as `systemctl is-active` takes it.
pub fn valid_unit(unit: &str) -> bool {
    !unit.is_empty()
        && unit.len() <= 255
        && !unit.starts_with('-')
        && unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_.@-".contains(c))
}

/// A check's name reaches status.json and console lines: printable ASCII, 1 to 128
/// characters, not starting with a space.
pub fn valid_check_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(' ')
        && name.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// `http :80/healthz`, `unit nginx.service`, `port 8000`, `command /usr/bin/test`,
/// `file /var/lib/x`: cut to a valid name.
fn default_name(kind: &CheckKind) -> String {
    let name = match kind {
        CheckKind::Http { port, path, .. } => format!("http :{port}{path}"),
        CheckKind::Unit { unit } => format!("unit {unit}"),
        CheckKind::Port { port } => format!("port {port}"),
        CheckKind::Command { argv } => format!("command {}", argv[0]),
        CheckKind::File { path, .. } => format!("file {path}"),
    };
    let name: String = name
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(128)
        .collect();
    name
}

/// The (line, column) of `field` in item `index` of the block list under the top-level key
/// `key`, or of the item itself when the field is not on a line of its own. Best effort:
/// block style as people write it; None when it cannot tell (flow style).
fn locate_item_field(text: &str, key: &str, index: usize, field: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("{key}:")))?;
    let mut item_indent = None;
    let mut items: Vec<usize> = Vec::new();
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 && !trimmed.starts_with("- ") {
            end = i;
            break;
        }
        if trimmed.starts_with("- ") && item_indent.is_none_or(|n| n == indent) {
            item_indent = Some(indent);
            items.push(i);
        }
    }
    let first = *items.get(index)?;
    let last = items.get(index + 1).copied().unwrap_or(end);
    for (i, line) in lines.iter().enumerate().take(last).skip(first) {
        let bare = line.trim_start().trim_start_matches("- ");
        if bare.starts_with(&format!("{field}:")) {
            return Some((i + 1, line.len() - bare.len() + 1));
        }
    }
    let line = lines[first];
    Some((first + 1, line.len() - line.trim_start().len() + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_their_fields_are_located_in_block_lists() {
        let text = "image: x\nchecks:\n  - http: /\n    status: 700\n  - unit: nginx\n  # note\n  - file: /x\n    max_age: 3\nroles: []\n";
        assert_eq!(locate_item_field(text, "checks", 0, "status"), Some((4, 5)));
        assert_eq!(locate_item_field(text, "checks", 1, "unit"), Some((5, 5)));
        assert_eq!(
            locate_item_field(text, "checks", 2, "max_age"),
            Some((8, 5))
        );
        // a field the item does not show: the item's line
        assert_eq!(locate_item_field(text, "checks", 1, "name"), Some((5, 3)));
        assert_eq!(locate_item_field(text, "checks", 3, "name"), None);
        assert_eq!(
            locate_item_field("checks: [{http: /}]\n", "checks", 0, "http"),
            None
        );
    }

    #[test]
    fn default_names_are_valid_names() {
        let kinds = [
            CheckKind::Http {
                port: 80,
                path: "/a?b=c".into(),
                status: 200,
                body: None,
            },
            CheckKind::Unit {
                unit: "nginx.service".into(),
            },
            CheckKind::Port { port: 8000 },
            CheckKind::Command {
                argv: vec!["/usr/bin/test".into()],
            },
            CheckKind::File {
                path: "/var/lib/é".into(),
                contains: None,
                max_age_s: None,
            },
        ];
        for k in &kinds {
            assert!(valid_check_name(&default_name(k)), "{}", default_name(k));
        }
        assert_eq!(default_name(&kinds[0]), "http :80/a?b=c");
        assert_eq!(default_name(&kinds[4]), "file /var/lib/?");
    }

    #[test]
    fn unit_names_follow_systemctl() {
        for ok in ["nginx", "nginx.service", "getty@tty1.service", "a:b_c-d"] {
            assert!(valid_unit(ok), "{ok}");
        }
        for bad in ["", "-x", "a b", "a;b", "a/b", &"u".repeat(256)] {
            assert!(!valid_unit(bad), "{bad}");
        }
    }
}
