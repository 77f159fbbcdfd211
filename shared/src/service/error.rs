//! What a use case can answer besides success, named by meaning. The HTTP layer owns the one
//! table from these to status codes and error codes (`http/error.rs`).

use crate::domain::ids::{Alias, BotId, ProviderName};
use crate::domain::integrations::YamlIssue;
use crate::domain::providers::ProviderConfigError;
use crate::ports::{ProviderError, SealError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("bot '{0}' already exists")]
    BotExists(BotId),
    #[error("bot not found")]
    BotNotFound,
    #[error("token not found")]
    TokenNotFound,
    #[error("no integration with alias '{0}' in this bot's integrations file")]
    UnknownAlias(Alias),
    #[error("'{0}' is a user-context integration: give the user_id")]
    UserIdRequired(Alias),
    #[error("'{0}' is a bot-context integration: it takes no user_id")]
    UserIdNotAllowed(Alias),
    #[error("provider '{0}' has no app registered: the operator must PUT /v1/admin/providers/{0}")]
    ProviderNotConfigured(ProviderName),
    #[error("{0}")]
    InvalidParams(String),
    #[error("the integrations file has {} problem(s)", .0.len())]
    InvalidIntegrations(Vec<YamlIssue>),
    #[error(transparent)]
    InvalidProvider(#[from] ProviderConfigError),
    #[error("OpenID Connect discovery failed: {0}")]
    DiscoveryFailed(#[source] ProviderError),
    #[error("the token changed while it was being stored")]
    ConcurrentConnect,
    #[error("no sign-in of this user waits for this code")]
    InvalidConfirmationCode,
    #[error("'{0}' is confirmed by redirect, and this bot has no confirm_url: the operator must set it with PUT /v1/admin/bots/{{bot_id}}")]
    ConfirmUrlNotSet(Alias),
    #[error("confirm_url {0}")]
    InvalidConfirmUrl(String),
    #[error("no sign-in waits for confirmation under this flow id")]
    FlowNotFound,
    #[error("the sign-in was started for another user; it was dropped")]
    UserMismatch,
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
    #[error("the token was revoked at the provider: the user must connect again")]
    TokenRevoked,
    #[error("the token has expired and cannot be refreshed: the user must connect again")]
    TokenExpired,
    #[error("{0}")]
    ProxyPath(#[from] crate::domain::proxy::PathError),
    #[error("{0}")]
    NoApiBase(String),
    #[error("{0}")]
    ProxyRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    ProxyBodyTooLarge { limit: usize },
    #[error("the provider's API could not be reached")]
    ApiUnreachable,
    #[error("the provider's answer is larger than {limit} bytes")]
    ApiAnswerTooLarge { limit: usize },
}
