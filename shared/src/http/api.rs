//! `/v1`: the operator's and the bots' JSON API. Each handler carries its OpenAPI description,
//! and routes are registered through the same descriptions, so the document cannot miss one.

use super::error::{ApiError, ErrorBody};
use super::extract::{AnyCaller, ApiJson, AuthedBot, Operator};
use super::AppState;
use crate::domain::ids::{Alias, BotId, ProviderName, TokenId, UserId};
use crate::domain::integrations::Context;
use crate::domain::providers::{ProviderApp, ProviderAppInput};
use crate::domain::token::Owner;
use crate::domain::upkeep::Health;
use crate::service::{
    AccessTokenView, ConnectionStatus, CreatedBot, FullToken, IntegrationView, MintedLink,
    TokenInfo,
};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

// The identifier rules of `domain::ids` as JSON Schema patterns (`http::tests` checks each
// against its parser). utoipa takes literals only, so the attributes below repeat them.

/// `BotId`.
pub const BOT_ID_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";
/// `Alias` and `ProviderName`.
pub const NAME_PATTERN: &str = "^[a-z0-9_]{1,64}$";
/// `TokenId`.
pub const TOKEN_ID_PATTERN: &str = "^tok_[A-Za-z0-9_-]{24}$";
/// `UserId` (with 1 to 256 characters): no control character (Unicode category Cc).
pub const USER_ID_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$";
/// One `scope` value of the integrations file: scope tokens (printable ASCII but space, `"`
/// and `\`, RFC 6749 section 3.3) separated by commas and/or white space.
pub const SCOPE_PATTERN: &str = "^[!#-\\[\\]-~\\s]*$";

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBot {
    /// 1 to 63 characters of `a-z`, `0-9`, `_`, `-`, starting with a letter or digit.
    #[schema(
        pattern = "^[a-z0-9][a-z0-9_-]{0,62}$",
        min_length = 1,
        max_length = 63,
        example = "acme"
    )]
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
pub struct BotSettings {
    /// Where sign-ins of `confirm: redirect` integrations send the browser, with
    /// `?flow=<flow id>` added: a page of the bot's platform that checks its own signed-in
    /// user and confirms the flow. https (http only on a loopback host), at most 2048
    /// characters, no credentials, fragment or `flow` parameter. `null` removes it.
    #[schema(
        max_length = 2048,
        example = "https://chat.example.com/integrations/confirm"
    )]
    pub confirm_url: Option<String>,
}

/// A bot's settings.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BotSettingsView {
    #[schema(example = "acme")]
    pub bot_id: String,
    pub confirm_url: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowConfirmation {
    /// The platform's signed-in user who came back from the sign-in: must be the user the
    /// link was made for. 1 to 256 characters, no control characters.
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        min_length = 1,
        max_length = 256,
        example = "u-1"
    )]
    pub user_id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct FlowPath {
    /// The flow id the bot's `confirm_url` received (43 base64url characters). Any other
    /// value is answered `404`.
    #[param(
        min_length = 1,
        max_length = 64,
        example = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
    )]
    flow_id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmationCode {
    /// The code the sign-in's page showed, as the user typed it in the chat.
    #[schema(
        pattern = "^[0-9]{6}$",
        min_length = 6,
        max_length = 6,
        example = "042917"
    )]
    pub code: String,
}

/// The token a confirmation stored.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConfirmedToken {
    #[schema(example = "google")]
    pub alias: String,
    #[schema(example = "tok_T2sgdGhpcyBpcyBub3RhcmVh")]
    pub token_id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    /// An alias of the bot's integrations file.
    #[schema(
        pattern = "^[a-z0-9_]{1,64}$",
        min_length = 1,
        max_length = 64,
        example = "google"
    )]
    pub alias: String,
    /// The user who will connect, for a user-context alias; leave it out (or `null`) for a
    /// bot-context alias. 1 to 256 characters, no control characters.
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        min_length = 1,
        max_length = 256,
        example = "u-1"
    )]
    pub user_id: Option<String>,
    /// Per-connection values the provider needs (`{"subdomain": "acme"}` for Zendesk, `{"shop":
    /// "acme"}` for Shopify), over those of the integrations file: names and patterns as
    /// `GET /v1/catalog` lists them with `scope: connection`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenMap {
    /// alias → token id
    pub tokens: BTreeMap<String, String>,
}

