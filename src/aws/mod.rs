//! The AWS target. Pure pieces first: choosing the source AMI and reading the manifest an AMI
//! carries in its tags. The EC2 calls (aws-sdk-ec2) build on these.

pub mod ami;
pub mod bake;
pub mod consistency;
pub mod ec2;
pub mod gc;
pub mod images;
pub mod launch;
pub mod prune;
