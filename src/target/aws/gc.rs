//! `parbake gc`: terminate builder instances parbake tagged whose expiry has passed (bakes killed
//! with SIGKILL, or machines that died mid-bake, leave them running and billing).

use std::collections::BTreeSet;

use serde::Serialize;

use super::ec2::{Ec2, Endpoint};
use crate::config::Project;
use crate::error::Result;
use crate::runtime::{runtime, Threads};
use crate::store::now_epoch;

#[derive(Debug, Clone, Serialize)]
pub struct Leftover {
    pub region: String,
    pub instance_id: String,
    pub state: String,
    pub owner: String,
    pub run_id: String,
    pub expired_s_ago: u64,
    pub terminated: bool,
}

/// Every region an image of the project uses (source regions and copy targets).
pub fn regions(project: &Project) -> Vec<String> {
    let mut r = BTreeSet::new();
    for image in project.images.values() {
        if let Some(a) = &image.def.sources.aws {
            r.insert(a.region.clone());
            r.extend(a.copy_to_regions.iter().cloned());
        }
    }
    r.into_iter().collect()
}

pub fn gc(project: &Project, dry_run: bool) -> Result<Vec<Leftover>> {
    let rt = runtime(Threads::Current)?;
    let now = now_epoch();
    let mut out = Vec::new();
    for region in regions(project) {
        out.extend(rt.block_on(gc_region(&region, now, dry_run))?);
    }
    Ok(out)
}

/// One region: its expired builders, terminated unless a dry run.
async fn gc_region(region: &str, now: u64, dry_run: bool) -> Result<Vec<Leftover>> {
    let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
    let mut expired: Vec<Leftover> = ec2
        .expired_builders(now)
        .await?
        .into_iter()
        .map(|b| Leftover {
            region: region.to_string(),
            instance_id: b.instance_id,
            state: b.state,
            owner: b.owner,
            run_id: b.run_id,
            expired_s_ago: now - b.expires_at,
            terminated: false,
        })
        .collect();
    if !dry_run && !expired.is_empty() {
        let ids: Vec<String> = expired.iter().map(|l| l.instance_id.clone()).collect();
        ec2.terminate(&ids).await?;
        for l in &mut expired {
            l.terminated = true;
        }
    }
    Ok(expired)
}
