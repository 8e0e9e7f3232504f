//! config: YAML on disk → a checked, typed [`Project`]. All file I/O of the definitions happens
//! here; the planner and renderers only see the result.

pub mod ansible_cfg;
pub mod ansible_version;
pub mod arch;
pub mod aws_settings;
pub mod builtin_modules;
pub mod distribute;
pub mod duration;
pub mod file_checks;
pub mod group_vars;
pub mod health_checks;
pub mod lint;
pub mod model;
pub mod names;
pub mod project_file;
pub mod publish_targets;
pub mod role_refs;
pub mod roles;
pub mod vars;
pub mod vendored;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use file_checks::{check_file_name, check_image, check_stack};

pub use file_checks::{DEFAULT_LAUNCH_TIMEOUT_S, LAUNCH_TIMEOUT_MAX_S};
pub use model::{ArchSource, AwsSource, ImageFile, QemuSource, SourceAmi, StackFile};
pub use roles::Role;
pub use vars::{SecretRef, VarValue, Vars};
pub use vendored::VendoredContent;
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
    #[error("no parbake project in {} or its parents (looked for images/ or parbake.yml)", .start.display())]
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
        "role" => "the project's roles (its roles path, vendor/roles and vendored collections)",
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

/// The Packer templates: parbake's own, embedded, unless the project carries a file of the
/// same path under `packer/` to override one. Either way the text is in the layer hash.
#[derive(Debug, Clone)]
pub struct Templates {
    pub qemu: String,
    pub amazon_ebs: String,
    /// The `required_plugins` block for Packer 1.7+, kept in its own file because 1.6.6 rejects it.
    pub required_plugins: String,
    /// The project's files that override an embedded template (their paths under the root).
    pub overridden: Vec<String>,
}

/// parbake's templates, by their path in a project that overrides them.
pub const EMBEDDED_TEMPLATES: [(&str, &str); 3] = [
    (QEMU_TEMPLATE, include_str!("../../packer/qemu.pkr.hcl")),
    (
        AMAZON_EBS_TEMPLATE,
        include_str!("../../packer/amazon-ebs.pkr.hcl"),
    ),
    (
        PLUGINS_TEMPLATE,
        include_str!("../../packer/plugins/required_plugins.pkr.hcl"),
    ),
];
pub const QEMU_TEMPLATE: &str = "packer/qemu.pkr.hcl";
pub const AMAZON_EBS_TEMPLATE: &str = "packer/amazon-ebs.pkr.hcl";
pub const PLUGINS_TEMPLATE: &str = "packer/plugins/required_plugins.pkr.hcl";

impl Templates {
    /// Each template from the project where it has the file, else embedded.
    fn load(root: &Path) -> Result<Templates, ConfigError> {
        let mut overridden = Vec::new();
        let mut text = |rel: &str| -> Result<String, ConfigError> {
            if std::fs::symlink_metadata(root.join(rel)).is_err() {
                let embedded = EMBEDDED_TEMPLATES.iter().find(|(p, _)| *p == rel);
                return Ok(embedded.map(|(_, t)| t.to_string()).unwrap_or_default());
            }
            overridden.push(rel.to_string());
            read(root, rel)
        };
        Ok(Templates {
            qemu: text(QEMU_TEMPLATE)?,
            amazon_ebs: text(AMAZON_EBS_TEMPLATE)?,
            required_plugins: text(PLUGINS_TEMPLATE)?,
            overridden,
        })
    }

    /// Where a template comes from: `embedded`, or the project's file.
    pub fn origin(&self, rel: &str) -> &str {
        match self.overridden.iter().find(|o| *o == rel) {
            Some(o) => o,
            None => "embedded",
        }
    }
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
    pub vendored: Option<VendoredContent>,
    /// `project:` in `parbake.yml`: the id that scopes the project's AMIs (`parbake:project`).
    pub id: Option<String>,
    /// What loading noticed but does not stop for (a `roles_path` entry that does not exist).
    pub warnings: Vec<String>,
}

impl Project {
    /// Finds the project root: `start` or the nearest parent holding `images/` (or a
    /// `parbake.yml`). Its roles are where `ansible.cfg` says, else in `roles/`.
    pub fn discover(start: &Path) -> Result<PathBuf, ConfigError> {
        let mut dir = Some(start);
        while let Some(d) = dir {
            if d.join("images").is_dir() || d.join("parbake.yml").is_file() {
                return Ok(d.to_path_buf());
            }
            dir = d.parent();
        }
        Err(ConfigError::NoProject {
            start: start.to_path_buf(),
        })
    }

