//! `parbake vendor`: the real `ansible-galaxy role install` and `ansible-galaxy collection
//! install`, each with `-r requirements.yml`, into a staging directory beside `vendor/`; then
//! the lock is computed from the staged trees and both are swapped in. A failure at any step
//! leaves the previous `vendor/` and `requirements.lock.json` as they were.

use std::path::{Path, PathBuf};

use super::hash::{HashCache, CACHE_FILE};
use super::lock::{installed_roles, Lock};
use super::requirements::{Requirements, SourceKind, REQUIREMENTS_FILE};
use super::VendorError;
use super::{stale, vendor_dir, Vendored, VENDOR_DIR};
use crate::interrupt::{checkpoint, point};
use crate::process::Cmd;

type Result<T, E = VendorError> = std::result::Result<T, E>;

/// Staging and set-aside directories in the project root, followed by `PID-`.
const STAGING_PREFIX: &str = ".parbake-vendor-";
const OLD_PREFIX: &str = ".parbake-vendor-old-";

/// What `parbake vendor` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub lock: Lock,
    /// The lock and the trees already matched `requirements.yml`: nothing was installed.
    pub up_to_date: bool,
}

/// Vendors `<root>/requirements.yml` with the `ansible-galaxy` at `galaxy`, unless the vendor
/// directory is up to date (`force` installs anyway). Each output line of `ansible-galaxy`
/// goes to `on_line`.
pub fn vendor(
    root: &Path,
    galaxy: &Path,
    force: bool,
    mut on_line: impl FnMut(&str),
) -> Result<Outcome> {
    let Some(reqs) = Requirements::load(root)? else {
        return Err(VendorError::user(format!("there is no {REQUIREMENTS_FILE} in {}", root.display()))
            .with_hint("list the roles and collections to vendor in requirements.yml (or roles/requirements.yml, or collections/requirements.yml), in Ansible's format (`roles:` and `collections:`)"));
    };
    if !force {
        if let Ok(Some(v)) = Vendored::verify(root) {
            return Ok(Outcome {
                lock: v.lock,
                up_to_date: true,
            });
        }
    }
    check_vendor_dir(root)?;
    sweep_orphans(root);
    let staging = crate::write::private_temp(&format!("{STAGING_PREFIX}{}-", std::process::id()))
        .tempdir_in(root)
        .map_err(|e| VendorError::io("create a staging directory in", root, e))?;
    let home = crate::write::private_temp("parbake-galaxy-home-")
        .tempdir()
        .map_err(|e| VendorError::io("create a temp dir", std::env::temp_dir(), e))?;
    super::sources::check_sources(root, &reqs, home.path())?;
    let install = GalaxyInstall {
        root,
        reqs: &reqs,
        galaxy,
        home: home.path(),
        staging: staging.path(),
    };
    let run =
        |what: &str, dir: &str, on_line: &mut dyn FnMut(&str)| install.run(what, dir, on_line);
    if !reqs.roles.is_empty() {
        run("role", "roles", &mut on_line)?;
    }
    if !reqs.collections.is_empty() {
        run("collection", "collections", &mut on_line)?;
    }
    normalise_install_info(staging.path())?;
    check_installed_trees(staging.path())?;
    let mut cache = HashCache::open(&staging.path().join(CACHE_FILE));
    let lock = Lock::build(root, staging.path(), &reqs, &mut cache)?;
    cache.save();
    check_installed(&reqs, &lock)?;
    checkpoint(point::COMMIT)?;
    swap_in(root, staging.keep(), &lock)?;
    Ok(Outcome {
        lock,
        up_to_date: false,
    })
}

/// What every `ansible-galaxy ... install` of one vendor run shares: it runs in the project
/// root (relative paths in the requirements file are read from there), with its own
/// ANSIBLE_HOME (no Galaxy token or cache of the user's is read or written).
struct GalaxyInstall<'a> {
    root: &'a Path,
    /// The requirements, whose file (for each kind) is under the root.
    reqs: &'a Requirements,
    galaxy: &'a Path,
    home: &'a Path,
    staging: &'a Path,
}

