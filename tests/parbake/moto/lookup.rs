//! Source AMI resolution and layer lookup by tag, through the EC2 client.

use std::time::Instant;

use parbake::config::SourceAmi;
use parbake::targets::aws::scope::Scope;

use super::support::*;

#[test]
fn source_ami_resolution_picks_the_newest_with_a_stable_tie_break() {
    rt().block_on(async {
        let ec2 = ec2("us-east-1").await;
        // three AMIs share the newest CreationDate; an impostor owner has a newer one
        let ami = ec2
            .resolve_source_ami(&debian("debian-12-amd64-*", "x86_64"))
            .await
            .unwrap();
        assert_eq!(ami.id, "ami-0de0b12a7f3c000b2");
        assert_eq!(ami.owner, "136693071363");
        let arm = ec2
            .resolve_source_ami(&debian("debian-12-*", "arm64"))
            .await
            .unwrap();
        assert_eq!(arm.id, "ami-0de0b12a7f3c00a01");
        let err = ec2
            .resolve_source_ami(&debian("debian-13-*", "x86_64"))
            .await
            .unwrap_err();
        let text = parbake::error::Report(&err).to_string();
        assert!(
            text.contains("no available AMI in us-east-1 matches name `debian-13-*`"),
            "{text}"
        );
        assert!(text.contains("hint:"));
    });
}

#[test]
fn layer_lookup_finds_only_amis_tagged_with_that_layer_hash() {
    rt().block_on(async {
        let ec2 = ec2("us-east-1").await;
        let c = ec2.sdk();
        let run = c
            .run_instances()
            .image_id("ami-0de0b12a7f3c000b2")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .unwrap();
        let instance = run.instances()[0].instance_id().unwrap().to_string();
        let hash = format!(
            "{:064x}",
            std::process::id() as u128 * 7919 + Instant::now().elapsed().as_nanos()
        );
        let img = c
            .create_image()
            .instance_id(&instance)
            .name(format!("parbake-test-{}", &hash[..12]))
            .send()
            .await
            .unwrap();
        let ami = img.image_id().unwrap().to_string();
        c.create_tags()
            .resources(&ami)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("parbake:layer-hash")
                    .value(&hash)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let found = ec2.layer_amis(&Scope::Unscoped, &hash).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, ami);
        assert_eq!(found[0].tags["parbake:layer-hash"], hash);
        assert!(ec2
            .layer_amis(&Scope::Unscoped, &"0".repeat(64))
            .await
            .unwrap()
            .is_empty());
        c.terminate_instances()
            .instance_ids(&instance)
            .send()
            .await
            .unwrap();
    });
}

fn debian(name: &str, arch: &str) -> SourceAmi {
    SourceAmi {
        owners: vec!["136693071363".into()],
        name: name.into(),
        architecture: arch.into(),
    }
}
