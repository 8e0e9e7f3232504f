//! parbake's one integration test binary. Each test gets its own temp project and, where it
//! tests the CLI, runs the real binary.

mod ansible_refs;
mod aws_settings;
mod bake_script;
mod budget;
mod cli;
mod contract;
mod doctor;
mod e2e;
mod errors;
mod examples;
mod hashing;
mod hostile;
mod hostile_output;
mod hostile_reads;
mod hostile_roles;
mod moto;
mod offline;
mod packer_versions;
mod pipeline;
mod planner;
mod properties;
mod publish;
mod quiet;
mod readme;
mod run_hashes;
mod runner;
mod runner_checks;
mod shims;
mod snapshots;
mod store_disks;
mod tags;
mod unsafe_values;
mod util;
mod validators;
mod vendor;
