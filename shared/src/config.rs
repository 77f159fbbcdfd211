//! Every setting, read once into typed values. The Lambda functions read them from the
//! environment ([`Config::from_env`]); the local server's command line (clap, with the same
//! environment variables as fallbacks) fills the same types through the same parsers.

use crate::domain::ids::sha256_hex;
use crate::domain::network::OutboundPolicy;
use crate::domain::upkeep::UpkeepPolicy;
use secrecy::SecretString;
use std::path::PathBuf;
use subtle::ConstantTimeEq;
use url::Url;

/// The `source` of every event unless `EVENT_SOURCE` says otherwise.
pub const DEFAULT_EVENT_SOURCE: &str = "bot-integrations";
/// Shortest operator key accepted in `ADMIN_KEY`.
pub const MIN_ADMIN_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

/// The SHA-256 of the operator key; the key itself is never kept.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AdminKeyHash([u8; 32]);

impl std::fmt::Debug for AdminKeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKeyHash(..)")
    }
}

impl AdminKeyHash {
    /// `ADMIN_KEY_SHA256`: 64 hex characters.
    pub fn parse_hex(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        hex::decode(raw.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Self)
            .ok_or_else(|| invalid(name, "expected the SHA-256 of the key as 64 hex characters"))
    }

    /// `ADMIN_KEY`: the key itself, at least [`MIN_ADMIN_KEY_LEN`] characters.
    pub fn of_key(name: &'static str, key: &str) -> Result<Self, ConfigError> {
        if key.len() < MIN_ADMIN_KEY_LEN {
            return Err(invalid(
                name,
                format!("must be at least {MIN_ADMIN_KEY_LEN} characters"),
            ));
        }
        Self::parse_hex(name, &sha256_hex(key))
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// Compares a presented key in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let hash = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            presented.as_bytes(),
        ));
        bool::from(hash.as_slice().ct_eq(&self.0))
    }
}

/// `EVENT_SOURCE`, or the default when unset or blank.
pub fn event_source(raw: Option<&str>) -> String {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_EVENT_SOURCE)
        .to_owned()
}

/// The AWS resources of the service: `TABLE_NAME`, `KMS_KEY_ID`, `EVENT_BUS_NAME`.
#[derive(Debug, Clone)]
pub struct AwsResources {
    pub table: String,
    pub kms_key_id: String,
    pub event_bus: String,
}

impl AwsResources {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: required("TABLE_NAME")?,
            kms_key_id: required("KMS_KEY_ID")?,
            event_bus: required("EVENT_BUS_NAME")?,
        })
    }
}

/// The event relay's settings: `TABLE_NAME`, `EVENT_BUS_NAME`, `EVENT_SOURCE`.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub table: String,
    pub event_bus: String,
    pub event_source: String,
}

impl RelayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: required("TABLE_NAME")?,
            event_bus: required("EVENT_BUS_NAME")?,
            event_source: event_source(var("EVENT_SOURCE").as_deref()),
        })
    }
}

/// Where tokens, keys and events go.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite, a key file and `events.jsonl` in a data directory.
    Embedded { data_dir: PathBuf },
    /// DynamoDB, KMS and EventBridge.
    Aws(AwsResources),
}

/// `EVENTS_WEBHOOK_URL` and `EVENTS_WEBHOOK_SECRET`, which come together.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: Url,
    pub secret: SecretString,
}

impl WebhookConfig {
    pub fn parse(url: Option<&str>, secret: Option<&str>) -> Result<Option<Self>, ConfigError> {
        match (url, secret) {
            (None, None) => Ok(None),
            (Some(url), Some(secret)) if !secret.is_empty() => Ok(Some(Self {
                url: Url::parse(url).map_err(|e| invalid("EVENTS_WEBHOOK_URL", e.to_string()))?,
                secret: SecretString::from(secret.to_owned()),
            })),
            (Some(_), _) => Err(invalid(
                "EVENTS_WEBHOOK_SECRET",
                "is required when EVENTS_WEBHOOK_URL is set",
            )),
            (None, Some(_)) => Err(invalid(
                "EVENTS_WEBHOOK_URL",
                "is required when EVENTS_WEBHOOK_SECRET is set",
            )),
        }
    }
}

