//! EC2 through aws-sdk-ec2: every call parbake makes, over HTTP to AWS or, in tests, to a
//! local moto server. The SDK client stays inside this wrapper: each call is a named method,
//! follows NextToken where EC2 pages, and maps failures through one error ([`Ec2::error`]).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{
    Filter, Image, InstanceStateName, InstanceType, ResourceType, Tag, TagSpecification,
};
use base64::Engine;

use super::ami::{newest, Ami};
use super::scope::Scope;
use super::sdk_error;
use crate::config::SourceAmi;
use crate::error::{Error, Result};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

pub struct Ec2 {
    pub(super) client: aws_sdk_ec2::Client,
    pub region: String,
}

/// Where to connect: AWS itself (default credential chain), or an endpoint such as moto.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// `PARBAKE_EC2_ENDPOINT`, e.g. `http://127.0.0.1:5000`.
    pub url: Option<String>,
    /// Static credentials (tests); None uses the default chain (env, profile, instance role).
    pub static_credentials: Option<(String, String)>,
}

impl Endpoint {
    pub fn from_env() -> Endpoint {
        Endpoint {
            url: std::env::var("PARBAKE_EC2_ENDPOINT")
                .ok()
                .filter(|s| !s.is_empty()),
            static_credentials: None,
        }
    }
}

/// An instance using one of the AMIs asked about (any state but terminated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUse {
    pub ami: String,
    pub instance_id: String,
    pub state: String,
}

/// A launch template version whose launch data names one of the AMIs asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    pub ami: String,
    /// The template's name (its id when it has none).
    pub template: String,
    pub version: i64,
    /// The version is the template's default (what a launch without a version uses).
    pub default: bool,
}

/// A builder instance parbake tagged (`parbake:expires-at`) that is still alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderInstance {
    pub instance_id: String,
    pub state: String,
    pub owner: String,
    pub run_id: String,
    pub expires_at: u64,
    /// The key pair it was started with (Packer's temporary one is `packer_<id>`).
    pub key_name: Option<String>,
    /// Its security groups, (id, name) (Packer's temporary one is `packer_<id>`).
    pub security_groups: Vec<(String, String)>,
}

/// A parbake-tagged resource whose `parbake:expires-at` has passed: an unattached builder
/// volume, or a claim key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub id: String,
    pub owner: String,
    pub run_id: String,
    pub expires_at: u64,
}

/// What RunInstances starts: one instance.
pub struct InstanceRequest<'a> {
    pub image_id: &'a str,
    pub instance_type: &'a str,
    pub subnet_id: Option<String>,
    /// Raw user-data (the wrapper base64-encodes it).
    pub user_data: &'a [u8],
    pub tags: &'a [(String, String)],
    /// `HttpTokens`: `required` (IMDSv2 only) or `optional`.
    pub http_tokens: &'a str,
    /// The IAM instance profile, by name.
    pub instance_profile: Option<&'a str>,
}