/// `{bot_id}`: a bot id that cannot exist is answered like a missing bot (`404`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct BotPath {
    /// The bot's id: 1 to 63 characters of `a-z`, `0-9`, `_`, `-`, starting with a letter
    /// or digit. Any other value is answered `404`.
    #[param(
        pattern = "^[a-z0-9][a-z0-9_-]{0,62}$",
        min_length = 1,
        max_length = 63,
        example = "acme"
    )]
    bot_id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ProviderPath {
    /// A provider of the catalog (`google`, `github`, ...) or a custom one: 1 to 64
    /// characters of `a-z`, `0-9`, `_`. Any other value is answered `422`.
    #[param(
        pattern = "^[a-z0-9_]{1,64}$",
        min_length = 1,
        max_length = 64,
        example = "github"
    )]
    name: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct UserPath {
    /// The bot's user id, percent-encoded: 1 to 256 characters, no control characters. Any
    /// other value is answered `404`.
    #[param(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        min_length = 1,
        max_length = 256,
        example = "u-1"
    )]
    user_id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct TokenPath {
    /// A token id: `tok_` and 24 base64url characters. Any other value is answered like an
    /// unknown token.
    #[param(
        pattern = "^tok_[A-Za-z0-9_-]{24}$",
        min_length = 28,
        max_length = 28,
        example = "tok_T2sgdGhpcyBpcyBub3RhcmVh"
    )]
    token_id: String,
}

/// `{token_id}` of `DELETE`, which answers `deleted: false` for any value that is not one of
/// the bot's tokens.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct DeletedTokenPath {
    /// A token id (`tok_` and 24 base64url characters). Any other value is answered
    /// `deleted: false`, like an unknown token.
    #[param(min_length = 1, example = "tok_T2sgdGhpcyBpcyBub3RhcmVh")]
    token_id: String,
}

/// A path value that cannot be read (not UTF-8 once percent-decoded) is checked as an empty
/// one, which no identifier rule accepts.
fn path_value<T>(p: Result<Path<T>, PathRejection>, field: impl FnOnce(T) -> String) -> String {
    p.map(|Path(v)| field(v)).unwrap_or_default()
}

/// A token id that cannot exist is answered like a missing token.
fn token_id(p: Result<Path<TokenPath>, PathRejection>) -> Result<TokenId, ApiError> {
    TokenId::parse(&path_value(p, |t| t.token_id)).map_err(|_| ApiError::NotFound("token"))
}

/// The body of `PUT /v1/bots/{bot_id}/integrations`, as YAML or JSON. Documentation only:
/// the file is read by `domain::integrations::parse_integrations`, which reports problems
/// with their line and column.
pub struct IntegrationsFile;

/// One entry of [`IntegrationsFile`].
pub struct IntegrationEntry;

impl PartialSchema for IntegrationEntry {
    fn schema() -> RefOr<Schema> {
        let name = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(NAME_PATTERN))
                .min_length(Some(1))
                .max_length(Some(64))
                .description(Some(description))
        };
        let scope = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(SCOPE_PATTERN))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "One integration. Format and examples: docs/integrations.md.",
            ))
            .property(
                "provider",
                name("A provider of the catalog or one the operator registered.")
                    .examples(["google"]),
            )
            .required("provider")
            .property(
                "alias",
                name(
                    "The name the bot uses for this integration; defaults to the provider. \
                     Unique within the file.",
                ),
            )
            .property(
                "scope",
                OneOfBuilder::new()
                    .description(Some(
                        "Scopes to ask for: one string separated by commas and/or white space \
                         (`email,profile`), or a list of such strings. At most 50 scopes of at \
                         most 256 characters each.",
                    ))
                    .item(scope())
                    .item(ArrayBuilder::new().items(scope())),
            )
            .property("context", Ref::from_schema_name(Context::name()))
            .required("context")
            .property(
                "confirm",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["none", "code", "redirect"]))
                    .description(Some(
                        "`code` (user context only): the token is stored once the user types                          the code the sign-in page shows in the chat and the bot sends it to                          `POST /v1/bots/{bot_id}/users/{user_id}/confirmations`. Default `none`.",
                    )),
            )
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .into()
    }
}

impl ToSchema for IntegrationEntry {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("IntegrationEntry")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Context::name().into_owned(), Context::schema()));
    }
}

