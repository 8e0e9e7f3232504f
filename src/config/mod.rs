//! config: YAML on disk → a checked, typed [`Project`]. All file I/O of the definitions happens
//! here; the planner and renderers only see the result.

pub mod ansible_version;
pub mod aws_settings;
pub mod checks;
pub mod group_vars;
pub mod lint;
pub mod model;
pub mod names;
pub mod project_file;
pub mod publish_targets;
pub mod role_refs;
pub mod roles;
pub mod vars;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use model::{AwsSource, ImageFile, QemuSource, SourceAmi, StackFile};
pub use roles::Role;
pub use vars::{SecretRef, VarValue, Vars};
pub use yaml::SourceFile;

/// An error at a place in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: Option<String>,
    pub message: String,
    pub line_text: String,
    pub hints: Vec<String>,
}

impl Located {
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    At(Box<Located>),
    #[error("role `{role}` ({}): {message}", .path.display())]
    Role {
        role: String,
        path: PathBuf,
        message: String,
        hints: Vec<String>,
    },
    #[error("unknown {kind} `{name}`")]
    Unknown {
        kind: &'static str,
        name: String,
        known: Vec<String>,
    },
    #[error("cannot read {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file refused by the reading rule (outside its root, not regular, too large).
    #[error(transparent)]
    Read(#[from] crate::fsread::ReadError),
    /// `requirements.yml`, the lock or the vendored trees disagree (run `parbake vendor`).
    #[error(transparent)]
    Vendor(Box<crate::error::Error>),
    #[error("no parbake project in {} or its parents (looked for images/ and roles/)", .start.display())]
    NoProject { start: PathBuf },
}

impl From<Located> for ConfigError {
    fn from(l: Located) -> Self {
        ConfigError::At(Box::new(l))
    }
}

/// Errors compare by what they say (an I/O error's source has no equality of its own).
impl PartialEq for ConfigError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string() && self.hints() == other.hints()
    }
}

impl ConfigError {
    pub fn hints(&self) -> Vec<String> {
        match self {
            ConfigError::At(l) => l.hints.clone(),
            ConfigError::Role { hints, .. } => hints.clone(),
            ConfigError::Unknown { known, name, kind } => did_you_mean(name, known, kind),
            ConfigError::NoProject { .. } => vec![
                "run parbake inside a project, or pass --project DIR / set PARBAKE_PROJECT".into(),
            ],
            ConfigError::Io { .. } => Vec::new(),
            ConfigError::Read(e) => vec![e.hint()],
            ConfigError::Vendor(e) => e.hints(),
        }
    }

    /// The offending line with a caret under the column.
    pub fn snippet(&self) -> Option<String> {
        let ConfigError::At(l) = self else {
            return None;
        };
        if l.line_text.is_empty() {
            return None;
        }
        let n = l.line.to_string();
        let pad = " ".repeat(n.len());
        let caret = " ".repeat(l.column.saturating_sub(1));
        Some(format!(
            "{pad} |\n{n} | {}\n{pad} | {caret}^\n",
            l.line_text
        ))
    }

    /// The located error, if any (tests and JSON output use it).
    pub fn located(&self) -> Option<&Located> {
        match self {
            ConfigError::At(l) => Some(l),
            _ => None,
        }
    }
}

/// Where each kind of name is defined, for the list of known names in a hint.
fn known_place(kind: &str) -> &'static str {
    match kind {
        "role" => "roles under roles/",
        "stack" => "stacks under images/stacks/",
        "image" => "images under images/",
        _ => "known names",
    }
}

/// The hints for an unknown name: the closest known one, if any is close, and the list.
pub fn did_you_mean(name: &str, known: &[String], kind: &str) -> Vec<String> {
    let mut hints = Vec::new();
    if let Some(s) = suggest(name, known) {
        hints.push(format!("did you mean `{s}`?"));
    }
    hints.push(format!("{}: {}", known_place(kind), known.join(", ")));
    hints
}

/// A located error about an unknown name, with [`did_you_mean`]'s hints.
fn unknown_at(mut err: Located, name: &str, known: &[String], kind: &str) -> ConfigError {
    for h in did_you_mean(name, known, kind) {
        err = err.with_hint(h);
    }
    err.into()
}

/// The closest known name within a small edit distance.
pub fn suggest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub file: SourceFile,
    pub def: ImageFile,
    /// Roles copied onto the image, sorted.
    pub installed: Vec<String>,
    pub vars: Vars,
    pub launch_vars: Vars,
}

