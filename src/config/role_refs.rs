//! What a role's task files say about other roles and collections, read statically as
//! Ansible would see them before running anything: `include_role` and `import_role` with a
//! literal name (dependencies the planner checks and orders), the same with a templated name
//! (reported, since no one can know them before run time), the collections named by the
//! fully qualified module names of its tasks, and the modules themselves (what `plan` reads to
//! say whether a launch role needs the network).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_yaml::Value;

use super::yaml::SourceFile;
use super::ConfigError;

/// `include_role` / `import_role` of a role named literally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleRef {
    /// The role's name as written (`x`, `ns.x`, or `ns.collection.x` for a collection's role).
    pub role: String,
    /// `include_role` (run time) or `import_role` (parse time).
    pub how: &'static str,
    /// `tasks_from`, if given: the task file of the role that runs.
    pub tasks_from: Option<String>,
    /// `roles/<role>/tasks/…`, and the 1-based line of the task's module key.
    pub file: String,
    pub line: Option<usize>,
    /// The text of that line, for the caret under an error.
    #[serde(skip)]
    pub line_text: String,
}

impl RoleRef {
    /// A role that belongs to a collection (`ns.collection.role`), not a role directory.
    pub fn in_collection(&self) -> bool {
        self.role.split('.').count() >= 3
    }
    /// Whether the included entry point is the role's `tasks/main.yml`.
    pub fn runs_main(&self) -> bool {
        matches!(
            self.tasks_from.as_deref(),
            None | Some("main") | Some("main.yml") | Some("main.yaml")
        )
    }
    pub fn at(&self) -> String {
        match self.line {
            Some(l) => format!("{}:{l}", self.file),
            None => self.file.clone(),
        }
    }
}

/// An include or import whose role name is templated, or otherwise not a literal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DynamicRef {
    pub expression: String,
    pub how: &'static str,
    pub file: String,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoleRefs {
    pub roles: Vec<RoleRef>,
    pub dynamic: Vec<DynamicRef>,
    /// `namespace.collection` of every fully qualified module outside ansible.builtin.
    pub collections: BTreeSet<String>,
    /// Every module its tasks call, `ansible.builtin.`/`ansible.legacy.` dropped (`apt`,
    /// `pip`), other collections' modules fully qualified.
    pub modules: BTreeSet<String>,
    /// Files with an `apt` task that refreshes the lists on every run: `update_cache` without
    /// `cache_valid_time`, which no staged state makes fresh.
    pub apt_refresh_always: BTreeSet<String>,
    /// The role's apt tasks (`apt`, `package`), and how many of them say
    /// `install_recommends: false`: staging follows the same policy.
    pub apt_tasks: usize,
    pub apt_tasks_without_recommends: usize,
    /// Where a builtin module that only some ansible-core versions have is first called
    /// ([`crate::config::builtin_modules`]): module → (file, 1-based line, the line's text).
    pub limited_modules: BTreeMap<String, (String, usize, String)>,
    /// Bare module names that are not ansible.builtin's (`postgresql_user`): a collection's,
    /// resolved by the `collections:` keyword or by ansible-core's routing.
    pub bare_collection_modules: BTreeSet<String>,
    /// Collections named by a `collections:` keyword of its tasks or its meta/main.yml.
    pub collections_keyword: BTreeSet<String>,
    /// Where each module of [`RoleRefs::modules`] is first called: module → `file:line` (or
    /// the file, when no line is found), for the reasons plan gives.
    pub called_at: BTreeMap<String, String>,
}

impl RoleRefs {
    /// Where `module` is first called, if it is.
    pub fn at(&self, module: &str) -> Option<&str> {
        self.called_at.get(module).map(String::as_str)
    }

    /// Whether ansible-core's routing, not parbake, picks a collection for it: a bare module
    /// name that is not ansible.builtin's, with no `collections:` keyword.
    pub fn routes_collections(&self) -> bool {
        !self.bare_collection_modules.is_empty() && self.collections_keyword.is_empty()
    }
}

/// Modules that run a command line or script: what they reach is in the command, which plan
/// does not judge, so a role calling one is never called "offline" on plan's word alone.
pub const OPAQUE_MODULES: [&str; 5] = ["command", "shell", "raw", "script", "expect"];