impl Ec2 {
    pub async fn connect(region: &str, endpoint: &Endpoint) -> Ec2 {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let mut conf = aws_sdk_ec2::config::Builder::from(&shared);
        if let Some(url) = &endpoint.url {
            conf = conf.endpoint_url(url);
        }
        if let Some((key, secret)) = &endpoint.static_credentials {
            conf = conf.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                key,
                secret,
                None,
                None,
                "parbake-static",
            ));
        }
        Ec2 {
            client: aws_sdk_ec2::Client::from_conf(conf.build()),
            region: region.to_string(),
        }
    }

    /// The raw SDK client. For tests only: they set up and inspect EC2 state parbake never
    /// creates itself (instances, launch templates). parbake's own calls are the methods here.
    pub fn sdk(&self) -> &aws_sdk_ec2::Client {
        &self.client
    }

    /// The one error for a failed EC2 call: the operation, the region, and the service's error
    /// code and message ([`sdk_error::describe`]: never the raw response), with a hint.
    pub(super) fn error<E>(&self, what: &str, e: SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let err = Error::user(format!(
            "EC2 {what} in {} failed: {}",
            self.region,
            sdk_error::describe(&e)
        ));
        if sdk_error::is_unreachable(&e) {
            return err.with_hint("check the network and the endpoint (PARBAKE_EC2_ENDPOINT, when set, replaces EC2's own)");
        }
        if !sdk_error::is_about_credentials(&e) {
            return err.with_hint(
                "EC2 refused the request itself, not the credentials: its error code above is in the EC2 API reference",
            );
        }
        err.with_hint("check the region, your AWS credentials and their permissions (docs/aws.md: IAM permissions)")
    }

    /// Every image matching the owners and filters, following NextToken.
    pub async fn describe_images(
        &self,
        owners: &[String],
        filters: Vec<Filter>,
    ) -> Result<Vec<Ami>> {
        let pages = self
            .client
            .describe_images()
            .set_owners((!owners.is_empty()).then(|| owners.to_vec()))
            .set_filters(Some(filters))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.error("DescribeImages", e))?;
        Ok(pages.iter().flat_map(|p| p.images()).map(ami_of).collect())
    }

    /// Every AMI parbake baked in this region (any layer, any state).
    pub async fn parbake_amis(&self) -> Result<Vec<Ami>> {
        self.describe_images(
            &["self".to_string()],
            vec![filter("tag-key", "parbake:layer-hash")],
        )
        .await
    }

    /// The newest AMI matching a source spec (owners, name pattern, architecture).
    pub async fn resolve_source_ami(&self, spec: &SourceAmi) -> Result<Ami> {
        let filters = vec![
            filter("name", &spec.name),
            filter("architecture", &spec.architecture),
            filter("state", "available"),
        ];
        let amis = self.describe_images(&spec.owners, filters).await?;
        newest(&amis).cloned().ok_or_else(|| {
            Error::user(format!(
                "no available AMI in {} matches name `{}`, architecture {}, owners {}",
                self.region,
                spec.name,
                spec.architecture,
                spec.owners.join(", ")
            ))
            .with_hint("check `sources.aws.source_ami` in the image file; `aws ec2 describe-images --owners OWNER --filters Name=name,Values=PATTERN` shows what exists")
        })
    }

    /// DescribeImages of one AMI id: None when it does not exist.
    pub(super) async fn described_image(
        &self,
        id: &str,
    ) -> Result<Option<aws_sdk_ec2::types::Image>> {
        let resp = self
            .client
            .describe_images()
            .image_ids(id)
            .send()
            .await
            .map_err(|e| self.error("DescribeImages", e))?;
        Ok(resp.images().first().cloned())
    }

    /// One AMI by id, with its tags.
    pub async fn image(&self, id: &str) -> Result<Ami> {
        self.described_image(id)
            .await?
            .as_ref()
            .map(ami_of)
            .ok_or_else(|| {
                Error::user(format!("AMI {id} does not exist in {}", self.region))
                    .with_hint("check the AMI id and the region of the image file's aws source")
            })
    }

    /// The EBS snapshots behind an AMI.
    pub async fn snapshots_of(&self, ami: &str) -> Result<Vec<String>> {
        Ok(self
            .described_image(ami)
            .await?
            .iter()
            .flat_map(|i| i.block_device_mappings())
            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(String::from))
            .collect())
    }

    /// This project's AMIs in this region carrying a layer hash (the cache lookup).
    pub async fn layer_amis(&self, scope: &Scope, layer_hash: &str) -> Result<Vec<Ami>> {
        self.scoped_amis(scope, "tag:parbake:layer-hash", layer_hash)
            .await
    }

    /// This project's AMIs that ran a layer's roles with this run hash (bakes and refreshes
    /// alike).
    pub async fn run_hash_amis(&self, scope: &Scope, run_hash: &str) -> Result<Vec<Ami>> {
        self.scoped_amis(scope, "tag:parbake:run-hash", run_hash)
            .await
    }

    /// This project's AMIs of a layer name, any hash (the earlier bakes of that layer).
    pub async fn named_layer_amis(&self, scope: &Scope, layer_name: &str) -> Result<Vec<Ami>> {
        self.scoped_amis(scope, "tag:parbake:layer", layer_name)
            .await
    }

    /// This project's AMIs (see [`Scope`]) with one tag filter.
    async fn scoped_amis(&self, scope: &Scope, name: &str, value: &str) -> Result<Vec<Ami>> {
        let mut filters = vec![filter(name, value)];
        filters.extend(scope.filters());
        let mut amis = self.describe_images(&["self".to_string()], filters).await?;
        amis.retain(|a| scope.holds(a));
        Ok(amis)
    }

    pub async fn deregister_image(&self, ami: &str) -> Result<()> {
        self.client
            .deregister_image()
            .image_id(ami)
            .send()
            .await
            .map_err(|e| self.error("DeregisterImage", e))?;
        Ok(())
    }

    pub async fn delete_snapshot(&self, snapshot: &str) -> Result<()> {
        self.client
            .delete_snapshot()
            .snapshot_id(snapshot)
            .send()
            .await
            .map_err(|e| self.error("DeleteSnapshot", e))?;
        Ok(())
    }

    /// Instances (any state but terminated or shutting down) launched from one of `amis`.
    pub async fn instances_using(&self, amis: &BTreeSet<String>) -> Result<Vec<InstanceUse>> {
        let pages = self
            .client
            .describe_instances()
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.error("DescribeInstances", e))?;
        let mut out = Vec::new();
        for i in pages
            .iter()
            .flat_map(|p| p.reservations())
            .flat_map(|r| r.instances())
        {
            let state = i.state().and_then(|s| s.name()).map_or("", |n| n.as_str());
            if state == "terminated" || state == "shutting-down" {
                continue;
            }
            if let Some(ami) = i.image_id().filter(|a| amis.contains(*a)) {
                out.push(InstanceUse {
                    ami: ami.to_string(),
                    instance_id: i.instance_id().unwrap_or("?").to_string(),
                    state: state.to_string(),
                });
            }
        }
        Ok(out)
    }

    /// Every version of every launch template that names one of `amis` (EC2's filters are not
    /// relied on: each version is read).
    pub async fn launch_template_refs(&self, amis: &BTreeSet<String>) -> Result<Vec<TemplateRef>> {
        let pages = self
            .client
            .describe_launch_templates()
            .max_results(200)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.error("DescribeLaunchTemplates", e))?;
        let mut out = Vec::new();
        for lt in pages.iter().flat_map(|p| p.launch_templates()) {
            let id = lt.launch_template_id().unwrap_or_default();
            let template = lt.launch_template_name().unwrap_or(id);
            let versions = self
                .client
                .describe_launch_template_versions()
                .launch_template_id(id)
                .max_results(200)
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| self.error("DescribeLaunchTemplateVersions", e))?;
            for v in versions.iter().flat_map(|p| p.launch_template_versions()) {
                let ami = v.launch_template_data().and_then(|d| d.image_id());
                if let Some(ami) = ami.filter(|a| amis.contains(*a)) {
                    out.push(TemplateRef {
                        ami: ami.to_string(),
                        template: template.to_string(),
                        version: v.version_number().unwrap_or_default(),
                        default: v.default_version().unwrap_or(false),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Builder instances parbake tagged, alive (pending to stopped), whose expiry is before
    /// `now` (seconds since the epoch).
    pub async fn expired_builders(&self, now: u64) -> Result<Vec<BuilderInstance>> {
        let alive = Filter::builder()
            .name("instance-state-name")
            .values("pending")
            .values("running")
            .values("stopping")
            .values("stopped")
            .build();
        let pages = self
            .client
            .describe_instances()
            .filters(filter("tag-key", "parbake:expires-at"))
            .filters(alive)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.error("DescribeInstances", e))?;
        let mut out = Vec::new();
        for i in pages
            .iter()
            .flat_map(|p| p.reservations())
            .flat_map(|r| r.instances())
        {
            let tags: BTreeMap<String, String> = tags_of(i.tags());
            let tag = |k: &str| tags.get(k).cloned().unwrap_or_default();
            let Ok(expires_at) = tag("parbake:expires-at").parse::<u64>() else {
                continue;
            };
            if expires_at < now {
                out.push(BuilderInstance {
                    instance_id: i.instance_id().unwrap_or_default().to_string(),
                    state: i
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string())
                        .unwrap_or_default(),
                    owner: tag("parbake:owner"),
                    run_id: tag("parbake:run-id"),
                    expires_at,
                    key_name: i.key_name().map(String::from),
                    security_groups: i
                        .security_groups()
                        .iter()
                        .filter_map(|g| {
                            Some((g.group_id()?.to_string(), g.group_name()?.to_string()))
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    pub async fn terminate(&self, instance_ids: &[String]) -> Result<()> {
        self.client
            .terminate_instances()
            .set_instance_ids(Some(instance_ids.to_vec()))
            .send()
            .await
            .map_err(|e| self.error("TerminateInstances", e))?;
        Ok(())
    }

    /// RunInstances for one tagged instance; its id.
    pub async fn run_instance(&self, req: &InstanceRequest<'_>) -> Result<String> {
        let resp = self
            .client
            .run_instances()
            .image_id(req.image_id)
            .instance_type(InstanceType::from(req.instance_type))
            .min_count(1)
            .max_count(1)
            .user_data(base64::engine::general_purpose::STANDARD.encode(req.user_data))
            .tag_specifications(tag_spec(ResourceType::Instance, req.tags))
            .metadata_options(
                aws_sdk_ec2::types::InstanceMetadataOptionsRequest::builder()
                    .http_tokens(aws_sdk_ec2::types::HttpTokensState::from(req.http_tokens))
                    .http_endpoint(aws_sdk_ec2::types::InstanceMetadataEndpointState::Enabled)
                    .build(),
            )
            .set_subnet_id(req.subnet_id.clone())
            .set_iam_instance_profile(req.instance_profile.map(|name| {
                aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                    .name(name)
                    .build()
            }))
            .send()
            .await
            .map_err(|e| {
                self.error("RunInstances", e)
                    .with_hint("check the instance type and subnet in the image file's aws source")
            })?;
        Ok(resp
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .unwrap_or_default()
            .to_string())
    }

    /// The state of one instance (None while EC2 does not list it yet).
    pub async fn instance_state(&self, instance_id: &str) -> Result<Option<InstanceStateName>> {
        let resp = self
            .client
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| self.error("DescribeInstances", e))?;
        Ok(resp
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| i.state().and_then(|s| s.name()).cloned()))
    }

    /// The instance's latest console output, decoded (EC2 serves it base64-encoded, some
    /// minutes behind); empty when there is none yet.
    pub async fn console_output(&self, instance_id: &str) -> Result<String> {
        let out = self
            .client
            .get_console_output()
            .instance_id(instance_id)
            .latest(true)
            .send()
            .await
            .map_err(|e| self.error("GetConsoleOutput", e))?;
        Ok(out
            .output()
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default())
    }

    /// Claims a name across machines: CreateKeyPair fails on a duplicate name, atomically,
    /// so exactly one run holds `parbake-lock-<hash>` at a time. The key pair is tagged with
    /// the holder and an expiry, so a crashed run's claim can be taken over. False if held.
    pub async fn try_claim(&self, name: &str, tags: &[(String, String)]) -> Result<bool> {
        match self
            .client
            .create_key_pair()
            .key_name(name)
            .tag_specifications(tag_spec(ResourceType::KeyPair, tags))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error().and_then(|s| s.meta().code())
                    == Some("InvalidKeyPair.Duplicate") =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error("CreateKeyPair", e)),
        }
    }

    /// The tags of a claim (None once it is released).
    pub async fn claim_tags(&self, name: &str) -> Result<Option<BTreeMap<String, String>>> {
        let resp = self
            .client
            .describe_key_pairs()
            .filters(filter("key-name", name))
            .send()
            .await
            .map_err(|e| self.error("DescribeKeyPairs", e))?;
        Ok(resp.key_pairs().first().map(|k| tags_of(k.tags())))
    }

    /// Unattached volumes tagged `parbake:expires-at` before `now`: a killed bake's builder
    /// volumes (Packer tags them with the builder's run tags).
    pub async fn expired_volumes(&self, now: u64) -> Result<Vec<Expired>> {
        let pages = self
            .client
            .describe_volumes()
            .filters(filter("tag-key", "parbake:expires-at"))
            .filters(filter("status", "available"))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.error("DescribeVolumes", e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.volumes())
            .filter_map(|v| expired(v.volume_id()?, &tags_of(v.tags()), now))
            .collect())
    }

    /// Claim key pairs (`parbake-lock-*`) whose expiry has passed: their run died.
    pub async fn expired_claims(&self, now: u64) -> Result<Vec<Expired>> {
        let resp = self
            .client
            .describe_key_pairs()
            .filters(filter("key-name", "parbake-lock-*"))
            .send()
            .await
            .map_err(|e| self.error("DescribeKeyPairs", e))?;
        Ok(resp
            .key_pairs()
            .iter()
            .filter_map(|k| expired(k.key_name()?, &tags_of(k.tags()), now))
            .collect())
    }

    pub async fn delete_volume(&self, id: &str) -> Result<()> {
        self.client
            .delete_volume()
            .volume_id(id)
            .send()
            .await
            .map_err(|e| self.error("DeleteVolume", e))?;
        Ok(())
    }

    pub async fn delete_security_group(&self, id: &str) -> Result<()> {
        self.client
            .delete_security_group()
            .group_id(id)
            .send()
            .await
            .map_err(|e| self.error("DeleteSecurityGroup", e))?;
        Ok(())
    }

    pub async fn release_claim(&self, name: &str) -> Result<()> {
        self.client
            .delete_key_pair()
            .key_name(name)
            .send()
            .await
            .map_err(|e| self.error("DeleteKeyPair", e))?;
        Ok(())
    }

    /// CreateTags on one resource.
    /// A launch template by name, with every version, or None when there is none.
    pub async fn launch_template(&self, name: &str) -> Result<Option<LaunchTemplate>> {
        let found = self
            .client
            .describe_launch_templates()
            .filters(filter("launch-template-name", name))
            .send()
            .await
            .map_err(|e| self.error("DescribeLaunchTemplates", e))?;
        let Some(lt) = found
            .launch_templates()
            .iter()
            .find(|t| t.launch_template_name() == Some(name))
        else {
            return Ok(None);
        };
        let id = lt.launch_template_id().unwrap_or_default().to_string();
        let pages = self
            .client
            .describe_launch_template_versions()
            .launch_template_id(&id)
            .max_results(200)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.error("DescribeLaunchTemplateVersions", e))?;
        let mut versions: Vec<TemplateVersion> = pages
            .iter()
            .flat_map(|p| p.launch_template_versions())
            .map(|v| TemplateVersion {
                number: v.version_number().unwrap_or_default(),
                description: v.version_description().unwrap_or_default().to_string(),
                image_id: v
                    .launch_template_data()
                    .and_then(|d| d.image_id())
                    .map(String::from),
            })
            .collect();
        versions.sort_by_key(|v| v.number);
        Ok(Some(LaunchTemplate {
            id,
            name: name.to_string(),
            default_version: lt.default_version_number().unwrap_or_default(),
            versions,
            tags: tags_of(lt.tags()),
        }))
    }

    /// Adds a version to the launch template `existing`, based on its default version
    /// (`SourceVersion`: every setting of the fleet's, such as security groups, instance
    /// profile and metadata options, carries over) with the AMI and the user-data replaced;
    /// or creates the template `name` with the AMI, the user-data and the instance type as
    /// version 1 when there is none (tagged `tags`). Returns the template's id and the version.
    pub async fn add_launch_template_version(
        &self,
        name: &str,
        existing: Option<&LaunchTemplate>,
        v: &NewTemplateVersion<'_>,
        tags: &[(String, String)],
    ) -> Result<(String, i64)> {
        if let Some(t) = existing {
            let id = t.id.as_str();
            let out = self
                .client
                .create_launch_template_version()
                .launch_template_id(id)
                .source_version(t.default_version.to_string())
                .version_description(v.description)
                .launch_template_data(version_data(v))
                .send()
                .await
                .map_err(|e| self.error("CreateLaunchTemplateVersion", e))?;
            let number = out
                .launch_template_version()
                .and_then(|x| x.version_number())
                .ok_or_else(|| {
                    Error::Internal("CreateLaunchTemplateVersion gave no version".into())
                })?;
            return Ok((id.to_string(), number));
        }
        let out = self
            .client
            .create_launch_template()
            .launch_template_name(name)
            .version_description(v.description)
            .launch_template_data(template_data(v))
            .tag_specifications(tag_spec(ResourceType::LaunchTemplate, tags))
            .send()
            .await
            .map_err(|e| self.error("CreateLaunchTemplate", e))?;
        let lt = out
            .launch_template()
            .ok_or_else(|| Error::Internal("CreateLaunchTemplate gave no template".into()))?;
        Ok((
            lt.launch_template_id().unwrap_or_default().to_string(),
            lt.latest_version_number().unwrap_or(1),
        ))
    }

    /// Asks EC2, with DryRun, whether a publish may add a version to `existing` (or create the
    /// template `name`) and move its default: nothing changes, and a refusal (permissions, a
    /// bad instance type) comes before anything has moved.
    pub async fn check_publish(
        &self,
        name: &str,
        existing: Option<&LaunchTemplate>,
        v: &NewTemplateVersion<'_>,
    ) -> Result<()> {
        let Some(t) = existing else {
            let r = self
                .client
                .create_launch_template()
                .dry_run(true)
                .launch_template_name(name)
                .launch_template_data(template_data(v))
                .send()
                .await;
            return self.dry_run("CreateLaunchTemplate", r);
        };
        let r = self
            .client
            .create_launch_template_version()
            .dry_run(true)
            .launch_template_id(&t.id)
            .source_version(t.default_version.to_string())
            .launch_template_data(version_data(v))
            .send()
            .await;
        self.dry_run("CreateLaunchTemplateVersion", r)?;
        self.check_set_default(t).await
    }

    /// Asks EC2, with DryRun, whether the template's default may be moved.
    pub async fn check_set_default(&self, t: &LaunchTemplate) -> Result<()> {
        let r = self
            .client
            .modify_launch_template()
            .dry_run(true)
            .launch_template_id(&t.id)
            .default_version(t.default_version.to_string())
            .send()
            .await;
        self.dry_run("ModifyLaunchTemplate", r)
    }

    /// A DryRun call's verdict: EC2 answers `DryRunOperation` when the call would succeed.
    fn dry_run<T, E>(&self, what: &str, r: Result<T, SdkError<E>>) -> Result<()>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("DryRunOperation") => Ok(()),
            Err(e) => Err(self.error(&format!("{what} (DryRun)"), e)),
        }
    }

    /// Deletes a launch template with all its versions.
    pub async fn delete_launch_template(&self, template_id: &str) -> Result<()> {
        self.client
            .delete_launch_template()
            .launch_template_id(template_id)
            .send()
            .await
            .map_err(|e| self.error("DeleteLaunchTemplate", e))?;
        Ok(())
    }

    /// Deletes one version (not the default: EC2 refuses that). EC2 answers per version, with
    /// HTTP 200 either way, so a version it did not delete is an error here.
    pub async fn delete_launch_template_version(
        &self,
        template_id: &str,
        version: i64,
    ) -> Result<()> {
        let out = self
            .client
            .delete_launch_template_versions()
            .launch_template_id(template_id)
            .versions(version.to_string())
            .send()
            .await
            .map_err(|e| self.error("DeleteLaunchTemplateVersions", e))?;
        let deleted = out
            .successfully_deleted_launch_template_versions()
            .iter()
            .any(|d| d.version_number() == Some(version));
        if deleted {
            return Ok(());
        }
        let why = out
            .unsuccessfully_deleted_launch_template_versions()
            .iter()
            .find_map(|u| u.response_error())
            .map(|r| {
                format!(
                    "{}: {}",
                    r.code().map_or("?", |c| c.as_str()),
                    sdk_error::clean(r.message().unwrap_or_default(), 400)
                )
            })
            .unwrap_or_else(|| "it was not in the answer".into());
        Err(Error::user(format!(
            "EC2 DeleteLaunchTemplateVersions in {} did not delete version {version} of {template_id}: {why}",
            self.region
        )))
    }

    /// Makes `version` the launch template's default.
    pub async fn set_default_version(&self, template_id: &str, version: i64) -> Result<()> {
        self.client
            .modify_launch_template()
            .launch_template_id(template_id)
            .default_version(version.to_string())
            .send()
            .await
            .map_err(|e| self.error("ModifyLaunchTemplate", e))?;
        Ok(())
    }

    /// Removes these tag keys from a resource.
    pub async fn untag(&self, id: &str, keys: &[&str]) -> Result<()> {
        self.client
            .delete_tags()
            .resources(id)
            .set_tags(Some(
                keys.iter()
                    .map(|k| Tag::builder().key(*k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| self.error("DeleteTags", e))?;
        Ok(())
    }

    pub async fn tag(&self, id: &str, tags: &[(String, String)]) -> Result<()> {
        self.client
            .create_tags()
            .resources(id)
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| self.error("CreateTags", e))?;
        Ok(())
    }
}

/// The production settings' calls (issue 28): the root device a `volume:` applies to, IMDSv2
/// on an AMI, and the user's tags re-applied to a cached AMI and its snapshots.
impl Ec2 {
    /// The root device name of an AMI (`/dev/xvda`), and whether it requires IMDSv2
    /// (`ImdsSupport` is `v2.0`).
    pub async fn root_device_and_imds(&self, ami: &str) -> Result<(String, bool)> {
        let described = self.described_image(ami).await?;
        let image = described.as_ref().ok_or_else(|| {
            Error::user(format!("AMI {ami} does not exist in {}", self.region))
                .with_hint("it was deregistered since this run looked: run the bake again")
        })?;
        Ok((
            image.root_device_name().unwrap_or("/dev/xvda").to_string(),
            image.imds_support().map(|v| v.as_str()) == Some("v2.0"),
        ))
    }

    /// ModifyImageAttribute `ImdsSupport = v2.0`: instances launched from the AMI require
    /// IMDSv2 by default. EC2 cannot undo it on that AMI.
    pub async fn require_imdsv2(&self, ami: &str) -> Result<()> {
        self.client
            .modify_image_attribute()
            .image_id(ami)
            .imds_support(
                aws_sdk_ec2::types::AttributeValue::builder()
                    .value("v2.0")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                self.error("ModifyImageAttribute (ImdsSupport)", e)
                    .with_hint("parbake needs ec2:ModifyImageAttribute; or set `imds: optional` in the image's aws source")
            })?;
        Ok(())
    }

    /// CreateTags on several resources at once (an AMI and its snapshots).
    pub async fn tag_all(&self, ids: &[String], tags: &[(String, String)]) -> Result<()> {
        if ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        self.client
            .create_tags()
            .set_resources(Some(ids.to_vec()))
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| self.error("CreateTags", e))?;
        Ok(())
    }
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_spec(resource: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(sdk_tags(tags)))
        .build()
}

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

