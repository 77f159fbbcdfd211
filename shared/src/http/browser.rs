//! Routes people's browsers reach: the flow's start and callback, and the connect page.

use super::pages;
use super::AppState;
use crate::domain::ids::{Alias, BrowserKey, LinkId};
use crate::service::{CallbackParams, FlowError, Opened, FLOW_TTL_SECS};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::collections::BTreeMap;

pub fn start_router() -> Router<AppState> {
    Router::new().route("/oauth/start/{link_id}", get(start).post(enter))
}

pub fn callback_router() -> Router<AppState> {
    Router::new().route("/oauth/callback/{provider}", get(callback))
}

pub fn connect_router() -> Router<AppState> {
    Router::new()
        .route("/connect/{session}", get(connect_page))
        .route("/connect/{session}/{alias}", post(connect_start))
        .route(
            "/connect/{session}/{alias}/disconnect",
            post(connect_disconnect),
        )
}

/// The cookie that binds a flow to the browser that started it. Over https it has the
/// `__Host-` prefix: only this origin can set it, for the whole origin and nothing else.
fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-integrations-browser"
    } else {
        "integrations-browser"
    }
}

fn is_secure(s: &AppState) -> bool {
    s.public_url().scheme() == "https"
}

/// The browser key the request's cookies carry, when it has the right shape.
fn browser_key(headers: &HeaderMap, secure: bool) -> Option<BrowserKey> {
    let name = cookie_name(secure);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .and_then(|(_, value)| BrowserKey::parse(value))
}

