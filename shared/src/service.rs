//! The use cases of the contract, written against the ports only, so the same code runs on
//! SQLite with a key file and on DynamoDB with KMS.

use crate::domain::events::{Event, EventKind};
use crate::domain::flow_secret;
use crate::domain::ids::{
    new_state, random_urlsafe, sha256_hex, state_bot, Alias, BotId, LinkId, ProviderName, TokenId,
    UserId,
};
use crate::domain::integrations::{parse_integrations, Context, Integration, YamlIssue};
use crate::domain::providers::{
    catalog_entry, check_endpoint, normalize_user_info, ProviderApp, ProviderAppInput,
    ProviderConfigError, UserInfo, CATALOG,
};
use crate::domain::token::{
    ConnectSession, Flow, Link, Owner, TokenRecord, TokenSecrets, TokenStatus,
};
use crate::oauth::{GrantedToken, ProviderError, ProviderHttp};
use crate::ports::{
    Clock, EventPublisher, Purpose, SaveOutcome, SealContext, SealError, Sealer, Store, StoreError,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use url::Url;

pub const LINK_TTL_SECS: i64 = 30 * 60;
pub const FLOW_TTL_SECS: i64 = 10 * 60;
pub const CONNECT_SESSION_TTL_SECS: i64 = 15 * 60;
/// Longer than a provider request may take, so a live holder never loses its lease.
const LEASE_SECS: i64 = 30;
/// How long a caller waits for another caller's refresh before answering 503.
const LEASE_WAIT: Duration = Duration::from_secs(12);
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
const KEY_CACHE_MAX: usize = 10_000;
const BOT_KEY_PREFIX: &str = "bk";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        details: Vec<YamlIssue>,
    },
    #[error("the provider is unavailable")]
    ProviderUnavailable { retry_after: u64 },
    #[error("the provider failed")]
    Provider(#[source] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("stored data could not be decoded")]
    Decode(#[source] serde_json::Error),
}

fn invalid(code: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        code,
        message: message.into(),
        details: Vec::new(),
    }
}

/// Why a browser page could not go on; the HTTP layer turns each into an HTML page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
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

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::Internal(e.into())
    }
}

impl From<SealError> for PageError {
    fn from(e: SealError) -> Self {
        PageError::Internal(e.into())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Missing or wrong key: 401.
    Unauthorized,
    /// A valid key of another bot: answered like a missing resource.
    OtherBot,
    /// The key could not be checked (storage fault).
    Unavailable,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedBot {
    #[schema(value_type = String)]
    pub bot_id: BotId,
    pub api_key: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntegrationView {
    #[schema(value_type = String)]
    pub alias: Alias,
    #[schema(value_type = String)]
    pub provider: ProviderName,
    pub scope: Vec<String>,
    pub context: Context,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub token_id: Option<TokenId>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MintedLink {
    pub url: String,
    /// Unix seconds.
    pub expires_at: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessTokenView {
    pub access_token: Option<String>,
    pub expires_at: Option<i64>,
    /// `valid`, `expired` or `revoked`.
    pub status: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CredentialsView {
    pub token: String,
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub expires: bool,
    pub expires_at: Option<i64>,
    pub scopes: Vec<String>,
    pub other: serde_json::Map<String, Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExtraView {
    pub raw_info: Value,
}

/// The seed's `%Ueberauth.Auth{}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FullToken {
    #[schema(value_type = String)]
    pub id: TokenId,
    #[schema(value_type = String)]
    pub provider: ProviderName,
    #[schema(value_type = String)]
    pub alias: Alias,
    pub context: Context,
    #[schema(value_type = String)]
    pub bot_id: BotId,
    pub user_id: Option<String>,
    pub uid: Option<String>,
    pub info: UserInfo,
    pub credentials: CredentialsView,
    pub extra: ExtraView,
    pub created_at: String,
    pub updated_at: String,
    /// `active` or `revoked`.
    pub status: &'static str,
}

/// One row of the connect page.
pub struct ConnectRow {
    pub alias: Alias,
    pub provider: ProviderName,
    pub connected: bool,
}

/// The parameters a provider sends to the callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<SecretString>,
    pub state: Option<SecretString>,
    pub error: Option<String>,
    pub iss: Option<String>,
}

pub struct Connected {
    pub alias: Alias,
    pub provider: ProviderName,
}

pub struct Service {
    store: Arc<dyn Store>,
    sealer: Arc<dyn Sealer>,
    events: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    http: ProviderHttp,
    public_url: Url,
    admin_key_sha256: [u8; 32],
    key_cache: Mutex<HashMap<String, (BotId, Instant)>>,
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn token_ctx<'a>(bot: &'a BotId, id: &'a TokenId) -> SealContext<'a> {
    SealContext {
        purpose: Purpose::Token,
        bot: bot.as_str(),
        record: id.as_str(),
    }
}

pub struct ServiceParts {
    pub store: Arc<dyn Store>,
    pub sealer: Arc<dyn Sealer>,
    pub events: Arc<dyn EventPublisher>,
    pub clock: Arc<dyn Clock>,
    pub http: ProviderHttp,
    pub public_url: Url,
    pub admin_key_sha256: [u8; 32],
}

impl Service {
    pub fn new(p: ServiceParts) -> Self {
        Self {
            store: p.store,
            sealer: p.sealer,
            events: p.events,
            clock: p.clock,
            http: p.http,
            public_url: p.public_url,
            admin_key_sha256: p.admin_key_sha256,
            key_cache: Mutex::new(HashMap::new()),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.as_str().trim_end_matches('/'))
    }

    /// `{PUBLIC_URL}/oauth/callback/{provider}`: the same bytes in the authorization and
    /// token requests (security item 3).
    pub fn redirect_uri(&self, provider: &ProviderName) -> String {
        self.url(&format!("/oauth/callback/{provider}"))
    }

    // ----- keys -----

    pub fn check_admin_key(&self, presented: &str) -> bool {
        let hash = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            presented.as_bytes(),
        ));
        bool::from(hash.as_slice().ct_eq(&self.admin_key_sha256))
    }

    fn new_bot_key(bot: &BotId) -> String {
        format!("{BOT_KEY_PREFIX}.{bot}.{}", random_urlsafe(32))
    }

    /// Checks a bot key for `path_bot`. Keys name their bot, so a key of another bot is told
    /// apart from a wrong key without a lookup by key.
    pub async fn authenticate_bot(
        &self,
        path_bot: &str,
        presented: &str,
    ) -> Result<BotId, AuthError> {
        let mut parts = presented.splitn(3, '.');
        let (Some(BOT_KEY_PREFIX), Some(claimed), Some(_)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Unauthorized);
        };
        let claimed = BotId::parse(claimed).map_err(|_| AuthError::Unauthorized)?;
        let hash = sha256_hex(presented);
        let cached = self
            .key_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&hash).cloned())
            .is_some_and(|(bot, at)| bot == claimed && at.elapsed() < KEY_CACHE_TTL);
        if !cached {
            let stored = match self.store.bot_key_hash(&claimed).await {
                Ok(Some(h)) => h,
                Ok(None) => return Err(AuthError::Unauthorized),
                Err(e) => {
                    tracing::error!(error = %e, "bot key lookup failed");
                    return Err(AuthError::Unavailable);
                }
            };
            if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
                return Err(AuthError::Unauthorized);
            }
            if let Ok(mut cache) = self.key_cache.lock() {
                if cache.len() >= KEY_CACHE_MAX {
                    cache.clear();
                }
                cache.insert(hash, (claimed.clone(), Instant::now()));
            }
        }
        if claimed.as_str() == path_bot {
            Ok(claimed)
        } else {
            Err(AuthError::OtherBot)
        }
    }

