//! `parbake init`, pure: the image file for a chosen base, and with `--from PLAYBOOK` one stack
//! per play. What a play holds that a stack cannot carry is listed, with why and what to do.
//! Every file is serialized (serde), never formatted from the playbook's values; its comments
//! hold only fixed text and names that passed parbake's name rules.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_yaml::{Mapping, Value};

use crate::config::names::{valid_name, valid_role_name};
use crate::config::yaml::SourceFile;
use crate::config::ConfigError;

/// The bases `init --base` knows: Debian's official images, and Ubuntu's on AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Base {
    #[value(name = "debian-12")]
    #[serde(rename = "debian-12")]
    Debian12,
    #[value(name = "debian-13")]
    #[serde(rename = "debian-13")]
    Debian13,
    #[value(name = "ubuntu-24.04")]
    #[serde(rename = "ubuntu-24.04")]
    Ubuntu2404,
}

impl Base {
    /// The image's name (its file is `images/<name>.yml`).
    pub fn image_name(self) -> &'static str {
        match self {
            Base::Debian12 => "debian12",
            Base::Debian13 => "debian13",
            Base::Ubuntu2404 => "ubuntu2404",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Base::Debian12 => "Debian 12 (bookworm)",
            Base::Debian13 => "Debian 13 (trixie)",
            Base::Ubuntu2404 => "Ubuntu 24.04 LTS (noble)",
        }
    }

    /// The local target's base disk, where parbake builds one for this base.
    fn qemu(self) -> Option<QemuOut> {
        match self {
            Base::Debian12 => Some(QemuOut {
                disk_image: "parbake:debian-12",
                ssh_user: "debian",
            }),
            Base::Debian13 => Some(QemuOut {
                disk_image: "parbake:debian-13",
                ssh_user: "debian",
            }),
            Base::Ubuntu2404 => None,
        }
    }

    /// The official AMI: its owner account, name pattern and login user.
    fn aws(self, region: &str) -> AwsOut {
        let (owner, name, user) = match self {
            Base::Debian12 => ("136693071363", "debian-12-amd64-*", "admin"),
            Base::Debian13 => ("136693071363", "debian-13-amd64-*", "admin"),
            Base::Ubuntu2404 => (
                "099720109477",
                "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
                "ubuntu",
            ),
        };
        AwsOut {
            region: region.to_string(),
            source_ami: SourceAmiOut {
                owners: vec![owner],
                name,
                architecture: "x86_64",
            },
            instance_type: "t3.small",
            ssh_user: user,
        }
    }
}

#[derive(Serialize)]
struct QemuOut {
    disk_image: &'static str,
    ssh_user: &'static str,
}

#[derive(Serialize)]
struct SourceAmiOut {
    owners: Vec<&'static str>,
    name: &'static str,
    architecture: &'static str,
}

#[derive(Serialize)]
struct AwsOut {
    region: String,
    source_ami: SourceAmiOut,
    instance_type: &'static str,
    ssh_user: &'static str,
}

#[derive(Serialize)]
struct SourcesOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    qemu: Option<QemuOut>,
    aws: AwsOut,
}

#[derive(Serialize)]
struct ImageOut {
    description: String,
    sources: SourcesOut,
    basic: Vec<String>,
}

#[derive(Serialize)]
struct StackOut<'a> {
    image: &'a str,
    roles: &'a [String],
    #[serde(skip_serializing_if = "Mapping::is_empty")]
    vars: &'a Mapping,
}

/// One stack made of a play (or of several plays for the same group).
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    pub name: String,
    pub roles: Vec<String>,
    #[serde(skip)]
    pub vars: Mapping,
    /// The 1-based lines of the plays it came from.
    pub plays_at: Vec<usize>,
}

/// Something in a play that a stack cannot carry.
#[derive(Debug, Clone, Serialize)]
pub struct NotCarried {
    /// `file:line` of the play.
    pub at: String,
    pub what: String,
    pub why: String,
    pub todo: String,
}