/// The lifecycle calls (issue 27): deprecation, deregistration protection, deregistering
/// with the snapshots, last launch time, the Allowed AMIs settings. moto 5.2.5 has none of
/// them; tests/parbake/moto/lifecycle.rs checks each against EC2's documented shapes.
impl Ec2 {
    /// EnableImageDeprecation: from `at` (seconds since the epoch) the AMI is deprecated.
    pub async fn deprecate(&self, ami: &str, at: u64) -> Result<()> {
        let at =
            aws_sdk_ec2::primitives::DateTime::from_secs(i64::try_from(at).unwrap_or(i64::MAX));
        self.client
            .enable_image_deprecation()
            .image_id(ami)
            .deprecate_at(at)
            .send()
            .await
            .map_err(|e| {
                self.error("EnableImageDeprecation", e)
                    .with_hint("parbake needs ec2:EnableImageDeprecation for `deprecate_after`")
            })?;
        Ok(())
    }

    /// EnableImageDeregistrationProtection, without the 24-hour cooldown, so that protection
    /// can move with the next publish or rollback and prune may remove the AMI afterwards.
    pub async fn protect(&self, ami: &str) -> Result<()> {
        self.client
            .enable_image_deregistration_protection()
            .image_id(ami)
            .with_cooldown(false)
            .send()
            .await
            .map_err(|e| {
                self.error("EnableImageDeregistrationProtection", e).with_hint(
                    "parbake needs ec2:EnableImageDeregistrationProtection to protect what a stack publishes",
                )
            })?;
        Ok(())
    }

