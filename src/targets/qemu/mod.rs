//! The local VM target: the base disk image, the accelerator (KVM where it works, else TCG),
//! and running a VM from a layer disk with a NoCloud seed.

pub mod bake;
pub mod boot;
pub mod container;
pub mod disk;
pub mod doctor;
pub mod launch;
pub mod ops;
pub mod publish;
pub mod store_images;
pub mod text;
pub mod verify;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::config::{Image, Project};
use crate::error::{Error, Result};
use crate::process::Cmd;

/// Kernel, initrd and disk of a qemu source, and its identity for the layer hash.
#[derive(Debug, Clone)]
pub struct BaseDisk {
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub identity: String,
}

pub const PARBAKE_PREFIX: &str = "parbake:";

/// parbake's base-disk recipe, embedded so that a bake needs nothing from the project; the
/// script keys its cache by the hash of its own recipe section, wherever it runs from.
const BASE_IMAGE_RECIPE: &str = include_str!("../../../scripts/base-image.sh");

/// The embedded recipe in a private temporary file (removed when dropped), for bash to run.
fn base_image_script() -> Result<tempfile::TempPath> {
    use std::io::Write;
    let mut f = tempfile::Builder::new()
        .prefix("parbake-base-image-")
        .suffix(".sh")
        .tempfile()
        .map_err(|e| Error::io("create a temporary file in", std::env::temp_dir(), e))?;
    f.write_all(BASE_IMAGE_RECIPE.as_bytes())
        .map_err(|e| Error::io("write", f.path().to_path_buf(), e))?;
    Ok(f.into_temp_path())
}

/// The identity of the base disk without building anything (None if it is not built yet).
pub fn peek_identity(image: &Image) -> Option<String> {
    let q = image.def.sources.qemu.as_ref()?;
    if let Some(name) = q.disk_image.strip_prefix(PARBAKE_PREFIX) {
        let cached = cached_base(name)?;
        cached
            .built
            .then(|| identity_of_dir(&q.disk_image, &cached.dir))
    } else {
        Some(crate::plan::source_identity::qemu(q))
    }
}

/// Where the embedded recipe keeps a base disk parbake builds, and whether it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedBase {
    /// `<cache>/base/<recipe hash>`: the recipe's own cache key for this base.
    pub dir: PathBuf,
    /// Whether `disk.qcow2` is there.
    pub built: bool,
}

/// The base disk `parbake:<base>` names, as the embedded recipe's `--print-path` says without
/// building anything (the one place that asks it: the plan's source identity and `doctor`).
/// None for a base parbake does not build, or when the recipe cannot run.
pub fn cached_base(base: &str) -> Option<CachedBase> {
    known_base(base).ok()?;
    let script = base_image_script().ok()?;
    let out = Cmd::new(format!("find the cached {base} base disk"), "bash")
        .arg(&script)
        .args(["--base", base, "--print-path"])
        .run_streaming(|_| {})
        .ok()?;
    // it prints the directory, then exits 0 when the disk is there and 1 when it is not
    let last = out.lines.last()?.trim();
    if last.is_empty() || last.starts_with("base-image:") {
        return None; // the recipe's own error, not a directory
    }
    let dir = PathBuf::from(last);
    match out.code {
        Some(0) => Some(CachedBase { dir, built: true }),
        Some(1) => Some(CachedBase { dir, built: false }),
        _ => None,
    }
}

/// A base disk parbake builds (config load refuses other `parbake:` labels; this guards the
/// script's argument all the same).
fn known_base(name: &str) -> Result<()> {
    if crate::config::file_checks::PARBAKE_BASES.contains(&name) {
        return Ok(());
    }
    Err(
        Error::user(format!("unknown parbake base image `parbake:{name}`")).with_hint(format!(
            "parbake builds {}; or give a path to a qcow2 with vmlinuz and initrd.img beside it",
            crate::config::file_checks::parbake_base_labels()
        )),
    )
}

