//! The AWS SDK's HTTP connections on the service's own `reqwest` client: one HTTP and TLS
//! stack in every function, with the root certificates compiled in (nothing read from the
//! file system at start).

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::time::Duration;

/// Connects within this; the SDK's attempt and operation timeouts bound the rest.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The `reqwest` client, built when the SDK first sends.
#[derive(Debug, Clone, Default)]
struct Connector(std::sync::Arc<std::sync::OnceLock<reqwest::Client>>);

/// An SDK HTTP client on `reqwest` (no redirects, a bounded connect).
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(Connector::default())
}

impl Connector {
    fn client(&self) -> Result<reqwest::Client, ConnectorError> {
        if let Some(c) = self.0.get() {
            return Ok(c.clone());
        }
        let built = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ConnectorError::other(e.into(), None))?;
        Ok(self.0.get_or_init(|| built).clone())
    }
}

impl HttpClient for Connector {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let connector = self.clone();
        HttpConnectorFuture::new(async move {
            let client = connector.client()?;
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            // Every request of the APIs the service calls has its body in memory.
            let body = body
                .bytes()
                .ok_or_else(|| ConnectorError::user("a streaming request body".into()))?
                .to_vec();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(failed)?;
            let mut out = http::Response::builder().status(response.status());
            if let Some(headers) = out.headers_mut() {
                *headers = response.headers().clone();
            }
            let bytes = response.bytes().await.map_err(failed)?;
            let out = out
                .body(SdkBody::from(bytes))
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            HttpResponse::try_from(out).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// A timeout or a broken connection, which the SDK's retry policy may retry; the URL is
/// left out of the error.
fn failed(e: reqwest::Error) -> ConnectorError {
    let timeout = e.is_timeout();
    let e = e.without_url();
    if timeout {
        ConnectorError::timeout(e.into())
    } else {
        ConnectorError::io(e.into())
    }
}
