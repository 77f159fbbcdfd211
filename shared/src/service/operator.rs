//! The operator's use cases: bots and their keys, provider apps.

use super::auth::new_bot_key;
use super::{client_secret_ctx, Service, ServiceError};
use crate::crypto::Sealed;
use crate::domain::ids::{sha256_hex, BotId, ProviderName};
use crate::domain::providers::{check_endpoint, ProviderApp, ProviderAppInput};
use crate::ports::ProviderError;
use secrecy::ExposeSecret;
use serde::Serialize;
use url::Url;

const DISCOVERY_PENDING: &str =
    "the issuer's discovery document could not be fetched; it is tried again when the app is first needed";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedBot {
    #[schema(value_type = String)]
    pub bot_id: BotId,
    pub api_key: String,
}

impl Service {
    pub async fn create_bot(&self, bot: BotId) -> Result<CreatedBot, ServiceError> {
        let key = new_bot_key(&bot);
        if !self
            .store
            .create_bot(&bot, &sha256_hex(&key), self.clock.unix())
            .await?
        {
            return Err(ServiceError::BotExists(bot));
        }
        tracing::info!(bot_id = %bot, "bot created");
        Ok(CreatedBot {
            bot_id: bot,
            api_key: key,
        })
    }

    pub async fn rotate_bot_key(&self, bot: &BotId) -> Result<String, ServiceError> {
        let key = new_bot_key(bot);
        if !self.store.set_bot_key(bot, &sha256_hex(&key)).await? {
            return Err(ServiceError::BotNotFound);
        }
        self.forget_keys_of(bot);
        tracing::info!(bot_id = %bot, "bot key rotated");
        Ok(key)
    }

    /// Sets (or with `None` removes) where `confirm: redirect` sign-ins send the browser:
    /// https, or http on a loopback host for development; no credentials or fragment.
    pub async fn set_confirm_url(
        &self,
        bot: &BotId,
        raw: Option<&str>,
    ) -> Result<Option<Url>, ServiceError> {
        let url = raw.map(parse_confirm_url).transpose()?;
        if !self
            .store
            .set_confirm_url(bot, url.as_ref().map(Url::as_str))
            .await?
        {
            return Err(ServiceError::BotNotFound);
        }
        tracing::info!(bot_id = %bot, set = url.is_some(), "bot confirm_url changed");
        Ok(url)
    }

    /// Registers or replaces a provider app; the same path serves the admin API and the
    /// local server's providers file. An `issuer` whose discovery document cannot be fetched
    /// right now does not refuse the app: it is stored as not ready, and discovery is tried
    /// again when the app is first needed.
    pub async fn put_provider(
        &self,
        name: &ProviderName,
        input: ProviderAppInput,
    ) -> Result<ProviderApp, ServiceError> {
        let discovery = match &input.issuer {
            Some(issuer) => {
                let url = check_endpoint("issuer", issuer, self.outbound)?;
                match self.provider.discover(&url).await {
                    Ok(d) => Some(d),
                    Err(ProviderError::Transient { .. }) => {
                        let app = ProviderApp::pending(name, &input, DISCOVERY_PENDING);
                        tracing::warn!(provider = %name, "discovery unavailable; the app is stored as not ready");
                        self.store_app(&app, &input).await?;
                        return Ok(app);
                    }
                    Err(e) => return Err(ServiceError::DiscoveryFailed(e)),
                }
            }
            None => None,
        };
        let app = input.resolve(name, discovery.as_ref(), self.outbound)?;
        self.store_app(&app, &input).await?;
        tracing::info!(provider = %name, custom = app.custom, "provider app registered");
        Ok(app)
    }

    async fn store_app(
        &self,
        app: &ProviderApp,
        input: &ProviderAppInput,
    ) -> Result<(), ServiceError> {
        let sealed = match &input.client_secret {
            Some(secret) => Some(
                self.sealer
                    .seal(
                        secret.expose_secret().as_bytes(),
                        client_secret_ctx(&app.name),
                    )
                    .await?,
            ),
            None => None,
        };
        Ok(self.store.put_provider(app, sealed.as_ref()).await?)
    }

    /// The app, resolved now if it was stored not ready; the resolved app is stored.
    pub(super) async fn ready(
        &self,
        app: ProviderApp,
        sealed: Option<&Sealed>,
    ) -> Result<ProviderApp, ServiceError> {
        let Some(registration) = app
            .pending_registration
            .clone()
            .filter(|_| app.not_ready.is_some())
        else {
            return Ok(app);
        };
        let input: ProviderAppInput =
            serde_json::from_value(registration).map_err(ServiceError::Decode)?;
        let issuer = input.issuer.as_deref().unwrap_or_default();
        let url = check_endpoint("issuer", issuer, self.outbound)?;
        let discovery = self.provider.discover(&url).await.map_err(|e| match e {
            ProviderError::Transient { .. } => ServiceError::ProviderUnavailable { retry_after: 5 },
            other => ServiceError::DiscoveryFailed(other),
        })?;
        let mut resolved = input.resolve(&app.name, Some(&discovery), self.outbound)?;
        // The stored registration never holds the secret; the app still has it.
        resolved.has_client_secret = app.has_client_secret;
        self.store.put_provider(&resolved, sealed).await?;
        tracing::info!(provider = %app.name, "provider app ready after discovery");
        Ok(resolved)
    }

    pub async fn providers(&self) -> Result<Vec<ProviderApp>, ServiceError> {
        Ok(self.store.providers().await?)
    }
}

fn parse_confirm_url(raw: &str) -> Result<Url, ServiceError> {
    let bad = |why: &str| ServiceError::InvalidConfirmUrl(why.to_owned());
    if raw.len() > 2048 {
        return Err(bad("longer than 2048 characters"));
    }
    let url = Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    if url.query_pairs().any(|(k, _)| k == "flow") {
        return Err(bad(
            "must not have a 'flow' query parameter: the service adds it",
        ));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(bad("must name a host")),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(bad("must be https (http only on a loopback host)")),
    }
}
