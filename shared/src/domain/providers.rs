//! The provider catalog and the operator's app registrations.
//!
//! A catalog entry holds what is true of a provider for every app (endpoints, scope
//! separator, PKCE, quirks); the operator adds the app's client id and secret and may
//! override endpoints. A name outside the catalog is a custom provider, which must bring its
//! own endpoints or an OpenID Connect `issuer` to discover them from.

pub use super::catalog::{catalog, catalog_entry, CatalogEntry};
pub use super::user_info::{normalize_user_info, UserInfo};

use super::ids::ProviderName;
use super::network::OutboundPolicy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use url::Url;

/// The operator's registration of an app, as sent to `PUT /v1/admin/providers/{name}` or
/// written under `providers:` in the local server's providers file.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderAppInput {
    /// 1 to 512 bytes; required except for an API-key or Basic provider's `api_base_url`.
    #[schema(max_length = 512)]
    #[serde(default)]
    pub client_id: String,
    /// Stored sealed; never returned.
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing)]
    pub client_secret: Option<secrecy::SecretString>,
    /// An `https` URL (`http` on loopback hosts when they are allowed), without credentials
    /// or fragment; at most 2048 bytes. Required with `token_url` for a custom provider
    /// without `issuer`.
    #[schema(max_length = 2048)]
    pub authorize_url: Option<String>,
    /// Like `authorize_url`.
    #[schema(max_length = 2048)]
    pub token_url: Option<String>,
    /// Like `authorize_url`.
    #[schema(max_length = 2048)]
    pub userinfo_url: Option<String>,
    /// Like `authorize_url`.
    #[schema(max_length = 2048)]
    pub revocation_url: Option<String>,
    /// `" "` or `","`.
    #[schema(pattern = "^[ ,]$")]
    pub scope_separator: Option<String>,
    pub pkce: Option<bool>,
    /// Extra authorization request parameters; not those the flow sets (`response_type`,
    /// `client_id`, `redirect_uri`, `scope`, `state`, `code_challenge`,
    /// `code_challenge_method`, `nonce`).
    pub authorize_params: Option<BTreeMap<String, String>>,
    /// For providers whose endpoints name one (`microsoft`): 1 to 64 characters of letters,
    /// digits, `.`, `-`.
    #[schema(pattern = "^[A-Za-z0-9.-]{1,64}$", min_length = 1, max_length = 64)]
    pub tenant: Option<String>,
    /// OpenID Connect issuer; its discovery document supplies the endpoints not given here.
    /// A URL like `authorize_url`.
    #[schema(max_length = 2048)]
    pub issuer: Option<String>,
    /// Values of the catalog entry's app parameters (Okta's `domain`, Keycloak's `host` and
    /// `realm`), each matching the pattern `GET /v1/catalog` shows.
    pub params: Option<BTreeMap<String, String>>,
    /// Where the proxy sends API calls (`/v1/bots/{bot}/tokens/{id}/proxy/...`), instead of
    /// the catalog's base URL; a URL like `authorize_url`, whose path prefixes every call.
    /// For an API-key or Basic provider of the catalog it is the only value a registration
    /// may hold (without `client_id`).
    #[schema(max_length = 2048)]
    pub api_base_url: Option<String>,
}

/// A registered app with every endpoint resolved. Holds no secret: the client secret is
/// sealed and stored beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProviderApp {
    #[schema(value_type = String)]
    pub name: ProviderName,
    pub client_id: String,
    pub authorize_url: String,
    pub token_url: String,
    pub userinfo_url: Option<String>,
    pub revocation_url: Option<String>,
    pub scope_separator: String,
    pub pkce: bool,
    pub authorize_params: BTreeMap<String, String>,
    pub required_scopes: Vec<String>,
    pub tenant: Option<String>,
    /// The app parameters the endpoints were filled with (defaults included).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The issuer as the provider's metadata states it: compared byte for byte with `iss`.
    pub issuer: Option<String>,
    /// RFC 9207: the metadata says callbacks carry `iss`, so one without it is refused.
    #[serde(default)]
    pub iss_parameter_supported: bool,
    /// Where the provider publishes the keys that sign its ID tokens.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// `false` for a provider of the built-in catalog.
    pub custom: bool,
    pub has_client_secret: bool,
    /// The registration's `api_base_url`, when it set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    pub assumed_lifetime_secs: Option<i64>,
    pub client_auth_in_body: bool,
    /// Why the app cannot be used yet (its issuer's discovery document could not be fetched);
    /// absent when it is ready. Discovery is tried again when the app is first needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ready: Option<String>,
    /// The registration to resolve once discovery succeeds (never with the client secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub pending_registration: Option<serde_json::Value>,
}

