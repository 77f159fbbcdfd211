//! What the service does on its own, run by the maintenance job (the `token-maintenance`
//! function on a schedule, a task of the local server): keep-alive refreshes through the
//! same lease and fenced commit as `access-token`, `token_expiring` warnings sent once, and
//! the revocations a delete left pending. Also the connection health the bot can ask for.

use super::{token_ctx, Service, ServiceError};
use crate::domain::events::{Event, EventKind, Revoked};
use crate::domain::ids::{BotId, ProviderName, TokenId};
use crate::domain::integrations::Context;
use crate::domain::token::{PendingRevocation, TokenRecord, TokenSecrets};
use crate::domain::upkeep::{Chore, Health};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::time::Instant;

/// Records read from the due-time index per query.
const BATCH: u32 = 25;

/// Whether a token can be renewed without its user: it has a refresh token, or it is an
/// app's own token, asked for again.
pub(super) fn renewable(provider: &ProviderName, secrets: &TokenSecrets) -> bool {
    secrets.refresh_token.is_some()
        || crate::domain::catalog::is_client_credentials(provider.as_str())
}

/// The provider's `refresh_token_expires_in`, as a number or a numeric string.
pub(super) fn refresh_token_expires_in(other: &Map<String, Value>) -> Option<i64> {
    match other.get("refresh_token_expires_in")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|secs| *secs > 0)
}

/// The two queues of the due-time index.
#[derive(Clone, Copy)]
enum Queue {
    Tokens,
    Revocations,
}

/// One record of a queue.
enum Work {
    Token(TokenRecord),
    Revocation(PendingRevocation),
}

impl Work {
    fn key(&self) -> (BotId, TokenId) {
        match self {
            Work::Token(t) => (t.bot_id.clone(), t.token_id.clone()),
            Work::Revocation(r) => (r.bot_id.clone(), r.token_id.clone()),
        }
    }
}

/// What one maintenance run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceReport {
    pub refreshed: u32,
    pub refresh_failed: u32,
    pub warned: u32,
    pub revocations_confirmed: u32,
    pub revocations_retried: u32,
    pub revocations_failed: u32,
    /// Due records left for the next run (the time budget ran out).
    pub left_over: bool,
}

/// A connection as the status route and the connections list show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionStatus {
    #[schema(value_type = String)]
    pub token_id: TokenId,
    pub alias: String,
    pub provider: String,
    pub context: Context,
    pub user_id: Option<String>,
    pub status: Health,
    /// When the access token expires (unix seconds).
    pub expires_at: Option<i64>,
    /// When the grant ends for good and the user must sign in again (unix seconds), where
    /// known: no refresh extends it.
    pub reconnect_by: Option<i64>,
    pub keep_fresh: bool,
    /// The last successful refresh (unix seconds).
    pub last_refresh_at: Option<i64>,
    /// Why the last refresh failed, until one succeeds.
    pub last_refresh_error: Option<String>,
}

impl ConnectionStatus {
    fn of(t: &TokenRecord, now: i64, policy: &crate::domain::upkeep::UpkeepPolicy) -> Self {
        Self {
            token_id: t.token_id.clone(),
            alias: t.alias.to_string(),
            provider: t.provider.to_string(),
            context: t.owner.context(),
            user_id: t.owner.user_id().map(|u| u.to_string()),
            status: t.health(now, policy),
            expires_at: t.expires_at,
            reconnect_by: t.reconnect_by().map(|(at, _)| at),
            keep_fresh: t.upkeep.keep_fresh,
            last_refresh_at: t.upkeep.last_refresh_at,
            last_refresh_error: t.upkeep.last_refresh_error.clone(),
        }
    }
}

