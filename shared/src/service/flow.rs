//! What people's browsers do: start a flow from a link, come back to the callback, and use
//! the connect page. Failures are [`FlowError`]s, which the HTTP layer shows as pages.

use super::upkeep::{refresh_token_expires_in, renewable};
use super::{Service, ServiceError};
use crate::domain::events::{EventKind, EventReason};
use crate::domain::flow_secret;
use crate::domain::ids::{
    new_state, random_urlsafe, sha256_hex, state_bot, Alias, BotId, BrowserKey, LinkId,
    ProviderName,
};
use crate::domain::integrations::{Confirm, Context, Integration};
use crate::domain::providers::{normalize_user_info, ProviderApp};
use crate::domain::token::{Flow, Link, Owner, TokenRecord, TokenSecrets, TokenStatus};
use crate::domain::upkeep::Upkeep;
use crate::ports::{
    Connection, GrantedToken, ProviderError, RegisteredApp, SaveOutcome, SealError, Spend,
    StoreError,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

pub const FLOW_TTL_SECS: i64 = 10 * 60;

/// How long a flow holds its link between the claim (before the code exchange) and the step
/// that stores its token: longer than the exchange, the user-info call and the key service
/// take together, short enough that a flow that died with a fault frees the link soon.
pub const LINK_CLAIM_SECS: i64 = 60;

/// How many flows one link may start. A person may open a link a few times (and a chat's
/// link previewer fetch it), but a link requested in a loop stops writing flows here.
pub const MAX_FLOWS_PER_LINK: i64 = 10;

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
    #[error("the sign-in was started in another browser")]
    BrowserMismatch,
    #[error("the link was opened too many times")]
    LinkOverused,
    #[error("the link was already used")]
    LinkUsed,
    #[error("the request is missing a parameter")]
    BadRequest,
    #[error("the user or the provider declined ({code})")]
    Declined { code: String },
    #[error("the provider did not complete the sign-in")]
    ProviderFailed,
    #[error("the provider's statement of who signed in could not be verified")]
    IdentityRejected,
    #[error("the provider is unavailable")]
    Unavailable,
    #[error("the integration is not available")]
    NotConfigured,
    /// An entered credential is missing, malformed or refused; says which.
    #[error("{0}")]
    BadCredentials(String),
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
    /// With `confirm: code`: the code the person types in the chat; the token waits for it.
    pub confirmation_code: Option<SecretString>,
    /// With `confirm: redirect`: the bot's `confirm_url` with the flow id; the token waits
    /// for the platform's confirmation.
    pub redirect_to: Option<Url>,
}

/// A token about to be stored: whose, for which alias, from which provider.
pub(super) struct NewToken<'a> {
    pub bot_id: &'a BotId,
    pub owner: &'a Owner,
    pub alias: &'a Alias,
    pub provider: &'a ProviderName,
    /// When its access token expires.
    pub expires_at: Option<i64>,
    /// The integration is marked `keep_fresh`.
    pub keep_fresh: bool,
}

/// One row of the connect page.
pub struct ConnectRow {
    pub alias: Alias,
    pub provider: ProviderName,
    /// The connection's health; `None` when not connected.
    pub status: Option<super::ConnectionStatus>,
}

impl Service {
    /// `GET /oauth/start/{link}`: records a flow bound to `browser` and answers the
    /// provider's URL.
    pub async fn start(&self, link_id: &LinkId, browser: &BrowserKey) -> Result<Url, FlowError> {
        let (link, integration) = self.live_link(link_id).await?;
        self.begin_flow(&link, &integration, browser).await
    }

    /// A link that is not expired, with the integration it was minted for.
    pub(super) async fn live_link(
        &self,
        link_id: &LinkId,
    ) -> Result<(Link, Integration), FlowError> {
        let link = self
            .store
            .link(link_id)
            .await?
            .ok_or(FlowError::UnknownLink)?;
        if link.expires_at <= self.clock.unix() {
            return Err(FlowError::ExpiredLink);
        }
        let integration = match &link.integration {
            Some(i) => i.clone(),
            None => self
                .integration(&link.bot_id, &link.alias)
                .await?
                .ok_or(FlowError::NotConfigured)?,
        };
        Ok((link, integration))
    }

