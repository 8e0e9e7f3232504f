//! `parbake doctor`'s findings: for each thing a command will need, what was found (a path, a
//! version) or what is missing and the command that installs it. The checks every target
//! shares are here; each target adds its own (`Backend::doctor`).

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use crate::config::{Project, EMBEDDED_TEMPLATES, PLUGINS_TEMPLATE};
use crate::packer_version::{self, InitVerdict, RequiredPlugin, Version};
use crate::process::Cmd;
use crate::tools::Tools;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Missing or unusable, and a command of the target needs it: the target cannot run.
    Missing,
    /// Missing or unusable, but only some commands need it (named in `needed_by`).
    Warn,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    /// What was found: a path and version, a directory, a size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// What is wrong, when the check did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The commands that need it.
    pub needed_by: String,
}

impl Finding {
    pub fn ok(check: &str, found: impl Into<String>, needed_by: &str) -> Finding {
        Finding {
            check: check.into(),
            status: Status::Ok,
            found: Some(found.into()),
            problem: None,
            fix: None,
            needed_by: needed_by.into(),
        }
    }

    /// A check that did not pass: `required` says whether the target cannot run without it.
    pub fn failed(
        check: &str,
        required: bool,
        problem: impl Into<String>,
        fix: impl Into<String>,
        needed_by: &str,
    ) -> Finding {
        Finding {
            check: check.into(),
            status: if required {
                Status::Missing
            } else {
                Status::Warn
            },
            found: None,
            problem: Some(problem.into()),
            fix: Some(fix.into()),
            needed_by: needed_by.into(),
        }
    }
}

/// What `doctor` prints.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub target: crate::plan::Target,
    /// Whether the target can run: no finding is `missing`.
    pub ok: bool,
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    pub fn new(target: crate::plan::Target, findings: Vec<Finding>) -> DoctorReport {
        DoctorReport {
            target,
            ok: findings.iter().all(|f| f.status != Status::Missing),
            findings,
        }
    }

    /// The first finding the target cannot run without.
    pub fn first_missing(&self) -> Option<&Finding> {
        first_missing(&self.findings)
    }
}

/// A program and the first line of its version output, or why it cannot be run.
pub fn program(check: &str, path: &Path, version_arg: &str) -> Result<String, String> {
    let out = Cmd::new(format!("read the {check} version"), path)
        .arg(version_arg)
        .run_checked()
        .map_err(|e| match e.is_missing_program() {
            true => format!("{} is not installed (not on PATH)", path.display()),
            false => format!("{} does not run: {e}", path.display()),
        })?;
    let version = out
        .lines
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string();
    Ok(format!("{} ({version})", path.display()))
}

/// A program check: found with its version, or missing with the install command.
pub fn program_finding(
    check: &str,
    path: &Path,
    version_arg: &str,
    required: bool,
    install: &str,
    needed_by: &str,
) -> Finding {
    match program(check, path, version_arg) {
        Ok(found) => Finding::ok(check, found, needed_by),
        Err(problem) => Finding::failed(check, required, problem, install, needed_by),
    }
}

/// A program check that does not run the program (what `bake` and `launch` check first): found
/// on `PATH` or at its path, or missing in the same words as [`program`].
pub fn present_finding(
    check: &str,
    path: &Path,
    required: bool,
    install: &str,
    needed_by: &str,
) -> Finding {
    match resolve(path) {
        Some(p) => Finding::ok(check, p.display().to_string(), needed_by),
        None => Finding::failed(
            check,
            required,
            format!("{} is not installed (not on PATH)", path.display()),
            install,
            needed_by,
        ),
    }
}

/// `path` itself when it names a directory, else the first executable of that name on `PATH`.
fn resolve(path: &Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runs = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if path.components().count() > 1 {
        return runs(path).then(|| path.to_path_buf());
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(path))
        .find(|p| runs(p))
}

/// Packer's builder plugin `plugin` (`qemu`, `amazon`): built into 1.6; from 1.7 installed
/// already at a version the project's `required_plugins` admits, or what the first bake's
/// `packer init` will do, and whether this Packer can do it at all
/// ([`crate::packer_version::init_verdict`]).
pub fn packer_plugin_finding(tools: &Tools, plugin: &str, project: Option<&Project>) -> Finding {
    let check = format!("packer {plugin} plugin");
    let Ok(version) = tools.packer_version() else {
        return Finding::failed(
            &check,
            false,
            "Packer's version cannot be read",
            "install Packer",
            "bake",
        );
    };
    if !version.needs_init() {
        return Finding::ok(&check, format!("built into Packer {version}"), "bake");
    }
    let required = pinned_plugin(plugin, project);
    if let Some(path) = installed_plugin(tools, plugin, required.as_ref()) {
        return Finding::ok(&check, path, "bake");
    }
    let Some(required) = required else {
        return not_installed_yet(&check, version, "its source");
    };
    match packer_version::init_verdict(version, &required) {
        InitVerdict::NotOnGitHub { since } => {
            let (problem, fix) = packer_version::cannot_install(version, &required, since);
            Finding::failed(&check, true, problem, fix, "bake")
        }
        _ => not_installed_yet(
            &check,
            version,
            if version >= packer_version::RELEASES_SITE_FROM {
                "releases.hashicorp.com"
            } else {
                "github.com"
            },
        ),
    }
}

/// The plugin as the project's `required_plugins` pins it (parbake's embedded file without a
/// project, or when the project does not override it).
fn pinned_plugin(plugin: &str, project: Option<&Project>) -> Option<RequiredPlugin> {
    let embedded = EMBEDDED_TEMPLATES
        .iter()
        .find(|(p, _)| *p == PLUGINS_TEMPLATE)
        .map_or("", |(_, t)| *t);
    let hcl = project.map_or(embedded, |p| p.templates.required_plugins.as_str());
    packer_version::required_plugins(hcl)
        .into_iter()
        .find(|r| r.name == plugin)
}

