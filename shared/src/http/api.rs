//! `/v1`: the operator's and the bots' JSON API. Each handler carries its OpenAPI description,
//! and routes are registered through the same descriptions, so the document cannot miss one.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, AuthedBot, Operator};
use super::AppState;
use crate::domain::ids::{Alias, BotId, ProviderName, TokenId, UserId};
use crate::domain::providers::{ProviderApp, ProviderAppInput, UserInfo};
use crate::domain::token::Owner;
use crate::service::{AccessTokenView, CreatedBot, FullToken, IntegrationView, MintedLink};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBot {
    pub bot_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub api_key: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderApp>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationList {
    pub integrations: Vec<IntegrationView>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    pub alias: String,
    pub user_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenMap {
    /// alias → token id
    pub tokens: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct UserPath {
    user_id: String,
}

#[derive(Deserialize)]
struct TokenPath {
    token_id: String,
}

impl TokenPath {
    /// A token id that cannot exist is answered like a missing token.
    fn parse(&self) -> Result<TokenId, ApiError> {
        TokenId::parse(&self.token_id).map_err(|_| ApiError::NotFound("token"))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: bool,
}

fn unprocessable(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_value",
        message: e.to_string(),
        details: Vec::new(),
    }
}

fn token_map(m: BTreeMap<Alias, TokenId>) -> TokenMap {
    TokenMap {
        tokens: m
            .into_iter()
            .map(|(a, t)| (a.to_string(), t.to_string()))
            .collect(),
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_bot))
        .routes(routes!(rotate_bot_key))
        .routes(routes!(put_provider))
        .routes(routes!(list_providers))
        .routes(routes!(put_integrations, get_integrations))
        .routes(routes!(create_oauth_link))
        .routes(routes!(create_connect_link))
        .routes(routes!(bot_tokens))
        .routes(routes!(user_tokens))
        .routes(routes!(token_info))
        .routes(routes!(access_token))
        .routes(routes!(full_token, delete_token))
}

/// Create a bot; its API key is shown once.
#[utoipa::path(post, path = "/v1/admin/bots", tag = "operator", security(("admin_key" = [])),
    request_body = CreateBot,
    responses((status = 201, body = CreatedBot), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_bot(
    State(s): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<CreateBot>,
) -> Result<(StatusCode, Json<CreatedBot>), ApiError> {
    let bot = BotId::parse(&body.bot_id).map_err(unprocessable)?;
    Ok((StatusCode::CREATED, Json(s.create_bot(bot).await?)))
}

/// Issue a new API key for a bot; the old one stops working.
#[utoipa::path(post, path = "/v1/admin/bots/{bot_id}/api-key", tag = "operator", security(("admin_key" = [])),
    params(("bot_id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn rotate_bot_key(
    State(s): State<AppState>,
    _: Operator,
    Path(bot_id): Path<String>,
) -> Result<Json<ApiKey>, ApiError> {
    let bot = BotId::parse(&bot_id).map_err(|_| ApiError::NotFound("bot"))?;
    Ok(Json(ApiKey {
        api_key: s.rotate_bot_key(&bot).await?,
    }))
}

/// Register or replace a provider app (client secret sealed, never returned).
#[utoipa::path(put, path = "/v1/admin/providers/{name}", tag = "operator", security(("admin_key" = [])),
    params(("name" = String, Path)), request_body = ProviderAppInput,
    responses((status = 200, body = ProviderApp), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_provider(
    State(s): State<AppState>,
    _: Operator,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<ProviderAppInput>,
) -> Result<Json<ProviderApp>, ApiError> {
    let name = ProviderName::parse(&name).map_err(unprocessable)?;
    Ok(Json(s.put_provider(&name, input).await?))
}

/// List the registered provider apps, without secrets.
#[utoipa::path(get, path = "/v1/admin/providers", tag = "operator", security(("admin_key" = [])),
    responses((status = 200, body = ProviderList), (status = 401, body = ErrorBody)))]
async fn list_providers(
    State(s): State<AppState>,
    _: Operator,
) -> Result<Json<ProviderList>, ApiError> {
    Ok(Json(ProviderList {
        providers: s.providers().await?,
    }))
}

/// Replace the bot's integrations file (YAML). A rejected file changes nothing.
#[utoipa::path(put, path = "/v1/bots/{bot_id}/integrations", tag = "bot", security(("bot_key" = [])),
    params(("bot_id" = String, Path)),
    request_body(content = String, content_type = "application/yaml"),
    responses((status = 200, body = IntegrationList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_integrations(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<IntegrationList>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !matches!(
        essence,
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml"
    ) {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/yaml",
        });
    }
    // The router's one body limit, which is the integrations file's own limit.
    let body = body.map_err(|_| ApiError::PayloadTooLarge {
        limit: super::BODY_LIMIT,
    })?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::Unprocessable {
        code: "invalid_integrations",
        message: "the integrations file is not UTF-8".into(),
        details: Vec::new(),
    })?;
    Ok(Json(IntegrationList {
        integrations: s.put_integrations(&bot, text).await?,
    }))
}

/// The bot's integrations; bot-context entries say whether they are connected.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/integrations", tag = "bot", security(("bot_key" = [])),
    params(("bot_id" = String, Path)),
    responses((status = 200, body = IntegrationList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_integrations(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
) -> Result<Json<IntegrationList>, ApiError> {
    Ok(Json(IntegrationList {
        integrations: s.integrations(&bot).await?,
    }))
}

/// `oauth_link(alias)`: a link that starts the flow, valid for 30 minutes.
#[utoipa::path(post, path = "/v1/bots/{bot_id}/oauth-links", tag = "bot", security(("bot_key" = [])),
    params(("bot_id" = String, Path)), request_body = CreateLink,
    responses((status = 201, body = MintedLink), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_oauth_link(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    ApiJson(body): ApiJson<CreateLink>,
) -> Result<(StatusCode, Json<MintedLink>), ApiError> {
    let alias = Alias::parse(&body.alias).map_err(unprocessable)?;
    let user = body
        .user_id
        .as_deref()
        .map(UserId::parse)
        .transpose()
        .map_err(unprocessable)?;
    Ok((
        StatusCode::CREATED,
        Json(s.create_link(&bot, &alias, user).await?),
    ))
}

/// A short-lived link to the connect page, where the bot builder connects bot-context
/// integrations.
#[utoipa::path(post, path = "/v1/bots/{bot_id}/connect-links", tag = "bot", security(("bot_key" = [])),
    params(("bot_id" = String, Path)),
    responses((status = 201, body = MintedLink), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_connect_link(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
) -> Result<(StatusCode, Json<MintedLink>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(s.create_connect_session(&bot).await?),
    ))
}

/// `bot.tokens`: alias → token id of the bot-context tokens.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/tokens", tag = "bot", security(("bot_key" = [])),
    params(("bot_id" = String, Path)),
    responses((status = 200, body = TokenMap), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn bot_tokens(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
) -> Result<Json<TokenMap>, ApiError> {
    Ok(Json(token_map(s.tokens_of(&bot, &Owner::Bot).await?)))
}

/// `user.tokens`: alias → token id of one user's tokens.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/users/{user_id}/tokens", tag = "bot", security(("bot_key" = [])),
    params(("bot_id" = String, Path), ("user_id" = String, Path, description = "percent-encoded")),
    responses((status = 200, body = TokenMap), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn user_tokens(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    Path(path): Path<UserPath>,
) -> Result<Json<TokenMap>, ApiError> {
    let user = UserId::parse(&path.user_id).map_err(|_| ApiError::NotFound("user"))?;
    Ok(Json(token_map(
        s.tokens_of(&bot, &Owner::User(user)).await?,
    )))
}

/// `get_token_info`: what the provider said about the user.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/tokens/{token_id}/info", tag = "bot", security(("bot_key" = [])),
    params(("bot_id" = String, Path), ("token_id" = String, Path)),
    responses((status = 200, body = UserInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn token_info(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    Path(path): Path<TokenPath>,
) -> Result<Json<UserInfo>, ApiError> {
    Ok(Json(s.token_info(&bot, &path.parse()?).await?))
}

/// `get_access_token`: a usable access token, refreshed first when it is due.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/tokens/{token_id}/access-token", tag = "bot", security(("bot_key" = [])),
    params(("bot_id" = String, Path), ("token_id" = String, Path)),
    responses((status = 200, body = AccessTokenView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "the provider is unavailable; see Retry-After")))]
async fn access_token(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    Path(path): Path<TokenPath>,
) -> Result<Json<AccessTokenView>, ApiError> {
    Ok(Json(s.access_token(&bot, &path.parse()?).await?))
}

/// `get_full_token`: the whole token, shaped like `%Ueberauth.Auth{}`.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/tokens/{token_id}", tag = "bot", security(("bot_key" = [])),
    params(("bot_id" = String, Path), ("token_id" = String, Path)),
    responses((status = 200, body = FullToken), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn full_token(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    Path(path): Path<TokenPath>,
) -> Result<Json<FullToken>, ApiError> {
    Ok(Json(s.full_token(&bot, &path.parse()?).await?))
}

/// `delete_token`: removes the token and revokes it at the provider (best effort).
#[utoipa::path(delete, path = "/v1/bots/{bot_id}/tokens/{token_id}", tag = "bot", security(("bot_key" = [])),
    params(("bot_id" = String, Path), ("token_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_token(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    Path(path): Path<TokenPath>,
) -> Result<Json<Deleted>, ApiError> {
    let deleted = match TokenId::parse(&path.token_id) {
        Ok(id) => s.delete_token(&bot, &id).await?,
        Err(_) => false,
    };
    Ok(Json(Deleted { deleted }))
}