/// Task keywords: every other key of a task is its module (playbook keywords, ansible-core 2.14).
const TASK_KEYWORDS: [&str; 42] = [
    "name",
    "action",
    "args",
    "async",
    "become",
    "become_exe",
    "become_flags",
    "become_method",
    "become_user",
    "changed_when",
    "check_mode",
    "collections",
    "connection",
    "debugger",
    "delay",
    "delegate_facts",
    "delegate_to",
    "diff",
    "environment",
    "failed_when",
    "ignore_errors",
    "ignore_unreachable",
    "listen",
    "local_action",
    "loop",
    "loop_control",
    "module_defaults",
    "no_log",
    "notify",
    "poll",
    "port",
    "register",
    "remote_user",
    "retries",
    "run_once",
    "tags",
    "throttle",
    "timeout",
    "until",
    "vars",
    "when",
    "any_errors_fatal",
];

/// The module a task key names, short for ansible.builtin and ansible.legacy; None for a
/// task keyword.
fn module_of(key: &str) -> Option<String> {
    if TASK_KEYWORDS.contains(&key) || key.starts_with("with_") || BLOCK_KEYS.contains(&key) {
        return None;
    }
    let short = key
        .strip_prefix("ansible.builtin.")
        .or_else(|| key.strip_prefix("ansible.legacy."))
        .unwrap_or(key);
    Some(short.to_string())
}

/// Whether an `apt` task's arguments refresh the lists on every run: `update_cache` true and
/// no `cache_valid_time`, or `cache_valid_time: 0` (the module then treats any age as stale;
/// community.zabbix's agent role says 0). Both the mapping and the
/// `key=value` forms; a templated `update_cache` counts as true.
/// An apt task's `install_recommends: false` (or `no`, in either argument form).
fn without_recommends(args: &Value) -> bool {
    let falsy = |v: &str| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "false" | "no" | "0" | "off" | "n"
        )
    };
    match args {
        Value::Mapping(m) => match m.get("install_recommends") {
            Some(Value::Bool(b)) => !*b,
            Some(Value::String(s)) => falsy(s),
            _ => false,
        },
        Value::String(s) => s
            .split_whitespace()
            .any(|w| w.strip_prefix("install_recommends=").is_some_and(falsy)),
        _ => false,
    }
}

fn apt_refreshes_always(args: &Value) -> bool {
    let truthy = |v: &str| {
        !matches!(
            v.to_ascii_lowercase().as_str(),
            "false" | "no" | "0" | "off" | "n"
        )
    };
    match args {
        Value::Mapping(m) => {
            let update = match m.get("update_cache") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => truthy(s),
                Some(_) | None => false,
            };
            let zero = |v: &Value| match v {
                Value::Number(n) => n.as_u64() == Some(0),
                Value::String(s) => s.trim() == "0",
                _ => false,
            };
            update && m.get("cache_valid_time").is_none_or(zero)
        }
        Value::String(s) => {
            let words: Vec<&str> = s.split_whitespace().collect();
            words
                .iter()
                .any(|w| w.strip_prefix("update_cache=").is_some_and(truthy))
                && !words
                    .iter()
                    .filter_map(|w| w.strip_prefix("cache_valid_time="))
                    .any(|v| v != "0")
        }
        _ => false,
    }
}

/// The `namespace.collection` names of a `collections:` keyword's list (others skipped).
pub fn collection_names(v: &Value) -> Vec<String> {
    let valid = |c: &&str| {
        let parts: Vec<&str> = c.split('.').collect();
        parts.len() == 2 && parts.iter().all(|p| !p.is_empty())
    };
    v.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(valid)
        .map(str::to_string)
        .collect()
}

/// The module names that include or import a role, with the word shown for each.
fn role_action(key: &str) -> Option<&'static str> {
    let short = key
        .strip_prefix("ansible.builtin.")
        .or_else(|| key.strip_prefix("ansible.legacy."))
        .unwrap_or(key);
    match short {
        "include_role" => Some("include_role"),
        "import_role" => Some("import_role"),
        _ => None,
    }
}

/// Keys that hold nested task lists.
const BLOCK_KEYS: [&str; 3] = ["block", "rescue", "always"];

