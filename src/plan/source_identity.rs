//! The identity of a source image: an input of the base layer's hash, so its format is written
//! here only. A change of format changes every base layer's hash.

use crate::config::{AwsSource, QemuSource, SourceAmi};

/// A local disk: as declared (`parbake:debian-12`, a path or URL) with its checksum.
pub fn qemu(q: &QemuSource) -> String {
    format!("qemu:{}@{}", q.disk_image, q.checksum)
}

/// A resolved source AMI in its region, and the architecture its chain bakes (so two
/// architectures' chains never share a hash, whatever their AMIs).
pub fn aws(region: &str, ami_id: &str, arch: &str) -> String {
    format!("aws:{region}:{ami_id}:{arch}")
}

/// [`aws`] for a source (one architecture's chain) whose source AMI resolved to `ami_id`.
pub fn aws_resolved(src: &AwsSource, ami_id: &str) -> String {
    aws(&src.region, ami_id, &src.source_ami.architecture)
}

/// The identity an AMI baked before the architecture was part of it recorded.
pub fn aws_without_arch(region: &str, ami_id: &str) -> String {
    format!("aws:{region}:{ami_id}")
}

/// The source AMI id of a resolved aws identity, in either form; None for a declared one.
pub fn aws_ami(identity: &str) -> Option<&str> {
    let ami = identity.strip_prefix("aws:")?.split(':').nth(1)?;
    ami.starts_with("ami-").then_some(ami)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aws_identity_names_region_ami_and_architecture() {
        assert_eq!(
            aws("eu-west-1", "ami-0abc", "arm64"),
            "aws:eu-west-1:ami-0abc:arm64"
        );
    }

    #[test]
    fn the_ami_is_read_back_from_a_resolved_identity_only() {
        assert_eq!(
            aws_ami(&aws("eu-west-1", "ami-0abc", "arm64")),
            Some("ami-0abc")
        );
        assert_eq!(
            aws_ami(&aws_without_arch("eu-west-1", "ami-0abc")),
            Some("ami-0abc")
        );
        assert_eq!(aws_ami("aws:owners=self;name=x;arch=x86_64"), None);
        assert_eq!(aws_ami("qemu:parbake:debian-12@none"), None);
    }

    #[test]
    fn a_declared_ami_lists_owners_name_and_arch() {
        let a = SourceAmi {
            owners: vec!["136693071363".into(), "self".into()],
            name: "debian-12-amd64-*".into(),
            architecture: "x86_64".into(),
        };
        assert_eq!(
            aws_declared(&a),
            "aws:owners=136693071363,self;name=debian-12-amd64-*;arch=x86_64"
        );
    }
}
