//! Launch user-data: a `#cloud-config` that writes the launch spec and hands over to the
//! runner on the image, which runs the stack's remaining roles from the copies baked in.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::RenderError;
use crate::config::VarValue;
use crate::contract::{LAUNCH_SPEC_PATH, STATUS_PATH};
use crate::plan::Plan;

/// EC2's limit on raw user-data (before base64).
pub const USERDATA_LIMIT: usize = 16_384;
/// 2: `literal` names the vars passed to Ansible as unsafe (`!unsafe`); secrets always are.
pub const SPEC_FORMAT: u32 = 2;

/// What the runner on the instance reads: which roles to run and what to check first.
#[derive(Serialize)]
pub struct LaunchSpec<'a> {
    pub format: u32,
    pub parbake_version: &'a str,
    pub stack: &'a str,
    pub image: &'a str,
    pub target: String,
    /// The layer this user-data was generated for (informational; checks are per role).
    pub layer: &'a str,
    pub layer_name: &'a str,
    /// Roles the image must have baked, with their hashes.
    pub baked: BTreeMap<&'a str, &'a str>,
    /// Roles to run, in order, with the hash the image's copy must have.
    pub roles: Vec<SpecRole<'a>>,
    /// Plain and literal vars (bake-time and launch-time).
    pub vars: BTreeMap<&'a str, &'a serde_json::Value>,
    /// The vars in `vars` that reach the roles literally, never templated (`!unsafe`).
    pub literal: Vec<&'a str>,
    /// Secret references, resolved on the instance; never values.
    pub secrets: BTreeMap<&'a str, String>,
    /// Tag the EC2 instance with the result (`parbake:status`), best effort.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub status_tag: bool,
}

#[derive(Serialize)]
pub struct SpecRole<'a> {
    pub name: &'a str,
    pub hash: &'a str,
}

pub fn spec(plan: &Plan) -> LaunchSpec<'_> {
    let top = plan.top();
    let mut vars = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut literal = Vec::new();
    for (k, v) in &plan.launch_vars {
        match v {
            VarValue::Plain(v) => {
                vars.insert(k.as_str(), v);
            }
            VarValue::Literal(v) => {
                vars.insert(k.as_str(), v);
                literal.push(k.as_str());
            }
            VarValue::Secret(r) => {
                secrets.insert(k.as_str(), r.to_string());
            }
        }
    }
    LaunchSpec {
        format: SPEC_FORMAT,
        parbake_version: &plan.parbake_version,
        stack: &plan.stack,
        image: &plan.image,
        target: plan.target.to_string(),
        layer: &top.hash,
        layer_name: &top.name,
        baked: top
            .baked
            .iter()
            .map(|r| (r.as_str(), plan.installed[r].as_str()))
            .collect(),
        roles: plan
            .launch
            .iter()
            .map(|r| SpecRole {
                name: &r.name,
                hash: &r.hash,
            })
            .collect(),
        vars,
        literal,
        secrets,
        status_tag: plan.status_tag,
    }
}

const BOOT_SH: &str = r#"#!/bin/sh
# parbake launch bootstrap: hands over to the runner baked into the image.
# Re-run by hand after a failure: sudo /opt/parbake/bin/parbake-roles launch /var/lib/parbake/launch.json
runner=/opt/parbake/bin/parbake-roles
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
         # Runs {n} role(s) at boot from the copies on the image: {roles}.\n\
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
    let spec_json = serde_json::to_string_pretty(&spec).expect("spec serializes") + "\n";
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