/// Everything the service reads at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The base URL browsers and providers reach.
    pub public_url: Url,
    pub admin_key: AdminKeyHash,
    pub event_source: String,
    pub backend: Backend,
    /// Local deliveries of events besides `events.jsonl` (embedded backend only).
    pub webhook: Option<WebhookConfig>,
    /// Where provider calls may go (`ALLOW_LOOPBACK_PROVIDERS`).
    pub outbound: OutboundPolicy,
    /// The maintenance job's settings (`MAINTENANCE_INTERVAL`, `EXPIRY_WARNING`,
    /// `REVOCATION_RETRY_WINDOW`).
    pub upkeep: UpkeepPolicy,
    /// How large a proxied answer may be (`PROXY_MAX_RESPONSE_BYTES`).
    pub proxy: crate::service::ProxyLimits,
}

/// A number of seconds, at least `min`; `default` when unset.
fn seconds(
    name: &'static str,
    raw: Option<&str>,
    default: i64,
    min: i64,
) -> Result<i64, ConfigError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(default);
    };
    match raw.parse::<i64>() {
        Ok(n) if n >= min && n <= 10 * 365 * 86_400 => Ok(n),
        _ => Err(invalid(
            name,
            format!("expected a whole number of seconds, at least {min}"),
        )),
    }
}

/// The largest proxied answer a Lambda function passes on: Lambda's synchronous answers
/// hold 6 MB, and a binary body is base64-encoded in them.
pub const LAMBDA_MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// `PROXY_MAX_RESPONSE_BYTES`, at least 1 KiB; `default` when unset.
pub fn proxy_limits(
    raw: Option<&str>,
    default: usize,
) -> Result<crate::service::ProxyLimits, ConfigError> {
    let max_response_bytes = match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => default,
        Some(r) => r
            .parse::<usize>()
            .ok()
            .filter(|n| (1024..=1 << 40).contains(n))
            .ok_or_else(|| {
                invalid(
                    "PROXY_MAX_RESPONSE_BYTES",
                    "expected a number of bytes, at least 1024",
                )
            })?,
    };
    Ok(crate::service::ProxyLimits { max_response_bytes })
}

/// The maintenance settings, from the raw values of `MAINTENANCE_INTERVAL` (how often the
/// job runs, which is also the first retry delay; default 300), `EXPIRY_WARNING` (how long
/// before a grant ends `token_expiring` is sent; default 3 days) and
/// `REVOCATION_RETRY_WINDOW` (how long a failed revocation is retried; default a day).
pub fn upkeep_policy(
    interval: Option<&str>,
    warning: Option<&str>,
    window: Option<&str>,
) -> Result<UpkeepPolicy, ConfigError> {
    let d = UpkeepPolicy::default();
    Ok(UpkeepPolicy {
        retry_base: seconds("MAINTENANCE_INTERVAL", interval, d.retry_base, 1)?,
        warn_ahead: seconds("EXPIRY_WARNING", warning, d.warn_ahead, 0)?,
        revocation_window: seconds("REVOCATION_RETRY_WINDOW", window, d.revocation_window, 1)?,
    })
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    var(name)
        .map(|v| v.trim().to_owned())
        .ok_or(ConfigError::Missing(name))
}

/// A yes/no setting: `true`/`1`/`yes` or `false`/`0`/`no`; unset is no.
pub fn flag(name: &'static str, raw: Option<&str>) -> Result<bool, ConfigError> {
    match raw.map(|r| r.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => Err(invalid(name, "expected true or false")),
    }
}