/// The endpoints an OpenID Connect discovery document names.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// RFC 9207: the authorization response carries `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderConfigError {
    #[error("client_id must be 1 to 512 characters")]
    ClientId,
    #[error("'{0}' is not a provider of the catalog: a custom provider needs authorize_url and token_url, or issuer")]
    MissingEndpoints(String),
    #[error("{field}: {reason}")]
    BadUrl { field: &'static str, reason: String },
    #[error("params.{0}: not a parameter of this provider's app")]
    UnknownParam(String),
    #[error("params.{name}: must match {pattern}")]
    BadParam { name: String, pattern: String },
    #[error("params.{0} is required for this provider")]
    MissingParam(String),
    #[error("'{0}' is not an OAuth provider: its credentials are entered, not registered; a registration may set only its api_base_url")]
    NotOauth(String),
    #[error("scope_separator must be \" \" or \",\"")]
    ScopeSeparator,
    #[error("authorize_params may not set '{0}': the service sets it")]
    ReservedParam(String),
    #[error("the discovery document's issuer '{found}' is not '{expected}'")]
    IssuerMismatch { expected: String, found: String },
}

/// Parameters of the authorization request that belong to the flow, never to configuration.
const RESERVED_PARAMS: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
];

/// A provider endpoint: a URL without credentials or fragment that `policy` lets the
/// service reach.
pub fn check_endpoint(
    field: &'static str,
    raw: &str,
    policy: OutboundPolicy,
) -> Result<Url, ProviderConfigError> {
    let bad = |reason: &str| ProviderConfigError::BadUrl {
        field,
        reason: reason.to_owned(),
    };
    if raw.len() > 2048 {
        return Err(bad("longer than 2048 characters"));
    }
    let url = Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    policy.check_url(&url).map_err(bad)?;
    Ok(url)
}

/// The endpoints of an app, after the registration, discovery and the catalog had their say.
struct Endpoints {
    authorize_url: String,
    token_url: String,
    userinfo_url: Option<String>,
    revocation_url: Option<String>,
    jwks_url: Option<String>,
    catalog_issuer: Option<String>,
}

