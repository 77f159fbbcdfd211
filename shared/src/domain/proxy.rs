//! The rules of the API proxy (`/v1/bots/{bot}/tokens/{id}/proxy/{path}`): where a call may
//! go, which headers pass each way, where the credential goes, and what may be retried.
//! Pure: the service applies them, the provider client sends.

use super::catalog::{CredentialSpec, Placement};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

/// Why a proxied path was refused before any request left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must not climb out of the API's base path ('.' or '..' segments)")]
    Climbs,
    #[error("the path must not contain encoded slashes or backslashes")]
    EncodedSeparator,
    #[error("the path must be relative to the API's base URL, not a URL or '//' path")]
    Absolute,
    #[error("the path contains characters a URL path cannot hold")]
    BadCharacters,
    #[error("the target left the API's base URL")]
    LeftBase,
}

/// The URL a proxied call goes to: `base` (whose path prefixes every call) plus `raw_path`
/// (as the bot sent it, still percent-encoded) and the query string, unchanged. Refuses
/// anything that could reach another host or climb out of the base path.
pub fn target_url(base: &Url, raw_path: &str, query: Option<&str>) -> Result<Url, PathError> {
    if raw_path.starts_with('/') || raw_path.contains("://") {
        return Err(PathError::Absolute);
    }
    if raw_path
        .chars()
        .any(|c| c.is_control() || c == ' ' || c == '#' || c == '?')
    {
        return Err(PathError::BadCharacters);
    }
    let lower = raw_path.to_ascii_lowercase();
    if raw_path.contains('\\') || lower.contains("%2f") || lower.contains("%5c") {
        return Err(PathError::EncodedSeparator);
    }
    let climbs = raw_path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    });
    if climbs {
        return Err(PathError::Climbs);
    }
    let base_path = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_path(&format!("{base_path}/{raw_path}"));
    url.set_query(query.filter(|q| !q.is_empty()));
    url.set_fragment(None);
    let inside = url.path() == base_path || url.path().starts_with(&format!("{base_path}/"));
    let same_origin = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    if !inside || !same_origin {
        return Err(PathError::LeftBase);
    }
    Ok(url)
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), and those that
/// name the hop itself.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The headers named by `Connection`, which are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// What of the bot's request goes to the provider: everything but the bot's own
/// `Authorization` (its key to this service), cookies, hop-by-hop headers, `Host` and
/// `Content-Length` (set for the new request), and this service's and its gateway's own
/// headers (`X-Integrations-*`, `X-Request-Id`, `Forwarded`, `X-Forwarded-*`, `X-Amzn-*`).
pub fn request_headers(incoming: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(incoming);
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        let n = name.as_str();
        let dropped = HOP_BY_HOP.contains(&n)
            || listed.iter().any(|l| l == n)
            || matches!(
                n,
                "authorization"
                    | "cookie"
                    | "host"
                    | "content-length"
                    | "forwarded"
                    | "x-request-id"
                    | "expect"
            )
            || n.starts_with("x-integrations-")
            || n.starts_with("x-forwarded-")
            || n.starts_with("x-amzn-");
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// What of the provider's answer goes back to the bot: everything but hop-by-hop headers
/// and `Set-Cookie` (a provider's session is nobody's here).
pub fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(upstream);
    let mut out = HeaderMap::new();
    for (name, value) in upstream {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || listed.iter().any(|l| l == n) || n == "set-cookie" {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Where the credential goes on a proxied request.
#[derive(Clone, PartialEq, Eq)]
pub enum Injection {
    /// A header (`Authorization: Bearer …`, `x-api-key: …`, `Authorization: Basic …`).
    Header(HeaderName, HeaderValue),
    /// A path segment before the API path (Telegram's `bot<token>`).
    PathPrefix(String),
    /// A query parameter.
    Query(String, String),
}

impl std::fmt::Debug for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Injection::Header(name, _) => write!(f, "Header({name}, [redacted])"),
            Injection::PathPrefix(_) => f.write_str("PathPrefix([redacted])"),
            Injection::Query(name, _) => write!(f, "Query({name}, [redacted])"),
        }
    }
}

impl Injection {
    /// Puts the credential on a request to `url`.
    pub fn apply(&self, url: &mut Url, headers: &mut HeaderMap) {
        match self {
            Injection::Header(name, value) => {
                headers.insert(name.clone(), value.clone());
            }
            Injection::Query(name, value) => {
                url.query_pairs_mut().append_pair(name, value);
            }
            Injection::PathPrefix(prefix) => {
                let path = format!("/{prefix}{}", url.path());
                url.set_path(&path);
            }
        }
    }
}

/// The credential's placement: as an entered credential's spec says (`credential` is the
/// access-token value: the key, or the ready `Basic …`), a bearer `Authorization` header for
/// OAuth tokens (`spec` `None`). `None` when the value cannot be placed there (not a header
/// value; a path segment with a separator in it).
pub fn injection(spec: Option<&CredentialSpec>, credential: &str) -> Option<Injection> {
    let header = |name: &str, value: String| {
        let mut v = HeaderValue::from_str(&value).ok()?;
        v.set_sensitive(true);
        Some(Injection::Header(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            v,
        ))
    };
    match spec.map(|s| (s.placement, s)) {
        None => header("authorization", format!("Bearer {credential}")),
        Some((Placement::Basic, _)) => header("authorization", credential.to_owned()),
        Some((Placement::Header, s)) => header(
            s.header.as_deref().unwrap_or("authorization"),
            format!("{}{credential}", s.prefix.as_deref().unwrap_or_default()),
        ),
        Some((Placement::Query, s)) => Some(Injection::Query(
            s.query.clone().unwrap_or_else(|| "api_key".to_owned()),
            credential.to_owned(),
        )),
        Some((Placement::Path, s)) => {
            let unsafe_in_path =
                |c: char| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control();
            (!credential.contains(unsafe_in_path)).then(|| {
                Injection::PathPrefix(format!(
                    "{}{credential}",
                    s.path_prefix.as_deref().unwrap_or_default()
                ))
            })
        }
    }
}

/// Whether a request may be sent twice: `GET`, `HEAD`, `OPTIONS`, `PUT`, `DELETE`, or any
/// request that carries an `Idempotency-Key`.
pub fn idempotent(method: &http::Method, headers: &HeaderMap) -> bool {
    use http::Method;
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    ) || headers.contains_key("idempotency-key")
}

/// `Retry-After` in seconds (the delay form; a date counts as absent).
pub fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests;
