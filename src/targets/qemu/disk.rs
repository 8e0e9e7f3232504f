//! Layer disks in the store: a base layer's disk is a whole qcow2; a stack layer's is a qcow2
//! overlay that keeps only the clusters that differ from its parent's disk, and names that
//! disk relative to itself (`../<parent hash>/disk.qcow2`), so a store moved or copied as a
//! whole keeps working. A chain with a missing link is a clear error, found by reading the
//! qcow2 headers, before anything boots.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::process::Cmd;
use crate::store::Store;

/// The file name of every layer's disk in its store directory.
pub const DISK: &str = "disk.qcow2";

/// How many backing files a chain may have before it is refused (a loop, or a broken store).
const MAX_CHAIN: usize = 16;

/// The backing file a qcow2 header names, as written (relative names are relative to the
/// disk's directory), or `None` for a disk with no backing file.
pub fn backing_file(path: &Path) -> std::io::Result<Option<String>> {
    let mut head = [0u8; 20];
    // reading rule exception (src/fsread.rs): a store disk's header, read to a fixed size
    let mut f = std::fs::File::open(path)?;
    f.read_exact(&mut head)?;
    backing_from_header(&head, |offset, len| {
        use std::io::Seek;
        let mut name = vec![0u8; len];
        f.seek(std::io::SeekFrom::Start(offset))?;
        f.read_exact(&mut name)?;
        Ok(name)
    })
}

/// Parses the fixed header (magic, version, backing file offset and size); `read` fetches the
/// name's bytes.
fn backing_from_header(
    head: &[u8; 20],
    read: impl FnOnce(u64, usize) -> std::io::Result<Vec<u8>>,
) -> std::io::Result<Option<String>> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    if head[..4] != *b"QFI\xfb" {
        return Err(invalid("not a qcow2 disk (no QFI magic)"));
    }
    let offset = u64::from_be_bytes(head[8..16].try_into().expect("8 bytes"));
    let len = u32::from_be_bytes(head[16..20].try_into().expect("4 bytes")) as usize;
    if offset == 0 || len == 0 {
        return Ok(None);
    }
    if len > 1023 {
        return Err(invalid("a backing file name longer than qcow2 allows"));
    }
    let name = read(offset, len)?;
    String::from_utf8(name)
        .map(Some)
        .map_err(|_| invalid("a backing file name that is not UTF-8"))
}

/// Every disk a layer's disk reads through, top first, each checked to exist. A missing link
/// is an error naming the layer, the file it needs, and what to do.
pub fn chain(store: &Store, hash: &str) -> Result<Vec<PathBuf>> {
    let top = store.layer_dir(hash).join(DISK);
    let mut out = vec![top.clone()];
    let mut current = top;
    while let Some(name) =
        backing_file(&current).map_err(|e| Error::io("read the qcow2 header of", &current, e))?
    {
        let dir = current.parent().unwrap_or(Path::new("."));
        let next = dir.join(&name);
        if !next.is_file() {
            return Err(Error::user(format!(
                "layer {}'s disk reads through {}, which is missing",
                &hash[..12.min(hash.len())],
                next.display()
            ))
            .with_hint(
                "a stack layer's disk is an overlay of its parent layer's disk in the same store: \
                 keep the store whole (prune never removes a kept layer's parent), or rebake the \
                 stack with `parbake bake STACK --force`",
            ));
        }
        if out.len() >= MAX_CHAIN || out.contains(&next) {
            return Err(Error::user(format!(
                "layer {}'s disk has a backing chain that loops or is longer than {MAX_CHAIN}",
                &hash[..12.min(hash.len())]
            ))
            .with_hint("remove the layer from the store and rebake it"));
        }
        out.push(next.clone());
        current = next;
    }
    Ok(out)
}

/// The disk a build starts from when it builds on a store layer: a new, empty qcow2 overlay at
/// `at` whose backing file is the layer's disk by its absolute path. Packer 1.6.6 copies a
/// qcow2 source as it is, without flattening it: a layer disk that is itself an overlay would
/// name its parent relative to a directory the copy is not in. Packer copies this small file
/// instead, and the VM reads the whole chain through it.
pub fn build_overlay(store: &Store, hash: &str, at: &Path) -> Result<()> {
    chain(store, hash)?;
    let disk = store.layer_dir(hash).join(DISK);
    let disk = std::fs::canonicalize(&disk).map_err(|e| Error::io("resolve", &disk, e))?;
    Cmd::new("start the build on the layer's disk", "qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&disk)
        .arg(at)
        .run_checked()?;
    Ok(())
}

/// Makes `out` a qcow2 overlay of the parent layer's disk holding what `full` (a whole disk,
/// as Packer writes it) has that the parent does not, then removes `full`. qemu-img's safe
/// rebase compares the two disks cluster by cluster; the result reads exactly as `full` did.
pub fn overlay_on_parent(store: &Store, full: &Path, out: &Path, parent_hash: &str) -> Result<()> {
    let parent = store.layer_dir(parent_hash).join(DISK);
    chain(store, parent_hash)?;
    Cmd::new("start the layer's overlay on its whole disk", "qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(full)
        .arg(out)
        .run_checked()?;
    Cmd::new(
        "keep only what differs from the parent layer's disk",
        "qemu-img",
    )
    .args(["rebase", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
    .arg(&parent)
    .arg(out)
    .run_checked()?;
    Cmd::new(
        "name the parent layer's disk relative to the layer",
        "qemu-img",
    )
    .args(["rebase", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b"])
    .arg(relative_parent(parent_hash))
    .arg(out)
    .run_checked()?;
    std::fs::remove_file(full).map_err(|e| Error::io("remove the whole disk", full, e))
}

/// The parent's disk as a stack layer's disk names it, from the layer's own directory.
pub fn relative_parent(parent_hash: &str) -> String {
    format!("../{parent_hash}/{DISK}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(offset: u64, len: u32) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[8..16].copy_from_slice(&offset.to_be_bytes());
        h[16..20].copy_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn the_header_names_the_backing_file_or_none() {
        let name = b"../abc/disk.qcow2".to_vec();
        let got = backing_from_header(&header(512, name.len() as u32), |o, l| {
            assert_eq!((o, l), (512, name.len()));
            Ok(name.clone())
        })
        .unwrap();
        assert_eq!(got.as_deref(), Some("../abc/disk.qcow2"));
        let none = backing_from_header(&header(0, 0), |_, _| unreachable!()).unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn a_file_that_is_not_qcow2_or_names_nonsense_is_refused() {
        let mut h = header(512, 4);
        h[0] = b'X';
        assert!(backing_from_header(&h, |_, _| unreachable!()).is_err());
        assert!(backing_from_header(&header(512, 5000), |_, _| unreachable!()).is_err());
        assert!(backing_from_header(&header(512, 2), |_, _| Ok(vec![0xff, 0xfe])).is_err());
    }
}