fn identity_of_dir(spec: &str, dir: &Path) -> String {
    format!(
        "qemu:{spec}@recipe:{}",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

/// Resolves (building if needed) the base disk of an image's qemu source.
pub fn base_disk(
    project: &Project,
    image: &Image,
    mut on_line: impl FnMut(&str),
) -> Result<BaseDisk> {
    let q = image.def.sources.qemu.as_ref().ok_or_else(|| {
        Error::user(format!("image `{}` has no qemu source", image.name))
            .with_hint(format!("add `sources.qemu` to {}", image.file.display))
    })?;
    if let Some(name) = q.disk_image.strip_prefix(PARBAKE_PREFIX) {
        known_base(name)?;
        let script = base_image_script()?;
        let cmd = Cmd::new(format!("build the {name} base disk image"), "bash")
            .arg(&script)
            .args(["--base", name]);
        let out = cmd.run_streaming(&mut on_line)?;
        if !out.success() {
            return Err(cmd.failed(&out, None).into());
        }
        let dir = PathBuf::from(out.lines.last().map(|s| s.trim()).unwrap_or_default());
        return from_dir(&dir, identity_of_dir(&q.disk_image, &dir));
    }
    if q.disk_image.starts_with("http://") || q.disk_image.starts_with("https://") {
        return Err(Error::user("downloading a qemu disk image is not supported yet")
            .with_hint("download it and its kernel/initrd next to it, and give the local path with its checksum"));
    }
    let disk = project.root.join(&q.disk_image);
    let dir = disk.parent().unwrap_or(Path::new(".")).to_path_buf();
    let base = from_dir(&dir, crate::plan::source_identity::qemu(q))?;
    Ok(BaseDisk { disk, ..base })
}

fn from_dir(dir: &Path, identity: String) -> Result<BaseDisk> {
    let b = BaseDisk {
        disk: dir.join("disk.qcow2"),
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        identity,
    };
    for p in [&b.disk, &b.kernel, &b.initrd] {
        if !p.is_file() {
            return Err(Error::user(format!("the base image has no {}", p.display()))
                .with_hint("the local target boots the kernel directly: keep vmlinuz and initrd.img beside the disk (make base-image does)"));
        }
    }
    Ok(b)
}

/// `kvm` when KVM can boot the base kernel, else `tcg`. `PARBAKE_ACCEL=kvm|tcg` forces one.
/// The probe boots the kernel with no root until it panics (it reached init) or 20 s pass;
/// the answer is cached per host boot.
pub fn accelerator(store_root: &Path, kernel: &Path, initrd: &Path) -> (String, String) {
    if let Ok(a) = std::env::var("PARBAKE_ACCEL") {
        if a == "kvm" || a == "tcg" {
            return (a.clone(), format!("{a} (forced by PARBAKE_ACCEL)"));
        }
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return (
            "tcg".into(),
            "tcg (software emulation: /dev/kvm is not usable)".into(),
        );
    }
    // reading rule exception (src/fsread.rs): the kernel's /proc file
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let cache = store_root.join("accel-probe.txt");
    if let Ok(text) = crate::fsread::read_text(store_root, &cache, 4096) {
        if let Some((id, accel)) = text.trim().split_once(' ') {
            if id == boot_id.trim() {
                return (
                    accel.to_string(),
                    format!("{accel} (probed earlier this boot)"),
                );
            }
        }
    }
    let ok = probe_kvm(kernel, initrd);
    let accel = if ok { "kvm" } else { "tcg" };
    let _ = std::fs::create_dir_all(store_root);
    let _ = std::fs::write(&cache, format!("{} {accel}\n", boot_id.trim()));
    let why = if ok {
        "kvm (the probe kernel reached init)".to_string()
    } else {
        "tcg (software emulation: KVM could not boot the probe kernel within 20 s)".to_string()
    };
    (accel.into(), why)
}

fn probe_kvm(kernel: &Path, initrd: &Path) -> bool {
    // KVM works when the kernel boots to its initramfs and powers off cleanly.
    let Ok(dir) = crate::write::private_temp("parbake-kvm-probe-").tempdir() else {
        return false;
    };
    let serial = dir.path().join("serial.log");
    let out = Cmd::new("probe KVM", "timeout")
        .args([
            "20",
            "qemu-system-x86_64",
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-smp",
            "1",
            "-m",
            "256",
        ])
        .args(["-nodefaults", "-display", "none", "-no-reboot", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1 rdinit=/bin/poweroff",
            "-serial",
        ])
        .arg(format!("file:{}", serial.display()))
        .run_streaming(|_| {});
    // reading rule exception (src/fsread.rs): qemu's serial log in parbake's private run dir
    let powered_off = std::fs::read_to_string(&serial)
        .unwrap_or_default()
        .contains("reboot: Power down");
    matches!(out, Ok(o) if o.success()) && powered_off
}

/// A free TCP port on 127.0.0.1 (released before qemu binds it).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("find a free port", "127.0.0.1", e))?;
    Ok(l.local_addr()
        .map_err(|e| Error::io("find a free port", "127.0.0.1", e))?
        .port())
}

/// Reads a growing file from `offset`, returning new complete lines.
pub fn read_new_lines(path: &Path, offset: &mut u64, partial: &mut String) -> Vec<String> {
    let mut out = Vec::new();
    // reading rule exception (src/fsread.rs): a log qemu or the runner writes in parbake's
    // private run dir, read as it grows
    let Ok(mut f) = std::fs::File::open(path) else {
        return out;
    };
    use std::io::Seek;
    if f.seek(std::io::SeekFrom::Start(*offset)).is_err() {
        return out;
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return out;
    }
    *offset += buf.len() as u64;
    partial.push_str(&String::from_utf8_lossy(&buf));
    while let Some(i) = partial.find('\n') {
        let line: String = partial.drain(..=i).collect();
        out.push(line.trim_end_matches(['\n', '\r']).to_string());
    }
    out
}
