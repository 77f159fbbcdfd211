//! Operator and bot keys. Bot keys name their bot (`bk.<bot>.<random>`), are stored only as
//! SHA-256 hashes, and are remembered for a short while so the warm path costs no store read.

use super::Service;
use crate::domain::ids::{random_urlsafe, sha256_hex, BotId};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
const KEY_CACHE_MAX: usize = 10_000;
const BOT_KEY_PREFIX: &str = "bk";

#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Missing or wrong key: 401.
    Unauthorized,
    /// A valid key of another bot: answered like a missing resource.
    OtherBot,
    /// The key could not be checked (storage fault).
    Unavailable,
}

pub(super) fn new_bot_key(bot: &BotId) -> String {
    format!("{BOT_KEY_PREFIX}.{bot}.{}", random_urlsafe(32))
}

impl Service {
    pub fn check_admin_key(&self, presented: &str) -> bool {
        self.admin_key.matches(presented)
    }

    /// Checks a bot key for `path_bot`. Keys name their bot, so a key of another bot is told
    /// apart from a wrong key without a lookup by key.
    pub async fn authenticate_bot(
        &self,
        path_bot: &str,
        presented: &str,
    ) -> Result<BotId, AuthError> {
        let mut parts = presented.splitn(3, '.');
        let (Some(BOT_KEY_PREFIX), Some(claimed), Some(_)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Unauthorized);
        };
        let claimed = BotId::parse(claimed).map_err(|_| AuthError::Unauthorized)?;
        let hash = sha256_hex(presented);
        if !self.recently_checked(&hash, &claimed) {
            let stored = match self.store.bot_key_hash(&claimed).await {
                Ok(Some(h)) => h,
                Ok(None) => return Err(AuthError::Unauthorized),
                Err(e) => {
                    tracing::error!(error = %e, "bot key lookup failed");
                    return Err(AuthError::Unavailable);
                }
            };
            if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
                return Err(AuthError::Unauthorized);
            }
            self.remember_key(hash, &claimed);
        }
        if claimed.as_str() == path_bot {
            Ok(claimed)
        } else {
            Err(AuthError::OtherBot)
        }
    }

    fn recently_checked(&self, hash: &str, bot: &BotId) -> bool {
        self.key_cache
            .lock()
            .ok()
            .and_then(|c| c.get(hash).cloned())
            .is_some_and(|(b, at)| &b == bot && at.elapsed() < KEY_CACHE_TTL)
    }

    fn remember_key(&self, hash: String, bot: &BotId) {
        if let Ok(mut cache) = self.key_cache.lock() {
            if cache.len() >= KEY_CACHE_MAX {
                cache.clear();
            }
            cache.insert(hash, (bot.clone(), Instant::now()));
        }
    }

    /// Forgets every remembered key of `bot`, so a rotated key stops working at once here.
    pub(super) fn forget_keys_of(&self, bot: &BotId) {
        if let Ok(mut cache) = self.key_cache.lock() {
            cache.retain(|_, (b, _)| b != bot);
        }
    }
}