    /// DisableImageDeregistrationProtection.
    pub async fn unprotect(&self, ami: &str) -> Result<()> {
        self.client
            .disable_image_deregistration_protection()
            .image_id(ami)
            .send()
            .await
            .map_err(|e| {
                self.error("DisableImageDeregistrationProtection", e).with_hint(
                    "parbake needs ec2:DisableImageDeregistrationProtection to move protection off what a stack no longer publishes",
                )
            })?;
        Ok(())
    }

    /// DeregisterImage with `DeleteAssociatedSnapshots`: snapshot → the return code EC2 reports
    /// for it (`success`, `skipped`, `missing-permissions`, …). EC2 skips a snapshot another
    /// AMI also uses; an endpoint without the parameter (moto 5.2.5) reports none.
    pub async fn deregister_with_snapshots(&self, ami: &str) -> Result<BTreeMap<String, String>> {
        let out = self
            .client
            .deregister_image()
            .image_id(ami)
            .delete_associated_snapshots(true)
            .send()
            .await
            .map_err(|e| self.error("DeregisterImage", e))?;
        Ok(out
            .delete_snapshot_results()
            .iter()
            .filter_map(|r| {
                let code = r.return_code().map_or("", |c| c.as_str());
                Some((r.snapshot_id()?.to_string(), code.to_string()))
            })
            .collect())
    }

