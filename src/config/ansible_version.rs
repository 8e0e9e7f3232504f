//! ansible-core versions and the `requires_ansible` specifiers of collections
//! (`meta/runtime.yml`), a subset of PEP 440 that collections use: comma-separated clauses of
//! `>=`, `>`, `<=`, `<`, `==` (with an optional trailing `.*`), `!=` and `~=` over dotted
//! numeric versions. Pre-release suffixes are ignored (`2.15.0rc1` counts as `2.15.0`).

use std::cmp::Ordering;
use std::fmt;

/// The ansible-core an image runs when it pins none: Debian 12's (bookworm's `ansible-core`
/// package), which the bake installs when the source image has no ansible-playbook.
pub const DISTRIBUTION_ANSIBLE_CORE: &str = "2.14.18";

/// The ansible-core package of each Debian release parbake knows as a base: what a bake
/// installs when the image pins none.
const DEBIAN_ANSIBLE_CORE: &[(&str, &str)] =
    &[("12", DISTRIBUTION_ANSIBLE_CORE), ("13", "2.19.11")];

/// The Debian release of an image's base on `target` (`qemu` or `aws`): `parbake:debian-13`,
/// or an AMI name `debian-13-…`.
fn base_release<'a>(sources: &'a super::model::Sources, target: &str) -> Option<&'a str> {
    match target {
        "qemu" => sources
            .qemu
            .as_ref()?
            .disk_image
            .strip_prefix("parbake:debian-"),
        "aws" => {
            let name = &sources.aws.as_ref()?.source_ami.name;
            name.strip_prefix("debian-")?.split('-').next()
        }
        _ => None,
    }
}

/// The ansible-core image `def` runs on `target`, and whose it is: its pin, else its Debian
/// base's package (Debian 12's when the base is not known).
pub fn image_core(def: &super::model::ImageFile, target: &str) -> (String, String) {
    if let Some(a) = &def.ansible {
        return (a.core.clone(), "pinned in `ansible.core`".into());
    }
    let release = base_release(&def.sources, target);
    let packaged = release.and_then(|r| DEBIAN_ANSIBLE_CORE.iter().find(|(d, _)| *d == r));
    match packaged {
        Some((r, core)) => (
            core.to_string(),
            format!("Debian {r}'s package, as no `ansible.core` is pinned"),
        ),
        None => (
            DISTRIBUTION_ANSIBLE_CORE.to_string(),
            "Debian 12's package, as no `ansible.core` is pinned".into(),
        ),
    }
}

/// The oldest ansible-core parbake's runtime works with (its callback and JSON vars).
pub const OLDEST_ANSIBLE_CORE: &str = "2.14.0";

/// The Python versions each ansible-core minor runs on as a controller (its release notes'
/// support matrix). A minor not listed is not checked.
const PYTHON_BY_MINOR: &[(u64, &str, &str)] = &[
    (14, "3.9", "3.11"),
    (15, "3.9", "3.11"),
    (16, "3.10", "3.12"),
    (17, "3.10", "3.12"),
    (18, "3.11", "3.13"),
    (19, "3.11", "3.13"),
    (20, "3.12", "3.14"),
    (21, "3.12", "3.14"),
    (22, "3.13", "3.14"),
];

/// The lowest and highest Python `core` runs on, when parbake knows its minor.
pub fn python_range(core: &Version) -> Option<(Version, Version)> {
    if core.part(0) != 2 {
        return None;
    }
    let (_, low, high) = PYTHON_BY_MINOR
        .iter()
        .find(|(minor, _, _)| *minor == core.part(1))?;
    Some((Version::parse(low)?, Version::parse(high)?))
}

/// The python3 of each Debian release parbake knows as a base.
const DEBIAN_PYTHON: &[(&str, &str)] = &[("12", "3.11"), ("13", "3.13")];

/// For each source whose base parbake knows (`parbake:debian-N` locally, Debian's official
/// `debian-N-*` AMI names on aws): the target, the base as written, and its Python.
pub fn base_python(sources: &super::model::Sources) -> Vec<(&'static str, String, Version)> {
    let mut out = Vec::new();
    let release_python = |release: &str| {
        DEBIAN_PYTHON
            .iter()
            .find(|(r, _)| *r == release)
            .and_then(|(_, p)| Version::parse(p))
    };
    if let Some(q) = &sources.qemu {
        let release = q.disk_image.strip_prefix("parbake:debian-");
        if let Some(python) = release.and_then(release_python) {
            out.push(("qemu", q.disk_image.clone(), python));
        }
    }
    if let Some(a) = &sources.aws {
        let release = a
            .source_ami
            .name
            .strip_prefix("debian-")
            .and_then(|rest| rest.split('-').next());
        if let Some(python) = release.and_then(release_python) {
            out.push(("aws", a.source_ami.name.clone(), python));
        }
    }
    out
}

