//! Identifiers, parsed once at the edge. Each constructor is the only way to build the value,
//! so everything past the HTTP layer can rely on the contract's shapes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} {reason}")]
pub struct InvalidId {
    pub what: &'static str,
    pub reason: &'static str,
}

fn invalid(what: &'static str, reason: &'static str) -> InvalidId {
    InvalidId { what, reason }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// `^[a-z0-9][a-z0-9_-]{0,62}$`
    BotId
);
string_id!(
    /// 1 to 256 characters chosen by the bot.
    UserId
);
string_id!(
    /// `^[a-z0-9_]{1,64}$`, from the integrations file; defaults to the provider name.
    Alias
);
string_id!(
    /// A provider of the catalog or an operator's custom provider: `^[a-z0-9_]{1,64}$`, so
    /// that it is also a valid default alias.
    ProviderName
);
string_id!(
    /// `tok_` followed by 24 base64url characters (144 random bits).
    TokenId
);
string_id!(
    /// A link or connect-page id: `{bot_id}.{32 base64url characters}` (192 random bits).
    /// It names its bot so that storage keys always include the bot.
    LinkId
);

impl BotId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let bytes = raw.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !first_ok || bytes.len() > 63 {
            return Err(invalid(
                "bot_id",
                "must be 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
            ));
        }
        if !bytes
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
        {
            return Err(invalid(
                "bot_id",
                "must be 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let len = raw.chars().count();
        if len == 0 || len > 256 {
            return Err(invalid("user_id", "must be 1 to 256 characters"));
        }
        if raw.chars().any(char::is_control) {
            return Err(invalid("user_id", "must not contain control characters"));
        }
        Ok(Self(raw.to_owned()))
    }
}

fn is_snake_name(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

impl Alias {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        if is_snake_name(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid(
                "alias",
                "must be 1 to 64 characters of a-z, 0-9 and '_'",
            ))
        }
    }
}

impl From<&ProviderName> for Alias {
    fn from(p: &ProviderName) -> Self {
        Self(p.0.clone())
    }
}

impl ProviderName {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        if is_snake_name(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid(
                "provider",
                "must be 1 to 64 characters of a-z, 0-9 and '_'",
            ))
        }
    }
}

const TOKEN_PREFIX: &str = "tok_";
const TOKEN_RANDOM_BYTES: usize = 18;
const LINK_RANDOM_BYTES: usize = 24;

fn is_base64url(raw: &str) -> bool {
    raw.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

impl TokenId {
    pub fn generate() -> Self {
        Self(format!(
            "{TOKEN_PREFIX}{}",
            random_urlsafe(TOKEN_RANDOM_BYTES)
        ))
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        match raw.strip_prefix(TOKEN_PREFIX) {
            Some(rest) if rest.len() == TOKEN_RANDOM_BYTES * 4 / 3 && is_base64url(rest) => {
                Ok(Self(raw.to_owned()))
            }
            _ => Err(invalid("token_id", "is not a token id")),
        }
    }
}

impl LinkId {
    pub fn generate(bot: &BotId) -> Self {
        Self(format!("{bot}.{}", random_urlsafe(LINK_RANDOM_BYTES)))
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        match raw.split_once('.') {
            Some((bot, rest))
                if BotId::parse(bot).is_ok()
                    && rest.len() == LINK_RANDOM_BYTES * 4 / 3
                    && is_base64url(rest) =>
            {
                Ok(Self(raw.to_owned()))
            }
            _ => Err(invalid("link", "is not a link id")),
        }
    }

    /// The bot this link belongs to.
    pub fn bot(&self) -> BotId {
        BotId(self.0.split_once('.').map_or("", |(b, _)| b).to_owned())
    }

    /// What stores keep instead of the id: its SHA-256, so that reading the store does not
    /// give anyone a working link.
    pub fn key(&self) -> String {
        sha256_hex(&self.0)
    }
}

/// A fresh OAuth `state`: `{bot_id}.{43 base64url characters}` (256 random bits).
pub fn new_state(bot: &BotId) -> String {
    format!("{bot}.{}", random_urlsafe(32))
}

/// The bot a `state` names, when it has the shape of one.
pub fn state_bot(state: &str) -> Option<BotId> {
    let (bot, rest) = state.split_once('.')?;
    (rest.len() == 43 && is_base64url(rest))
        .then(|| BotId::parse(bot).ok())
        .flatten()
}

/// `n` bytes from the operating system's generator, base64url without padding.
pub fn random_urlsafe(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The value of the cookie that binds a sign-in to the browser that started it: 32 random
/// bytes, base64url. Only its hash is stored with a flow.
pub struct BrowserKey(secrecy::SecretString);

impl BrowserKey {
    pub fn generate() -> Self {
        Self(random_urlsafe(32).into())
    }

    /// A cookie value of the right shape; anything else is ignored (a new key is set).
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 43
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Self(raw.to_owned().into()))
    }

    pub fn expose(&self) -> &str {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
    }

    pub fn hash(&self) -> String {
        sha256_hex(self.expose())
    }

    /// Whether this is the browser whose key hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.hash().as_bytes().ct_eq(stored.as_bytes()))
    }
}

impl std::fmt::Debug for BrowserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrowserKey([redacted])")
    }
}

/// Lowercase hex SHA-256, the form in which keys and `state` values are stored.
pub fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_ids_follow_the_contract() {
        assert!(BotId::parse("acme").is_ok());
        assert!(BotId::parse("a-b_c9").is_ok());
        assert!(BotId::parse(&"a".repeat(63)).is_ok());
        for bad in ["", "-acme", "Acme", "acme!", "a b", &"a".repeat(64)] {
            assert!(BotId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn aliases_and_providers_are_snake_names() {
        assert!(Alias::parse("google_calendar").is_ok());
        assert!(Alias::parse("Google").is_err());
        assert!(Alias::parse(&"a".repeat(65)).is_err());
        assert!(ProviderName::parse("my-idp").is_err());
    }

    #[test]
    fn user_ids_are_bounded() {
        assert!(UserId::parse("u-1@example.com / x").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"é".repeat(256)).is_ok());
        assert!(UserId::parse(&"é".repeat(257)).is_err());
        assert!(UserId::parse("a\nb").is_err());
    }

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = TokenId::generate();
        let b = TokenId::generate();
        assert_ne!(a, b);
        assert_eq!(TokenId::parse(a.as_str()), Ok(a.clone()));
        assert!(a.as_str().len() >= 4 + 24);
        assert!(TokenId::parse("tok_short").is_err());
        assert!(TokenId::parse(&a.as_str().replace("tok_", "tik_")).is_err());
        let acme = BotId::parse("acme").unwrap();
        let link = LinkId::generate(&acme);
        assert_eq!(LinkId::parse(link.as_str()), Ok(link.clone()));
        assert_eq!(link.bot(), acme);
        assert!(link.as_str().len() >= "acme.".len() + 32);
        assert!(LinkId::parse("../../etc/passwd").is_err());
        assert!(LinkId::parse(&link.as_str().replace("acme.", "Acme.")).is_err());
        let state = new_state(&acme);
        assert_eq!(state_bot(&state), Some(acme));
        assert_eq!(state_bot("acme.short"), None);
        assert_eq!(state_bot("no-dot"), None);
    }
}
