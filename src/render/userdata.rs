//! Launch user-data: a `#cloud-config` that writes the launch spec, which
//! `parbake-launch.service` on the image waits for: it runs the stack's remaining roles from
//! the copies baked in. A bootstrap in `runcmd` is the fallback for images without the unit.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::RenderError;
use crate::config::VarValue;
use crate::contract::spec::{LaunchSpec, SpecRole, SPEC_FORMAT};
use crate::contract::{LAUNCH_SPEC_PATH, STATUS_PATH};
use crate::plan::Plan;

/// EC2's limit on raw user-data (before base64).
pub const USERDATA_LIMIT: usize = 16_384;
/// The launch spec (`contract::spec`) of the plan's stack.
pub fn spec(plan: &Plan) -> LaunchSpec {
    let top = plan.top();
    let mut vars = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut literal = Vec::new();
    for (k, v) in &plan.launch_vars {
        match v {
            VarValue::Plain(v) => {
                vars.insert(k.clone(), v.clone());
            }
            VarValue::Literal(v) => {
                vars.insert(k.clone(), v.clone());
                literal.push(k.clone());
            }
            VarValue::Secret(r) => {
                secrets.insert(k.clone(), r.to_string());
            }
        }
    }
    LaunchSpec {
        format: SPEC_FORMAT,
        parbake_version: plan.parbake_version.clone(),
        stack: plan.stack.clone(),
        image: plan.image.clone(),
        target: plan.target.to_string(),
        layer: top.hash.clone(),
        layer_name: top.name.clone(),
        baked: top
            .baked
            .iter()
            .map(|r| (r.clone(), plan.installed[r].clone()))
            .collect(),
        roles: plan
            .launch
            .iter()
            .map(|r| SpecRole {
                name: r.name.clone(),
                hash: r.hash.clone(),
            })
            .collect(),
        vars,
        literal,
        secrets,
        status_tag: plan.status_tag,
        launch_timeout_s: Some(plan.launch_timeout_s),
        facts: plan.launch_facts.clone(),
        checks: plan.checks.clone(),
    }
}

/// The bootstrap `runcmd` runs (cloud-final). On every image parbake bakes now it does nothing:
/// parbake-launch.service runs the launch. On an image baked before the unit it hands over to
/// the runner as it always did; on an image with no runtime it records why nothing runs.
const BOOT_SH: &str = r#"#!/bin/sh
# parbake launch bootstrap: a fallback for images without parbake-launch.service.
runner=/opt/parbake/bin/parbake-roles
if [ -e /etc/systemd/system/parbake-launch.service ]; then
  echo "parbake: the launch runs in parbake-launch.service"
  exit 0
fi
if [ ! -x "$runner" ]; then
  mkdir -p /var/lib/parbake
  msg="this image has no parbake runtime ($runner); bake it with parbake or use a parbake image"
  printf '{"format": 1, "phase": "launch", "state": "failed", "error": "%s", "roles": []}\n' "$msg" > /var/lib/parbake/status.json
  echo "parbake: launch failed error=\"$msg\"" | tee /dev/console
  exit 1
fi
exec "$runner" launch /var/lib/parbake/launch.json
"#;

/// Rendered user-data: the exact bytes to hand to EC2 or the NoCloud seed.
#[derive(Debug, Clone, PartialEq)]
pub struct UserData {
    pub bytes: Vec<u8>,
    /// The cloud-config (same as `bytes` unless gzipped).
    pub text: String,
    pub gzipped: bool,
    /// (part, raw bytes) for size reports.
    pub parts: Vec<(String, usize)>,
    /// The launch spec as written on the instance (base64 inside `text`).
    pub spec_json: String,
}

/// The cloud-config body. Serialized, never formatted: the only values in it are fixed paths
/// and base64 text, so cloud-init parses no user value as YAML at all.
#[derive(Serialize)]
struct CloudConfig {
    write_files: Vec<WriteFile>,
    runcmd: Vec<Vec<&'static str>>,
}

#[derive(Serialize)]
struct WriteFile {
    path: &'static str,
    owner: &'static str,
    permissions: &'static str,
    encoding: &'static str,
    content: String,
}

