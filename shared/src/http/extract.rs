//! Extractors that answer in the API's own error format, and the two kinds of key check.

use super::error::ApiError;
use super::AppState;
use crate::domain::ids::BotId;
use crate::service::AuthError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// JSON body whose every rejection is an `ApiError`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType {
                expected: "application/json",
            }),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Unprocessable {
                code: "invalid_body",
                message: e.body_text(),
                details: Vec::new(),
            }),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::PayloadTooLarge {
                    limit: super::BODY_LIMIT,
                })
            }
            Err(e) => Err(ApiError::BadRequest {
                code: "malformed_json",
                message: e.body_text(),
            }),
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 512)
        .then_some(token.trim())
}

/// The operator, authenticated by the admin key.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer(parts) {
            Some(key) if state.check_admin_key(key) => Ok(Operator),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// The bot of the path, authenticated by its own key.
pub struct AuthedBot(pub BotId);

impl FromRequestParts<AppState> for AuthedBot {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound("bot"))?;
        let raw = params
            .iter()
            .find(|(k, _)| *k == "bot_id")
            .map(|(_, v)| v.to_owned())
            .ok_or(ApiError::NotFound("bot"))?;
        let key = bearer(parts).ok_or(ApiError::Unauthorized)?;
        match state.authenticate_bot(&raw, key).await {
            Ok(bot) => Ok(AuthedBot(bot)),
            Err(AuthError::OtherBot) => Err(ApiError::NotFound("bot")),
            Err(AuthError::Unauthorized) => Err(ApiError::Unauthorized),
            Err(AuthError::Unavailable) => Err(ApiError::Internal),
        }
    }
}

/// The operator or any bot, each by its own key (for what every caller may read).
pub struct AnyCaller;

impl FromRequestParts<AppState> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(parts).ok_or(ApiError::Unauthorized)?;
        if state.check_admin_key(key) {
            return Ok(AnyCaller);
        }
        // A bot key names its bot: checked against that bot's stored key.
        let claimed = key.split('.').nth(1).unwrap_or_default().to_owned();
        match state.authenticate_bot(&claimed, key).await {
            Ok(_) => Ok(AnyCaller),
            Err(AuthError::Unavailable) => Err(ApiError::Internal),
            Err(_) => Err(ApiError::Unauthorized),
        }
    }
}