impl ProviderAppInput {
    /// Combines the registration with the catalog entry and, for `issuer`, the discovery
    /// document the caller fetched. Checks every value; nothing is partially accepted.
    pub fn resolve(
        &self,
        name: &ProviderName,
        discovery: Option<&Discovery>,
        policy: OutboundPolicy,
    ) -> Result<ProviderApp, ProviderConfigError> {
        let entry = catalog_entry(name.as_str());
        use super::catalog::CredentialKind;
        if entry.is_some_and(|e| matches!(e.kind, CredentialKind::ApiKey | CredentialKind::Basic)) {
            return self.api_only(name, entry, policy);
        }
        if self.client_id.is_empty() || self.client_id.len() > 512 {
            return Err(ProviderConfigError::ClientId);
        }
        let api_base_url = self
            .api_base_url
            .as_deref()
            .map(|u| check_endpoint("api_base_url", u, policy).map(|_| u.to_owned()))
            .transpose()?;
        if let (Some(issuer), Some(d)) = (&self.issuer, discovery) {
            if d.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                return Err(ProviderConfigError::IssuerMismatch {
                    expected: issuer.clone(),
                    found: d.issuer.clone(),
                });
            }
        }
        let params = self.app_params(entry)?;
        let endpoints = self.endpoints(name, entry, discovery, &params, policy)?;
        let scope_separator = match self.scope_separator.as_deref() {
            Some(s @ (" " | ",")) => s.to_owned(),
            Some(_) => return Err(ProviderConfigError::ScopeSeparator),
            None => entry.map_or(" ", |e| e.scope_separator.as_str()).to_owned(),
        };
        // RFC 7636 §5: a server without PKCE ignores the parameters, so PKCE is on unless
        // someone says otherwise; discovery says so only by listing methods without S256.
        let discovered_pkce = discovery
            .map(|d| &d.code_challenge_methods_supported)
            .filter(|methods| !methods.is_empty())
            .map(|methods| methods.iter().any(|m| m == "S256"));
        let oidc = entry.is_none() && self.issuer.is_some();
        Ok(ProviderApp {
            name: name.clone(),
            client_id: self.client_id.clone(),
            authorize_url: endpoints.authorize_url,
            token_url: endpoints.token_url,
            userinfo_url: endpoints.userinfo_url,
            revocation_url: endpoints.revocation_url,
            scope_separator,
            pkce: self
                .pkce
                .or(entry.map(|e| e.pkce))
                .or(discovered_pkce)
                .unwrap_or(true),
            authorize_params: self.authorize_params(entry)?,
            required_scopes: entry.map(|e| e.required_scopes.clone()).unwrap_or_else(|| {
                if oidc {
                    vec!["openid".to_owned()]
                } else {
                    Vec::new()
                }
            }),
            tenant: params.get("tenant").cloned(),
            issuer: discovery
                .map(|d| d.issuer.clone())
                .or_else(|| self.issuer.clone())
                .or(endpoints.catalog_issuer),
            iss_parameter_supported: discovery
                .is_some_and(|d| d.authorization_response_iss_parameter_supported),
            jwks_url: endpoints.jwks_url,
            params,
            custom: entry.is_none(),
            has_client_secret: self.client_secret.is_some(),
            api_base_url,
            assumed_lifetime_secs: entry.and_then(|e| e.lifetimes.access_token),
            client_auth_in_body: entry
                .is_some_and(|e| e.client_auth == super::catalog::ClientAuth::Body),
            not_ready: None,
            pending_registration: None,
        })
    }

    /// The registration of an API-key or Basic provider: nothing to register but where its
    /// API is (`api_base_url`) and the entry's app parameters.
    fn api_only(
        &self,
        name: &ProviderName,
        entry: Option<&CatalogEntry>,
        policy: OutboundPolicy,
    ) -> Result<ProviderApp, ProviderConfigError> {
        let oauth_given = !self.client_id.is_empty()
            || self.client_secret.is_some()
            || self.authorize_url.is_some()
            || self.token_url.is_some()
            || self.userinfo_url.is_some()
            || self.revocation_url.is_some()
            || self.scope_separator.is_some()
            || self.pkce.is_some()
            || self.authorize_params.is_some()
            || self.tenant.is_some()
            || self.issuer.is_some();
        let Some(base) = self.api_base_url.as_deref().filter(|_| !oauth_given) else {
            return Err(ProviderConfigError::NotOauth(name.to_string()));
        };
        check_endpoint("api_base_url", base, policy)?;
        Ok(ProviderApp {
            name: name.clone(),
            client_id: String::new(),
            authorize_url: String::new(),
            token_url: String::new(),
            userinfo_url: None,
            revocation_url: None,
            scope_separator: " ".to_owned(),
            pkce: false,
            authorize_params: BTreeMap::new(),
            required_scopes: Vec::new(),
            tenant: None,
            params: self.app_params(entry)?,
            issuer: None,
            iss_parameter_supported: false,
            jwks_url: None,
            custom: false,
            has_client_secret: false,
            api_base_url: Some(base.to_owned()),
            assumed_lifetime_secs: None,
            client_auth_in_body: false,
            not_ready: None,
            pending_registration: None,
        })
    }

    /// The entry's app parameters: given (`tenant` is short for `params.tenant`) or
    /// defaulted, each checked against its pattern.
    fn app_params(
        &self,
        entry: Option<&CatalogEntry>,
    ) -> Result<BTreeMap<String, String>, ProviderConfigError> {
        use super::catalog::ParamScope;
        let mut given = self.params.clone().unwrap_or_default();
        if let Some(t) = &self.tenant {
            given.insert("tenant".to_owned(), t.clone());
        }
        let specs = entry.map_or(&[][..], |e| &e.params[..]);
        if let Some(unknown) = given.keys().find(|k| {
            !specs
                .iter()
                .any(|p| &p.name == *k && p.scope == ParamScope::App)
        }) {
            return Err(ProviderConfigError::UnknownParam(unknown.clone()));
        }
        let mut out = BTreeMap::new();
        for spec in specs.iter().filter(|p| p.scope == ParamScope::App) {
            let Some(value) = given.get(&spec.name).or(spec.default.as_ref()) else {
                return Err(ProviderConfigError::MissingParam(spec.name.clone()));
            };
            let valid = regex_lite::Regex::new(&spec.pattern).is_ok_and(|re| re.is_match(value));
            if !valid {
                return Err(ProviderConfigError::BadParam {
                    name: spec.name.clone(),
                    pattern: spec.pattern.clone(),
                });
            }
            out.insert(spec.name.clone(), value.clone());
        }
        Ok(out)
    }

    /// Each endpoint from the registration, else discovery, else the catalog; all checked.
    fn endpoints(
        &self,
        name: &ProviderName,
        entry: Option<&CatalogEntry>,
        discovery: Option<&Discovery>,
        params: &BTreeMap<String, String>,
        policy: OutboundPolicy,
    ) -> Result<Endpoints, ProviderConfigError> {
        let filled = |u: &str| super::catalog::fill(u, &|n| params.get(n).cloned());
        let pick = |given: &Option<String>, discovered: Option<&String>, catalog: Option<&str>| {
            given
                .clone()
                .or_else(|| discovered.cloned())
                .or_else(|| catalog.map(filled))
        };
        let authorize_url = pick(
            &self.authorize_url,
            discovery.map(|d| &d.authorization_endpoint),
            entry.and_then(|e| e.authorize_url.as_deref()),
        );
        let token_url = pick(
            &self.token_url,
            discovery.map(|d| &d.token_endpoint),
            entry.and_then(|e| e.token_url.as_deref()),
        );
        // A client-credentials app has no authorization endpoint: nobody signs in.
        let app_only =
            entry.is_some_and(|e| e.kind == super::catalog::CredentialKind::ClientCredentials);
        let authorize_url = if app_only {
            Some(authorize_url.unwrap_or_default())
        } else {
            authorize_url
        };
        let (Some(authorize_url), Some(token_url)) = (authorize_url, token_url) else {
            return Err(ProviderConfigError::MissingEndpoints(name.to_string()));
        };
        // The catalog's issuer describes the provider's own servers: not an app whose token
        // endpoint the registration points elsewhere.
        let openid = entry
            .and_then(|e| e.openid.as_ref())
            .filter(|_| self.token_url.is_none());
        let endpoints = Endpoints {
            authorize_url,
            token_url,
            userinfo_url: pick(
                &self.userinfo_url,
                discovery.and_then(|d| d.userinfo_endpoint.as_ref()),
                entry.and_then(|e| e.userinfo.as_ref().map(|u| u.url.as_str())),
            ),
            revocation_url: pick(
                &self.revocation_url,
                discovery.and_then(|d| d.revocation_endpoint.as_ref()),
                entry.and_then(|e| e.revocation.as_ref().map(|r| r.url())),
            ),
            jwks_url: pick(
                &None,
                discovery.and_then(|d| d.jwks_uri.as_ref()),
                openid.map(|o| o.jwks_url.as_str()),
            ),
            catalog_issuer: openid.map(|o| filled(&o.issuer)),
        };
        // Per-connection values stay as placeholders until a connection gives them: the URL
        // is checked with a sample in their place.
        let sample = |u: &str| super::catalog::fill(u, &|_| Some("x".to_owned()));
        if !app_only {
            check_endpoint("authorize_url", &sample(&endpoints.authorize_url), policy)?;
        }
        check_endpoint("token_url", &sample(&endpoints.token_url), policy)?;
        for (field, url) in [
            ("userinfo_url", &endpoints.userinfo_url),
            ("revocation_url", &endpoints.revocation_url),
            ("jwks_uri", &endpoints.jwks_url),
            ("issuer", &self.issuer),
        ] {
            if let Some(u) = url {
                check_endpoint(field, &sample(u), policy)?;
            }
        }
        Ok(endpoints)
    }

    /// The catalog's authorization parameters, then the registration's.
    fn authorize_params(
        &self,
        entry: Option<&CatalogEntry>,
    ) -> Result<BTreeMap<String, String>, ProviderConfigError> {
        let mut params: BTreeMap<String, String> = entry
            .map(|e| e.authorize_params.clone())
            .unwrap_or_default();
        for (k, v) in self.authorize_params.iter().flatten() {
            if RESERVED_PARAMS.contains(&k.as_str()) {
                return Err(ProviderConfigError::ReservedParam(k.clone()));
            }
            params.insert(k.clone(), v.clone());
        }
        Ok(params)
    }
}

