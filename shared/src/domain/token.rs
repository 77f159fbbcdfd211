//! Stored tokens: clear metadata the store can index, and the sealed secrets.

use super::ids::{Alias, BotId, LinkId, ProviderName, TokenId, UserId};
use super::integrations::{Confirm, Context, Integration};
use super::providers::{ProviderApp, UserInfo};
use crate::crypto::Sealed;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use zeroize::Zeroize;

/// Refresh this long before a token expires (security item 12: at least 60 s).
pub const REFRESH_MARGIN_SECS: i64 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    /// The provider refused the refresh token for good (`invalid_grant`/`invalid_client`).
    Revoked,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Revoked => "revoked",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(TokenStatus::Active),
            "revoked" => Some(TokenStatus::Revoked),
            _ => None,
        }
    }
}

/// Whose token it is: the bot's (bot context) or one user's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Bot,
    User(UserId),
}

impl Owner {
    pub fn context(&self) -> Context {
        match self {
            Owner::Bot => Context::Bot,
            Owner::User(_) => Context::User,
        }
    }

    pub fn user_id(&self) -> Option<&UserId> {
        match self {
            Owner::Bot => None,
            Owner::User(u) => Some(u),
        }
    }
}

/// A token as the store holds it. `sealed` is the only field with secrets in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub bot_id: BotId,
    pub token_id: TokenId,
    pub alias: Alias,
    pub provider: ProviderName,
    pub owner: Owner,
    pub status: TokenStatus,
    /// Unix seconds; `None` when the provider said the token does not expire.
    pub expires_at: Option<i64>,
    pub sealed: Sealed,
    /// Bumped by every write; the refresh commit is fenced on it (security item 13).
    pub version: i64,
    /// The lease holder of a refresh whose request may have reached the provider without its
    /// answer reaching us (a timeout after sending, a crash). Cleared by the next commit or
    /// reconnect. When the next refresh is refused with `invalid_grant`, the revocation is
    /// reported as `refresh_outcome_unknown`: the provider may have rotated the refresh token
    /// in the answer that was lost.
    pub refresh_unsettled: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// What the service does for the token on its own ([`super::upkeep`]).
    pub upkeep: super::upkeep::Upkeep,
    /// When the maintenance job next has something to do for it (indexed); `None`: never.
    pub due_at: Option<i64>,
}

impl TokenRecord {
    /// Due for refresh: expired, or with less left than `min(margin, half its lifetime)`.
    /// The lifetime is what the provider gave at the last connect or refresh
    /// (`expires_at - updated_at`), so a token that lives less than the margin is not due
    /// again the moment it was refreshed.
    pub fn refresh_due(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| {
            let lifetime = (at - self.updated_at).max(0);
            at - now <= REFRESH_MARGIN_SECS.min(lifetime / 2)
        })
    }
}

/// What is sealed: credentials and everything the provider said about the user.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenSecrets {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub scopes: Vec<String>,
    /// Other fields of the token answer that are not secrets (`id_token` is kept sealed here).
    #[serde(default)]
    pub other: Map<String, Value>,
    pub uid: Option<String>,
    pub info: UserInfo,
    #[serde(default)]
    pub raw_info: Value,
}

impl fmt::Debug for TokenSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSecrets")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for TokenSecrets {
    fn drop(&mut self) {
        self.access_token.zeroize();
        self.refresh_token.zeroize();
    }
}

/// The credentials of [`TokenSecrets`] alone, read from the same sealed JSON without building
/// the profile beside them (`info`, `raw_info`, `other`): what the access-token path needs.
#[derive(Deserialize)]
pub struct Credentials {
    pub access_token: String,
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
}

impl Drop for Credentials {
    fn drop(&mut self) {
        self.access_token.zeroize();
        self.refresh_token.zeroize();
    }
}

/// A minted `oauth_link`: who may connect what, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub link_id: LinkId,
    pub bot_id: BotId,
    pub alias: Alias,
    pub owner: Owner,
    pub expires_at: i64,
    pub created_at: i64,
    /// The integration as it was when the link was minted, so that starting the flow reads
    /// nothing else; `None` for links stored before links kept it.
    pub integration: Option<Integration>,
}