/// A file `init` would write: its path under the project root, and its text.
#[derive(Debug, Clone, Serialize)]
pub struct File {
    pub path: String,
    #[serde(skip)]
    pub text: String,
}

/// The image file for `base`: both targets' sources where parbake has them, `basic` empty for
/// the user to choose, with the project's roles listed in a comment.
pub fn image_file(base: Base, region: &str, roles: &[String]) -> File {
    let image = ImageOut {
        description: format!("{} base, written by parbake init", base.description()),
        sources: SourcesOut {
            qemu: base.qemu(),
            aws: base.aws(region),
        },
        basic: Vec::new(),
    };
    let mut text = format!(
        "# The base image: layer 1 installs every role, and runs only the `basic` ones.\n\
         # Written by `parbake init --base {}`.\n",
        serde_yaml::to_string(&base)
            .unwrap_or_default()
            .trim()
            .trim_matches('\'')
    );
    if base.qemu().is_none() {
        text.push_str(
            "# This base is on AWS only: the local target builds `parbake:debian-12` and `parbake:debian-13`.\n",
        );
    }
    text.push_str(&serde_yaml::to_string(&image).unwrap_or_default());
    text.push_str(&roles_comment(roles));
    File {
        path: format!("images/{}.yml", base.image_name()),
        text,
    }
}

/// `# roles:` lines naming the project's roles (only names that pass the role name rule).
fn roles_comment(roles: &[String]) -> String {
    let names: Vec<&str> = roles
        .iter()
        .map(String::as_str)
        .filter(|r| valid_role_name(r))
        .collect();
    let mut s = String::from(
        "# basic: the roles every machine of this image needs, run at bake (hardening, users, packages).\n\
         # The project's roles:",
    );
    for chunk in names.chunks(8) {
        s.push_str("\n#   ");
        s.push_str(&chunk.join(", "));
    }
    if names.is_empty() {
        s.push_str(" none found");
    }
    s.push('\n');
    s
}

/// A stack's file. Its comment names only the stack (a validated group name) and line
/// numbers: the playbook's path is the user's, and never reaches a generated file.
pub fn stack_file(stack: &Stack, image: &str) -> File {
    let out = StackOut {
        image,
        roles: &stack.roles,
        vars: &stack.vars,
    };
    let lines: Vec<String> = stack.plays_at.iter().map(usize::to_string).collect();
    let text = format!(
        "# Written by `parbake init --from` from the play(s) for hosts `{}` (line {}).\n{}",
        stack.name,
        lines.join(", "),
        serde_yaml::to_string(&out).unwrap_or_default()
    );
    File {
        path: format!("images/stacks/{}.yml", stack.name),
        text,
    }
}

/// The keys of a play that a stack has no place for, with why and what to do.
const UNCARRIED: &[(&str, &str, &str)] = &[
    ("handlers", "a stack runs roles only", "move the handlers into the role that notifies them"),
    ("tasks", "a stack runs roles only", "move the tasks into a role and list it"),
    ("pre_tasks", "a stack runs roles only", "move the tasks into a role listed first"),
    ("post_tasks", "a stack runs roles only", "move the tasks into a role listed last"),
    ("vars_files", "a vars file may hold secrets, which parbake never templates", "put plain vars in group_vars/ or the stack's vars, and secrets as `!secret ssm:/name` in launch_vars"),
    ("vars_prompt", "nothing prompts at bake or at boot", "give the value in the stack's vars or launch_vars"),
    ("become_user", "parbake runs roles as root, as a bake does", "set become_user inside the role's tasks"),
    ("serial", "a stack is one machine; rollout is the fleet's", "roll out with the launch template or autoscaling group"),
    ("strategy", "a stack is one machine", "drop it"),
    ("environment", "not carried to the bake or the launch", "set it in the role's tasks"),
    ("module_defaults", "not carried", "set the options in the role's tasks"),
    ("collections", "roles are named as they are installed", "name collection roles by their full name"),
];