/// Where a token's sealed `other` keeps its per-connection values.
pub const CONNECTION_KEY: &str = "connection";

impl ProviderApp {
    /// Its catalog entry; `None` for a custom provider.
    pub fn entry(&self) -> Option<&'static CatalogEntry> {
        if self.custom {
            None
        } else {
            catalog_entry(self.name.as_str())
        }
    }

    /// The app for one connection: its per-connection values (`{subdomain}`, `{shop}`)
    /// filled into every endpoint.
    pub fn with_connection(mut self, params: &BTreeMap<String, String>) -> Self {
        if params.is_empty() {
            return self;
        }
        let fill = |u: &str| super::catalog::fill(u, &|n| params.get(n).cloned());
        self.params
            .extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.authorize_url = fill(&self.authorize_url);
        self.token_url = fill(&self.token_url);
        for url in [
            &mut self.userinfo_url,
            &mut self.revocation_url,
            &mut self.issuer,
            &mut self.jwks_url,
        ]
        .into_iter()
        .flatten()
        {
            *url = fill(url);
        }
        self
    }

    /// The per-connection values a token keeps in its sealed secrets.
    pub fn connection_of(
        other: &serde_json::Map<String, serde_json::Value>,
    ) -> BTreeMap<String, String> {
        other
            .get(CONNECTION_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// An app registered by `issuer` whose discovery document could not be fetched yet.
    pub fn pending(name: &ProviderName, input: &ProviderAppInput, reason: &str) -> Self {
        let entry = catalog_entry(name.as_str());
        Self {
            name: name.clone(),
            client_id: input.client_id.clone(),
            authorize_url: input.authorize_url.clone().unwrap_or_default(),
            token_url: input.token_url.clone().unwrap_or_default(),
            userinfo_url: input.userinfo_url.clone(),
            revocation_url: input.revocation_url.clone(),
            scope_separator: input.scope_separator.clone().unwrap_or_else(|| " ".into()),
            pkce: input.pkce.unwrap_or(true),
            authorize_params: input.authorize_params.clone().unwrap_or_default(),
            required_scopes: Vec::new(),
            tenant: input.tenant.clone(),
            params: BTreeMap::new(),
            issuer: input.issuer.clone(),
            iss_parameter_supported: false,
            jwks_url: None,
            custom: entry.is_none(),
            has_client_secret: input.client_secret.is_some(),
            api_base_url: input.api_base_url.clone(),
            assumed_lifetime_secs: None,
            client_auth_in_body: false,
            not_ready: Some(reason.to_owned()),
            pending_registration: serde_json::to_value(input).ok(),
        }
    }

    /// The scope parameter for a flow: the provider's required scopes, then the file's.
    pub fn scope_param(&self, requested: &[String]) -> Vec<String> {
        let mut scopes: Vec<String> = self.required_scopes.clone();
        for s in requested {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback providers allowed, as the walkthrough and the tests run.
    const DEV: OutboundPolicy = OutboundPolicy {
        allow_loopback: true,
    };
    use serde_json::json;

    fn input(client_id: &str) -> ProviderAppInput {
        ProviderAppInput {
            client_id: client_id.to_owned(),
            client_secret: Some("s3cret".to_owned().into()),
            authorize_url: None,
            token_url: None,
            userinfo_url: None,
            revocation_url: None,
            scope_separator: None,
            pkce: None,
            authorize_params: None,
            tenant: None,
            issuer: None,
            params: None,
            api_base_url: None,
        }
    }

    fn name(n: &str) -> ProviderName {
        ProviderName::parse(n).unwrap()
    }

    #[test]
    fn google_asks_for_offline_access_with_consent() {
        let app = input("id").resolve(&name("google"), None, DEV).unwrap();
        assert_eq!(
            app.authorize_params.get("access_type").map(String::as_str),
            Some("offline")
        );
        assert_eq!(
            app.authorize_params.get("prompt").map(String::as_str),
            Some("consent")
        );
        assert!(app.pkce);
        assert!(!app.custom);
    }

    #[test]
    fn microsoft_needs_offline_access_and_a_tenant() {
        let app = input("id").resolve(&name("microsoft"), None, DEV).unwrap();
        assert!(app.authorize_url.contains("/common/oauth2/v2.0/authorize"));
        assert!(app
            .scope_param(&["Calendars.Read".into()])
            .contains(&"offline_access".to_owned()));
        let mut i = input("id");
        i.tenant = Some("contoso.onmicrosoft.com".into());
        let app = i.resolve(&name("microsoft"), None, DEV).unwrap();
        assert_eq!(
            app.token_url,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let mut bad = input("id");
        bad.tenant = Some("../evil".into());
        assert!(matches!(
            bad.resolve(&name("microsoft"), None, DEV),
            Err(ProviderConfigError::BadParam { name, .. }) if name == "tenant"
        ));
        let mut not_applicable = input("id");
        not_applicable.tenant = Some("x".into());
        assert_eq!(
            not_applicable.resolve(&name("google"), None, DEV),
            Err(ProviderConfigError::UnknownParam("tenant".into()))
        );
    }

    #[test]
    fn app_params_fill_the_endpoints_and_are_required() {
        assert_eq!(
            input("id").resolve(&name("keycloak"), None, DEV),
            Err(ProviderConfigError::MissingParam("host".into()))
        );
        let mut i = input("id");
        i.params = Some(
            [("host", "sso.example.com"), ("realm", "bots")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        );
        let app = i.resolve(&name("keycloak"), None, DEV).unwrap();
        assert_eq!(
            app.token_url,
            "https://sso.example.com/realms/bots/protocol/openid-connect/token"
        );
        assert_eq!(
            app.issuer.as_deref(),
            Some("https://sso.example.com/realms/bots")
        );
        let mut evil = input("id");
        evil.params = Some(
            [("host", "evil.example/x?"), ("realm", "bots")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        );
        assert!(matches!(
            evil.resolve(&name("keycloak"), None, DEV),
            Err(ProviderConfigError::BadParam { name, .. }) if name == "host"
        ));
        assert_eq!(
            input("id").resolve(&name("stripe"), None, DEV),
            Err(ProviderConfigError::NotOauth("stripe".into()))
        );
        // A key provider's registration holds its API base URL only.
        let base_only = ProviderAppInput {
            client_secret: None,
            api_base_url: Some("http://127.0.0.1:9/api".into()),
            ..input("")
        };
        let app = base_only.resolve(&name("stripe"), None, DEV).unwrap();
        assert_eq!(app.api_base_url.as_deref(), Some("http://127.0.0.1:9/api"));
        assert_eq!(app.client_id, "");
        let with_id = ProviderAppInput {
            client_id: "id".into(),
            client_secret: None,
            api_base_url: Some("http://127.0.0.1:9/api".into()),
            ..input("")
        };
        assert_eq!(
            with_id.resolve(&name("stripe"), None, DEV),
            Err(ProviderConfigError::NotOauth("stripe".into()))
        );
        let bad = ProviderAppInput {
            api_base_url: Some("ftp://example.com".into()),
            ..base_only
        };
        assert!(matches!(
            bad.resolve(&name("stripe"), None, DEV),
            Err(ProviderConfigError::BadUrl {
                field: "api_base_url",
                ..
            })
        ));
    }

    #[test]
    fn facebook_and_slack_separate_scopes_with_commas() {
        let fb = input("id").resolve(&name("facebook"), None, DEV).unwrap();
        assert_eq!(fb.scope_separator, ",");
        assert!(!fb.pkce);
        assert_eq!(
            input("id")
                .resolve(&name("slack"), None, DEV)
                .unwrap()
                .scope_separator,
            ","
        );
    }

    #[test]
    fn custom_providers_need_endpoints() {
        assert_eq!(
            input("id").resolve(&name("acme_idp"), None, DEV),
            Err(ProviderConfigError::MissingEndpoints("acme_idp".into()))
        );
        let mut i = input("id");
        i.authorize_url = Some("https://idp.example/authorize".into());
        i.token_url = Some("http://idp.example/token".into());
        assert!(matches!(
            i.resolve(&name("acme_idp"), None, DEV),
            Err(ProviderConfigError::BadUrl {
                field: "token_url",
                ..
            })
        ));
        i.token_url = Some("http://127.0.0.1:9000/token".into());
        assert!(matches!(
            i.resolve(&name("acme_idp"), None, OutboundPolicy::default()),
            Err(ProviderConfigError::BadUrl {
                field: "token_url",
                ..
            })
        ));
        let app = i.resolve(&name("acme_idp"), None, DEV).unwrap();
        assert!(app.custom);
        assert!(app.pkce, "PKCE unless the operator turns it off");
        i.pkce = Some(false);
        assert!(!i.resolve(&name("acme_idp"), None, DEV).unwrap().pkce);
    }

    #[test]
    fn discovery_fills_endpoints_and_checks_the_issuer() {
        let d = Discovery {
            issuer: "https://idp.example".into(),
            authorization_endpoint: "https://idp.example/auth".into(),
            token_endpoint: "https://idp.example/token".into(),
            userinfo_endpoint: Some("https://idp.example/userinfo".into()),
            revocation_endpoint: Some("https://idp.example/revoke".into()),
            code_challenge_methods_supported: vec!["plain".into(), "S256".into()],
            jwks_uri: Some("https://idp.example/jwks".into()),
            authorization_response_iss_parameter_supported: true,
        };
        let mut i = input("id");
        i.issuer = Some("https://idp.example/".into());
        let app = i.resolve(&name("acme_idp"), Some(&d), DEV).unwrap();
        assert_eq!(app.token_url, "https://idp.example/token");
        // The metadata's own issuer is kept, to compare `iss` byte for byte.
        assert_eq!(app.issuer.as_deref(), Some("https://idp.example"));
        assert!(app.iss_parameter_supported);
        assert_eq!(app.jwks_url.as_deref(), Some("https://idp.example/jwks"));
        assert!(app.pkce);
        assert_eq!(app.required_scopes, vec!["openid"]);
        // Metadata that lists no methods says nothing: PKCE stays on.
        let silent = Discovery {
            code_challenge_methods_supported: Vec::new(),
            ..d.clone()
        };
        assert!(
            i.resolve(&name("acme_idp"), Some(&silent), DEV)
                .unwrap()
                .pkce
        );
        // Only a list without S256 turns it off; the operator's word comes first.
        let plain_only = Discovery {
            code_challenge_methods_supported: vec!["plain".into()],
            ..d.clone()
        };
        assert!(
            !i.resolve(&name("acme_idp"), Some(&plain_only), DEV)
                .unwrap()
                .pkce
        );
        i.pkce = Some(true);
        assert!(
            i.resolve(&name("acme_idp"), Some(&plain_only), DEV)
                .unwrap()
                .pkce
        );
        i.pkce = None;
        i.issuer = Some("https://other.example".into());
        assert!(matches!(
            i.resolve(&name("acme_idp"), Some(&d), DEV),
            Err(ProviderConfigError::IssuerMismatch { .. })
        ));
    }

    #[test]
    fn flow_parameters_cannot_be_overridden() {
        let mut i = input("id");
        i.authorize_params = Some([("redirect_uri".to_owned(), "https://evil".to_owned())].into());
        assert_eq!(
            i.resolve(&name("google"), None, DEV),
            Err(ProviderConfigError::ReservedParam("redirect_uri".into()))
        );
    }

    #[test]
    fn user_info_is_normalised_per_provider() {
        let spec = |p: &str| catalog_entry(p).and_then(|e| e.userinfo.as_ref());
        let (uid, info) = normalize_user_info(
            spec("github"),
            &json!({"id": 42, "login": "octo", "name": "Mona Lisa", "avatar_url": "https://a/x.png", "html_url": "https://github.com/octo"}),
        );
        assert_eq!(uid.as_deref(), Some("42"));
        assert_eq!(info.nickname.as_deref(), Some("octo"));
        assert_eq!(info.name.as_deref(), Some("Mona Lisa"));
        assert_eq!(info.image.as_deref(), Some("https://a/x.png"));
        let (uid, info) = normalize_user_info(
            None,
            &json!({"sub": "1", "given_name": "Ada", "family_name": "L", "email": "ada@x", "picture": "p"}),
        );
        assert_eq!(uid.as_deref(), Some("1"));
        assert_eq!(
            (info.first_name.as_deref(), info.image.as_deref()),
            (Some("Ada"), Some("p"))
        );
        assert_eq!(info.phone, None);
        let (_, fb) = normalize_user_info(
            spec("facebook"),
            &json!({"id": "7", "first_name": "F", "picture": {"data": {"url": "https://fb/p"}}}),
        );
        assert_eq!(fb.image.as_deref(), Some("https://fb/p"));
    }
}