impl PartialSchema for IntegrationsFile {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
            .description(Some(
                "The integrations file: a list of entries (JSON is YAML too). An empty file, \
                 or `null`, means no integrations.",
            ))
            .max_items(Some(crate::domain::integrations::MAX_ENTRIES))
            .items(Ref::from_schema_name(IntegrationEntry::name()))
            .into()
    }
}

impl ToSchema for IntegrationsFile {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("IntegrationsFile")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            IntegrationEntry::name().into_owned(),
            IntegrationEntry::schema(),
        ));
        IntegrationEntry::schemas(schemas);
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

/// The `/v1` routes as the functions serve them, without building their OpenAPI document
/// (which [`router`] builds from the same handlers, for `/openapi.json` and the tests; a test
/// holds the two to the same operations).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{any, get, post, put};
    axum::Router::new()
        .route("/v1/admin/bots", post(create_bot))
        .route("/v1/admin/bots/{bot_id}/api-key", post(rotate_bot_key))
        .route("/v1/admin/bots/{bot_id}", put(put_bot_settings))
        .route("/v1/admin/providers/{name}", put(put_provider))
        .route("/v1/admin/providers", get(list_providers))
        .route("/v1/catalog", get(list_catalog))
        .route(
            "/v1/bots/{bot_id}/integrations",
            put(put_integrations).get(get_integrations),
        )
        .route("/v1/bots/{bot_id}/oauth-links", post(create_oauth_link))
        .route("/v1/bots/{bot_id}/connect-links", post(create_connect_link))
        .route("/v1/bots/{bot_id}/tokens", get(bot_tokens))
        .route("/v1/bots/{bot_id}/users/{user_id}/tokens", get(user_tokens))
        .route(
            "/v1/bots/{bot_id}/users/{user_id}/confirmations",
            post(confirm_code),
        )
        .route(
            "/v1/bots/{bot_id}/flows/{flow_id}/confirm",
            post(confirm_flow),
        )
        .route("/v1/bots/{bot_id}/tokens/{token_id}/info", get(token_info))
        .route(
            "/v1/bots/{bot_id}/tokens/{token_id}/status",
            get(token_status),
        )
        .route("/v1/bots/{bot_id}/connections", get(connections))
        .route(
            "/v1/bots/{bot_id}/tokens/{token_id}/proxy/{*path}",
            any(proxy_call),
        )
        .route(
            "/v1/bots/{bot_id}/tokens/{token_id}/access-token",
            get(access_token),
        )
        .route(
            "/v1/bots/{bot_id}/tokens/{token_id}",
            get(full_token).delete(delete_token),
        )
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_bot))
        .routes(routes!(rotate_bot_key))
        .routes(routes!(put_bot_settings))
        .routes(routes!(put_provider))
        .routes(routes!(list_providers))
        .routes(routes!(list_catalog))
        .routes(routes!(put_integrations, get_integrations))
        .routes(routes!(create_oauth_link))
        .routes(routes!(create_connect_link))
        .routes(routes!(bot_tokens))
        .routes(routes!(user_tokens))
        .routes(routes!(confirm_code))
        .routes(routes!(confirm_flow))
        .routes(routes!(token_info))
        .routes(routes!(token_status))
        .routes(routes!(connections))
        .routes(routes!(proxy_call))
        .routes(routes!(access_token))
        .routes(routes!(full_token, delete_token))
}

