//! The contract's events: `token:<alias>`, `token_revoked:<alias>`, `token_deleted:<alias>`,
//! `oauth_failed:<alias>`, and what the service reports on its own: `token_expiring:<alias>`,
//! `token_revocation_confirmed:<alias>` and `token_revocation_failed:<alias>`. They carry ids
//! only, never a token, a code or a secret.
//!
//! An event is written to the outbox in the same store transaction as the state change it
//! reports ([`OutboxEvent`]), and delivered from there at least once under its `event_id`.

use super::ids::{random_urlsafe, Alias, BotId, ProviderName, TokenId};
use super::integrations::Context;
use super::token::Owner;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Token,
    TokenRevoked,
    TokenDeleted,
    OauthFailed,
    /// A grant ends soon and no refresh can extend it.
    TokenExpiring,
    /// A revocation left `pending` by a delete went through.
    TokenRevocationConfirmed,
    /// A revocation left `pending` by a delete never went through.
    TokenRevocationFailed,
}

impl EventKind {
    fn prefix(self) -> &'static str {
        match self {
            EventKind::Token => "token",
            EventKind::TokenRevoked => "token_revoked",
            EventKind::TokenDeleted => "token_deleted",
            EventKind::OauthFailed => "oauth_failed",
            EventKind::TokenExpiring => "token_expiring",
            EventKind::TokenRevocationConfirmed => "token_revocation_confirmed",
            EventKind::TokenRevocationFailed => "token_revocation_failed",
        }
    }
}

/// Why a sign-in failed (`oauth_failed:<alias>`) or a token was revoked
/// (`token_revoked:<alias>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventReason {
    /// The user or the provider declined (the callback carried `error`).
    Declined,
    /// The provider refused the code or could not be reached for it.
    ExchangeFailed,
    /// The ID token failed validation.
    IdentityRejected,
    /// The callback came from another browser than the one that started the flow.
    BrowserMismatch,
    /// A sign-in waiting for its confirmation code expired or got too many wrong codes.
    ConfirmationFailed,
    /// The provider refused the refresh token for good (`invalid_grant` / `invalid_client`).
    ProviderRefused,
    /// As `provider_refused`, after an earlier refresh whose outcome this service never
    /// learned (a timeout after the request was sent, or a crash): the provider may have
    /// rotated the refresh token in an answer that was lost. Our fault, not the user's.
    RefreshOutcomeUnknown,
    /// `token_expiring`: the provider gave the refresh token an expiry that refreshing does
    /// not move.
    RefreshTokenExpires,
    /// `token_expiring`: the provider's refresh tokens live a fixed time from the sign-in.
    GrantLifetime,
    /// `token_expiring`: the provider gave no refresh token.
    NoRefreshToken,
}

impl From<super::upkeep::ExpiryReason> for EventReason {
    fn from(r: super::upkeep::ExpiryReason) -> Self {
        use super::upkeep::ExpiryReason as E;
        match r {
            E::RefreshTokenExpires => EventReason::RefreshTokenExpires,
            E::GrantLifetime => EventReason::GrantLifetime,
            E::NoRefreshToken => EventReason::NoRefreshToken,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventDetail {
    pub bot_id: BotId,
    pub user_id: Option<String>,
    pub alias: Alias,
    pub provider: ProviderName,
    pub context: Context,
    pub token_id: Option<TokenId>,
    /// The same as `token_id`: what a bot's `event.payload` receives.
    pub payload: Option<TokenId>,
    pub event_id: String,
    /// RFC 3339.
    pub occurred_at: String,
    /// In `oauth_failed:<alias>` and `token_revoked:<alias>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<EventReason>,
    /// In `token_deleted:<alias>` and the later `token_revocation_*:<alias>`: whether the
    /// grant was revoked at the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revoked>,
    /// In `token_expiring:<alias>`: when the grant ends (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// What the provider said when a deleted token's grant was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Revoked {
    /// The provider confirmed the revocation.
    Yes,
    /// The provider could not be reached: the service retries for up to a day, and sends
    /// `token_revocation_confirmed` or `token_revocation_failed`.
    Pending,
    /// The provider refused, or never answered within the retries: the grant may still be
    /// live there.
    Failed,
    /// The provider has no way to revoke a grant by API.
    Unsupported,
}

/// One event, before a publisher puts it in its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub detail_type: String,
    pub detail: EventDetail,
}

impl Event {
    pub fn new(
        kind: EventKind,
        bot_id: &BotId,
        alias: &Alias,
        provider: &ProviderName,
        owner: &Owner,
        token_id: Option<&TokenId>,
        occurred_at: time::OffsetDateTime,
    ) -> Self {
        let occurred_at = occurred_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Event {
            detail_type: format!("{}:{}", kind.prefix(), alias),
            detail: EventDetail {
                bot_id: bot_id.clone(),
                user_id: owner.user_id().map(|u| u.to_string()),
                alias: alias.clone(),
                provider: provider.clone(),
                context: owner.context(),
                token_id: token_id.cloned(),
                payload: token_id.cloned(),
                event_id: format!("evt_{}", random_urlsafe(18)),
                occurred_at,
                reason: None,
                revoked: None,
                expires_at: None,
            },
        }
    }
}

/// An event as the outbox keeps it until it is delivered: the detail serialized once, so what
/// is delivered, however often, is byte for byte what was written with the state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub event_id: String,
    pub detail_type: String,
    /// RFC 3339.
    pub occurred_at: String,
    /// `detail` as JSON text.
    pub detail: String,
}

impl Event {
    pub fn to_outbox(&self) -> OutboxEvent {
        OutboxEvent {
            event_id: self.detail.event_id.clone(),
            detail_type: self.detail_type.clone(),
            occurred_at: self.detail.occurred_at.clone(),
            // A struct of strings and enums: serializing it cannot fail.
            detail: serde_json::to_string(&self.detail).unwrap_or_else(|_| "{}".to_owned()),
        }
    }
}

impl OutboxEvent {
    /// The envelope every delivery carries: `events.jsonl` lines, webhook bodies, and the
    /// shape of the events EventBridge delivers.
    pub fn envelope(&self, source: &str) -> serde_json::Value {
        serde_json::json!({
            "version": "0",
            "id": self.event_id,
            "detail-type": self.detail_type,
            "source": source,
            "time": self.occurred_at,
            "resources": [],
            "detail": serde_json::from_str::<serde_json::Value>(&self.detail)
                .unwrap_or(serde_json::Value::Null),
        })
    }
}
