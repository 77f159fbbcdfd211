//! What the service needs from the outside world: a store, a sealer, an event publisher,
//! a provider client and a clock. Each embedded adapter (SQLite, key file, events file), each
//! AWS adapter and the OAuth client implement these; the use cases only see the traits.

use crate::crypto::{CryptoError, Sealed};
use crate::domain::events::{Event, OutboxEvent};
use crate::domain::ids::{Alias, BotId, LinkId, ProviderName, TokenId, UserId};
use crate::domain::integrations::Integration;
use crate::domain::providers::{Discovery, ProviderApp};
use crate::domain::token::{
    ConnectSession, Flow, Link, Owner, PendingConnection, PendingRevocation, TokenRecord,
};
use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage is unavailable")]
    Unavailable(#[source] BoxError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Outcome of writing a freshly connected token.
#[derive(Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    /// Another token already holds this (bot, owner, alias): connect onto that id instead.
    Taken(TokenId),
    /// What the connection had to use up is no longer its own: the link was spent or claimed
    /// by another flow, or the waiting sign-in was confirmed or dropped by another request.
    /// Nothing was written.
    Spent,
}

/// What a finished sign-in uses up, in the same step as its token is stored.
#[derive(Debug, Clone, Copy)]
pub enum Spend<'a> {
    /// The link the flow started from, claimed by the flow (`claimant`) before its code
    /// exchange; removed with the claim as the condition.
    Link { key: &'a str, claimant: &'a str },
    /// A sign-in that waited for its confirmation; removed on condition that it still exists.
    Pending(&'a PendingConnection),
}

/// The end of a sign-in, written as one step: the token, what it uses up, and its events.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    pub record: &'a TokenRecord,
    pub spend: Spend<'a>,
    pub events: &'a [Event],
}

#[async_trait]
pub trait BotStore: Send + Sync {
    /// `false` when the bot exists already.
    async fn create_bot(&self, bot: &BotId, key_hash: &str, now: i64) -> Result<bool, StoreError>;
    /// `false` when there is no such bot.
    async fn set_bot_key(&self, bot: &BotId, key_hash: &str) -> Result<bool, StoreError>;
    async fn bot_key_hash(&self, bot: &BotId) -> Result<Option<String>, StoreError>;
    /// The bot's `confirm_url` (for `confirm: redirect`); `false` when there is no such bot.
    async fn set_confirm_url(&self, bot: &BotId, url: Option<&str>) -> Result<bool, StoreError>;
    async fn confirm_url(&self, bot: &BotId) -> Result<Option<String>, StoreError>;
    async fn put_integrations(&self, bot: &BotId, list: &[Integration]) -> Result<(), StoreError>;
    async fn integrations(&self, bot: &BotId) -> Result<Vec<Integration>, StoreError>;
}

#[async_trait]
pub trait ProviderStore: Send + Sync {
    async fn put_provider(
        &self,
        app: &ProviderApp,
        sealed_secret: Option<&Sealed>,
    ) -> Result<(), StoreError>;
    /// The app and its sealed client secret.
    async fn provider(
        &self,
        name: &ProviderName,
    ) -> Result<Option<(ProviderApp, Option<Sealed>)>, StoreError>;
    async fn providers(&self) -> Result<Vec<ProviderApp>, StoreError>;
}

