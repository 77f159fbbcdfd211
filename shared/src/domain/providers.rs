//! The provider catalog and the operator's app registrations.
//!
//! A catalog entry holds what is true of a provider for every app (endpoints, scope
//! separator, PKCE, quirks); the operator adds the app's client id and secret and may
//! override endpoints. A name outside the catalog is a custom provider, which must bring its
//! own endpoints or an OpenID Connect `issuer` to discover them from.

use super::ids::ProviderName;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use url::Url;

/// How a provider's user-info answer maps onto the token's `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserInfoStyle {
    OpenidConnect,
    Github,
    Facebook,
    Slack,
    Generic,
}

pub struct CatalogEntry {
    pub name: &'static str,
    pub authorize_url: &'static str,
    pub token_url: &'static str,
    pub userinfo_url: Option<&'static str>,
    pub revocation_url: Option<&'static str>,
    pub scope_separator: &'static str,
    pub pkce: bool,
    /// Sent with every authorization request, e.g. Google's `access_type=offline`.
    pub authorize_params: &'static [(&'static str, &'static str)],
    /// Always requested, whatever the integrations file says, e.g. Microsoft's `offline_access`.
    pub required_scopes: &'static [&'static str],
    /// `Some(default)` when the endpoints contain `{tenant}`.
    pub default_tenant: Option<&'static str>,
    pub userinfo_style: UserInfoStyle,
    /// Lifetime to assume when a token answer has no `expires_in` but the provider is known
    /// to expire its tokens; `None`: such a token does not expire (GitHub OAuth apps).
    pub assumed_lifetime_secs: Option<i64>,
    /// The client authenticates with `client_id`/`client_secret` form fields instead of
    /// HTTP Basic.
    pub client_auth_in_body: bool,
}

/// The built-in providers. Endpoints are the providers' documented production ones.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "google",
        authorize_url: "https://accounts.google.com/o/oauth2/v2/auth",
        token_url: "https://oauth2.googleapis.com/token",
        userinfo_url: Some("https://openidconnect.googleapis.com/v1/userinfo"),
        revocation_url: Some("https://oauth2.googleapis.com/revoke"),
        scope_separator: " ",
        pkce: true,
        // Google returns a refresh token only for offline access, and only on a consent
        // screen: without `prompt=consent` a second connection gets no refresh token.
        authorize_params: &[("access_type", "offline"), ("prompt", "consent")],
        required_scopes: &["openid"],
        default_tenant: None,
        userinfo_style: UserInfoStyle::OpenidConnect,
        assumed_lifetime_secs: Some(3600),
        client_auth_in_body: false,
    },
    CatalogEntry {
        name: "github",
        authorize_url: "https://github.com/login/oauth/authorize",
        token_url: "https://github.com/login/oauth/access_token",
        userinfo_url: Some("https://api.github.com/user"),
        // GitHub revokes through `DELETE /applications/{client_id}/grant`, not RFC 7009.
        revocation_url: None,
        scope_separator: " ",
        pkce: true,
        authorize_params: &[],
        required_scopes: &[],
        default_tenant: None,
        userinfo_style: UserInfoStyle::Github,
        assumed_lifetime_secs: None,
        client_auth_in_body: true,
    },
    CatalogEntry {
        name: "microsoft",
        authorize_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        token_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        userinfo_url: Some("https://graph.microsoft.com/oidc/userinfo"),
        revocation_url: None,
        scope_separator: " ",
        pkce: true,
        authorize_params: &[],
        // Without `offline_access` Microsoft issues no refresh token.
        required_scopes: &["openid", "profile", "email", "offline_access"],
        default_tenant: Some("common"),
        userinfo_style: UserInfoStyle::OpenidConnect,
        assumed_lifetime_secs: Some(3600),
        client_auth_in_body: false,
    },
    CatalogEntry {
        name: "facebook",
        authorize_url: "https://www.facebook.com/v19.0/dialog/oauth",
        token_url: "https://graph.facebook.com/v19.0/oauth/access_token",
        userinfo_url: Some(
            "https://graph.facebook.com/v19.0/me?fields=id,name,first_name,last_name,email,picture,link",
        ),
        revocation_url: None,
        scope_separator: ",",
        pkce: false,
        authorize_params: &[],
        required_scopes: &[],
        default_tenant: None,
        userinfo_style: UserInfoStyle::Facebook,
        assumed_lifetime_secs: Some(60 * 24 * 3600),
        client_auth_in_body: true,
    },
    CatalogEntry {
        name: "slack",
        authorize_url: "https://slack.com/oauth/v2/authorize",
        token_url: "https://slack.com/api/oauth.v2.access",
        userinfo_url: Some("https://slack.com/api/auth.test"),
        revocation_url: Some("https://slack.com/api/auth.revoke"),
        scope_separator: ",",
        pkce: false,
        authorize_params: &[],
        required_scopes: &[],
        default_tenant: None,
        userinfo_style: UserInfoStyle::Slack,
        assumed_lifetime_secs: None,
        client_auth_in_body: false,
    },
];

