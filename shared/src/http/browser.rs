//! Routes people's browsers reach: the flow's start and callback, and the connect page.

use super::pages;
use super::AppState;
use crate::service::CallbackParams;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub fn start_router() -> Router<AppState> {
    Router::new().route("/oauth/start/{link_id}", get(start))
}

pub fn callback_router() -> Router<AppState> {
    Router::new().route("/oauth/callback/{provider}", get(callback))
}

pub fn connect_router() -> Router<AppState> {
    Router::new()
        .route("/connect/{session}", get(connect_page))
        .route("/connect/{session}/{alias}", post(connect_start))
}

async fn start(State(s): State<AppState>, Path(link_id): Path<String>) -> Response {
    match s.start(&link_id).await {
        Ok(url) => pages::redirect(url.as_str()),
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

async fn callback(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    params: Result<Query<CallbackParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    match s.callback(&provider, params).await {
        Ok(done) => pages::connected(done.provider.as_str()),
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

async fn connect_page(State(s): State<AppState>, Path(session): Path<String>) -> Response {
    match s.connect_page(&session).await {
        Ok((bot, rows)) => pages::connect_page(&session, bot.as_str(), &rows),
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

async fn connect_start(
    State(s): State<AppState>,
    Path((session, alias)): Path<(String, String)>,
) -> Response {
    match s.connect_start(&session, &alias).await {
        Ok(url) => {
            let mut resp = pages::redirect(url.as_str());
            *resp.status_mut() = axum::http::StatusCode::SEE_OTHER;
            resp
        }
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}