fn rfc3339(unix: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

impl Service {
    /// The upkeep settings.
    pub fn upkeep_policy(&self) -> &crate::domain::upkeep::UpkeepPolicy {
        &self.upkeep
    }

    /// `GET /v1/bots/{bot}/tokens/{id}/status`.
    pub async fn token_status(
        &self,
        bot: &BotId,
        id: &TokenId,
    ) -> Result<ConnectionStatus, ServiceError> {
        let record = self.record(bot, id).await?;
        Ok(ConnectionStatus::of(
            &record,
            self.clock.unix(),
            &self.upkeep,
        ))
    }

    /// `GET /v1/bots/{bot}/connections`: every token of the bot, optionally only those in
    /// one state.
    pub async fn connections(
        &self,
        bot: &BotId,
        only: Option<Health>,
    ) -> Result<Vec<ConnectionStatus>, ServiceError> {
        let now = self.clock.unix();
        Ok(self
            .store
            .bot_connections(bot)
            .await?
            .iter()
            .map(|t| ConnectionStatus::of(t, now, &self.upkeep))
            .filter(|c| only.is_none_or(|h| c.status == h))
            .collect())
    }

    /// One maintenance run: works through the due tokens, then the due revocations, until
    /// none is left or `deadline` passes. A record that stays due (its lease held by a
    /// caller, a lost race) is left for the next run.
    pub async fn maintain(&self, deadline: Instant) -> Result<MaintenanceReport, ServiceError> {
        let mut report = MaintenanceReport::default();
        self.drain(Queue::Tokens, deadline, &mut report).await?;
        self.drain(Queue::Revocations, deadline, &mut report)
            .await?;
        Ok(report)
    }

    /// Works through one queue of the due-time index, a batch at a time, each record once.
    async fn drain(
        &self,
        queue: Queue,
        deadline: Instant,
        report: &mut MaintenanceReport,
    ) -> Result<(), ServiceError> {
        let mut seen = HashSet::new();
        loop {
            let now = self.clock.unix();
            let batch: Vec<Work> = match queue {
                Queue::Tokens => self
                    .store
                    .due_tokens(now, BATCH)
                    .await?
                    .into_iter()
                    .map(Work::Token)
                    .collect(),
                Queue::Revocations => self
                    .store
                    .due_revocations(now, BATCH)
                    .await?
                    .into_iter()
                    .map(Work::Revocation)
                    .collect(),
            };
            let mut fresh = 0;
            for work in batch {
                if !seen.insert(work.key()) {
                    continue;
                }
                if Instant::now() >= deadline {
                    report.left_over = true;
                    return Ok(());
                }
                fresh += 1;
                match work {
                    Work::Token(t) => self.keep_up(t, report).await,
                    Work::Revocation(r) => self.retry_revocation(r, report).await,
                }
            }
            if fresh == 0 {
                return Ok(());
            }
        }
    }

    /// Does what is due for one token; failures are logged and counted, never fatal to the
    /// run.
    async fn keep_up(&self, t: TokenRecord, report: &mut MaintenanceReport) {
        let now = self.clock.unix();
        match t.chore(now, &self.upkeep) {
            Some(Chore::Refresh) => match self.refresh_for_upkeep(t).await {
                Ok(true) => report.refreshed += 1,
                Ok(false) => {}
                Err(e) => {
                    report.refresh_failed += 1;
                    tracing::warn!(error = %e, "maintenance refresh failed; retried later");
                }
            },
            Some(Chore::Warn {
                reconnect_by,
                reason,
            }) => {
                let mut next = t.clone();
                next.upkeep.warned_for = Some(reconnect_by);
                next.schedule(now, &self.upkeep);
                let mut event =
                    self.event(EventKind::TokenExpiring, (&t).into(), Some(&t.token_id));
                event.detail.reason = Some(reason.into());
                event.detail.expires_at = rfc3339(reconnect_by);
                match self
                    .store
                    .set_upkeep(&t, &next, std::slice::from_ref(&event))
                    .await
                {
                    Ok(true) => {
                        report.warned += 1;
                        tracing::info!(bot_id = %t.bot_id, token_id = %t.token_id, reconnect_by, "grant ends soon; token_expiring sent");
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(token_id = %t.token_id, error = %e, "expiry warning not stored; retried next run")
                    }
                }
            }
            None => {
                // Read from an index that lags, or its time moved: store when it is next due.
                let mut next = t.clone();
                next.schedule(now, &self.upkeep);
                if next.due_at != t.due_at {
                    if let Err(e) = self.store.set_upkeep(&t, &next, &[]).await {
                        tracing::warn!(token_id = %t.token_id, error = %e, "token not rescheduled");
                    }
                }
            }
        }
    }

    /// A keep-alive refresh under the lease. `false`: nothing done, because a caller holds
    /// the lease (its refresh commits and reschedules the token) or the token, read again,
    /// no longer needs one.
    async fn refresh_for_upkeep(&self, record: TokenRecord) -> Result<bool, ServiceError> {
        let holder = crate::domain::ids::random_urlsafe(12);
        let now = self.clock.unix();
        if !self
            .store
            .acquire_lease(
                &record.bot_id,
                &record.token_id,
                &holder,
                now + super::refresh::LEASE_SECS,
                now,
            )
            .await?
        {
            return Ok(false);
        }
        self.refresh_leased(&record, &holder, super::refresh::Why::Upkeep)
            .await
    }

    /// Retries one revocation a delete left pending.
    async fn retry_revocation(&self, r: PendingRevocation, report: &mut MaintenanceReport) {
        let now = self.clock.unix();
        let outcome = match self
            .sealer
            .open(&r.sealed, token_ctx(&r.bot_id, &r.token_id))
            .await
        {
            Ok(plain) => match serde_json::from_slice::<TokenSecrets>(&plain) {
                Ok(secrets) => self.revoke_grant(&r.provider, &secrets).await,
                Err(_) => Revoked::Failed,
            },
            Err(e) => {
                tracing::warn!(token_id = %r.token_id, error = %e, "pending revocation could not be opened; retried later");
                Revoked::Pending
            }
        };
        let next_try = now + self.upkeep.retry_delay(r.attempts.saturating_add(1));
        let (next, kind) = match outcome {
            Revoked::Yes | Revoked::Unsupported => {
                (None, Some(EventKind::TokenRevocationConfirmed))
            }
            Revoked::Pending if next_try < r.give_up_at => (
                Some(PendingRevocation {
                    attempts: r.attempts.saturating_add(1),
                    due_at: next_try,
                    ..r.clone()
                }),
                None,
            ),
            Revoked::Pending | Revoked::Failed => (None, Some(EventKind::TokenRevocationFailed)),
        };
        let events: Vec<Event> = kind
            .map(|kind| {
                let mut e = Event::new(
                    kind,
                    &r.bot_id,
                    &r.alias,
                    &r.provider,
                    &r.owner,
                    Some(&r.token_id),
                    self.clock.now(),
                );
                e.detail.revoked = Some(match kind {
                    EventKind::TokenRevocationConfirmed => Revoked::Yes,
                    _ => Revoked::Failed,
                });
                e
            })
            .into_iter()
            .collect();
        match self
            .store
            .settle_revocation(&r, next.as_ref(), &events)
            .await
        {
            Ok(true) => match kind {
                Some(EventKind::TokenRevocationConfirmed) => {
                    report.revocations_confirmed += 1;
                    tracing::info!(token_id = %r.token_id, attempts = r.attempts + 1, "pending revocation confirmed by the provider");
                }
                Some(_) => {
                    report.revocations_failed += 1;
                    tracing::warn!(token_id = %r.token_id, attempts = r.attempts + 1, "revocation given up; the grant may still be live at the provider");
                }
                None => report.revocations_retried += 1,
            },
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(token_id = %r.token_id, error = %e, "revocation outcome not stored; tried again next run")
            }
        }
    }
}
