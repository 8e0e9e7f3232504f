//! Roles under `roles/`: their meta dependencies, parbake metadata, and content hash.
//!
//! A role's tree is walked without trusting it: a symlink counts as what it resolves to, and
//! only while that stays inside the project; FIFOs, sockets and devices are refused before
//! anything is opened. The file list kept with each role is what the bake copies, so the
//! image gets the bytes the hash covers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::model::RoleMetaFile;
use super::role_refs::{self, RoleRefs};
use super::vendored::VendoredContent;
use super::yaml::{self, SourceFile};
use super::{ConfigError, Located};

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    /// Absolute directory of the role.
    pub dir: PathBuf,
    /// Direct dependencies from `meta/main.yml`, in declared order.
    pub deps: Vec<String>,
    /// `sha256:<hex>` over every file's relative path, exec bit and contents (sorted by path).
    pub hash: String,
    pub meta: RoleMetaFile,
    /// The files that make up the hash, sorted by relative path.
    pub files: Vec<RoleFile>,
    /// `roles/<name>/meta/main.yml`, kept to point at a bad dependency.
    pub meta_file: Option<SourceFile>,
    /// Roles its tasks include or import, and the collections its modules come from.
    pub refs: RoleRefs,
    /// `galaxy_info.min_ansible_version` of meta/main.yml, as written, with its line.
    pub min_ansible: Option<(String, usize)>,
    /// Every identifier in its tasks, handlers, defaults, vars, templates and meta: the names
    /// it may read a var by (plan notes a stack var no role of the stack names).
    pub words: BTreeSet<String>,
    /// `namespace.collection` of every dotted name of three parts or more in the same files
    /// (`acme.tools.shout` in a template): the collections whose filters, lookups, tests or
    /// modules it may use, for the run hash.
    pub dotted_collections: BTreeSet<String>,
}

impl Role {
    /// Whether `stage_apt` downloads Recommends too: the role's `stage_apt_recommends`, else as
    /// its apt tasks install (apt's default, unless every one says `install_recommends: false`).
    pub fn stages_recommends(&self) -> bool {
        self.meta.stage_apt_recommends.unwrap_or(
            self.refs.apt_tasks == 0
                || self.refs.apt_tasks_without_recommends < self.refs.apt_tasks,
        )
    }

    /// Copies the role's files as they were hashed into `to` (the bake payload): a symlink's
    /// resolved content as a regular file, and only the files the hash covers. Then hashes the
    /// copy: a role edited since it was loaded is an error, so the image gets exactly the bytes
    /// its layer hash covers.
    pub fn copy_to(&self, to: &Path) -> Result<(), ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ConfigError::Io { path, source }
        };
        std::fs::create_dir_all(to).map_err(io(to))?;
        for file in &self.files {
            let dst = to.join(&file.rel);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let (bytes, mode) = read_regular(&file.source).map_err(io(&file.source))?;
            std::fs::write(&dst, bytes).map_err(io(&dst))?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))
                .map_err(io(&dst))?;
        }
        let copied = hash_tree(to, to).map(|(hash, _)| hash);
        if copied.as_ref() != Ok(&self.hash) {
            return Err(ConfigError::Role {
                role: self.name.clone(),
                path: self.dir.clone(),
                message: "changed while it was copied into the bake payload".into(),
                hints: vec![
                    "run the bake again once the role's files are no longer being edited".into(),
                ],
            });
        }
        Ok(())
    }
}

/// One file of a role tree as hashed: where it sits in the role and where its bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleFile {
    /// Path inside the role, `/`-separated.
    pub rel: String,
    /// The regular file holding the content: the file itself, or what a symlink resolves to.
    pub source: PathBuf,
    /// Permission bits read with the content (only the exec bit is part of the hash).
    pub mode: u32,
}

/// Why a role tree was refused: the offending path and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub path: PathBuf,
    pub message: String,
    pub hints: Vec<String>,
}

impl Refusal {
    fn new(path: impl Into<PathBuf>, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Refusal {
            path: path.into(),
            message: message.into(),
            hints: vec![hint.into()],
        }
    }

    fn into_config(self, role: &str) -> ConfigError {
        ConfigError::Role {
            role: role.to_string(),
            path: self.path,
            message: self.message,
            hints: self.hints,
        }
    }
}

