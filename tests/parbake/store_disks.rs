//! Layer disks in the local store, with the real qemu-img: a stack layer's disk is an overlay
//! of its parent's that keeps only what differs, reads exactly like the whole disk Packer
//! wrote, names its parent relative to itself (a moved store keeps working), and a missing
//! parent is a clear error before anything boots.

use std::path::Path;
use std::process::Command;

use parbake::store::Store;
use parbake::targets::qemu::disk;

fn qemu_img(args: &[&str], cwd: &Path) {
    let out = Command::new("qemu-img")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("qemu-img (make setup installs qemu-utils)");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `len` bytes of `pattern` at `offset` into a disk, as a guest would.
fn write(disk: &Path, pattern: u8, offset: &str, len: &str) {
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c"])
        .arg(format!("write -P {pattern} {offset} {len}"))
        .arg(disk)
        .output()
        .expect("qemu-io");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_stack_layer_keeps_only_its_changes_over_its_parent_and_survives_a_moved_store() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = Store { root: root.clone() };
    let (parent, child) = ("a".repeat(64), "b".repeat(64));
    let pdir = store.layer_dir(&parent);
    std::fs::create_dir_all(&pdir).unwrap();
    // the parent: 24 MiB of "installed" data
    qemu_img(&["create", "-q", "-f", "qcow2", "disk.qcow2", "64M"], &pdir);
    write(&pdir.join("disk.qcow2"), 0x11, "0", "24M");
    // what Packer writes for the stack layer: a whole copy with 2 MiB changed and 3 MiB added
    let build = tmp.path().join("build");
    std::fs::create_dir_all(&build).unwrap();
    let full = build.join("full.qcow2");
    std::fs::copy(pdir.join("disk.qcow2"), &full).unwrap();
    write(&full, 0x22, "4M", "2M");
    write(&full, 0x33, "40M", "3M");
    let reference = build.join("reference.qcow2");
    std::fs::copy(&full, &reference).unwrap();

    let cdir = store.layer_dir(&child);
    std::fs::create_dir_all(&cdir).unwrap();
    let out = cdir.join("disk.qcow2");
    disk::overlay_on_parent(&store, &full, &out, &parent).unwrap();
    assert!(!full.exists(), "the whole disk is removed");
    assert_eq!(
        disk::backing_file(&out).unwrap().as_deref(),
        Some(format!("../{parent}/disk.qcow2").as_str())
    );
    // it reads exactly like the whole disk, and holds about the 5 MiB that differ
    let same = Command::new("qemu-img")
        .args(["compare", "-f", "qcow2", "-F", "qcow2"])
        .arg(&out)
        .arg(&reference)
        .output()
        .unwrap();
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let (small, whole) = (allocated(&out), allocated(&reference));
    assert!(small < 8 << 20, "the overlay holds {small} bytes");
    assert!(small * 3 < whole, "{small} of {whole}");
    assert_eq!(
        disk::chain(&store, &child).unwrap(),
        [out.clone(), cdir.join(format!("../{parent}/disk.qcow2"))]
    );

    // the store moved as a whole: the relative name still finds the parent
    let moved = tmp.path().join("moved");
    std::fs::rename(&root, &moved).unwrap();
    let store = Store { root: moved };
    assert_eq!(disk::chain(&store, &child).unwrap().len(), 2);
    let same = Command::new("qemu-img")
        .args(["compare", "-f", "qcow2", "-F", "qcow2"])
        .arg(store.layer_dir(&child).join("disk.qcow2"))
        .arg(&reference)
        .output()
        .unwrap();
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );

    // the parent gone: a clear error naming the layer and the missing disk, with a hint
    std::fs::remove_dir_all(store.layer_dir(&parent)).unwrap();
    let err = disk::chain(&store, &child).unwrap_err();
    let text = parbake::error::Report(&err).to_string();
    assert!(
        text.contains("layer bbbbbbbbbbbb's disk reads through")
            && text.contains(&format!("{parent}/disk.qcow2, which is missing"))
            && text.contains("parbake bake STACK --force"),
        "{text}"
    );
}
