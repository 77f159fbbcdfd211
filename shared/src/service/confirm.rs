//! `confirm: code`: a sign-in's token waits, sealed, until the chat user types the code the
//! callback page showed them back in the chat and the bot sends it here. Proves that the
//! person who signed in is the one in the chat.

use super::flow::NewToken;
use super::{Service, ServiceError};
use crate::domain::events::EventReason;
use crate::domain::ids::{random_urlsafe, sha256_hex, Alias, BotId, TokenId, UserId};
use crate::domain::integrations::Confirm;
use crate::domain::token::{Owner, PendingConnection, TokenSecrets};
use crate::ports::{Purpose, SealContext, Spend};
use rand::Rng;
use secrecy::SecretString;
use subtle::ConstantTimeEq;
use url::Url;

/// How long a sign-in waits for its code.
pub const CONFIRMATION_TTL_SECS: i64 = 10 * 60;
/// Wrong codes a user may send while a sign-in waits; the next drops it.
pub const MAX_WRONG_CODES: i64 = 5;
/// Digits of a code.
const CODE_DIGITS: usize = 6;

fn pending_ctx<'a>(bot: &'a BotId, record: &'a str) -> SealContext<'a> {
    SealContext {
        purpose: Purpose::Token,
        bot: bot.as_str(),
        record,
    }
}

fn code_hash(pending_id: &str, code: &str) -> String {
    sha256_hex(&format!("{pending_id}:{code}"))
}

/// The link a flow claimed, spent when its sign-in is held.
#[derive(Clone, Copy)]
pub(super) struct FlowLink<'a> {
    pub key: &'a str,
    pub claimant: &'a str,
}

/// What a confirmation stored.
#[derive(Debug)]
pub struct Confirmed {
    pub alias: Alias,
    pub token_id: TokenId,
}

impl Service {
    /// Seals the token as pending for `user`, spending the flow's link, and answers the code
    /// to show; `None` when the link was spent by another flow (nothing kept).
    pub(super) async fn hold_for_confirmation(
        &self,
        new: &NewToken<'_>,
        user: &UserId,
        secrets: &TokenSecrets,
        link: FlowLink<'_>,
    ) -> Result<Option<SecretString>, ServiceError> {
        let code = format!(
            "{:0width$}",
            rand::rngs::OsRng.gen_range(0..10u32.pow(CODE_DIGITS as u32)),
            width = CODE_DIGITS
        );
        if !self
            .hold(new, user, secrets, link, Confirm::Code, |id| {
                code_hash(id, &code)
            })
            .await?
        {
            return Ok(None);
        }
        tracing::info!(bot_id = %new.bot_id, alias = %new.alias, "sign-in waits for its confirmation code");
        Ok(Some(SecretString::from(code)))
    }

    /// `confirm: redirect`: seals the token as pending under a fresh flow id and answers where
    /// to send the browser: the bot's `confirm_url` with `flow=<flow id>`.
    pub(super) async fn hold_for_platform(
        &self,
        new: &NewToken<'_>,
        user: &UserId,
        secrets: &TokenSecrets,
        link: FlowLink<'_>,
    ) -> Result<Option<Url>, ServiceError> {
        let raw = self
            .store
            .confirm_url(new.bot_id)
            .await?
            .ok_or_else(|| ServiceError::ConfirmUrlNotSet(new.alias.clone()))?;
        let mut url =
            Url::parse(&raw).map_err(|e| ServiceError::InvalidConfirmUrl(e.to_string()))?;
        let flow_id = random_urlsafe(32);
        if !self
            .hold(new, user, secrets, link, Confirm::Redirect, |_| {
                sha256_hex(&flow_id)
            })
            .await?
        {
            return Ok(None);
        }
        url.query_pairs_mut().append_pair("flow", &flow_id);
        tracing::info!(bot_id = %new.bot_id, alias = %new.alias, "sign-in waits for the platform's confirmation");
        Ok(Some(url))
    }

