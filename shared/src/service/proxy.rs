//! The API proxy: a bot's call to its provider's API, sent by the service with the token's
//! credential, so the bot never holds it. A rejected token is refreshed once and the call
//! replayed once; rate limits are passed through, and idempotent calls retried within the
//! bot's time budget.

use super::refresh::Why;
use super::{Service, ServiceError};
use crate::domain::catalog::{catalog_entry, fill, placeholders};
use crate::domain::ids::{BotId, TokenId};
use crate::domain::providers::ProviderApp;
use crate::domain::proxy::{self, Injection};
use crate::domain::token::{TokenRecord, TokenSecrets, TokenStatus};
use crate::ports::{ApiBody, ApiRequest, ProviderError};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use std::time::{Duration, Instant};

/// The most a proxied request's body may hold: it is kept to be replayed, and on AWS it
/// must fit Lambda's 6 MB invocation payload once base64-encoded.
pub const MAX_PROXY_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// The default and the most a bot may ask for (`X-Integrations-Max-Retry-Seconds`).
pub const MAX_RETRY_BUDGET: Duration = Duration::from_secs(10);
/// One attempt, up to the answer's headers and its body.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// How large a proxied answer may be; from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyLimits {
    pub max_response_bytes: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        Self {
            max_response_bytes: 32 * 1024 * 1024,
        }
    }
}

/// A bot's call, as the route received it.
pub struct ProxyCall {
    pub method: Method,
    /// After `/proxy/`, as sent (still percent-encoded).
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// How long rate-limited idempotent calls may be retried.
    pub retry_budget: Duration,
}

/// What the bot gets back.
pub struct ProxyAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ApiBody,
}

/// The token's credential and where it goes, for one call.
struct Credential {
    injection: Injection,
    version: i64,
}

