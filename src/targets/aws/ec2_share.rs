//! The EC2 calls of distribution (issue 27): CopyImage into another region with its own KMS
//! key, launch and create-volume permissions, and what the preflight reads (the snapshots'
//! encryption, EBS encryption by default, image block public access).

use aws_sdk_ec2::types::{
    LaunchPermission, LaunchPermissionModifications, OperationType, PermissionGroup,
    SnapshotAttributeName,
};

use super::ami::Ami;
use super::ec2::{filter, Ec2};
use crate::error::{Error, Result};

/// Who an AMI is shared with.
#[derive(Debug, Clone, Default)]
pub struct Share {
    pub accounts: Vec<String>,
    pub organizational_units: Vec<String>,
    pub public: bool,
}

impl Share {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.organizational_units.is_empty() && !self.public
    }
}

/// One snapshot's encryption: its id and, when encrypted, its KMS key (as EC2 names it).
#[derive(Debug, Clone)]
pub struct SnapshotKey {
    pub id: String,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
}

impl Ec2 {
    /// CopyImage of `source` (in `source_region`) into this region, named `name`; with a key,
    /// `Encrypted=true` and that `KmsKeyId`. The new AMI's id (pending until EC2 copies it).
    pub async fn copy_image(
        &self,
        name: &str,
        source_region: &str,
        source: &str,
        kms_key_id: Option<&str>,
    ) -> Result<String> {
        let out = self
            .client
            .copy_image()
            .name(name)
            .source_region(source_region)
            .source_image_id(source)
            .set_encrypted(kms_key_id.map(|_| true))
            .set_kms_key_id(kms_key_id.map(String::from))
            .send()
            .await
            .map_err(|e| {
                self.error("CopyImage", e).with_hint(
                    "parbake needs ec2:CopyImage, and with `kms_key_id` kms:CreateGrant, kms:Decrypt, kms:ReEncrypt* and kms:GenerateDataKeyWithoutPlaintext on the key",
                )
            })?;
        out.image_id()
            .map(String::from)
            .ok_or_else(|| Error::Internal("CopyImage returned no image id".into()))
    }

    /// The copies of `source` (tagged `parbake:copy-of`) in this region, any state.
    pub async fn copies_of(&self, source: &str) -> Result<Vec<Ami>> {
        let filters = vec![filter("tag:parbake:copy-of", source)];
        self.describe_images(&["self".to_string()], filters).await
    }

    /// ModifyImageAttribute LaunchPermission Add: the accounts, OUs and (public) `all`.
    pub async fn share_image(&self, ami: &str, share: &Share) -> Result<()> {
        let mut add: Vec<LaunchPermission> = share
            .accounts
            .iter()
            .map(|a| LaunchPermission::builder().user_id(a).build())
            .collect();
        add.extend(share.organizational_units.iter().map(|o| {
            LaunchPermission::builder()
                .organizational_unit_arn(o)
                .build()
        }));
        if share.public {
            add.push(
                LaunchPermission::builder()
                    .group(PermissionGroup::All)
                    .build(),
            );
        }
        let mods = LaunchPermissionModifications::builder()
            .set_add(Some(add))
            .build();
        self.client
            .modify_image_attribute()
            .image_id(ami)
            .launch_permission(mods)
            .send()
            .await
            .map_err(|e| {
                self.error("ModifyImageAttribute (LaunchPermission)", e)
                    .with_hint("parbake needs ec2:ModifyImageAttribute; a public share also needs image block public access off in the region")
            })?;
        Ok(())
    }

    /// ModifySnapshotAttribute createVolumePermission Add for the accounts.
    pub async fn share_snapshot(&self, snapshot: &str, accounts: &[String]) -> Result<()> {
        // the `UserIds` form (EC2 takes it and the structured one alike; moto 5.2.5 reads only it)
        self.client
            .modify_snapshot_attribute()
            .snapshot_id(snapshot)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .operation_type(OperationType::Add)
            .set_user_ids(Some(accounts.to_vec()))
            .send()
            .await
            .map_err(|e| {
                self.error("ModifySnapshotAttribute (createVolumePermission)", e)
                    .with_hint("parbake needs ec2:ModifySnapshotAttribute")
            })?;
        Ok(())
    }

    /// DescribeSnapshots: each snapshot's encryption and key.
    pub async fn snapshot_keys(&self, ids: &[String]) -> Result<Vec<SnapshotKey>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .describe_snapshots()
            .set_snapshot_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| self.error("DescribeSnapshots", e))?;
        Ok(out
            .snapshots()
            .iter()
            .map(|s| SnapshotKey {
                id: s.snapshot_id().unwrap_or_default().to_string(),
                encrypted: s.encrypted().unwrap_or(false),
                kms_key_id: s.kms_key_id().map(String::from),
            })
            .collect())
    }

    /// GetEbsEncryptionByDefault: whether new volumes (and copies) here are encrypted with
    /// the region's default EBS key unless told otherwise.
    pub async fn encrypts_by_default(&self) -> Result<bool> {
        let out = self
            .client
            .get_ebs_encryption_by_default()
            .send()
            .await
            .map_err(|e| self.error("GetEbsEncryptionByDefault", e))?;
        Ok(out.ebs_encryption_by_default().unwrap_or(false))
    }

    /// GetImageBlockPublicAccessState: `unblocked` or `block-new-sharing`.
    pub async fn image_block_public_access(&self) -> Result<String> {
        let out = self
            .client
            .get_image_block_public_access_state()
            .send()
            .await
            .map_err(|e| {
                self.error("GetImageBlockPublicAccessState", e).with_hint(
                    "parbake needs ec2:GetImageBlockPublicAccessState for `public: true`",
                )
            })?;
        Ok(out
            .image_block_public_access_state()
            .unwrap_or("unblocked")
            .to_string())
    }
}
