//! Everything parbake does differently by Packer version, in one place.
//!
//! - Packer 1.6.6 (Debian's) has the qemu and amazon builders built in and refuses a
//!   `required_plugins` block.
//! - Packer 1.7 brought `required_plugins` and `packer init`, and from 1.10.0 the qemu and amazon
//!   plugins are no longer bundled: parbake writes `required_plugins.pkr.hcl` beside the
//!   template and runs `packer init` in the build directory before `packer validate`/`build`.
//! - Packer 1.13 sends provisioner and plugin output to `-machine-readable` as
//!   `ui,say,==> NAME: …`, the same kind and prefix as Packer's own steps; before, it came as
//!   `ui,message,    NAME: …`. parbake's progress does not rely on the kind (see
//!   [`crate::bake::packer_output`]), so this only changes what the bake log's first line says.
//! - Packer 1.14 installs HashiCorp's official plugins from releases.hashicorp.com; before, from
//!   GitHub releases only, where the amazon plugin from 1.3.10 and the qemu plugin from 1.1.4
//!   have no binaries. So Packer 1.7 to 1.13 cannot `packer init` the pinned plugins
//!   ([`init_verdict`]). Read in Packer's changelog and source, not run here: only 1.6.6 is.

use std::fmt;

/// `major.minor.patch` of the installed Packer; `0.0.0` when `packer version` said nothing
/// parbake could read, which is treated like 1.6.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Version(pub u32, pub u32, pub u32);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// Reads `packer version`: `Packer v1.6.6`, or `Packer v1.14.3` followed by more text.
    pub fn parse(text: &str) -> Option<Version> {
        let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
        let mut it = v.split('.').map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
                .ok()
        });
        Some(Version(
            it.next()??,
            it.next()??,
            it.next().flatten().unwrap_or(0),
        ))
    }

    /// 1.7+: the plugins are named in `required_plugins.pkr.hcl` and installed by `packer init`.
    /// 1.6.6 has them built in and rejects that file.
    pub fn needs_init(self) -> bool {
        self >= Version(1, 7, 0)
    }

    /// 1.13+: provisioner output arrives as `ui,say,==> NAME: …` lines, shaped like Packer's
    /// own steps; before, as `ui,message,    NAME: …`.
    pub fn provisioner_output_as_say(self) -> bool {
        self >= Version(1, 13, 0)
    }

    /// One line for the top of a bake log: the version and what parbake did about it.
    pub fn describe(self) -> String {
        format!(
            "parbake: Packer {self}: {}; provisioner output as `{}` lines",
            if self.needs_init() {
                "plugins from required_plugins.pkr.hcl, installed by `packer init`"
            } else {
                "built-in builders, no required_plugins"
            },
            if self.provisioner_output_as_say() {
                "ui,say,==> NAME:"
            } else {
                "ui,message,    NAME:"
            }
        )
    }
}

/// What `doctor` and a failed `packer init` say about installing one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitVerdict {
    /// Packer 1.6.6: the builders are built in; nothing is installed.
    BuiltIn,
    /// `packer init` can install a release the constraint admits.
    Installable,
    /// Every release the constraint admits is from `since` on, which this Packer (before 1.14)
    /// cannot install: those releases have no binaries on GitHub.
    NotOnGitHub { since: Version },
    /// The constraint is not one parbake reads, so it cannot say.
    Unread,
}

/// For each official plugin, its first release published on releases.hashicorp.com only, with
/// no binaries attached to its GitHub release (so Packer before 1.14 cannot install it or any
/// later release). From the notes on Packer 1.14 (../shared/notes/ecosystem-2026.md).
pub const NOT_ON_GITHUB_FROM: [(&str, Version); 2] = [
    ("github.com/hashicorp/amazon", Version(1, 3, 10)),
    ("github.com/hashicorp/qemu", Version(1, 1, 4)),
];

