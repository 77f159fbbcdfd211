//! What the service does for a token on its own, between the bot's calls: refresh it before
//! its access token expires (`keep_fresh`), use its refresh token before that lapses unused
//! or before the expiry the provider gave it, and warn once before a grant ends that no
//! refresh can extend. Pure rules: the maintenance job (`service::upkeep`) acts on them, and
//! every write of a token stores the time they next ask for something (`due_at`), which the
//! stores index.

use super::catalog::catalog_entry;
use super::token::{TokenRecord, TokenStatus, REFRESH_MARGIN_SECS};
use serde::{Deserialize, Serialize};

/// The longest a keep-alive refresh is done ahead of an idle lapse.
const MAX_KEEPALIVE_LEAD_SECS: i64 = 7 * 86_400;
/// Two refresh-token ends this close are one.
const SAME_END_SECS: i64 = 60;
/// Failed maintenance refreshes are retried after `base * 2^(failures - 1)`, at most this.
const MAX_RETRY_SECS: i64 = 6 * 3600;

/// A token's upkeep, stored beside it in the clear (no secret in it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upkeep {
    /// The integration is marked `keep_fresh: true`: its access token is refreshed before it
    /// expires, whether or not the bot asks for it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_fresh: bool,
    /// The token cannot be renewed without its user: the provider gave no refresh token, and
    /// it is not an app's own (client-credentials) token.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_renewal: bool,
    /// When the grant ends whatever is done: the catalog's absolute refresh-token lifetime,
    /// counted from the sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_ends_at: Option<i64>,
    /// When the refresh token expires, as the provider said (`refresh_token_expires_in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<i64>,
    /// When to use the refresh token so that it does not lapse unused (the catalog's idle
    /// lifetime, counted from its last use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_at: Option<i64>,
    /// The `reconnect_by` a `token_expiring` event was sent for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warned_for: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_at: Option<i64>,
    /// Why the last refresh failed (`provider_unavailable`, ...); cleared by the next success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_error: Option<String>,
    /// Maintenance refreshes that failed in a row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// After a failed maintenance refresh: not again before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<i64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The settings the rules depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpkeepPolicy {
    /// How long before a grant ends `token_expiring` is sent (default 3 days).
    pub warn_ahead: i64,
    /// The first retry delay of a failed maintenance refresh or revocation (the maintenance
    /// interval).
    pub retry_base: i64,
    /// How long a failed revocation is retried before `token_revocation_failed` (a day).
    pub revocation_window: i64,
}

impl Default for UpkeepPolicy {
    fn default() -> Self {
        Self {
            warn_ahead: 3 * 86_400,
            retry_base: 300,
            revocation_window: 86_400,
        }
    }
}

impl UpkeepPolicy {
    /// The delay before retry number `failures` (1-based), doubling up to six hours.
    pub fn retry_delay(&self, failures: u32) -> i64 {
        let shift = failures.saturating_sub(1).min(20);
        self.retry_base
            .max(1)
            .saturating_mul(1 << shift)
            .min(MAX_RETRY_SECS.max(self.retry_base))
    }
}

/// Why a grant ends (`token_expiring`'s `detail.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryReason {
    /// The provider gave the refresh token an expiry that refreshing did not move.
    RefreshTokenExpires,
    /// The provider's refresh tokens live a fixed time from the sign-in.
    GrantLifetime,
    /// The provider gave no refresh token: the access token's expiry ends the grant.
    NoRefreshToken,
}

/// What the maintenance job is to do for a token now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chore {
    Refresh,
    /// Send `token_expiring` for this `reconnect_by`.
    Warn {
        reconnect_by: i64,
        reason: ExpiryReason,
    },
}

/// A connection's health, as the status route and the connections list show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Valid,
    /// The grant ends soon (`reconnect_by`) and no refresh can extend it.
    Expiring,
    /// The grant ended: the access token expired and nothing can renew it.
    Expired,
    /// The provider refused the grant for good.
    Revoked,
}

impl Health {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "valid" => Some(Health::Valid),
            "expiring" => Some(Health::Expiring),
            "expired" => Some(Health::Expired),
            "revoked" => Some(Health::Revoked),
            _ => None,
        }
    }
}

impl Upkeep {
    /// The upkeep of a token just connected or refreshed at `now`. `previous`: the upkeep
    /// before a refresh (`None` for a sign-in, which starts the grant again).
    pub fn renewed(
        previous: Option<&Upkeep>,
        provider: &str,
        keep_fresh: bool,
        renewable: bool,
        refresh_token_expires_in: Option<i64>,
        now: i64,
    ) -> Upkeep {
        let lifetimes = catalog_entry(provider).map(|e| e.lifetimes);
        let grant_ends_at = match previous {
            Some(p) => p.grant_ends_at,
            None => lifetimes
                .as_ref()
                .and_then(|l| l.refresh_token)
                .map(|l| now + l),
        };
        let keepalive_at = lifetimes
            .as_ref()
            .and_then(|l| l.refresh_idle)
            .filter(|_| renewable)
            .map(|idle| now + idle - (idle / 4).min(MAX_KEEPALIVE_LEAD_SECS));
        let kept = previous.and_then(|p| p.refresh_expires_at);
        let refresh_expires_at = match refresh_token_expires_in {
            // Counted in whole seconds from the answer: an end within a minute of the one
            // known is the same end, not one a refresh moved.
            Some(secs) if secs > 0 => match kept {
                Some(at) if (now + secs - at).abs() <= SAME_END_SECS => Some(at),
                _ => Some(now + secs),
            },
            // A refresh answer without it keeps the expiry of the refresh token kept.
            _ => kept,
        };
        Upkeep {
            keep_fresh,
            no_renewal: !renewable,
            grant_ends_at,
            refresh_expires_at,
            keepalive_at,
            warned_for: previous.and_then(|p| p.warned_for),
            last_refresh_at: previous.map(|_| now),
            last_refresh_error: None,
            failures: 0,
            retry_at: None,
        }
    }

