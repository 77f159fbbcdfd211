//! Wiring for AWS: configuration read once from the environment, SDK clients built once,
//! and the adapters behind the ports.

use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::eventbridge::EventBridgePublisher;
use crate::adapters::kms::KmsSealer;
use crate::oauth::{http_client, ProviderHttp};
use crate::ports::{EventPublisher, Sealer, Store, SystemClock};
use crate::service::{Service, ServiceParts};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("the HTTP client could not be built")]
    Http(#[source] reqwest::Error),
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// The AWS resources of the contract: `TABLE_NAME`, `KMS_KEY_ID`, `EVENT_BUS_NAME`,
/// `EVENT_SOURCE` (default `bot-integrations`).
#[derive(Debug, Clone)]
pub struct AwsResources {
    pub table: String,
    pub kms_key_id: String,
    pub event_bus: String,
    pub event_source: String,
}

impl AwsResources {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: required("TABLE_NAME")?,
            kms_key_id: required("KMS_KEY_ID")?,
            event_bus: required("EVENT_BUS_NAME")?,
            event_source: std::env::var("EVENT_SOURCE")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "bot-integrations".to_owned()),
        })
    }
}

/// Everything a Lambda function reads at start.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    pub resources: AwsResources,
    pub public_url: url::Url,
    pub admin_key_sha256: [u8; 32],
}

/// Parses `ADMIN_KEY_SHA256`: 64 hex characters.
pub fn parse_key_hash(name: &'static str, raw: &str) -> Result<[u8; 32], ConfigError> {
    hex::decode(raw.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or(ConfigError::Invalid {
            name,
            reason: "expected the SHA-256 of the key as 64 hex characters".into(),
        })
}

impl LambdaConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let public_url = required("PUBLIC_URL")?;
        Ok(Self {
            resources: AwsResources::from_env()?,
            public_url: url::Url::parse(&public_url).map_err(|e| ConfigError::Invalid {
                name: "PUBLIC_URL",
                reason: e.to_string(),
            })?,
            admin_key_sha256: parse_key_hash("ADMIN_KEY_SHA256", &required("ADMIN_KEY_SHA256")?)?,
        })
    }
}

/// The SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`
/// to point at an emulator). `app` names the binary in every request's User-Agent
/// (`app/<name>`), so AWS-side records tell the functions apart.
pub async fn sdk_config(app: &str) -> aws_config::SdkConfig {
    // Bounded waits: a function's timeout stays above everything it waits on.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .operation_attempt_timeout(std::time::Duration::from_secs(3))
        .operation_timeout(std::time::Duration::from_secs(8))
        .build();
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts);
    if let Ok(name) = aws_config::AppName::new(app.to_owned()) {
        loader = loader.app_name(name);
    }
    loader.load().await
}

/// The three AWS adapters, each with its SDK client built once.
pub fn adapters(
    sdk: &aws_config::SdkConfig,
    r: &AwsResources,
) -> (Arc<dyn Store>, Arc<dyn Sealer>, Arc<dyn EventPublisher>) {
    (
        Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &r.table,
        )),
        Arc::new(KmsSealer::new(aws_sdk_kms::Client::new(sdk), &r.kms_key_id)),
        Arc::new(EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(sdk),
            &r.event_bus,
            &r.event_source,
        )),
    )
}

/// The service as the Lambda function `function` runs it.
pub async fn lambda_service(
    config: &LambdaConfig,
    function: &str,
) -> Result<Arc<Service>, ConfigError> {
    let sdk = sdk_config(function).await;
    let (store, sealer, events) = adapters(&sdk, &config.resources);
    Ok(Arc::new(Service::new(ServiceParts {
        store,
        sealer,
        events,
        clock: Arc::new(SystemClock),
        http: ProviderHttp::new(http_client().map_err(ConfigError::Http)?),
        public_url: config.public_url.clone(),
        admin_key_sha256: config.admin_key_sha256,
    })))
}
