//! Refreshing a due token: one refresh at a time per token across processes, through a lease
//! taken with a conditional write, a re-read under it, and a commit fenced on the version
//! read (security item 13).

use super::tokens::{expiry, AccessTokenView};
use super::upkeep::{refresh_token_expires_in, renewable};
use super::{Service, ServiceError};
use crate::domain::events::{EventKind, EventReason};
use crate::domain::ids::random_urlsafe;
use crate::domain::providers::ProviderApp;
use crate::domain::token::{TokenRecord, TokenSecrets, TokenStatus};
use crate::domain::upkeep::{Chore, Upkeep};
use crate::ports::{GrantedToken, ProviderError, RegisteredApp};
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, Instant};

/// Longer than a provider request may take, so a live holder never loses its lease.
pub(super) const LEASE_SECS: i64 = 30;
/// Tries to commit a refresh the provider already answered: about 1.5 s of backoff in all,
/// well inside the lease.
const COMMIT_ATTEMPTS: u32 = 5;
/// How long a caller waits for another caller's refresh before answering 503.
const LEASE_WAIT: Duration = Duration::from_secs(12);

/// A due token, opened, with what refreshing it takes.
struct Due {
    record: TokenRecord,
    secrets: TokenSecrets,
    client: RegisteredApp,
    /// `None` for a client-credentials token, renewed by asking again.
    refresh_token: Option<SecretString>,
    /// The data key for the new credentials, obtained before the provider is called.
    seal: crate::ports::PreparedSeal,
}

/// Who asks for a refresh, which decides whether the token, read again under the lease,
/// still needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// A caller of `access-token`: the access token is due.
    AccessToken,
    /// The maintenance job: the token's upkeep asks for a refresh.
    Upkeep,
    /// The provider's API refused the access token of this version (a proxied call's
    /// `401`): refresh unless another caller already has.
    Rejected { version: i64 },
}

impl Why {
    /// Whether `f`, as read now, still needs the refresh asked for.
    fn needs(
        self,
        f: &TokenRecord,
        now: i64,
        policy: &crate::domain::upkeep::UpkeepPolicy,
    ) -> bool {
        match self {
            Why::AccessToken => f.refresh_due(now),
            Why::Upkeep => f.chore(now, policy) == Some(Chore::Refresh),
            Why::Rejected { version } => f.version == version,
        }
    }
}

/// What one attempt under the lease came to.
enum Attempt {
    /// The answer; the lease is released (by the fenced commit, or explicitly).
    Done(AccessTokenView),
    /// As `Done`, after a refresh this attempt made.
    Refreshed(AccessTokenView),
    /// The fenced commit lost (the token was reconnected meanwhile): read again.
    Lost,
}

impl Service {
    pub(super) async fn refresh(
        &self,
        record: TokenRecord,
    ) -> Result<AccessTokenView, ServiceError> {
        self.refresh_for(record, Why::AccessToken).await
    }

    /// Refreshes `record` for `why`, waiting for another holder of the lease when there is
    /// one: the token as it is afterwards.
    pub(super) async fn refresh_for(
        &self,
        record: TokenRecord,
        why: Why,
    ) -> Result<AccessTokenView, ServiceError> {
        let holder = random_urlsafe(12);
        let waited = Instant::now();
        let mut backoff = Duration::from_millis(25);
        loop {
            let now = self.clock.unix();
            let leased = self
                .store
                .acquire_lease(
                    &record.bot_id,
                    &record.token_id,
                    &holder,
                    now + LEASE_SECS,
                    now,
                )
                .await?;
            if leased {
                match self.under_lease(&record, &holder, why).await? {
                    Attempt::Done(view) | Attempt::Refreshed(view) => return Ok(view),
                    Attempt::Lost => {}
                }
            } else if let Some(view) = self.settled_by_another(&record, now, why).await? {
                return Ok(view);
            }
            if waited.elapsed() > LEASE_WAIT {
                return Err(ServiceError::ProviderUnavailable { retry_after: 2 });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(250));
        }
    }