pub fn catalog_entry(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == name)
}

/// The operator's registration of an app, as sent to `PUT /v1/admin/providers/{name}` or
/// written under `providers:` in the local server's providers file.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderAppInput {
    pub client_id: String,
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<secrecy::SecretString>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub revocation_url: Option<String>,
    pub scope_separator: Option<String>,
    pub pkce: Option<bool>,
    pub authorize_params: Option<BTreeMap<String, String>>,
    pub tenant: Option<String>,
    /// OpenID Connect issuer; its discovery document supplies the endpoints not given here.
    pub issuer: Option<String>,
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
    pub issuer: Option<String>,
    /// `false` for a provider of the built-in catalog.
    pub custom: bool,
    pub has_client_secret: bool,
    #[schema(value_type = String)]
    pub userinfo_style: UserInfoStyle,
    pub assumed_lifetime_secs: Option<i64>,
    pub client_auth_in_body: bool,
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
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderConfigError {
    #[error("client_id must be 1 to 512 characters")]
    ClientId,
    #[error("'{0}' is not a provider of the catalog: a custom provider needs authorize_url and token_url, or issuer")]
    MissingEndpoints(String),
    #[error("{field}: {reason}")]
    BadUrl { field: &'static str, reason: String },
    #[error("tenant must be 1 to 64 characters of letters, digits, '.', '-'")]
    Tenant,
    #[error("tenant only applies to providers whose endpoints name one")]
    TenantNotApplicable,
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

/// Provider endpoints must use TLS, except on the loopback interface (local development).
pub fn check_endpoint(field: &'static str, raw: &str) -> Result<Url, ProviderConfigError> {
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
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(bad(
            "must use https (http is allowed for loopback hosts only)",
        )),
        _ => Err(bad("must be an https URL")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl ProviderAppInput {
    /// Combines the registration with the catalog entry and, for `issuer`, the discovery
    /// document the caller fetched. Checks every value; nothing is partially accepted.
    pub fn resolve(
        &self,
        name: &ProviderName,
        discovery: Option<&Discovery>,
    ) -> Result<ProviderApp, ProviderConfigError> {
        if self.client_id.is_empty() || self.client_id.len() > 512 {
            return Err(ProviderConfigError::ClientId);
        }
        let entry = catalog_entry(name.as_str());
        if let (Some(issuer), Some(d)) = (&self.issuer, discovery) {
            if d.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                return Err(ProviderConfigError::IssuerMismatch {
                    expected: issuer.clone(),
                    found: d.issuer.clone(),
                });
            }
        }
        let tenant = match (&self.tenant, entry.and_then(|e| e.default_tenant)) {
            (Some(t), Some(_)) => {
                let ok = !t.is_empty()
                    && t.len() <= 64
                    && t.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-');
                if !ok {
                    return Err(ProviderConfigError::Tenant);
                }
                Some(t.clone())
            }
            (Some(_), None) => return Err(ProviderConfigError::TenantNotApplicable),
            (None, default) => default.map(str::to_owned),
        };
        let with_tenant = |u: &str| match &tenant {
            Some(t) => u.replace("{tenant}", t),
            None => u.to_owned(),
        };
        let pick = |given: &Option<String>, discovered: Option<&String>, catalog: Option<&str>| {
            given
                .clone()
                .or_else(|| discovered.cloned())
                .or_else(|| catalog.map(with_tenant))
        };
        let authorize_url = pick(
            &self.authorize_url,
            discovery.map(|d| &d.authorization_endpoint),
            entry.map(|e| e.authorize_url),
        );
        let token_url = pick(
            &self.token_url,
            discovery.map(|d| &d.token_endpoint),
            entry.map(|e| e.token_url),
        );
        let (Some(authorize_url), Some(token_url)) = (authorize_url, token_url) else {
            return Err(ProviderConfigError::MissingEndpoints(name.to_string()));
        };
        let userinfo_url = pick(
            &self.userinfo_url,
            discovery.and_then(|d| d.userinfo_endpoint.as_ref()),
            entry.and_then(|e| e.userinfo_url),
        );
        let revocation_url = pick(
            &self.revocation_url,
            discovery.and_then(|d| d.revocation_endpoint.as_ref()),
            entry.and_then(|e| e.revocation_url),
        );
        check_endpoint("authorize_url", &authorize_url)?;
        check_endpoint("token_url", &token_url)?;
        if let Some(u) = &userinfo_url {
            check_endpoint("userinfo_url", u)?;
        }
        if let Some(u) = &revocation_url {
            check_endpoint("revocation_url", u)?;
        }
        if let Some(issuer) = &self.issuer {
            check_endpoint("issuer", issuer)?;
        }
        let scope_separator = match self.scope_separator.as_deref() {
            Some(s @ (" " | ",")) => s.to_owned(),
            Some(_) => return Err(ProviderConfigError::ScopeSeparator),
            None => entry.map_or(" ", |e| e.scope_separator).to_owned(),
        };
        let mut authorize_params: BTreeMap<String, String> = entry
            .map(|e| {
                e.authorize_params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        for (k, v) in self.authorize_params.iter().flatten() {
            if RESERVED_PARAMS.contains(&k.as_str()) {
                return Err(ProviderConfigError::ReservedParam(k.clone()));
            }
            authorize_params.insert(k.clone(), v.clone());
        }
        let discovered_pkce = discovery.map(|d| {
            d.code_challenge_methods_supported
                .iter()
                .any(|m| m == "S256")
        });
        let pkce = self
            .pkce
            .or(discovered_pkce)
            .unwrap_or_else(|| entry.is_some_and(|e| e.pkce));
        let userinfo_style = match entry {
            Some(e) => e.userinfo_style,
            None if self.issuer.is_some() => UserInfoStyle::OpenidConnect,
            None => UserInfoStyle::Generic,
        };
        let mut required_scopes: Vec<String> = entry
            .map(|e| e.required_scopes.iter().map(|s| (*s).to_owned()).collect())
            .unwrap_or_default();
        if entry.is_none() && self.issuer.is_some() {
            required_scopes.push("openid".to_owned());
        }
        Ok(ProviderApp {
            name: name.clone(),
            client_id: self.client_id.clone(),
            authorize_url,
            token_url,
            userinfo_url,
            revocation_url,
            scope_separator,
            pkce,
            authorize_params,
            required_scopes,
            tenant,
            issuer: self.issuer.clone(),
            custom: entry.is_none(),
            has_client_secret: self.client_secret.is_some(),
            userinfo_style,
            assumed_lifetime_secs: entry.and_then(|e| e.assumed_lifetime_secs),
            client_auth_in_body: entry.is_some_and(|e| e.client_auth_in_body),
        })
    }
}

impl ProviderApp {
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

/// The token's `info`, the seed's `Ueberauth.Auth.Info`. Absent fields are `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub nickname: Option<String>,
    pub email: Option<String>,
    pub location: Option<String>,
    pub description: Option<String>,
    pub image: Option<String>,
    pub phone: Option<String>,
    pub birthday: Option<String>,
    #[serde(default)]
    pub urls: BTreeMap<String, String>,
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    match cur {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Maps a user-info answer (or ID token claims) to the provider's user id and `info`.
pub fn normalize_user_info(style: UserInfoStyle, raw: &Value) -> (Option<String>, UserInfo) {
    let t = |path: &[&str]| text(raw, path);
    let mut info = UserInfo::default();
    let uid;
    match style {
        UserInfoStyle::OpenidConnect | UserInfoStyle::Generic => {
            uid = t(&["sub"]).or_else(|| t(&["id"]));
            info.name = t(&["name"]);
            info.first_name = t(&["given_name"]).or_else(|| t(&["first_name"]));
            info.last_name = t(&["family_name"]).or_else(|| t(&["last_name"]));
            info.nickname = t(&["preferred_username"]).or_else(|| t(&["nickname"]));
            info.email = t(&["email"]);
            info.image = t(&["picture"]).or_else(|| t(&["avatar_url"]));
            info.phone = t(&["phone_number"]);
            info.birthday = t(&["birthdate"]);
            info.location = t(&["address", "formatted"]);
            if let Some(p) = t(&["profile"]) {
                info.urls.insert("profile".to_owned(), p);
            }
            if let Some(w) = t(&["website"]) {
                info.urls.insert("website".to_owned(), w);
            }
        }
        UserInfoStyle::Github => {
            uid = t(&["id"]);
            info.name = t(&["name"]);
            info.nickname = t(&["login"]);
            info.email = t(&["email"]);
            info.location = t(&["location"]);
            info.description = t(&["bio"]);
            info.image = t(&["avatar_url"]);
            if let Some(u) = t(&["html_url"]) {
                info.urls.insert("GitHub".to_owned(), u);
            }
            if let Some(u) = t(&["blog"]) {
                info.urls.insert("Blog".to_owned(), u);
            }
            if let Some(name) = &info.name {
                let mut parts = name.splitn(2, ' ');
                info.first_name = parts.next().map(str::to_owned);
                info.last_name = parts.next().map(str::to_owned);
            }
        }
        UserInfoStyle::Facebook => {
            uid = t(&["id"]);
            info.name = t(&["name"]);
            info.first_name = t(&["first_name"]);
            info.last_name = t(&["last_name"]);
            info.email = t(&["email"]);
            info.image = t(&["picture", "data", "url"]);
            if let Some(u) = t(&["link"]) {
                info.urls.insert("Facebook".to_owned(), u);
            }
        }
        UserInfoStyle::Slack => {
            uid = t(&["user_id"]);
            info.nickname = t(&["user"]);
            if let Some(u) = t(&["url"]) {
                info.urls.insert("Slack".to_owned(), u);
            }
        }
    }
    (uid, info)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        }
    }

    fn name(n: &str) -> ProviderName {
        ProviderName::parse(n).unwrap()
    }

    #[test]
    fn google_asks_for_offline_access_with_consent() {
        let app = input("id").resolve(&name("google"), None).unwrap();
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
        let app = input("id").resolve(&name("microsoft"), None).unwrap();
        assert!(app.authorize_url.contains("/common/oauth2/v2.0/authorize"));
        assert!(app
            .scope_param(&["Calendars.Read".into()])
            .contains(&"offline_access".to_owned()));
        let mut i = input("id");
        i.tenant = Some("contoso.onmicrosoft.com".into());
        let app = i.resolve(&name("microsoft"), None).unwrap();
        assert_eq!(
            app.token_url,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let mut bad = input("id");
        bad.tenant = Some("../evil".into());
        assert_eq!(
            bad.resolve(&name("microsoft"), None),
            Err(ProviderConfigError::Tenant)
        );
        let mut not_applicable = input("id");
        not_applicable.tenant = Some("x".into());
        assert_eq!(
            not_applicable.resolve(&name("google"), None),
            Err(ProviderConfigError::TenantNotApplicable)
        );
    }

    #[test]
    fn facebook_and_slack_separate_scopes_with_commas() {
        let fb = input("id").resolve(&name("facebook"), None).unwrap();
        assert_eq!(fb.scope_separator, ",");
        assert!(!fb.pkce);
        assert_eq!(
            input("id")
                .resolve(&name("slack"), None)
                .unwrap()
                .scope_separator,
            ","
        );
    }

    #[test]
    fn custom_providers_need_endpoints() {
        assert_eq!(
            input("id").resolve(&name("acme_idp"), None),
            Err(ProviderConfigError::MissingEndpoints("acme_idp".into()))
        );
        let mut i = input("id");
        i.authorize_url = Some("https://idp.example/authorize".into());
        i.token_url = Some("http://idp.example/token".into());
        assert!(matches!(
            i.resolve(&name("acme_idp"), None),
            Err(ProviderConfigError::BadUrl {
                field: "token_url",
                ..
            })
        ));
        i.token_url = Some("http://127.0.0.1:9000/token".into());
        let app = i.resolve(&name("acme_idp"), None).unwrap();
        assert!(app.custom);
        assert!(!app.pkce);
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
        };
        let mut i = input("id");
        i.issuer = Some("https://idp.example/".into());
        let app = i.resolve(&name("acme_idp"), Some(&d)).unwrap();
        assert_eq!(app.token_url, "https://idp.example/token");
        assert!(app.pkce);
        assert_eq!(app.required_scopes, vec!["openid"]);
        i.issuer = Some("https://other.example".into());
        assert!(matches!(
            i.resolve(&name("acme_idp"), Some(&d)),
            Err(ProviderConfigError::IssuerMismatch { .. })
        ));
    }

    #[test]
    fn flow_parameters_cannot_be_overridden() {
        let mut i = input("id");
        i.authorize_params = Some([("redirect_uri".to_owned(), "https://evil".to_owned())].into());
        assert_eq!(
            i.resolve(&name("google"), None),
            Err(ProviderConfigError::ReservedParam("redirect_uri".into()))
        );
    }

    #[test]
    fn user_info_is_normalised_per_provider() {
        let (uid, info) = normalize_user_info(
            UserInfoStyle::Github,
            &json!({"id": 42, "login": "octo", "name": "Mona Lisa", "avatar_url": "https://a/x.png", "html_url": "https://github.com/octo"}),
        );
        assert_eq!(uid.as_deref(), Some("42"));
        assert_eq!(info.nickname.as_deref(), Some("octo"));
        assert_eq!(info.first_name.as_deref(), Some("Mona"));
        assert_eq!(info.last_name.as_deref(), Some("Lisa"));
        assert_eq!(info.image.as_deref(), Some("https://a/x.png"));
        let (uid, info) = normalize_user_info(
            UserInfoStyle::OpenidConnect,
            &json!({"sub": "1", "given_name": "Ada", "family_name": "L", "email": "ada@x", "picture": "p"}),
        );
        assert_eq!(uid.as_deref(), Some("1"));
        assert_eq!(
            (info.first_name.as_deref(), info.image.as_deref()),
            (Some("Ada"), Some("p"))
        );
        assert_eq!(info.phone, None);
        let (_, fb) = normalize_user_info(
            UserInfoStyle::Facebook,
            &json!({"id": "7", "first_name": "F", "picture": {"data": {"url": "https://fb/p"}}}),
        );
        assert_eq!(fb.image.as_deref(), Some("https://fb/p"));
    }
}
