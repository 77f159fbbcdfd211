//! The use cases of the contract, by capability, written against the ports only, so the same
//! code runs on SQLite with a key file and on DynamoDB with KMS:
//!
//! - `auth`: operator and bot keys;
//! - `operator`: bots and provider apps;
//! - `links`: integrations files, oauth and connect links, `bot.tokens` / `user.tokens`;
//! - `flow`: the browser's start and callback, and the connect page;
//! - `tokens`: info, the full token, access tokens, delete and revocation;
//! - `refresh`: the lease and the fenced commit;
//! - `upkeep`: the maintenance job (keep-alive refreshes, expiry warnings, pending
//!   revocations) and connection health.

mod auth;
mod confirm;
mod credentials;
mod error;
mod flow;
mod links;
mod operator;
mod proxy;
mod refresh;
#[cfg(all(test, feature = "embedded"))]
mod tests;
mod tokens;
mod upkeep;

pub use auth::AuthError;
pub use confirm::{Confirmed, CONFIRMATION_TTL_SECS, MAX_WRONG_CODES};
pub use credentials::{entered_kind, form_of, CredentialForm, Opened, MAX_FIELD_LEN};
pub use error::ServiceError;
pub use flow::{CallbackParams, ConnectRow, Connected, FlowError, FLOW_TTL_SECS};
pub use links::{IntegrationView, MintedLink};
pub use operator::CreatedBot;
pub use proxy::{ProxyAnswer, ProxyCall, ProxyLimits, MAX_PROXY_REQUEST_BYTES, MAX_RETRY_BUDGET};
pub use tokens::{AccessTokenView, CredentialsView, ExtraView, FullToken, TokenInfo};
pub use upkeep::{ConnectionStatus, MaintenanceReport};

use crate::config::AdminKeyHash;
use crate::domain::events::{Event, EventKind, EventReason};
use crate::domain::ids::{Alias, BotId, ProviderName, TokenId};
use crate::domain::integrations::Integration;
use crate::domain::network::OutboundPolicy;
use crate::domain::token::{Owner, TokenRecord, TokenSecrets};
use crate::ports::{
    Clock, ProviderClient, Purpose, RegisteredApp, SealContext, SealError, Sealer, Store,
};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use url::Url;

/// Everything a [`Service`] is built from; see `wiring` for the two backends.
pub struct ServiceParts {
    pub store: Arc<dyn Store>,
    pub sealer: Arc<dyn Sealer>,
    pub clock: Arc<dyn Clock>,
    pub provider: Arc<dyn ProviderClient>,
    pub public_url: Url,
    pub admin_key: AdminKeyHash,
    /// Which provider URLs may be registered.
    pub outbound: OutboundPolicy,
    /// What the maintenance job does, and when.
    pub upkeep: crate::domain::upkeep::UpkeepPolicy,
    /// How large a proxied answer may be.
    pub proxy_limits: proxy::ProxyLimits,
}

pub struct Service {
    store: Arc<dyn Store>,
    sealer: Arc<dyn Sealer>,
    clock: Arc<dyn Clock>,
    provider: Arc<dyn ProviderClient>,
    public_url: Url,
    admin_key: AdminKeyHash,
    outbound: OutboundPolicy,
    upkeep: crate::domain::upkeep::UpkeepPolicy,
    proxy_limits: proxy::ProxyLimits,
    /// Bot keys checked recently: key hash -> (bot, when).
    key_cache: Mutex<HashMap<String, (BotId, Instant)>>,
}

fn token_ctx<'a>(bot: &'a BotId, id: &'a TokenId) -> SealContext<'a> {
    SealContext {
        purpose: Purpose::Token,
        bot: bot.as_str(),
        record: id.as_str(),
    }
}

fn client_secret_ctx(name: &ProviderName) -> SealContext<'_> {
    SealContext {
        purpose: Purpose::ClientSecret,
        bot: "-",
        record: name.as_str(),
    }
}

impl Service {
    pub fn new(p: ServiceParts) -> Self {
        Self {
            store: p.store,
            sealer: p.sealer,
            clock: p.clock,
            provider: p.provider,
            public_url: p.public_url,
            admin_key: p.admin_key,
            outbound: p.outbound,
            upkeep: p.upkeep,
            proxy_limits: p.proxy_limits,
            key_cache: Mutex::new(HashMap::new()),
        }
    }

