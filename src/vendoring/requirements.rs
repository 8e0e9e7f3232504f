//! `requirements.yml` at the project root, in Ansible's own format: `roles:` and
//! `collections:` lists whose entries are a bare string or a mapping (`src`/`name`/`version`/
//! `scm` for roles, `name`/`version`/`type`/`source` for collections). Every entry is
//! classified (Galaxy, git, file, URL, dir) and the name it installs under is checked here,
//! with the entry's line, before `ansible-galaxy` sees the file.

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, Located, SourceFile};

/// The file name, at the project root.
pub const REQUIREMENTS_FILE: &str = "requirements.yml";

/// Where Ansible users keep their requirements, in the order parbake looks.
pub const REQUIREMENTS_FILES: [&str; 3] = [
    REQUIREMENTS_FILE,
    "roles/requirements.yml",
    "collections/requirements.yml",
];

/// The requirements files a project has: one, or the pair AWX and Ansible users keep side by
/// side (roles in `roles/requirements.yml`, collections in `collections/requirements.yml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    One(&'static str),
    Pair {
        roles: &'static str,
        collections: &'static str,
    },
}

impl Found {
    /// The files, for messages: `requirements.yml`, or both of a pair.
    pub fn shown(&self) -> String {
        match self {
            Found::One(f) => f.to_string(),
            Found::Pair { roles, collections } => format!("{roles} and {collections}"),
        }
    }
}

/// The project's requirements files, if any. The root's `requirements.yml` beside another is
/// an error naming both: parbake would not know which one Ansible reads.
pub fn find(root: &Path) -> Result<Option<Found>, ConfigError> {
    let found: Vec<&'static str> = REQUIREMENTS_FILES
        .into_iter()
        .filter(|f| std::fs::symlink_metadata(root.join(f)).is_ok())
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(Found::One(one))),
        [roles, collections] if *roles == REQUIREMENTS_FILES[1] => Ok(Some(Found::Pair {
            roles,
            collections,
        })),
        [first, second, ..] => Err(SourceFile::new(*second, "")
            .error_at(1, 1, None, format!("a second requirements file beside {first}: parbake vendors from {first}, or from roles/requirements.yml with collections/requirements.yml"))
            .with_hint(format!("merge them into {first} (its `roles:` and `collections:` lists), then run `parbake vendor`"))
            .into()),
    }
}

/// Longest part of a role or collection name (`namespace` or `name`).
const PART_MAX: usize = 64;

/// Where an entry's content comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// `namespace.name` from a Galaxy server.
    Galaxy,
    /// A git repository (`git+…`, or `scm: git`), at `version` (a tag, branch or commit).
    Git,
    /// A local tarball.
    File,
    /// A tarball at an http(s) URL.
    Url,
    /// A local collection directory (`type: dir`).
    Dir,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Galaxy => "galaxy",
            SourceKind::Git => "git",
            SourceKind::File => "file",
            SourceKind::Url => "url",
            SourceKind::Dir => "dir",
        })
    }
}

/// An entry as requested, normalised: what the lock records, and what `Vendored::load`
/// compares with the current `requirements.yml`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requested {
    /// `role` or `collection`.
    pub kind: String,
    /// The source as written (`src` of a role, `name` of a collection), `git+` included.
    pub src: String,
    #[serde(rename = "type")]
    pub source: SourceKind,
    pub version: Option<String>,
    /// The installed name when the entry fixes it (every role; Galaxy and local collections).
    pub name: Option<String>,
}

impl Requested {
    /// `role acme.hello (git+file:///src/hello @ v1.0.0)`, for messages.
    pub fn describe(&self) -> String {
        let name = self.name.as_deref().unwrap_or(&self.src);
        let mut s = format!("{} `{name}` ({} {}", self.kind, self.source, self.src);
        if let Some(v) = &self.version {
            s.push_str(&format!(" @ {v}"));
        }
        s.push(')');
        s
    }
}

/// `requirements.yml`, parsed and checked (or the pair of `roles/requirements.yml` and
/// `collections/requirements.yml`, as one).
#[derive(Debug, Clone)]
pub struct Requirements {
    /// The file of the roles (and of the collections, when there is one file).
    pub file: SourceFile,
    /// `collections/requirements.yml`, when the roles are in `roles/requirements.yml`.
    pub collections_file: Option<SourceFile>,
    /// `sha256:<hex>` of the file's bytes (of both files' digests for a pair): the lock is
    /// stale when it differs.
    pub sha256: String,
    pub roles: Vec<Requested>,
    pub collections: Vec<Requested>,
}