    // ----- operator -----

    pub async fn create_bot(&self, bot: BotId) -> Result<CreatedBot, ServiceError> {
        let key = Self::new_bot_key(&bot);
        if !self
            .store
            .create_bot(&bot, &sha256_hex(&key), self.clock.unix())
            .await?
        {
            return Err(ServiceError::Conflict {
                code: "bot_exists",
                message: format!("bot '{bot}' already exists"),
            });
        }
        tracing::info!(bot_id = %bot, "bot created");
        Ok(CreatedBot {
            bot_id: bot,
            api_key: key,
        })
    }

    pub async fn rotate_bot_key(&self, bot: &BotId) -> Result<String, ServiceError> {
        let key = Self::new_bot_key(bot);
        if !self.store.set_bot_key(bot, &sha256_hex(&key)).await? {
            return Err(ServiceError::NotFound { what: "bot" });
        }
        if let Ok(mut cache) = self.key_cache.lock() {
            cache.retain(|_, (b, _)| b != bot);
        }
        tracing::info!(bot_id = %bot, "bot key rotated");
        Ok(key)
    }

    /// Registers or replaces a provider app; the same path serves the admin API and the
    /// local server's providers file.
    pub async fn put_provider(
        &self,
        name: &ProviderName,
        input: ProviderAppInput,
    ) -> Result<ProviderApp, ServiceError> {
        let config_error = |e: ProviderConfigError| invalid("invalid_provider", e.to_string());
        let discovery = match &input.issuer {
            Some(issuer) => {
                let url = check_endpoint("issuer", issuer).map_err(config_error)?;
                Some(self.http.discover(&url).await.map_err(|e| {
                    invalid(
                        "discovery_failed",
                        format!("OpenID Connect discovery failed: {e}"),
                    )
                })?)
            }
            None => None,
        };
        let app = input
            .resolve(name, discovery.as_ref())
            .map_err(config_error)?;
        let sealed = match &input.client_secret {
            Some(secret) => Some(
                self.sealer
                    .seal(
                        secret.expose_secret().as_bytes(),
                        SealContext {
                            purpose: Purpose::ClientSecret,
                            bot: "-",
                            record: name.as_str(),
                        },
                    )
                    .await?,
            ),
            None => None,
        };
        self.store.put_provider(&app, sealed.as_deref()).await?;
        tracing::info!(provider = %name, custom = app.custom, "provider app registered");
        Ok(app)
    }

    pub async fn providers(&self) -> Result<Vec<ProviderApp>, ServiceError> {
        Ok(self.store.providers().await?)
    }

    async fn provider_app(
        &self,
        name: &ProviderName,
    ) -> Result<Option<(ProviderApp, Option<SecretString>)>, ServiceError> {
        let Some((app, sealed)) = self.store.provider(name).await? else {
            return Ok(None);
        };
        let secret = match sealed {
            Some(s) => {
                let plain = self
                    .sealer
                    .open(
                        &s,
                        SealContext {
                            purpose: Purpose::ClientSecret,
                            bot: "-",
                            record: name.as_str(),
                        },
                    )
                    .await?;
                Some(SecretString::from(
                    String::from_utf8(plain.to_vec()).map_err(|_| SealError::Malformed)?,
                ))
            }
            None => None,
        };
        Ok(Some((app, secret)))
    }

    // ----- integrations and links -----

    pub async fn put_integrations(
        &self,
        bot: &BotId,
        yaml: &str,
    ) -> Result<Vec<IntegrationView>, ServiceError> {
        let mut known: Vec<String> = CATALOG.iter().map(|e| e.name.to_owned()).collect();
        for app in self.store.providers().await? {
            if !known.contains(&app.name.to_string()) {
                known.push(app.name.to_string());
            }
        }
        let list = parse_integrations(yaml, known.as_slice()).map_err(|details| {
            ServiceError::Invalid {
                code: "invalid_integrations",
                message: format!("the integrations file has {} problem(s)", details.len()),
                details,
            }
        })?;
        self.store.put_integrations(bot, &list).await?;
        tracing::info!(bot_id = %bot, count = list.len(), "integrations replaced");
        Ok(list.into_iter().map(|i| view(i, None)).collect())
    }

