//! The contract between parbake and its images: the paths every image has, the runtime it
//! carries under /opt/parbake (the launch runner and the Ansible callback that reports per-role
//! events) and the systemd units that start the runner at boot, all embedded in the binary (their
//! digest is part of every layer hash, so a runtime change rebakes), and the formats both sides read, each defined once here: the launch spec
//! (`spec`), the image manifest (`manifest`), the boot status (`status`) and the task events
//! (`events`). The runner keeps its own copies of the format numbers and reads the documents
//! with its own code; golden documents in tests/fixtures/contract/ are read by both sides'
//! tests (tests/parbake/contract.rs), so neither can drift.

pub mod events;
pub mod manifest;
pub mod spec;
pub mod status;

use sha2::{Digest, Sha256};

/// `/opt/parbake/bin/parbake-roles`: runs launch roles, writes status.json.
pub const RUNNER: &str = include_str!("assets/parbake-roles.py");
/// `/opt/parbake/lib/callback_plugins/parbake_events.py`.
pub const CALLBACK: &str = include_str!("assets/parbake_events.py");
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

pub fn digest() -> String {
    let mut h = Sha256::new();
    for part in [RUNNER, CALLBACK, LAUNCH_UNIT, READY_TARGET, INSTALL, CLEAN] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}