impl GalaxyInstall<'_> {
    /// `ansible-galaxy {role|collection} install -r <file> -p <staging>/<dir>`.
    fn run(&self, what: &str, dir: &str, on_line: &mut dyn FnMut(&str)) -> Result<()> {
        let file = self.reqs.path_of(what);
        let cmd = Cmd::new(format!("install the {what}s of {file}"), self.galaxy)
            .args([what, "install", "-r"])
            .arg(self.root.join(file))
            .arg("-p")
            .arg(self.staging.join(dir))
            .env("ANSIBLE_HOME", self.home)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_COLLECTIONS_PATH", self.staging.join("collections"))
            .cwd(self.root);
        let out = cmd.run_streaming(|l| on_line(l))?;
        // `ansible-galaxy` reports some failures with status 0 and an ERROR! line
        if !out.success() || out.lines.iter().any(|l| l.starts_with("ERROR!")) {
            let failed = cmd.failed(&out, None);
            if out.lines.iter().any(|l| unreachable_line(l)) {
                let tail = failed.output_tail().unwrap_or_default();
                let message = format!("{failed}\n{}", tail.trim_end());
                return Err(VendorError::user(message).with_hint(NO_NETWORK_HINT));
            }
            return Err(failed.into());
        }
        Ok(())
    }
}

/// What to do when `ansible-galaxy` could not reach a server.
const NO_NETWORK_HINT: &str = "ansible-galaxy could not reach its server: Galaxy, URL and remote git sources need the network when vendoring (and only then). Vendor where there is a network and commit vendor/ and requirements.lock.json (every other command reads only those), or use local sources (a tarball or collection directory inside the project, `git+file://`), or name a Galaxy mirror you can reach in ansible.cfg's [galaxy] server_list";

/// A line of `ansible-galaxy`'s output saying a server could not be reached.
fn unreachable_line(line: &str) -> bool {
    [
        "Name or service not known",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "No route to host",
        "Connection refused",
        "timed out",
    ]
    .iter()
    .any(|p| line.contains(p))
}

