//! The one error type of the HTTP boundary, and its single mapping to status and JSON body.

use serde_json::json;
use thiserror::Error;

use crate::auth::AuthError;
use crate::config::ConfigError;
use crate::history::HistoryError;
use crate::http::HttpResponse;
use crate::platform::StoreError;
use crate::rate_limit::Decision;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method {method} is not allowed here; use {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    #[error("too many failed authentications from this address; retry in {retry_after_s} s")]
    AuthFailuresExceeded { retry_after_s: u64 },
    #[error("{0}")]
    Forbidden(String),
    #[error("rate limit exceeded; retry in {} s", .0.retry_after_s)]
    RateLimited(Decision),
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is {size} bytes; the limit is {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// A request OpenAI's API would refuse with 400, naming the parameter at fault (`/v1`).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        param: Option<String>,
    },
    /// A `model` the edge does not serve (`/v1`).
    #[error("the model `{0}` does not exist or you do not have access to it")]
    ModelNotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// The adapter could not build the app from its configuration: every request says so.
    #[error("edge configuration error: {0}")]
    Configuration(#[from] ConfigError),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// HTTP status, error type and machine-readable code.
    pub fn parts(&self) -> (u16, &'static str, &'static str) {
        match self {
            Self::NotFound(_) => (404, "not_found_error", "route_not_found"),
            Self::MethodNotAllowed { .. } => (405, "invalid_request_error", "method_not_allowed"),
            Self::Unauthenticated(e) => (401, "authentication_error", e.code()),
            Self::AuthFailuresExceeded { .. } => {
                (429, "rate_limit_error", "auth_failures_exceeded")
            }
            Self::Forbidden(_) => (403, "permission_error", "forbidden"),
            Self::RateLimited(_) => (429, "rate_limit_error", "rate_limit_exceeded"),
            Self::UnsupportedMediaType => (415, "invalid_request_error", "unsupported_media_type"),
            Self::PayloadTooLarge { .. } => (413, "invalid_request_error", "payload_too_large"),
            Self::InvalidJson(_) => (400, "invalid_request_error", "invalid_json"),
            Self::Invalid { code, .. } => (422, "invalid_request_error", code),
            Self::BadRequest { code, .. } => (400, "invalid_request_error", code),
            Self::ModelNotFound(_) => (404, "invalid_request_error", "model_not_found"),
            Self::Store(_) => (503, "service_unavailable_error", "store_unavailable"),
            Self::History(e) => (500, "server_error", e.code()),
            Self::Internal(_) => (500, "server_error", "internal"),
            Self::Configuration(_) => (500, "server_error", "configuration_error"),
        }
    }

    /// The parameter at fault, where there is one (OpenAI's `param`).
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::BadRequest { param, .. } => param.as_deref(),
            Self::ModelNotFound(_) => Some("model"),
            _ => None,
        }
    }

    /// As OpenAI's API answers a request it refuses: a body that is not a valid request is
    /// 400 there, where the Eindr API says 422.
    pub fn for_openai(self) -> Self {
        match self {
            Self::Invalid { code, message } => Self::BadRequest {
                code,
                message,
                param: None,
            },
            other => other,
        }
    }

    pub fn to_response(&self) -> HttpResponse {
        let (status, error_type, code) = self.parts();
        let mut response = HttpResponse::json(
            status,
            &json!({
                "success": false,
                "error": {
                    "message": self.to_string(),
                    "type": error_type,
                    "param": self.param(),
                    "code": code,
                }
            }),
        );
        match self {
            Self::MethodNotAllowed { allow, .. } => response.set_header("allow", (*allow).into()),
            Self::Unauthenticated(_) => {
                response.set_header("www-authenticate", "Bearer realm=\"eindr-chat\"".into())
            }
            Self::RateLimited(decision) => {
                response.set_header("retry-after", decision.retry_after_s.to_string());
                for (name, value) in decision.headers() {
                    response.set_header(name, value);
                }
            }
            Self::AuthFailuresExceeded { retry_after_s } => {
                response.set_header("retry-after", retry_after_s.to_string())
            }
            Self::Store(_) => response.set_header("retry-after", "1".into()),
            _ => {}
        }
        response
    }
}