/// A provider of the built-in catalog, as `GET /v1/catalog` lists it.
#[derive(Serialize, ToSchema)]
pub struct CatalogProvider {
    /// What the integrations file names in `provider:`.
    pub name: String,
    pub display_name: String,
    pub category: String,
    pub kind: crate::domain::catalog::CredentialKind,
    pub docs_url: String,
    /// The provider issues refresh tokens (the service refreshes on its own).
    pub refresh: bool,
    /// Values the app (`scope: app`, set with the registration's `params`) or each
    /// connection (`scope: connection`) must give.
    pub params: Vec<CatalogParam>,
    /// For `api_key` and `basic`: what is entered.
    pub credential_fields: Vec<CatalogField>,
    /// A pinned API version and its published end of life.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_of_life: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CatalogParam {
    pub name: String,
    pub scope: crate::domain::catalog::ParamScope,
    pub label: String,
    /// A regular expression the whole value must match.
    pub pattern: String,
    pub default: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CatalogField {
    pub name: String,
    pub label: String,
}

#[derive(Serialize, ToSchema)]
pub struct CatalogList {
    pub providers: Vec<CatalogProvider>,
}

/// Every provider the service knows without endpoints from the operator.
#[utoipa::path(get, path = "/v1/catalog", tag = "catalog", security(("admin_key" = []), ("bot_key" = [])),
    responses(
        (status = 200, body = CatalogList, description = "The built-in providers, by name"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key")))]
async fn list_catalog(_: AnyCaller) -> Json<CatalogList> {
    let providers = crate::domain::catalog::catalog()
        .iter()
        .map(|e| CatalogProvider {
            name: e.name.clone(),
            display_name: e.display_name.clone(),
            category: e.category.clone(),
            kind: e.kind,
            docs_url: e.docs_url.clone(),
            refresh: e.refresh,
            params: e
                .params
                .iter()
                .map(|p| CatalogParam {
                    name: p.name.clone(),
                    scope: p.scope,
                    label: p.label.clone(),
                    pattern: p.pattern.clone(),
                    default: p.default.clone(),
                })
                .collect(),
            credential_fields: e
                .credential
                .iter()
                .flat_map(|c| &c.fields)
                .map(|f| CatalogField {
                    name: f.name.clone(),
                    label: f.label.clone(),
                })
                .collect(),
            api_version: e.api_version.as_ref().map(|v| v.version.clone()),
            end_of_life: e.api_version.as_ref().and_then(|v| v.end_of_life.clone()),
        })
        .collect();
    Json(CatalogList { providers })
}

/// Create a bot; its API key is shown once.
#[utoipa::path(post, path = "/v1/admin/bots", tag = "operator", security(("admin_key" = [])),
    request_body = CreateBot,
    responses(
        (status = 201, body = CreatedBot, description = "The bot and its API key, shown this once"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong admin key"),
        (status = 409, body = ErrorBody, description = "`bot_exists`: the id is taken"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_value` (bot_id) or `invalid_body`")))]
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
    params(BotPath),
    responses(
        (status = 200, body = ApiKey, description = "The new key, shown this once"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong admin key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot")))]
async fn rotate_bot_key(
    State(s): State<AppState>,
    _: Operator,
    bot: Result<Path<BotPath>, PathRejection>,
) -> Result<Json<ApiKey>, ApiError> {
    let bot =
        BotId::parse(&path_value(bot, |b| b.bot_id)).map_err(|_| ApiError::NotFound("bot"))?;
    Ok(Json(ApiKey {
        api_key: s.rotate_bot_key(&bot).await?,
    }))
}

/// Set a bot's settings: its `confirm_url`.
#[utoipa::path(put, path = "/v1/admin/bots/{bot_id}", tag = "operator", security(("admin_key" = [])),
    params(BotPath), request_body = BotSettings,
    responses(
        (status = 200, body = BotSettingsView, description = "The bot's settings"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong admin key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_value`: `confirm_url` breaks its rule; or `invalid_body`")))]
async fn put_bot_settings(
    State(s): State<AppState>,
    _: Operator,
    bot: Result<Path<BotPath>, PathRejection>,
    ApiJson(body): ApiJson<BotSettings>,
) -> Result<Json<BotSettingsView>, ApiError> {
    let bot =
        BotId::parse(&path_value(bot, |b| b.bot_id)).map_err(|_| ApiError::NotFound("bot"))?;
    let url = s.set_confirm_url(&bot, body.confirm_url.as_deref()).await?;
    Ok(Json(BotSettingsView {
        bot_id: bot.to_string(),
        confirm_url: url.map(String::from),
    }))
}

/// Register or replace a provider app (client secret sealed, never returned).
#[utoipa::path(put, path = "/v1/admin/providers/{name}", tag = "operator", security(("admin_key" = [])),
    params(ProviderPath), request_body = ProviderAppInput,
    responses(
        (status = 200, body = ProviderApp, description = "The registered app, endpoints resolved, without the secret"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong admin key"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody,
         description = "`invalid_value` (name), `invalid_provider`, `discovery_failed` or `invalid_body`")))]
async fn put_provider(
    State(s): State<AppState>,
    _: Operator,
    name: Result<Path<ProviderPath>, PathRejection>,
    ApiJson(input): ApiJson<ProviderAppInput>,
) -> Result<Json<ProviderApp>, ApiError> {
    let name = ProviderName::parse(&path_value(name, |p| p.name)).map_err(unprocessable)?;
    Ok(Json(s.put_provider(&name, input).await?))
}

/// List the registered provider apps, without secrets.
#[utoipa::path(get, path = "/v1/admin/providers", tag = "operator", security(("admin_key" = [])),
    responses(
        (status = 200, body = ProviderList, description = "Every registered app, by name"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong admin key")))]
async fn list_providers(
    State(s): State<AppState>,
    _: Operator,
) -> Result<Json<ProviderList>, ApiError> {
    Ok(Json(ProviderList {
        providers: s.providers().await?,
    }))
}

/// The media types of the integrations file: YAML under its usual names, and JSON, which is
/// YAML too and goes through the same parser (so problems carry the same line and column).
const INTEGRATIONS_MEDIA_TYPES: [&str; 5] = [
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "application/json",
];

/// Replace the bot's integrations file, as YAML or JSON. A rejected file changes nothing.
///
/// The body is the file itself: `Content-Type: application/yaml` (also `application/x-yaml`,
/// `text/yaml`, `text/x-yaml`) for the YAML file, or `application/json` for the same list as
/// JSON. Both are read by the same YAML parser, so a refused file's `details` give the line
/// and column of each problem either way.
#[utoipa::path(put, path = "/v1/bots/{bot_id}/integrations", tag = "bot", security(("bot_key" = [])),
    params(BotPath),
    request_body(
        description = "The integrations file (docs/integrations.md), as YAML or as JSON",
        content(
            (IntegrationsFile = "application/yaml",
             example = json!([{"provider": "google", "scope": "email", "context": "user"}])),
            (IntegrationsFile = "application/json",
             example = json!([{"provider": "google", "scope": "email", "context": "user"}])))),
    responses(
        (status = 200, body = IntegrationList, description = "The accepted file, as stored"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot, or another bot's"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: neither YAML nor JSON"),
        (status = 422, body = ErrorBody,
         description = "`invalid_integrations`: every problem in `details`, with its line and column")))]
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
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !INTEGRATIONS_MEDIA_TYPES.contains(&essence.as_str()) {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/yaml or application/json",
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
    params(BotPath),
    responses(
        (status = 200, body = IntegrationList, description = "The file, with connection state"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot, or another bot's"),
        (status = 503, body = ErrorBody,
         description = "`service_unavailable`: the service's store is unavailable; nothing was deleted and no event written. See Retry-After",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))))]
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
    params(BotPath), request_body = CreateLink,
    responses(
        (status = 201, body = MintedLink, description = "The link to show that user"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot, or another bot's"),
        (status = 409, body = ErrorBody,
         description = "`provider_not_configured`: the alias's provider has no registered app"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody,
         description = "`unknown_alias`, `user_id_required`, `user_id_not_allowed`, `invalid_params`, `invalid_value` or `invalid_body`")))]
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
        Json(s.create_link_with(&bot, &alias, user, body.params).await?),
    ))
}