    pub async fn integrations(&self, bot: &BotId) -> Result<Vec<IntegrationView>, ServiceError> {
        let list = self.store.integrations(bot).await?;
        let bot_tokens = self.store.tokens_of(bot, &Owner::Bot).await?;
        Ok(list
            .into_iter()
            .map(|i| {
                let token = (i.context == Context::Bot).then(|| bot_tokens.get(&i.alias).cloned());
                view(i, token)
            })
            .collect())
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

    pub async fn create_link(
        &self,
        bot: &BotId,
        alias: &Alias,
        user: Option<UserId>,
    ) -> Result<MintedLink, ServiceError> {
        let link = self.mint_link(bot, alias, user).await?;
        Ok(MintedLink {
            url: self.url(&format!("/oauth/start/{}", link.link_id)),
            expires_at: link.expires_at,
        })
    }

    async fn mint_link(
        &self,
        bot: &BotId,
        alias: &Alias,
        user: Option<UserId>,
    ) -> Result<Link, ServiceError> {
        let integration = self.integration(bot, alias).await?.ok_or_else(|| {
            invalid(
                "unknown_alias",
                format!("no integration with alias '{alias}' in this bot's integrations file"),
            )
        })?;
        let owner = match (integration.context, user) {
            (Context::User, Some(u)) => Owner::User(u),
            (Context::User, None) => {
                return Err(invalid(
                    "user_id_required",
                    format!("'{alias}' is a user-context integration: give the user_id"),
                ))
            }
            (Context::Bot, None) => Owner::Bot,
            (Context::Bot, Some(_)) => {
                return Err(invalid(
                    "user_id_not_allowed",
                    format!("'{alias}' is a bot-context integration: it takes no user_id"),
                ))
            }
        };
        if self.store.provider(&integration.provider).await?.is_none() {
            return Err(ServiceError::Conflict {
                code: "provider_not_configured",
                message: format!(
                    "provider '{}' has no app registered: the operator must PUT /v1/admin/providers/{}",
                    integration.provider, integration.provider
                ),
            });
        }
        let now = self.clock.unix();
        let link = Link {
            link_id: LinkId::generate(bot),
            bot_id: bot.clone(),
            alias: alias.clone(),
            owner,
            expires_at: now + LINK_TTL_SECS,
            created_at: now,
        };
        self.store.put_link(&link).await?;
        tracing::info!(bot_id = %bot, %alias, "oauth link minted");
        Ok(link)
    }

    pub async fn tokens_of(
        &self,
        bot: &BotId,
        owner: &Owner,
    ) -> Result<BTreeMap<Alias, TokenId>, ServiceError> {
        Ok(self.store.tokens_of(bot, owner).await?)
    }

    // ----- browser flow -----

    /// `GET /oauth/start/{link}`: records a flow and answers the provider's URL.
    pub async fn start(&self, link_id: &str) -> Result<Url, PageError> {
        let link_id = LinkId::parse(link_id).map_err(|_| PageError::UnknownLink)?;
        let link = self
            .store
            .link(&link_id)
            .await?
            .ok_or(PageError::UnknownLink)?;
        let now = self.clock.unix();
        if link.expires_at <= now {
            return Err(PageError::ExpiredLink);
        }
        let integration = self
            .integration(&link.bot_id, &link.alias)
            .await?
            .ok_or(PageError::NotConfigured)?;
        // The authorization request carries no secret: read the app without opening it.
        let (app, _) = self
            .store
            .provider(&integration.provider)
            .await?
            .ok_or(PageError::NotConfigured)?;
        let state = SecretString::from(new_state(&link.bot_id));
        let redirect_uri = self.redirect_uri(&app.name);
        let auth = self
            .http
            .authorize(
                &app,
                &redirect_uri,
                &app.scope_param(&integration.scope),
                &state,
            )
            .map_err(|e| PageError::Internal(ServiceError::Provider(e)))?;
        let state_hash = sha256_hex(state.expose_secret());
        let sealed_verifier = auth
            .pkce_verifier
            .as_ref()
            .map(|v| flow_secret::seal(v.expose_secret(), state.expose_secret(), &state_hash));
        let flow = Flow {
            state_hash,
            link_id: link.link_id.clone(),
            bot_id: link.bot_id.clone(),
            alias: link.alias.clone(),
            provider: app.name.clone(),
            owner: link.owner.clone(),
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
    ) -> Result<Connected, PageError> {
        let state = params.state.as_ref().ok_or(PageError::BadRequest)?;
        let state_owner = state_bot(state.expose_secret()).ok_or(PageError::UnknownState)?;
        let flow = self
            .store
            .take_flow(&state_owner, &sha256_hex(state.expose_secret()))
            .await?
            .ok_or(PageError::UnknownState)?;
        let now = self.clock.unix();
        if flow.expires_at <= now {
            return Err(PageError::ExpiredState);
        }
        if flow.provider.as_str() != provider {
            tracing::warn!(bot_id = %flow.bot_id, expected = %flow.provider, "callback arrived on another provider's path");
            return Err(PageError::Mismatch);
        }
        let (app, secret) = self
            .provider_app(&flow.provider)
            .await?
            .ok_or(PageError::NotConfigured)?;
        if let (Some(sent), Some(expected)) = (&params.iss, &app.issuer) {
            if sent.trim_end_matches('/') != expected.trim_end_matches('/') {
                tracing::warn!(bot_id = %flow.bot_id, provider = %app.name, "callback 'iss' does not match the provider's issuer");
                return Err(PageError::Mismatch);
            }
        }
        if let Some(code) = params.error {
            let code: String = code
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            tracing::info!(bot_id = %flow.bot_id, alias = %flow.alias, error = %code, "provider reported an error");
            self.emit(
                EventKind::OauthFailed,
                &flow.bot_id,
                &flow.alias,
                &flow.provider,
                &flow.owner,
                None,
            )
            .await;
            return Err(PageError::Declined { code });
        }
        let code = params.code.as_ref().ok_or(PageError::BadRequest)?;
        if self.store.link(&flow.link_id).await?.is_none() {
            return Err(PageError::ExpiredLink);
        }
        let verifier = match &flow.sealed_verifier {
            Some(sealed) => {
                let plain = flow_secret::open(sealed, state.expose_secret(), &flow.state_hash)
                    .map_err(|_| PageError::Internal(SealError::Open.into()))?;
                Some(SecretString::from(plain.as_str().to_owned()))
            }
            None => None,
        };
        // The flow record is gone already: whatever happens next, this code is not sent again
        // (security item 5).
        let granted = match self
            .http
            .exchange_code(&app, secret.as_ref(), &flow.redirect_uri, code, verifier)
            .await
        {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(bot_id = %flow.bot_id, alias = %flow.alias, error = %e, "code exchange failed");
                self.emit(
                    EventKind::OauthFailed,
                    &flow.bot_id,
                    &flow.alias,
                    &flow.provider,
                    &flow.owner,
                    None,
                )
                .await;
                return Err(match e {
                    ProviderError::Transient { .. } => PageError::Unavailable,
                    _ => PageError::ProviderFailed,
                });
            }
        };
        let raw_info = match self.http.user_info(&app, &granted.access_token).await {
            Ok(v) => v.unwrap_or(Value::Null),
            Err(e) => {
                tracing::warn!(provider = %app.name, error = %e, "user info unavailable; storing the token without it");
                Value::Null
            }
        };
        let raw_info = match (&raw_info, granted.other.get("id_token")) {
            (Value::Null, Some(Value::String(jwt))) => id_token_claims(jwt).unwrap_or(Value::Null),
            _ => raw_info,
        };
        let (uid, info) = normalize_user_info(app.userinfo_style, &raw_info);
        let requested = app.scope_param(
            &self
                .integration(&flow.bot_id, &flow.alias)
                .await?
                .map(|i| i.scope)
                .unwrap_or_default(),
        );
        let secrets = secrets_from(&granted, requested, uid, info, raw_info);
        let token_id = self
            .store_connected(&flow, &app, &granted, secrets, now)
            .await?;
        self.store.delete_link(&flow.link_id).await?;
        tracing::info!(bot_id = %flow.bot_id, alias = %flow.alias, %token_id, "token stored");
        self.emit(
            EventKind::Token,
            &flow.bot_id,
            &flow.alias,
            &flow.provider,
            &flow.owner,
            Some(&token_id),
        )
        .await;
        Ok(Connected {
            alias: flow.alias,
            provider: flow.provider,
        })
    }

    async fn store_connected(
        &self,
        flow: &Flow,
        app: &ProviderApp,
        granted: &GrantedToken,
        secrets: TokenSecrets,
        now: i64,
    ) -> Result<TokenId, ServiceError> {
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(&secrets).map_err(ServiceError::Decode)?);
        let mut token_id = self
            .store
            .token_id_for(&flow.bot_id, &flow.owner, &flow.alias)
            .await?
            .unwrap_or_else(TokenId::generate);
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
                expires_at: expiry(app, granted.expires_in, now),
                sealed: self
                    .sealer
                    .seal(&plain, token_ctx(&flow.bot_id, &token_id))
                    .await?,
                version: 0,
                created_at: now,
                updated_at: now,
            };
            match self.store.save_connected(&record).await? {
                SaveOutcome::Saved => return Ok(token_id),
                SaveOutcome::Taken(other) => token_id = other,
            }
        }
        Err(ServiceError::Conflict {
            code: "concurrent_connect",
            message: "the token changed while it was being stored".into(),
        })
    }

    async fn emit(
        &self,
        kind: EventKind,
        bot: &BotId,
        alias: &Alias,
        provider: &ProviderName,
        owner: &Owner,
        token: Option<&TokenId>,
    ) {
        let event = Event::new(kind, bot, alias, provider, owner, token, self.clock.now());
        if let Err(e) = self.events.publish(std::slice::from_ref(&event)).await {
            // The state change is committed; the event is reported, never dropped silently.
            tracing::error!(event_id = %event.detail.event_id, detail_type = %event.detail_type, error = %e, "event could not be published");
        }
    }

    // ----- tokens -----

    async fn record(&self, bot: &BotId, id: &str) -> Result<TokenRecord, ServiceError> {
        let id = TokenId::parse(id).map_err(|_| ServiceError::NotFound { what: "token" })?;
        self.store
            .token(bot, &id)
            .await?
            .ok_or(ServiceError::NotFound { what: "token" })
    }

    async fn open(&self, record: &TokenRecord) -> Result<TokenSecrets, ServiceError> {
        let plain = self
            .sealer
            .open(&record.sealed, token_ctx(&record.bot_id, &record.token_id))
            .await?;
        serde_json::from_slice(&plain).map_err(ServiceError::Decode)
    }

    pub async fn token_info(&self, bot: &BotId, id: &str) -> Result<UserInfo, ServiceError> {
        let record = self.record(bot, id).await?;
        Ok(self.open(&record).await?.info.clone())
    }

    pub async fn full_token(&self, bot: &BotId, id: &str) -> Result<FullToken, ServiceError> {
        let record = self.record(bot, id).await?;
        let s = self.open(&record).await?;
        Ok(FullToken {
            id: record.token_id.clone(),
            provider: record.provider.clone(),
            alias: record.alias.clone(),
            context: record.owner.context(),
            bot_id: record.bot_id.clone(),
            user_id: record.owner.user_id().map(|u| u.to_string()),
            uid: s.uid.clone(),
            info: s.info.clone(),
            credentials: CredentialsView {
                token: s.access_token.clone(),
                refresh_token: s.refresh_token.clone(),
                token_type: s.token_type.clone(),
                expires: record.expires_at.is_some(),
                expires_at: record.expires_at,
                scopes: s.scopes.clone(),
                other: s.other.clone(),
            },
            extra: ExtraView {
                raw_info: s.raw_info.clone(),
            },
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
            status: record.status.as_str(),
        })
    }

    /// `get_access_token`: the warm path is one store read and one decryption; a token due
    /// for refresh is refreshed under the lease first.
    pub async fn access_token(
        &self,
        bot: &BotId,
        id: &str,
    ) -> Result<AccessTokenView, ServiceError> {
        let record = self.record(bot, id).await?;
        if record.status == TokenStatus::Revoked {
            return Ok(revoked());
        }
        let secrets = self.open(&record).await?;
        if !record.refresh_due(self.clock.unix()) {
            return Ok(valid(&secrets, record.expires_at));
        }
        if secrets.refresh_token.is_none() {
            return Ok(without_refresh(
                &secrets,
                record.expires_at,
                self.clock.unix(),
            ));
        }
        drop(secrets);
        self.refresh(record).await
    }

    async fn refresh(&self, record: TokenRecord) -> Result<AccessTokenView, ServiceError> {
        let holder = random_urlsafe(12);
        let waited = Instant::now();
        let mut backoff = Duration::from_millis(25);
        loop {
            let now = self.clock.unix();
            if self
                .store
                .acquire_lease(
                    &record.bot_id,
                    &record.token_id,
                    &holder,
                    now + LEASE_SECS,
                    now,
                )
                .await?
            {
                // Re-read under the lease: another holder may have refreshed meanwhile.
                let fresh = self.store.token(&record.bot_id, &record.token_id).await?;
                let result = match fresh {
                    None => Err(ServiceError::NotFound { what: "token" }),
                    Some(f) if f.status == TokenStatus::Revoked => Ok(Some(revoked())),
                    Some(f) if !f.refresh_due(now) => {
                        let s = self.open(&f).await?;
                        Ok(Some(valid(&s, f.expires_at)))
                    }
                    Some(f) => self.refresh_under_lease(f, &holder).await,
                };
                match result {
                    Ok(Some(view)) => {
                        self.release(&record, &holder).await;
                        return Ok(view);
                    }
                    // The fenced commit lost: the token was reconnected meanwhile; read again.
                    Ok(None) => {}
                    Err(e) => {
                        self.release(&record, &holder).await;
                        return Err(e);
                    }
                }
            } else {
                let current = self
                    .store
                    .token(&record.bot_id, &record.token_id)
                    .await?
                    .ok_or(ServiceError::NotFound { what: "token" })?;
                if current.status == TokenStatus::Revoked {
                    return Ok(revoked());
                }
                if !current.refresh_due(now) {
                    let s = self.open(&current).await?;
                    return Ok(valid(&s, current.expires_at));
                }
            }
            if waited.elapsed() > LEASE_WAIT {
                return Err(ServiceError::ProviderUnavailable { retry_after: 2 });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(250));
        }
    }

    async fn release(&self, record: &TokenRecord, holder: &str) {
        if let Err(e) = self
            .store
            .release_lease(&record.bot_id, &record.token_id, holder)
            .await
        {
            tracing::warn!(token_id = %record.token_id, error = %e, "refresh lease not released; it expires by itself");
        }
    }

    /// Refreshes `fresh` while holding the lease. `Ok(None)`: the fenced commit lost.
    async fn refresh_under_lease(
        &self,
        fresh: TokenRecord,
        holder: &str,
    ) -> Result<Option<AccessTokenView>, ServiceError> {
        let mut secrets = self.open(&fresh).await?;
        let Some(refresh_token) = secrets.refresh_token.clone().map(SecretString::from) else {
            return Ok(Some(without_refresh(
                &secrets,
                fresh.expires_at,
                self.clock.unix(),
            )));
        };
        let Some((app, client_secret)) = self.provider_app(&fresh.provider).await? else {
            return Err(ServiceError::Conflict {
                code: "provider_not_configured",
                message: format!("provider '{}' has no app registered", fresh.provider),
            });
        };
        let now = self.clock.unix();
        let outcome = self
            .http
            .refresh(
                &app,
                client_secret.as_ref(),
                &self.redirect_uri(&app.name),
                &refresh_token,
            )
            .await;
        let mut next = fresh.clone();
        next.updated_at = now;
        match outcome {
            Ok(g) => {
                let scopes = g.scopes.clone().unwrap_or_else(|| secrets.scopes.clone());
                secrets.access_token = g.access_token.expose_secret().to_owned();
                // Keep the old refresh token when the provider does not rotate it (item 14).
                if let Some(rt) = &g.refresh_token {
                    secrets.refresh_token = Some(rt.expose_secret().to_owned());
                }
                secrets.scopes = scopes;
                for (k, v) in &g.other {
                    secrets.other.insert(k.clone(), v.clone());
                }
                next.expires_at = expiry(&app, g.expires_in, now);
                let plain = zeroize::Zeroizing::new(
                    serde_json::to_vec(&secrets).map_err(ServiceError::Decode)?,
                );
                next.sealed = self
                    .sealer
                    .seal(&plain, token_ctx(&next.bot_id, &next.token_id))
                    .await?;
                if !self
                    .store
                    .commit_refresh(&next, fresh.version, holder)
                    .await?
                {
                    return Ok(None);
                }
                tracing::info!(bot_id = %next.bot_id, token_id = %next.token_id, "token refreshed");
                Ok(Some(valid(&secrets, next.expires_at)))
            }
            Err(ProviderError::Final { code }) => {
                next.status = TokenStatus::Revoked;
                if !self
                    .store
                    .commit_refresh(&next, fresh.version, holder)
                    .await?
                {
                    return Ok(None);
                }
                tracing::warn!(bot_id = %next.bot_id, token_id = %next.token_id, %code, "refresh refused for good; token revoked");
                self.emit(
                    EventKind::TokenRevoked,
                    &next.bot_id,
                    &next.alias,
                    &next.provider,
                    &next.owner,
                    Some(&next.token_id),
                )
                .await;
                Ok(Some(revoked()))
            }
            Err(ProviderError::Transient { retry_after }) => {
                tracing::warn!(token_id = %fresh.token_id, "provider unavailable for refresh");
                Err(ServiceError::ProviderUnavailable {
                    retry_after: retry_after.unwrap_or(5).clamp(1, 300),
                })
            }
            Err(e) => Err(ServiceError::Provider(e)),
        }
    }

    /// `delete_token`: removes the token, then revokes it at the provider (best effort).
    pub async fn delete_token(&self, bot: &BotId, id: &str) -> Result<bool, ServiceError> {
        let Ok(id) = TokenId::parse(id) else {
            return Ok(false);
        };
        let Some(record) = self.store.delete_token(bot, &id).await? else {
            return Ok(false);
        };
        tracing::info!(bot_id = %bot, token_id = %id, "token deleted");
        self.revoke_at_provider(&record).await;
        self.emit(
            EventKind::TokenDeleted,
            &record.bot_id,
            &record.alias,
            &record.provider,
            &record.owner,
            Some(&record.token_id),
        )
        .await;
        Ok(true)
    }

    async fn revoke_at_provider(&self, record: &TokenRecord) {
        let secrets = match self.open(record).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(token_id = %record.token_id, error = %e, "deleted token could not be opened for revocation");
                return;
            }
        };
        let app = match self.provider_app(&record.provider).await {
            Ok(Some(a)) => a,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(token_id = %record.token_id, error = %e, "provider app unavailable for revocation");
                return;
            }
        };
        let (app, client_secret) = app;
        let access = SecretString::from(secrets.access_token.clone());
        let refresh = secrets.refresh_token.clone().map(SecretString::from);
        if let Err(e) = self
            .http
            .revoke(&app, client_secret.as_ref(), &access, refresh.as_ref())
            .await
        {
            tracing::warn!(token_id = %record.token_id, provider = %app.name, error = %e, "revocation at the provider failed; the token is deleted here");
        }
    }

    // ----- connect page -----

    pub async fn create_connect_session(&self, bot: &BotId) -> Result<MintedLink, ServiceError> {
        let session = ConnectSession {
            session_id: LinkId::generate(bot),
            bot_id: bot.clone(),
            expires_at: self.clock.unix() + CONNECT_SESSION_TTL_SECS,
        };
        self.store.put_connect_session(&session).await?;
        Ok(MintedLink {
            url: self.url(&format!("/connect/{}", session.session_id)),
            expires_at: session.expires_at,
        })
    }

    async fn session(&self, id: &str) -> Result<ConnectSession, PageError> {
        let id = LinkId::parse(id).map_err(|_| PageError::UnknownLink)?;
        let s = self
            .store
            .connect_session(&id)
            .await?
            .ok_or(PageError::UnknownLink)?;
        if s.expires_at <= self.clock.unix() {
            return Err(PageError::ExpiredLink);
        }
        Ok(s)
    }

    pub async fn connect_page(&self, session: &str) -> Result<(BotId, Vec<ConnectRow>), PageError> {
        let s = self.session(session).await?;
        let tokens = self.store.tokens_of(&s.bot_id, &Owner::Bot).await?;
        let rows = self
            .store
            .integrations(&s.bot_id)
            .await?
            .into_iter()
            .filter(|i| i.context == Context::Bot)
            .map(|i| ConnectRow {
                connected: tokens.contains_key(&i.alias),
                alias: i.alias,
                provider: i.provider,
            })
            .collect();
        Ok((s.bot_id, rows))
    }

    /// Starts a bot-context flow from the connect page; answers the provider's URL.
    pub async fn connect_start(&self, session: &str, alias: &str) -> Result<Url, PageError> {
        let s = self.session(session).await?;
        let alias = Alias::parse(alias).map_err(|_| PageError::NotConfigured)?;
        let link = self
            .mint_link(&s.bot_id, &alias, None)
            .await
            .map_err(|e| match e {
                ServiceError::Invalid { .. } | ServiceError::Conflict { .. } => {
                    PageError::NotConfigured
                }
                other => PageError::Internal(other),
            })?;
        self.start(link.link_id.as_str()).await
    }
}