impl Requirements {
    /// Reads the project's requirements (see [`find`]); None when there are none.
    pub fn load(root: &Path) -> Result<Option<Requirements>, ConfigError> {
        match find(root)? {
            None => Ok(None),
            Some(Found::One(rel)) => read_one(root, rel),
            Some(Found::Pair { roles, collections }) => {
                let (Some(r), Some(c)) = (read_one(root, roles)?, read_one(root, collections)?)
                else {
                    return Ok(None);
                };
                Requirements::pair(r, c).map(Some)
            }
        }
    }

    /// One list from each file: a pair's roles file lists no collections, its collections
    /// file no roles (each would be installed twice, or not at all, by the tools that read
    /// the pair).
    fn pair(roles: Requirements, collections: Requirements) -> Result<Requirements, ConfigError> {
        if !roles.collections.is_empty() {
            return Err(misplaced(&roles.file, "collections", collections.path()));
        }
        if !collections.roles.is_empty() {
            return Err(misplaced(&collections.file, "roles", roles.path()));
        }
        Ok(Requirements {
            sha256: sha256_of(format!("{}\n{}\n", roles.sha256, collections.sha256).as_bytes()),
            file: roles.file,
            collections_file: Some(collections.file),
            roles: roles.roles,
            collections: collections.collections,
        })
    }

    /// The file's path under the project root (`requirements.yml`, `roles/requirements.yml` or
    /// `collections/requirements.yml`); the roles' file of a pair.
    pub fn path(&self) -> &str {
        &self.file.display
    }

    /// The file that lists `what` (`role` or `collection`).
    pub fn path_of(&self, what: &str) -> &str {
        match (&self.collections_file, what) {
            (Some(c), "collection") => &c.display,
            _ => &self.file.display,
        }
    }

    /// The files read, for messages: `requirements.yml`, or both of a pair.
    pub fn shown(&self) -> String {
        match &self.collections_file {
            Some(c) => format!("{} and {}", self.file.display, c.display),
            None => self.file.display.clone(),
        }
    }

    /// Parses and checks the text of a requirements file.
    pub fn parse(file: SourceFile) -> Result<Requirements, ConfigError> {
        let raw: RawFile = file.parse().map_err(with_format_hint)?;
        let mut roles = Vec::new();
        for (index, entry) in raw.roles.into_iter().enumerate() {
            roles.push(role_entry(&file, index, entry)?);
        }
        let mut collections = Vec::new();
        for (index, entry) in raw.collections.into_iter().enumerate() {
            collections.push(collection_entry(&file, index, entry)?);
        }
        check_unique(&file, "roles", &roles)?;
        check_unique(&file, "collections", &collections)?;
        Ok(Requirements {
            sha256: sha256_of(file.text.as_bytes()),
            file,
            collections_file: None,
            roles,
            collections,
        })
    }

    /// A located error about the `index`-th entry of `list` (`roles` or `collections`),
    /// pointing at `value`.
    pub(crate) fn entry_error(
        &self,
        list: &str,
        index: usize,
        value: &str,
        message: String,
    ) -> Located {
        let file = match (&self.collections_file, list) {
            (Some(c), "collections") => c,
            _ => &self.file,
        };
        entry_error(file, list, index, value, message)
    }

    /// Every entry, roles first, in file order.
    pub fn entries(&self) -> impl Iterator<Item = &Requested> {
        self.roles.iter().chain(&self.collections)
    }
}