    /// While someone else holds the lease: the token as it is now, if it needs no refresh.
    async fn settled_by_another(
        &self,
        record: &TokenRecord,
        now: i64,
        why: Why,
    ) -> Result<Option<AccessTokenView>, ServiceError> {
        let current = self.record(&record.bot_id, &record.token_id).await?;
        if current.status == TokenStatus::Revoked {
            return Ok(Some(AccessTokenView::revoked()));
        }
        if why.needs(&current, now, &self.upkeep) {
            return Ok(None);
        }
        let c = self.open_credentials(&current).await?;
        Ok(Some(AccessTokenView::valid(
            &c.access_token,
            current.expires_at,
        )))
    }

    /// The maintenance job's refresh, with the lease taken: `true` when it refreshed.
    pub(super) async fn refresh_leased(
        &self,
        record: &TokenRecord,
        holder: &str,
        why: Why,
    ) -> Result<bool, ServiceError> {
        Ok(matches!(
            self.under_lease(record, holder, why).await?,
            Attempt::Refreshed(_)
        ))
    }

    /// Holding the lease: re-reads the token (another holder may have refreshed it) and
    /// refreshes it if it still needs it. Releases the lease unless a commit did.
    async fn under_lease(
        &self,
        record: &TokenRecord,
        holder: &str,
        why: Why,
    ) -> Result<Attempt, ServiceError> {
        let now = self.clock.unix();
        let needs = |f: &TokenRecord| why.needs(f, now, &self.upkeep);
        let result = match self.store.token(&record.bot_id, &record.token_id).await {
            Err(e) => Err(e.into()),
            Ok(None) => Err(ServiceError::TokenNotFound),
            Ok(Some(f)) if f.status == TokenStatus::Revoked => {
                Ok(Attempt::Done(AccessTokenView::revoked()))
            }
            Ok(Some(f)) if !needs(&f) => match self.open_credentials(&f).await {
                Ok(s) => Ok(Attempt::Done(AccessTokenView::valid(
                    &s.access_token,
                    f.expires_at,
                ))),
                Err(e) => Err(e),
            },
            // The commit releases the lease, won or lost.
            Ok(Some(f)) => return self.refresh_fresh(f, holder).await,
        };
        self.release(record, holder, true).await;
        result
    }

    /// Releases the lease. `settled`: no request of this holder can have reached the provider
    /// unanswered (see [`TokenRecord::refresh_unsettled`]).
    async fn release(&self, record: &TokenRecord, holder: &str, settled: bool) {
        if let Err(e) = self
            .store
            .release_lease(&record.bot_id, &record.token_id, holder, settled)
            .await
        {
            tracing::warn!(token_id = %record.token_id, error = %e, "refresh lease not released; it expires by itself");
        }
    }

