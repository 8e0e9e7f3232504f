//! Distribution (issue 27): a stack's launched AMI copied to the regions its `distribute:`
//! lists (each copy re-encrypted with that region's customer key) and shared with accounts,
//! OUs or everyone, in its home region and in every copy region. Idempotent: a copy that
//! exists is not made again and EC2's Add of a permission already given changes nothing, so a
//! cache hit distributes what a newly listed region or account lacks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ami::Ami;
use super::ec2::Ec2;
use super::ec2_share::Share;
use crate::config::distribute::is_aws_managed_ebs_key;
use crate::config::model::Distribute;
use crate::error::{Error, Result};

/// How long a bake waits for its copies to become available (EC2 copies take minutes, large
/// cross-region ones longer); past it the bake fails and the next bake waits again.
pub const COPY_WAIT: Duration = Duration::from_secs(45 * 60);
/// How often the wait looks.
const COPY_POLL: Duration = Duration::from_secs(5);
/// The tag a copy carries: the AMI it was copied from, and that AMI's region.
pub const COPY_OF: &str = "parbake:copy-of";
pub const COPY_SOURCE_REGION: &str = "parbake:copy-source-region";

/// One copy region: its client and the key its copy is encrypted with.
pub struct Target {
    pub ec2: Arc<Ec2>,
    pub kms_key_id: Option<String>,
}

