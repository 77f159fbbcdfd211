//! The built-in providers, read from `catalog/providers.yaml` (embedded at build time): what
//! is true of a provider for every app. Code exists only for what an entry cannot say; the
//! format is described in `docs/catalog.md`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// How a connection's credentials are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// OAuth 2.0 authorization code: a user signs in at the provider.
    Oauth2,
    /// OAuth 2.0 client credentials: the app itself, no user.
    ClientCredentials,
    /// A key pasted by the builder or the user.
    ApiKey,
    /// A user name and password (or key and secret) for HTTP Basic.
    Basic,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    #[default]
    Basic,
    /// `client_id` and `client_secret` form fields.
    Body,
}

/// One dotted path into a JSON answer (`data.0.id`), or several, the first present wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Paths {
    One(String),
    Any(Vec<String>),
}

impl Paths {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let all: &[String] = match self {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Any(ps) => ps,
        };
        all.iter().map(String::as_str)
    }

    /// The first path that leads to a value other than `null`.
    pub fn find<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.iter()
            .find_map(|p| lookup(root, p).filter(|v| !v.is_null()))
    }
}

/// Follows a dotted path; numeric segments index arrays.
pub fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(root, |cur, seg| match cur {
        Value::Array(items) => items.get(seg.parse::<usize>().ok()?),
        Value::Object(map) => map.get(seg),
        _ => None,
    })
}

/// The fields of the token's `info` a user-info answer can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfoField {
    Name,
    FirstName,
    LastName,
    Nickname,
    Email,
    EmailVerified,
    Location,
    Description,
    Image,
    Phone,
    Birthday,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn as_http(self) -> http::Method {
        match self {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Delete => http::Method::DELETE,
        }
    }
}

/// Where to learn who connected, and how the answer maps onto `uid` and `info`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserInfoSpec {
    pub url: String,
    #[serde(default)]
    pub method: Method,
    /// Extra request headers; values may name `{client_id}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// For `POST`: the JSON body (absent: an empty body).
    #[serde(default)]
    pub body: Option<Value>,
    pub uid: Paths,
    #[serde(default)]
    pub fields: BTreeMap<InfoField, Paths>,
    /// Label -> path of a URL about the user.
    #[serde(default)]
    pub urls: BTreeMap<String, String>,
}

/// The token answer's shape, for providers that do not follow RFC 6749 §5.1. A path missing
/// from an answer falls back to the standard field (refresh answers are often flat).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenShape {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<String>,
    pub scope: Option<String>,
    /// A boolean that is `false` on errors even with HTTP 200 (Slack's `ok`).
    pub ok_field: Option<String>,
    /// Where the error code is, when not `error`.
    pub error_field: Option<String>,
    /// Extra values kept with the token: key -> path into the answer.
    #[serde(default)]
    pub keep: BTreeMap<String, String>,
}