#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Links, flows and connect sessions are stored under the SHA-256 of their ids.
    async fn put_link(&self, link: &Link) -> Result<(), StoreError>;
    async fn link(&self, id: &LinkId) -> Result<Option<Link>, StoreError>;
    /// Claims the link for the flow `claimant` until `until`, unless another flow holds an
    /// unexpired claim (`false`, also when the link is gone): of two flows from one link only
    /// one exchanges its code. The link is removed when the connection is stored
    /// ([`Spend::Link`]); a claim whose flow died with a fault expires, and the link works
    /// again.
    async fn claim_link(
        &self,
        bot: &BotId,
        link_key: &str,
        claimant: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Stores a flow of link `link`, unless the link is gone or already started `max_flows`
    /// flows (`false`): a link requested in a loop writes at most `max_flows` records.
    async fn start_flow(
        &self,
        link: &LinkId,
        flow: &Flow,
        max_flows: i64,
    ) -> Result<bool, StoreError>;
    /// Removes and returns the flow in one step, so a `state` is used at most once
    /// even when two callbacks race (security item 1).
    async fn take_flow(&self, bot: &BotId, state_hash: &str) -> Result<Option<Flow>, StoreError>;
    async fn put_connect_session(&self, session: &ConnectSession) -> Result<(), StoreError>;
    /// Sign-ins waiting for their chat user's confirmation code (`confirm: code`, listed by
    /// user) or for the platform's confirmation (`confirm: redirect`, found by flow). Written
    /// with the link spent, as the end of the callback: `false` (nothing written) when the
    /// flow's claim on the link was lost.
    async fn put_pending(
        &self,
        pending: &PendingConnection,
        link_key: &str,
        claimant: &str,
    ) -> Result<bool, StoreError>;
    /// The `confirm: redirect` sign-in whose flow id hashes to `flow_hash`.
    async fn pending_by_flow(
        &self,
        bot: &BotId,
        flow_hash: &str,
    ) -> Result<Option<PendingConnection>, StoreError>;
    async fn pendings_of(
        &self,
        bot: &BotId,
        user: &UserId,
    ) -> Result<Vec<PendingConnection>, StoreError>;
    /// Removes a waiting sign-in with the events that report it; `false` when another
    /// request confirmed or dropped it first (nothing written).
    async fn drop_pending(
        &self,
        pending: &PendingConnection,
        events: &[Event],
    ) -> Result<bool, StoreError>;
    /// Counts a wrong code against one; answers the new count, `None` when it is gone.
    async fn count_wrong_code(
        &self,
        bot: &BotId,
        user: &UserId,
        pending_id: &str,
    ) -> Result<Option<i64>, StoreError>;
    async fn connect_session(&self, id: &LinkId) -> Result<Option<ConnectSession>, StoreError>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn token(&self, bot: &BotId, id: &TokenId) -> Result<Option<TokenRecord>, StoreError>;
    async fn token_id_for(
        &self,
        bot: &BotId,
        owner: &Owner,
        alias: &Alias,
    ) -> Result<Option<TokenId>, StoreError>;
    /// alias → token id, for `bot.tokens` (`Owner::Bot`) or one user's `user.tokens`.
    async fn tokens_of(
        &self,
        bot: &BotId,
        owner: &Owner,
    ) -> Result<BTreeMap<Alias, TokenId>, StoreError>;
    /// Inserts the token, or replaces the credentials of the same token id, spends what the
    /// connection uses up and records its events, all or nothing. Clears any lease and any
    /// unsettled refresh.
    async fn save_connected(&self, c: &Connection<'_>) -> Result<SaveOutcome, StoreError>;
    /// Every token of the bot, whoever owns it (the connections list): one query of the
    /// bot's records.
    async fn bot_connections(&self, bot: &BotId) -> Result<Vec<TokenRecord>, StoreError>;
    /// Removes the token with the events that report it, and stores the revocation still
    /// to be done for it, if it is still the version read (`record.version`); `false` when
    /// it changed or is gone (nothing written).
    async fn delete_token(
        &self,
        record: &TokenRecord,
        events: &[Event],
        revocation: Option<&PendingRevocation>,
    ) -> Result<bool, StoreError>;
    /// Writes `next`'s upkeep and due time with the events that report it, if the token is
    /// still as `read` (the same version and the same upkeep): of two maintenance runs, one
    /// writes. Leaves the version alone, so a refresh in flight still commits.
    async fn set_upkeep(
        &self,
        read: &TokenRecord,
        next: &TokenRecord,
        events: &[Event],
    ) -> Result<bool, StoreError>;
    /// Up to `limit` tokens whose `due_at` is at or before `now`, earliest first: a query of
    /// the due-time index.
    async fn due_tokens(&self, now: i64, limit: u32) -> Result<Vec<TokenRecord>, StoreError>;
    /// Up to `limit` pending revocations due at `now`, earliest first.
    async fn due_revocations(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<PendingRevocation>, StoreError>;
    /// Replaces the pending revocation `read` by `next` (a later try) or removes it (`None`),
    /// with the events that report it, if it is still as read; `false` otherwise.
    async fn settle_revocation(
        &self,
        read: &PendingRevocation,
        next: Option<&PendingRevocation>,
        events: &[Event],
    ) -> Result<bool, StoreError>;
    /// Takes the refresh lease when nobody holds an unexpired one (security item 13), and
    /// marks a refresh as unsettled by `holder` unless an earlier one still is (see
    /// [`TokenRecord::refresh_unsettled`]).
    async fn acquire_lease(
        &self,
        bot: &BotId,
        id: &TokenId,
        holder: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Writes refreshed credentials, and the events that report them, only if the stored
    /// version is still `expected_version` and `holder` still holds the lease; bumps the
    /// version, releases the lease and settles the refresh.
    async fn commit_refresh(
        &self,
        record: &TokenRecord,
        expected_version: i64,
        holder: &str,
        events: &[Event],
    ) -> Result<bool, StoreError>;
    /// Releases `holder`'s lease. `settled`: the provider surely did not act on a request of
    /// this holder (none was sent, or it answered), so its unsettled mark goes too; otherwise
    /// the mark stays for the next refresh to see.
    async fn release_lease(
        &self,
        bot: &BotId,
        id: &TokenId,
        holder: &str,
        settled: bool,
    ) -> Result<(), StoreError>;
}

/// Events that report no other write (a sign-in that failed after its flow was used up).
#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn record_events(&self, events: &[Event]) -> Result<(), StoreError>;
    /// Whether the event is in the outbox and not yet delivered (for the contract suites and
    /// an operator's checks).
    async fn undelivered(&self, event_id: &str) -> Result<bool, StoreError>;
}

/// Everything the service stores.
pub trait Store: BotStore + ProviderStore + FlowStore + TokenStore + OutboxStore {}
impl<T: BotStore + ProviderStore + FlowStore + TokenStore + OutboxStore> Store for T {}

/// Where the embedded backend delivers an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `events.jsonl`.
    File,
    Webhook,
}

/// An undelivered event, claimed by one dispatcher for a while.
#[derive(Debug, Clone)]
pub struct Queued {
    pub event: OutboxEvent,
    /// Failed deliveries so far.
    pub attempts: u32,
    /// Destinations that have it already.
    pub done: Vec<Destination>,
}

/// The embedded backend's outbox as its dispatcher sees it (on AWS the table's stream feeds
/// the relay function instead). Retries and their times are stored, so they survive a
/// restart.
#[async_trait]
pub trait OutboxQueue: Send + Sync {
    /// Claims up to `limit` events due at `now` (and not claimed by a live dispatcher) until
    /// `until`, oldest first.
    async fn claim_due(&self, now: i64, until: i64, limit: u32) -> Result<Vec<Queued>, StoreError>;
    /// Notes that `destination` has the event.
    async fn delivered_to(
        &self,
        event_id: &str,
        destination: Destination,
    ) -> Result<(), StoreError>;
    /// Removes an event every destination has.
    async fn finished(&self, event_id: &str) -> Result<(), StoreError>;
    /// Counts a failed delivery and releases the claim until `retry_at`.
    async fn failed(&self, event_id: &str, attempts: u32, retry_at: i64) -> Result<(), StoreError>;
}

/// What a sealed blob is for; part of the associated data, so a blob opens only for the
/// record and purpose it was sealed for (security item 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Token,
    ClientSecret,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Token => "token",
            Purpose::ClientSecret => "client_secret",
        }
    }
}

