//! `doctor --target aws`: Packer (and its amazon plugin), credentials and a region (named,
//! never printed), the endpoint, and room for the store's logs.

use std::path::Path;

use crate::config::Project;
use crate::doctor::{free_disk, Finding};
use crate::tools::Tools;

const EC2: &str = "bake, launch, verify, publish, images, prune, gc";

/// Every check of the aws target.
pub fn checks(tools: &Tools, store_root: &Path, project: Option<&Project>) -> Vec<Finding> {
    vec![
        crate::targets::interface::packer_finding(tools),
        crate::doctor::packer_plugin_finding(tools, "amazon", project),
        credentials(),
        region(),
        endpoint(),
        free_disk(store_root, 1, "bake (logs and the ledger)"),
    ]
}

fn set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

fn home_file(rel: &str) -> Option<std::path::PathBuf> {
    let p = Path::new(&std::env::var_os("HOME")?).join(rel);
    p.is_file().then_some(p)
}

/// Where the SDK would find credentials, by name only: no value is read or printed.
fn credentials() -> Finding {
    let from = if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        Some("the environment (AWS_ACCESS_KEY_ID)".to_string())
    } else if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        Some("a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)".to_string())
    } else if set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    {
        Some("the container's credentials endpoint".to_string())
    } else if let Some(p) = home_file(".aws/credentials").or_else(|| home_file(".aws/config")) {
        let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
        Some(format!("profile {profile} in {}", p.display()))
    } else {
        None
    };
    match from {
        Some(f) => Finding::ok("aws credentials", f, EC2),
        None => Finding::failed(
            "aws credentials",
            false,
            "none in the environment or ~/.aws; on EC2 an instance profile may supply them",
            "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run on an instance with a role",
            EC2,
        ),
    }
}

/// The default region; each image's `aws.region` is used for its own bakes in any case.
fn region() -> Finding {
    match ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|n| {
            std::env::var(n)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| (n, v))
        }) {
        Some((n, v)) => Finding::ok("aws region", format!("{v} ({n})"), EC2),
        None => Finding::ok(
            "aws region",
            "each image's aws.region (no AWS_REGION set)",
            EC2,
        ),
    }
}

/// An endpoint override (a local moto server in tests), said so that no one mistakes it.
fn endpoint() -> Finding {
    match super::ec2::Endpoint::from_env().url {
        Some(url) => Finding::ok(
            "aws endpoint",
            format!("{url} (PARBAKE_EC2_ENDPOINT: not AWS itself)"),
            EC2,
        ),
        None => Finding::ok("aws endpoint", "AWS's own", EC2),
    }
}