fn view(i: Integration, token: Option<Option<TokenId>>) -> IntegrationView {
    IntegrationView {
        alias: i.alias,
        provider: i.provider,
        scope: i.scope,
        context: i.context,
        connected: token.as_ref().map(Option::is_some),
        token_id: token.flatten(),
    }
}

fn valid(s: &TokenSecrets, expires_at: Option<i64>) -> AccessTokenView {
    AccessTokenView {
        access_token: Some(s.access_token.clone()),
        expires_at,
        status: "valid",
    }
}

/// A token that cannot be refreshed stays usable until it actually expires.
fn without_refresh(s: &TokenSecrets, expires_at: Option<i64>, now: i64) -> AccessTokenView {
    match expires_at {
        Some(at) if at <= now => AccessTokenView {
            access_token: None,
            expires_at,
            status: "expired",
        },
        _ => valid(s, expires_at),
    }
}

fn revoked() -> AccessTokenView {
    AccessTokenView {
        access_token: None,
        expires_at: None,
        status: "revoked",
    }
}

/// When the provider gives no `expires_in`, the token does not expire unless the provider
/// is known to expire its tokens (security item 12).
fn expiry(app: &ProviderApp, expires_in: Option<u64>, now: i64) -> Option<i64> {
    match expires_in {
        Some(secs) => Some(now + i64::try_from(secs).unwrap_or(i64::MAX / 2)),
        None => app
            .assumed_lifetime_secs
            .or_else(|| catalog_entry(app.name.as_str()).and_then(|e| e.assumed_lifetime_secs))
            .map(|l| now + l),
    }
}