/// Reads the playbook into stacks: one per `hosts` group, its roles in the order Ansible runs
/// them (`include_role`/`import_role` tasks with a literal name included), its vars. A play
/// with no `hosts`, or a pattern, is an error; so is a role in no roles path.
pub fn from_playbook(
    src: &SourceFile,
    known_roles: &[String],
) -> Result<(Vec<Stack>, Vec<NotCarried>), ConfigError> {
    let doc: Value = src.parse()?;
    let Value::Sequence(plays) = doc else {
        return Err(src
            .error_at(1, 1, None, "a playbook is a list of plays")
            .with_hint(
                "give the playbook that lists your plays (`- hosts: web` ...), such as site.yml",
            )
            .into());
    };
    let starts = play_lines(&src.text);
    let mut stacks: Vec<Stack> = Vec::new();
    let mut left = Vec::new();
    for (i, play) in plays.iter().enumerate() {
        let line = starts.get(i).copied().unwrap_or(1);
        let at = format!("{}:{line}", src.display);
        let Some(play) = play.as_mapping() else {
            return Err(src
                .error_at(
                    line,
                    1,
                    None,
                    "a play is a mapping (`hosts:`, `roles:` ...)",
                )
                .with_hint("each item of the playbook's list is one play")
                .into());
        };
        if let Some(other) =
            get(play, "import_playbook").or_else(|| get(play, "ansible.builtin.import_playbook"))
        {
            left.push(NotCarried {
                at,
                what: format!("import_playbook {}", scalar(other)),
                why: "another playbook".into(),
                todo: "run `parbake init --from` on that playbook too".into(),
            });
            continue;
        }
        let group = hosts_of(src, play, line)?;
        let mut roles = Vec::new();
        roles_of(play, &at, &mut roles, &mut left);
        for r in &roles {
            if !known_roles.iter().any(|k| k == r) {
                return Err(src
                    .error_at(line, 1, None, format!("play for hosts `{group}` names role `{r}`, which is in no roles path"))
                    .with_hint("install it (requirements.yml and `parbake vendor`), or put it under roles/")
                    .into());
            }
        }
        let vars = vars_of(play, &at, &mut left);
        uncarried(play, &at, &mut left);
        merge(&mut stacks, group, roles, vars, line, &at, &mut left);
    }
    Ok((stacks, left))
}

/// The 1-based line of each top-level list item (`- ` at column 0), best effort.
fn play_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("- ") || *l == "-")
        .map(|(i, _)| i + 1)
        .collect()
}

fn get<'a>(m: &'a Mapping, key: &str) -> Option<&'a Value> {
    m.get(Value::String(key.into()))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// The play's `hosts`: one group name, which names the stack.
fn hosts_of(src: &SourceFile, play: &Mapping, line: usize) -> Result<String, ConfigError> {
    let Some(hosts) = get(play, "hosts") else {
        return Err(src
            .error_at(line, 1, None, "a play with no `hosts`")
            .with_hint("give each play `hosts: GROUP`; the group names the stack")
            .into());
    };
    let group = match hosts {
        Value::String(s) => s.trim().to_string(),
        Value::Sequence(s) if s.len() == 1 => s[0].as_str().unwrap_or("").trim().to_string(),
        _ => String::new(),
    };
    if !valid_name(&group) {
        return Err(src
            .error_at(line, 1, Some("hosts".into()), format!("`hosts: {}` is a pattern, not one group", scalar(hosts)))
            .with_hint("a stack is one kind of machine: write one play per group (`hosts: web`), with a group name of letters, digits, `_` and `-`")
            .into());
    }
    Ok(group)
}

/// The roles of `roles:` (names and `role:` entries), then those that `tasks` include or import
/// by a literal name, in the order Ansible runs them.
fn roles_of(play: &Mapping, at: &str, roles: &mut Vec<String>, left: &mut Vec<NotCarried>) {
    included(play, "pre_tasks", roles);
    if let Some(Value::Sequence(list)) = get(play, "roles") {
        for entry in list {
            role_entry(entry, at, roles, left);
        }
    }
    for key in ["tasks", "post_tasks"] {
        included(play, key, roles);
    }
}

