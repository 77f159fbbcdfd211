//! The provider client port on real HTTP: authorization URLs, code exchange, refresh, revocation, user info
//! and OpenID Connect discovery, all on the `oauth2` crate over one shared HTTP client that
//! follows no redirects, has timeouts, and reads bounded bodies.

use super::provider_calls;
use crate::domain::catalog::TokenShape;
use crate::domain::network::OutboundPolicy;
use crate::domain::providers::{Discovery, ProviderApp};
use crate::ports::{Authorization, GrantedToken, ProviderClient, ProviderError, RegisteredApp};
use async_trait::async_trait;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, ExtraTokenFields,
    HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// Largest provider answer read, in bytes.
const MAX_PROVIDER_BODY: usize = 256 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Fields of a token answer beyond the standard ones (`id_token`, Slack's `team`, ...).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OtherFields(pub Map<String, Value>);
impl ExtraTokenFields for OtherFields {}

type ProviderTokenResponse = StandardTokenResponse<OtherFields, BasicTokenType>;
type BareClient = oauth2::Client<
    BasicErrorResponse,
    ProviderTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

/// The HTTP client errors the `oauth2` crate sees.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    #[error("provider answered {status}")]
    Unavailable {
        status: u16,
        retry_after: Option<u64>,
    },
    #[error("answer larger than {MAX_PROVIDER_BODY} bytes")]
    TooLarge,
    #[error("the address is not one the service may reach")]
    Refused,
}

#[derive(Clone)]
pub struct ProviderHttp {
    /// Built on first use: a function that never calls a provider never loads its roots.
    client: std::sync::OnceLock<reqwest::Client>,
    policy: OutboundPolicy,
}

/// Resolves names for provider calls and keeps only the addresses the policy permits, so
/// the check holds for the address actually connected to.
struct PolicyResolver(OutboundPolicy);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    "the provider's host resolves to no address the service may reach".into(),
                );
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The one HTTP client for provider calls: no redirects, timeouts, identifies itself
/// (GitHub's API refuses requests without a User-Agent), and connects only to addresses
/// `policy` permits.
pub fn http_client(policy: OutboundPolicy) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(PolicyResolver(policy)))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("bot-integrations/", env!("CARGO_PKG_VERSION")))
        .build()
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_PROVIDER_BODY as u64)
    {
        return Err(HttpError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(HttpError::Request)? {
        if body.len() + chunk.len() > MAX_PROVIDER_BODY {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// GitHub and Slack answer some errors with `200 OK` and an error body; make those the
/// `400` an OAuth client expects, with the standard code where one applies.
fn normalise_error_body(body: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    if obj.contains_key("access_token") {
        return None;
    }
    let code = obj.get("error")?.as_str()?;
    let standard = match code {
        "bad_verification_code"
        | "bad_refresh_token"
        | "invalid_refresh_token"
        | "invalid_code"
        | "code_already_used"
        | "token_revoked"
        | "token_expired" => "invalid_grant",
        "incorrect_client_credentials" | "invalid_client_id" | "bad_client_secret" => {
            "invalid_client"
        }
        other => other,
    };
    serde_json::to_vec(&serde_json::json!({ "error": standard })).ok()
}

impl ProviderHttp {
    /// `client` should come from [`http_client`] with the same `policy`, which checks
    /// resolved names; the policy here checks URLs that name an address directly.
    pub fn new(client: reqwest::Client, policy: OutboundPolicy) -> Self {
        Self {
            client: client.into(),
            policy,
        }
    }

    /// Builds its [`http_client`] on the first provider call.
    pub fn lazy(policy: OutboundPolicy) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            policy,
        }
    }

    fn http(&self) -> Result<&reqwest::Client, HttpError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let built = http_client(self.policy).map_err(|e| HttpError::Request(e.without_url()))?;
        Ok(self.client.get_or_init(|| built))
    }

    fn http_or_config(&self) -> Result<&reqwest::Client, ProviderError> {
        self.http()
            .map_err(|_| ProviderError::Config("the HTTP client could not be built".into()))
    }

    fn permitted(&self, url: &str) -> bool {
        url::Url::parse(url).is_ok_and(|u| self.policy.check_url(&u).is_ok())
    }

    fn refused(url: &str) -> ProviderError {
        tracing::warn!(host = %url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default(), "provider URL refused by the outbound policy");
        ProviderError::Config("the provider's address is not one the service may reach".into())
    }

    /// Sends one request for the `oauth2` crate.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        send(self.http()?, self.policy, request).await
    }
}