/// `namespace.collection` of a fully qualified module name outside ansible.builtin/legacy.
fn collection_of(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    let ident = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if parts.len() < 3 || !parts.iter().all(|p| ident(p)) {
        return None;
    }
    if parts[0] == "ansible" && (parts[1] == "builtin" || parts[1] == "legacy") {
        return None;
    }
    Some(format!("{}.{}", parts[0], parts[1]))
}

/// Reads one task or handler file of a role into `refs`.
pub fn scan(file: &SourceFile, refs: &mut RoleRefs) -> Result<(), ConfigError> {
    if file.text.trim().is_empty() {
        return Ok(());
    }
    let value: Value = file.parse()?;
    let mut lines = action_lines(&file.text).into_iter();
    let mut found = Vec::new();
    let mut apt_always = false;
    walk_tasks(&value, &mut found, refs, &mut apt_always);
    if apt_always {
        refs.apt_refresh_always.insert(file.display.clone());
    }
    note_limited_modules(file, refs);
    note_first_calls(file, refs);
    for (how, args) in found {
        let line = lines.next();
        let line_text = line
            .and_then(|l| file.text.lines().nth(l - 1))
            .unwrap_or_default()
            .to_string();
        match literal_role(&args) {
            Ok((role, tasks_from)) => refs.roles.push(RoleRef {
                role,
                how,
                tasks_from,
                file: file.display.clone(),
                line,
                line_text,
            }),
            Err(expression) => refs.dynamic.push(DynamicRef {
                expression,
                how,
                file: file.display.clone(),
                line,
            }),
        }
    }
    Ok(())
}

/// Every include/import task of a task list (blocks included), in document order, and the
/// modules (with their collections) of the other tasks; `apt_always` when an apt task
/// refreshes the lists on every run.
fn walk_tasks(
    value: &Value,
    found: &mut Vec<(&'static str, Value)>,
    refs: &mut RoleRefs,
    apt_always: &mut bool,
) {
    let Some(tasks) = value.as_sequence() else {
        return;
    };
    for task in tasks {
        let Some(map) = task.as_mapping() else {
            continue;
        };
        for (k, v) in map {
            let Some(key) = k.as_str() else { continue };
            if BLOCK_KEYS.contains(&key) {
                walk_tasks(v, found, refs, apt_always);
            } else if key == "collections" {
                refs.collections_keyword.extend(collection_names(v));
            } else if let Some(how) = role_action(key) {
                found.push((how, v.clone()));
            } else if let Some(module) = module_of(key) {
                if let Some(c) = collection_of(key) {
                    refs.collections.insert(c);
                }
                if !module.contains('.') && !crate::config::builtin_modules::is_builtin(&module) {
                    refs.bare_collection_modules.insert(module.clone());
                }
                *apt_always |= module == "apt" && apt_refreshes_always(v);
                if module == "apt" || module == "package" {
                    refs.apt_tasks += 1;
                    refs.apt_tasks_without_recommends += usize::from(without_recommends(v));
                }
                refs.modules.insert(module);
            }
        }
    }
}

/// The first line calling each version-limited builtin module this file uses: a line whose
/// key is the module, bare or as `ansible.builtin.`/`ansible.legacy.`.
fn note_limited_modules(file: &SourceFile, refs: &mut RoleRefs) {
    for module in crate::config::builtin_modules::limited() {
        if !refs.modules.contains(module) || refs.limited_modules.contains_key(module) {
            continue;
        }
        let is_key = |l: &str| {
            let key = l.trim_start().trim_start_matches("- ").trim_start();
            [
                String::new(),
                "ansible.builtin.".into(),
                "ansible.legacy.".into(),
            ]
            .iter()
            .any(|p| key.starts_with(&format!("{p}{module}:")))
        };
        if let Some((i, l)) = file.text.lines().enumerate().find(|(_, l)| is_key(l)) {
            refs.limited_modules.insert(
                module.to_string(),
                (file.display.clone(), i + 1, l.to_string()),
            );
        }
    }
}

/// The first task of this file calling each module no earlier file called, by its line: the
/// modules [`walk_tasks`] has just added to `refs.modules` are the ones with no place yet.
fn note_first_calls(file: &SourceFile, refs: &mut RoleRefs) {
    let new: Vec<String> = refs
        .modules
        .iter()
        .filter(|m| !refs.called_at.contains_key(*m))
        .cloned()
        .collect();
    for module in new {
        let at = match task_key_line(&file.text, &module) {
            Some(line) => format!("{}:{line}", file.display),
            None => file.display.clone(),
        };
        refs.called_at.insert(module, at);
    }
}

/// The 1-based line where `module` is a task's key (bare, `ansible.builtin.` or
/// `ansible.legacy.`): a key at the indentation of the list item above it, so that an
/// argument of the same name (`user: {shell: /bin/sh}`) is not taken for it.
fn task_key_line(text: &str, module: &str) -> Option<usize> {
    let names = [
        format!("{module}:"),
        format!("ansible.builtin.{module}:"),
        format!("ansible.legacy.{module}:"),
    ];
    let mut item_indent = None;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let rest = line.trim_start();
        let (at, key) = match rest.strip_prefix("- ") {
            Some(r) => {
                let at = indent + 2 + (r.len() - r.trim_start().len());
                item_indent = Some(at);
                (at, r.trim_start())
            }
            None => (indent, rest),
        };
        if item_indent == Some(at) && names.iter().any(|n| key.starts_with(n.as_str())) {
            return Some(i + 1);
        }
    }
    None
}