/// Files and directories a role tree may hold, counting those reached through symlinks: a
/// bound on trees that links multiply (two links to the same directory at each level).
pub const MAX_TREE_ENTRIES: usize = 100_000;

/// Files that are never part of a role's content (editor and VCS noise).
fn ignored(name: &str) -> bool {
    name == ".git"
        || name == "__pycache__"
        || name == ".DS_Store"
        || name.ends_with(".pyc")
        || name.ends_with(".swp")
        || name.ends_with('~')
}

pub use super::names::valid_role_name;

/// The roles in the directory `rel` of the project (`roles`, or `vendor/roles` for vendored
/// ones), or only those named in `only`.
pub fn load_roles_in(
    root: &Path,
    rel: &str,
    only: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, Role>, ConfigError> {
    let dir = root.join(rel);
    let mut roles = BTreeMap::new();
    let entries = std::fs::read_dir(&dir).map_err(|source| ConfigError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Io {
            path: dir.clone(),
            source,
        })?;
        if entry.path().is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !ignored(&name) && !name.starts_with('.') && only.is_none_or(|o| o.contains(&name)) {
                names.push(name);
            }
        }
    }
    names.sort();
    let within = std::fs::canonicalize(root).map_err(|source| ConfigError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    for name in names {
        let role = load_role(root, rel, &within, &name)?;
        roles.insert(name, role);
    }
    Ok(roles)
}

