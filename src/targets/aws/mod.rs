//! The AWS target. Pure pieces first: choosing the source AMI and reading the manifest an AMI
//! carries in its tags. Every EC2 call (aws-sdk-ec2) is a method of [`ec2::Ec2`]; the commands'
//! steps (bake, launch, images, prune, gc) build on these.

pub mod ami;
pub mod arch_baker;
pub mod bake;
pub mod consistency;
pub mod distribute;
pub mod doctor;
pub mod ec2;
pub mod ec2_share;
pub mod gc;
pub mod images;
pub mod launch;
pub mod lifecycle;
pub mod ops;
pub mod prune;
pub mod publish;
pub mod scope;
pub mod sdk_error;
pub mod ssm;
pub mod text;
pub mod undo;