/// Redirects to `url`, setting the browser key (kept when the browser already has one, so
/// that flows started in one browser at once all finish there).
fn redirect_binding(url: &url::Url, key: &BrowserKey, secure: bool) -> Response {
    let mut resp = pages::redirect(url.as_str());
    let cookie = format!(
        "{}={}; Path=/; Max-Age={FLOW_TTL_SECS}; HttpOnly; SameSite=Lax{}",
        cookie_name(secure),
        key.expose(),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A form post to the connect page must come from the connect page itself: `Sec-Fetch-Site`
/// (when the browser sends it) says `same-origin`, and `Origin` (when sent) is the service's.
/// The pages' `Referrer-Policy: no-referrer` makes browsers send `Origin: null` even from
/// the page itself; that is accepted only where `Sec-Fetch-Site` vouches for the request.
fn same_origin(s: &AppState, headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let site = header("sec-fetch-site");
    let site_ok = site.is_none_or(|v| v == "same-origin" || v == "none");
    let origin_ok = match header("origin") {
        None => true,
        Some("null") => site.is_some(),
        Some(o) => o == s.public_url().origin().ascii_serialization(),
    };
    site_ok && origin_ok
}

/// Link and session ids that cannot exist are answered like unknown ones.
fn link_id(raw: &str) -> Result<LinkId, FlowError> {
    LinkId::parse(raw).map_err(|_| FlowError::UnknownLink)
}

async fn start(
    State(s): State<AppState>,
    Path(link): Path<String>,
    headers: HeaderMap,
) -> Response {
    let secure = is_secure(&s);
    let key = browser_key(&headers, secure).unwrap_or_else(BrowserKey::generate);
    let opened = match link_id(&link) {
        Ok(id) => s.open_link(&id, &key).await,
        Err(e) => Err(e),
    };
    match opened {
        Ok(Opened::Redirect(url)) => redirect_binding(&url, &key, secure),
        Ok(Opened::Form(form)) => pages::credential_form(&form),
        Ok(Opened::Done(done)) => pages::connected(&display_name(&done)),
        Err(e) => e.into_response(),
    }
}

/// A form body's fields (at most the body limit; repeated names: the last wins).
fn form_fields(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn cross_site(headers: &HeaderMap) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .chars()
            .take(100)
            .collect::<String>()
    };
    tracing::warn!(sec_fetch_site = %header("sec-fetch-site"), origin = %header("origin"), "form posted from another site; refused");
    pages::page(
        StatusCode::FORBIDDEN,
        "Not started",
        "<p>This request did not come from this service's own page. Open the link again and \
         use its form.</p>",
    )
}

/// `POST /oauth/start/{link}`: the credentials entered on the link's form.
async fn enter(
    State(s): State<AppState>,
    Path(link): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !same_origin(&s, &headers) {
        return cross_site(&headers);
    }
    let stored = match link_id(&link) {
        Ok(id) => s.enter_credentials(&id, form_fields(&body)).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(done) => pages::connected(&display_name(&done)),
        Err(e) => e.into_response(),
    }
}

fn display_name(done: &crate::service::Connected) -> String {
    crate::domain::catalog::catalog_entry(done.provider.as_str())
        .map_or_else(|| done.provider.to_string(), |e| e.display_name.clone())
}

async fn callback(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    params: Result<Query<CallbackParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let key = browser_key(&headers, is_secure(&s));
    match s.callback(&provider, params, key.as_ref()).await {
        Ok(done) => match (&done.confirmation_code, &done.redirect_to) {
            (Some(code), _) => {
                use secrecy::ExposeSecret;
                pages::confirm_in_chat(done.provider.as_str(), code.expose_secret())
            }
            (None, Some(to)) => pages::redirect(to.as_str()),
            (None, None) => pages::connected(done.provider.as_str()),
        },
        Err(e) => e.into_response(),
    }
}

async fn connect_page(State(s): State<AppState>, Path(session): Path<String>) -> Response {
    let page = match link_id(&session) {
        Ok(id) => s.connect_page(&id).await,
        Err(e) => Err(e),
    };
    match page {
        Ok((bot, rows)) => pages::connect_page(&session, bot.as_str(), &rows),
        Err(e) => e.into_response(),
    }
}

async fn connect_disconnect(
    State(s): State<AppState>,
    Path((session, alias)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&s, &headers) {
        return cross_site(&headers);
    }
    let done = match (link_id(&session), Alias::parse(&alias)) {
        (Ok(id), Ok(alias)) => s.connect_disconnect(&id, &alias).await,
        (Err(e), _) => Err(e),
        (_, Err(_)) => Err(FlowError::NotConfigured),
    };
    match done {
        Ok(was) => pages::disconnected(&alias, was),
        Err(e) => e.into_response(),
    }
}

async fn connect_start(
    State(s): State<AppState>,
    Path((session, alias)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !same_origin(&s, &headers) {
        return cross_site(&headers);
    }
    let fields = form_fields(&body);
    if !fields.is_empty() {
        let stored = match (link_id(&session), Alias::parse(&alias)) {
            (Ok(id), Ok(alias)) => s.connect_entered(&id, &alias, fields).await,
            (Err(e), _) => Err(e),
            (_, Err(_)) => Err(FlowError::NotConfigured),
        };
        return match stored {
            Ok(done) => pages::connected(&display_name(&done)),
            Err(e) => e.into_response(),
        };
    }
    let secure = is_secure(&s);
    let key = browser_key(&headers, secure).unwrap_or_else(BrowserKey::generate);
    let started = match (link_id(&session), Alias::parse(&alias)) {
        (Ok(id), Ok(alias)) => s.connect_start(&id, &alias, &key).await,
        (Err(e), _) => Err(e),
        (_, Err(_)) => Err(FlowError::NotConfigured),
    };
    match started {
        Ok(Opened::Redirect(url)) => {
            let mut resp = redirect_binding(&url, &key, secure);
            *resp.status_mut() = StatusCode::SEE_OTHER;
            resp
        }
        Ok(Opened::Done(done)) => pages::connected(&display_name(&done)),
        Ok(Opened::Form(form)) => pages::credential_form(&form),
        Err(e) => e.into_response(),
    }
}