impl TokenShape {
    pub fn is_standard(&self) -> bool {
        self.access_token.is_none()
            && self.refresh_token.is_none()
            && self.expires_in.is_none()
            && self.scope.is_none()
            && self.ok_field.is_none()
            && self.error_field.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhichToken {
    AccessToken,
    RefreshToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeAuth {
    /// HTTP Basic with the app's client id and secret.
    ClientBasic,
    /// `Authorization: Bearer <access token>`.
    Bearer,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    Json,
    Form,
}

/// How a grant is ended on delete.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Revocation {
    /// RFC 7009: `token` and `token_type_hint` as a form, the client authenticated as at the
    /// token endpoint.
    Rfc7009 {
        url: String,
        #[serde(default)]
        token: Option<WhichToken>,
    },
    /// The provider's own call. Values may name `{access_token}`, `{refresh_token}`,
    /// `{client_id}` and `{client_secret}`.
    Request {
        method: Method,
        url: String,
        auth: RevokeAuth,
        #[serde(default)]
        body: Option<BodyKind>,
        #[serde(default)]
        fields: BTreeMap<String, String>,
        #[serde(default)]
        query: BTreeMap<String, String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

impl Revocation {
    pub fn url(&self) -> &str {
        match self {
            Revocation::Rfc7009 { url, .. } | Revocation::Request { url, .. } => url,
        }
    }
}

/// Lifetimes the provider documents, in seconds.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifetimes {
    /// Assumed when a token answer has no `expires_in`.
    pub access_token: Option<i64>,
    /// The refresh token's absolute lifetime.
    pub refresh_token: Option<i64>,
    /// The refresh token lapses after this long unused.
    pub refresh_idle: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamScope {
    /// Set once by the operator with the app.
    App,
    /// Given for each connection (a shop, a subdomain).
    Connection,
}

/// A value substituted into the entry's `{name}` placeholders.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub name: String,
    pub scope: ParamScope,
    pub label: String,
    /// A regular expression the whole value must match.
    pub pattern: String,
    #[serde(default)]
    pub default: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenId {
    pub issuer: String,
    pub jwks_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiVersion {
    pub version: String,
    /// `YYYY-MM-DD`: the provider's published end of life for this version.
    #[serde(default)]
    pub end_of_life: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialField {
    pub name: String,
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    Header,
    Query,
    Basic,
    /// A path segment before the API path (Telegram's `/bot<token>/`).
    Path,
}

/// What a key or basic integration asks for, and where the credential goes on a request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    pub fields: Vec<CredentialField>,
    pub placement: Placement,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
}

fn space() -> String {
    " ".to_owned()
}

/// One provider of the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub name: String,
    pub display_name: String,
    pub category: String,
    pub kind: CredentialKind,
    pub docs_url: String,
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    #[serde(default)]
    pub pkce: bool,
    #[serde(default = "space")]
    pub scope_separator: String,
    /// The authorization parameter the scopes go in, when not `scope` (Slack's user
    /// scopes: `user_scope`).
    #[serde(default)]
    pub scope_param: Option<String>,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    /// The provider issues refresh tokens in this flow.
    #[serde(default)]
    pub refresh: bool,
    #[serde(default)]
    pub rotates_refresh_token: bool,
    #[serde(default)]
    pub openid: Option<OpenId>,
    #[serde(default)]
    pub token_response: TokenShape,
    #[serde(default)]
    pub userinfo: Option<UserInfoSpec>,
    #[serde(default)]
    pub revocation: Option<Revocation>,
    #[serde(default)]
    pub lifetimes: Lifetimes,
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    #[serde(default)]
    pub api_base_url: Option<String>,
    #[serde(default)]
    pub api_version: Option<ApiVersion>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub credential: Option<CredentialSpec>,
}

impl CatalogEntry {
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The values `token_response.keep` names, from a token answer's non-standard fields.
    pub fn kept(&self, other: &serde_json::Map<String, Value>) -> BTreeMap<String, Value> {
        let answer = Value::Object(other.clone());
        self.token_response
            .keep
            .iter()
            .filter_map(|(key, path)| Some((key.clone(), lookup(&answer, path)?.clone())))
            .collect()
    }
}

static CATALOG: OnceLock<Vec<CatalogEntry>> = OnceLock::new();

/// Every entry, sorted by name. Parsed on first use; the file is checked by the tests.
pub fn catalog() -> &'static [CatalogEntry] {
    CATALOG.get_or_init(|| {
        serde_json::from_str(include_str!(concat!(env!("OUT_DIR"), "/catalog.json")))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "the built-in provider catalog does not parse");
                Vec::new()
            })
    })
}

pub fn catalog_entry(name: &str) -> Option<&'static CatalogEntry> {
    catalog().iter().find(|e| e.name == name)
}

/// Whether the provider's tokens are for the app itself (OAuth 2.0 client credentials):
/// connected without a sign-in, renewed by asking again.
pub fn is_client_credentials(provider: &str) -> bool {
    catalog_entry(provider).is_some_and(|e| e.kind == CredentialKind::ClientCredentials)
}

/// Checks per-connection values against the provider's entry: each named by a `scope:
/// connection` param, each matching its pattern. The error says which and why.
pub fn check_connection_params(
    provider: &str,
    given: &BTreeMap<String, String>,
) -> Result<(), String> {
    let entry = catalog_entry(provider);
    for (name, value) in given {
        let Some(spec) = entry
            .and_then(|e| e.param(name))
            .filter(|p| p.scope == ParamScope::Connection)
        else {
            return Err(format!(
                "params.{name}: not a per-connection value of '{provider}'"
            ));
        };
        let ok = value.len() <= 253
            && regex_lite::Regex::new(&spec.pattern).is_ok_and(|re| re.is_match(value));
        if !ok {
            return Err(format!("params.{name} must match {}", spec.pattern));
        }
    }
    Ok(())
}

/// The connection's values: those given, checked, and the defaults of the others. The error
/// names the first required value that is missing.
pub fn connection_params(
    provider: &str,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    check_connection_params(provider, given)?;
    let mut out = given.clone();
    let specs = catalog_entry(provider).map_or(&[][..], |e| &e.params[..]);
    for spec in specs.iter().filter(|p| p.scope == ParamScope::Connection) {
        if out.contains_key(&spec.name) {
            continue;
        }
        match &spec.default {
            Some(d) => {
                out.insert(spec.name.clone(), d.clone());
            }
            None => {
                return Err(format!(
                    "params.{} is required for '{provider}': {}",
                    spec.name, spec.label
                ))
            }
        }
    }
    Ok(out)
}

/// Names every `{placeholder}` in a URL or template.
pub fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// Replaces `{name}` placeholders with the values given; others stay.
pub fn fill(template: &str, values: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.split_once('}') {
            Some((name, tail)) => {
                match values(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = tail;
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
