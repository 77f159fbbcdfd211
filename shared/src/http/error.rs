//! The one error type of `/v1`: every 4xx/5xx is `{"error": {"code", "message", "details"}}`.
//! 5xx answers say nothing of internals; they carry the request id, and the cause goes to the log.

use crate::domain::integrations::YamlIssue;
use crate::ports::{SealError, StoreError};
use crate::service::ServiceError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API key is required")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        details: Vec<YamlIssue>,
    },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("expected Content-Type {expected}")]
    UnsupportedMediaType { expected: &'static str },
    /// A known path with a method it does not have; `Allow` lists the ones it has.
    #[error("this path does not support the {method} method")]
    MethodNotAllowed { method: String },
    #[error("the request URI is longer than {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("the request headers are larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("the provider is unavailable")]
    Unavailable { retry_after: u64 },
    /// The service's own store or key service failed; what the request would have written
    /// was not written.
    #[error("the service's storage or key service is unavailable; nothing was changed")]
    DependencyUnavailable { retry_after: u64 },
    #[error("the provider failed")]
    BadGateway,
    /// A proxied call's provider API failed in a way the bot cannot fix by asking again
    /// differently: unreachable, or an answer too large to pass on.
    #[error("{message}")]
    Gateway { code: &'static str, message: String },
    #[error("internal error")]
    Internal,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case.
    pub code: String,
    pub message: String,
    pub details: Vec<YamlIssue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Unavailable { .. } | ApiError::DependencyUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::BadGateway | ApiError::Gateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Gateway { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::UriTooLong { .. } => "uri_too_long",
            ApiError::HeadersTooLarge { .. } => "headers_too_large",
            ApiError::Unavailable { .. } => "provider_unavailable",
            ApiError::DependencyUnavailable { .. } => "service_unavailable",
            ApiError::BadGateway => "provider_error",
            ApiError::Internal => "internal_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let details = match &self {
            ApiError::Unprocessable { details, .. } => details.clone(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                details,
                request_id: status.is_server_error().then(current_request_id).flatten(),
            },
        };
        let mut resp = (status, Json(body)).into_response();
        match self {
            ApiError::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable { retry_after }
            | ApiError::DependencyUnavailable { retry_after } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// The one table from what a use case answered to status and `code`.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let message = e.to_string();
        match e {
            ServiceError::BotNotFound => ApiError::NotFound("bot"),
            ServiceError::TokenNotFound => ApiError::NotFound("token"),
            ServiceError::BotExists(_) => ApiError::Conflict {
                code: "bot_exists",
                message,
            },
            ServiceError::ProviderNotConfigured(_) => ApiError::Conflict {
                code: "provider_not_configured",
                message,
            },
            ServiceError::ConcurrentConnect => ApiError::Conflict {
                code: "concurrent_connect",
                message,
            },
            ServiceError::UnknownAlias(_) => unprocessable("unknown_alias", message),
            ServiceError::InvalidParams(_) => unprocessable("invalid_params", message),
            ServiceError::UserIdRequired(_) => unprocessable("user_id_required", message),
            ServiceError::UserIdNotAllowed(_) => unprocessable("user_id_not_allowed", message),
            ServiceError::InvalidProvider(_) => unprocessable("invalid_provider", message),
            ServiceError::DiscoveryFailed(_) => unprocessable("discovery_failed", message),
            ServiceError::InvalidConfirmationCode => {
                unprocessable("invalid_confirmation_code", message)
            }
            ServiceError::InvalidConfirmUrl(_) => unprocessable("invalid_value", message),
            ServiceError::ConfirmUrlNotSet(_) => ApiError::Conflict {
                code: "confirm_url_not_set",
                message,
            },
            ServiceError::UserMismatch => ApiError::Conflict {
                code: "user_mismatch",
                message,
            },
            ServiceError::FlowNotFound => ApiError::NotFound("flow"),
            ServiceError::InvalidIntegrations(details) => ApiError::Unprocessable {
                code: "invalid_integrations",
                message,
                details,
            },
            ServiceError::ProviderUnavailable { retry_after } => {
                ApiError::Unavailable { retry_after }
            }
            ServiceError::Provider(source) => {
                tracing::error!(error = %source, "provider call failed");
                ApiError::BadGateway
            }
            ServiceError::Store(ref source) => {
                tracing::error!(error = %source, cause = ?std::error::Error::source(source).map(ToString::to_string), "store failed");
                match source {
                    StoreError::Unavailable(_) => {
                        ApiError::DependencyUnavailable { retry_after: 2 }
                    }
                    StoreError::Corrupt(_) => ApiError::Internal,
                }
            }
            ServiceError::Seal(ref source) => {
                tracing::error!(error = %source, cause = ?std::error::Error::source(source).map(ToString::to_string), "sealing failed");
                match source {
                    SealError::Unavailable(_) => ApiError::DependencyUnavailable { retry_after: 2 },
                    _ => ApiError::Internal,
                }
            }
            ServiceError::Decode(_) => {
                tracing::error!("stored data could not be decoded");
                ApiError::Internal
            }
            ServiceError::TokenRevoked => ApiError::Conflict {
                code: "token_revoked",
                message,
            },
            ServiceError::TokenExpired => ApiError::Conflict {
                code: "token_expired",
                message,
            },
            ServiceError::ProxyPath(_) => ApiError::BadRequest {
                code: "invalid_path",
                message,
            },
            ServiceError::ProxyRequest(_) => ApiError::BadRequest {
                code: "invalid_request",
                message,
            },
            ServiceError::NoApiBase(_) => ApiError::Conflict {
                code: "no_api_base_url",
                message,
            },
            ServiceError::ProxyBodyTooLarge { limit } => ApiError::PayloadTooLarge { limit },
            ServiceError::ApiUnreachable => ApiError::Gateway {
                code: "provider_unreachable",
                message,
            },
            ServiceError::ApiAnswerTooLarge { .. } => ApiError::Gateway {
                code: "response_too_large",
                message,
            },
        }
    }
}

fn unprocessable(code: &'static str, message: String) -> ApiError {
    ApiError::Unprocessable {
        code,
        message,
        details: Vec::new(),
    }
}