/// A short-lived link to the connect page, where the bot builder connects bot-context
/// integrations.
#[utoipa::path(post, path = "/v1/bots/{bot_id}/connect-links", tag = "bot", security(("bot_key" = [])),
    params(BotPath),
    responses(
        (status = 201, body = MintedLink, description = "The connect page's link, for the bot's builder"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot, or another bot's")))]
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
    params(BotPath),
    responses(
        (status = 200, body = TokenMap, description = "alias → token id"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot, or another bot's")))]
async fn bot_tokens(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
) -> Result<Json<TokenMap>, ApiError> {
    Ok(Json(token_map(s.tokens_of(&bot, &Owner::Bot).await?)))
}

/// `user.tokens`: alias → token id of one user's tokens.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/users/{user_id}/tokens", tag = "bot", security(("bot_key" = [])),
    params(BotPath, UserPath),
    responses(
        (status = 200, body = TokenMap, description = "alias → token id; empty for a user without tokens"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody,
         description = "`not_found`: no such bot, or another bot's, or a user id that breaks the rule")))]
async fn user_tokens(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    user_path: Result<Path<UserPath>, PathRejection>,
) -> Result<Json<TokenMap>, ApiError> {
    let user = UserId::parse(&path_value(user_path, |u| u.user_id))
        .map_err(|_| ApiError::NotFound("user"))?;
    Ok(Json(token_map(
        s.tokens_of(&bot, &Owner::User(user)).await?,
    )))
}

/// Confirms a sign-in of an integration with `confirm: code`: the code the user typed in the
/// chat. The token is then stored and `token:<alias>` sent.
#[utoipa::path(post, path = "/v1/bots/{bot_id}/users/{user_id}/confirmations", tag = "bot", security(("bot_key" = [])),
    params(BotPath, UserPath), request_body = ConfirmationCode,
    responses(
        (status = 200, body = ConfirmedToken, description = "The sign-in's token is stored under this user"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody,
         description = "`not_found`: no such bot, or another bot's, or a user id that breaks the rule"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody,
         description = "`invalid_confirmation_code`: no sign-in of this user waits for this code (the fifth wrong code drops a waiting sign-in), or `invalid_body`")))]