    /// Stores the token sealed as a pending connection for 10 minutes, in one step with
    /// spending the flow's link (`false`: the link was spent by another flow, nothing
    /// stored); `key_hash` makes its `code_hash` from the new record's id.
    async fn hold(
        &self,
        new: &NewToken<'_>,
        user: &UserId,
        secrets: &TokenSecrets,
        link: FlowLink<'_>,
        confirm: Confirm,
        key_hash: impl FnOnce(&str) -> String,
    ) -> Result<bool, ServiceError> {
        let now = self.clock.unix();
        let pending_id = random_urlsafe(24);
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(secrets).map_err(ServiceError::Decode)?);
        let record = format!("pending:{pending_id}");
        let sealed = self
            .sealer
            .seal(&plain, pending_ctx(new.bot_id, &record))
            .await?;
        Ok(self
            .store
            .put_pending(
                &PendingConnection {
                    confirm,
                    code_hash: key_hash(&pending_id),
                    pending_id,
                    bot_id: new.bot_id.clone(),
                    user_id: user.clone(),
                    alias: new.alias.clone(),
                    provider: new.provider.clone(),
                    attempts: 0,
                    sealed,
                    token_expires_at: new.expires_at,
                    expires_at: now + CONFIRMATION_TTL_SECS,
                    created_at: now,
                },
                link.key,
                link.claimant,
            )
            .await?)
    }

    /// `POST /v1/bots/{bot_id}/flows/{flow_id}/confirm`: the platform, having checked its
    /// own session, names the user who came back. The link's user: the token is stored.
    /// Another user: the sign-in is dropped (revoked, `oauth_failed`) and refused.
    pub async fn confirm_flow(
        &self,
        bot: &BotId,
        flow_id: &str,
        user: &UserId,
    ) -> Result<Confirmed, ServiceError> {
        if flow_id.len() != 43
            || !flow_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ServiceError::FlowNotFound);
        }
        let Some(p) = self
            .store
            .pending_by_flow(bot, &sha256_hex(flow_id))
            .await?
        else {
            return Err(ServiceError::FlowNotFound);
        };
        if p.expires_at <= self.clock.unix() {
            self.drop_pending(&p, "expired").await?;
            return Err(ServiceError::FlowNotFound);
        }
        if &p.user_id != user {
            if !self.drop_pending(&p, "confirmed for another user").await? {
                return Err(ServiceError::FlowNotFound);
            }
            return Err(ServiceError::UserMismatch);
        }
        self.store_confirmed(p)
            .await?
            .ok_or(ServiceError::FlowNotFound)
    }

    /// `POST /v1/bots/{bot_id}/users/{user_id}/confirmations`: stores the token of the
    /// user's waiting sign-in whose code this is. A wrong code counts against every sign-in
    /// of the user that waits; the fifth drops it.
    pub async fn confirm_code(
        &self,
        bot: &BotId,
        user: &UserId,
        code: &str,
    ) -> Result<Confirmed, ServiceError> {
        let now = self.clock.unix();
        let mut live = Vec::new();
        for p in self.store.pendings_of(bot, user).await? {
            if p.expires_at <= now {
                self.drop_pending(&p, "expired").await?;
            } else {
                live.push(p);
            }
        }
        let well_formed = code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit());
        let matching = live.iter().find(|p| {
            well_formed
                && bool::from(
                    code_hash(&p.pending_id, code)
                        .as_bytes()
                        .ct_eq(p.code_hash.as_bytes()),
                )
        });
        if let Some(p) = matching {
            // `None`: confirmed (or dropped) by another request just now.
            return self
                .store_confirmed(p.clone())
                .await?
                .ok_or(ServiceError::InvalidConfirmationCode);
        }
        for p in &live {
            if let Some(n) = self
                .store
                .count_wrong_code(bot, user, &p.pending_id)
                .await?
            {
                if n >= MAX_WRONG_CODES {
                    self.drop_pending(p, "too many wrong codes").await?;
                }
            }
        }
        tracing::info!(bot_id = %bot, waiting = live.len(), "wrong confirmation code");
        Err(ServiceError::InvalidConfirmationCode)
    }

    async fn open_pending(&self, p: &PendingConnection) -> Result<TokenSecrets, ServiceError> {
        let record = format!("pending:{}", p.pending_id);
        let plain = self
            .sealer
            .open(&p.sealed, pending_ctx(&p.bot_id, &record))
            .await?;
        serde_json::from_slice(&plain).map_err(ServiceError::Decode)
    }

    /// Stores the token of a waiting sign-in, removing the sign-in in the same step; `None`
    /// when another request confirmed or dropped it first.
    async fn store_confirmed(
        &self,
        p: PendingConnection,
    ) -> Result<Option<Confirmed>, ServiceError> {
        let secrets = self.open_pending(&p).await?;
        let owner = Owner::User(p.user_id.clone());
        // The waiting sign-in does not keep its integration's settings: read them now.
        let keep_fresh = self
            .integration(&p.bot_id, &p.alias)
            .await?
            .is_some_and(|i| i.keep_fresh);
        let new = NewToken {
            bot_id: &p.bot_id,
            owner: &owner,
            alias: &p.alias,
            provider: &p.provider,
            expires_at: p.token_expires_at,
            keep_fresh,
        };
        let Some(token_id) = self
            .store_connected(&new, secrets, Spend::Pending(&p))
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(bot_id = %p.bot_id, alias = %p.alias, %token_id, "sign-in confirmed; token stored");
        Ok(Some(Confirmed {
            alias: p.alias,
            token_id,
        }))
    }

    /// Drops a waiting sign-in with its `oauth_failed:<alias>` (`confirmation_failed`) in one
    /// step, then revokes its grant at the provider (best effort). `false` when another
    /// request confirmed or dropped it first.
    async fn drop_pending(&self, p: &PendingConnection, why: &str) -> Result<bool, ServiceError> {
        let owner = Owner::User(p.user_id.clone());
        let event = self.failed_event(
            super::EventSubject {
                bot: &p.bot_id,
                alias: &p.alias,
                provider: &p.provider,
                owner: &owner,
            },
            EventReason::ConfirmationFailed,
        );
        if !self
            .store
            .drop_pending(p, std::slice::from_ref(&event))
            .await?
        {
            return Ok(false);
        }
        tracing::info!(bot_id = %p.bot_id, alias = %p.alias, why, "waiting sign-in dropped");
        match self.open_pending(p).await {
            Ok(secrets) => {
                self.revoke_grant(&p.provider, &secrets).await;
            }
            Err(e) => {
                tracing::warn!(bot_id = %p.bot_id, error = %e, "dropped sign-in could not be opened for revocation")
            }
        }
        Ok(true)
    }
}