    /// Loads and checks the project's files at `root`. `vendored` is its vendored content,
    /// already checked against the lock (`crate::project::load` passes it from
    /// `crate::vendoring`).
    pub fn load(root: &Path, vendored: Option<VendoredContent>) -> Result<Project, ConfigError> {
        // read once: where the roles are, and the warnings about it
        let roles_path = ansible_cfg::roles_path(root)?;
        let mut roles = all_roles(root, &roles_path.dirs, vendored.as_ref())?;
        let templates = Templates::load(root)?;
        let mut image_files = Vec::new();
        for (name, file) in yaml_files(root, "images")? {
            check_file_name(&file, &name, "image")?;
            let def: ImageFile = file.parse()?;
            image_files.push((name, file, def));
        }
        let mut stack_files = Vec::new();
        for (name, file) in yaml_files(root, "images/stacks")? {
            check_file_name(&file, &name, "stack")?;
            let def: StackFile = file.parse()?;
            stack_files.push((name, file, def));
        }
        if let Some(v) = &vendored {
            let wanted = collection_roles_named(&roles, &image_files, &stack_files);
            roles.extend(roles::load_collection_roles(root, v, wanted)?);
        }
        let v = vendored.as_ref();
        let mut images = BTreeMap::new();
        for (name, file, def) in image_files {
            images.insert(name.clone(), check_image(name, file, def, &roles, v)?);
        }
        let mut stacks = BTreeMap::new();
        for (name, file, def) in stack_files {
            let stack = check_stack(name.clone(), file, def, &images, &roles, v)?;
            stacks.insert(name, stack);
        }
        publish_targets::check(&stacks)?;
        check_dependencies(&roles, v)?;
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
            warnings: load_warnings(root, roles_path.warnings),
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

/// Every collection role (`ns.collection.role`) the images, the stacks and the loaded roles
/// name: what [`roles::load_collection_roles`] starts from.
fn collection_roles_named(
    roles: &BTreeMap<String, Role>,
    images: &[(String, SourceFile, ImageFile)],
    stacks: &[(String, SourceFile, StackFile)],
) -> Vec<String> {
    let from_images = images.iter().flat_map(|(_, _, d)| {
        d.basic
            .iter()
            .chain(&d.launch_only)
            .chain(d.installed.iter().flatten())
    });
    let from_stacks = stacks
        .iter()
        .flat_map(|(_, _, d)| d.roles.iter().chain(&d.promote));
    let from_roles = roles
        .values()
        .flat_map(|r| r.deps.iter().chain(r.refs.roles.iter().map(|i| &i.role)));
    from_images
        .chain(from_stacks)
        .chain(from_roles)
        .filter(|n| names::names_collection_role(n))
        .cloned()
        .collect()
}

/// Every role's meta dependencies name a loaded role; a collection's role that is not one
/// says why (its collection not vendored, or without that role).
fn check_dependencies(
    roles: &BTreeMap<String, Role>,
    vendored: Option<&VendoredContent>,
) -> Result<(), ConfigError> {
    let missing = roles
        .values()
        .find_map(|r| Some((r, r.deps.iter().find(|d| !roles.contains_key(*d))?)));
    let Some((role, dep)) = missing else {
        return Ok(());
    };
    let file = role
        .meta_file
        .as_ref()
        .expect("deps come from meta/main.yml");
    if let Some((message, hints)) = vendored::collection_role_problem(dep, vendored) {
        let message = format!("role `{}` depends on `{dep}`: {message}", role.name);
        let mut err = file.error_for("dependencies", Some(dep), message);
        err.hints = hints;
        return Err(err.into());
    }
    let known: Vec<String> = roles.keys().cloned().collect();
    let err = file.error_for(
        "dependencies",
        Some(dep),
        format!("role `{}` depends on unknown role `{dep}`", role.name),
    );
    Err(unknown_at(err, dep, &known, "role"))
}

/// What loading notices but does not stop for: `roles_path` entries that do not exist, and a
/// `host_vars/`, which parbake does not read.
fn load_warnings(root: &Path, roles_path_warnings: Vec<String>) -> Vec<String> {
    let mut w = roles_path_warnings;
    if root.join("host_vars").is_dir() {
        w.push(
            "host_vars/ is not read: no host is known at bake; put what a group shares in \
             group_vars/<stack>, and per-instance values in the stack's launch_vars"
                .into(),
        );
    }
    w
}

/// The project's roles and the vendored ones, under one namespace: a name in both is refused.
fn all_roles(
    root: &Path,
    roles_path: &[String],
    vendored: Option<&VendoredContent>,
) -> Result<BTreeMap<String, Role>, ConfigError> {
    let mut roles = BTreeMap::new();
    for dir in roles_path {
        if !root.join(dir).is_dir() {
            continue;
        }
        // the first role of a name on the path wins, as in Ansible's search
        for (name, role) in roles::load_roles_in(root, dir, None)? {
            roles.entry(name).or_insert(role);
        }
    }
    let Some(v) = vendored else {
        return Ok(roles);
    };
    let names: std::collections::BTreeSet<String> = v.roles().keys().cloned().collect();
    if names.is_empty() {
        return Ok(roles);
    }
    let rel = format!("{}/roles", vendored::VENDOR_DIR);
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