const BOOT_PATH: &str = "/var/lib/parbake/boot.sh";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The comment lines at the top. Only validated names (stack, image, layer and role names,
/// which config and the planner check) and hex hashes reach them.
fn header(plan: &Plan) -> String {
    let roles: Vec<&str> = plan.launch.iter().map(|r| r.name.as_str()).collect();
    format!(
        "#cloud-config\n\
         # parbake {version}: launch user-data for stack `{stack}`, image `{image}`, layer {layer} ({hash}).\n\
         # parbake-launch.service on the image runs {n} role(s) from its copies: {roles}.\n\
         # The launch spec and bootstrap are base64 below; `parbake userdata {stack} --explain` decodes them.\n\
         # Log: /var/log/parbake/launch.log  Status: {STATUS_PATH}\n",
        version = plan.parbake_version,
        stack = plan.stack,
        image = plan.image,
        layer = plan.top().name,
        hash = plan.top().short_hash(),
        n = roles.len(),
        roles = if roles.is_empty() { "none".to_string() } else { roles.join(", ") },
    )
}

pub fn render(plan: &Plan) -> Result<UserData, RenderError> {
    render_with_limit(plan, USERDATA_LIMIT)
}

pub fn render_with_limit(plan: &Plan, limit: usize) -> Result<UserData, RenderError> {
    let spec = spec(plan);
    let spec_json = spec.to_json();
    let header = header(plan);
    let config = CloudConfig {
        write_files: vec![
            WriteFile {
                path: LAUNCH_SPEC_PATH,
                owner: "root:root",
                permissions: "0600",
                encoding: "b64",
                content: b64(spec_json.as_bytes()),
            },
            WriteFile {
                path: BOOT_PATH,
                owner: "root:root",
                permissions: "0700",
                encoding: "b64",
                content: b64(BOOT_SH.as_bytes()),
            },
        ],
        runcmd: vec![vec!["/bin/sh", BOOT_PATH]],
    };
    let body = serde_yaml::to_string(&config).expect("cloud-config serializes");
    let text = format!("{header}{body}");

    let spec_size = config.write_files[0].content.len();
    let boot_size = config.write_files[1].content.len();
    let mut parts = vec![
        ("header comments".to_string(), header.len()),
        (
            format!("launch spec {LAUNCH_SPEC_PATH} (base64)"),
            spec_size,
        ),
        (format!("bootstrap {BOOT_PATH} (base64)"), boot_size),
        (
            "write_files and runcmd keys".to_string(),
            body.len() - spec_size - boot_size,
        ),
    ];
    let mut var_sizes: Vec<(String, usize)> = spec
        .vars
        .iter()
        .map(|(k, v)| (format!("  var {k}"), v.to_string().len()))
        .collect();
    var_sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    parts.extend(var_sizes.into_iter().take(5));

    let fitted = |bytes: Vec<u8>, gzipped: bool| UserData {
        bytes,
        text: text.clone(),
        gzipped,
        parts: parts.clone(),
        spec_json: spec_json.clone(),
    };
    if text.len() <= limit {
        return Ok(fitted(text.clone().into_bytes(), false));
    }
    let gz = gzip(text.as_bytes());
    if gz.len() <= limit {
        return Ok(fitted(gz, true));
    }
    Err(RenderError::UserDataTooLarge {
        stack: plan.stack.clone(),
        raw: text.len(),
        gzipped: gz.len(),
        limit,
        parts,
    })
}

impl UserData {
    /// A readable account of the user-data: the cloud-config as sent, then each encoded file
    /// decoded. For people; the bytes to hand to EC2 are `bytes`.
    pub fn explain(&self) -> String {
        let mut s = format!(
            "# user-data: {} bytes{}\n{}",
            self.bytes.len(),
            if self.gzipped { " gzipped" } else { "" },
            self.text
        );
        s.push_str(&format!(
            "\n# decoded {LAUNCH_SPEC_PATH} (mode 0600):\n{}",
            self.spec_json
        ));
        s.push_str(&format!("\n# decoded {BOOT_PATH} (mode 0700):\n{BOOT_SH}"));
        s
    }
}

/// Deterministic gzip (no timestamp, no file name), so user-data is reproducible.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("in-memory write");
    enc.finish().expect("in-memory gzip")
}