    /// The service's public URL (`PUBLIC_URL`).
    pub fn public_url(&self) -> &Url {
        &self.public_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.as_str().trim_end_matches('/'))
    }

    /// `{PUBLIC_URL}/oauth/callback/{provider}`: the same bytes in the authorization and
    /// token requests (security item 3).
    pub fn redirect_uri(&self, provider: &ProviderName) -> String {
        self.url(&format!("/oauth/callback/{provider}"))
    }

    /// The app registered for `name`, with its client secret opened.
    async fn registered_app(
        &self,
        name: &ProviderName,
    ) -> Result<Option<RegisteredApp>, ServiceError> {
        let Some((app, sealed)) = self.store.provider(name).await? else {
            return Ok(None);
        };
        let app = self.ready(app, sealed.as_ref()).await?;
        Ok(Some(self.open_app(app, sealed.as_ref()).await?))
    }

    /// An app with its client secret opened.
    async fn open_app(
        &self,
        app: crate::domain::providers::ProviderApp,
        sealed: Option<&crate::crypto::Sealed>,
    ) -> Result<RegisteredApp, ServiceError> {
        let secret = match sealed {
            Some(s) => {
                let plain = self.sealer.open(s, client_secret_ctx(&app.name)).await?;
                let text = String::from_utf8(plain.to_vec()).map_err(|_| SealError::Malformed)?;
                Some(SecretString::from(text))
            }
            None => None,
        };
        Ok(RegisteredApp { app, secret })
    }

    async fn integration(
        &self,
        bot: &BotId,
        alias: &Alias,
    ) -> Result<Option<Integration>, ServiceError> {
        Ok(self
            .store
            .integrations(bot)
            .await?
            .into_iter()
            .find(|i| &i.alias == alias))
    }

    /// The credentials alone, for the paths that answer an access token.
    async fn open_credentials(
        &self,
        record: &TokenRecord,
    ) -> Result<crate::domain::token::Credentials, ServiceError> {
        let plain = self
            .sealer
            .open(&record.sealed, token_ctx(&record.bot_id, &record.token_id))
            .await?;
        serde_json::from_slice(&plain).map_err(ServiceError::Decode)
    }

    async fn open_secrets(&self, record: &TokenRecord) -> Result<TokenSecrets, ServiceError> {
        let plain = self
            .sealer
            .open(&record.sealed, token_ctx(&record.bot_id, &record.token_id))
            .await?;
        serde_json::from_slice(&plain).map_err(ServiceError::Decode)
    }

    async fn seal_secrets(
        &self,
        bot: &BotId,
        id: &TokenId,
        secrets: &TokenSecrets,
    ) -> Result<crate::crypto::Sealed, ServiceError> {
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(secrets).map_err(ServiceError::Decode)?);
        Ok(self.sealer.seal(&plain, token_ctx(bot, id)).await?)
    }

    /// An event about `subject`, to be written with the change it reports.
    fn event(&self, kind: EventKind, subject: EventSubject<'_>, token: Option<&TokenId>) -> Event {
        Event::new(
            kind,
            subject.bot,
            subject.alias,
            subject.provider,
            subject.owner,
            token,
            self.clock.now(),
        )
    }

    /// `oauth_failed:<alias>` for a flow, saying why.
    fn failed_event(&self, subject: EventSubject<'_>, reason: EventReason) -> Event {
        let mut event = self.event(EventKind::OauthFailed, subject, None);
        event.detail.reason = Some(reason);
        event
    }

    /// Records `oauth_failed:<alias>` for a flow that was used up: the one event written on
    /// its own, with a few tries, since the change it reports (the flow taken) is behind us.
    async fn record_failure(&self, flow: &crate::domain::token::Flow, reason: EventReason) {
        let event = self.failed_event(flow.into(), reason);
        let mut backoff = std::time::Duration::from_millis(50);
        for attempt in 1..=3 {
            match self.store.record_events(std::slice::from_ref(&event)).await {
                Ok(()) => return,
                Err(e) if attempt < 3 => {
                    tracing::warn!(event_id = %event.detail.event_id, error = %e, "failure event not recorded yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 4;
                }
                Err(e) => {
                    tracing::error!(event_id = %event.detail.event_id, detail_type = %event.detail_type, error = %e, "failure event could not be recorded; the store is unavailable");
                }
            }
        }
    }
}

/// Whom an event is about.
#[derive(Clone, Copy)]
pub(super) struct EventSubject<'a> {
    bot: &'a BotId,
    alias: &'a Alias,
    provider: &'a ProviderName,
    owner: &'a Owner,
}

impl<'a> From<&'a TokenRecord> for EventSubject<'a> {
    fn from(r: &'a TokenRecord) -> Self {
        Self {
            bot: &r.bot_id,
            alias: &r.alias,
            provider: &r.provider,
            owner: &r.owner,
        }
    }
}

impl<'a> From<&'a crate::domain::token::Flow> for EventSubject<'a> {
    fn from(f: &'a crate::domain::token::Flow) -> Self {
        Self {
            bot: &f.bot_id,
            alias: &f.alias,
            provider: &f.provider,
            owner: &f.owner,
        }
    }
}