pub fn parse_public_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| invalid("PUBLIC_URL", e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("PUBLIC_URL", "must be an http or https URL"));
    }
    Ok(url)
}

impl Config {
    /// A Lambda function's settings: `PUBLIC_URL`, `ADMIN_KEY_SHA256`, `EVENT_SOURCE` and
    /// the AWS resources.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            public_url: parse_public_url(&required("PUBLIC_URL")?)?,
            admin_key: AdminKeyHash::parse_hex("ADMIN_KEY_SHA256", &required("ADMIN_KEY_SHA256")?)?,
            event_source: event_source(var("EVENT_SOURCE").as_deref()),
            backend: Backend::Aws(AwsResources::from_env()?),
            webhook: None,
            outbound: OutboundPolicy {
                allow_loopback: flag(
                    "ALLOW_LOOPBACK_PROVIDERS",
                    var("ALLOW_LOOPBACK_PROVIDERS").as_deref(),
                )?,
            },
            upkeep: upkeep_policy(
                var("MAINTENANCE_INTERVAL").as_deref(),
                var("EXPIRY_WARNING").as_deref(),
                var("REVOCATION_RETRY_WINDOW").as_deref(),
            )?,
            // Lambda's synchronous answers hold 6 MB, base64 included for binary bodies.
            proxy: proxy_limits(
                var("PROXY_MAX_RESPONSE_BYTES").as_deref(),
                LAMBDA_MAX_RESPONSE,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_key_hash_has_one_parser() {
        let key = "k".repeat(32);
        let from_key = AdminKeyHash::of_key("ADMIN_KEY", &key).unwrap();
        let from_hex = AdminKeyHash::parse_hex("ADMIN_KEY_SHA256", &sha256_hex(&key)).unwrap();
        assert_eq!(from_key, from_hex);
        assert!(from_key.matches(&key));
        assert!(!from_key.matches("other"));
        assert!(AdminKeyHash::of_key("ADMIN_KEY", "short").is_err());
        let err = AdminKeyHash::parse_hex("ADMIN_KEY_SHA256", "abc").unwrap_err();
        assert!(err.to_string().contains("64 hex"), "{err}");
        assert_eq!(format!("{from_key:?}"), "AdminKeyHash(..)");
    }

    #[test]
    fn maintenance_settings_have_defaults_and_refuse_nonsense() {
        assert_eq!(
            upkeep_policy(None, None, None).unwrap(),
            UpkeepPolicy::default()
        );
        let p = upkeep_policy(Some("1"), Some("20"), Some("60")).unwrap();
        assert_eq!(
            (p.retry_base, p.warn_ahead, p.revocation_window),
            (1, 20, 60)
        );
        for bad in ["0", "-5", "five", "1.5"] {
            let e = upkeep_policy(Some(bad), None, None).unwrap_err();
            assert!(e.to_string().starts_with("MAINTENANCE_INTERVAL"), "{e}");
        }
    }

    #[test]
    fn event_source_and_webhook_defaults() {
        assert_eq!(event_source(None), DEFAULT_EVENT_SOURCE);
        assert_eq!(event_source(Some("  ")), DEFAULT_EVENT_SOURCE);
        assert_eq!(event_source(Some("acme.bots")), "acme.bots");
        assert!(WebhookConfig::parse(None, None).unwrap().is_none());
        assert!(WebhookConfig::parse(Some("https://h.example/e"), None).is_err());
        assert!(WebhookConfig::parse(None, Some("s")).is_err());
        assert!(WebhookConfig::parse(Some("not a url"), Some("s")).is_err());
        let hook = WebhookConfig::parse(Some("https://h.example/e"), Some("s"))
            .unwrap()
            .unwrap();
        assert_eq!(hook.url.as_str(), "https://h.example/e");
        assert!(parse_public_url("ftp://x").is_err());
        assert!(parse_public_url("https://svc.example/prod").is_ok());
    }
}