/// The roles of vendored collections named by their FQCN (`namespace.collection.role`) in
/// `wanted`, and every collection role those name in turn (meta dependencies,
/// `include_role`/`import_role`), keyed by FQCN. Each is read like any role: its tree walked
/// inside the project, regular files only, bounded. Inside one, a dependency or include by a
/// bare name that its own collection has as a role means that role, as Ansible resolves it
/// (the role's collection is searched first). A name whose collection is not vendored, or
/// that the collection lacks, is left out: the check that meets it reports it at its place.
pub fn load_collection_roles(
    root: &Path,
    vendored: &VendoredContent,
    wanted: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, Role>, ConfigError> {
    let within = std::fs::canonicalize(root).map_err(|source| ConfigError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let mut roles = BTreeMap::new();
    let mut todo: Vec<String> = wanted.into_iter().collect();
    while let Some(fqcn) = todo.pop() {
        if roles.contains_key(&fqcn) {
            continue;
        }
        let Some(role) = load_collection_role(root, &within, vendored, &fqcn)? else {
            continue;
        };
        todo.extend(role.deps.iter().cloned());
        todo.extend(role.refs.roles.iter().map(|r| r.role.clone()));
        roles.insert(fqcn, role);
    }
    Ok(roles)
}

/// `<collection>/roles/<role>` of a collection role name, when the collection is vendored and
/// has that entry (a directory, or a link the walk then checks); None otherwise.
pub fn collection_role_dir(vendored: &VendoredContent, fqcn: &str) -> Option<PathBuf> {
    let (collection, role) = super::names::split_collection_role(fqcn)?;
    let dir = vendored.collections().get(collection)?.dir.join("roles");
    std::fs::symlink_metadata(dir.join(role))
        .is_ok()
        .then(|| dir.join(role))
}

/// One collection role, keyed and named by its FQCN, its bare names of sibling roles made
/// fully qualified; None when [`collection_role_dir`] finds none.
fn load_collection_role(
    root: &Path,
    within: &Path,
    vendored: &VendoredContent,
    fqcn: &str,
) -> Result<Option<Role>, ConfigError> {
    let Some(dir) = collection_role_dir(vendored, fqcn) else {
        return Ok(None);
    };
    let (collection, bare) = super::names::split_collection_role(fqcn).expect("a valid name");
    let roles_dir = dir.parent().expect("roles/<role>");
    let rel = roles_dir
        .strip_prefix(root)
        .unwrap_or(roles_dir)
        .to_string_lossy()
        .into_owned();
    let mut role = load_role(root, &rel, within, bare).map_err(|e| match e {
        ConfigError::Role {
            path,
            message,
            hints,
            ..
        } => ConfigError::Role {
            role: fqcn.to_string(),
            path,
            message,
            hints,
        },
        other => other,
    })?;
    let sibling = |name: &mut String| {
        if !name.contains('.') && roles_dir.join(name.as_str()).is_dir() {
            *name = format!("{collection}.{name}");
        }
    };
    role.deps.iter_mut().for_each(sibling);
    role.refs
        .roles
        .iter_mut()
        .for_each(|r| sibling(&mut r.role));
    role.name = fqcn.to_string();
    Ok(Some(role))
}

/// Loads one role from `<root>/<rel>/<name>`; `within` is the canonical project root its
/// symlinks must stay inside.
fn load_role(root: &Path, rel: &str, within: &Path, name: &str) -> Result<Role, ConfigError> {
    let dir = root.join(rel).join(name);
    let role_err = |message: String, hints: Vec<String>| ConfigError::Role {
        role: name.to_string(),
        path: dir.clone(),
        message,
        hints,
    };
    if !valid_role_name(name) {
        return Err(role_err(
            "the directory name is not a valid role name".into(),
            vec![super::names::ROLE_NAME_RULE.into()],
        ));
    }
    // the whole tree is checked before any file of it is opened
    let (hash, files) = hash_tree(within, &dir).map_err(|r| r.into_config(name))?;
    let file_of = |rel: &str| files.iter().find(|f| f.rel == rel);
    let read = |f: &RoleFile| {
        let (bytes, _) = read_regular(&f.source).map_err(|source| ConfigError::Io {
            path: dir.join(&f.rel),
            source,
        })?;
        String::from_utf8(bytes).map_err(|e| ConfigError::Io {
            path: dir.join(&f.rel),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    };

    let Some(tasks) = file_of("tasks/main.yml") else {
        return Err(role_err(
            format!(
                "has no tasks/main.yml (looked for {})",
                dir.join("tasks/main.yml").display()
            ),
            vec![format!(
                "create {rel}/{name}/tasks/main.yml (a list of tasks, `[]` if none), or remove the directory"
            )],
        ));
    };
    // A YAML syntax error in tasks is reported here, with its location, rather than by Ansible later.
    let tasks_file = SourceFile::ansible(format!("{rel}/{name}/tasks/main.yml"), read(tasks)?);
    if !tasks_file.text.trim().is_empty() {
        tasks_file.parse::<serde_yaml::Value>()?;
    }

    let mut refs = RoleRefs::default();
    for f in files.iter().filter(|f| is_task_file(&f.rel)) {
        let file = SourceFile::ansible(format!("{rel}/{name}/{}", f.rel), read(f)?);
        role_refs::scan(&file, &mut refs)?;
    }

    let mut deps = Vec::new();
    let mut meta_file = None;
    let mut min_ansible = None;
    if let Some(meta) = file_of("meta/main.yml") {
        let file = SourceFile::ansible(format!("{rel}/{name}/meta/main.yml"), read(meta)?);
        deps = dependencies(&file)?;
        min_ansible = min_ansible_version(&file);
        refs.collections_keyword.extend(meta_collections(&file));
        meta_file = Some(file);
    }

    let meta = match file_of("meta/parbake.yml") {
        Some(f) => {
            let file = SourceFile::new(format!("{rel}/{name}/meta/parbake.yml"), read(f)?);
            let meta: RoleMetaFile = file.parse()?;
            super::file_checks::check_role_meta(&file, &meta)?;
            meta
        }
        None => RoleMetaFile::default(),
    };

    let (words, dotted_collections) = words_of(&files);
    Ok(Role {
        name: name.to_string(),
        dir,
        deps,
        hash,
        meta,
        files,
        meta_file,
        refs,
        min_ansible,
        words,
        dotted_collections,
    })
}

/// The directories of a role whose text can name a var.
const READS_VARS: [&str; 6] = [
    "tasks/",
    "handlers/",
    "defaults/",
    "vars/",
    "templates/",
    "meta/",
];

/// The identifiers (`[A-Za-z_][A-Za-z0-9_]*`) of the role's files that can name a var, and
/// the `namespace.collection` prefixes of their dotted names of three parts or more. Best
/// effort, for a note and the run hash: a file that cannot be read adds nothing (loading
/// checked them all).
fn words_of(files: &[RoleFile]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut words, mut dotted) = (BTreeSet::new(), BTreeSet::new());
    for f in files
        .iter()
        .filter(|f| READS_VARS.iter().any(|d| f.rel.starts_with(d)))
    {
        let Ok((bytes, _)) = read_regular(&f.source) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')) {
            let parts: Vec<&str> = token.split('.').collect();
            if parts.len() >= 3 && parts[..2].iter().all(|p| !p.is_empty()) {
                dotted.insert(format!("{}.{}", parts[0], parts[1]));
            }
            let idents = parts
                .into_iter()
                .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'));
            words.extend(idents.map(str::to_string));
        }
    }
    (words, dotted)
}

/// The collections of meta/main.yml's `collections:` keyword (its tasks' bare module names
/// resolve through them).
fn meta_collections(file: &SourceFile) -> Vec<String> {
    let meta: serde_yaml::Value = file.parse().unwrap_or_default();
    role_refs::collection_names(meta.get("collections").unwrap_or(&serde_yaml::Value::Null))
}

/// `galaxy_info.min_ansible_version` (a string or a number, `2.15` or `"2.15.1"`) and its
/// line; None when absent or unreadable (Ansible itself never enforces it).
fn min_ansible_version(file: &SourceFile) -> Option<(String, usize)> {
    let value: serde_yaml::Value = file.parse().ok()?;
    let v = value.get("galaxy_info")?.get("min_ansible_version")?;
    let text = match v {
        serde_yaml::Value::String(s) => s.trim().to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let line =
        yaml::locate(&file.text, "galaxy_info.min_ansible_version", None).map_or(1, |(l, _)| l);
    Some((text, line))
}

/// Task and handler files, which Ansible reads as task lists.
fn is_task_file(rel: &str) -> bool {
    (rel.starts_with("tasks/") || rel.starts_with("handlers/"))
        && (rel.ends_with(".yml") || rel.ends_with(".yaml"))
}

/// Keys a meta dependency entry may have: the role's name under either spelling Ansible takes.
const DEPENDENCY_NAME_KEYS: [&str; 2] = ["role", "name"];

/// The role names under `dependencies:` in a role's meta/main.yml, in declared order.
///
/// Ansible accepts `- name`, `- role: name` and `- name: name`. An entry that also carries
/// `vars:`, `when:`, `tags:` or any other parameter is refused: parbake runs each role once,
/// from its own plan (baked roles are shimmed), so those parameters would be silently dropped
/// or the role would run twice.
fn dependencies(file: &SourceFile) -> Result<Vec<String>, ConfigError> {
    let value: serde_yaml::Value = if file.text.trim().is_empty() {
        serde_yaml::Value::Null
    } else {
        file.parse()?
    };
    let Some(list) = value.get("dependencies") else {
        return Ok(Vec::new());
    };
    if list.is_null() {
        return Ok(Vec::new());
    }
    let Some(list) = list.as_sequence() else {
        return Err(file
            .error_for("dependencies", None, "`dependencies` must be a list")
            .into());
    };
    let mut deps = Vec::new();
    for (index, dep) in list.iter().enumerate() {
        let dep_name = dep
            .as_str()
            .or_else(|| dep.get("role").and_then(|v| v.as_str()))
            .or_else(|| dep.get("name").and_then(|v| v.as_str()));
        let Some(dep_name) = dep_name else {
            return Err(file
                .error_for(
                    "dependencies",
                    None,
                    "a dependency must be a role name or a mapping with `role:`",
                )
                .into());
        };
        if let Some(map) = dep.as_mapping() {
            let extra = map.keys().find(|k| {
                !k.as_str()
                    .is_some_and(|k| DEPENDENCY_NAME_KEYS.contains(&k))
            });
            if let Some(key) = extra {
                let key = match key.as_str() {
                    Some(k) => k.to_string(),
                    None => serde_yaml::to_string(key)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                return Err(dependency_parameter(file, index, dep_name, &key).into());
            }
        }
        deps.push(dep_name.to_string());
    }
    Ok(deps)
}

/// The error for a meta dependency entry that carries a parameter (`vars:`, `when:`, ...).
fn dependency_parameter(file: &SourceFile, index: usize, dep: &str, key: &str) -> Located {
    let (line, column) = locate_dependency_key(&file.text, index, key)
        .or_else(|| yaml::locate(&file.text, "dependencies", None))
        .unwrap_or((1, 1));
    let role_dir = file
        .display
        .strip_suffix("/meta/main.yml")
        .unwrap_or("roles/ROLE");
    file.error_at(
        line,
        column,
        Some(format!("dependencies[{index}].{key}")),
        format!(
            "meta dependency `{dep}` sets `{key}`: parbake runs each role once, from its own \
             plan, so a dependency's parameters would be dropped or the role would run twice"
        ),
    )
    .with_hint(format!(
        "list the dependency by name only (`- {dep}` or `- role: {dep}`) and put its values in \
         the stack's `vars:` (or, if you own `{dep}`, in its defaults/main.yml)"
    ))
    .with_hint(format!(
        "to run `{dep}` with its own parameters, include it from {role_dir}/tasks with \
         `ansible.builtin.include_role: {{name: {dep}}}` and `vars:`"
    ))
}

/// The 1-based (line, column) of `key` inside the `index`-th item of a block-style
/// `dependencies:` list. Best effort, like [`yaml::locate`]: None for flow style.
fn locate_dependency_key(text: &str, index: usize, key: &str) -> Option<(usize, usize)> {
    let (list_line, _) = yaml::locate(text, "dependencies", None)?;
    let mut item_indent = None;
    let mut items = 0usize;
    for (i, line) in text.lines().enumerate().skip(list_line) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let is_item = trimmed == "-" || trimmed.starts_with("- ");
        if indent == 0 && !is_item {
            break; // the next top-level key
        }
        let mut bare = trimmed;
        if is_item && item_indent.is_none_or(|at| at == indent) {
            item_indent = Some(indent);
            items += 1;
            bare = trimmed[1..].trim_start();
        }
        if items > index + 1 {
            break;
        }
        if items == index + 1 {
            let after = bare.strip_prefix(key).map(str::trim_start);
            if after.is_some_and(|a| a.starts_with(':')) {
                return Some((i + 1, line.len() - bare.len() + 1));
            }
        }
    }
    None
}

/// Content hash of a directory tree and its files: independent of file order and mtimes,
/// sensitive to every byte, every relative path and the executable bit. A symlink counts as
/// what it resolves to, which must stay inside `within` (the project root). Refuses FIFOs,
/// sockets, devices, dangling and looping links, and non-UTF-8 names, with the path.
pub fn hash_tree(within: &Path, dir: &Path) -> Result<(String, Vec<RoleFile>), Refusal> {
    let within = std::fs::canonicalize(within).map_err(|e| {
        Refusal::new(
            within,
            format!("cannot resolve the directory: {e}"),
            "check the project directory exists and is readable",
        )
    })?;
    let top = resolve(&within, dir, dir)?;
    let found = walk(&within, &top, dir)?;
    let mut hasher = Sha256::new();
    let mut files = Vec::with_capacity(found.len());
    for (rel, source) in found {
        let (content, mode) = read_regular(&source).map_err(|e| {
            Refusal::new(
                dir.join(&rel),
                format!("cannot read: {e}"),
                "check the file is a readable regular file and is not being replaced",
            )
        })?;
        let kind = if mode & 0o111 != 0 { "x" } else { "f" };
        // length-prefixed fields: no concatenation of two inputs can collide with a third
        hasher.update(format!("{kind} {} {}\n", rel.len(), rel).as_bytes());
        hasher.update((content.len() as u64).to_le_bytes());
        hasher.update(&content);
        files.push(RoleFile { rel, source, mode });
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), files))
}

/// The canonical path of `path` (shown to users as `shown`), refused unless it stays inside
/// `within`: a link that leaves the project, dangles or loops.
pub fn resolve(within: &Path, path: &Path, shown: &Path) -> Result<PathBuf, Refusal> {
    let target = || match std::fs::read_link(path) {
        Ok(t) => format!(" (a symlink to {})", t.display()),
        Err(_) => String::new(),
    };
    match std::fs::canonicalize(path) {
        Ok(real) if real.starts_with(within) => Ok(real),
        Ok(real) => Err(Refusal::new(
            shown,
            match std::fs::read_link(path) {
                Ok(text) if text == real => format!(
                    "is a symlink to {}, outside the project ({})",
                    real.display(),
                    within.display()
                ),
                _ => format!(
                    "resolves to {}{}, outside the project ({})",
                    real.display(),
                    target(),
                    within.display()
                ),
            },
            "a role may only link to files inside the project: copy the file into the role, \
             or link to a copy inside the project",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Refusal::new(
            shown,
            format!("is a dangling symlink{}", target()),
            "fix the link or remove it",
        )),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(Refusal::new(
            shown,
            format!("is a symlink loop{}", target()),
            "remove the link: a role's tree must be finite",
        )),
        Err(e) => Err(Refusal::new(
            shown,
            format!("cannot resolve{}: {e}", target()),
            "check the path exists and is readable",
        )),
    }
}

/// A directory on the walk's current path, canonical: a link back to one of them is a loop.
struct Ancestor {
    dir: PathBuf,
    parent: Option<Rc<Ancestor>>,
}

impl Ancestor {
    fn contains(self: &Rc<Self>, dir: &Path) -> bool {
        let mut at = Some(self);
        while let Some(a) = at {
            if a.dir == dir {
                return true;
            }
            at = a.parent.as_ref();
        }
        false
    }
}

/// A symlink inside a role: where it resolves (inside the project) and what it is there.
/// A link to a directory that contains it is a loop.
fn followed(
    within: &Path,
    path: &Path,
    shown_path: &Path,
    here: &Rc<Ancestor>,
) -> Result<(PathBuf, std::fs::FileType), Refusal> {
    let real = resolve(within, path, shown_path)?;
    let ft = std::fs::symlink_metadata(&real)
        .map_err(|e| {
            Refusal::new(
                shown_path,
                format!("cannot stat what the symlink resolves to: {e}"),
                "check the link target is readable",
            )
        })?
        .file_type();
    if ft.is_dir() && here.contains(&real) {
        return Err(Refusal::new(
            shown_path,
            format!(
                "is a symlink loop: it resolves to {}, a directory that contains it",
                real.display()
            ),
            "remove the link: a role's tree must be finite",
        ));
    }
    Ok((real, ft))
}

/// Every regular file under the canonical directory `top` (shown to users as `shown`), as
/// (relative path, canonical source), sorted by relative path. Iterative: no depth limit of
/// its own beyond [`MAX_TREE_ENTRIES`]. Reads directory entries and metadata only.
pub fn walk(within: &Path, top: &Path, shown: &Path) -> Result<Vec<(String, PathBuf)>, Refusal> {
    let mut walk = Walk {
        within,
        shown,
        files: Vec::new(),
        entries_seen: 0,
        pending: vec![(
            String::new(),
            Rc::new(Ancestor {
                dir: top.to_path_buf(),
                parent: None,
            }),
        )],
    };
    while let Some((rel_dir, here)) = walk.pending.pop() {
        walk.read_dir(&rel_dir, &here)?;
    }
    let mut files = walk.files;
    files.sort();
    Ok(files)
}

/// A [`walk`] under way: the files found, and the directories still to read.
struct Walk<'a> {
    within: &'a Path,
    shown: &'a Path,
    files: Vec<(String, PathBuf)>,
    entries_seen: usize,
    pending: Vec<(String, Rc<Ancestor>)>,
}

impl Walk<'_> {
    /// The entries of the directory `here`, at `rel_dir` under the top, each taken in turn.
    fn read_dir(&mut self, rel_dir: &str, here: &Rc<Ancestor>) -> Result<(), Refusal> {
        let shown_dir = self.shown.join(rel_dir);
        let cannot_read = |e: std::io::Error| {
            Refusal::new(
                &shown_dir,
                format!("cannot read the directory: {e}"),
                "check the directory is readable",
            )
        };
        for entry in std::fs::read_dir(&here.dir).map_err(cannot_read)? {
            let entry = entry.map_err(cannot_read)?;
            let os_name = entry.file_name();
            let Some(name) = os_name.to_str() else {
                return Err(Refusal::new(
                    shown_dir.join(&os_name),
                    "the file name is not valid UTF-8",
                    "rename the file: role paths are hashed and shipped as UTF-8",
                ));
            };
            if ignored(name) {
                continue;
            }
            self.count_entry()?;
            let rel = if rel_dir.is_empty() {
                name.to_string()
            } else {
                format!("{rel_dir}/{name}")
            };
            self.take(&entry, rel, here)?;
        }
        Ok(())
    }

    /// One more entry, within [`MAX_TREE_ENTRIES`].
    fn count_entry(&mut self) -> Result<(), Refusal> {
        self.entries_seen += 1;
        if self.entries_seen <= MAX_TREE_ENTRIES {
            return Ok(());
        }
        Err(Refusal::new(
            self.shown,
            format!(
                "holds more than {MAX_TREE_ENTRIES} files and directories (counting \
                 those reached through symlinks)"
            ),
            "split the role, or remove symlinks that repeat directories",
        ))
    }

    /// An entry at `rel`: a symlink followed, then a directory queued, a file kept, anything
    /// else refused.
    fn take(
        &mut self,
        entry: &std::fs::DirEntry,
        rel: String,
        here: &Rc<Ancestor>,
    ) -> Result<(), Refusal> {
        let shown_path = self.shown.join(&rel);
        let path = entry.path();
        let lstat = entry.file_type().map_err(|e| {
            Refusal::new(
                &shown_path,
                format!("cannot stat: {e}"),
                "check the path is readable",
            )
        })?;
        let (real, ft) = if lstat.is_symlink() {
            followed(self.within, &path, &shown_path, here)?
        } else {
            (path, lstat)
        };
        if ft.is_dir() {
            self.pending.push((
                rel,
                Rc::new(Ancestor {
                    dir: real,
                    parent: Some(Rc::clone(here)),
                }),
            ));
        } else if ft.is_file() {
            self.files.push((rel, real));
        } else {
            return Err(Refusal::new(
                &shown_path,
                format!("is {}, not a regular file or directory", special_kind(&ft)),
                "remove it from the role: a role may hold only regular files, directories \
                 and symlinks to them inside the project",
            ));
        }
        Ok(())
    }
}

