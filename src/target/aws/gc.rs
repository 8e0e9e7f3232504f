//! `parbake gc`: terminate builder instances parbake tagged whose expiry has passed (bakes killed
//! with SIGKILL, or machines that died mid-bake, leave them running and billing).

use std::collections::BTreeSet;

use serde::Serialize;

use super::ec2::{filter, Ec2, Endpoint};
use crate::config::Project;
use crate::error::{Error, Result};
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
    let rt = super::runtime()?;
    let now = now_epoch();
    let mut out = Vec::new();
    for region in regions(project) {
        rt.block_on(async {
            let ec2 = Ec2::connect(&region, &Endpoint::from_env()).await;
            let mut token = None;
            let mut expired = Vec::new();
            loop {
                let resp = ec2
                    .client
                    .describe_instances()
                    .filters(filter("tag-key", "parbake:expires-at"))
                    .filters(
                        aws_sdk_ec2::types::Filter::builder()
                            .name("instance-state-name")
                            .values("pending")
                            .values("running")
                            .values("stopping")
                            .values("stopped")
                            .build(),
                    )
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| {
                        Error::user(format!(
                            "EC2 DescribeInstances in {region} failed: {}",
                            aws_sdk_ec2::error::DisplayErrorContext(e)
                        ))
                    })?;
                for i in resp.reservations().iter().flat_map(|r| r.instances()) {
                    let tag = |k: &str| {
                        i.tags()
                            .iter()
                            .find(|t| t.key() == Some(k))
                            .and_then(|t| t.value())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let Ok(expires) = tag("parbake:expires-at").parse::<u64>() else {
                        continue;
                    };
                    if expires < now {
                        expired.push(Leftover {
                            region: region.clone(),
                            instance_id: i.instance_id().unwrap_or_default().to_string(),
                            state: i
                                .state()
                                .and_then(|s| s.name())
                                .map(|n| n.as_str().to_string())
                                .unwrap_or_default(),
                            owner: tag("parbake:owner"),
                            run_id: tag("parbake:run-id"),
                            expired_s_ago: now - expires,
                            terminated: false,
                        });
                    }
                }
                match resp.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            if !dry_run && !expired.is_empty() {
                ec2.client
                    .terminate_instances()
                    .set_instance_ids(Some(
                        expired.iter().map(|l| l.instance_id.clone()).collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| {
                        Error::user(format!(
                            "EC2 TerminateInstances in {region} failed: {}",
                            aws_sdk_ec2::error::DisplayErrorContext(e)
                        ))
                    })?;
                for l in &mut expired {
                    l.terminated = true;
                }
            }
            out.extend(expired);
            Ok::<(), Error>(())
        })?;
    }
    Ok(out)
}