/// The role name and `tasks_from` of an include's arguments, or the expression shown when the
/// name is not a literal.
fn literal_role(args: &Value) -> Result<(String, Option<String>), String> {
    let (name, tasks_from) = match args {
        // the old `include_role: name=x tasks_from=y` form
        Value::String(s) => {
            let mut name = None;
            let mut from = None;
            for word in s.split_whitespace() {
                if let Some(v) = word.strip_prefix("name=") {
                    name = Some(v.to_string());
                } else if let Some(v) = word.strip_prefix("tasks_from=") {
                    from = Some(v.to_string());
                }
            }
            (name.ok_or_else(|| s.clone())?, from)
        }
        Value::Mapping(m) => {
            let text = |key: &str| m.get(key).and_then(|v| v.as_str()).map(str::to_string);
            let name = text("name").or_else(|| text("role"));
            let shown = serde_yaml::to_string(args).unwrap_or_default();
            (
                name.ok_or_else(|| shown.trim().to_string())?,
                text("tasks_from"),
            )
        }
        other => {
            return Err(serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string())
        }
    };
    if name.contains("{{") || name.contains("{%") {
        return Err(name);
    }
    Ok((name, tasks_from))
}

/// The 1-based lines where an include/import key starts, in document order. Matched with the
/// parsed tasks in order, which is how the lines are found without a positioned parser.
fn action_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let t = t.strip_prefix("- ").map(str::trim_start).unwrap_or(t);
        if let Some((key, _)) = t.split_once(':') {
            if role_action(key.trim()).is_some() {
                lines.push(i + 1);
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs_of(text: &str) -> RoleRefs {
        let mut refs = RoleRefs::default();
        scan(
            &SourceFile::ansible("roles/app/tasks/main.yml", text),
            &mut refs,
        )
        .unwrap();
        refs
    }

    #[test]
    fn literal_includes_and_imports_with_their_lines() {
        let refs = refs_of(
            "- name: one\n  include_role:\n    name: dep\n    tasks_from: extra\n\
             - ansible.builtin.import_role:\n    name: geerlingguy.nginx\n\
             - block:\n    - include_role: name=inner tasks_from=x.yml\n\
             - ansible.posix.sysctl: {name: vm.swappiness, value: '10'}\n\
             - community.general.ini_file: {path: /x}\n\
             - ansible.builtin.debug: {msg: hi}\n",
        );
        let got: Vec<(&str, &str, Option<&str>, Option<usize>)> = refs
            .roles
            .iter()
            .map(|r| (r.role.as_str(), r.how, r.tasks_from.as_deref(), r.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("dep", "include_role", Some("extra"), Some(2)),
                ("geerlingguy.nginx", "import_role", None, Some(5)),
                ("inner", "include_role", Some("x.yml"), Some(8)),
            ]
        );
        assert_eq!(
            refs.collections.iter().collect::<Vec<_>>(),
            ["ansible.posix", "community.general"]
        );
        assert!(refs.dynamic.is_empty());
        assert_eq!(
            refs.modules.iter().collect::<Vec<_>>(),
            [
                "ansible.posix.sysctl",
                "community.general.ini_file",
                "debug"
            ]
        );
    }

    #[test]
    fn modules_and_apt_tasks_that_always_refresh() {
        let refs = refs_of(
            "- name: staged\n  ansible.builtin.apt: {name: x, update_cache: true, cache_valid_time: 3600}\n  when: a\n  register: r\n\
             - block:\n    - pip: {name: Django==4.2.16}\n  rescue:\n    - ansible.legacy.get_url: {url: 'http://x', dest: /x}\n\
             - git: repo=x dest=/y\n  with_items: [1]\n",
        );
        assert_eq!(
            refs.modules.iter().collect::<Vec<_>>(),
            ["apt", "get_url", "git", "pip"]
        );
        assert!(refs.apt_refresh_always.is_empty());
        for always in [
            "- apt: {update_cache: true}\n",
            "- ansible.builtin.apt: {name: x, update_cache: yes}\n",
            "- apt: name=x update_cache=yes\n",
            "- apt: {name: x, update_cache: true, cache_valid_time: 0}\n",
            "- apt: name=x update_cache=yes cache_valid_time=0\n",
        ] {
            assert_eq!(refs_of(always).apt_refresh_always.len(), 1, "{always}");
        }
        for not in [
            "- apt: {name: x}\n",
            "- apt: {update_cache: false}\n",
            "- apt: update_cache=yes cache_valid_time=60\n",
        ] {
            assert!(refs_of(not).apt_refresh_always.is_empty(), "{not}");
        }
    }

    #[test]
    fn command_like_modules_are_noted_at_their_task_line() {
        let refs = refs_of(
            "- name: a user\n  user: {name: x, shell: /bin/sh}\n- user:\n    name: y\n    shell: /bin/sh\n- block:\n    - name: host\n      ansible.builtin.command: hostname x\n- shell: echo\n",
        );
        assert_eq!(
            refs.called_at,
            BTreeMap::from([
                ("user".to_string(), "roles/app/tasks/main.yml:2".to_string()),
                (
                    "command".to_string(),
                    "roles/app/tasks/main.yml:8".to_string()
                ),
                (
                    "shell".to_string(),
                    "roles/app/tasks/main.yml:9".to_string()
                ),
            ])
        );
        assert_eq!(refs.at("command"), Some("roles/app/tasks/main.yml:8"));
        assert_eq!(
            refs_of("- user: {name: x, shell: /bin/sh}\n").at("shell"),
            None
        );
    }

    #[test]
    fn bare_collection_modules_and_the_collections_keyword() {
        let refs = refs_of(
            "- collections: [community.postgresql]\n  block:\n    - postgresql_user: {name: x}\n- locale_gen: {name: C.UTF-8}\n- apt: {name: x}\n- ansible.posix.sysctl: {name: a, value: 1}\n",
        );
        assert_eq!(
            refs.bare_collection_modules.iter().collect::<Vec<_>>(),
            ["locale_gen", "postgresql_user"]
        );
        assert_eq!(
            refs.collections_keyword.iter().collect::<Vec<_>>(),
            ["community.postgresql"]
        );
        assert_eq!(
            refs.collections.iter().collect::<Vec<_>>(),
            ["ansible.posix"]
        );
    }

    #[test]
    fn templated_names_are_dynamic() {
        let refs =
            refs_of("- include_role:\n    name: \"{{ which }}\"\n- import_role: {tasks_from: x}\n");
        assert!(refs.roles.is_empty());
        assert_eq!(refs.dynamic.len(), 2);
        assert_eq!(refs.dynamic[0].expression, "{{ which }}");
        assert_eq!(refs.dynamic[0].line, Some(1));
        assert_eq!(refs.dynamic[1].line, Some(3));
    }

    #[test]
    fn entry_points_and_collection_roles() {
        let r = |role: &str, from: Option<&str>| RoleRef {
            role: role.into(),
            how: "include_role",
            tasks_from: from.map(str::to_string),
            file: String::new(),
            line: None,
            line_text: String::new(),
        };
        assert!(r("a", None).runs_main() && r("a", Some("main.yml")).runs_main());
        assert!(!r("a", Some("extra")).runs_main());
        assert!(r("ns.coll.role", None).in_collection() && !r("ns.role", None).in_collection());
        assert_eq!(collection_of("ansible.builtin.copy"), None);
        assert_eq!(collection_of("copy"), None);
        assert_eq!(collection_of("Ns.coll.x"), None);
    }
}