async fn confirm_code(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    user_path: Result<Path<UserPath>, PathRejection>,
    ApiJson(body): ApiJson<ConfirmationCode>,
) -> Result<Json<ConfirmedToken>, ApiError> {
    let user = UserId::parse(&path_value(user_path, |u| u.user_id))
        .map_err(|_| ApiError::NotFound("user"))?;
    let done = s.confirm_code(&bot, &user, body.code.trim()).await?;
    Ok(Json(ConfirmedToken {
        alias: done.alias.to_string(),
        token_id: done.token_id.to_string(),
    }))
}

/// Confirms a sign-in of an integration with `confirm: redirect`: the bot's platform names
/// its signed-in user who arrived at `confirm_url?flow=<flow_id>`. The token is then stored
/// and `token:<alias>` sent.
#[utoipa::path(post, path = "/v1/bots/{bot_id}/flows/{flow_id}/confirm", tag = "bot", security(("bot_key" = [])),
    params(BotPath, FlowPath), request_body = FlowConfirmation,
    responses(
        (status = 200, body = ConfirmedToken, description = "The sign-in's token is stored under this user"),
        (status = 400, body = ErrorBody, description = "`malformed_json`: the body is not JSON"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody,
         description = "`not_found`: no such bot, or another bot's; no sign-in waits under this flow id (unknown, already confirmed, or expired)"),
        (status = 409, body = ErrorBody,
         description = "`user_mismatch`: the link was made for another user; the sign-in is dropped and its grant revoked"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: body over 64 KiB"),
        (status = 415, body = ErrorBody, description = "`unsupported_media_type`: not `application/json`"),
        (status = 422, body = ErrorBody, description = "`invalid_value`: a `user_id` that breaks the rule; or `invalid_body`")))]
async fn confirm_flow(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    flow: Result<Path<FlowPath>, PathRejection>,
    ApiJson(body): ApiJson<FlowConfirmation>,
) -> Result<Json<ConfirmedToken>, ApiError> {
    let user = UserId::parse(&body.user_id).map_err(unprocessable)?;
    let flow_id = path_value(flow, |f| f.flow_id);
    let done = s.confirm_flow(&bot, &flow_id, &user).await?;
    Ok(Json(ConfirmedToken {
        alias: done.alias.to_string(),
        token_id: done.token_id.to_string(),
    }))
}