/// The first Packer whose `packer init` installs official plugins from releases.hashicorp.com
/// (Packer's changelog for 1.14.0; documented, not run here).
pub const RELEASES_SITE_FROM: Version = Version(1, 14, 0);

/// One plugin of a `required_plugins` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredPlugin {
    pub name: String,
    pub source: String,
    pub version: String,
}

/// Whether `packer init` on Packer `packer` can install `plugin`. Before 1.14, `packer init`
/// tries every GitHub release the constraint admits, newest first (Packer 1.13.1's plugin
/// getter, read, not run), so it succeeds when the constraint admits an older release that
/// still has binaries there.
pub fn init_verdict(packer: Version, plugin: &RequiredPlugin) -> InitVerdict {
    if !packer.needs_init() {
        return InitVerdict::BuiltIn;
    }
    let Some(&(_, since)) = NOT_ON_GITHUB_FROM.iter().find(|(s, _)| *s == plugin.source) else {
        return InitVerdict::Installable;
    };
    if packer >= RELEASES_SITE_FROM {
        return InitVerdict::Installable;
    }
    let Some(c) = Constraint::parse(&plugin.version) else {
        return InitVerdict::Unread;
    };
    if c.admits_below(since) {
        InitVerdict::Installable
    } else {
        InitVerdict::NotOnGitHub { since }
    }
}

/// What `doctor` and a failed `packer init` say when Packer `packer` cannot install `plugin`
/// ([`InitVerdict::NotOnGitHub`]): the problem, then the hint.
pub fn cannot_install(
    packer: Version,
    plugin: &RequiredPlugin,
    since: Version,
) -> (String, String) {
    (
        format!(
            "Packer {packer} cannot install {} `{}`: every release it admits is from {since} on, \
             published on releases.hashicorp.com and not on GitHub, where Packer before \
             {RELEASES_SITE_FROM} looks (from Packer's 1.14.0 changelog; not run here)",
            plugin.source, plugin.version
        ),
        format!(
            "install Packer {RELEASES_SITE_FROM} or newer (docs/setup.md); or install the plugin \
             ahead into PACKER_PLUGIN_PATH with `packer plugins install --path BINARY {}` \
             (Packer 1.10+), BINARY from a copy of its release or your internal mirror",
            plugin.source
        ),
    )
}

/// Where `packer init` on Packer `packer` gets HashiCorp's official plugins.
pub fn official_plugins_from(packer: Version) -> &'static str {
    if packer >= RELEASES_SITE_FROM {
        "releases.hashicorp.com (Packer 1.14+; documented, not run here)"
    } else {
        "their GitHub releases (github.com/hashicorp/qemu, github.com/hashicorp/amazon)"
    }
}

/// After a failed `packer init`: for each plugin of `required_plugins_hcl` that Packer `packer`
/// cannot install at all, why and what to do ([`cannot_install`]).
pub fn init_hints(packer: Version, required_plugins_hcl: &str) -> Vec<String> {
    required_plugins(required_plugins_hcl)
        .iter()
        .filter_map(|p| match init_verdict(packer, p) {
            InitVerdict::NotOnGitHub { since } => {
                let (problem, hint) = cannot_install(packer, p, since);
                Some(format!("{problem}; {hint}"))
            }
            _ => None,
        })
        .collect()
}

/// The version in an installed plugin's file name (`packer-plugin-qemu_v1.1.4_x5.0_linux_amd64`).
pub fn installed_plugin_version(path: &str) -> Option<Version> {
    let name = path.rsplit('/').next()?;
    let v = name.split('_').find_map(|p| p.strip_prefix('v'))?;
    Version::parse(&format!("v{v}"))
}

