//! The identity of a source image: an input of the base layer's hash, so its format is written
//! here only. A change of format changes every base layer's hash.

use crate::config::{QemuSource, SourceAmi};

/// A local disk: as declared (`parbake:debian-12`, a path or URL) with its checksum.
pub fn qemu(q: &QemuSource) -> String {
    format!("qemu:{}@{}", q.disk_image, q.checksum)
}

/// A resolved source AMI in its region.
pub fn aws(region: &str, ami_id: &str) -> String {
    format!("aws:{region}:{ami_id}")
}

/// The declared source AMI, standing in for its identity before it is resolved.
pub fn aws_declared(a: &SourceAmi) -> String {
    format!(
        "aws:owners={};name={};arch={}",
        a.owners.join(","),
        a.name,
        a.architecture
    )
}
