//! The bot's token calls: `get_token_info`, `get_full_token`, `get_access_token` and
//! `delete_token` (with revocation at the provider).

use super::{Service, ServiceError};
use crate::domain::events::{EventKind, Revoked};
use crate::domain::ids::{Alias, BotId, ProviderName, TokenId};
use crate::domain::integrations::Context;
use crate::domain::providers::{catalog_entry, ProviderApp, UserInfo};
use crate::domain::token::{PendingRevocation, TokenRecord, TokenSecrets, TokenStatus};
use crate::ports::{ProviderError, StoreError};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

/// How many times a delete reads the token again when it changed under it (or its
/// transaction met another).
const DELETE_ATTEMPTS: usize = 6;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessTokenView {
    pub access_token: Option<String>,
    pub expires_at: Option<i64>,
    /// `valid`, `expired` or `revoked`.
    pub status: &'static str,
    /// For entered credentials only: `api_key` (the key itself) or `basic` (the
    /// `Authorization` header value, ready to send).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

impl AccessTokenView {
    pub(super) fn valid(access_token: &str, expires_at: Option<i64>) -> Self {
        Self {
            access_token: Some(access_token.to_owned()),
            expires_at,
            status: "valid",
            token_type: None,
        }
    }

    /// A token that cannot be refreshed stays usable until it actually expires.
    pub(super) fn without_refresh(access_token: &str, expires_at: Option<i64>, now: i64) -> Self {
        match expires_at {
            Some(at) if at <= now => Self {
                access_token: None,
                expires_at,
                status: "expired",
                token_type: None,
            },
            _ => Self::valid(access_token, expires_at),
        }
    }

    pub(super) fn revoked() -> Self {
        Self {
            access_token: None,
            expires_at: None,
            status: "revoked",
            token_type: None,
        }
    }
}

/// `get_token_info`: what the provider said about the user, and when the user must sign in
/// again, where that is known.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    #[serde(flatten)]
    pub info: UserInfo,
    /// Unix seconds; the grant ends then and no refresh extends it. Absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_by: Option<i64>,
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

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// When the provider gives no `expires_in`, the token does not expire unless the provider
/// is known to expire its tokens (security item 12).
pub(super) fn expiry(app: &ProviderApp, expires_in: Option<u64>, now: i64) -> Option<i64> {
    match expires_in {
        Some(secs) => Some(now + i64::try_from(secs).unwrap_or(i64::MAX / 2)),
        None => app
            .assumed_lifetime_secs
            .or_else(|| catalog_entry(app.name.as_str()).and_then(|e| e.lifetimes.access_token))
            .map(|l| now + l),
    }
}

impl Service {
    pub(super) async fn record(
        &self,
        bot: &BotId,
        id: &TokenId,
    ) -> Result<TokenRecord, ServiceError> {
        self.store
            .token(bot, id)
            .await?
            .ok_or(ServiceError::TokenNotFound)
    }

    pub async fn token_info(&self, bot: &BotId, id: &TokenId) -> Result<TokenInfo, ServiceError> {
        let record = self.record(bot, id).await?;
        Ok(TokenInfo {
            info: self.open_secrets(&record).await?.info.clone(),
            reconnect_by: record.reconnect_by().map(|(at, _)| at),
        })
    }

    pub async fn full_token(&self, bot: &BotId, id: &TokenId) -> Result<FullToken, ServiceError> {
        let record = self.record(bot, id).await?;
        let s = self.open_secrets(&record).await?;
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
        id: &TokenId,
    ) -> Result<AccessTokenView, ServiceError> {
        let record = self.record(bot, id).await?;
        if record.status == TokenStatus::Revoked {
            return Ok(AccessTokenView::revoked());
        }
        let credentials = self.open_credentials(&record).await?;
        let now = self.clock.unix();
        if !record.refresh_due(now) {
            let mut view = AccessTokenView::valid(&credentials.access_token, record.expires_at);
            view.token_type = match credentials.token_type.as_deref() {
                Some("api_key") => Some("api_key"),
                Some("basic") => Some("basic"),
                _ => None,
            };
            return Ok(view);
        }
        if credentials.refresh_token.is_none()
            && !crate::domain::catalog::is_client_credentials(record.provider.as_str())
        {
            return Ok(AccessTokenView::without_refresh(
                &credentials.access_token,
                record.expires_at,
                now,
            ));
        }
        drop(credentials);
        self.refresh(record).await
    }

    /// `delete_token`: revokes the grant at the provider, then removes the token with its
    /// `token_deleted:<alias>` event (saying how the revocation went) in one step. The
    /// version read is the version removed: a refresh or reconnect in between makes it read
    /// (and revoke) again. `false` only when there is no such token.
    pub async fn delete_token(&self, bot: &BotId, id: &TokenId) -> Result<bool, ServiceError> {
        let mut backoff = std::time::Duration::from_millis(20);
        // The grant is revoked before the token is removed, so the event can say how it
        // went; a version changed in between (a refresh) is revoked again.
        let mut revoked: Option<(i64, Revoked)> = None;
        for _ in 0..DELETE_ATTEMPTS {
            let Some(record) = self.store.token(bot, id).await? else {
                return Ok(false);
            };
            let outcome = match revoked {
                Some((version, outcome)) if version == record.version => outcome,
                _ => self.revoke_at_provider(&record).await,
            };
            revoked = Some((record.version, outcome));
            let mut event = self.event(
                EventKind::TokenDeleted,
                (&record).into(),
                Some(&record.token_id),
            );
            event.detail.revoked = Some(outcome);
            // A revocation that did not go through is retried by the maintenance job, from
            // the credentials kept sealed with it.
            let now = self.clock.unix();
            let pending = (outcome == Revoked::Pending).then(|| PendingRevocation {
                bot_id: record.bot_id.clone(),
                token_id: record.token_id.clone(),
                alias: record.alias.clone(),
                provider: record.provider.clone(),
                owner: record.owner.clone(),
                sealed: record.sealed.clone(),
                attempts: 1,
                due_at: now + self.upkeep.retry_delay(1),
                give_up_at: now + self.upkeep.revocation_window,
            });
            if self
                .store
                .delete_token(&record, std::slice::from_ref(&event), pending.as_ref())
                .await?
            {
                tracing::info!(bot_id = %bot, token_id = %id, revoked = ?outcome, "token deleted");
                return Ok(true);
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        Err(
            StoreError::Unavailable("the token kept changing while it was being deleted".into())
                .into(),
        )
    }

    async fn revoke_at_provider(&self, record: &TokenRecord) -> Revoked {
        if record.status == TokenStatus::Revoked {
            // The provider already refused this grant for good.
            return Revoked::Yes;
        }
        match self.open_secrets(record).await {
            // Even a refusal is tried again (a misconfigured app may be fixed): the bot hears
            // `pending` now and the outcome later.
            Ok(secrets) => match self.revoke_grant(&record.provider, &secrets).await {
                Revoked::Failed => Revoked::Pending,
                other => other,
            },
            Err(e) => {
                tracing::warn!(token_id = %record.token_id, error = %e, "deleted token could not be opened for revocation; retried later");
                Revoked::Pending
            }
        }
    }

    /// After a reconnect stored new credentials over `old`: revokes the old grant at the
    /// provider (best effort) when it belonged to another account than `new_uid`. A grant of
    /// the same account is left alone: Google, and OpenID providers that reuse the grant of a
    /// signed-in user, keep one grant per user and client, so revoking the old refresh token
    /// would revoke the new one with it.
    pub(super) async fn revoke_replaced(&self, old: &TokenRecord, new_uid: Option<&str>) {
        let secrets = match self.open_secrets(old).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(token_id = %old.token_id, error = %e, "replaced credentials could not be opened for revocation");
                return;
            }
        };
        match (secrets.uid.as_deref(), new_uid) {
            (Some(before), Some(now)) if before != now => {
                tracing::info!(token_id = %old.token_id, "reconnected with another account; revoking the replaced grant");
                self.revoke_grant(&old.provider, &secrets).await;
            }
            _ => {
                tracing::info!(token_id = %old.token_id, "reconnected with the same (or an unknown) account; the provider's grant is shared, not revoked");
            }
        }
    }

    /// Asks the provider to revoke the grant of `secrets` (failures are logged and answered):
    /// `Pending` when it may work later (the provider or the store unavailable), `Failed`
    /// when the provider refused.
    pub(super) async fn revoke_grant(
        &self,
        provider: &ProviderName,
        secrets: &TokenSecrets,
    ) -> Revoked {
        // An entered key or password is not a grant: only its owner can revoke it, in the
        // provider's own settings.
        if crate::service::entered_kind(provider.as_str()).is_some() {
            return Revoked::Unsupported;
        }
        let mut client = match self.registered_app(provider).await {
            Ok(Some(c)) => c,
            Ok(None) => return Revoked::Failed,
            Err(e) => {
                tracing::warn!(%provider, error = %e, "provider app unavailable for revocation");
                return Revoked::Pending;
            }
        };
        client.app = client
            .app
            .with_connection(&ProviderApp::connection_of(&secrets.other));
        let access = SecretString::from(secrets.access_token.clone());
        let refresh = secrets.refresh_token.clone().map(SecretString::from);
        match self
            .provider
            .revoke(&client, &access, refresh.as_ref())
            .await
        {
            // The provider client answers `Ok` without a call when there is no way to revoke.
            Ok(()) if client.app.revocation_url.is_none() => Revoked::Unsupported,
            Ok(()) => Revoked::Yes,
            Err(e @ (ProviderError::Final { .. } | ProviderError::Config(_))) => {
                tracing::warn!(%provider, error = %e, "the provider refused the revocation");
                Revoked::Failed
            }
            Err(e) => {
                tracing::warn!(%provider, error = %e, "revocation at the provider failed; it may work later");
                Revoked::Pending
            }
        }
    }
}
