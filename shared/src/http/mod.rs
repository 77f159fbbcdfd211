//! The HTTP surface: one router per Lambda function, merged by the local server, with the
//! same limits, request ids and logging on each.

pub mod api;
pub mod browser;
pub mod error;
pub mod extract;
pub mod pages;
#[cfg(all(test, feature = "embedded"))]
mod tests;

use crate::service::Service;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;

pub type AppState = Arc<Service>;

/// Largest request body, JSON or YAML: the integrations file's own limit.
pub const BODY_LIMIT: usize = crate::domain::integrations::MAX_FILE_BYTES;
pub const MAX_URI_LEN: usize = 4096;
pub const MAX_HEADERS_BYTES: usize = 16 * 1024;
pub const REQUEST_ID_HEADER: &str = "x-request-id";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bot integrations service",
        description = "OAuth connections for chatbots: integrations files, oauth_link, tokens and events. \
                       Browser routes (/oauth/start, /oauth/callback, /connect) answer HTML and are not part of /v1.",
        version = "1"
    ),
    modifiers(&SecuritySchemes),
    tags((name = "operator", description = "Admin key"), (name = "bot", description = "A bot's own key"))
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "bot_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The `/v1` routes and their OpenAPI document, from the same annotations.
pub fn api_parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::router())
        .split_for_parts();
    write_only_fields(&mut doc);
    (router, doc)
}

/// Request fields that are never serialized (the client secret), which utoipa leaves out of
/// a schema, are put back: a request schema must list every field it accepts.
fn write_only_fields(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
    use utoipa::openapi::RefOr;
    let Some(RefOr::T(Schema::Object(input))) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("ProviderAppInput"))
    else {
        return;
    };
    input
        .properties
        .entry("client_secret".to_owned())
        .or_insert_with(|| {
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some("Stored sealed; never returned."))
                .write_only(Some(true))
                .into()
        });
}

/// The OpenAPI 3.1 document of `/v1`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_parts().1
}

/// `/openapi.json`: the document is built on its first request, not at start.
fn openapi_route() -> axum::routing::MethodRouter<AppState> {
    static DOC: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    get(|| async {
        let body = DOC.get_or_init(|| {
            serde_json::to_vec(&openapi())
                .map(axum::body::Bytes::from)
                .unwrap_or_default()
        });
        (
            [(http::header::CONTENT_TYPE, "application/json")],
            body.clone(),
        )
    })
}

/// The token API function: `/v1`, the connect page, `/openapi.json` and `/healthz`.
pub fn token_api_router(state: AppState) -> Router {
    let router = api::routes()
        .merge(browser::connect_router())
        .route("/openapi.json", openapi_route())
        .route("/healthz", get(|| async { "ok" }));
    finish(router, state)
}

/// The OAuth start function.
pub fn start_router(state: AppState) -> Router {
    finish(browser::start_router(), state)
}

/// The OAuth callback function.
pub fn callback_router(state: AppState) -> Router {
    finish(browser::callback_router(), state)
}

/// Every route on one port, as the local server serves them.
pub fn local_router(state: AppState) -> Router {
    let router = api::routes()
        .merge(browser::connect_router())
        .merge(browser::start_router())
        .merge(browser::callback_router())
        .route("/openapi.json", openapi_route())
        .route("/healthz", get(|| async { "ok" }));
    finish(router, state)
}

fn finish(router: Router<AppState>, state: AppState) -> Router {
    router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The route template, never the URI: query strings hold codes and states.
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("-", MatchedPath::as_str)
                        .to_owned();
                    let id = req
                        .headers()
                        .get(REQUEST_ID_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned();
                    tracing::info_span!("request", method = %req.method(), route = %route, request_id = %id)
                })
                .on_request(())
                // One line per request at DEBUG: a bot may ask for a token on every message,
                // and at INFO the line cost the warm path a fifth of its throughput
                // (scripts/bench). Failures are logged where they happen, at WARN or ERROR;
                // on AWS the API's access log has every request.
                .on_response(|resp: &Response, latency: Duration, _: &tracing::Span| {
                    tracing::debug!(status = resp.status().as_u16(), latency_ms = latency.as_millis() as u64, "answered");
                })
                .on_failure(()),
        )
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

/// Whether a path belongs to the JSON API, whose every error is an `ApiError`; other
/// paths are answered with pages.
fn is_api_path(path: &str) -> bool {
    path.starts_with("/v1")
}

async fn not_found(req: Request) -> Response {
    if is_api_path(req.uri().path()) {
        error::ApiError::NotFound("route").into_response()
    } else {
        pages::page(
            StatusCode::NOT_FOUND,
            "Not found",
            "<p>There is nothing here.</p>",
        )
    }
}

/// A known path asked with a method it does not have. The router adds `Allow`.
async fn method_not_allowed(req: Request) -> Response {
    if is_api_path(req.uri().path()) {
        error::ApiError::MethodNotAllowed {
            method: req.method().to_string(),
        }
        .into_response()
    } else {
        pages::page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "<p>This page cannot be used that way.</p>",
        )
    }
}

/// A request refused before routing: the API's error body on `/v1`, a page elsewhere.
fn refused(path: &str, error: error::ApiError, title: &str) -> Response {
    if is_api_path(path) {
        error.into_response()
    } else {
        pages::page(error.status(), title, "<p>The request was too large.</p>")
    }
}

/// A fresh request id: 12 random bytes, base64url. Not a secret: the thread's CSPRNG, not
/// a system call per request.
fn request_id() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

fn acceptable_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
    .then(|| s.to_owned())
}

/// Bounds the request line and headers, and gives every request an id that the logs,
/// 5xx bodies and the `x-request-id` response header share.
async fn request_context(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(acceptable_request_id)
        .unwrap_or_else(request_id);
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    let path = req.uri().path();
    let mut resp = if req.uri().to_string().len() > MAX_URI_LEN {
        refused(
            path,
            error::ApiError::UriTooLong { limit: MAX_URI_LEN },
            "Address too long",
        )
    } else if header_bytes > MAX_HEADERS_BYTES {
        refused(
            path,
            error::ApiError::HeadersTooLarge {
                limit: MAX_HEADERS_BYTES,
            },
            "Request headers too large",
        )
    } else {
        if let Ok(v) = HeaderValue::from_str(&id) {
            req.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        error::REQUEST_ID.scope(id.clone(), next.run(req)).await
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}
