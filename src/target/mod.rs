//! Targets: where layers are baked and stacks launched. Each target has one folder:
//! `qemu/` (the local VM: Packer's qemu builder, a store of qcow2 disks, NoCloud launches) and
//! `aws/` (Packer's amazon-ebs builder, AMIs tagged as the registry, EC2 launches). What both
//! share lives here and in `crate::bake`.

pub mod aws;
pub mod launch;
pub mod qemu;
