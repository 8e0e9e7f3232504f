//! The moto tier: EC2 and SSM calls over HTTP against a real moto server, one per test run
//! (see [`support`]). Each test works in its own region (and, where it bakes, its own base
//! layer), so the tests run in parallel on one server.

mod arch;
mod bake;
mod bake_all;
mod distribute;
mod emit;
mod errors;
mod gc;
mod iam_policy;
mod launch;
mod lifecycle;
mod lookup;
mod nightly;
mod prune;
mod publish;
mod publish_verified;
mod refresh;
mod server;
mod settings;
pub mod support;

pub use support::{ec2, moto, rt};