/// The plugins a `required_plugins` block names: each `NAME = { version = "…", source = "…" }`.
/// A best-effort reading for messages (Packer itself reads the file): what it cannot read is
/// left out.
pub fn required_plugins(hcl: &str) -> Vec<RequiredPlugin> {
    let text: String = hcl
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .split("//")
                .next()
                .unwrap_or("")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let Some(start) = text.find("required_plugins") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = &text[start + "required_plugins".len()..];
    rest = rest.trim_start().strip_prefix('{').unwrap_or("");
    while let Some((name, after)) = rest.split_once('=') {
        let name = name.trim();
        let Some(body_start) = after.trim_start().strip_prefix('{') else {
            break;
        };
        let Some((body, next)) = body_start.split_once('}') else {
            break;
        };
        if let (Some(version), Some(source)) =
            (attribute(body, "version"), attribute(body, "source"))
        {
            out.push(RequiredPlugin {
                name: name.to_string(),
                source,
                version,
            });
        }
        rest = next;
    }
    out
}

/// `key = "value"` in an HCL object body.
fn attribute(body: &str, key: &str) -> Option<String> {
    let mut rest = body;
    while let Some(i) = rest.find(key) {
        let after = rest[i + key.len()..].trim_start();
        let boundary = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_');
        if let (true, Some(v)) = (boundary, after.strip_prefix('=')) {
            let v = v.trim_start().strip_prefix('"')?;
            return Some(v[..v.find('"')?].to_string());
        }
        rest = &rest[i + key.len()..];
    }
    None
}

/// A version constraint as Packer reads it (hashicorp/go-version): comma-separated terms
/// `OP VERSION`, OP one of `=` `!=` `>` `<` `>=` `<=` `~>` (none means `=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint(Vec<Term>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    op: &'static str,
    version: Version,
    /// How many parts the version was written with (`~> 1.1` has 2): `~>` holds all but the
    /// last of them.
    parts: usize,
}

impl Constraint {
    pub fn parse(text: &str) -> Option<Constraint> {
        let mut terms = Vec::new();
        for raw in text.split(',') {
            let raw = raw.trim();
            let op = ["~>", ">=", "<=", "!=", ">", "<", "="]
                .into_iter()
                .find(|op| raw.starts_with(op))
                .unwrap_or("=");
            let v = raw.strip_prefix(op).unwrap_or(raw).trim();
            let v = v.strip_prefix('v').unwrap_or(v);
            let v = v.split(['-', '+']).next().unwrap_or("");
            let parts: Vec<u32> = v
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            if parts.is_empty() || parts.len() > 3 {
                return None;
            }
            let at = |i: usize| parts.get(i).copied().unwrap_or(0);
            terms.push(Term {
                op,
                version: Version(at(0), at(1), at(2)),
                parts: parts.len(),
            });
        }
        Some(Constraint(terms))
    }

    pub fn allows(&self, v: Version) -> bool {
        self.0.iter().all(|t| t.allows(v))
    }

    /// Whether some version below `limit` satisfies the constraint (versions up to x.40.40
    /// are tried, far past any plugin release).
    pub fn admits_below(&self, limit: Version) -> bool {
        (0..=limit.0).any(|major| {
            (0..=40).any(|minor| {
                (0..=40).any(|patch| {
                    let v = Version(major, minor, patch);
                    v < limit && self.allows(v)
                })
            })
        })
    }
}