    /// The upkeep after a failed refresh at `now`: the error kept, the next try put off.
    pub fn failed(&self, error: &str, now: i64, policy: &UpkeepPolicy) -> Upkeep {
        let failures = self.failures.saturating_add(1);
        Upkeep {
            last_refresh_error: Some(error.to_owned()),
            failures,
            retry_at: Some(now + policy.retry_delay(failures)),
            ..self.clone()
        }
    }
}

impl TokenRecord {
    /// When the grant ends for good, if that is known, and why: no refresh can move it.
    pub fn reconnect_by(&self) -> Option<(i64, ExpiryReason)> {
        let u = &self.upkeep;
        let mut ends = Vec::with_capacity(3);
        if let Some(at) = u.grant_ends_at {
            ends.push((at, ExpiryReason::GrantLifetime));
        }
        if let Some(at) = u.refresh_expires_at {
            ends.push((at, ExpiryReason::RefreshTokenExpires));
        }
        if u.no_renewal {
            if let Some(at) = self.expires_at {
                ends.push((at, ExpiryReason::NoRefreshToken));
            }
        }
        ends.into_iter().min_by_key(|(at, _)| *at)
    }

    /// When `token_expiring` is due for a grant that ends at `reconnect_by`: `warn_ahead`
    /// before, but not before half the time from the last renewal has passed (an hour-long
    /// token without a refresh token is not announced as expiring the moment it arrives).
    fn warn_at(&self, reconnect_by: i64, policy: &UpkeepPolicy) -> i64 {
        let since = self.updated_at.min(reconnect_by);
        (reconnect_by - policy.warn_ahead).max(since + (reconnect_by - since) / 2)
    }

    /// When refreshing may still move the provider's refresh-token expiry: a refresh is tried
    /// once, `2 × warn_ahead` before it, unless the token was renewed after that point
    /// already (then the expiry stands, and is warned about).
    fn extension_at(&self, policy: &UpkeepPolicy) -> Option<i64> {
        let at = self.upkeep.refresh_expires_at? - 2 * policy.warn_ahead;
        (!self.upkeep.no_renewal && self.updated_at < at).then_some(at)
    }

    /// When the access token of a `keep_fresh` token is to be refreshed.
    fn keep_fresh_at(&self) -> Option<i64> {
        let u = &self.upkeep;
        if !u.keep_fresh || u.no_renewal {
            return None;
        }
        let at = self.expires_at?;
        let lifetime = (at - self.updated_at).max(0);
        Some(at - REFRESH_MARGIN_SECS.min(lifetime / 2))
    }

    fn refresh_at(&self, policy: &UpkeepPolicy) -> Option<i64> {
        let keepalive = self.upkeep.keepalive_at.filter(|_| !self.upkeep.no_renewal);
        [self.keep_fresh_at(), keepalive, self.extension_at(policy)]
            .into_iter()
            .flatten()
            .min()
    }

    fn pending_warning(&self, policy: &UpkeepPolicy) -> Option<(i64, i64, ExpiryReason)> {
        let (reconnect_by, reason) = self.reconnect_by()?;
        if self.upkeep.warned_for == Some(reconnect_by) {
            return None;
        }
        Some((self.warn_at(reconnect_by, policy), reconnect_by, reason))
    }

    /// What the maintenance job is to do for this token at `now`, if anything: a refresh
    /// first (it may move what a warning would announce), else a warning.
    pub fn chore(&self, now: i64, policy: &UpkeepPolicy) -> Option<Chore> {
        if self.status == TokenStatus::Revoked || self.upkeep.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        if self.refresh_at(policy).is_some_and(|at| at <= now) {
            return Some(Chore::Refresh);
        }
        match self.pending_warning(policy) {
            Some((at, reconnect_by, reason)) if at <= now && now < reconnect_by => {
                Some(Chore::Warn {
                    reconnect_by,
                    reason,
                })
            }
            _ => None,
        }
    }

    /// When [`TokenRecord::chore`] next has something to do after `now`: what the stores
    /// index. A warning whose grant has ended meanwhile is no longer due.
    pub fn next_due(&self, now: i64, policy: &UpkeepPolicy) -> Option<i64> {
        if self.status == TokenStatus::Revoked {
            return None;
        }
        let warning = self
            .pending_warning(policy)
            .filter(|(_, reconnect_by, _)| *reconnect_by > now)
            .map(|(at, _, _)| at);
        let at = [self.refresh_at(policy), warning]
            .into_iter()
            .flatten()
            .min()?;
        Some(self.upkeep.retry_at.map_or(at, |retry| at.max(retry)))
    }

    /// Sets `due_at` from the upkeep; called before every write of the token.
    pub fn schedule(&mut self, now: i64, policy: &UpkeepPolicy) {
        self.due_at = self.next_due(now, policy);
    }

    pub fn health(&self, now: i64, policy: &UpkeepPolicy) -> Health {
        if self.status == TokenStatus::Revoked {
            return Health::Revoked;
        }
        match self.reconnect_by() {
            Some((at, _)) if at <= now => Health::Expired,
            Some((at, _)) if self.warn_at(at, policy) <= now => Health::Expiring,
            _ => Health::Valid,
        }
    }
}

#[cfg(test)]
mod tests;