    /// Calls the provider for `fresh`, read under the lease, and commits what it answered.
    /// Every path that does not end in a commit releases the lease.
    async fn refresh_fresh(
        &self,
        fresh: TokenRecord,
        holder: &str,
    ) -> Result<Attempt, ServiceError> {
        let due = match self.prepare(fresh.clone()).await {
            Ok(Ok(due)) => due,
            Ok(Err(view)) => {
                self.release(&fresh, holder, true).await;
                return Ok(Attempt::Done(view));
            }
            Err(e) => {
                self.release(&fresh, holder, true).await;
                return Err(e);
            }
        };
        let redirect_uri = self.redirect_uri(&due.client.app.name);
        let outcome = match &due.refresh_token {
            Some(rt) => self.provider.refresh(&due.client, &redirect_uri, rt).await,
            None => {
                self.provider
                    .client_credentials(&due.client, &due.secrets.scopes)
                    .await
            }
        };
        match outcome {
            Ok(granted) => self.commit_granted(due, granted, holder).await,
            Err(ProviderError::Final { code }) => {
                self.commit_revoked(due.record, &code, holder).await
            }
            Err(ProviderError::OutcomeUnknown) => {
                // The provider may have rotated the refresh token in the answer we lost: the
                // mark stays, so a later `invalid_grant` is reported as our fault.
                tracing::warn!(token_id = %fresh.token_id, "refresh sent but its answer was lost; outcome unknown");
                self.release(&fresh, holder, false).await;
                self.note_refresh_failure(&fresh, "outcome_unknown").await;
                Err(ServiceError::ProviderUnavailable { retry_after: 5 })
            }
            Err(e) => {
                self.release(&fresh, holder, true).await;
                let code = match &e {
                    ProviderError::Transient { .. } => "provider_unavailable",
                    ProviderError::Refused { .. } => "provider_refused",
                    ProviderError::Malformed(_) => "provider_answer_malformed",
                    _ => "provider_misconfigured",
                };
                self.note_refresh_failure(&fresh, code).await;
                Err(match e {
                    ProviderError::Transient { retry_after } => {
                        tracing::warn!(token_id = %fresh.token_id, "provider unavailable for refresh");
                        ServiceError::ProviderUnavailable {
                            retry_after: retry_after.unwrap_or(5).clamp(1, 300),
                        }
                    }
                    other => ServiceError::Provider(other),
                })
            }
        }
    }

    /// Keeps why a refresh failed on the token (its status shows it), and puts the next
    /// maintenance refresh off by the backoff. Best effort: the refresh has failed already.
    async fn note_refresh_failure(&self, fresh: &TokenRecord, code: &str) {
        let now = self.clock.unix();
        let mut next = fresh.clone();
        next.upkeep = fresh.upkeep.failed(code, now, &self.upkeep);
        next.schedule(now, &self.upkeep);
        if let Err(e) = self.store.set_upkeep(fresh, &next, &[]).await {
            tracing::warn!(token_id = %fresh.token_id, error = %e, "refresh failure not noted on the token");
        }
    }

    /// Opens the token and its provider app. `Ok(Err(view))`: nothing to refresh with, so
    /// the token is answered as it is.
    async fn prepare(
        &self,
        record: TokenRecord,
    ) -> Result<Result<Due, AccessTokenView>, ServiceError> {
        let secrets = self.open_secrets(&record).await?;
        let refresh_token = secrets.refresh_token.clone().map(SecretString::from);
        if refresh_token.is_none()
            && !crate::domain::catalog::is_client_credentials(record.provider.as_str())
        {
            let now = self.clock.unix();
            return Ok(Err(AccessTokenView::without_refresh(
                &secrets.access_token,
                record.expires_at,
                now,
            )));
        };
        let mut client = self
            .registered_app(&record.provider)
            .await?
            .ok_or_else(|| ServiceError::ProviderNotConfigured(record.provider.clone()))?;
        client.app = client
            .app
            .with_connection(&ProviderApp::connection_of(&secrets.other));
        // Whatever can fail for a dependency happens before the provider spends the refresh
        // token: after its answer, sealing is local.
        let seal = self
            .sealer
            .prepare(super::token_ctx(&record.bot_id, &record.token_id))
            .await?;
        Ok(Ok(Due {
            record,
            secrets,
            client,
            refresh_token,
            seal,
        }))
    }