/// What a non-regular, non-directory file is, in words.
fn special_kind(ft: &std::fs::FileType) -> &'static str {
    crate::fsread::kind(ft)
}

/// Reads a regular file and its permission bits. Does not follow a final symlink, does not
/// block on a FIFO swapped in since the walk, and reads nothing that is not a regular file.
pub fn read_regular(path: &Path) -> std::io::Result<(Vec<u8>, u32)> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    Ok((bytes, meta.permissions().mode() & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small tree, with a link to a directory inside the project, walks to its files.
    #[test]
    fn walk_lists_files_through_links_sorted() {
        let tmp = tempfile::tempdir().unwrap();
        let within = tmp.path().canonicalize().unwrap();
        let role = within.join("role");
        std::fs::create_dir_all(role.join("tasks")).unwrap();
        std::fs::create_dir_all(within.join("shared")).unwrap();
        std::fs::write(role.join("tasks/main.yml"), "[]\n").unwrap();
        std::fs::write(within.join("shared/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("../shared", role.join("files")).unwrap();
        let files = walk(&within, &role, Path::new("roles/r")).unwrap();
        let rels: Vec<&str> = files.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(rels, ["files/a.txt", "tasks/main.yml"]);
        assert_eq!(files[0].1, within.join("shared/a.txt"));
    }

    /// Links that repeat one directory cannot make the walk endless or huge: past
    /// MAX_TREE_ENTRIES entries the role is refused.
    #[test]
    fn walk_refuses_a_tree_past_the_entry_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let within = tmp.path().canonicalize().unwrap();
        let big = within.join("big");
        std::fs::create_dir_all(&big).unwrap();
        for i in 0..1000 {
            std::fs::write(big.join(i.to_string()), "").unwrap();
        }
        let role = within.join("role");
        std::fs::create_dir_all(&role).unwrap();
        for i in 0..100 {
            std::os::unix::fs::symlink("../big", role.join(format!("l{i}"))).unwrap();
        }
        let refusal = walk(&within, &role, Path::new("roles/r")).unwrap_err();
        assert_eq!(refusal.path, Path::new("roles/r"));
        assert!(
            refusal.message.starts_with("holds more than 100000 files"),
            "{}",
            refusal.message
        );
    }
}