impl Term {
    fn allows(&self, v: Version) -> bool {
        let c = self.version;
        match self.op {
            "=" => v == c,
            "!=" => v != c,
            ">" => v > c,
            "<" => v < c,
            ">=" => v >= c,
            "<=" => v <= c,
            // go-version's pessimistic operator: at least c, with all but its last written
            // part held
            _ => {
                let (vp, cp) = ([v.0, v.1, v.2], [c.0, c.1, c.2]);
                v >= c && vp[..self.parts - 1] == cp[..self.parts - 1]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_packer_version_output() {
        for (text, want) in [
            ("Packer v1.6.6\n", Some(Version(1, 6, 6))),
            (
                "Packer v1.14.3\n\nYour version of Packer is out of date!",
                Some(Version(1, 14, 3)),
            ),
            ("Packer v1.11.2-dev\n", Some(Version(1, 11, 2))),
            ("Packer v2.0\n", Some(Version(2, 0, 0))),
            ("Packer\n", None),
            ("", None),
        ] {
            assert_eq!(Version::parse(text), want, "{text:?}");
        }
    }

    /// (version, needs `required_plugins` + `packer init`, provisioner output as `say`)
    #[test]
    fn decisions_by_version() {
        for (v, init, say) in [
            (Version(0, 0, 0), false, false), // unreadable `packer version`: as 1.6.6
            (Version(1, 6, 6), false, false),
            (Version(1, 7, 0), true, false),
            (Version(1, 10, 0), true, false),
            (Version(1, 12, 9), true, false),
            (Version(1, 13, 0), true, true),
            (Version(1, 14, 3), true, true),
            (Version(2, 0, 0), true, true),
        ] {
            assert_eq!(v.needs_init(), init, "needs_init for {v}");
            assert_eq!(v.provisioner_output_as_say(), say, "output shape for {v}");
        }
    }

    #[test]
    fn describes_what_it_decided() {
        let old = Version(1, 6, 6).describe();
        assert!(old.contains("1.6.6") && old.contains("built-in") && old.contains("ui,message"));
        let new = Version(1, 14, 3).describe();
        assert!(
            new.contains("packer init") && new.contains("ui,say"),
            "{new}"
        );
    }

    fn plugin(source: &str, version: &str) -> RequiredPlugin {
        RequiredPlugin {
            name: source.rsplit('/').next().unwrap().into(),
            source: source.into(),
            version: version.into(),
        }
    }

    #[test]
    fn constraints_read_as_packer_reads_them() {
        let v = |s: &str| Version::parse(&format!("v{s}")).unwrap();
        for (constraint, yes, no) in [
            (
                "~> 1.1.4",
                &["1.1.4", "1.1.9"][..],
                &["1.1.3", "1.2.0", "2.1.4"][..],
            ),
            ("~> 1.8", &["1.8.0", "1.9.2"], &["1.7.9", "2.0.0"]),
            ("~> 1", &["1.0.0", "3.0.0"], &["0.9.9"]),
            (
                ">= 1.0.0, < 1.1.4",
                &["1.0.0", "1.1.3"],
                &["1.1.4", "0.9.0"],
            ),
            ("1.1.3", &["1.1.3"], &["1.1.4"]),
            ("= v1.3.9", &["1.3.9"], &["1.3.10"]),
            (
                "!= 1.1.4, > 1.1.0",
                &["1.1.1", "1.1.5"],
                &["1.1.4", "1.1.0"],
            ),
            ("<= 1.3.9", &["1.3.9", "0.1.0"], &["1.3.10"]),
        ] {
            let c = Constraint::parse(constraint).unwrap();
            for y in yes {
                assert!(c.allows(v(y)), "{constraint} admits {y}");
            }
            for n in no {
                assert!(!c.allows(v(n)), "{constraint} refuses {n}");
            }
        }
        for bad in ["", "~>", "1.x", ">= one", "1.2.3.4"] {
            assert_eq!(Constraint::parse(bad), None, "{bad:?}");
        }
    }

    /// (Packer, plugin source, constraint, verdict): only Packer 1.7 to 1.13 with a pin that
    /// admits nothing below the first release missing from GitHub cannot install.
    #[test]
    fn whether_packer_init_can_install_a_pin_by_packer_version() {
        const QEMU: &str = "github.com/hashicorp/qemu";
        const AMAZON: &str = "github.com/hashicorp/amazon";
        let no_github = |since| InitVerdict::NotOnGitHub { since };
        let table = [
            (Version(1, 6, 6), QEMU, "~> 1.1.4", InitVerdict::BuiltIn),
            (
                Version(1, 7, 0),
                QEMU,
                "~> 1.1.4",
                no_github(Version(1, 1, 4)),
            ),
            (
                Version(1, 10, 0),
                QEMU,
                "~> 1.1.4",
                no_github(Version(1, 1, 4)),
            ),
            (
                Version(1, 13, 9),
                AMAZON,
                "~> 1.8.2",
                no_github(Version(1, 3, 10)),
            ),
            (
                Version(1, 13, 9),
                AMAZON,
                ">= 1.3.10",
                no_github(Version(1, 3, 10)),
            ),
            (
                Version(1, 13, 9),
                AMAZON,
                "~> 1.3",
                InitVerdict::Installable,
            ),
            (Version(1, 13, 9), AMAZON, "1.3.9", InitVerdict::Installable),
            (
                Version(1, 13, 9),
                QEMU,
                ">= 1.0.0",
                InitVerdict::Installable,
            ),
            (
                Version(1, 13, 9),
                QEMU,
                "~> 1.1.3",
                InitVerdict::Installable,
            ),
            (Version(1, 13, 9), QEMU, "~> 1.1.x", InitVerdict::Unread),
            (
                Version(1, 13, 9),
                "github.com/someone/other",
                "~> 9.9.9",
                InitVerdict::Installable,
            ),
            (
                Version(1, 14, 0),
                QEMU,
                "~> 1.1.4",
                InitVerdict::Installable,
            ),
            (
                Version(1, 16, 0),
                AMAZON,
                "~> 1.8.2",
                InitVerdict::Installable,
            ),
            (Version(2, 0, 0), QEMU, "~> 1.1.4", InitVerdict::Installable),
        ];
        for (packer, source, constraint, want) in table {
            assert_eq!(
                init_verdict(packer, &plugin(source, constraint)),
                want,
                "Packer {packer}, {source} {constraint}"
            );
        }
    }

    #[test]
    fn the_embedded_pins_need_packer_1_14_to_be_installed() {
        let hcl = crate::config::EMBEDDED_TEMPLATES
            .iter()
            .find(|(p, _)| *p == crate::config::PLUGINS_TEMPLATE)
            .unwrap()
            .1;
        let pins = required_plugins(hcl);
        let names: Vec<&str> = pins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["qemu", "amazon"]);
        for p in &pins {
            assert!(matches!(
                init_verdict(Version(1, 13, 9), p),
                InitVerdict::NotOnGitHub { .. }
            ));
            assert_eq!(
                init_verdict(RELEASES_SITE_FROM, p),
                InitVerdict::Installable
            );
        }
    }

    #[test]
    fn required_plugins_are_read_in_either_layout() {
        let one_line = "packer {\n  required_plugins {\n    qemu = { version = \"~> 1.1.4\", source = \"github.com/hashicorp/qemu\" } # pinned\n  }\n}\n";
        assert_eq!(
            required_plugins(one_line),
            [plugin("github.com/hashicorp/qemu", "~> 1.1.4")]
        );
        assert_eq!(required_plugins("packer {}\n"), []);
        let (problem, hint) = cannot_install(
            Version(1, 10, 0),
            &plugin("github.com/hashicorp/qemu", "~> 1.1.4"),
            Version(1, 1, 4),
        );
        assert!(
            problem.contains("Packer 1.10.0 cannot install github.com/hashicorp/qemu `~> 1.1.4`"),
            "{problem}"
        );
        assert!(problem.contains("not run here"), "{problem}");
        assert!(
            hint.contains("Packer 1.14.0 or newer") && hint.contains("--path"),
            "{hint}"
        );
    }

    #[test]
    fn an_installed_plugin_says_its_version_in_its_file_name() {
        assert_eq!(
            installed_plugin_version("/root/.config/packer/plugins/github.com/hashicorp/qemu/packer-plugin-qemu_v1.1.4_x5.0_linux_amd64"),
            Some(Version(1, 1, 4))
        );
        assert_eq!(installed_plugin_version("packer-plugin-qemu"), None);
    }
}