/// The path of an installed `packer-plugin-<plugin>` (`packer plugins installed`) whose version
/// the pin admits (any, when the pin cannot be read).
fn installed_plugin(tools: &Tools, plugin: &str, pin: Option<&RequiredPlugin>) -> Option<String> {
    let installed = Cmd::new("list the Packer plugins", &tools.packer)
        .args(["plugins", "installed"])
        .run_checked()
        .map(|o| o.text())
        .unwrap_or_default();
    let constraint = pin.and_then(|p| packer_version::Constraint::parse(&p.version));
    installed
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(&format!("packer-plugin-{plugin}")))
        .find(
            |l| match (&constraint, packer_version::installed_plugin_version(l)) {
                (Some(c), Some(v)) => c.allows(v),
                _ => true,
            },
        )
        .map(str::to_string)
}

fn not_installed_yet(check: &str, version: Version, from: &str) -> Finding {
    Finding::failed(
        check,
        false,
        format!("not installed yet: Packer {version} installs it with `packer init` at the first bake"),
        format!("let the first bake install it (needs {from}), or see docs/setup.md for an offline install"),
        "bake",
    )
}

/// The first finding in `findings` that the target cannot run without, as the error `doctor`
/// exits with.
pub fn first_missing(findings: &[Finding]) -> Option<&Finding> {
    findings.iter().find(|f| f.status == Status::Missing)
}

/// Free space on the filesystem that holds `dir` (or its nearest existing parent).
pub fn free_disk(dir: &Path, needed_gib: u64, needed_by: &str) -> Finding {
    let Some(at) = dir.ancestors().find(|d| d.exists()) else {
        return Finding::failed(
            "free disk",
            false,
            format!("no part of {} exists", dir.display()),
            "set PARBAKE_STORE to a directory on a disk with room",
            needed_by,
        );
    };
    match free_bytes(at) {
        Some(b) if b >= needed_gib << 30 => Finding::ok(
            "free disk",
            format!("{} free at {}", gib(b), at.display()),
            needed_by,
        ),
        Some(b) => Finding::failed(
            "free disk",
            true,
            format!(
                "{} free at {}; a bake needs about {needed_gib} GiB",
                gib(b),
                at.display()
            ),
            "free space there, or set PARBAKE_STORE to a directory on a larger disk",
            needed_by,
        ),
        None => Finding::failed(
            "free disk",
            false,
            format!("cannot read the free space of {}", at.display()),
            "check the path",
            needed_by,
        ),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Bytes available to an unprivileged writer on the filesystem of `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a valid NUL-terminated path and a statvfs buffer the call fills on success
    let rc = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the buffer
    let s = unsafe { s.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between libc targets
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

/// One line per finding, then the verdict.
pub fn text(r: &DoctorReport) -> String {
    let mut s = String::new();
    for f in &r.findings {
        let mark = match f.status {
            Status::Ok => "ok     ",
            Status::Missing => "MISSING",
            Status::Warn => "warn   ",
        };
        let what = f.found.as_deref().or(f.problem.as_deref()).unwrap_or("");
        let _ = writeln!(s, "{mark} {:<20} {what}", f.check);
        if let Some(fix) = &f.fix {
            let _ = writeln!(
                s,
                "        {:<20} fix: {fix} (needed by {})",
                "", f.needed_by
            );
        }
    }
    let _ = writeln!(
        s,
        "{}",
        if r.ok {
            format!("--target {} can run", r.target)
        } else {
            format!(
                "--target {} cannot run: fix what is MISSING above",
                r.target
            )
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Target;

    #[test]
    fn a_missing_program_names_itself_and_its_install() {
        let f = program_finding(
            "packer",
            Path::new("/nonexistent/packer"),
            "version",
            true,
            "apt-get install packer",
            "bake",
        );
        assert_eq!(f.status, Status::Missing);
        assert!(f.problem.unwrap().contains("/nonexistent/packer"));
        assert_eq!(f.fix.as_deref(), Some("apt-get install packer"));
    }

    #[test]
    fn the_report_fails_only_on_what_the_target_needs() {
        let warn = Finding::failed("cloud-init", false, "absent", "install it", "validate");
        let r = DoctorReport::new(Target::Qemu, vec![warn.clone()]);
        assert!(r.ok);
        let missing = Finding::failed("packer", true, "absent", "install it", "bake");
        let r = DoctorReport::new(Target::Qemu, vec![warn, missing]);
        assert!(!r.ok);
        assert_eq!(r.first_missing().unwrap().check, "packer");
        assert!(text(&r).contains("MISSING packer"));
    }

    #[test]
    fn presence_is_checked_without_running_the_program() {
        let f = present_finding("sh", Path::new("sh"), true, "-", "bake");
        assert_eq!(f.status, Status::Ok, "{f:?}");
        let f = present_finding("x", Path::new("/nonexistent/x"), true, "install x", "bake");
        assert_eq!(
            f.problem.as_deref(),
            Some("/nonexistent/x is not installed (not on PATH)")
        );
        assert_eq!(first_missing(&[f]).unwrap().check, "x");
    }

    #[test]
    fn free_disk_reads_the_filesystem_of_the_nearest_existing_parent() {
        let f = free_disk(Path::new("/tmp/no/such/dir"), 0, "bake");
        assert_eq!(f.status, Status::Ok, "{f:?}");
        assert!(f.found.unwrap().contains("free at /tmp"));
        let f = free_disk(Path::new("/tmp"), u64::MAX >> 30, "bake");
        assert_eq!(f.status, Status::Missing);
    }
}
