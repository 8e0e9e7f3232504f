//! `publish` and `rollback` on the local target: the stack's published pointer in the store
//! (`crate::published`), which `launch STACK --published` boots. Publishing asks for a passed
//! `verify` with exactly that user-data, unless `--unverified`, which is recorded.

use serde::Serialize;

use super::launch::Boot;
use crate::config::Project;
use crate::error::{Error, Result};
use crate::plan::PlanRequest;
use crate::published::Publication;
use crate::store::Store;

#[derive(Debug, Serialize)]
pub struct PublishReport {
    pub stack: String,
    pub published: Publication,
    /// The version that was the default before.
    pub previous: Option<Publication>,
}

#[derive(Debug, Serialize)]
pub struct RollbackReport {
    pub stack: String,
    pub from: Publication,
    pub to: Publication,
}

/// Publishes the stack's current top layer and user-data as its new default version.
pub fn publish(project: &Project, req: &PlanRequest, unverified: bool) -> Result<PublishReport> {
    let boot = Boot::planned(project, req, false)?;
    let store = Store::for_project(&project.root);
    let sha = crate::plan::sha256_hex(&boot.user_data);
    let verified = store
        .verification(&boot.layer_hash, &sha)
        .is_some_and(|v| v.passed);
    if !verified && !unverified {
        return Err(not_verified(&store, &boot, &sha, req));
    }
    let version = Publication {
        version: 0,
        image: boot.image.clone(),
        layer_index: boot.layer_index,
        layer: boot.layer.clone(),
        layer_hash: boot.layer_hash.clone(),
        launch_roles: boot.launch_roles,
        userdata_sha256: sha,
        at: crate::store::now_epoch(),
        verified,
    };
    let (published, previous) =
        crate::published::publish(&store, &boot.stack, version, &boot.user_data)?;
    Ok(PublishReport {
        stack: boot.stack,
        published,
        previous,
    })
}

/// Why a layer cannot be published yet, with what its verifications say.
fn not_verified(store: &Store, boot: &Boot, sha: &str, req: &PlanRequest) -> Error {
    let promote: String = req
        .promote
        .iter()
        .map(|p| format!(" --promote {p}"))
        .collect();
    let verify = format!("parbake verify {}{promote}", boot.stack);
    let others = store.verifications(&boot.layer_hash);
    let mut e = Error::user(format!(
        "layer {} ({}) has not passed `verify` with the user-data stack {} would publish (sha256 {})",
        boot.layer,
        &boot.layer_hash[..12],
        boot.stack,
        &sha[..12]
    ));
    if let Some(v) = others.iter().find(|v| v.userdata_sha256 == sha) {
        e = e.with_hint(format!(
            "its last verification failed: {}",
            v.error.as_deref().unwrap_or("see the launch log")
        ));
    } else if let Some(v) = others.first() {
        e = e.with_hint(format!(
            "it was verified with other user-data (sha256 {}, stack {}): the stack's launch settings or roles changed since",
            &v.userdata_sha256[..12],
            v.stack
        ));
    }
    e.with_hint(format!(
        "verify it: {verify}; or publish it anyway with --unverified (recorded)"
    ))
}

/// Moves the stack's default back to the version before it.
pub fn rollback(project: &Project, stack: &str, unverified: bool) -> Result<RollbackReport> {
    let store = Store::for_project(&project.root);
    let (from, to) = crate::published::rollback(&store, stack, unverified)?;
    Ok(RollbackReport {
        stack: stack.to_string(),
        from,
        to,
    })
}
