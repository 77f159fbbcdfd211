//! The AWS backend: DynamoDB, KMS and EventBridge, each SDK client built once.

use super::{assemble, provider_client, WiringError};
use crate::adapters::aws_http::sdk_http_client;
use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::eventbridge::EventBridgePublisher;
use crate::adapters::kms::KmsSealer;
use crate::config::{AwsResources, Config};
use crate::ports::{Sealer, Store};
use crate::service::Service;
use std::sync::Arc;

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
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .http_client(sdk_http_client());
    if let Ok(name) = aws_config::AppName::new(app.to_owned()) {
        loader = loader.app_name(name);
    }
    loader.load().await
}

/// The store and the sealer. Events are written to the table's outbox; the `event-relay`
/// function delivers them from the table's stream ([`relay`]).
pub fn adapters(
    sdk: &aws_config::SdkConfig,
    r: &AwsResources,
) -> (Arc<dyn Store>, Arc<dyn Sealer>) {
    (
        Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &r.table,
        )),
        Arc::new(KmsSealer::new(aws_sdk_kms::Client::new(sdk), &r.kms_key_id)),
    )
}

/// What the `event-relay` function needs: the table (to mark delivered outbox items) and the
/// bus.
pub async fn relay(config: &crate::config::RelayConfig) -> (DynamoStore, EventBridgePublisher) {
    let sdk = sdk_config("event-relay").await;
    (
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table),
        EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            &config.event_bus,
            &config.event_source,
        ),
    )
}

/// The service on AWS, as the binary `app` runs it.
pub async fn service(
    config: &Config,
    resources: &AwsResources,
    app: &str,
) -> Result<Service, WiringError> {
    let sdk = sdk_config(app).await;
    let (store, sealer) = adapters(&sdk, resources);
    Ok(assemble(
        config,
        store,
        sealer,
        provider_client(config.outbound)?,
    ))
}
