//! ansible-core versions and the `requires_ansible` specifiers of collections
//! (`meta/runtime.yml`), a subset of PEP 440 that collections use: comma-separated clauses of
//! `>=`, `>`, `<=`, `<`, `==` (with an optional trailing `.*`), `!=` and `~=` over dotted
//! numeric versions. Pre-release suffixes are ignored (`2.15.0rc1` counts as `2.15.0`).

use std::cmp::Ordering;
use std::fmt;

/// The ansible-core an image runs when it pins none: Debian 12's (bookworm's `ansible-core`
/// package), which the bake installs when the source image has no ansible-playbook.
pub const DISTRIBUTION_ANSIBLE_CORE: &str = "2.14.18";

/// The oldest ansible-core parbake's runtime works with (its callback and JSON vars).
pub const OLDEST_ANSIBLE_CORE: &str = "2.14.0";

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