#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub file: SourceFile,
    pub def: StackFile,
    pub vars: Vars,
    pub launch_vars: Vars,
    /// `launch_timeout` in seconds (the default when omitted).
    pub launch_timeout_s: u64,
    /// `launch_facts`: the `gather_subset` of the launch's fact gathering; `None` is Ansible's
    /// default (all facts), an empty list gathers none.
    pub launch_facts: Option<Vec<String>>,
    /// `checks:`, validated: what the launch spec carries.
    pub checks: Vec<crate::contract::spec::Check>,
}

/// The Packer templates shipped in `packer/`, read as text.
#[derive(Debug, Clone)]
pub struct Templates {
    pub qemu: String,
    pub amazon_ebs: String,
    /// The `required_plugins` block for Packer 1.7+, kept in its own file because 1.6.6 rejects it.
    pub required_plugins: String,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub images: BTreeMap<String, Image>,
    pub stacks: BTreeMap<String, Stack>,
    pub roles: BTreeMap<String, Role>,
    pub templates: Templates,
    /// `group_vars/all` and `group_vars/<stack>`: the lowest-precedence vars.
    pub group_vars: group_vars::GroupVars,
    /// The roles and collections of `requirements.yml`, as `parbake vendor` installed them
    /// (None without a `requirements.yml`). Their roles are in `roles` too.
    pub vendored: Option<crate::vendor::Vendored>,
    /// `project:` in `parbake.yml`: the id that scopes the project's AMIs (`parbake:project`).
    pub id: Option<String>,
}

impl Project {
    /// Finds the project root: `start` or the nearest parent holding `images/` and `roles/`.
    pub fn discover(start: &Path) -> Result<PathBuf, ConfigError> {
        let mut dir = Some(start);
        while let Some(d) = dir {
            if d.join("images").is_dir() && d.join("roles").is_dir() {
                return Ok(d.to_path_buf());
            }
            dir = d.parent();
        }
        Err(ConfigError::NoProject {
            start: start.to_path_buf(),
        })
    }

    pub fn load(root: &Path) -> Result<Project, ConfigError> {
        let vendored =
            crate::vendor::Vendored::load(root).map_err(|e| ConfigError::Vendor(Box::new(e)))?;
        let roles = all_roles(root, vendored.as_ref())?;
        let templates = Templates {
            qemu: read(root, "packer/qemu.pkr.hcl")?,
            amazon_ebs: read(root, "packer/amazon-ebs.pkr.hcl")?,
            required_plugins: read(root, "packer/plugins/required_plugins.pkr.hcl")?,
        };
        let mut images = BTreeMap::new();
        for (name, file) in yaml_files(root, "images")? {
            check_file_name(&file, &name, "image")?;
            let def: ImageFile = file.parse()?;
            images.insert(name.clone(), check_image(name, file, def, &roles)?);
        }
        let mut stacks = BTreeMap::new();
        for (name, file) in yaml_files(root, "images/stacks")? {
            check_file_name(&file, &name, "stack")?;
            let def: StackFile = file.parse()?;
            stacks.insert(name.clone(), check_stack(name, file, def, &images, &roles)?);
        }
        publish_targets::check(&stacks)?;
        for role in roles.values() {
            for dep in &role.deps {
                if !roles.contains_key(dep) {
                    let file = role
                        .meta_file
                        .as_ref()
                        .expect("deps come from meta/main.yml");
                    let known: Vec<String> = roles.keys().cloned().collect();
                    let err = file.error_for(
                        "dependencies",
                        Some(dep),
                        format!("role `{}` depends on unknown role `{dep}`", role.name),
                    );
                    return Err(unknown_at(err, dep, &known, "role"));
                }
            }
        }
        let group_vars = group_vars::load(root, stacks.keys())?;
        let id = project_file::load_id(root)?;
        Ok(Project {
            root: root.to_path_buf(),
            images,
            stacks,
            roles,
            templates,
            group_vars,
            vendored,
            id,
        })
    }

    pub fn stack(&self, name: &str) -> Result<&Stack, ConfigError> {
        self.stacks.get(name).ok_or_else(|| ConfigError::Unknown {
            kind: "stack",
            name: name.to_string(),
            known: self.stacks.keys().cloned().collect(),
        })
    }

