//! What people's browsers do: start a flow from a link, come back to the callback, and use
//! the connect page. Failures are [`FlowError`]s, which the HTTP layer shows as pages.

use super::{Service, ServiceError};
use crate::domain::events::EventKind;
use crate::domain::flow_secret;
use crate::domain::ids::{new_state, sha256_hex, state_bot, Alias, BotId, LinkId, ProviderName};
use crate::domain::integrations::{Context, Integration};
use crate::domain::providers::{normalize_user_info, ProviderApp};
use crate::domain::token::{Flow, Link, Owner, TokenRecord, TokenSecrets, TokenStatus};
use crate::ports::{
    GrantedToken, ProviderError, RegisteredApp, SaveOutcome, SealError, StoreError,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

pub const FLOW_TTL_SECS: i64 = 10 * 60;

/// Why a browser's step of a flow could not go on.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("unknown link")]
    UnknownLink,
    #[error("expired link")]
    ExpiredLink,
    #[error("the sign-in request is unknown or was already used")]
    UnknownState,
    #[error("the sign-in request expired")]
    ExpiredState,
    #[error("the callback does not belong to this sign-in")]
    Mismatch,
    #[error("the request is missing a parameter")]
    BadRequest,
    #[error("the user or the provider declined ({code})")]
    Declined { code: String },
    #[error("the provider did not complete the sign-in")]
    ProviderFailed,
    #[error("the provider is unavailable")]
    Unavailable,
    #[error("the integration is not available")]
    NotConfigured,
    #[error(transparent)]
    Internal(#[from] ServiceError),
}

impl From<StoreError> for FlowError {
    fn from(e: StoreError) -> Self {
        FlowError::Internal(e.into())
    }
}

impl From<SealError> for FlowError {
    fn from(e: SealError) -> Self {
        FlowError::Internal(e.into())
    }
}

/// The parameters a provider sends to the callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<SecretString>,
    pub state: Option<SecretString>,
    pub error: Option<String>,
    pub iss: Option<String>,
}

#[derive(Debug)]
pub struct Connected {
    pub alias: Alias,
    pub provider: ProviderName,
}

/// One row of the connect page.
pub struct ConnectRow {
    pub alias: Alias,
    pub provider: ProviderName,
    pub connected: bool,
}

impl Service {
    /// `GET /oauth/start/{link}`: records a flow and answers the provider's URL.
    pub async fn start(&self, link_id: &LinkId) -> Result<Url, FlowError> {
        let link = self
            .store
            .link(link_id)
            .await?
            .ok_or(FlowError::UnknownLink)?;
        if link.expires_at <= self.clock.unix() {
            return Err(FlowError::ExpiredLink);
        }
        let integration = self
            .integration(&link.bot_id, &link.alias)
            .await?
            .ok_or(FlowError::NotConfigured)?;
        self.begin_flow(&link, &integration).await
    }

    /// Stores a flow for `link` and answers where to send the browser.
    async fn begin_flow(&self, link: &Link, integration: &Integration) -> Result<Url, FlowError> {
        // The authorization request carries no secret: read the app without opening it.
        let (app, _) = self
            .store
            .provider(&integration.provider)
            .await?
            .ok_or(FlowError::NotConfigured)?;
        let state = SecretString::from(new_state(&link.bot_id));
        let redirect_uri = self.redirect_uri(&app.name);
        let scopes = app.scope_param(&integration.scope);
        let auth = self
            .provider
            .authorize(&app, &redirect_uri, &scopes, &state)
            .map_err(|e| FlowError::Internal(ServiceError::Provider(e)))?;
        let state_hash = sha256_hex(state.expose_secret());
        let sealed_verifier = match &auth.pkce_verifier {
            Some(v) => Some(
                flow_secret::seal(v.expose_secret(), state.expose_secret(), &state_hash)
                    .map_err(SealError::from)?,
            ),
            None => None,
        };
        let now = self.clock.unix();
        let flow = Flow {
            state_hash,
            link_id: link.link_id.clone(),
            bot_id: link.bot_id.clone(),
            alias: link.alias.clone(),
            provider: app.name.clone(),
            owner: link.owner.clone(),
            scopes,
            sealed_verifier,
            redirect_uri,
            expires_at: now + FLOW_TTL_SECS,
            created_at: now,
        };
        self.store.put_flow(&flow).await?;
        tracing::info!(bot_id = %link.bot_id, alias = %link.alias, provider = %app.name, "oauth flow started");
        Ok(auth.url)
    }

