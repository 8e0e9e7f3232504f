//! `doctor --target qemu`: Packer (and its qemu plugin), qemu, the accelerator, the base-disk
//! recipe's tools and cache, systemd-nspawn, and room in the store.

use std::path::Path;

use crate::doctor::{free_disk, program_finding, Finding};
use crate::process::Cmd;
use crate::tools::Tools;

const BAKE: &str = "bake";
const LAUNCH: &str = "bake, launch, verify";

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
            "apt-get install qemu-system-x86 (make setup installs it)",
            LAUNCH,
        ),
        program_finding(
            "qemu-img",
            Path::new("qemu-img"),
            "--version",
            true,
            "apt-get install qemu-utils",
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
        "apt-get install systemd-container (make setup installs it)",
        "launch --container, verify --container",
    ));
    out.push(free_disk(store_root, 10, "bake (layer disks in the store)"));
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