/// Sends one request for the `oauth2` crate. 429 and 5xx become transient errors here, so
/// they are never mistaken for a provider's final answer.
async fn send(
    client: &reqwest::Client,
    policy: OutboundPolicy,
    request: HttpRequest,
) -> Result<HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let permitted =
        url::Url::parse(&parts.uri.to_string()).is_ok_and(|u| policy.check_url(&u).is_ok());
    if !permitted {
        return Err(HttpError::Refused);
    }
    let resp = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError::Request(e.without_url()))?;
    let status = resp.status();
    if status.as_u16() == 429 || status.is_server_error() {
        return Err(HttpError::Unavailable {
            status: status.as_u16(),
            retry_after: retry_after(&resp),
        });
    }
    let headers = resp.headers().clone();
    let mut body = read_limited(resp).await?;
    let mut status = status;
    if status.is_success() {
        if let Some(error_body) = normalise_error_body(&body) {
            body = error_body;
            status = http::StatusCode::BAD_REQUEST;
        }
    }
    let mut out = http::Response::builder().status(status);
    if let Some(h) = out.headers_mut() {
        *h = headers;
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    out.body(body).map_err(|_| HttpError::TooLarge)
}

impl ProviderHttp {
    /// The `oauth2` client for `app`; `redirect_uri` for the grants that send one.
    fn client(
        app: &ProviderApp,
        secret: Option<&SecretString>,
        redirect_uri: Option<&str>,
    ) -> Result<BareClient, ProviderError> {
        let mut client = BareClient::new(ClientId::new(app.client_id.clone())).set_auth_type(
            if app.client_auth_in_body {
                AuthType::RequestBody
            } else {
                AuthType::BasicAuth
            },
        );
        if let Some(s) = secret {
            client = client.set_client_secret(ClientSecret::new(s.expose_secret().to_owned()));
        }
        if let Some(uri) = redirect_uri {
            client = client.set_redirect_uri(
                RedirectUrl::new(uri.to_owned())
                    .map_err(|_| ProviderError::Config("redirect_uri".into()))?,
            );
        }
        Ok(client)
    }
}