/// One requirements file, parsed and checked; None when it vanished since [`find`].
fn read_one(root: &Path, rel: &str) -> Result<Option<Requirements>, ConfigError> {
    let path = root.join(rel);
    let Some(bytes) = crate::fsread::read_optional(root, &path, crate::fsread::CONFIG_LIMIT)?
    else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes.clone()).map_err(|e| ConfigError::Io {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let mut reqs = Requirements::parse(SourceFile::new(rel, text))?;
    reqs.sha256 = sha256_of(&bytes);
    Ok(Some(reqs))
}

/// A list in the wrong file of a pair: `list` belongs in `other`.
fn misplaced(file: &SourceFile, list: &str, other: &str) -> ConfigError {
    let (line, column) = crate::config::yaml::locate(&file.text, list, None).unwrap_or((1, 1));
    file.error_at(line, column, None, format!("`{list}:` here, while {other} is the project's file for them"))
        .with_hint(format!("move these entries into {other}: with roles/requirements.yml and collections/requirements.yml side by side, roles go in the first and collections in the second"))
        .into()
}

/// A serde error about a field gets a hint that lists what each entry takes.
fn with_format_hint(e: ConfigError) -> ConfigError {
    match e {
        ConfigError::At(l) if l.hints.is_empty() => l
            .with_hint("Ansible's requirements format: `roles:` entries take `src`, `name`, `version` and `scm`; `collections:` entries take `name`, `version`, `type` and `source`; each value is a string")
            .into(),
        other => other,
    }
}

pub(crate) fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The file as written. `roles` and `collections` only; anything else is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    roles: Vec<Entry<RawRole>>,
    #[serde(default)]
    collections: Vec<Entry<RawCollection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    src: Option<String>,
    name: Option<String>,
    version: Option<String>,
    scm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollection {
    name: String,
    version: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// A Galaxy server URL; recorded, used only by `ansible-galaxy`.
    source: Option<String>,
}

/// A list item: a bare string or a mapping. Deserialized by hand so that a bad mapping keeps
/// serde's located error (an untagged enum would only say that no variant matched).
#[derive(Debug)]
enum Entry<T> {
    Bare(String),
    Full(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entry<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Entry<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name or a mapping (`src`/`name`, `version`, ...)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Entry<T>, E> {
                Ok(Entry::Bare(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Entry::Full)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A located error about the `index`-th entry of `list`, pointing at `value` when it can.
fn entry_error(
    file: &SourceFile,
    list: &str,
    index: usize,
    value: &str,
    message: String,
) -> Located {
    nth_entry_error(file, list, index, value, 0, message)
}

/// Like [`entry_error`], at the `nth` (0-based) line under `list` that holds `value`.
fn nth_entry_error(
    file: &SourceFile,
    list: &str,
    index: usize,
    value: &str,
    nth: usize,
    message: String,
) -> Located {
    let (line, column) = locate_value(&file.text, list, value, nth).unwrap_or((1, 1));
    file.error_at(line, column, Some(format!("{list}[{index}]")), message)
}

/// The `nth` line under `list` that holds `value` (an entry's source or name).
fn locate_value(text: &str, list: &str, value: &str, nth: usize) -> Option<(usize, usize)> {
    let (start, _) = crate::config::yaml::locate(text, list, None)?;
    text.lines()
        .enumerate()
        .skip(start)
        .filter_map(|(i, l)| l.find(value).map(|c| (i + 1, c + 1)))
        .nth(nth)
        .or(Some((start, 1)))
}

/// A role's installed name: `name` or `namespace.name`; each part ASCII letters, digits, `_`
/// and `-` (legacy Galaxy role names have dashes), not starting with `-`.
pub fn valid_role_name(name: &str) -> bool {
    crate::config::names::valid_role_name(name)
}

/// A collection's full name: `namespace.name`, each part ASCII letters, digits and `_`, not
/// starting with a digit.
pub fn valid_collection_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= PART_MAX
                && !p.starts_with(|c: char| c.is_ascii_digit())
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// A version or a source: one line, no control characters, not starting with `-` (it reaches
/// `ansible-galaxy` and git as an argument).
fn valid_word(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('-') && crate::config::names::one_line(s) && !s.contains(' ')
}

fn role_entry(
    file: &SourceFile,
    index: usize,
    entry: Entry<RawRole>,
) -> Result<Requested, ConfigError> {
    let raw = match entry {
        Entry::Full(r) => r,
        // Ansible's legacy string form: `src[,version[,name]]`
        Entry::Bare(s) => {
            let mut parts = s.splitn(3, ',').map(|p| p.trim().to_string());
            RawRole {
                src: parts.next(),
                version: parts.next().filter(|v| !v.is_empty()),
                name: parts.next().filter(|v| !v.is_empty()),
                scm: None,
            }
        }
    };
    let Some(src) = raw.src.clone().or_else(|| raw.name.clone()) else {
        return Err(file
            .error_at(
                1,
                1,
                Some(format!("roles[{index}]")),
                "a role entry needs `src` (or `name`)",
            )
            .with_hint(
                "e.g. `- src: git+https://example.com/hello.git` with `version:` and `name:`",
            )
            .into());
    };
    let bad = |value: &str, message: String, hint: &str| -> ConfigError {
        entry_error(file, "roles", index, value, message)
            .with_hint(hint.to_string())
            .into()
    };
    for word in [Some(&src), raw.version.as_ref(), raw.scm.as_ref()]
        .into_iter()
        .flatten()
    {
        if !valid_word(word) {
            return Err(bad(
                word,
                format!("{word:?} is not a source, version or scm"),
                "write it on one line, without spaces, not starting with `-`",
            ));
        }
    }
    let source = role_source(&src, raw.scm.as_deref()).ok_or_else(|| {
        bad(&src, format!("cannot tell what kind of source {src:?} is"), "write a Galaxy name (`namespace.name`), `git+https://…` or `git+file:///…` (or `scm: git`), an http(s) URL of a tarball, or a path to a tarball")
    })?;
    if let Some(scm) = raw.scm.as_deref().filter(|s| *s != "git") {
        return Err(bad(
            scm,
            format!("scm `{scm}` is not supported"),
            "only `scm: git` is supported",
        ));
    }
    let name = match &raw.name {
        Some(n) if raw.src.is_some() => n.clone(),
        _ if source == SourceKind::Galaxy => src.clone(),
        // ansible-galaxy names a role from a path (no `://`, no `@`) by the whole path, and
        // installs it there: `../../x.tar.gz` would land outside vendor/
        _ if !src.contains("://") && !src.contains('@') => src.clone(),
        _ => role_name_from_url(&src),
    };
    if source == SourceKind::Git {
        check_git_src(&src).map_err(|m| {
            bad(&src, m, "write `git+https://host/repo.git`, `git+file:///path/repo`, `git@host:repo.git` or a path; a git source never starts with `-`")
        })?;
    }
    if !valid_role_name(&name) {
        return Err(bad(&name, format!("{name:?} is not a valid role name"), "a role installs as `name` or `namespace.name`: ASCII letters, digits, `_` and `-`, not starting with `-`; set `name:` to choose it"));
    }
    Ok(Requested {
        kind: "role".into(),
        src,
        source,
        version: raw.version,
        name: Some(name),
    })
}

/// Ansible's reading of a role `src`.
fn role_source(src: &str, scm: Option<&str>) -> Option<SourceKind> {
    let is_url = src.starts_with("https://") || src.starts_with("http://");
    let is_path = ["/", "./", "../", "~/", "file://"]
        .iter()
        .any(|p| src.starts_with(p));
    if src.starts_with("git+") || scm.is_some() {
        Some(SourceKind::Git)
    } else if is_url {
        Some(SourceKind::Url)
    } else if is_path {
        Some(SourceKind::File)
    } else if valid_role_name(src) && src.contains('.') {
        Some(SourceKind::Galaxy)
    } else {
        None
    }
}

/// `ansible-galaxy`'s name for a role from a URL: the last path segment without `.git`,
/// `.tar.gz` and anything after a comma.
fn role_name_from_url(src: &str) -> String {
    let last = src.trim_end_matches('/').rsplit('/').next().unwrap_or(src);
    let last = last.split(',').next().unwrap_or(last);
    let last = last.strip_suffix(".git").unwrap_or(last);
    last.strip_suffix(".tar.gz").unwrap_or(last).to_string()
}

fn collection_entry(
    file: &SourceFile,
    index: usize,
    entry: Entry<RawCollection>,
) -> Result<Requested, ConfigError> {
    let raw = match entry {
        Entry::Full(c) => c,
        Entry::Bare(name) => RawCollection {
            name,
            version: None,
            kind: None,
            source: None,
        },
    };
    let bad = |value: &str, message: String, hint: &str| -> ConfigError {
        entry_error(file, "collections", index, value, message)
            .with_hint(hint.to_string())
            .into()
    };
    for word in [Some(&raw.name), raw.version.as_ref(), raw.source.as_ref()]
        .into_iter()
        .flatten()
    {
        if !valid_word(word) {
            return Err(bad(
                word,
                format!("{word:?} is not a collection name, source or version"),
                "write it on one line, without spaces, not starting with `-`",
            ));
        }
    }
    let source = match raw.kind.as_deref() {
        None => infer_collection_source(&raw.name),
        Some("galaxy") => SourceKind::Galaxy,
        Some("git") => SourceKind::Git,
        Some("file") => SourceKind::File,
        Some("url") => SourceKind::Url,
        Some("dir") => SourceKind::Dir,
        Some(other) => {
            return Err(bad(other, format!("collection type `{other}` is not supported"), "use `galaxy`, `git`, `file`, `url` or `dir` (list each directory of a `subdirs` source as its own `type: dir` entry)"));
        }
    };
    if source == SourceKind::Git {
        check_git_src(&raw.name).map_err(|m| {
            bad(&raw.name, m, "write `git+https://host/repo.git`, `git+file:///path/repo`, `git@host:repo.git` or a path; a git source never starts with `-`")
        })?;
    }
    let name = match source {
        SourceKind::Galaxy => {
            if !valid_collection_name(&raw.name) {
                return Err(bad(&raw.name, format!("{:?} is not a valid collection name", raw.name), "a Galaxy collection is `namespace.name`: ASCII letters, digits and `_`; for a path, URL or git source set `type:`"));
            }
            Some(raw.name.clone())
        }
        _ => None,
    };
    Ok(Requested {
        kind: "collection".into(),
        src: raw.name,
        source,
        version: raw.version,
        name,
    })
}

/// A git source must be a URL (`scheme://…`), an scp-like `user@host:path` or a path, and no
/// part of it may start with `-`: `ansible-galaxy` hands it to `git clone` without `--`, so
/// `git+--upload-pack=…` would be read as an option.
pub(crate) fn check_git_src(src: &str) -> Result<(), String> {
    let url = src.strip_prefix("git+").unwrap_or(src);
    let parts = url.split([',', '#']);
    if url.is_empty() || parts.clone().any(|p| p.starts_with('-')) {
        return Err(format!(
            "git source {src:?} starts with `-`: git would read it as an option"
        ));
    }
    let scheme = url.split_once("://").is_some_and(|(s, rest)| {
        !s.is_empty()
            && !rest.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let scp = url
        .split_once(':')
        .is_some_and(|(host, path)| host.contains('@') && !path.is_empty() && !host.contains('/'));
    let path = ["/", "./", "../", "~/"].iter().any(|p| url.starts_with(p));
    if scheme || scp || path {
        Ok(())
    } else {
        Err(format!(
            "git source {src:?} is not a URL, `user@host:path` or a path"
        ))
    }
}

/// Ansible's guess when `type` is not given.
fn infer_collection_source(name: &str) -> SourceKind {
    if name.starts_with("git+") || name.ends_with(".git") {
        SourceKind::Git
    } else if name.starts_with("https://") || name.starts_with("http://") {
        SourceKind::Url
    } else if ["/", "./", "../", "~/"].iter().any(|p| name.starts_with(p)) {
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            SourceKind::File
        } else {
            SourceKind::Dir
        }
    } else {
        SourceKind::Galaxy
    }
}

/// Two entries installing the same name would overwrite each other.
fn check_unique(file: &SourceFile, list: &str, entries: &[Requested]) -> Result<(), ConfigError> {
    for (i, e) in entries.iter().enumerate() {
        let Some(name) = &e.name else { continue };
        if entries[..i].iter().any(|o| o.name.as_ref() == Some(name)) {
            return Err(nth_entry_error(
                file,
                list,
                i,
                name,
                1,
                format!("`{name}` is listed twice"),
            )
            .with_hint("keep one entry per name: the second would overwrite the first")
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Requirements, ConfigError> {
        Requirements::parse(SourceFile::new("requirements.yml", text))
    }

    #[test]
    fn reads_every_source_form() {
        let r = parse(
            "roles:\n  - src: git+file:///src/hello\n    version: v1.0.0\n    name: acme.hello\n  - geerlingguy.nginx\n  - src: https://example.com/x/web-role.git\n    scm: git\n  - https://example.com/r/tar-role.tar.gz\n  - git+https://example.com/a/b.git,v2,acme.b\ncollections:\n  - community.general\n  - name: ./dist/acme-tools-1.0.0.tar.gz\n    type: file\n  - name: /srv/posix\n    type: dir\n",
        )
        .unwrap();
        let roles: Vec<(&str, SourceKind, Option<&str>)> = r
            .roles
            .iter()
            .map(|e| (e.name.as_deref().unwrap(), e.source, e.version.as_deref()))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("acme.hello", SourceKind::Git, Some("v1.0.0")),
                ("geerlingguy.nginx", SourceKind::Galaxy, None),
                ("web-role", SourceKind::Git, None),
                ("tar-role", SourceKind::Url, None),
                ("acme.b", SourceKind::Git, Some("v2")),
            ]
        );
        let kinds: Vec<SourceKind> = r.collections.iter().map(|c| c.source).collect();
        assert_eq!(
            kinds,
            [SourceKind::Galaxy, SourceKind::File, SourceKind::Dir]
        );
        assert_eq!(r.collections[0].name.as_deref(), Some("community.general"));
    }

    #[test]
    fn refuses_bad_entries_at_their_line() {
        let cases = [
            ("roles:\n  - src: a.b\n    nam: x\n", 3, "unknown field"),
            (
                "roles:\n  - src: git+file:///x\n    name: ../evil\n",
                3,
                "not a valid role name",
            ),
            (
                "roles:\n  - src: git+file:///x\n    name: a/b\n",
                3,
                "not a valid role name",
            ),
            (
                "collections:\n  - name: community.general\n    type: subdirs\n",
                3,
                "not supported",
            ),
            (
                "collections:\n  - name: community\n",
                2,
                "not a valid collection name",
            ),
            ("collections:\n  - name: [a]\n", 2, "invalid type"),
            ("roles:\n  - just-a-word\n", 2, "what kind of source"),
            ("roles:\n  - a.b\n  - a.b\n", 3, "listed twice"),
            ("role:\n  - a.b\n", 1, "unknown field"),
        ];
        for (text, line, message) in cases {
            let err = parse(text).unwrap_err();
            let l = err.located().unwrap_or_else(|| panic!("{text}: {err}"));
            assert_eq!(l.line, line, "{text}: {err}");
            assert!(l.message.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn a_git_source_is_a_url_or_a_path_and_never_an_option() {
        for ok in [
            "git+https://example.com/a/b.git",
            "git+file:///src/hello",
            "git@github.com:a/b.git",
            "git+ssh://git@host/x.git,v1",
            "./repo.git",
        ] {
            assert_eq!(check_git_src(ok), Ok(()), "{ok}");
        }
        for bad in [
            "git+--upload-pack=touch${IFS}/tmp/x",
            "git+-c",
            "git+file:///x,-v",
            "git+https://h/x.git#-sub",
            "git+ext::sh -c id",
            "git+",
            "repo",
        ] {
            assert!(check_git_src(bad).is_err(), "{bad}");
        }
        let e = parse("collections:\n  - name: git+--upload-pack=x\n    type: git\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("starts with `-`") && e.contains(":2:"), "{e}");
    }

    #[test]
    fn a_role_from_a_path_is_named_by_its_path_as_galaxy_names_it() {
        let e = parse("roles:\n  - src: ../../x.tar.gz\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid role name"), "{e}");
        let ok = parse("roles:\n  - src: ./x.tar.gz\n    name: acme.x\n").unwrap();
        assert_eq!(ok.roles[0].name.as_deref(), Some("acme.x"));
    }

    #[test]
    fn names() {
        for ok in ["hello", "acme.hello", "geerlingguy.php-versions", "a_b.c-d"] {
            assert!(valid_role_name(ok), "{ok}");
        }
        for bad in ["", "a..b", "a.b.c", "../x", "a/b", "a b", "-x", ".x", "é"] {
            assert!(!valid_role_name(bad), "{bad:?}");
        }
        assert!(valid_collection_name("community.general") && valid_collection_name("a_1.b2"));
        for bad in ["community", "a.b.c", "a-b.c", "1a.b", "a.", "a.b/c"] {
            assert!(!valid_collection_name(bad), "{bad:?}");
        }
    }
}