/// Compared part by part, a missing part counting as 0 (`2.15` == `2.15.0`).
#[derive(Debug, Clone)]
pub struct Version(Vec<u64>);

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl Version {
    /// The minor version when the major is `major` (`2.19.4` → 19 for 2).
    pub fn minor_of(&self, major: u64) -> Option<u64> {
        match self.0.as_slice() {
            [m, minor, ..] if *m == major => Some(*minor),
            _ => None,
        }
    }

    /// A dotted numeric version; a pre-release or local suffix on the last part is dropped.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let parts: Vec<&str> = s.split('.').collect();
        if parts.is_empty() || parts.len() > 4 {
            return None;
        }
        let mut out = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            let rest = &p[digits.len()..];
            if digits.is_empty() || (!rest.is_empty() && i + 1 != parts.len()) {
                return None;
            }
            if !rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') {
                return None;
            }
            out.push(digits.parse().ok()?);
        }
        Some(Version(out))
    }

    /// An exact `X.Y.Z` release, as an image pins ansible-core.
    pub fn parse_exact(s: &str) -> Option<Version> {
        let v = Version::parse(s)?;
        (v.0.len() == 3 && s.chars().all(|c| c.is_ascii_digit() || c == '.')).then_some(v)
    }

    fn part(&self, i: usize) -> u64 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|i| self.part(i).cmp(&other.part(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// Whether `version` satisfies `spec`; Err names the clause that cannot be read.
pub fn satisfies(version: &Version, spec: &str) -> Result<bool, String> {
    for clause in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if !clause_holds(version, clause)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn clause_holds(v: &Version, clause: &str) -> Result<bool, String> {
    let ops = ["~=", ">=", "<=", "==", "!=", ">", "<"];
    let op = ops
        .iter()
        .find(|op| clause.starts_with(**op))
        .ok_or_else(|| clause.to_string())?;
    let rest = clause[op.len()..].trim();
    if let Some(prefix) = rest.strip_suffix(".*") {
        let p = Version::parse(prefix).ok_or_else(|| clause.to_string())?;
        let same = (0..p.0.len()).all(|i| v.part(i) == p.part(i));
        return match *op {
            "==" => Ok(same),
            "!=" => Ok(!same),
            _ => Err(clause.to_string()),
        };
    }
    let w = Version::parse(rest).ok_or_else(|| clause.to_string())?;
    Ok(match *op {
        ">=" => *v >= w,
        "<=" => *v <= w,
        ">" => *v > w,
        "<" => *v < w,
        "==" => *v == w,
        "!=" => *v != w,
        // ~=2.15.1 means >=2.15.1, ==2.15.*
        _ => {
            let n = w.0.len().saturating_sub(1).max(1);
            *v >= w && (0..n).all(|i| v.part(i) == w.part(i))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn specifiers_as_collections_write_them() {
        let cases = [
            ("2.14.18", ">=2.14", true),
            ("2.14.18", ">=2.15.0", false),
            ("2.17.7", ">=2.15.0", true),
            ("2.17.7", ">=2.14,<2.17", false),
            ("2.16.3", ">=2.14,<2.17", true),
            ("2.16.3", "==2.16.*", true),
            ("2.17.0", "==2.16.*", false),
            ("2.16.3", "!=2.16.3", false),
            ("2.15.9", "~=2.15.1", true),
            ("2.16.0", "~=2.15.1", false),
            ("2.16.0", "~=2.15", true),
            ("2.14.0", ">2.14", false),
            ("2.15.0rc1", ">=2.15", true),
        ];
        for (ver, spec, want) in cases {
            assert_eq!(satisfies(&v(ver), spec), Ok(want), "{ver} {spec}");
        }
        assert!(satisfies(&v("2.14.0"), ">>2").is_err());
        assert!(satisfies(&v("2.14.0"), ">=two").is_err());
    }

    #[test]
    fn each_known_minor_names_the_pythons_it_runs_on() {
        let range = |c: &str| python_range(&v(c)).map(|(l, h)| (l.to_string(), h.to_string()));
        assert_eq!(range("2.14.18"), Some(("3.9".into(), "3.11".into())));
        assert_eq!(range("2.19.14"), Some(("3.11".into(), "3.13".into())));
        assert_eq!(range("2.21.5"), Some(("3.12".into(), "3.14".into())));
        assert_eq!(range("2.99.0"), None);
    }

    #[test]
    fn an_image_pins_an_exact_release() {
        assert!(Version::parse_exact("2.17.7").is_some());
        for bad in [
            "2.17",
            "2.17.7rc1",
            ">=2.17",
            "2.17.7.1",
            "",
            "latest",
            "2.17.x",
        ] {
            assert!(Version::parse_exact(bad).is_none(), "{bad}");
        }
        assert!(v("2.14.18") > v("2.14.9") && v("2.15") == v("2.15.0"));
    }
}