#[async_trait]
impl ProviderClient for ProviderHttp {
    async fn call_api(
        &self,
        request: crate::ports::ApiRequest,
    ) -> Result<crate::ports::ApiResponse, ProviderError> {
        if self.policy.check_url(&request.url).is_err() {
            return Err(Self::refused(request.url.as_str()));
        }
        let client = self.http_or_config()?;
        let resp = client
            .request(request.method, request.url)
            .headers(request.headers)
            .body(request.body)
            .timeout(request.timeout)
            .send()
            .await
            .map_err(|e| {
                // Never the URL: a query parameter may carry the credential.
                tracing::warn!(error = %e.without_url(), "provider API call failed");
                ProviderError::Transient { retry_after: None }
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = futures_util::stream::unfold(Some(resp), |state| async move {
            let mut resp = state?;
            match resp.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(resp))),
                Ok(None) => None,
                Err(e) => Some((
                    Err(std::io::Error::other(e.without_url().to_string())),
                    None,
                )),
            }
        });
        Ok(crate::ports::ApiResponse {
            status,
            headers,
            body: Box::pin(body),
        })
    }

    /// The authorization URL for a flow, with a fresh PKCE verifier where the provider
    /// supports it (always S256).
    fn authorize(
        &self,
        app: &ProviderApp,
        redirect_uri: &str,
        scopes: &[String],
        state: &SecretString,
        nonce: Option<&SecretString>,
    ) -> Result<Authorization, ProviderError> {
        let auth_url = AuthUrl::new(app.authorize_url.clone())
            .map_err(|_| ProviderError::Config("authorize_url".into()))?;
        let client = Self::client(app, None, Some(redirect_uri))?.set_auth_uri(auth_url);
        let state = state.expose_secret().to_owned();
        let mut req = client.authorize_url(move || CsrfToken::new(state));
        let scope = scopes.join(&app.scope_separator);
        // Some providers take the scopes under another name (Slack's user scopes).
        match app.entry().and_then(|e| e.scope_param.as_deref()) {
            Some(param) if !scope.is_empty() => req = req.add_extra_param(param.to_owned(), scope),
            Some(_) => {}
            None if !scope.is_empty() => req = req.add_scope(Scope::new(scope)),
            None => {}
        }
        for (k, v) in &app.authorize_params {
            req = req.add_extra_param(k.clone(), v.clone());
        }
        if let Some(n) = nonce {
            req = req.add_extra_param("nonce", n.expose_secret().to_owned());
        }
        let mut verifier = None;
        if app.pkce {
            let (challenge, v) = PkceCodeChallenge::new_random_sha256_len(32);
            req = req.set_pkce_challenge(challenge);
            verifier = Some(SecretString::from(v.into_secret()));
        }
        let (url, _) = req.url();
        Ok(Authorization {
            url,
            pkce_verifier: verifier,
        })
    }

    #[tracing::instrument(skip_all, fields(provider = %client.app.name))]
    async fn exchange_code(
        &self,
        client: &RegisteredApp,
        redirect_uri: &str,
        code: &SecretString,
        verifier: Option<SecretString>,
    ) -> Result<GrantedToken, ProviderError> {
        let (app, secret) = (&client.app, client.secret.as_ref());
        let token_url = TokenUrl::new(app.token_url.clone())
            .map_err(|_| ProviderError::Config("token_url".into()))?;
        let client = Self::client(app, secret, Some(redirect_uri))?.set_token_uri(token_url);
        let mut req = client.exchange_code(AuthorizationCode::new(code.expose_secret().to_owned()));
        if let Some(v) = verifier {
            req = req.set_pkce_verifier(PkceCodeVerifier::new(v.expose_secret().to_owned()));
        }
        req.request_async(&self.token_call(app)?)
            .await
            .map(granted)
            .map_err(classify)
    }

    #[tracing::instrument(skip_all, fields(provider = %client.app.name))]
    async fn refresh(
        &self,
        client: &RegisteredApp,
        redirect_uri: &str,
        refresh_token: &SecretString,
    ) -> Result<GrantedToken, ProviderError> {
        let (app, secret) = (&client.app, client.secret.as_ref());
        let token_url = TokenUrl::new(app.token_url.clone())
            .map_err(|_| ProviderError::Config("token_url".into()))?;
        let client = Self::client(app, secret, Some(redirect_uri))?.set_token_uri(token_url);
        let rt = RefreshToken::new(refresh_token.expose_secret().to_owned());
        client
            .exchange_refresh_token(&rt)
            .request_async(&self.token_call(app)?)
            .await
            .map(granted)
            .map_err(classify)
    }

    async fn entered_user_info(
        &self,
        spec: &crate::domain::catalog::UserInfoSpec,
        credential: &crate::domain::catalog::CredentialSpec,
        url: &str,
        secret: &SecretString,
    ) -> Result<Value, ProviderError> {
        if !self.permitted(url) {
            return Err(Self::refused(url));
        }
        let req = provider_calls::entered_user_info_request(
            self.http_or_config()?,
            spec,
            credential,
            url,
            secret,
        )
        .ok_or_else(|| ProviderError::Config("the entry's user-info request".into()))?;
        let resp = req
            .send()
            .await
            .map_err(|_| ProviderError::Transient { retry_after: None })?;
        let status = resp.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(ProviderError::Transient {
                retry_after: retry_after(&resp),
            });
        }
        if !status.is_success() {
            return Err(ProviderError::Final {
                code: format!("credentials_refused_http_{}", status.as_u16()),
            });
        }
        let body = read_limited(resp)
            .await
            .map_err(|_| ProviderError::Malformed("user info".into()))?;
        serde_json::from_slice(&body)
            .map_err(|_| ProviderError::Malformed("user info is not JSON".into()))
    }

    #[tracing::instrument(skip_all, fields(provider = %client.app.name))]
    async fn client_credentials(
        &self,
        client: &RegisteredApp,
        scopes: &[String],
    ) -> Result<GrantedToken, ProviderError> {
        let (app, secret) = (&client.app, client.secret.as_ref());
        let token_url = TokenUrl::new(app.token_url.clone())
            .map_err(|_| ProviderError::Config("token_url".into()))?;
        let oauth = Self::client(app, secret, None)?.set_token_uri(token_url);
        let mut req = oauth.exchange_client_credentials();
        let scope = app.scope_param(scopes).join(&app.scope_separator);
        if !scope.is_empty() {
            req = req.add_scope(Scope::new(scope));
        }
        req.request_async(&self.token_call(app)?)
            .await
            .map(granted)
            .map_err(classify)
    }

    /// RFC 7009 revocation of the refresh token (which ends the grant at most providers) or,
    /// without one, the access token. Sent directly rather than through the `oauth2` crate,
    /// which refuses plain-HTTP revocation URLs even on the loopback interface.
    #[tracing::instrument(skip_all, fields(provider = %client.app.name))]
    async fn revoke(
        &self,
        client: &RegisteredApp,
        access_token: &SecretString,
        refresh_token: Option<&SecretString>,
    ) -> Result<(), ProviderError> {
        let (app, secret) = (&client.app, client.secret.as_ref());
        let Some(url) = &app.revocation_url else {
            return Ok(());
        };
        if !self.permitted(url) {
            return Err(Self::refused(url));
        }
        let resp = provider_calls::revocation_request(
            self.http_or_config()?,
            app,
            url,
            secret,
            access_token,
            refresh_token,
        )
        .send()
        .await
        .map_err(|_| ProviderError::Transient { retry_after: None })?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else if status.as_u16() == 429 || status.is_server_error() {
            Err(ProviderError::Transient {
                retry_after: retry_after(&resp),
            })
        } else {
            Err(ProviderError::Refused {
                code: format!("revocation_http_{}", status.as_u16()),
            })
        }
    }

    /// The provider's user-info answer for a fresh access token.
    #[tracing::instrument(skip_all, fields(provider = %app.name))]
    async fn user_info(
        &self,
        app: &ProviderApp,
        access_token: &SecretString,
    ) -> Result<Option<Value>, ProviderError> {
        let Some(url) = &app.userinfo_url else {
            return Ok(None);
        };
        if !self.permitted(url) {
            return Err(Self::refused(url));
        }
        let spec = app.entry().and_then(|e| e.userinfo.as_ref());
        let resp =
            provider_calls::user_info_request(self.http_or_config()?, app, url, spec, access_token)
                .send()
                .await
                .map_err(|_| ProviderError::Transient { retry_after: None })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ProviderError::Refused {
                code: format!("userinfo_http_{}", status.as_u16()),
            });
        }
        let body = read_limited(resp)
            .await
            .map_err(|_| ProviderError::Malformed("user info".into()))?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|_| ProviderError::Malformed("user info is not JSON".into()))
    }

    #[tracing::instrument(skip_all, fields(provider = %client.app.name))]
    async fn verify_id_token(
        &self,
        client: &RegisteredApp,
        id_token: &str,
        nonce_hash: Option<&str>,
    ) -> Result<Value, ProviderError> {
        super::id_token::verify(self, client, id_token, nonce_hash).await
    }

    /// Fetches and parses `{issuer}/.well-known/openid-configuration`.
    async fn discover(&self, issuer: &url::Url) -> Result<Discovery, ProviderError> {
        let base = issuer.as_str().trim_end_matches('/');
        let url = format!("{base}/.well-known/openid-configuration");
        if !self.permitted(&url) {
            return Err(Self::refused(&url));
        }
        let resp = self
            .http_or_config()?
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|_| ProviderError::Transient { retry_after: None })?;
        let status = resp.status().as_u16();
        if status == 429 || resp.status().is_server_error() {
            return Err(ProviderError::Transient { retry_after: None });
        }
        if !resp.status().is_success() {
            return Err(ProviderError::Config(format!(
                "the discovery document answered HTTP {status}"
            )));
        }
        let body = read_limited(resp)
            .await
            .map_err(|_| ProviderError::Malformed("discovery document".into()))?;
        // Say what is wrong without repeating what the remote sent.
        serde_json::from_slice(&body).map_err(|_| {
            ProviderError::Config(
                "the discovery document is not OpenID Connect provider metadata".into(),
            )
        })
    }
}