/// What distribution did: each copy as (region, AMI), the ones it made, and notes to show.
#[derive(Debug, Default)]
pub struct Distributed {
    pub copies: Vec<(String, String)>,
    pub made: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// Who `d` shares with.
pub fn share_of(d: &Distribute) -> Share {
    Share {
        accounts: d.accounts.clone(),
        organizational_units: d.organizational_units.clone(),
        public: d.public,
    }
}

/// Preflight, copies, their wait and tags, then the shares: the whole distribution of `ami`.
/// `named_key` says the image's `encrypt:` names a customer key.
pub async fn distribute(
    home: &Ec2,
    ami: &Ami,
    d: &Distribute,
    targets: &[Target],
    named_key: bool,
) -> Result<Distributed> {
    let share = share_of(d);
    let mut out = Distributed::default();
    let snapshots = home.snapshots_of(&ami.id).await?;
    preflight(home, &snapshots, &share, targets, named_key, &mut out).await?;
    for t in targets {
        let (copy, made) = copy_into(home, ami, t).await?;
        if made {
            out.made.push((t.ec2.region.clone(), copy.clone()));
        }
        out.copies.push((t.ec2.region.clone(), copy));
    }
    wait_available(targets, &out.copies).await?;
    for (t, (_, copy)) in targets.iter().zip(&out.copies) {
        let snaps = t.ec2.snapshots_of(copy).await?;
        t.ec2.tag_all(&snaps, &copy_tags(ami, &home.region)).await?;
        share_one(&t.ec2, copy, &snaps, &share).await?;
    }
    share_one(home, &ami.id, &snapshots, &share).await?;
    Ok(out)
}

/// Launch permission on the AMI, create-volume permission on its snapshots for the accounts.
async fn share_one(ec2: &Ec2, ami: &str, snapshots: &[String], share: &Share) -> Result<()> {
    if share.is_empty() {
        return Ok(());
    }
    ec2.share_image(ami, share).await?;
    if share.accounts.is_empty() {
        return Ok(());
    }
    for s in snapshots {
        ec2.share_snapshot(s, &share.accounts).await?;
    }
    Ok(())
}

/// Before any copy: a share of an AMI, or of a copy, whose snapshots would be encrypted with
/// a key parbake cannot tell is customer-managed is refused; with `public: true`, each
/// region's image block public access is read, reported, and a block refuses.
async fn preflight(
    home: &Ec2,
    snapshots: &[String],
    share: &Share,
    targets: &[Target],
    named_key: bool,
    out: &mut Distributed,
) -> Result<()> {
    if share.is_empty() {
        return Ok(());
    }
    let keys = home.snapshot_keys(snapshots).await?;
    let encrypted = keys.iter().any(|k| k.encrypted);
    if let Some(k) = keys.iter().find(|k| {
        k.encrypted && (!named_key || k.kms_key_id.as_deref().is_some_and(is_aws_managed_ebs_key))
    }) {
        return Err(unshareable(&home.region, &format!("snapshot {} is encrypted with {}", k.id, k.kms_key_id.as_deref().unwrap_or("the default EBS key")), "set `encrypt: {kms_key_id: …}` in the image's aws source to a customer-managed key (the AMI rebakes), so the accounts can be granted it"));
    }
    for t in targets.iter().filter(|t| t.kms_key_id.is_none()) {
        if encrypted || t.ec2.encrypts_by_default().await? {
            let region = &t.ec2.region;
            return Err(unshareable(region, &format!("its copy in {region} would be encrypted with that region's default EBS key"), &format!("give the region a customer-managed key: `- {{region: {region}, kms_key_id: alias/NAME}}` under `distribute.regions`")));
        }
    }
    if share.public {
        public_access(home, targets, out).await?;
    }
    Ok(())
}

/// The refusal of a share EC2 would not honour.
fn unshareable(region: &str, why: &str, hint: &str) -> Error {
    Error::user(format!("distribute: cannot share the AMI in {region}: {why}; an AMI encrypted with the AWS-managed key `aws/ebs` (or a default key parbake is not told of) cannot be shared, since that key cannot be granted to another account")).with_hint(hint.to_string())
}

/// GetImageBlockPublicAccessState in every region of a public share: noted, and refused
/// when it blocks new public sharing.
async fn public_access(home: &Ec2, targets: &[Target], out: &mut Distributed) -> Result<()> {
    for ec2 in std::iter::once(home).chain(targets.iter().map(|t| t.ec2.as_ref())) {
        let state = ec2.image_block_public_access().await?;
        out.notes.push(format!(
            "image block public access in {}: {state}",
            ec2.region
        ));
        if state != "unblocked" {
            return Err(Error::user(format!("distribute: `public: true`, but image block public access in {} is `{state}`: EC2 refuses new public AMIs there", ec2.region))
                .with_hint(format!("an administrator of the account can lift it: aws ec2 disable-image-block-public-access --region {}; or drop `public: true`", ec2.region)));
        }
    }
    Ok(())
}

/// The copy of `ami` in the target's region: the one there (not failed), or a new one tagged
/// like its source at once (so `gc` and `prune` find it even if the wait is cut short).
async fn copy_into(home: &Ec2, ami: &Ami, t: &Target) -> Result<(String, bool)> {
    let existing = t.ec2.copies_of(&ami.id).await?;
    if let Some(c) = existing
        .iter()
        .find(|c| c.state == "available" || c.state == "pending")
    {
        return Ok((c.id.clone(), false));
    }
    let kms = t.kms_key_id.as_deref();
    let id = t
        .ec2
        .copy_image(&ami.name, &home.region, &ami.id, kms)
        .await?;
    t.ec2
        .tag_all(std::slice::from_ref(&id), &copy_tags(ami, &home.region))
        .await?;
    Ok((id, true))
}

/// A copy's tags: its source's (parbake's registry and the user's), and where it came from.
pub fn copy_tags(ami: &Ami, home: &str) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = ami
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with("aws:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tags.push((COPY_OF.into(), ami.id.clone()));
    tags.push((COPY_SOURCE_REGION.into(), home.into()));
    tags
}

/// Waits until every copy is available, within [`COPY_WAIT`]; a failed copy or the timeout
/// is an error naming it (the next bake finds a pending copy and waits for it again).
async fn wait_available(targets: &[Target], copies: &[(String, String)]) -> Result<()> {
    let started = Instant::now();
    let limit = COPY_WAIT;
    for (t, (region, copy)) in targets.iter().zip(copies) {
        loop {
            let state = t.ec2.image(copy).await?.state;
            match state.as_str() {
                "available" => break,
                "pending" if started.elapsed() < limit => pause(COPY_POLL).await?,
                "pending" => {
                    return Err(Error::user(format!("distribute: copy {copy} in {region} is still pending after {}s", limit.as_secs()))
                        .with_hint("bake again later: the copy is found and waited for, not made twice"))
                }
                other => {
                    return Err(Error::user(format!("distribute: copy {copy} in {region} is {other}"))
                        .with_hint("see its state reason: aws ec2 describe-images --region REGION --image-ids AMI; `parbake gc` removes a failed copy"))
                }
            }
        }
    }
    Ok(())
}

/// Sleeps `d`, or returns Interrupted at Ctrl-C.
async fn pause(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if crate::interrupt::interrupted() {
            return Err(Error::Interrupted);
        }
        tokio::time::sleep(Duration::from_millis(250).min(until - Instant::now())).await;
    }
    Ok(())
}
