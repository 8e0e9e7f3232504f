//! EC2 through aws-sdk-ec2: the real calls parbake makes, over HTTP to AWS or, in tests, to a
//! local moto server.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, Image};

use super::ami::{newest, Ami};
use crate::config::SourceAmi;
use crate::error::{Error, Result};

pub struct Ec2 {
    pub client: aws_sdk_ec2::Client,
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

fn sdk_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::user(format!("EC2 {what} failed: {e}")).with_hint(
        "check the region, your AWS credentials and their permissions (README: IAM permissions)",
    )
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

    /// Every image matching the owners and filters, following NextToken.
    pub async fn describe_images(
        &self,
        owners: &[String],
        filters: Vec<Filter>,
    ) -> Result<Vec<Ami>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .describe_images()
                .set_owners((!owners.is_empty()).then(|| owners.to_vec()))
                .set_filters(Some(filters.clone()))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    sdk_error("DescribeImages", aws_sdk_ec2::error::DisplayErrorContext(e))
                })?;
            out.extend(resp.images().iter().map(ami_of));
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
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

    /// One AMI by id, with its tags.
    pub async fn image(&self, id: &str) -> Result<Ami> {
        let resp = self
            .client
            .describe_images()
            .image_ids(id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeImages", aws_sdk_ec2::error::DisplayErrorContext(e)))?;
        resp.images().first().map(ami_of).ok_or_else(|| {
            Error::user(format!("AMI {id} does not exist in {}", self.region))
                .with_hint("check the AMI id and the region of the image file's aws source")
        })
    }

    /// parbake AMIs in this region carrying a layer hash (the cache lookup).
    pub async fn layer_amis(&self, layer_hash: &str) -> Result<Vec<Ami>> {
        self.describe_images(
            &["self".to_string()],
            vec![filter("tag:parbake:layer-hash", layer_hash)],
        )
        .await
    }

    /// parbake AMIs of a layer name, any hash (the earlier bakes of that layer).
    pub async fn named_layer_amis(&self, layer_name: &str) -> Result<Vec<Ami>> {
        self.describe_images(
            &["self".to_string()],
            vec![filter("tag:parbake:layer", layer_name)],
        )
        .await
    }

    /// Claims a name across machines: CreateKeyPair fails on a duplicate name, atomically,
    /// so exactly one run holds `parbake-lock-<hash>` at a time. The key pair is tagged with
    /// the holder and an expiry, so a crashed run's claim can be taken over. False if held.
    pub async fn try_claim(&self, name: &str, tags: &[(String, String)]) -> Result<bool> {
        let spec = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::KeyPair)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build();
        match self
            .client
            .create_key_pair()
            .key_name(name)
            .tag_specifications(spec)
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
            Err(e) => Err(sdk_error(
                "CreateKeyPair",
                aws_sdk_ec2::error::DisplayErrorContext(e),
            )),
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
            .map_err(|e| {
                sdk_error(
                    "DescribeKeyPairs",
                    aws_sdk_ec2::error::DisplayErrorContext(e),
                )
            })?;
        Ok(resp.key_pairs().first().map(|k| {
            k.tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect()
        }))
    }

    pub async fn release_claim(&self, name: &str) -> Result<()> {
        self.client
            .delete_key_pair()
            .key_name(name)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteKeyPair", aws_sdk_ec2::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    /// CreateTags on one resource.
    pub async fn tag(&self, id: &str, tags: &[(String, String)]) -> Result<()> {
        let tags = tags
            .iter()
            .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
            .collect();
        self.client
            .create_tags()
            .resources(id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| sdk_error("CreateTags", aws_sdk_ec2::error::DisplayErrorContext(e)))?;
        Ok(())
    }
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
        tags: i
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect::<BTreeMap<_, _>>(),
        size_gib: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|e| e.volume_size()))
            .map(i64::from)
            .sum(),
    }
}