fn secrets_from(
    g: &GrantedToken,
    requested: Vec<String>,
    uid: Option<String>,
    info: UserInfo,
    raw_info: Value,
) -> TokenSecrets {
    TokenSecrets {
        access_token: g.access_token.expose_secret().to_owned(),
        refresh_token: g
            .refresh_token
            .as_ref()
            .map(|r| r.expose_secret().to_owned()),
        token_type: g.token_type.clone(),
        scopes: g.scopes.clone().unwrap_or(requested),
        other: g.other.clone(),
        uid,
        info,
        raw_info,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::jsonl_events::JsonlEvents;
    use crate::adapters::local_key::LocalKeySealer;
    use crate::adapters::sqlite::SqliteStore;
    use crate::domain::providers::ProviderAppInput;
    use crate::domain::token::ConnectSession;
    use crate::ports::{BotStore, FlowStore, ProviderStore, TokenStore};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Counts every call into the store and every unseal, to pin down what a path costs.
    struct Counting {
        store: SqliteStore,
        sealer: LocalKeySealer,
        store_calls: AtomicUsize,
        opens: AtomicUsize,
    }

    struct CountingStore(Arc<Counting>);
    struct CountingSealer(Arc<Counting>);

    macro_rules! counted {
        ($self:ident . $m:ident ( $($a:expr),* )) => {{
            $self.0.store_calls.fetch_add(1, SeqCst);
            $self.0.store.$m($($a),*).await
        }};
    }

    #[async_trait]
    impl BotStore for CountingStore {
        async fn create_bot(&self, b: &BotId, h: &str, n: i64) -> Result<bool, StoreError> {
            counted!(self.create_bot(b, h, n))
        }
        async fn set_bot_key(&self, b: &BotId, h: &str) -> Result<bool, StoreError> {
            counted!(self.set_bot_key(b, h))
        }
        async fn bot_key_hash(&self, b: &BotId) -> Result<Option<String>, StoreError> {
            counted!(self.bot_key_hash(b))
        }
        async fn put_integrations(&self, b: &BotId, l: &[Integration]) -> Result<(), StoreError> {
            counted!(self.put_integrations(b, l))
        }
        async fn integrations(&self, b: &BotId) -> Result<Vec<Integration>, StoreError> {
            counted!(self.integrations(b))
        }
    }

    #[async_trait]
    impl ProviderStore for CountingStore {
        async fn put_provider(&self, a: &ProviderApp, s: Option<&str>) -> Result<(), StoreError> {
            counted!(self.put_provider(a, s))
        }
        async fn provider(
            &self,
            n: &ProviderName,
        ) -> Result<Option<(ProviderApp, Option<String>)>, StoreError> {
            counted!(self.provider(n))
        }
        async fn providers(&self) -> Result<Vec<ProviderApp>, StoreError> {
            counted!(self.providers())
        }
    }

    #[async_trait]
    impl FlowStore for CountingStore {
        async fn put_link(&self, l: &Link) -> Result<(), StoreError> {
            counted!(self.put_link(l))
        }
        async fn link(&self, i: &LinkId) -> Result<Option<Link>, StoreError> {
            counted!(self.link(i))
        }
        async fn delete_link(&self, i: &LinkId) -> Result<(), StoreError> {
            counted!(self.delete_link(i))
        }
        async fn put_flow(&self, f: &Flow) -> Result<(), StoreError> {
            counted!(self.put_flow(f))
        }
        async fn take_flow(&self, b: &BotId, h: &str) -> Result<Option<Flow>, StoreError> {
            counted!(self.take_flow(b, h))
        }
        async fn put_connect_session(&self, s: &ConnectSession) -> Result<(), StoreError> {
            counted!(self.put_connect_session(s))
        }
        async fn connect_session(&self, i: &LinkId) -> Result<Option<ConnectSession>, StoreError> {
            counted!(self.connect_session(i))
        }
    }

    #[async_trait]
    impl TokenStore for CountingStore {
        async fn token(&self, b: &BotId, i: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
            counted!(self.token(b, i))
        }
        async fn token_id_for(
            &self,
            b: &BotId,
            o: &Owner,
            a: &Alias,
        ) -> Result<Option<TokenId>, StoreError> {
            counted!(self.token_id_for(b, o, a))
        }
        async fn tokens_of(
            &self,
            b: &BotId,
            o: &Owner,
        ) -> Result<BTreeMap<Alias, TokenId>, StoreError> {
            counted!(self.tokens_of(b, o))
        }
        async fn save_connected(&self, r: &TokenRecord) -> Result<SaveOutcome, StoreError> {
            counted!(self.save_connected(r))
        }
        async fn delete_token(
            &self,
            b: &BotId,
            i: &TokenId,
        ) -> Result<Option<TokenRecord>, StoreError> {
            counted!(self.delete_token(b, i))
        }
        async fn acquire_lease(
            &self,
            b: &BotId,
            i: &TokenId,
            h: &str,
            u: i64,
            n: i64,
        ) -> Result<bool, StoreError> {
            counted!(self.acquire_lease(b, i, h, u, n))
        }
        async fn commit_refresh(
            &self,
            r: &TokenRecord,
            v: i64,
            h: &str,
        ) -> Result<bool, StoreError> {
            counted!(self.commit_refresh(r, v, h))
        }
        async fn release_lease(&self, b: &BotId, i: &TokenId, h: &str) -> Result<(), StoreError> {
            counted!(self.release_lease(b, i, h))
        }
    }

    #[async_trait]
    impl Sealer for CountingSealer {
        async fn seal(&self, p: &[u8], c: SealContext<'_>) -> Result<String, SealError> {
            self.0.sealer.seal(p, c).await
        }
        async fn open(
            &self,
            s: &str,
            c: SealContext<'_>,
        ) -> Result<zeroize::Zeroizing<Vec<u8>>, SealError> {
            self.0.opens.fetch_add(1, SeqCst);
            self.0.sealer.open(s, c).await
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        counts: Arc<Counting>,
        service: Service,
        bot: BotId,
        key: String,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let counts = Arc::new(Counting {
            store: SqliteStore::open(&dir.path().join("db")).unwrap(),
            sealer: LocalKeySealer::open_or_create(&dir.path().join("key")).unwrap(),
            store_calls: AtomicUsize::new(0),
            opens: AtomicUsize::new(0),
        });
        let service = Service::new(ServiceParts {
            store: Arc::new(CountingStore(Arc::clone(&counts))),
            sealer: Arc::new(CountingSealer(Arc::clone(&counts))),
            events: Arc::new(JsonlEvents::new(
                &dir.path().join("events.jsonl"),
                "t",
                None,
            )),
            clock: Arc::new(crate::ports::SystemClock),
            http: ProviderHttp::new(crate::oauth::http_client().unwrap()),
            public_url: Url::parse("https://svc.example").unwrap(),
            admin_key_sha256: [0; 32],
        });
        let bot = BotId::parse("acme").unwrap();
        let key = service.create_bot(bot.clone()).await.unwrap().api_key;
        // Endpoints on a closed loopback port: any provider call would fail the test.
        let input: ProviderAppInput = serde_json::from_value(serde_json::json!({
            "client_id": "c", "client_secret": "s",
            "authorize_url": "http://127.0.0.1:9/authorize", "token_url": "http://127.0.0.1:9/token"
        }))
        .unwrap();
        service
            .put_provider(&ProviderName::parse("acme_idp").unwrap(), input)
            .await
            .unwrap();
        service
            .put_integrations(&bot, "- provider: acme_idp\n  context: user\n")
            .await
            .unwrap();
        Setup {
            _dir: dir,
            counts,
            service,
            bot,
            key,
        }
    }

    async fn stored_token(s: &Setup, expires_at: Option<i64>, refresh: Option<&str>) -> TokenId {
        let id = TokenId::generate();
        let secrets = TokenSecrets {
            access_token: "at-1".into(),
            refresh_token: refresh.map(str::to_owned),
            token_type: "Bearer".into(),
            scopes: vec![],
            other: Default::default(),
            uid: None,
            info: UserInfo::default(),
            raw_info: Value::Null,
        };
        let sealed = s
            .counts
            .sealer
            .seal(
                &serde_json::to_vec(&secrets).unwrap(),
                token_ctx(&s.bot, &id),
            )
            .await
            .unwrap();
        let record = TokenRecord {
            bot_id: s.bot.clone(),
            token_id: id.clone(),
            alias: Alias::parse("acme_idp").unwrap(),
            provider: ProviderName::parse("acme_idp").unwrap(),
            owner: Owner::User(UserId::parse(&format!("u-{id}")).unwrap()),
            status: TokenStatus::Active,
            expires_at,
            sealed,
            version: 0,
            created_at: 0,
            updated_at: 0,
        };
        s.counts.store.save_connected(&record).await.unwrap();
        id
    }

    fn reset(s: &Setup) {
        s.counts.store_calls.store(0, SeqCst);
        s.counts.opens.store(0, SeqCst);
    }

    #[tokio::test]
    async fn a_warm_access_token_costs_one_store_read_and_one_decryption() {
        let s = setup().await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let id = stored_token(&s, Some(now + 3600), Some("rt-1")).await;
        s.service.authenticate_bot("acme", &s.key).await.unwrap();
        reset(&s);

        s.service.authenticate_bot("acme", &s.key).await.unwrap();
        let view = s.service.access_token(&s.bot, id.as_str()).await.unwrap();
        assert_eq!(
            (view.status, view.access_token.as_deref()),
            ("valid", Some("at-1"))
        );
        assert_eq!(s.counts.store_calls.load(SeqCst), 1, "store calls");
        assert_eq!(s.counts.opens.load(SeqCst), 1, "decryptions");
    }

    #[tokio::test]
    async fn tokens_that_cannot_be_refreshed_say_why_without_a_provider_call() {
        let s = setup().await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expired = stored_token(&s, Some(now - 10), None).await;
        let view = s
            .service
            .access_token(&s.bot, expired.as_str())
            .await
            .unwrap();
        assert_eq!((view.status, view.access_token), ("expired", None));

        // Inside the refresh margin but not expired, with nothing to refresh with: still usable.
        let closing = stored_token(&s, Some(now + 30), None).await;
        let view = s
            .service
            .access_token(&s.bot, closing.as_str())
            .await
            .unwrap();
        assert_eq!(
            (view.status, view.access_token.as_deref()),
            ("valid", Some("at-1"))
        );

        let forever = stored_token(&s, None, None).await;
        let view = s
            .service
            .access_token(&s.bot, forever.as_str())
            .await
            .unwrap();
        assert_eq!((view.status, view.expires_at), ("valid", None));

        // Due with a refresh token, but the provider is unreachable: 503, nothing changed.
        let due = stored_token(&s, Some(now + 30), Some("rt-1")).await;
        let before = s.counts.store.token(&s.bot, &due).await.unwrap();
        let err = s
            .service
            .access_token(&s.bot, due.as_str())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::ProviderUnavailable { .. }),
            "{err:?}"
        );
        let after = s.counts.store.token(&s.bot, &due).await.unwrap();
        assert_eq!(before, after);
        // The lease was released: the next caller can try at once.
        assert!(s
            .counts
            .store
            .acquire_lease(&s.bot, &due, "next", now + 30, now)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn bot_keys_name_their_bot() {
        let s = setup().await;
        assert_eq!(
            s.service.authenticate_bot("acme", &s.key).await,
            Ok(s.bot.clone())
        );
        assert_eq!(
            s.service.authenticate_bot("beta", &s.key).await,
            Err(AuthError::OtherBot)
        );
        let forged = s.key.replacen("bk.acme.", "bk.beta.", 1);
        assert_eq!(
            s.service.authenticate_bot("beta", &forged).await,
            Err(AuthError::Unauthorized)
        );
        assert_eq!(
            s.service.authenticate_bot("acme", "bk.acme.x").await,
            Err(AuthError::Unauthorized)
        );
        let rotated = s.service.rotate_bot_key(&s.bot).await.unwrap();
        assert_eq!(
            s.service.authenticate_bot("acme", &s.key).await,
            Err(AuthError::Unauthorized)
        );
        assert_eq!(
            s.service.authenticate_bot("acme", &rotated).await,
            Ok(s.bot.clone())
        );
    }
}