    /// DescribeImageAttribute `lastLaunchedTime`: when an instance was last launched from the
    /// AMI (ISO 8601; EC2 updates it within 24 hours), None when never or not recorded.
    pub async fn last_launched(&self, ami: &str) -> Result<Option<String>> {
        let out = self
            .client
            .describe_image_attribute()
            .image_id(ami)
            .attribute(aws_sdk_ec2::types::ImageAttributeName::LastLaunchedTime)
            .send()
            .await
            .map_err(|e| self.error("DescribeImageAttribute (lastLaunchedTime)", e))?;
        Ok(out
            .last_launched_time()
            .and_then(|v| v.value())
            .filter(|v| !v.is_empty())
            .map(String::from))
    }

    /// GetAllowedImagesSettings: the account's Allowed AMIs state and criteria in this region.
    pub async fn allowed_images(&self) -> Result<super::lifecycle::AllowedImages> {
        let out = self
            .client
            .get_allowed_images_settings()
            .send()
            .await
            .map_err(|e| self.error("GetAllowedImagesSettings", e))?;
        let criteria = out
            .image_criteria()
            .iter()
            .map(|c| super::lifecycle::Criterion {
                providers: c.image_providers().to_vec(),
                names: c.image_names().to_vec(),
                marketplace_codes: c.marketplace_product_codes().to_vec(),
                max_days_since_created: c
                    .creation_date_condition()
                    .and_then(|d| d.maximum_days_since_created()),
                max_days_since_deprecated: c
                    .deprecation_time_condition()
                    .and_then(|d| d.maximum_days_since_deprecated()),
            })
            .collect();
        Ok(super::lifecycle::AllowedImages {
            state: out.state().unwrap_or("disabled").to_string(),
            criteria,
            managed_by: out.managed_by().map(|m| m.as_str().to_string()),
        })
    }
}