impl Service {
    /// `/v1/bots/{bot}/tokens/{id}/proxy/{path}`.
    pub async fn proxy(
        &self,
        bot: &BotId,
        id: &TokenId,
        call: ProxyCall,
    ) -> Result<ProxyAnswer, ServiceError> {
        let record = self.record(bot, id).await?;
        // A key or password is not renewed: its 401 is the bot's.
        let renewable = super::entered_kind(record.provider.as_str()).is_none();
        let secrets = self.open_secrets(&record).await?;
        let base = self.api_base(&record, &secrets).await?;
        let (mut credential, refreshed) = self.usable(&record, &secrets).await?;
        drop(secrets);
        let mut token_status = if refreshed { "refreshed" } else { "valid" };
        let headers = proxy::request_headers(&call.headers);
        let idempotent = proxy::idempotent(&call.method, &call.headers);
        let started = Instant::now();
        let mut replayed = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let request = self.api_request(&base, &call, &headers, &credential.injection)?;
            let answer = match self.provider.call_api(request).await {
                Ok(a) => a,
                Err(ProviderError::Config(reason)) => {
                    tracing::warn!(provider = %record.provider, %reason, "proxied call refused before sending");
                    return Err(ServiceError::NoApiBase(
                        "the provider's API address is not one the service may reach".into(),
                    ));
                }
                Err(_) => return Err(ServiceError::ApiUnreachable),
            };
            // A rejected token that can be renewed: refreshed once, the call replayed once.
            if answer.status == StatusCode::UNAUTHORIZED && !replayed && renewable {
                replayed = true;
                drop(answer);
                credential = self.after_rejection(&record, credential.version).await?;
                token_status = "refreshed";
                continue;
            }
            let limited = matches!(
                answer.status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            if limited && idempotent {
                let wait = proxy::retry_after(&answer.headers)
                    .map(Duration::from_secs)
                    .unwrap_or_else(|| Duration::from_millis(500 * u64::from(attempt)));
                if started.elapsed() + wait <= call.retry_budget {
                    drop(answer);
                    tracing::info!(provider = %record.provider, attempt, wait_ms = wait.as_millis() as u64, "provider API rate-limited the call; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return self.answer(answer, token_status);
        }
    }

    /// The API base URL: the app's own, else the catalog's, with the app's and the
    /// connection's values filled in.
    async fn api_base(
        &self,
        record: &TokenRecord,
        secrets: &TokenSecrets,
    ) -> Result<url::Url, ServiceError> {
        let entry = catalog_entry(record.provider.as_str());
        let app = self.store.provider(&record.provider).await?.map(|(a, _)| a);
        let template = app
            .as_ref()
            .and_then(|a| a.api_base_url.clone())
            .or_else(|| entry.and_then(|e| e.api_base_url.clone()))
            .ok_or_else(|| {
                ServiceError::NoApiBase(format!(
                    "provider '{}' has no API base URL: the operator can set api_base_url with PUT /v1/admin/providers/{}",
                    record.provider, record.provider
                ))
            })?;
        let connection = ProviderApp::connection_of(&secrets.other);
        let value = |name: &str| {
            connection
                .get(name)
                .or_else(|| app.as_ref().and_then(|a| a.params.get(name)))
                .cloned()
                .or_else(|| {
                    entry
                        .and_then(|e| e.params.iter().find(|p| p.name == name))
                        .and_then(|p| p.default.clone())
                })
        };
        let filled = fill(&template, &value);
        if let Some(missing) = placeholders(&filled).next() {
            return Err(ServiceError::NoApiBase(format!(
                "the API base URL needs '{missing}', which this connection does not have"
            )));
        }
        url::Url::parse(&filled)
            .map_err(|_| ServiceError::NoApiBase("the API base URL is not a URL".into()))
    }

    /// The token's credential as read, refreshed first when it is due (`true` then).
    async fn usable(
        &self,
        record: &TokenRecord,
        secrets: &TokenSecrets,
    ) -> Result<(Credential, bool), ServiceError> {
        if record.status == TokenStatus::Revoked {
            return Err(ServiceError::TokenRevoked);
        }
        if !record.refresh_due(self.clock.unix()) {
            let credential =
                self.credential(record, Some(secrets.access_token.clone()), "valid")?;
            return Ok((credential, false));
        }
        let view = self.refresh(record.clone()).await?;
        let credential = self.credential(record, view.access_token, view.status)?;
        Ok((credential, true))
    }

    /// After the API refused the credential of `version`: refreshed (or taken from whoever
    /// refreshed it meanwhile) under the lease. A credential refreshed for this very call
    /// is not refreshed again: the replay uses it as it is.
    async fn after_rejection(
        &self,
        record: &TokenRecord,
        version: i64,
    ) -> Result<Credential, ServiceError> {
        let current = self.record(&record.bot_id, &record.token_id).await?;
        let view = self
            .refresh_for(current.clone(), Why::Rejected { version })
            .await?;
        tracing::info!(token_id = %record.token_id, "provider API refused the token; refreshed for a replay");
        self.credential(&current, view.access_token, view.status)
    }

    fn credential(
        &self,
        record: &TokenRecord,
        token: Option<String>,
        status: &str,
    ) -> Result<Credential, ServiceError> {
        let token = match (status, token) {
            ("revoked", _) => return Err(ServiceError::TokenRevoked),
            ("expired", _) | (_, None) => return Err(ServiceError::TokenExpired),
            (_, Some(token)) => zeroize::Zeroizing::new(token),
        };
        let spec = catalog_entry(record.provider.as_str()).and_then(|e| e.credential.as_ref());
        let injection = proxy::injection(spec, &token).ok_or_else(|| {
            ServiceError::NoApiBase("the stored credential cannot be sent in a header".into())
        })?;
        Ok(Credential {
            injection,
            version: record.version,
        })
    }

    fn api_request(
        &self,
        base: &url::Url,
        call: &ProxyCall,
        headers: &HeaderMap,
        injection: &Injection,
    ) -> Result<ApiRequest, ServiceError> {
        let mut headers = headers.clone();
        let mut url = proxy::target_url(base, &call.path, call.query.as_deref())?;
        injection.apply(&mut url, &mut headers);
        Ok(ApiRequest {
            method: call.method.clone(),
            url,
            headers,
            body: call.body.clone(),
            timeout: ATTEMPT_TIMEOUT,
        })
    }

    /// The provider's answer as the bot gets it: its headers filtered (`token_status` added
    /// as `X-Integrations-Token-Status`), its body bounded.
    fn answer(
        &self,
        answer: crate::ports::ApiResponse,
        token_status: &'static str,
    ) -> Result<ProxyAnswer, ServiceError> {
        let limit = self.proxy_limits.max_response_bytes;
        let declared = answer
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(ServiceError::ApiAnswerTooLarge { limit });
        }
        let mut headers = proxy::response_headers(&answer.headers);
        headers.insert(
            "x-integrations-token-status",
            HeaderValue::from_static(token_status),
        );
        // An answer without a length that grows past the limit is cut off with an error:
        // the bot sees a broken body, never a truncated one that looks whole.
        let mut seen = 0usize;
        let body = answer.body.map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len();
            if seen > limit {
                return Err(std::io::Error::other(format!(
                    "the provider's answer is larger than {limit} bytes"
                )));
            }
            Ok(chunk)
        });
        Ok(ProxyAnswer {
            status: answer.status,
            headers,
            body: Box::pin(body),
        })
    }
}