/// One authorization in progress, keyed by the hash of its `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub state_hash: String,
    /// [`LinkId::key`] of the link the flow started from.
    pub link_key: String,
    pub bot_id: BotId,
    pub alias: Alias,
    pub provider: ProviderName,
    pub owner: Owner,
    /// The scopes the authorization request asked for, kept for the token when the
    /// provider's answer does not list what it granted.
    pub scopes: Vec<String>,
    /// SHA-256 of the OpenID Connect `nonce` sent with the authorization request, when the
    /// flow asked for `openid`; the ID token must carry the nonce itself.
    pub nonce_hash: Option<String>,
    /// SHA-256 of the browser key set as a cookie when the flow started: the callback must
    /// come from the same browser.
    pub browser_hash: String,
    /// Whether the token waits for the chat user's confirmation (`confirm: code`).
    pub confirm: Confirm,
    /// The PKCE verifier, encrypted under the state (`flow_secret`); `None` without PKCE.
    pub sealed_verifier: Option<Sealed>,
    pub redirect_uri: String,
    pub expires_at: i64,
    pub created_at: i64,
    /// The provider app the authorization request was made with, and its client secret as
    /// stored (sealed): the code is exchanged by the same app, and the callback reads nothing
    /// else. `None` for flows stored before flows kept it.
    pub app: Option<ProviderApp>,
    pub sealed_client_secret: Option<Sealed>,
    /// The integration is marked `keep_fresh`; the token keeps it.
    pub keep_fresh: bool,
}

/// A sign-in that succeeded and waits for the chat user to type its code back in the chat
/// (`confirm: code`). Its token is sealed here and is nobody's token until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConnection {
    /// Random; with the bot and user, the record's key.
    pub pending_id: String,
    pub bot_id: BotId,
    pub user_id: UserId,
    pub alias: Alias,
    pub provider: ProviderName,
    /// `Code`: waits for the user's code; `Redirect`: for the platform's confirmation.
    pub confirm: Confirm,
    /// `Code`: SHA-256 of `{pending_id}:{code}`. `Redirect`: SHA-256 of the flow id given to
    /// the bot's `confirm_url`, by which the platform names it.
    pub code_hash: String,
    /// Wrong codes sent for this user while it waited.
    pub attempts: i64,
    /// The [`TokenSecrets`], sealed for the bot and the record `pending:{pending_id}`.
    pub sealed: Sealed,
    /// When the access token expires, as the provider said at the callback.
    pub token_expires_at: Option<i64>,
    pub expires_at: i64,
    pub created_at: i64,
}

/// A revocation that failed when its token was deleted, retried by the maintenance job. It
/// keeps the deleted token's sealed credentials (still sealed for the token's id) until the
/// provider confirms, or the retries end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRevocation {
    pub bot_id: BotId,
    pub token_id: TokenId,
    pub alias: Alias,
    pub provider: ProviderName,
    pub owner: Owner,
    pub sealed: Sealed,
    /// Failed attempts so far (the one at delete included).
    pub attempts: u32,
    /// When to try again (indexed).
    pub due_at: i64,
    /// When to give up and send `token_revocation_failed`.
    pub give_up_at: i64,
}

/// A short-lived link to the bot builder's connect page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSession {
    pub session_id: LinkId,
    pub bot_id: BotId,
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(updated_at: i64, expires_at: Option<i64>) -> TokenRecord {
        TokenRecord {
            bot_id: BotId::parse("acme").unwrap(),
            token_id: TokenId::generate(),
            alias: Alias::parse("demo").unwrap(),
            provider: ProviderName::parse("demo").unwrap(),
            owner: Owner::Bot,
            status: TokenStatus::Active,
            expires_at,
            sealed: Sealed::from_stored("v1.k.AA.AA".into()),
            version: 1,
            created_at: updated_at,
            updated_at,
            refresh_unsettled: None,
            upkeep: Default::default(),
            due_at: None,
        }
    }

    #[test]
    fn refresh_is_due_within_the_margin_or_half_the_lifetime() {
        // An hour-long token: due in its last two minutes.
        let hour = token(0, Some(3600));
        assert!(!hour.refresh_due(3600 - 121));
        assert!(hour.refresh_due(3600 - 120));
        // An 8-second token: due in its last 4 seconds, not at once.
        let short = token(100, Some(108));
        assert!(!short.refresh_due(100));
        assert!(!short.refresh_due(103));
        assert!(short.refresh_due(104));
        assert!(short.refresh_due(200));
        // Never expires: never due.
        assert!(!token(0, None).refresh_due(i64::MAX / 2));
        // Stored already expired (clock skew): due.
        assert!(token(100, Some(90)).refresh_due(95));
    }

    #[test]
    fn secrets_never_print() {
        let s = TokenSecrets {
            access_token: "canary-access".into(),
            refresh_token: Some("canary-refresh".into()),
            token_type: "Bearer".into(),
            scopes: vec![],
            other: Map::new(),
            uid: None,
            info: UserInfo::default(),
            raw_info: Value::Null,
        };
        let printed = format!("{s:?}");
        assert!(!printed.contains("canary"), "{printed}");
    }
}