    async fn commit_granted(
        &self,
        due: Due,
        g: GrantedToken,
        holder: &str,
    ) -> Result<Attempt, ServiceError> {
        let Due {
            record: fresh,
            mut secrets,
            client,
            seal,
            ..
        } = due;
        let now = self.clock.unix();
        let refresh_expires_in = refresh_token_expires_in(&g.other);
        secrets.access_token = g.access_token.expose_secret().to_owned();
        // Keep the old refresh token when the provider does not rotate it (item 14).
        if let Some(rt) = &g.refresh_token {
            secrets.refresh_token = Some(rt.expose_secret().to_owned());
        }
        if let Some(scopes) = g.scopes {
            secrets.scopes = scopes;
        }
        secrets.other.extend(g.other);
        let mut next = fresh.clone();
        next.updated_at = now;
        next.expires_at = expiry(&client.app, g.expires_in, now);
        next.upkeep = Upkeep::renewed(
            Some(&fresh.upkeep),
            fresh.provider.as_str(),
            fresh.upkeep.keep_fresh,
            renewable(&fresh.provider, &secrets),
            refresh_expires_in,
            now,
        );
        next.schedule(now, &self.upkeep);
        // The provider has answered: its old refresh token may be spent already. Sealing is
        // local (the data key came before the call), and the commit is worth retrying for
        // while the lease (LEASE_SECS) surely holds.
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(&secrets).map_err(ServiceError::Decode)?);
        next.sealed = seal.seal(&plain)?;
        let mut backoff = std::time::Duration::from_millis(100);
        let mut attempt = 1;
        let committed = loop {
            match self
                .store
                .commit_refresh(&next, fresh.version, holder, &[])
                .await
            {
                Ok(committed) => break committed,
                Err(e) if attempt < COMMIT_ATTEMPTS => {
                    tracing::warn!(token_id = %next.token_id, attempt, error = %e, "refreshed credentials not stored yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(token_id = %next.token_id, error = %e, "refreshed credentials could not be stored; the provider's new refresh token is lost");
                    // Unsettled: the stored refresh token may be spent, and a later
                    // `invalid_grant` is ours to own.
                    self.release(&fresh, holder, false).await;
                    return Err(e.into());
                }
            }
        };
        if !committed {
            return Ok(Attempt::Lost);
        }
        tracing::info!(bot_id = %next.bot_id, token_id = %next.token_id, "token refreshed");
        Ok(Attempt::Refreshed(AccessTokenView::valid(
            &secrets.access_token,
            next.expires_at,
        )))
    }

    /// `invalid_grant` / `invalid_client` are final (item 15): the token is marked revoked,
    /// with its `token_revoked:<alias>` in the same step. When an earlier refresh of another
    /// holder was never settled, the provider may have rotated the refresh token in an answer
    /// we lost: the event says `refresh_outcome_unknown`.
    async fn commit_revoked(
        &self,
        fresh: TokenRecord,
        code: &str,
        holder: &str,
    ) -> Result<Attempt, ServiceError> {
        let mut next = fresh.clone();
        next.updated_at = self.clock.unix();
        next.status = TokenStatus::Revoked;
        next.schedule(next.updated_at, &self.upkeep);
        let ours = fresh
            .refresh_unsettled
            .as_deref()
            .is_some_and(|earlier| earlier != holder);
        let mut event = self.event(
            EventKind::TokenRevoked,
            (&next).into(),
            Some(&next.token_id),
        );
        event.detail.reason = Some(if ours {
            EventReason::RefreshOutcomeUnknown
        } else {
            EventReason::ProviderRefused
        });
        let committed = match self
            .store
            .commit_refresh(&next, fresh.version, holder, std::slice::from_ref(&event))
            .await
        {
            Ok(committed) => committed,
            Err(e) => {
                // Nothing written: the next caller asks the provider again and gets the same
                // answer.
                self.release(&fresh, holder, true).await;
                return Err(e.into());
            }
        };
        if !committed {
            return Ok(Attempt::Lost);
        }
        if ours {
            tracing::error!(bot_id = %next.bot_id, token_id = %next.token_id, %code, "refresh refused after an earlier refresh whose answer was lost; token revoked (refresh_outcome_unknown)");
        } else {
            tracing::warn!(bot_id = %next.bot_id, token_id = %next.token_id, %code, "refresh refused for good; token revoked");
        }
        Ok(Attempt::Done(AccessTokenView::revoked()))
    }
}