/// A token request for one app: the answer brought to the standard shape before the
/// `oauth2` crate reads it.
pub struct TokenCall {
    client: reqwest::Client,
    policy: OutboundPolicy,
    shape: Option<&'static TokenShape>,
}

impl ProviderHttp {
    fn token_call(&self, app: &ProviderApp) -> Result<TokenCall, ProviderError> {
        Ok(TokenCall {
            client: self.http_or_config()?.clone(),
            policy: self.policy,
            shape: app.entry().map(|e| &e.token_response),
        })
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for TokenCall {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let mut resp = send(&self.client, self.policy, request).await?;
            if resp.status().is_success() {
                if let Some(body) = provider_calls::reshape_token_answer(resp.body(), self.shape) {
                    if let Some(error_body) = normalise_error_body(&body) {
                        *resp.status_mut() = http::StatusCode::BAD_REQUEST;
                        *resp.body_mut() = error_body;
                    } else {
                        *resp.body_mut() = body;
                    }
                }
            }
            Ok(resp)
        })
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

fn granted(t: ProviderTokenResponse) -> GrantedToken {
    GrantedToken {
        access_token: SecretString::from(t.access_token().secret().to_owned()),
        refresh_token: t
            .refresh_token()
            .map(|r| SecretString::from(r.secret().to_owned())),
        token_type: "Bearer".to_owned(),
        expires_in: t.expires_in().map(|d| d.as_secs()),
        scopes: t
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect()),
        other: t.extra_fields().0.clone(),
    }
}

