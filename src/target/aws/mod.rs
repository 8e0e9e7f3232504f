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

/// The async runtime for one command's EC2 calls (parbake's commands are otherwise blocking).
pub fn runtime() -> crate::error::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::error::Error::Internal(format!("tokio runtime: {e}")))
}
