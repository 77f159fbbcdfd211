//! The built-in providers: what is true of a provider for every app (endpoints, scope
//! separator, PKCE, quirks).

use serde::{Deserialize, Serialize};

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