fn classify<RE>(e: RequestTokenError<HttpError, RE>) -> ProviderError
where
    RE: oauth2::ErrorResponse + 'static,
    RE: ErrorCode,
{
    match e {
        RequestTokenError::ServerResponse(r) => {
            let code = r.code();
            if code == "invalid_grant" || code == "invalid_client" {
                ProviderError::Final { code }
            } else {
                ProviderError::Refused { code }
            }
        }
        // 429 and 503 say the request was not served; 500, 502 and 504 may come after the
        // provider acted on it.
        RequestTokenError::Request(HttpError::Unavailable {
            status: 429 | 503,
            retry_after,
        }) => ProviderError::Transient { retry_after },
        RequestTokenError::Request(HttpError::Unavailable { .. }) => ProviderError::OutcomeUnknown,
        // A request that never connected never reached the provider; one that broke or timed
        // out later may have.
        RequestTokenError::Request(HttpError::Request(e)) if e.is_connect() => {
            ProviderError::Transient { retry_after: None }
        }
        RequestTokenError::Request(HttpError::Request(_)) => ProviderError::OutcomeUnknown,
        RequestTokenError::Request(HttpError::TooLarge) => {
            ProviderError::Malformed("answer too large".into())
        }
        RequestTokenError::Request(HttpError::Refused) => {
            ProviderError::Config("the provider's address is not one the service may reach".into())
        }
        RequestTokenError::Parse(_, _) => ProviderError::Malformed("token answer".into()),
        RequestTokenError::Other(m) => ProviderError::Malformed(m),
    }
}

/// The error code of an OAuth error answer, as a string.
pub trait ErrorCode {
    fn code(&self) -> String;
}

