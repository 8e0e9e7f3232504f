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
}