fn role_entry(entry: &Value, at: &str, roles: &mut Vec<String>, left: &mut Vec<NotCarried>) {
    let (name, m) = match entry {
        Value::String(s) => (s.clone(), None),
        Value::Mapping(m) => {
            let n = get(m, "role").or_else(|| get(m, "name")).map(scalar);
            (n.unwrap_or_default(), Some(m))
        }
        _ => (String::new(), None),
    };
    if !valid_role_name(&name) || name.contains("{{") {
        left.push(NotCarried {
            at: at.into(),
            what: "a role entry with no literal name".into(),
            why: "parbake installs roles by name at bake".into(),
            todo: "name the role literally".into(),
        });
        return;
    }
    if let Some(m) = m {
        for key in ["when", "vars", "tags", "become_user"] {
            if get(m, key).is_some() {
                left.push(NotCarried {
                    at: at.into(),
                    what: format!("`{key}` on role {name}"),
                    why: "a stack runs each of its roles, the same way on every machine".into(),
                    todo: "move it into the role (its defaults, or a condition in its tasks), or into the stack's vars".into(),
                });
            }
        }
    }
    if !roles.contains(&name) {
        roles.push(name);
    }
}

/// Roles a task list includes or imports by a literal name.
fn included(play: &Mapping, key: &str, roles: &mut Vec<String>) {
    let Some(Value::Sequence(tasks)) = get(play, key) else {
        return;
    };
    for t in tasks.iter().filter_map(Value::as_mapping) {
        for module in [
            "include_role",
            "import_role",
            "ansible.builtin.include_role",
            "ansible.builtin.import_role",
        ] {
            let name = get(t, module)
                .and_then(Value::as_mapping)
                .and_then(|m| get(m, "name"))
                .and_then(Value::as_str);
            if let Some(n) = name.filter(|n| valid_role_name(n)) {
                if !roles.iter().any(|r| r == n) {
                    roles.push(n.to_string());
                }
            }
        }
    }
}

/// The play's `vars`, less values Ansible tags (`!vault`), which are listed instead.
fn vars_of(play: &Mapping, at: &str, left: &mut Vec<NotCarried>) -> Mapping {
    let mut out = Mapping::new();
    let Some(Value::Mapping(vars)) = get(play, "vars") else {
        return out;
    };
    for (k, v) in vars {
        if matches!(v, Value::Tagged(_)) {
            left.push(NotCarried {
                at: at.into(),
                what: format!("var {} (a tagged value such as !vault)", scalar(k)),
                why: "parbake never templates or bakes a secret".into(),
                todo: "give it as `!secret ssm:/name` (or file:) in the stack's launch_vars".into(),
            });
            continue;
        }
        out.insert(k.clone(), v.clone());
    }
    out
}

/// Every key of the play a stack has no place for.
fn uncarried(play: &Mapping, at: &str, left: &mut Vec<NotCarried>) {
    for (key, why, todo) in UNCARRIED {
        let Some(v) = get(play, key) else { continue };
        // tasks that only include roles were carried over as roles
        if key.ends_with("tasks") && only_role_includes(v) {
            continue;
        }
        left.push(NotCarried {
            at: at.into(),
            what: format!("`{key}`"),
            why: (*why).into(),
            todo: (*todo).into(),
        });
    }
}

fn only_role_includes(v: &Value) -> bool {
    let Value::Sequence(tasks) = v else {
        return false;
    };
    tasks.iter().all(|t| {
        t.as_mapping().is_some_and(|m| {
            m.keys().any(|k| {
                k.as_str()
                    .is_some_and(|k| k.ends_with("include_role") || k.ends_with("import_role"))
            })
        })
    })
}