/// A launch template and its versions, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchTemplate {
    pub id: String,
    pub name: String,
    pub default_version: i64,
    pub versions: Vec<TemplateVersion>,
    /// The template's own tags (a template parbake created has `parbake:stack`).
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateVersion {
    pub number: i64,
    pub description: String,
    pub image_id: Option<String>,
}

/// What a published launch template version holds.
pub struct NewTemplateVersion<'a> {
    pub image_id: &'a str,
    pub instance_type: &'a str,
    pub user_data: &'a [u8],
    pub description: &'a str,
    /// `HttpTokens` of a template parbake creates; a version of an existing template keeps
    /// the fleet's metadata options.
    pub http_tokens: &'a str,
    /// The instance profile of a template parbake creates; likewise kept from the fleet's.
    pub instance_profile: Option<&'a str>,
    /// The user's tags for the instances and volumes a template parbake creates launches
    /// (empty: none); likewise kept from the fleet's.
    pub tags: &'a [(String, String)],
}

/// What a version based on the fleet's default replaces: the AMI and the user-data. The
/// instance type stays the fleet's.
fn version_data(v: &NewTemplateVersion<'_>) -> aws_sdk_ec2::types::RequestLaunchTemplateData {
    aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
        .image_id(v.image_id)
        .user_data(base64::engine::general_purpose::STANDARD.encode(v.user_data))
        .build()
}