/// `get_token_info`: what the provider said about the user.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/tokens/{token_id}/info", tag = "bot", security(("bot_key" = [])),
    params(BotPath, TokenPath),
    responses(
        (status = 200, body = TokenInfo,
         description = "The user's profile (fields the provider did not give are null), and `reconnect_by` when the grant's end is known"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot or token, or another bot's")))]
async fn token_info(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    token: Result<Path<TokenPath>, PathRejection>,
) -> Result<Json<TokenInfo>, ApiError> {
    Ok(Json(s.token_info(&bot, &token_id(token)?).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProxyPath {
    /// The token's id.
    pub token_id: String,
    /// The provider API's path under its base URL, with its own `/`s (`users/me`,
    /// `v1/charges`); `.`/`..` segments, encoded slashes and absolute URLs are refused. The
    /// query string is passed on as it is.
    pub path: String,
}

/// `X-Integrations-Max-Retry-Seconds`.
const MAX_RETRY_HEADER: &str = "x-integrations-max-retry-seconds";

/// Calls the provider's API with the token's credential, so the bot never holds it: the
/// request goes to the provider's API base URL plus `{path}` and the query string, with the
/// credential placed as that provider expects and the bot's own `Authorization`, cookies and
/// hop-by-hop headers removed. A `401` from the provider refreshes a renewable token once and
/// replays the call once; `429` and `503` are passed on with `Retry-After`, and idempotent
/// calls (`GET`, `HEAD`, `OPTIONS`, `PUT`, `DELETE`, or with an `Idempotency-Key`) are retried
/// first within 10 s, or `X-Integrations-Max-Retry-Seconds` if lower. No redirect is
/// followed. Request bodies up to 4 MiB.
#[utoipa::path(method(get, post, put, patch, delete), path = "/v1/bots/{bot_id}/tokens/{token_id}/proxy/{path}", tag = "bot", security(("bot_key" = [])),
    params(BotPath, ProxyPath,
        ("x-integrations-max-retry-seconds" = Option<u64>, Header, description = "Lowers the time rate-limited idempotent calls are retried (0 to 10 s)")),
    responses(
        (status = 200, description = "The provider's answer, whatever its status, with its headers (less hop-by-hop ones and `Set-Cookie`) and body",
         headers(("X-Integrations-Token-Status" = String, description = "`valid`, or `refreshed` when the token was refreshed for this call"))),
        (status = 400, body = ErrorBody, description = "`invalid_path`: the path climbs out of the base path, has encoded slashes or is absolute; `invalid_request`: a bad `X-Integrations-Max-Retry-Seconds`"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot or token, or another bot's"),
        (status = 409, body = ErrorBody, description = "`token_revoked` / `token_expired`: the token cannot be made valid (connect again); `no_api_base_url`: the provider has no API base URL (the operator can set `api_base_url`)"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`: the request body is over 4 MiB"),
        (status = 502, body = ErrorBody, description = "`provider_unreachable`: the provider's API did not answer; `response_too_large`: its answer is over the limit"),
        (status = 503, body = ErrorBody, description = "`provider_unavailable`: the token's refresh could not be done now")))]
async fn proxy_call(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::Method;
    if !matches!(
        method,
        Method::GET
            | Method::HEAD
            | Method::OPTIONS
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
    ) {
        let mut refused = axum::response::IntoResponse::into_response(ApiError::MethodNotAllowed {
            method: method.to_string(),
        });
        refused.headers_mut().insert(
            header::ALLOW,
            axum::http::HeaderValue::from_static("GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE"),
        );
        return Ok(refused);
    }
    // From the URI as sent: the path keeps its percent-encoding, so encoded slashes are seen.
    let mut parts = uri.path().splitn(7, '/');
    let token = parts.nth(5).unwrap_or_default().to_owned();
    let path = parts
        .next()
        .and_then(|rest| rest.strip_prefix("proxy/"))
        .unwrap_or_default()
        .to_owned();
    let id = TokenId::parse(&token).map_err(|_| ApiError::NotFound("token"))?;
    let retry_budget = match headers.get(MAX_RETRY_HEADER) {
        None => crate::service::MAX_RETRY_BUDGET,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| std::time::Duration::from_secs(secs).min(crate::service::MAX_RETRY_BUDGET))
            .ok_or_else(|| ApiError::BadRequest {
                code: "invalid_request",
                message: "X-Integrations-Max-Retry-Seconds must be a whole number of seconds"
                    .into(),
            })?,
    };
    let limit = crate::service::MAX_PROXY_REQUEST_BYTES;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?;
    let call = crate::service::ProxyCall {
        method,
        path,
        query: uri.query().map(str::to_owned),
        headers,
        body,
        retry_budget,
    };
    let answer = s.proxy(&bot, &id, call).await?;
    let mut resp = axum::response::Response::new(axum::body::Body::from_stream(answer.body));
    *resp.status_mut() = answer.status;
    *resp.headers_mut() = answer.headers;
    Ok(resp)
}

/// A connection's health: what the service knows of it without calling the provider.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/tokens/{token_id}/status", tag = "bot", security(("bot_key" = [])),
    params(BotPath, TokenPath),
    responses(
        (status = 200, body = ConnectionStatus,
         description = "`valid`, `expiring` (the grant ends at `reconnect_by`, which no refresh moves), `expired` or `revoked`; the last refresh and its error"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot or token, or another bot's")))]
async fn token_status(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    token: Result<Path<TokenPath>, PathRejection>,
) -> Result<Json<ConnectionStatus>, ApiError> {
    Ok(Json(s.token_status(&bot, &token_id(token)?).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionsQuery {
    /// Only connections in this state.
    #[param(value_type = Option<Health>)]
    pub status: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionStatus>,
}

/// Every connection of the bot (bot and user context) with its health, for a dashboard or a
/// job that asks users to reconnect.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/connections", tag = "bot", security(("bot_key" = [])),
    params(BotPath, ConnectionsQuery),
    responses(
        (status = 200, body = ConnectionList, description = "The bot's connections, by user and alias"),
        (status = 400, body = ErrorBody, description = "`invalid_request`: an unknown `status`"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot, or another bot's")))]
async fn connections(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    query: Result<Query<ConnectionsQuery>, QueryRejection>,
) -> Result<Json<ConnectionList>, ApiError> {
    let bad = || ApiError::BadRequest {
        code: "invalid_request",
        message: "status must be one of valid, expiring, expired, revoked".into(),
    };
    let Query(q) = query.map_err(|_| bad())?;
    let only = match q.status.as_deref() {
        None => None,
        Some(raw) => Some(Health::parse(raw).ok_or_else(bad)?),
    };
    Ok(Json(ConnectionList {
        connections: s.connections(&bot, only).await?,
    }))
}

/// `get_access_token`: a usable access token, refreshed first when it is due.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/tokens/{token_id}/access-token", tag = "bot", security(("bot_key" = [])),
    params(BotPath, TokenPath),
    responses(
        (status = 200, body = AccessTokenView,
         description = "`valid` with the token, or `expired` / `revoked` with `access_token: null`"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot or token, or another bot's"),
        (status = 409, body = ErrorBody,
         description = "`provider_not_configured`: the token's provider has no registered app"),
        (status = 502, body = ErrorBody, description = "`provider_error`: the provider's refresh answer was unusable"),
        (status = 503, body = ErrorBody,
         description = "`provider_unavailable`: the provider is unavailable, or another caller is still refreshing; `service_unavailable`: the service's store or key service is unavailable. See Retry-After",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))))]
async fn access_token(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    token: Result<Path<TokenPath>, PathRejection>,
) -> Result<Json<AccessTokenView>, ApiError> {
    Ok(Json(s.access_token(&bot, &token_id(token)?).await?))
}

/// `get_full_token`: the whole token, shaped like `%Ueberauth.Auth{}`.
#[utoipa::path(get, path = "/v1/bots/{bot_id}/tokens/{token_id}", tag = "bot", security(("bot_key" = [])),
    params(BotPath, TokenPath),
    responses(
        (status = 200, body = FullToken, description = "The token with its credentials, including the refresh token"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot or token, or another bot's")))]
async fn full_token(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    token: Result<Path<TokenPath>, PathRejection>,
) -> Result<Json<FullToken>, ApiError> {
    Ok(Json(s.full_token(&bot, &token_id(token)?).await?))
}

/// `delete_token`: revokes the grant at the provider, then removes the token; the
/// `token_deleted` event says how the revocation went.
#[utoipa::path(delete, path = "/v1/bots/{bot_id}/tokens/{token_id}", tag = "bot", security(("bot_key" = [])),
    params(BotPath, DeletedTokenPath),
    responses(
        (status = 200, body = Deleted,
         description = "`deleted: false` when this bot has no such token, including a malformed id"),
        (status = 401, body = ErrorBody, description = "`unauthorized`: missing or wrong key"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such bot, or another bot's")))]
async fn delete_token(
    State(s): State<AppState>,
    AuthedBot(bot): AuthedBot,
    token: Result<Path<DeletedTokenPath>, PathRejection>,
) -> Result<Json<Deleted>, ApiError> {
    let deleted = match TokenId::parse(&path_value(token, |t| t.token_id)) {
        Ok(id) => s.delete_token(&bot, &id).await?,
        Err(_) => false,
    };
    Ok(Json(Deleted { deleted }))
}
