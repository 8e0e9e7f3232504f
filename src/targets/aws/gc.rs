//! `parbake gc`: what a bake killed with SIGKILL (or a machine that died mid-bake) leaves in
//! EC2, found from EC2 itself, not from a local record: builder instances parbake tagged whose
//! expiry has passed (terminated), the temporary key pair and security group Packer made for
//! each (`packer_<id>`, read from that instance), unattached builder volumes whose expiry tag
//! passed, and expired `parbake-lock-*` claims. Nothing is touched that the tags, the names
//! and the expiry together do not tie to a parbake bake.

use std::collections::BTreeSet;

use serde::Serialize;

use super::ec2::{BuilderInstance, Ec2, Endpoint};
use crate::config::Project;
use crate::error::Result;
use crate::runtime::{runtime, Threads};
use crate::store::now_epoch;

#[derive(Debug, Clone, Serialize)]
pub struct Leftover {
    /// `instance`, `key-pair`, `security-group`, `volume` or `claim`.
    pub kind: String,
    /// The resource: an instance, volume or security group id, or a key pair's name.
    pub id: String,
    pub region: String,
    /// The builder instance it belongs to (empty for volumes and claims).
    pub instance_id: String,
    pub state: String,
    pub owner: String,
    pub run_id: String,
    pub expired_s_ago: u64,
    /// An instance was terminated.
    pub terminated: bool,
    /// It is gone (instances: terminated).
    pub removed: bool,
    /// Why it was not removed (a security group still in use by its terminating instance is
    /// removed by the next gc).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Packer's temporary key pairs and security groups are named `packer_<id>`.
fn packer_temporary(name: &str) -> bool {
    name.starts_with("packer_")
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
    r.extend(crate::config::distribute::regions(project));
    r.into_iter().collect()
}

pub fn gc(project: &Project, dry_run: bool) -> Result<Vec<Leftover>> {
    let rt = runtime(Threads::Current)?;
    let now = now_epoch();
    let mut out = Vec::new();
    let scope = super::scope::Scope::of(project);
    for region in regions(project) {
        out.extend(rt.block_on(gc_region(&region, now, dry_run))?);
        out.extend(rt.block_on(orphan_copies(&scope, &region, dry_run))?);
    }
    Ok(out)
}

/// One region: its expired builders (terminated, then their Packer key pair and security
/// group deleted), expired builder volumes and expired claims, unless a dry run.
async fn gc_region(region: &str, now: u64, dry_run: bool) -> Result<Vec<Leftover>> {
    let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
    let found = Found { region, now };
    let builders = ec2.expired_builders(now).await?;
    let mut out: Vec<Leftover> = builders.iter().flat_map(|b| found.builder(b)).collect();
    for v in ec2.expired_volumes(now).await? {
        out.push(found.item("volume", &v.id, "", &v.owner, &v.run_id, v.expires_at));
    }
    for c in ec2.expired_claims(now).await? {
        out.push(found.item("claim", &c.id, "", &c.owner, &c.run_id, c.expires_at));
    }
    if dry_run {
        return Ok(out);
    }
    let ids: Vec<String> = builders.iter().map(|b| b.instance_id.clone()).collect();
    if !ids.is_empty() {
        ec2.terminate(&ids).await?;
    }
    remove(&ec2, &mut out).await;
    Ok(out)
}

/// This project's `distribute:` copies in `region` whose source AMI is gone (deregistered
/// by hand, or a prune cut short), or that failed: deregistered with their snapshots, unless a
/// dry run. A protected copy is listed and left.
async fn orphan_copies(
    scope: &super::scope::Scope,
    region: &str,
    dry_run: bool,
) -> Result<Vec<Leftover>> {
    use super::distribute::{COPY_OF, COPY_SOURCE_REGION};
    let ec2 = Ec2::connect(region, &Endpoint::from_env()).await;
    let mut out = Vec::new();
    for copy in ec2.parbake_amis().await? {
        let (Some(source), Some(from)) =
            (copy.tags.get(COPY_OF), copy.tags.get(COPY_SOURCE_REGION))
        else {
            continue;
        };
        if !scope.holds(&copy) || !orphaned(&copy, source, from).await? {
            continue;
        }
        let mut l = Found { region, now: 0 }.item("copy", &copy.id, "", "", "", 0);
        l.state = copy.state.clone();
        if copy.lifecycle.protected() {
            l.note = Some("deregistration protection is on: left for its owner".into());
        } else if !dry_run {
            match remove_copy(&ec2, &copy.id).await {
                Ok(()) => l.removed = true,
                Err(e) => l.note = Some(format!("not removed yet ({e}); the next gc retries")),
            }
        }
        out.push(l);
    }
    Ok(out)
}

/// A copy is orphaned when it failed, or its source no longer exists in its source region.
async fn orphaned(copy: &super::ami::Ami, source: &str, from: &str) -> Result<bool> {
    if copy.state == "failed" {
        return Ok(true);
    }
    let home = Ec2::connect(from, &Endpoint::from_env()).await;
    let found = home.described_image(source).await?;
    Ok(found.is_none_or(|i| i.state().is_some_and(|s| s.as_str() == "deregistered")))
}

/// Deregisters a copy with its snapshots (then deletes any EC2 did not report on).
async fn remove_copy(ec2: &Ec2, ami: &str) -> Result<()> {
    let snapshots = ec2.snapshots_of(ami).await?;
    let reported = ec2.deregister_with_snapshots(ami).await?;
    for s in snapshots.iter().filter(|s| !reported.contains_key(*s)) {
        ec2.delete_snapshot(s).await?;
    }
    Ok(())
}

/// Where and when leftovers are found: each one's region, and its age against `now`.
struct Found<'a> {
    region: &'a str,
    now: u64,
}

