//! The contract between parbake and its images: the paths every image has, the runtime it
//! carries under /opt/parbake (the launch runner, its one entry point and its package
//! `assets/parbake_runner/`, and the Ansible callback that reports per-role events) and the
//! systemd units that start the runner at boot, all embedded in the binary (their digest is part
//! of every layer hash, so a runtime change rebakes), and the formats both sides read, each
//! defined once here: the launch spec (`spec`), the image manifest (`manifest`), the boot
//! status (`status`) and the task events (`events`). The runner keeps its own copies of the format numbers and reads the documents
//! with its own code; golden documents in tests/fixtures/contract/ are read by both sides'
//! tests (tests/parbake/contract.rs), so neither can drift.

pub mod events;
pub mod manifest;
pub mod spec;
pub mod status;

use sha2::{Digest, Sha256};

/// `/opt/parbake/bin/parbake-roles`: the runner's one entry point (runs launch roles, writes
/// status.json), which imports the runner's package from `lib/` beside its directory.
pub const RUNNER: &str = include_str!("assets/parbake-roles.py");
/// `/opt/parbake/lib/callback_plugins/parbake_events.py`: Ansible's glue around the package's
/// `events` module.
pub const CALLBACK: &str = include_str!("assets/parbake_events.py");
/// The runner's package: its directory's name, under `/opt/parbake/lib/` on the image and
/// `payload/lib/` in a bake's payload.
pub const RUNNER_PACKAGE_NAME: &str = "parbake_runner";
/// The runner's package, every file of it by name (a flat package: one module per concern).
/// tests/parbake/contract.rs checks that it lists every file of `assets/parbake_runner/`.
pub const RUNNER_PACKAGE: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("assets/parbake_runner/__init__.py"),
    ),
    (
        "__main__.py",
        include_str!("assets/parbake_runner/__main__.py"),
    ),
    ("base.py", include_str!("assets/parbake_runner/base.py")),
    ("checks.py", include_str!("assets/parbake_runner/checks.py")),
    ("cli.py", include_str!("assets/parbake_runner/cli.py")),
    (
        "deadline.py",
        include_str!("assets/parbake_runner/deadline.py"),
    ),
    ("ec2.py", include_str!("assets/parbake_runner/ec2.py")),
    ("events.py", include_str!("assets/parbake_runner/events.py")),
    ("launch.py", include_str!("assets/parbake_runner/launch.py")),
    (
        "playbook.py",
        include_str!("assets/parbake_runner/playbook.py"),
    ),
    (
        "reading.py",
        include_str!("assets/parbake_runner/reading.py"),
    ),
    ("resume.py", include_str!("assets/parbake_runner/resume.py")),
    ("roles.py", include_str!("assets/parbake_runner/roles.py")),
    ("secret.py", include_str!("assets/parbake_runner/secret.py")),
    ("shims.py", include_str!("assets/parbake_runner/shims.py")),
    ("spec.py", include_str!("assets/parbake_runner/spec.py")),
    ("status.py", include_str!("assets/parbake_runner/status.py")),
];
/// `parbake-launch.service`: runs the runner on every boot while a launch spec exists.
pub const LAUNCH_UNIT: &str = include_str!("assets/parbake-launch.service");
/// `parbake-ready.target`: reached only when the launch succeeded.
pub const READY_TARGET: &str = include_str!("assets/parbake-ready.target");
/// The payload install every bake and every refresh runs on the builder: roles, runner,
/// callback and units at their places (its digest is in every layer hash, with the runtime's).
pub const INSTALL: &str = include_str!("assets/parbake-install.sh");
/// The clean-up every bake and refresh ends with: each instance boots as a new machine.
pub const CLEAN: &str = include_str!("assets/parbake-clean.sh");
/// Where the base bake installs the units, and `multi-user.target.wants/` under it enables them.
pub const UNIT_DIR: &str = "/etc/systemd/system";
pub const LAUNCH_UNIT_NAME: &str = "parbake-launch.service";
pub const READY_TARGET_NAME: &str = "parbake-ready.target";

