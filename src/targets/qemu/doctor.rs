//! `doctor --target qemu`: Packer (and its qemu plugin), qemu, the accelerator, the base-disk
//! recipe's tools and cache, systemd-nspawn, and room in the store.

use std::collections::BTreeSet;
use std::path::Path;

use super::CachedBase;
use crate::config::file_checks::{base_build_command, PARBAKE_BASES};
use crate::config::Project;
use crate::doctor::{free_disk, present_finding, program_finding, Finding, Status};
use crate::targets::interface::Preflight;
use crate::tools::Tools;

const BAKE: &str = "bake";
const LAUNCH: &str = "bake, launch, verify";
const QEMU_INSTALL: &str = "apt-get install qemu-system-x86 (make setup installs it)";
const QEMU_IMG_INSTALL: &str = "apt-get install qemu-utils";
const NSPAWN_INSTALL: &str = "apt-get install systemd-container (make setup installs it)";
/// What a bake needs free in the store: layer disks, and a base disk when it builds one.
const BAKE_GIB: u64 = 5;

/// What `bake` and `launch` check first, without running anything: the programs a bake or a
/// VM needs (a native boot needs systemd-nspawn, or falls back to a VM), and room to bake.
pub fn preflight(tools: &Tools, store_root: &Path, command: Preflight) -> Vec<Finding> {
    let vm = || {
        vec![
            present_finding(
                "qemu",
                Path::new("qemu-system-x86_64"),
                true,
                QEMU_INSTALL,
                LAUNCH,
            ),
            present_finding(
                "qemu-img",
                Path::new("qemu-img"),
                true,
                QEMU_IMG_INSTALL,
                LAUNCH,
            ),
        ]
    };
    match command {
        Preflight::Bake => {
            let mut out = vec![crate::targets::interface::packer_present(tools)];
            out.extend(vm());
            out.push(free_disk(
                store_root,
                BAKE_GIB,
                "bake (layer disks in the store)",
            ));
            out
        }
        Preflight::Launch { container: true }
            if present_finding("systemd-nspawn", Path::new("systemd-nspawn"), true, "", "")
                .found
                .is_some() =>
        {
            Vec::new()
        }
        Preflight::Launch { .. } => vm(),
    }
}

/// Every check of the local target.
pub fn checks(tools: &Tools, store_root: &Path, project: Option<&Project>) -> Vec<Finding> {
    let mut out = vec![
        crate::targets::interface::packer_finding(tools),
        crate::doctor::packer_plugin_finding(tools, "qemu", project),
        program_finding(
            "qemu",
            Path::new("qemu-system-x86_64"),
            "--version",
            true,
            QEMU_INSTALL,
            LAUNCH,
        ),
        program_finding(
            "qemu-img",
            Path::new("qemu-img"),
            "--version",
            true,
            QEMU_IMG_INSTALL,
            LAUNCH,
        ),
        accelerator(),
    ];
    out.extend(base_disks(project));
    out.push(program_finding(
        "systemd-nspawn",
        Path::new("systemd-nspawn"),
        "--version",
        false,
        NSPAWN_INSTALL,
        "launch --container, verify --container",
    ));
    out.push(free_disk(
        store_root,
        BAKE_GIB,
        "bake (layer disks in the store)",
    ));
    out
}

/// KVM when /dev/kvm can be opened, else software emulation (slow, but it works).
fn accelerator() -> Finding {
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if kvm {
        return Finding::ok(
            "accelerator",
            "kvm (/dev/kvm; a first bake probes it)",
            LAUNCH,
        );
    }
    Finding::failed(
        "accelerator",
        false,
        "tcg: /dev/kvm is not usable, so VMs run in software emulation (bakes take many minutes)",
        "run on a host with KVM, or launch natively with --container",
        LAUNCH,
    )
}

/// Each base disk the project's images are built on (every base parbake builds, without a
/// project): built already (its cache directory), or not yet, with the command that builds it
/// and the tools the build needs.
fn base_disks(project: Option<&Project>) -> Vec<Finding> {
    let bases: BTreeSet<&str> = match project {
        Some(p) => p
            .images
            .values()
            .filter_map(|i| i.def.sources.qemu.as_ref())
            .filter_map(|q| q.disk_image.strip_prefix(super::PARBAKE_PREFIX))
            .collect(),
        None => PARBAKE_BASES.iter().copied().collect(),
    };
    let mut out: Vec<Finding> = bases.iter().map(|b| base_disk(b)).collect();
    if out.iter().any(|f| f.status != Status::Ok) {
        out.push(program_finding(
            "mmdebstrap",
            Path::new("mmdebstrap"),
            "--version",
            true,
            "apt-get install mmdebstrap e2fsprogs (make setup installs them)",
            "bake (the first one builds the base disk)",
        ));
    }
    out
}

/// One base disk, as the embedded recipe finds it in its cache.
fn base_disk(base: &str) -> Finding {
    let check = format!("base disk {base}");
    match super::cached_base(base) {
        Some(CachedBase { dir, built: true }) => {
            Finding::ok(&check, dir.display().to_string(), BAKE)
        }
        Some(CachedBase { dir, built: false }) => Finding::failed(
            &check,
            false,
            format!(
                "not built yet (its cache: {}): the first bake of an image on parbake:{base} \
                 builds it from Debian's packages (minutes, as root)",
                dir.display()
            ),
            format!(
                "nothing, or build it now with `{}` in parbake's repository",
                base_build_command(base)
            ),
            BAKE,
        ),
        None => Finding::failed(
            &check,
            false,
            "its cache cannot be looked up: the embedded base-image recipe did not run",
            "install bash, and check that TMPDIR is writable",
            BAKE,
        ),
    }
}