/// Names the record a sealed blob belongs to.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    pub purpose: Purpose,
    /// The bot, or `"-"` for records that belong to no bot (provider apps).
    pub bot: &'a str,
    pub record: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the sealed data could not be opened")]
    Open,
    #[error("the sealed data names key '{0}', which is not available")]
    UnknownKey(String),
    #[error("the sealed data is malformed")]
    Malformed,
    #[error("the data could not be encrypted")]
    Encrypt,
    #[error("the key service is unavailable")]
    Unavailable(#[source] BoxError),
}

impl From<CryptoError> for SealError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Open => SealError::Open,
            CryptoError::Malformed => SealError::Malformed,
            CryptoError::Encrypt => SealError::Encrypt,
        }
    }
}

#[async_trait]
pub trait Sealer: Send + Sync {
    /// Gets a data key for sealing under `ctx` (on AWS the key service call); sealing with
    /// it afterwards is local and cannot fail for a dependency.
    async fn prepare(&self, ctx: SealContext<'_>) -> Result<PreparedSeal, SealError>;
    async fn seal(&self, plaintext: &[u8], ctx: SealContext<'_>) -> Result<Sealed, SealError> {
        self.prepare(ctx).await?.seal(plaintext)
    }
    async fn open(
        &self,
        sealed: &Sealed,
        ctx: SealContext<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, SealError>;
}

/// A data key obtained for one context, with its wrapped form: seals locally, as often as
/// needed (every seal has its own nonce).
pub struct PreparedSeal {
    /// The sealed-text scheme of the sealer that made it.
    pub scheme: &'static str,
    /// As the scheme writes it in the sealed text.
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
    pub data_key: crate::crypto::DataKey,
    /// The context, as associated data.
    pub aad: Vec<u8>,
}

impl PreparedSeal {
    pub fn seal(&self, plaintext: &[u8]) -> Result<Sealed, SealError> {
        Ok(crate::crypto::Envelope {
            key_id: self.key_id.clone(),
            wrapped_key: self.wrapped_key.clone(),
            ciphertext: crate::crypto::seal(&self.data_key, plaintext, &self.aad)?,
        }
        .seal_text(self.scheme))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("events could not be delivered")]
    Unavailable(#[source] BoxError),
}

/// Delivers events from the outbox: `events.jsonl`, the webhook, EventBridge.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), PublishError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// `invalid_grant` / `invalid_client`: retrying cannot help.
    #[error("the provider refused the grant ({code})")]
    Final { code: String },
    /// Another OAuth error answer.
    #[error("the provider answered with error '{code}'")]
    Refused { code: String },
    /// The request did not reach the provider, or it answered 429 or 503: nothing happened
    /// there, and it may succeed later.
    #[error("the provider is unavailable")]
    Transient { retry_after: Option<u64> },
    /// The request was sent but its answer was lost (a timeout or a broken connection after
    /// sending, a 500, 502 or 504): the provider may have acted on it.
    #[error("the provider's answer was lost")]
    OutcomeUnknown,
    #[error("the provider's answer could not be understood: {0}")]
    Malformed(String),
    #[error("the provider is misconfigured: {0}")]
    Config(String),
    /// The ID token did not pass validation; nothing from it may be used.
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
}

/// A provider app with its client secret opened, for the requests that authenticate.
pub struct RegisteredApp {
    pub app: ProviderApp,
    pub secret: Option<SecretString>,
}

/// What a successful token request gave.
pub struct GrantedToken {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub scopes: Option<Vec<String>>,
    /// Fields of the answer beyond the standard ones (`id_token`, Slack's `team`, ...).
    pub other: Map<String, Value>,
}

/// A call the proxy sends to a provider's API, the credential already placed.
pub struct ApiRequest {
    pub method: http::Method,
    pub url: url::Url,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
    /// For the whole exchange up to the answer's headers.
    pub timeout: std::time::Duration,
}

/// The answer's body, read as it arrives.
pub type ApiBody = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>,
>;

/// A provider API's answer: its status and headers, the body still to be read.
pub struct ApiResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: ApiBody,
}

/// A started authorization: where to send the browser and what to keep server side.
pub struct Authorization {
    pub url: url::Url,
    pub pkce_verifier: Option<SecretString>,
}

/// The provider's side of OAuth: authorization URLs, code exchange, refresh, revocation,
/// user info and OpenID Connect discovery.
#[async_trait]
pub trait ProviderClient: Send + Sync {
    /// The authorization URL for a flow, with a fresh PKCE verifier where the app uses PKCE.
    fn authorize(
        &self,
        app: &ProviderApp,
        redirect_uri: &str,
        scopes: &[String],
        state: &SecretString,
        nonce: Option<&SecretString>,
    ) -> Result<Authorization, ProviderError>;
    async fn exchange_code(
        &self,
        client: &RegisteredApp,
        redirect_uri: &str,
        code: &SecretString,
        verifier: Option<SecretString>,
    ) -> Result<GrantedToken, ProviderError>;
    async fn refresh(
        &self,
        client: &RegisteredApp,
        redirect_uri: &str,
        refresh_token: &SecretString,
    ) -> Result<GrantedToken, ProviderError>;
    /// The user-info call of an entered credential (an API key, or the ready `Basic ...`
    /// value), placed on the request as the catalog entry says.
    async fn entered_user_info(
        &self,
        spec: &crate::domain::catalog::UserInfoSpec,
        credential: &crate::domain::catalog::CredentialSpec,
        url: &str,
        secret: &SecretString,
    ) -> Result<Value, ProviderError> {
        let _ = (spec, credential, url, secret);
        Err(ProviderError::Config(
            "this provider client cannot check entered credentials".into(),
        ))
    }
    /// Sends one proxied API call, following no redirect, to an address the outbound policy
    /// permits. `Transient` when it never got an answer.
    async fn call_api(&self, request: ApiRequest) -> Result<ApiResponse, ProviderError> {
        let _ = request;
        Err(ProviderError::Config(
            "this provider client cannot call provider APIs".into(),
        ))
    }
    /// OAuth 2.0 client credentials (RFC 6749 §4.4): a token for the app itself.
    async fn client_credentials(
        &self,
        client: &RegisteredApp,
        scopes: &[String],
    ) -> Result<GrantedToken, ProviderError> {
        let _ = (client, scopes);
        Err(ProviderError::Config(
            "this provider client has no client-credentials grant".into(),
        ))
    }
    /// Revokes the refresh token (which ends the grant at most providers) or, without one,
    /// the access token. `Ok` when the app has no revocation endpoint.
    async fn revoke(
        &self,
        client: &RegisteredApp,
        access_token: &SecretString,
        refresh_token: Option<&SecretString>,
    ) -> Result<(), ProviderError>;
    /// The user-info answer for a fresh access token; `None` without a user-info endpoint.
    async fn user_info(
        &self,
        app: &ProviderApp,
        access_token: &SecretString,
    ) -> Result<Option<Value>, ProviderError>;
    async fn discover(&self, issuer: &url::Url) -> Result<Discovery, ProviderError>;
    /// Validates an ID token from the token endpoint: the signature against the provider's
    /// published keys (when it publishes them), `iss`, `aud`/`azp`, `exp`, `iat`, and the
    /// nonce whose SHA-256 the flow kept. Answers the validated claims.
    async fn verify_id_token(
        &self,
        client: &RegisteredApp,
        id_token: &str,
        nonce_hash: Option<&str>,
    ) -> Result<Value, ProviderError>;
}

/// Unix time, replaceable in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> time::OffsetDateTime;
    fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}
