//! The SSM calls parbake makes: the published AMI id of a stack in a parameter
//! (`publish: {ssm_parameter: /name}`), as Bottlerocket and EKS publish theirs, so a fleet that
//! resolves `resolve:ssm:/name` follows publish and rollback.

use aws_sdk_ssm::types::ParameterType;

use super::ec2::Endpoint;
use super::sdk_error;
use crate::error::{Error, Result};
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};

pub struct Ssm {
    client: aws_sdk_ssm::Client,
    region: String,
}

impl Ssm {
    pub async fn connect(region: &str, endpoint: &Endpoint) -> Ssm {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let mut conf = aws_sdk_ssm::config::Builder::from(&shared);
        if let Some(url) = &endpoint.url {
            conf = conf.endpoint_url(url);
        }
        if let Some((key, secret)) = &endpoint.static_credentials {
            conf = conf.credentials_provider(aws_sdk_ssm::config::Credentials::new(
                key,
                secret,
                None,
                None,
                "parbake-static",
            ));
        }
        Ssm {
            client: aws_sdk_ssm::Client::from_conf(conf.build()),
            region: region.to_string(),
        }
    }

    /// The one error for a failed SSM call, as [`super::ec2::Ec2`]'s: the service's code and
    /// message ([`sdk_error::describe`]), never the raw response.
    fn error<E>(&self, call: &str, e: SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let err = Error::user(format!(
            "SSM {call} in {} failed: {}",
            self.region,
            sdk_error::describe(&e)
        ));
        if sdk_error::is_unreachable(&e) {
            return err.with_hint("check the network and the endpoint (PARBAKE_EC2_ENDPOINT, when set, serves SSM too)");
        }
        if !sdk_error::is_about_credentials(&e) {
            return err.with_hint(
                "SSM refused the request itself, not the credentials: its error code above is in the SSM API reference",
            );
        }
        err.with_hint(
            "check the credentials and that they allow ssm:GetParameter and ssm:PutParameter",
        )
    }

    /// The parameter's value, or None when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<String>> {
        match self.client.get_parameter().name(name).send().await {
            Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(String::from)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found()) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error("GetParameter", e)),
        }
    }

    /// Sets the parameter to an AMI id (data type `aws:ec2:image`); its new version.
    pub async fn put_ami(&self, name: &str, ami: &str) -> Result<i64> {
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(ami)
            .r#type(ParameterType::String)
            .data_type("aws:ec2:image")
            .overwrite(true)
            .send()
            .await
            .map_err(|e| self.error("PutParameter", e))?;
        Ok(out.version())
    }
}