/// Where roles and the runtime live on every image.
pub const IMAGE_HOME: &str = "/opt/parbake";
pub const MANIFEST_PATH: &str = "/opt/parbake/manifest.json";
pub const STATUS_PATH: &str = "/var/lib/parbake/status.json";
pub const LAUNCH_SPEC_PATH: &str = "/var/lib/parbake/launch.json";
/// Vendored collections (`ANSIBLE_COLLECTIONS_PATH` at bake and launch).
pub const COLLECTIONS_DIR: &str = "/opt/parbake/collections";
/// The venv of a pinned ansible-core (`ansible.core`); the runner prefers its ansible-playbook.
pub const ANSIBLE_VENV: &str = "/opt/parbake/ansible";

/// The runtime's digest: the runner, the callback, the units, the install and clean-up
/// scripts, then every file of the runner's package by its path and its text.
pub fn digest() -> String {
    digest_of(
        &[RUNNER, CALLBACK, LAUNCH_UNIT, READY_TARGET, INSTALL, CLEAN],
        RUNNER_PACKAGE,
    )
}

/// sha256 over each file's text, then each package file's name and text, each with its length.
fn digest_of(files: &[&str], package: &[(&str, &str)]) -> String {
    let mut h = Sha256::new();
    let package = package.iter().flat_map(|(name, text)| [*name, *text]);
    for part in files.iter().copied().chain(package) {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Writes the runner as `dir/parbake-roles` (executable) with its package beside it
/// (`dir/parbake_runner/`), as the runner finds it: what runs the runner off the image
/// (`parbake validate`'s shims, the tests) uses this. Returns the runner's path.
pub fn write_runner(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let package = dir.join(RUNNER_PACKAGE_NAME);
    std::fs::create_dir_all(&package)?;
    for (name, text) in RUNNER_PACKAGE {
        std::fs::write(package.join(name), text)?;
    }
    let runner = dir.join("parbake-roles");
    std::fs::write(&runner, RUNNER)?;
    std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o755))?;
    Ok(runner)
}

/// Writes the runtime's Python files into an image root's `/opt/parbake` (`home`) where the
/// payload install puts them: the runner in `bin/`, the callback in `lib/callback_plugins/`,
/// the package in `lib/parbake_runner/`.
pub fn install_runtime(home: &std::path::Path) -> std::io::Result<()> {
    let lib = home.join("lib");
    std::fs::create_dir_all(lib.join("callback_plugins"))?;
    std::fs::write(lib.join("callback_plugins/parbake_events.py"), CALLBACK)?;
    let package = lib.join(RUNNER_PACKAGE_NAME);
    std::fs::create_dir_all(&package)?;
    for (name, text) in RUNNER_PACKAGE {
        std::fs::write(package.join(name), text)?;
    }
    std::fs::create_dir_all(home.join("bin"))?;
    std::fs::write(home.join("bin/parbake-roles"), RUNNER)
}

#[cfg(test)]
mod tests {
    use super::digest_of;

    #[test]
    fn the_runtime_digest_covers_each_package_file_by_name_and_text() {
        let files = ["runner", "callback"];
        let one = digest_of(&files, &[("a.py", "1"), ("b.py", "2")]);
        assert_eq!(one, digest_of(&files, &[("a.py", "1"), ("b.py", "2")]));
        for (other, what) in [
            (vec![("a.py", "1"), ("c.py", "2")], "a module renamed"),
            (vec![("a.py", "1"), ("b.py", "3")], "a module edited"),
            (vec![("a.py", "1")], "a module removed"),
            (
                vec![("a.py", "12"), ("b.py", "")],
                "text moved between modules",
            ),
        ] {
            assert_ne!(one, digest_of(&files, &other), "{what}");
        }
        assert_ne!(
            one,
            digest_of(&["runner", "callback2"], &[("a.py", "1"), ("b.py", "2")])
        );
    }
}
