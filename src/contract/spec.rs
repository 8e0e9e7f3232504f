//! `/var/lib/parbake/launch.json`, the launch spec: what the runner on the instance reads from
//! the user-data (which roles to run, with which vars and secret references, and what the image
//! must have baked). parbake writes it (`render::userdata`); the runner reads formats 1 and 2.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The format parbake writes. 2: `literal` names the vars passed to Ansible as unsafe
/// (`!unsafe`); secrets always are. `launch_timeout_s`, `facts` and `checks` came later within format 2:
/// they are additive (a runner before them ignores them, this runner defaults them), so the
/// format stayed.
pub const SPEC_FORMAT: u32 = 2;
/// The formats the runner reads (its `SPEC_FORMATS`); a format 1 spec has no `literal`.
pub const SPEC_FORMATS_READ: [u32; 2] = [1, 2];

/// What the runner on the instance reads: which roles to run and what to check first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub format: u32,
    pub parbake_version: String,
    pub stack: String,
    pub image: String,
    pub target: String,
    /// The layer this user-data was generated for (informational; checks are per role).
    pub layer: String,
    pub layer_name: String,
    /// Roles the image must have baked, with their hashes.
    #[serde(default)]
    pub baked: BTreeMap<String, String>,
    /// Roles to run, in order, with the hash the image's copy must have.
    pub roles: Vec<SpecRole>,
    /// Plain and literal vars (bake-time and launch-time).
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// The vars in `vars` that reach the roles literally, never templated (`!unsafe`).
    #[serde(default)]
    pub literal: Vec<String>,
    /// Secret references, resolved on the instance; never values.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Tag the EC2 instance with the result (`parbake:status`), best effort.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub status_tag: bool,
    /// How long the launch may take from its first start, across reboots (the stack's
    /// `launch_timeout`). Absent (a spec before it): the runner's default, an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_timeout_s: Option<u64>,
    /// The launch's fact gathering, Ansible's `gather_subset` (the stack's `launch_facts`);
    /// empty: no fact gathering. Absent: all facts. Additive within format 2, like the timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Vec<String>>,
    /// Health checks the runner probes after the roles (the stack's `checks:`); a failed one
    /// fails the launch. Additive within format 2, like the timeout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// One health check as the runner reads it (`read_checks`, `run_check`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Unique within the spec; named in status.json and in a failed launch's error.
    pub name: String,
    #[serde(flatten)]
    pub kind: CheckKind,
    /// How long the runner probes it (once a second) before it fails.
    pub timeout_s: u64,
}

/// What a check probes, on the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckKind {
    /// GET http://127.0.0.1:PORT/PATH (no proxy, no redirect) answers `status`, with `body` in
    /// the page when set.
    Http {
        port: u16,
        path: String,
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// `systemctl is-active UNIT`.
    Unit { unit: String },
    /// A TCP connection to 127.0.0.1:PORT.
    Port { port: u16 },
    /// The argv, run without a shell, exits 0.
    Command { argv: Vec<String> },
    /// The file exists, written within `max_age_s`, with `contains` in it when set.
    File {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contains: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_age_s: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecRole {
    pub name: String,
    pub hash: String,
}

impl LaunchSpec {
    /// The spec as written on the instance: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("spec serializes") + "\n"
    }
}