    /// `GET /oauth/callback/{provider}`: ends the flow named by `state`, exchanging the code
    /// at most once, and stores the token.
    pub async fn callback(
        &self,
        provider: &str,
        params: CallbackParams,
    ) -> Result<Connected, FlowError> {
        let state = params.state.as_ref().ok_or(FlowError::BadRequest)?;
        let flow = self.take_flow(provider, state).await?;
        let client = self
            .registered_app(&flow.provider)
            .await?
            .ok_or(FlowError::NotConfigured)?;
        if let (Some(sent), Some(expected)) = (&params.iss, &client.app.issuer) {
            if sent.trim_end_matches('/') != expected.trim_end_matches('/') {
                tracing::warn!(bot_id = %flow.bot_id, provider = %flow.provider, "callback 'iss' does not match the provider's issuer");
                return Err(FlowError::Mismatch);
            }
        }
        if let Some(code) = params.error {
            let code: String = code
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            tracing::info!(bot_id = %flow.bot_id, alias = %flow.alias, error = %code, "provider reported an error");
            self.emit(EventKind::OauthFailed, (&flow).into(), None)
                .await;
            return Err(FlowError::Declined { code });
        }
        let code = params.code.as_ref().ok_or(FlowError::BadRequest)?;
        if self.store.link(&flow.link_id).await?.is_none() {
            return Err(FlowError::ExpiredLink);
        }
        let granted = self.exchange(&flow, &client, code, state).await?;
        let secrets = self.profile(&client.app, &flow, &granted).await;
        let token_id = self
            .store_connected(&flow, &client.app, &granted, secrets)
            .await?;
        self.store.delete_link(&flow.link_id).await?;
        tracing::info!(bot_id = %flow.bot_id, alias = %flow.alias, %token_id, "token stored");
        self.emit(EventKind::Token, (&flow).into(), Some(&token_id))
            .await;
        Ok(Connected {
            alias: flow.alias,
            provider: flow.provider,
        })
    }

    /// Takes the flow of `state` out of the store (so it is used at most once, security
    /// item 1) and checks that it is alive and came back on its provider's path.
    async fn take_flow(&self, provider: &str, state: &SecretString) -> Result<Flow, FlowError> {
        let state_owner = state_bot(state.expose_secret()).ok_or(FlowError::UnknownState)?;
        let flow = self
            .store
            .take_flow(&state_owner, &sha256_hex(state.expose_secret()))
            .await?
            .ok_or(FlowError::UnknownState)?;
        if flow.expires_at <= self.clock.unix() {
            return Err(FlowError::ExpiredState);
        }
        if flow.provider.as_str() != provider {
            tracing::warn!(bot_id = %flow.bot_id, expected = %flow.provider, "callback arrived on another provider's path");
            return Err(FlowError::Mismatch);
        }
        Ok(flow)
    }

    /// The code exchange. The flow record is gone already: whatever happens, this code is
    /// not sent again (security item 5).
    async fn exchange(
        &self,
        flow: &Flow,
        client: &RegisteredApp,
        code: &SecretString,
        state: &SecretString,
    ) -> Result<GrantedToken, FlowError> {
        let verifier = match &flow.sealed_verifier {
            Some(sealed) => {
                let plain = flow_secret::open(sealed, state.expose_secret(), &flow.state_hash)
                    .map_err(SealError::from)?;
                Some(SecretString::from(plain.as_str().to_owned()))
            }
            None => None,
        };
        match self
            .provider
            .exchange_code(client, &flow.redirect_uri, code, verifier)
            .await
        {
            Ok(g) => Ok(g),
            Err(e) => {
                tracing::warn!(bot_id = %flow.bot_id, alias = %flow.alias, error = %e, "code exchange failed");
                self.emit(EventKind::OauthFailed, flow.into(), None).await;
                Err(match e {
                    ProviderError::Transient { .. } => FlowError::Unavailable,
                    _ => FlowError::ProviderFailed,
                })
            }
        }
    }

