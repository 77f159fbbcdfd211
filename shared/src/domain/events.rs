//! The contract's events: `token:<alias>`, `token_revoked:<alias>`, `token_deleted:<alias>`,
//! `oauth_failed:<alias>`. They carry ids only, never a token, a code or a secret.

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
}

impl EventKind {
    fn prefix(self) -> &'static str {
        match self {
            EventKind::Token => "token",
            EventKind::TokenRevoked => "token_revoked",
            EventKind::TokenDeleted => "token_deleted",
            EventKind::OauthFailed => "oauth_failed",
        }
    }
}

/// Why a sign-in failed, in `oauth_failed:<alias>` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
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
    /// Only in `oauth_failed:<alias>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
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
            },
        }
    }
}
