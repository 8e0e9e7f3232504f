//! `doctor --target qemu`: Packer (and its qemu plugin), qemu, the accelerator, the base-disk
//! recipe's tools and cache, systemd-nspawn, and room in the store.

use std::path::Path;

use crate::doctor::{free_disk, present_finding, program_finding, Finding};
use crate::process::Cmd;
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
pub fn checks(tools: &Tools, store_root: &Path) -> Vec<Finding> {
    let mut out = vec![
        crate::targets::interface::packer_finding(tools),
        crate::targets::interface::packer_plugin_finding(tools, "qemu"),
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
    out.extend(base_disk());
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

/// The base disk: built already (the cache directory), or the tools that build it.
fn base_disk() -> Vec<Finding> {
    if let Some(dir) = cached_base_disk() {
        return vec![Finding::ok("base disk", dir, BAKE)];
    }
    vec![
        Finding::failed(
            "base disk",
            false,
            "not built yet: the first bake builds it from Debian's packages (minutes)",
            "nothing, or build it now with `make base-image` in parbake's repository",
            BAKE,
        ),
        program_finding(
            "mmdebstrap",
            Path::new("mmdebstrap"),
            "--version",
            true,
            "apt-get install mmdebstrap e2fsprogs (make setup installs them)",
            "bake (the first one builds the base disk)",
        ),
    ]
}

/// The directory of the cached base disk, if it is built.
fn cached_base_disk() -> Option<String> {
    let script = super::base_image_script().ok()?;
    let out = Cmd::new("find the cached base image", "bash")
        .arg(&script)
        .arg("--print-path")
        .run_checked()
        .ok()?;
    Some(out.lines.last()?.trim().to_string())
}
