//! The one place each backend is assembled into a [`Service`]: the binaries, the tests and
//! the benchmark all build it here.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "embedded")]
pub mod embedded;

use crate::adapters::oauth::ProviderHttp;
use crate::config::Config;
use crate::domain::network::OutboundPolicy;
use crate::ports::{ProviderClient, Sealer, Store, SystemClock};
use crate::service::{Service, ServiceParts};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("the HTTP client could not be built")]
    Http(#[source] reqwest::Error),
    #[error("cannot open the database {path}")]
    Database {
        path: String,
        #[source]
        source: crate::ports::StoreError,
    },
    #[cfg(feature = "embedded")]
    #[error(transparent)]
    KeyFile(#[from] crate::adapters::local_key::KeyFileError),
    #[error("this binary was built without the AWS backend (feature \"aws\")")]
    NoAws,
    #[error("this binary was built without the embedded backend (feature \"embedded\"): set TABLE_NAME and KMS_KEY_ID for AWS")]
    NoEmbedded,
}

/// The provider client every backend uses: one HTTP client for all provider calls, held to
/// the outbound policy.
pub fn provider_client(policy: OutboundPolicy) -> Result<Arc<dyn ProviderClient>, WiringError> {
    Ok(Arc::new(ProviderHttp::lazy(policy)))
}

/// The HTTP client for the operator's own webhook, which may well live on a private network.
pub fn webhook_client() -> Result<reqwest::Client, WiringError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(WiringError::Http)
}

/// A service on the given adapters, with the system clock.
pub fn assemble(
    config: &Config,
    store: Arc<dyn Store>,
    sealer: Arc<dyn Sealer>,
    provider: Arc<dyn ProviderClient>,
) -> Service {
    Service::new(ServiceParts {
        store,
        sealer,
        clock: Arc::new(SystemClock),
        provider,
        public_url: config.public_url.clone(),
        admin_key: config.admin_key,
        outbound: config.outbound,
        upkeep: config.upkeep,
        proxy_limits: config.proxy,
    })
}

/// The service on the backend `config` names; `app` names the binary to AWS.
pub async fn service(config: &Config, app: &str) -> Result<Service, WiringError> {
    match &config.backend {
        #[cfg(feature = "embedded")]
        crate::config::Backend::Embedded { data_dir } => embedded::service(data_dir, config),
        #[cfg(not(feature = "embedded"))]
        crate::config::Backend::Embedded { .. } => Err(WiringError::NoEmbedded),
        #[cfg(feature = "aws")]
        crate::config::Backend::Aws(resources) => aws::service(config, resources, app).await,
        #[cfg(not(feature = "aws"))]
        crate::config::Backend::Aws(_) => {
            let _ = app;
            Err(WiringError::NoAws)
        }
    }
}