impl Found<'_> {
    /// One leftover of an expired run, not yet removed.
    fn item(
        &self,
        kind: &str,
        id: &str,
        instance: &str,
        owner: &str,
        run: &str,
        at: u64,
    ) -> Leftover {
        Leftover {
            kind: kind.into(),
            id: id.into(),
            region: self.region.to_string(),
            instance_id: instance.into(),
            state: String::new(),
            owner: owner.into(),
            run_id: run.into(),
            expired_s_ago: self.now.saturating_sub(at),
            terminated: false,
            removed: false,
            note: None,
        }
    }

    /// An expired builder instance, and the Packer key pair and security groups it holds.
    fn builder(&self, b: &BuilderInstance) -> Vec<Leftover> {
        let of = |kind: &str, id: &str| {
            self.item(kind, id, &b.instance_id, &b.owner, &b.run_id, b.expires_at)
        };
        let mut instance = of("instance", &b.instance_id);
        instance.state = b.state.clone();
        let mut out = vec![instance];
        if let Some(k) = b.key_name.as_deref().filter(|k| packer_temporary(k)) {
            out.push(of("key-pair", k));
        }
        for (id, _) in b
            .security_groups
            .iter()
            .filter(|(_, n)| packer_temporary(n))
        {
            out.push(of("security-group", id));
        }
        out
    }
}

/// Removes each leftover, instances first (their key pairs and groups are free once they are
/// gone); one that cannot be removed yet says why, and the next gc retries.
async fn remove(ec2: &Ec2, out: &mut [Leftover]) {
    for l in out {
        let done = match l.kind.as_str() {
            "instance" => {
                l.terminated = true;
                Ok(())
            }
            "key-pair" | "claim" => ec2.release_claim(&l.id).await,
            "volume" => ec2.delete_volume(&l.id).await,
            _ => ec2.delete_security_group(&l.id).await,
        };
        match done {
            Ok(()) => l.removed = true,
            Err(e) => l.note = Some(format!("not removed yet ({e}); the next gc retries")),
        }
    }
}
