//! The AMI tags parbake writes (render) read back into the same manifest (aws::ami), for a
//! base layer and a stack layer.

use parbake::plan::{self, Target};
use parbake::render::packer::ami_tags;
use parbake::targets::aws::ami::manifest_from_tags;

use crate::util::{request, Fixture};

#[test]
fn ami_tags_round_trip_and_fit_ec2_limits() {
    let f = Fixture::example();
    let project = f.load();
    let p = plan::plan(&project, &request("web", &["nginx"], Target::Aws)).unwrap();
    for layer in &p.layers {
        let tags = ami_tags(&p, layer, "ami-0123456789abcdef0");
        assert!(tags.len() <= 50, "EC2 allows 50 tags");
        for (k, v) in &tags {
            assert!(k.len() <= 128 && v.len() <= 256, "{k}={v}");
        }
        let m = manifest_from_tags("ami-x", &tags).unwrap();
        assert_eq!(m.layer_hash, layer.hash);
        assert_eq!(m.baked, layer.baked);
        assert_eq!(m.installed.len(), p.installed.len());
        for (role, hash) in &p.installed {
            assert!(hash
                .trim_start_matches("sha256:")
                .starts_with(&m.installed[role]));
        }
        assert_eq!(m.stack.is_some(), layer.index == 2);
    }
}
