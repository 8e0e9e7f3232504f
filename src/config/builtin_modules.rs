//! ansible.builtin modules that exist only in some of the ansible-core versions parbake
//! supports (2.14 to 2.21), read from each release's `ansible/modules/` and the module's
//! `version_added`: a role calling one the image's ansible-core lacks fails at its first
//! task, so plan refuses it first. Every other builtin module is in all of them.

use super::ansible_version::Version;

/// (module, first minor that has it, first minor without it).
const LIMITED: &[(&str, u64, Option<u64>)] = &[
    // added after 2.14 (`version_added` in each module's documentation)
    ("deb822_repository", 15, None),
    ("dnf5", 15, None),
    ("mount_facts", 18, None),
    // removed: yum (an alias of dnf since 2.17)
    ("yum", 0, Some(17)),
];

/// The modules and actions of ansible.builtin in ansible-core 2.14 (its `ansible/modules/`
/// and `plugins/action/`), the oldest parbake supports; with [`LIMITED`], every name a task
/// may call bare without a collection.
const BUILTIN: &[&str] = &[
    "add_host",
    "apt",
    "apt_key",
    "apt_repository",
    "assemble",
    "assert",
    "async_status",
    "blockinfile",
    "command",
    "copy",
    "cron",
    "debconf",
    "debug",
    "dnf",
    "dpkg_selections",
    "expect",
    "fail",
    "fetch",
    "file",
    "find",
    "gather_facts",
    "get_url",
    "getent",
    "git",
    "group",
    "group_by",
    "hostname",
    "import_playbook",
    "import_role",
    "import_tasks",
    "include",
    "include_role",
    "include_tasks",
    "include_vars",
    "iptables",
    "known_hosts",
    "lineinfile",
    "meta",
    "package",
    "package_facts",
    "pause",
    "ping",
    "pip",
    "raw",
    "reboot",
    "replace",
    "rpm_key",
    "script",
    "service",
    "service_facts",
    "set_fact",
    "set_stats",
    "setup",
    "shell",
    "slurp",
    "stat",
    "subversion",
    "systemd",
    "systemd_service",
    "sysvinit",
    "tempfile",
    "template",
    "unarchive",
    "uri",
    "user",
    "validate_argument_spec",
    "wait_for",
    "wait_for_connection",
    "yum",
    "yum_repository",
];

/// Whether a bare module name is one of ansible.builtin's (in some supported version): any
/// other bare name is a collection's, found through the `collections:` keyword or
/// ansible-core's routing.
pub fn is_builtin(short: &str) -> bool {
    BUILTIN.contains(&short) || LIMITED.iter().any(|(m, _, _)| *m == short)
}

/// The builtin modules only some supported ansible-core versions have.
pub fn limited() -> impl Iterator<Item = &'static str> {
    LIMITED.iter().map(|(m, _, _)| *m)
}

/// Why the builtin `module` does not run on ansible-core `core`, or None when it does (or is
/// not a builtin module parbake knows to be limited).
pub fn missing_in(module: &str, core: &Version) -> Option<String> {
    let short = module
        .strip_prefix("ansible.builtin.")
        .or_else(|| module.strip_prefix("ansible.legacy."))
        .unwrap_or(module);
    let &(_, since, until) = LIMITED.iter().find(|(m, _, _)| *m == short)?;
    let minor = core.minor_of(2)?;
    if minor < since {
        return Some(format!(
            "ansible.builtin.{short} is in ansible-core 2.{since} and later, not {core}"
        ));
    }
    match until {
        Some(gone) if minor >= gone => Some(format!(
            "ansible.builtin.{short} was removed in ansible-core 2.{gone}; the image runs {core}"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn a_module_newer_than_the_image_core_is_named_with_both_versions() {
        let why = missing_in("ansible.builtin.deb822_repository", &v("2.14.18")).unwrap();
        assert!(why.contains("2.15 and later, not 2.14.18"), "{why}");
        assert_eq!(missing_in("deb822_repository", &v("2.15.0")), None);
        assert!(missing_in("mount_facts", &v("2.17.7")).is_some());
        assert_eq!(missing_in("mount_facts", &v("2.19.11")), None);
    }

    #[test]
    fn a_removed_module_is_named_from_its_release_on() {
        assert_eq!(missing_in("yum", &v("2.14.18")), None);
        let why = missing_in("ansible.legacy.yum", &v("2.17.7")).unwrap();
        assert!(why.contains("removed in ansible-core 2.17"), "{why}");
    }

    #[test]
    fn every_other_module_runs_everywhere() {
        for m in [
            "apt",
            "ansible.builtin.copy",
            "community.general.ufw",
            "template",
        ] {
            assert_eq!(missing_in(m, &v("2.14.0")), None, "{m}");
            assert_eq!(missing_in(m, &v("2.21.5")), None, "{m}");
        }
    }
}