/// The launch data of a template parbake creates: the AMI, the instance type, the user-data,
/// and the metadata options (IMDSv2 only unless the source says `imds: optional`).
fn template_data(v: &NewTemplateVersion<'_>) -> aws_sdk_ec2::types::RequestLaunchTemplateData {
    use aws_sdk_ec2::types::{
        LaunchTemplateHttpTokensState, LaunchTemplateInstanceMetadataEndpointState,
        LaunchTemplateInstanceMetadataOptionsRequest,
    };
    aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
        .image_id(v.image_id)
        .instance_type(InstanceType::from(v.instance_type))
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::from(v.http_tokens))
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .build(),
        )
        .set_iam_instance_profile(v.instance_profile.map(|name| {
            aws_sdk_ec2::types::LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .name(name)
                .build()
        }))
        .user_data(base64::engine::general_purpose::STANDARD.encode(v.user_data))
        .set_tag_specifications(launched_tags(v.tags))
        .build()
}

/// The tag specifications of a created template: the user's tags on each instance and volume
/// it launches; None without tags.
fn launched_tags(
    tags: &[(String, String)],
) -> Option<Vec<aws_sdk_ec2::types::LaunchTemplateTagSpecificationRequest>> {
    (!tags.is_empty()).then(|| {
        [ResourceType::Instance, ResourceType::Volume]
            .into_iter()
            .map(|r| {
                aws_sdk_ec2::types::LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(r)
                    .set_tags(Some(sdk_tags(tags)))
                    .build()
            })
            .collect()
    })
}

/// `id` as an [`Expired`] when its `parbake:expires-at` tag is before `now`.
fn expired(id: &str, tags: &BTreeMap<String, String>, now: u64) -> Option<Expired> {
    let expires_at: u64 = tags.get("parbake:expires-at")?.parse().ok()?;
    (expires_at < now).then(|| Expired {
        id: id.to_string(),
        owner: tags.get("parbake:owner").cloned().unwrap_or_default(),
        run_id: tags.get("parbake:run-id").cloned().unwrap_or_default(),
        expires_at,
    })
}

pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn ami_of(i: &Image) -> Ami {
    Ami {
        id: i.image_id().unwrap_or_default().to_string(),
        name: i.name().unwrap_or_default().to_string(),
        creation_date: i.creation_date().unwrap_or_default().to_string(),
        architecture: i
            .architecture()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default(),
        owner: i.owner_id().unwrap_or_default().to_string(),
        state: i
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        tags: tags_of(i.tags()),
        size_gib: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|e| e.volume_size()))
            .map(i64::from)
            .sum(),
        lifecycle: super::lifecycle::ImageLifecycle::of(i),
    }
}