    /// The secrets to seal: the grant, and what the provider says about the user.
    async fn profile(&self, app: &ProviderApp, flow: &Flow, g: &GrantedToken) -> TokenSecrets {
        let raw_info = match self.provider.user_info(app, &g.access_token).await {
            Ok(v) => v.unwrap_or(Value::Null),
            Err(e) => {
                tracing::warn!(provider = %app.name, error = %e, "user info unavailable; storing the token without it");
                Value::Null
            }
        };
        let raw_info = match (&raw_info, g.other.get("id_token")) {
            (Value::Null, Some(Value::String(jwt))) => id_token_claims(jwt).unwrap_or(Value::Null),
            _ => raw_info,
        };
        let (uid, info) = normalize_user_info(app.userinfo_style, &raw_info);
        TokenSecrets {
            access_token: g.access_token.expose_secret().to_owned(),
            refresh_token: g
                .refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_owned()),
            token_type: g.token_type.clone(),
            scopes: g.scopes.clone().unwrap_or_else(|| flow.scopes.clone()),
            other: g.other.clone(),
            uid,
            info,
            raw_info,
        }
    }

    async fn store_connected(
        &self,
        flow: &Flow,
        app: &ProviderApp,
        granted: &GrantedToken,
        secrets: TokenSecrets,
    ) -> Result<crate::domain::ids::TokenId, ServiceError> {
        let now = self.clock.unix();
        let mut token_id = self
            .store
            .token_id_for(&flow.bot_id, &flow.owner, &flow.alias)
            .await?
            .unwrap_or_else(crate::domain::ids::TokenId::generate);
        // Two flows for the same alias and owner may finish together: the loser connects onto
        // the winner's id, so the owner keeps one token id.
        for _ in 0..3 {
            let record = TokenRecord {
                bot_id: flow.bot_id.clone(),
                token_id: token_id.clone(),
                alias: flow.alias.clone(),
                provider: flow.provider.clone(),
                owner: flow.owner.clone(),
                status: TokenStatus::Active,
                expires_at: super::tokens::expiry(app, granted.expires_in, now),
                sealed: self.seal_secrets(&flow.bot_id, &token_id, &secrets).await?,
                version: 0,
                created_at: now,
                updated_at: now,
            };
            match self.store.save_connected(&record).await? {
                SaveOutcome::Saved => return Ok(token_id),
                SaveOutcome::Taken(other) => token_id = other,
            }
        }
        Err(ServiceError::ConcurrentConnect)
    }

    async fn connect_session(&self, id: &LinkId) -> Result<BotId, FlowError> {
        let s = self
            .store
            .connect_session(id)
            .await?
            .ok_or(FlowError::UnknownLink)?;
        if s.expires_at <= self.clock.unix() {
            return Err(FlowError::ExpiredLink);
        }
        Ok(s.bot_id)
    }

    /// The connect page: the bot's bot-context integrations and whether each is connected.
    pub async fn connect_page(
        &self,
        session: &LinkId,
    ) -> Result<(BotId, Vec<ConnectRow>), FlowError> {
        let bot = self.connect_session(session).await?;
        let tokens = self.store.tokens_of(&bot, &Owner::Bot).await?;
        let rows = self
            .store
            .integrations(&bot)
            .await?
            .into_iter()
            .filter(|i| i.context == Context::Bot)
            .map(|i| ConnectRow {
                connected: tokens.contains_key(&i.alias),
                alias: i.alias,
                provider: i.provider,
            })
            .collect();
        Ok((bot, rows))
    }

    /// Starts a bot-context flow from the connect page; answers the provider's URL.
    pub async fn connect_start(&self, session: &LinkId, alias: &Alias) -> Result<Url, FlowError> {
        let bot = self.connect_session(session).await?;
        let (link, integration) = self
            .mint_link(&bot, alias, None)
            .await
            .map_err(|e| match e {
                ServiceError::Store(_) | ServiceError::Seal(_) | ServiceError::Decode(_) => {
                    FlowError::Internal(e)
                }
                _ => FlowError::NotConfigured,
            })?;
        self.begin_flow(&link, &integration).await
    }
}

/// The claims of an ID token received directly from the token endpoint over TLS, used only
/// for display information when the provider has no user-info endpoint.
fn id_token_claims(jwt: &str) -> Option<Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
