//! Routes people's browsers reach: the flow's start and callback, and the connect page.

use super::pages;
use super::AppState;
use crate::domain::ids::{Alias, LinkId};
use crate::service::{CallbackParams, FlowError};
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
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

/// Link and session ids that cannot exist are answered like unknown ones.
fn link_id(raw: &str) -> Result<LinkId, FlowError> {
    LinkId::parse(raw).map_err(|_| FlowError::UnknownLink)
}

async fn start(State(s): State<AppState>, Path(link): Path<String>) -> Response {
    let started = match link_id(&link) {
        Ok(id) => s.start(&id).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(url) => pages::redirect(url.as_str()),
        Err(e) => e.into_response(),
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

async fn connect_start(
    State(s): State<AppState>,
    Path((session, alias)): Path<(String, String)>,
) -> Response {
    let started = match (link_id(&session), Alias::parse(&alias)) {
        (Ok(id), Ok(alias)) => s.connect_start(&id, &alias).await,
        (Err(e), _) => Err(e),
        (_, Err(_)) => Err(FlowError::NotConfigured),
    };
    match started {
        Ok(url) => {
            let mut resp = pages::redirect(url.as_str());
            *resp.status_mut() = axum::http::StatusCode::SEE_OTHER;
            resp
        }
        Err(e) => e.into_response(),
    }
}