/// `ansible-galaxy` writes the install time into each role's `meta/.galaxy_install_info`;
/// only the version is kept, so that vendoring the same thing twice gives the same tree.
fn normalise_install_info(staging: &Path) -> Result<()> {
    for (_, dir) in installed_roles(staging)? {
        let path = dir.join("meta/.galaxy_install_info");
        // galaxy's own output in parbake's private staging dir, under the one reading rule
        let Ok(text) = crate::fsread::read_text(staging, &path, 1 << 20) else {
            continue;
        };
        let Ok(serde_yaml::Value::Mapping(mut map)) = serde_yaml::from_str(&text) else {
            continue;
        };
        map.remove("install_date");
        let text = serde_yaml::to_string(&map).map_err(|e| VendorError::Internal(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| VendorError::io("write", &path, e))?;
    }
    Ok(())
}

/// Every installed role and collection keeps its symlinks inside its own tree and holds no
/// special file, whatever route (tarball, git, directory) brought it in.
fn check_installed_trees(staging: &Path) -> Result<()> {
    let roles = installed_roles(staging)?
        .into_iter()
        .map(|(n, d)| (format!("vendored role {n:?}"), d));
    let collections = super::lock::installed_collections(staging)?
        .into_iter()
        .map(|(n, d)| (format!("vendored collection {n:?}"), d));
    for (what, dir) in roles.chain(collections) {
        super::sources::tree_escapes(&dir).map_err(|e| super::sources::escape_error(&what, &e))?;
    }
    Ok(())
}

/// Every role entry was installed under its name, and every installed name is valid (a
/// dependency `ansible-galaxy` pulled in is named by its source, not by requirements.yml).
fn check_installed(reqs: &Requirements, lock: &Lock) -> Result<()> {
    for r in &reqs.roles {
        let name = r.name.as_deref().unwrap_or(&r.src);
        if !lock.roles.iter().any(|l| l.name == name) {
            return Err(VendorError::user(format!(
                "`ansible-galaxy role install` did not install {}",
                r.describe()
            ))
            .with_hint("its output is above; check the source and version"));
        }
    }
    for r in reqs
        .collections
        .iter()
        .filter(|r| r.source == SourceKind::Galaxy)
    {
        if !lock
            .collections
            .iter()
            .any(|c| Some(&c.name) == r.name.as_ref())
        {
            return Err(VendorError::user(format!(
                "`ansible-galaxy collection install` did not install {}",
                r.describe()
            )));
        }
    }
    let bad_role = lock
        .roles
        .iter()
        .map(|r| &r.name)
        .find(|n| !super::requirements::valid_role_name(n));
    let bad_collection = lock
        .collections
        .iter()
        .map(|c| &c.name)
        .find(|n| !super::requirements::valid_collection_name(n));
    if let Some(name) = bad_role.or(bad_collection) {
        return Err(VendorError::user(format!(
            "`ansible-galaxy` installed {name:?}, which is not a valid role or collection name"
        ))
        .with_hint("give the entry that brings it in a valid `name:`"));
    }
    Ok(())
}

/// `vendor/` is parbake's: replaced as a whole, so it may hold only what `parbake vendor`
/// puts there, and must be a real directory.
fn check_vendor_dir(root: &Path) -> Result<()> {
    let dir = vendor_dir(root);
    let meta = match std::fs::symlink_metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(VendorError::io("read", dir, e)),
    };
    if !meta.is_dir() {
        return Err(VendorError::user(format!(
            "{VENDOR_DIR}/ is not a directory (a symlink or a file)"
        ))
        .with_hint("parbake vendor replaces vendor/ as a whole; move it away first"));
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| VendorError::io("read", &dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| VendorError::io("read", &dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !["roles", "collections", CACHE_FILE].contains(&name.as_str()) {
            return Err(stale(format!(
                "{VENDOR_DIR}/{name} was not put there by parbake vendor, which replaces {VENDOR_DIR}/ as a whole"
            ))
            .with_hint("move it out of vendor/ (your own roles go under roles/)"));
        }
    }
    Ok(())
}

/// Moves the staged tree to `vendor/` and writes the lock; on any failure puts the previous
/// `vendor/` back (the lock is written last, so an old lock never describes new trees).
fn swap_in(root: &Path, staged: PathBuf, lock: &Lock) -> Result<()> {
    let vendor = vendor_dir(root);
    let old = root.join(format!("{OLD_PREFIX}{}", std::process::id()));
    let had_old = std::fs::symlink_metadata(&vendor).is_ok();
    {
        // staged privately (0700); vendor/ itself is an ordinary project directory
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755));
    }
    let undo = |new_in_place: bool| {
        if new_in_place {
            let _ = std::fs::remove_dir_all(&vendor);
        } else {
            let _ = std::fs::remove_dir_all(&staged);
        }
        if had_old {
            let _ = std::fs::rename(&old, &vendor);
        }
    };
    if had_old {
        std::fs::rename(&vendor, &old).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staged);
            VendorError::io("move aside", &vendor, e)
        })?;
    }
    if let Err(e) = std::fs::rename(&staged, &vendor) {
        undo(false);
        return Err(VendorError::io("move into place", &vendor, e));
    }
    if let Err(e) = lock.write(root) {
        undo(true);
        return Err(e);
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Staging and set-aside directories a killed `parbake vendor` left, by pid no longer alive.
fn sweep_orphans(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(OLD_PREFIX)
            .or_else(|| name.strip_prefix(STAGING_PREFIX))
        else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        // only a pid that no longer exists (ESRCH) is dead: EPERM is another user's live run
        if !pid.is_some_and(|p| p > 0 && !crate::write::process_exists(p)) {
            continue;
        }
        // killed between setting the old vendor/ aside and moving the new one in: restore it
        let vendor = vendor_dir(root);
        if name.starts_with(OLD_PREFIX) && std::fs::symlink_metadata(&vendor).is_err() {
            let _ = std::fs::rename(entry.path(), &vendor);
        } else {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