    /// Stores a flow for `link` and answers where to send the browser.
    pub(super) async fn begin_flow(
        &self,
        link: &Link,
        integration: &Integration,
        browser: &BrowserKey,
    ) -> Result<Url, FlowError> {
        // The authorization request carries no secret: read the app without opening it.
        let (app, sealed) = self
            .store
            .provider(&integration.provider)
            .await?
            .ok_or(FlowError::NotConfigured)?;
        let app = self
            .ready(app, sealed.as_ref())
            .await
            .map_err(|e| match e {
                ServiceError::ProviderUnavailable { .. } => FlowError::Unavailable,
                other => FlowError::Internal(other),
            })?;
        let app = app.with_connection(&integration.params);
        let state = SecretString::from(new_state(&link.bot_id));
        let redirect_uri = self.redirect_uri(&app.name);
        let scopes = app.scope_param(&integration.scope);
        // OpenID Connect: a fresh nonce binds the ID token to this flow; only its hash is kept.
        let nonce = scopes
            .iter()
            .any(|s| s == "openid")
            .then(|| SecretString::from(random_urlsafe(32)));
        let auth = self
            .provider
            .authorize(&app, &redirect_uri, &scopes, &state, nonce.as_ref())
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
            link_key: link.link_id.key(),
            browser_hash: browser.hash(),
            bot_id: link.bot_id.clone(),
            alias: link.alias.clone(),
            provider: app.name.clone(),
            owner: link.owner.clone(),
            scopes,
            nonce_hash: nonce.map(|n| sha256_hex(n.expose_secret())),
            confirm: integration.confirm,
            sealed_verifier,
            redirect_uri,
            expires_at: now + FLOW_TTL_SECS,
            created_at: now,
            app: Some(app.clone()),
            sealed_client_secret: sealed,
            keep_fresh: integration.keep_fresh,
        };
        if !self
            .store
            .start_flow(&link.link_id, &flow, MAX_FLOWS_PER_LINK)
            .await?
        {
            tracing::warn!(bot_id = %link.bot_id, alias = %link.alias, "link opened too many times or spent meanwhile; no flow started");
            return Err(FlowError::LinkOverused);
        }
        tracing::info!(bot_id = %link.bot_id, alias = %link.alias, provider = %app.name, "oauth flow started");
        Ok(auth.url)
    }

    /// `GET /oauth/callback/{provider}`: ends the flow named by `state`, exchanging the code
    /// at most once, and stores the token.
    pub async fn callback(
        &self,
        provider: &str,
        params: CallbackParams,
        browser: Option<&BrowserKey>,
    ) -> Result<Connected, FlowError> {
        let state = params.state.as_ref().ok_or(FlowError::BadRequest)?;
        let flow = self.take_flow(provider, state).await?;
        if !browser.is_some_and(|b| b.matches(&flow.browser_hash)) {
            tracing::warn!(bot_id = %flow.bot_id, alias = %flow.alias, "callback from another browser than the one that started the flow; refused before the code exchange");
            self.record_failure(&flow, EventReason::BrowserMismatch)
                .await;
            return Err(FlowError::BrowserMismatch);
        }
        // The app the authorization request was made with (older flows: as registered now).
        let client = match flow.app.clone() {
            Some(app) => {
                self.open_app(app, flow.sealed_client_secret.as_ref())
                    .await?
            }
            None => self
                .registered_app(&flow.provider)
                .await?
                .ok_or(FlowError::NotConfigured)?,
        };
        check_iss(&client.app, params.iss.as_deref()).inspect_err(|_| {
            tracing::warn!(bot_id = %flow.bot_id, provider = %flow.provider, "callback 'iss' is missing or not the provider's issuer");
        })?;
        if let Some(code) = params.error {
            let code: String = code
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            tracing::info!(bot_id = %flow.bot_id, alias = %flow.alias, error = %code, "provider reported an error");
            self.record_failure(&flow, EventReason::Declined).await;
            return Err(FlowError::Declined { code });
        }
        let code = params.code.as_ref().ok_or(FlowError::BadRequest)?;
        // The flow claims its link before the exchange: of two flows from one link only one
        // exchanges its code, so one link connects once. The link is spent in the same step
        // that stores what the flow got; a claim whose flow fails (a store or key-service
        // fault) lapses after LINK_CLAIM_SECS, and the link can be used again.
        let now = self.clock.unix();
        if !self
            .store
            .claim_link(
                &flow.bot_id,
                &flow.link_key,
                &flow.state_hash,
                now + LINK_CLAIM_SECS,
                now,
            )
            .await?
        {
            return Err(FlowError::LinkUsed);
        }
        let link = super::confirm::FlowLink {
            key: &flow.link_key,
            claimant: &flow.state_hash,
        };
        let spend = Spend::Link {
            key: link.key,
            claimant: link.claimant,
        };
        let granted = self.exchange(&flow, &client, code, state).await?;
        let secrets = self.profile(&client, &flow, &granted).await?;
        let expires_at = super::tokens::expiry(&client.app, granted.expires_in, self.clock.unix());
        let new = NewToken {
            bot_id: &flow.bot_id,
            owner: &flow.owner,
            alias: &flow.alias,
            provider: &flow.provider,
            expires_at,
            keep_fresh: flow.keep_fresh,
        };
        match (flow.confirm, &flow.owner) {
            (Confirm::Code, Owner::User(user)) => {
                let Some(code) = self
                    .hold_for_confirmation(&new, user, &secrets, link)
                    .await?
                else {
                    return Err(self.link_lost(&flow));
                };
                return Ok(Connected {
                    alias: flow.alias,
                    provider: flow.provider,
                    confirmation_code: Some(code),
                    redirect_to: None,
                });
            }
            (Confirm::Redirect, Owner::User(user)) => {
                let to = match self.hold_for_platform(&new, user, &secrets, link).await {
                    Ok(Some(to)) => to,
                    Ok(None) => return Err(self.link_lost(&flow)),
                    // The operator removed the bot's confirm_url meanwhile: nothing is kept.
                    Err(ServiceError::ConfirmUrlNotSet(_)) => {
                        self.revoke_grant(&flow.provider, &secrets).await;
                        return Err(FlowError::NotConfigured);
                    }
                    Err(e) => return Err(e.into()),
                };
                return Ok(Connected {
                    alias: flow.alias,
                    provider: flow.provider,
                    confirmation_code: None,
                    redirect_to: Some(to),
                });
            }
            _ => {}
        }
        let Some(token_id) = self.store_connected(&new, secrets, spend).await? else {
            return Err(self.link_lost(&flow));
        };
        tracing::info!(bot_id = %flow.bot_id, alias = %flow.alias, %token_id, "token stored");
        Ok(Connected {
            alias: flow.alias,
            provider: flow.provider,
            confirmation_code: None,
            redirect_to: None,
        })
    }

    /// The flow's claim on its link lapsed and another flow of the link finished first:
    /// nothing of this one is kept.
    fn link_lost(&self, flow: &Flow) -> FlowError {
        tracing::warn!(bot_id = %flow.bot_id, alias = %flow.alias, "another flow of the link finished first; this sign-in is not stored");
        FlowError::LinkUsed
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
                self.record_failure(flow, EventReason::ExchangeFailed).await;
                Err(match e {
                    ProviderError::Transient { .. } | ProviderError::OutcomeUnknown => {
                        FlowError::Unavailable
                    }
                    _ => FlowError::ProviderFailed,
                })
            }
        }
    }

    /// The secrets to seal: the grant, and what the provider says about the user. Claims
    /// come only from an ID token that passed validation or from the user-info endpoint.
    async fn profile(
        &self,
        client: &RegisteredApp,
        flow: &Flow,
        g: &GrantedToken,
    ) -> Result<TokenSecrets, FlowError> {
        let app = &client.app;
        let claims = self.id_token_claims(client, flow, g).await?;
        let user_info = match self.provider.user_info(app, &g.access_token).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(provider = %app.name, error = %e, "user info unavailable; storing the token without it");
                None
            }
        };
        // OpenID Connect Core 5.3.2: user info about another subject is not used.
        let user_info = match (&claims, user_info) {
            (Some(c), Some(u)) if u.get("sub") != c.get("sub") => {
                tracing::warn!(provider = %app.name, "user info names another subject than the ID token; ignored");
                None
            }
            (_, u) => u,
        };
        let raw_info = merge_claims(claims.as_ref(), user_info);
        let entry = app.entry();
        let (uid, mut info) =
            normalize_user_info(entry.and_then(|e| e.userinfo.as_ref()), &raw_info);
        if let Some(e) = entry {
            info.extra = e.kept(&g.other);
        }
        // An OpenID Connect provider's user id is the validated `sub`.
        let uid = claims
            .as_ref()
            .and_then(|c| c.get("sub")?.as_str().map(str::to_owned))
            .or(uid);
        let mut other = g.other.clone();
        let connection = connection_values(app);
        if !connection.is_empty() {
            other.insert(
                crate::domain::providers::CONNECTION_KEY.to_owned(),
                serde_json::to_value(connection).unwrap_or_default(),
            );
        }
        Ok(TokenSecrets {
            access_token: g.access_token.expose_secret().to_owned(),
            refresh_token: g
                .refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_owned()),
            token_type: g.token_type.clone(),
            scopes: g.scopes.clone().unwrap_or_else(|| flow.scopes.clone()),
            other,
            uid,
            info,
            raw_info,
        })
    }

    /// The claims of the grant's ID token, validated. `None` without an ID token, or from a
    /// provider with no issuer to check it against (its claims are then not used). A token
    /// that fails validation ends the flow: nothing is stored.
    async fn id_token_claims(
        &self,
        client: &RegisteredApp,
        flow: &Flow,
        g: &GrantedToken,
    ) -> Result<Option<Value>, FlowError> {
        let Some(Value::String(jwt)) = g.other.get("id_token") else {
            return Ok(None);
        };
        if client.app.issuer.is_none() {
            return Ok(None);
        }
        match self
            .provider
            .verify_id_token(client, jwt, flow.nonce_hash.as_deref())
            .await
        {
            Ok(claims) => Ok(Some(claims)),
            Err(e) => {
                tracing::warn!(bot_id = %flow.bot_id, alias = %flow.alias, error = %e, "ID token refused; nothing stored");
                self.record_failure(flow, EventReason::IdentityRejected)
                    .await;
                Err(match e {
                    ProviderError::Transient { .. } | ProviderError::OutcomeUnknown => {
                        FlowError::Unavailable
                    }
                    _ => FlowError::IdentityRejected,
                })
            }
        }
    }

    /// Stores a connected token for its owner and alias (a reconnect keeps the owner's token
    /// id) and revokes what it replaced when that was another account's.
    /// Stores a connection, with what it uses up (`spend`) and its `token:<alias>` event, in
    /// one step. `None`: what it had to use up was spent by another request; nothing stored.
    pub(super) async fn store_connected(
        &self,
        new: &NewToken<'_>,
        secrets: TokenSecrets,
        spend: Spend<'_>,
    ) -> Result<Option<crate::domain::ids::TokenId>, ServiceError> {
        let now = self.clock.unix();
        let new_uid = secrets.uid.clone();
        // Written as a new token first: the store says when the owner has one for this alias
        // already (a reconnect), and the connection goes onto that id, replacing the
        // credentials it read here, which are revoked afterwards when the account changed.
        // Two flows for the same alias and owner may finish together: the loser connects
        // onto the winner's id, so the owner keeps one token id.
        let mut token_id = crate::domain::ids::TokenId::generate();
        let mut replaced: Option<TokenRecord> = None;
        for _ in 0..3 {
            let mut record = TokenRecord {
                bot_id: new.bot_id.clone(),
                token_id: token_id.clone(),
                alias: new.alias.clone(),
                provider: new.provider.clone(),
                owner: new.owner.clone(),
                status: TokenStatus::Active,
                expires_at: new.expires_at,
                sealed: self.seal_secrets(new.bot_id, &token_id, &secrets).await?,
                version: 0,
                created_at: now,
                updated_at: now,
                refresh_unsettled: None,
                upkeep: Upkeep::renewed(
                    None,
                    new.provider.as_str(),
                    new.keep_fresh,
                    renewable(new.provider, &secrets),
                    refresh_token_expires_in(&secrets.other),
                    now,
                ),
                due_at: None,
            };
            record.schedule(now, &self.upkeep);
            let event = self.event(EventKind::Token, new.into(), Some(&token_id));
            let connection = Connection {
                record: &record,
                spend,
                events: std::slice::from_ref(&event),
            };
            match self.store.save_connected(&connection).await? {
                SaveOutcome::Saved => {
                    if let Some(old) = replaced.filter(|old| old.token_id == token_id) {
                        self.revoke_replaced(&old, new_uid.as_deref()).await;
                    }
                    return Ok(Some(token_id));
                }
                SaveOutcome::Taken(other) => {
                    replaced = self.store.token(new.bot_id, &other).await?;
                    token_id = other;
                }
                SaveOutcome::Spent => return Ok(None),
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
        let mut rows = Vec::new();
        for i in self.store.integrations(&bot).await? {
            if i.context != Context::Bot {
                continue;
            }
            let status = match tokens.get(&i.alias) {
                Some(id) => self.token_status(&bot, id).await.ok(),
                None => None,
            };
            rows.push(ConnectRow {
                alias: i.alias,
                provider: i.provider,
                status,
            });
        }
        Ok((bot, rows))
    }

    /// A connect page's disconnect button: deletes the bot-context token of `alias`, with
    /// its revocation at the provider (`false`: it was not connected).
    pub async fn connect_disconnect(
        &self,
        session: &LinkId,
        alias: &Alias,
    ) -> Result<bool, FlowError> {
        let bot = self.connect_session(session).await?;
        let Some(id) = self.store.token_id_for(&bot, &Owner::Bot, alias).await? else {
            return Ok(false);
        };
        self.delete_token(&bot, &id).await.map_err(FlowError::from)
    }

    /// A connect page's button: starts a bot-context sign-in (the provider's URL), or, for a
    /// client-credentials integration, connects the app's own token at once.
    pub async fn connect_start(
        &self,
        session: &LinkId,
        alias: &Alias,
        browser: &BrowserKey,
    ) -> Result<super::Opened, FlowError> {
        let (link, integration) = self.connect_link(session, alias).await?;
        if super::credentials::entered_kind(integration.provider.as_str()).is_some() {
            return Err(FlowError::BadRequest);
        }
        if crate::domain::catalog::is_client_credentials(integration.provider.as_str()) {
            return self
                .connect_app_token(&link, &integration)
                .await
                .map(super::Opened::Done);
        }
        self.begin_flow(&link, &integration, browser)
            .await
            .map(super::Opened::Redirect)
    }

    /// A fresh bot-context link for `alias` from the connect page's session.
    pub(super) async fn connect_link(
        &self,
        session: &LinkId,
        alias: &Alias,
    ) -> Result<(Link, Integration), FlowError> {
        let bot = self.connect_session(session).await?;
        self.mint_link(&bot, alias, None, std::collections::BTreeMap::new())
            .await
            .map_err(|e| match e {
                ServiceError::Store(_) | ServiceError::Seal(_) | ServiceError::Decode(_) => {
                    FlowError::Internal(e)
                }
                _ => FlowError::NotConfigured,
            })
    }
}

/// The per-connection values an app was filled with, to keep with the token (its refresh,
/// user info and revocation go to the same shop or subdomain).
pub(super) fn connection_values(app: &ProviderApp) -> std::collections::BTreeMap<String, String> {
    use crate::domain::catalog::ParamScope;
    let Some(entry) = app.entry() else {
        return Default::default();
    };
    app.params
        .iter()
        .filter(|(k, _)| {
            entry
                .param(k)
                .is_some_and(|p| p.scope == ParamScope::Connection)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// RFC 9207: `iss`, when sent, is the provider's issuer exactly; when the provider's metadata
/// says it always sends it, a callback without it is refused (it may come from another
/// provider the user was sent to).
fn check_iss(app: &ProviderApp, iss: Option<&str>) -> Result<(), FlowError> {
    match (iss, &app.issuer) {
        (Some(sent), Some(expected)) if sent != expected => Err(FlowError::Mismatch),
        (None, Some(_)) if app.iss_parameter_supported => Err(FlowError::Mismatch),
        _ => Ok(()),
    }
}

/// What the token keeps as `raw_info`: the user-info answer over the validated ID token
/// claims (the user-info endpoint says more, and both are about the same subject).
fn merge_claims(claims: Option<&Value>, user_info: Option<Value>) -> Value {
    match (claims, user_info) {
        (Some(Value::Object(c)), Some(Value::Object(u))) => {
            let mut merged = c.clone();
            merged.extend(u);
            Value::Object(merged)
        }
        (_, Some(u)) => u,
        (Some(c), None) => c.clone(),
        (None, None) => Value::Null,
    }
}

impl<'a> From<&'a NewToken<'a>> for super::EventSubject<'a> {
    fn from(n: &'a NewToken<'a>) -> Self {
        Self {
            bot: n.bot_id,
            alias: n.alias,
            provider: n.provider,
            owner: n.owner,
        }
    }
}