/// A play for a group seen before joins its stack: roles appended, vars overridden.
fn merge(
    stacks: &mut Vec<Stack>,
    group: String,
    roles: Vec<String>,
    vars: Mapping,
    line: usize,
    at: &str,
    left: &mut Vec<NotCarried>,
) {
    if let Some(s) = stacks.iter_mut().find(|s| s.name == group) {
        for r in roles {
            if !s.roles.contains(&r) {
                s.roles.push(r);
            }
        }
        for (k, v) in vars {
            s.vars.insert(k, v);
        }
        s.plays_at.push(line);
        left.push(NotCarried {
            at: at.into(),
            what: format!("a second play for hosts `{group}`"),
            why: "one stack per group".into(),
            todo: "its roles were appended to the stack and its vars override the earlier play's; check the order".into(),
        });
        return;
    }
    stacks.push(Stack {
        name: group,
        roles,
        vars,
        plays_at: vec![line],
    });
}

/// The stacks' names, sorted, for reports.
pub fn names(stacks: &[Stack]) -> BTreeMap<String, Vec<String>> {
    stacks
        .iter()
        .map(|s| (s.name.clone(), s.roles.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Vec<String> {
        ["common", "nginx", "app", "db"].map(String::from).to_vec()
    }

    fn parse(text: &str) -> Result<(Vec<Stack>, Vec<NotCarried>), ConfigError> {
        from_playbook(&SourceFile::ansible("site.yml", text), &roles())
    }

    #[test]
    fn each_play_becomes_a_stack_with_its_roles_in_run_order_and_its_vars() {
        let (stacks, left) = parse(
            "- hosts: web\n  vars: {port: 80}\n  roles:\n    - common\n    - role: nginx\n  tasks:\n    - include_role: {name: app}\n- hosts: db\n  roles: [common, db]\n  handlers:\n    - name: x\n",
        )
        .unwrap();
        assert_eq!(stacks.len(), 2);
        assert_eq!(stacks[0].name, "web");
        assert_eq!(stacks[0].roles, ["common", "nginx", "app"]);
        assert_eq!(stacks[0].vars.len(), 1);
        assert_eq!(stacks[1].roles, ["common", "db"]);
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].what, "`handlers`");
        assert_eq!(left[0].at, "site.yml:8");
    }

    #[test]
    fn a_pattern_a_missing_hosts_an_unknown_role_and_a_non_list_are_errors() {
        for (text, says) in [
            ("- hosts: web:&prod\n  roles: [common]\n", "is a pattern"),
            ("- hosts: all:!db\n", "is a pattern"),
            ("- roles: [common]\n", "no `hosts`"),
            (
                "- hosts: web\n  roles: [nope]\n",
                "role `nope`, which is in no roles path",
            ),
            ("hosts: web\n", "a playbook is a list of plays"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
            assert!(e.starts_with("site.yml:"), "{e}");
        }
    }

    #[test]
    fn the_generated_files_parse_as_parbake_files() {
        let img = image_file(Base::Debian12, "eu-west-1", &roles());
        let def: crate::config::model::ImageFile = serde_yaml::from_str(&img.text).unwrap();
        assert!(def.sources.qemu.is_some() && def.sources.aws.is_some());
        assert!(img.text.contains("#   common, nginx, app, db"));
        let (stacks, _) =
            parse("- hosts: web\n  roles: [common]\n  vars: {a: '{{ x }}'}\n").unwrap();
        let st = stack_file(&stacks[0], "debian12");
        let def: crate::config::model::StackFile = serde_yaml::from_str(&st.text).unwrap();
        assert_eq!(def.roles, ["common"]);
        assert_eq!(st.path, "images/stacks/web.yml");
        let u = image_file(Base::Ubuntu2404, "us-east-1", &[]);
        assert!(u.text.contains("AWS only") && u.text.contains("none found"));
        let d13 = image_file(Base::Debian13, "eu-west-1", &[]);
        let def: crate::config::model::ImageFile = serde_yaml::from_str(&d13.text).unwrap();
        let q = def.sources.qemu.expect("Debian 13 has a local source");
        assert_eq!(
            (q.disk_image.as_str(), q.ssh_user.as_str()),
            ("parbake:debian-13", "debian")
        );
        assert_eq!(
            def.sources.aws.unwrap().source_ami.name,
            "debian-13-amd64-*"
        );
        assert!(!d13.text.contains("AWS only"), "{}", d13.text);
    }
}