    pub fn image(&self, name: &str) -> Result<&Image, ConfigError> {
        self.images.get(name).ok_or_else(|| ConfigError::Unknown {
            kind: "image",
            name: name.to_string(),
            known: self.images.keys().cloned().collect(),
        })
    }
}

/// The project's roles and the vendored ones, under one namespace: a name in both is refused.
fn all_roles(
    root: &Path,
    vendored: Option<&crate::vendor::Vendored>,
) -> Result<BTreeMap<String, Role>, ConfigError> {
    let mut roles = roles::load_roles(root)?;
    let Some(v) = vendored else {
        return Ok(roles);
    };
    let names: std::collections::BTreeSet<String> = v.roles().keys().cloned().collect();
    if names.is_empty() {
        return Ok(roles);
    }
    let rel = format!("{}/roles", crate::vendor::VENDOR_DIR);
    for (name, role) in roles::load_roles_in(root, &rel, Some(&names))? {
        if roles.contains_key(&name) {
            return Err(ConfigError::Role {
                role: name.clone(),
                path: root.join("roles").join(&name),
                message: format!("`{name}` is both a role under roles/ and a vendored role of requirements.yml"),
                hints: vec![format!("remove roles/{name}, or its entry in requirements.yml (then run `parbake vendor`)")],
            });
        }
        roles.insert(name, role);
    }
    Ok(roles)
}

fn read(root: &Path, rel: &str) -> Result<String, ConfigError> {
    let path = root.join(rel);
    Ok(crate::fsread::read_text(
        root,
        &path,
        crate::fsread::CONFIG_LIMIT,
    )?)
}