impl ErrorCode for BasicErrorResponse {
    fn code(&self) -> String {
        match self.error() {
            BasicErrorResponseType::Extension(s) => s.clone(),
            other => other.as_ref().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ProviderName;
    use crate::domain::providers::ProviderAppInput;
    use std::sync::{Arc, Mutex};

    /// A provider on loopback that records the Authorization header of each request.
    async fn recording_provider() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let record = |seen: Arc<Mutex<Vec<(String, String)>>>, path: &'static str| {
            move |headers: axum::http::HeaderMap| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                seen.lock().unwrap().push((path.to_owned(), auth));
                axum::Json(serde_json::json!({
                    "access_token": "at", "refresh_token": "rt", "token_type": "Bearer", "expires_in": 60
                }))
            }
        };
        let app = axum::Router::new()
            .route("/token", axum::routing::post(record(seen.clone(), "token")))
            .route(
                "/revoke",
                axum::routing::post(record(seen.clone(), "revoke")),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    #[tokio::test]
    async fn token_refresh_and_revocation_authenticate_the_client_the_same_way() {
        let (base, seen) = recording_provider().await;
        let secret = "a+b/c=d:e%f&g h";
        let input: ProviderAppInput = serde_json::from_value(serde_json::json!({
            "client_id": "client:1", "client_secret": secret,
            "authorize_url": format!("{base}/authorize"), "token_url": format!("{base}/token"),
            "revocation_url": format!("{base}/revoke"),
        }))
        .unwrap();
        let app = input
            .resolve(
                &ProviderName::parse("acme_idp").unwrap(),
                None,
                crate::domain::network::OutboundPolicy {
                    allow_loopback: true,
                },
            )
            .unwrap();
        let client = RegisteredApp {
            app,
            secret: Some(SecretString::from(secret.to_owned())),
        };
        let dev = crate::domain::network::OutboundPolicy {
            allow_loopback: true,
        };
        let http = ProviderHttp::new(http_client(dev).unwrap(), dev);
        let code = SecretString::from("code".to_owned());
        let rt = SecretString::from("rt".to_owned());
        let redirect = "https://svc.example/oauth/callback/acme_idp";
        http.exchange_code(&client, redirect, &code, None)
            .await
            .unwrap();
        http.refresh(&client, redirect, &rt).await.unwrap();
        http.revoke(&client, &code, Some(&rt)).await.unwrap();

        use base64::Engine;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode("client%3A1:a%2Bb%2Fc%3Dd%3Ae%25f%26g+h")
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                ("token".to_owned(), expected.clone()),
                ("token".to_owned(), expected.clone()),
                ("revoke".to_owned(), expected),
            ]
        );
    }

    #[test]
    fn error_bodies_with_200_become_oauth_errors() {
        let gh =
            normalise_error_body(br#"{"error":"bad_verification_code","error_description":"x"}"#)
                .unwrap();
        assert_eq!(gh, br#"{"error":"invalid_grant"}"#);
        let slack = normalise_error_body(br#"{"ok":false,"error":"invalid_client_id"}"#).unwrap();
        assert_eq!(slack, br#"{"error":"invalid_client"}"#);
        assert!(normalise_error_body(br#"{"access_token":"a","token_type":"bearer"}"#).is_none());
        assert!(normalise_error_body(b"not json").is_none());
    }

    #[tokio::test]
    async fn names_are_checked_on_the_addresses_they_resolve_to() {
        use reqwest::dns::Resolve;
        let strict = PolicyResolver(OutboundPolicy::default());
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        assert!(strict.resolve(name("localhost")).await.is_err());
        let dev = PolicyResolver(OutboundPolicy {
            allow_loopback: true,
        });
        let addrs: Vec<_> = dev.resolve(name("localhost")).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn a_refused_address_is_never_contacted() {
        let (base, seen) = recording_provider().await;
        let input: ProviderAppInput = serde_json::from_value(serde_json::json!({
            "client_id": "c", "client_secret": "s",
            "authorize_url": format!("{base}/authorize"), "token_url": format!("{base}/token"),
            "revocation_url": format!("{base}/revoke"),
        }))
        .unwrap();
        let dev = OutboundPolicy {
            allow_loopback: true,
        };
        let app = input
            .resolve(&ProviderName::parse("acme_idp").unwrap(), None, dev)
            .unwrap();
        // Registered while loopback was allowed, used by a service that does not allow it.
        let strict = OutboundPolicy::default();
        let http = ProviderHttp::new(http_client(strict).unwrap(), strict);
        let client = RegisteredApp { app, secret: None };
        let rt = SecretString::from("rt".to_owned());
        let refresh = http.refresh(&client, "https://svc.example/cb", &rt).await;
        assert!(
            matches!(refresh, Err(ProviderError::Config(_))),
            "{:?}",
            refresh.err()
        );
        let revoke = http.revoke(&client, &rt, None).await;
        assert!(
            matches!(revoke, Err(ProviderError::Config(_))),
            "{revoke:?}"
        );
        assert!(seen.lock().unwrap().is_empty());
    }
}