/// `*.yml` / `*.yaml` files directly in `dir`, sorted by name, keyed by file stem.
fn yaml_files(root: &Path, dir: &str) -> Result<Vec<(String, SourceFile)>, ConfigError> {
    let path = root.join(dir);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&path) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(ConfigError::Io { path, source }),
    };
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let p = entry.path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        // anything but a directory is read, so a FIFO or a link out is refused, not skipped
        if p.is_dir() || !(ext == "yml" || ext == "yaml") {
            continue;
        }
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push((
            stem,
            SourceFile::new(
                format!("{dir}/{name}"),
                read(root, &format!("{dir}/{name}"))?,
            ),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn unknown_role(
    file: &SourceFile,
    field: &str,
    role: &str,
    roles: &BTreeMap<String, Role>,
) -> ConfigError {
    let known: Vec<String> = roles.keys().cloned().collect();
    let err = file.error_for(field, Some(role), format!("unknown role `{role}`"));
    unknown_at(err, role, &known, "role")
}

fn check_image(
    name: String,
    file: SourceFile,
    def: ImageFile,
    roles: &BTreeMap<String, Role>,
) -> Result<Image, ConfigError> {
    for (field, list) in [
        ("basic", &def.basic),
        ("launch_only", &def.launch_only),
        ("installed", def.installed.as_ref().unwrap_or(&Vec::new())),
    ] {
        for role in list {
            if !roles.contains_key(role) {
                return Err(unknown_role(&file, field, role, roles));
            }
        }
    }
    if def.sources.qemu.is_none() && def.sources.aws.is_none() {
        return Err(file
            .error_for("sources", None, "no source: add `qemu:` and/or `aws:`")
            .into());
    }
    if let Some(a) = &def.ansible {
        check_ansible_pin(&file, &a.core)?;
        check_pin_runs_on_python(&file, &a.core, &def.sources)?;
    }
    let installed: Vec<String> = match &def.installed {
        Some(list) => {
            let mut l = list.clone();
            l.sort();
            l.dedup();
            l
        }
        None => roles.keys().cloned().collect(),
    };
    for role in def.basic.iter().chain(&def.launch_only) {
        if !installed.contains(role) {
            let field = if def.basic.contains(role) {
                "basic"
            } else {
                "launch_only"
            };
            return Err(file
                .error_for(
                    field,
                    Some(role),
                    format!("role `{role}` is not in `installed`"),
                )
                .with_hint("add it to `installed`, or omit `installed` to install every role")
                .into());
        }
    }
    for role in &def.basic {
        if def.launch_only.contains(role) {
            return Err(file
                .error_for(
                    "basic",
                    Some(role),
                    format!("role `{role}` is both basic and launch_only"),
                )
                .with_hint("a launch-only role is never baked; remove it from `basic`")
                .into());
        }
    }
    check_sources(&file, &def.sources)?;
    let vars = vars::check(&file, "vars", &def.vars, false)?;
    let launch_vars = vars::check(&file, "launch_vars", &def.launch_vars, true)?;
    Ok(Image {
        name,
        file,
        def,
        installed,
        vars,
        launch_vars,
    })
}

fn check_stack(
    name: String,
    file: SourceFile,
    def: StackFile,
    images: &BTreeMap<String, Image>,
    roles: &BTreeMap<String, Role>,
) -> Result<Stack, ConfigError> {
    let Some(image) = images.get(&def.image) else {
        let known: Vec<String> = images.keys().cloned().collect();
        let err = file.error_for("image", None, format!("unknown image `{}`", def.image));
        return Err(unknown_at(err, &def.image, &known, "image"));
    };
    for (field, list) in [("roles", &def.roles), ("promote", &def.promote)] {
        for role in list {
            if !roles.contains_key(role) {
                return Err(unknown_role(&file, field, role, roles));
            }
            if !image.installed.contains(role) {
                return Err(file
                    .error_for(
                        field,
                        Some(role),
                        format!("role `{role}` is not installed on image `{}`", image.name),
                    )
                    .with_hint(format!("add it to `installed` in {}", image.file.display))
                    .into());
            }
        }
    }
    let vars = vars::check(&file, "vars", &def.vars, false)?;
    let launch_vars = vars::check(&file, "launch_vars", &def.launch_vars, true)?;
    let launch_timeout_s = check_launch_timeout(&file, def.launch_timeout.as_ref())?;
    let launch_facts = check_launch_facts(&file, def.launch_facts.as_ref())?;
    let checks = checks::check_checks(&file, &def.checks)?;
    if let Some(p) = &def.publish {
        if !names::valid_launch_template_name(&p.launch_template) {
            return Err(file
                .error_for("publish.launch_template", None, format!("{:?} is not a launch template name", p.launch_template))
                .with_hint("EC2 takes 3 to 128 letters, digits and `().-/_`, e.g. `launch_template: web-fleet`")
                .into());
        }
        if let Some(name) = &p.ssm_parameter {
            if let Some(why) = names::ssm_parameter_problem(name) {
                return Err(file
                    .error_for("publish.ssm_parameter", None, format!("{name:?} is not an SSM parameter name: {why}"))
                    .with_hint("write a path such as `/parbake/web/ami`: `/`, then letters, digits and `_.-/`, at most 15 levels and 1011 characters, no trailing `/`, not under /aws or /ssm")
                    .into());
            }
        }
    }
    let image_tags = image.def.sources.aws.as_ref().map(|a| a.tags.clone());
    aws_settings::check_stack_tags(&file, &def.tags, &image_tags.unwrap_or_default())?;
    Ok(Stack {
        name,
        file,
        def,
        vars,
        launch_vars,
        launch_timeout_s,
        launch_facts,
        checks,
    })
}

/// Ansible's `gather_subset` names: `all`, `min` and its fact collectors' names (ansible-core
/// 2.14's `default_collectors`), each also with `!` in front.
const FACT_SUBSETS: [&str; 29] = [
    "all",
    "min",
    "apparmor",
    "caps",
    "chroot",
    "cmdline",
    "date_time",
    "distribution",
    "dns",
    "env",
    "facter",
    "fibre_channel_wwn",
    "fips",
    "hardware",
    "iscsi",
    "loadavg",
    "local",
    "lsb",
    "network",
    "nvme",
    "ohai",
    "pkg_mgr",
    "platform",
    "python",
    "selinux",
    "service_mgr",
    "ssh_pub_keys",
    "user",
    "virtual",
];

/// `launch_facts`: `all` (the default: `None`), `none` (an empty list), one subset name, or a
/// non-empty list of them.
fn check_launch_facts(
    file: &SourceFile,
    value: Option<&serde_yaml::Value>,
) -> Result<Option<Vec<String>>, ConfigError> {
    use serde_yaml::Value;
    let checked = match value {
        None => return Ok(None),
        Some(Value::String(s)) if s == "all" => return Ok(None),
        Some(Value::String(s)) if s == "none" => return Ok(Some(Vec::new())),
        Some(one @ Value::String(_)) => fact_subset(one).map(|s| vec![s]),
        Some(Value::Sequence(items)) if items.is_empty() => {
            Err("an empty list gathers nothing: write `none`".to_string())
        }
        Some(Value::Sequence(items)) => items.iter().map(fact_subset).collect(),
        Some(_) => Err("the launch's facts are `all`, `min`, `none` or a list of subsets".into()),
    };
    checked.map(Some).map_err(|problem| {
        file.error_for("launch_facts", None, problem)
            .with_hint(format!(
                "write `launch_facts: min` (hostname, distribution, date and time, user), `none`, or a list of Ansible's gather_subset names such as `[min, chroot, network]` ({}; each also with `!` in front); omit it for all facts",
                FACT_SUBSETS[2..].join(", ")
            ))
            .into()
    })
}

/// One `gather_subset` name of `launch_facts`, `!` allowed.
fn fact_subset(item: &serde_yaml::Value) -> Result<String, String> {
    match item.as_str() {
        Some(s) if FACT_SUBSETS.contains(&s.trim_start_matches('!')) => Ok(s.to_string()),
        Some(s) => Err(format!("{s:?} is not a fact subset")),
        None => Err("each fact subset is a name such as `network`".to_string()),
    }
}

/// A launch's timeout when the stack file sets none: a launch that takes longer is broken.
pub const DEFAULT_LAUNCH_TIMEOUT_S: u64 = 3600;
const LAUNCH_TIMEOUT_MIN_S: u64 = 60;
/// The longest `launch_timeout`; parbake-launch.service's TimeoutStartSec allows it and a margin.
pub const LAUNCH_TIMEOUT_MAX_S: u64 = 24 * 3600;

/// `launch_timeout`: a duration with units (`20m`, `1h30m`, `90s`), 1m to 24h.
fn check_launch_timeout(
    file: &SourceFile,
    value: Option<&serde_yaml::Value>,
) -> Result<u64, ConfigError> {
    let Some(value) = value else {
        return Ok(DEFAULT_LAUNCH_TIMEOUT_S);
    };
    let problem = match value.as_str().map(|s| (s, parse_duration(s))) {
        Some((_, Some(s))) if (LAUNCH_TIMEOUT_MIN_S..=LAUNCH_TIMEOUT_MAX_S).contains(&s) => {
            return Ok(s)
        }
        Some((text, Some(_))) => format!("{text:?} is outside 1m to 24h"),
        Some((text, None)) => format!("{text:?} is not a duration"),
        None => match value {
            serde_yaml::Value::Number(n) => format!("{n} has no unit"),
            _ => "a launch timeout is a duration such as `20m`".to_string(),
        },
    };
    Err(file
        .error_for("launch_timeout", None, problem)
        .with_hint("write hours, minutes and seconds with their units, e.g. `launch_timeout: 20m` or `1h30m`; omit it for 60m")
        .into())
}

/// `1h30m` → 5400: whole numbers with `h`, `m` and `s`, each at most once, in that order.
fn parse_duration(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = text;
    let mut units = "hms";
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        let at = units.find(unit)?;
        units = &units[at + 1..];
        let scale = match unit {
            'h' => 3600,
            'm' => 60,
            _ => 1,
        };
        total = total.checked_add(n.checked_mul(scale)?)?;
        rest = &rest[digits + 1..];
    }
    (!text.is_empty()).then_some(total)
}

/// An image or stack is named by its file name, which reaches comments, paths, layer names and
/// tags: it follows the role-name rule.
fn check_file_name(file: &SourceFile, name: &str, kind: &str) -> Result<(), ConfigError> {
    if names::valid_name(name) {
        return Ok(());
    }
    Err(file
        .error_at(
            1,
            1,
            None,
            format!("{name:?} is not a valid {kind} name (the file name is the {kind}'s name)"),
        )
        .with_hint(format!(
            "rename the file: letters, digits, `_` and `-`, not starting with `-`, at most {} characters",
            names::NAME_MAX
        ))
        .into())
}

/// `ansible.core` must be an exact release parbake's runtime works with: it becomes a pip
/// requirement and part of the base layer hash.
fn check_ansible_pin(file: &SourceFile, core: &str) -> Result<(), ConfigError> {
    use ansible_version::{Version, OLDEST_ANSIBLE_CORE};
    let oldest = Version::parse(OLDEST_ANSIBLE_CORE).expect("a version");
    let problem = match Version::parse_exact(core) {
        None => format!("{core:?} is not an exact ansible-core release"),
        Some(v) if v < oldest => format!("ansible-core {core} is older than {OLDEST_ANSIBLE_CORE}, the oldest parbake's runtime supports"),
        Some(_) => return Ok(()),
    };
    Err(file
        .error_for("ansible.core", None, problem)
        .with_hint("pin one release as `X.Y.Z`, e.g. `ansible: {core: \"2.17.7\"}`; omit `ansible` to use the distribution's ansible-core")
        .into())
}

/// A pinned ansible-core must run on the Python of each base the image names, where parbake
/// knows that base's Python (Debian 12's 3.11, Debian 13's 3.13): the bake would install it
/// with pip and fail there, or worse, install one that breaks at launch.
fn check_pin_runs_on_python(
    file: &SourceFile,
    core: &str,
    sources: &model::Sources,
) -> Result<(), ConfigError> {
    use ansible_version::{base_python, python_range, Version};
    let Some(pin) = Version::parse_exact(core) else {
        return Ok(());
    };
    let Some((low, high)) = python_range(&pin) else {
        return Ok(());
    };
    for (target, base, python) in base_python(sources) {
        if python < low || python > high {
            return Err(file
                .error_for(
                    "ansible.core",
                    None,
                    format!(
                        "ansible-core {core} runs on Python {low} to {high}, but the {target} source {base} has Python {python}"
                    ),
                )
                .with_hint(format!(
                    "pin an ansible-core that runs on Python {python} (see docs/setup.md), or change the source"
                ))
                .into());
        }
    }
    Ok(())
}

fn valid_sha256(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Every source field that reaches the Packer var-file, the builder's seed or an EC2 call is
/// checked against its own rule here, with its line.
fn check_sources(file: &SourceFile, sources: &model::Sources) -> Result<(), ConfigError> {
    if let Some(q) = &sources.qemu {
        check_qemu_source(file, q)?;
    }
    if let Some(a) = &sources.aws {
        check_aws_source(file, a)?;
    }
    Ok(())
}

/// `field: "value" is not what`, with a hint.
fn not_a(file: &SourceFile, field: &str, value: &str, what: &str, hint: &str) -> ConfigError {
    file.error_for(field, None, format!("{value:?} is not {what}"))
        .with_hint(hint.to_string())
        .into()
}

fn check_qemu_source(file: &SourceFile, q: &QemuSource) -> Result<(), ConfigError> {
    let bad =
        |field: &str, value: &str, what: &str, hint: &str| not_a(file, field, value, what, hint);
    if !names::valid_user(&q.ssh_user) {
        return Err(bad(
            "sources.qemu.ssh_user",
            &q.ssh_user,
            "a valid user name",
            "use lowercase letters, digits, `_` and `-`, starting with a letter or `_`",
        ));
    }
    if !names::one_line(&q.disk_image) || q.disk_image.is_empty() {
        return Err(bad(
            "sources.qemu.disk_image",
            &q.disk_image,
            "a disk image",
            "write `parbake:debian-12`, a path, or an http(s) URL, on one line",
        ));
    }
    if !names::one_line(&q.kernel_append) {
        return Err(bad(
            "sources.qemu.kernel_append",
            &q.kernel_append,
            "a kernel command line",
            "write it on one line, without control characters",
        ));
    }
    if q.checksum != "none" && !valid_sha256(&q.checksum) {
        return Err(file
            .error_for(
                "sources.qemu.checksum",
                None,
                "checksum must be `sha256:<64 hex digits>` or `none`",
            )
            .into());
    }
    if (q.disk_image.starts_with("http://") || q.disk_image.starts_with("https://"))
        && q.checksum == "none"
    {
        return Err(file
            .error_for(
                "sources.qemu.checksum",
                None,
                "a downloaded disk image needs a checksum",
            )
            .with_hint("set `checksum: sha256:<hex>` from the image's SHA256SUMS")
            .into());
    }
    if q.cpus == 0 || q.memory_mb < 256 {
        return Err(bad(
            "sources.qemu",
            &format!("cpus {} memory_mb {}", q.cpus, q.memory_mb),
            "a usable VM size",
            "at least 1 CPU and 256 MB",
        ));
    }
    Ok(())
}

fn check_aws_source(file: &SourceFile, a: &AwsSource) -> Result<(), ConfigError> {
    let bad =
        |field: &str, value: &str, what: &str, hint: &str| not_a(file, field, value, what, hint);
    let checks: [(&str, &str, bool, &str, &str); 5] = [
        ("sources.aws.region", &a.region, names::valid_region(&a.region), "an AWS region", "e.g. `eu-west-1`"),
        ("sources.aws.instance_type", &a.instance_type, names::valid_instance_type(&a.instance_type), "an EC2 instance type", "e.g. `t3.micro`"),
        ("sources.aws.ssh_user", &a.ssh_user, names::valid_user(&a.ssh_user), "a valid user name", "use lowercase letters, digits, `_` and `-`, e.g. `admin` on Debian AMIs"),
        ("sources.aws.ami_name", &a.ami_name, names::valid_ami_name(&a.ami_name), "a valid AMI name", "3 to 128 of: letters, digits, ( ) [ ] space . / - ' @ _ and the placeholders {image} {layer} {hash}"),
        ("sources.aws.source_ami.name", &a.source_ami.name, names::one_line(&a.source_ami.name) && !a.source_ami.name.is_empty() && a.source_ami.name.len() <= 128, "an AMI name pattern", "an AMI name with `*` wildcards, on one line"),
    ];
    for (field, value, ok, what, hint) in checks {
        if !ok {
            return Err(bad(field, value, what, hint));
        }
    }
    let item = |field: &str, value: &str, message: String, hint: &str| -> ConfigError {
        file.error_for(field, Some(value), message)
            .with_hint(hint.to_string())
            .into()
    };
    if let Some(r) = a.copy_to_regions.iter().find(|r| !names::valid_region(r)) {
        return Err(item(
            "sources.aws.copy_to_regions",
            r,
            format!("{r:?} is not an AWS region"),
            "e.g. `eu-central-1`",
        ));
    }
    if let Some(o) = a.source_ami.owners.iter().find(|o| !names::valid_owner(o)) {
        return Err(item(
            "sources.aws.source_ami.owners",
            o,
            format!("{o:?} is not an AMI owner"),
            "a 12-digit account id, or `self`, `amazon`, `aws-marketplace`",
        ));
    }
    if let Some(s) = a.subnet_id.as_ref().filter(|s| !names::valid_subnet(s)) {
        return Err(bad(
            "sources.aws.subnet_id",
            s,
            "a subnet id",
            "e.g. `subnet-0abc1234`",
        ));
    }
    if let Some(p) = a
        .instance_profile
        .as_ref()
        .filter(|p| !names::valid_instance_profile(p))
    {
        return Err(bad(
            "sources.aws.instance_profile",
            p,
            "an IAM instance profile name",
            "the profile's name (not its ARN): 1 to 128 of letters, digits and `+=,.@_-`",
        ));
    }
    if !["x86_64", "arm64", "i386", "x86_64_mac", "arm64_mac"]
        .contains(&a.source_ami.architecture.as_str())
    {
        return Err(bad(
            "sources.aws.source_ami.architecture",
            &a.source_ami.architecture,
            "an EC2 architecture",
            "`x86_64` or `arm64`",
        ));
    }
    aws_settings::check_builder(file, a)?;
    aws_settings::check_disk(file, a)?;
    aws_settings::check_tags(file, "sources.aws.tags", &a.tags)?;
    Ok(())
}

/// `meta/parbake.yml`: staged packages become apt arguments, so each must be a package name;
/// staged Python requirements become pip arguments, so each must be an exact pin.
pub(crate) fn check_role_meta(
    file: &SourceFile,
    meta: &model::RoleMetaFile,
) -> Result<(), ConfigError> {
    for p in &meta.stage_apt {
        if !names::valid_apt_package(p) {
            return Err(file
                .error_for(
                    "stage_apt",
                    Some(p),
                    format!("{p:?} is not a Debian package name"),
                )
                .with_hint(names::APT_PACKAGE_RULE)
                .into());
        }
    }
    for r in &meta.stage_pip {
        if let Some((message, hint)) = names::pip_requirement_problem(r) {
            return Err(file
                .error_for("stage_pip", Some(r), message)
                .with_hint(hint.to_string())
                .into());
        }
    }
    if let Some(d) = &meta.description {
        if !names::one_line(d) {
            return Err(file
                .error_for(
                    "description",
                    None,
                    "the description must be one line of text",
                )
                .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod launch_timeout_tests {
    use super::parse_duration;

    #[test]
    fn durations_have_units_in_order() {
        assert_eq!(parse_duration("20m"), Some(1200));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("1h0m5s"), Some(3605));
        for bad in [
            "",
            "20",
            "m",
            "20x",
            "1m1h",
            "5m5m",
            " 5m",
            "5 m",
            "-5m",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
