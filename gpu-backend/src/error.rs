//! The backend's one error type, mapped once to an HTTP answer and once to an SSE error event.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eindr_contract::openai::{ErrorBody, ErrorDetail};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("missing or wrong API key")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    /// A parameter out of its bounds: OpenAI names it in `param`.
    #[error("{param} is out of range (expected {bounds})")]
    OutOfRange {
        param: &'static str,
        bounds: &'static str,
    },
    #[error("the model `{0}` does not exist or you do not have access to it")]
    ModelNotFound(String),
    #[error(
        "the prompt needs {needed} tokens but only {available} fit (VLLM_MAX_MODEL_LEN minus max_tokens)"
    )]
    ContextTooLong { needed: usize, available: usize },
    #[error("no inference engine is available: {0}")]
    NoEngine(String),
    #[error("the inference engine failed: {0}")]
    Upstream(String),
    #[error("the inference engine timed out ({0})")]
    Timeout(&'static str),
    #[error("the model produced no usable reply")]
    EmptyReply,
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

impl BackendError {
    /// HTTP status, OpenAI error type and machine-readable code.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key",
            ),
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
            ),
            Self::OutOfRange { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_value",
            ),
            Self::ModelNotFound(_) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
            ),
            Self::ContextTooLong { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "context_length_exceeded",
            ),
            Self::NoEngine(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable_error",
                "engine_unavailable",
            ),
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, "server_error", "engine_error"),
            Self::Timeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "engine_timeout",
            ),
            Self::EmptyReply => (StatusCode::BAD_GATEWAY, "server_error", "empty_completion"),
            Self::Tokenizer(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "tokenizer_error",
            ),
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (_, error_type, code) = self.parts();
        ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind: error_type.to_owned(),
                code: Value::from(code),
                param: match self {
                    Self::OutOfRange { param, .. } => Value::from(*param),
                    Self::ModelNotFound(_) => Value::from("model"),
                    _ => Value::Null,
                },
            },
        }
    }

    /// The SSE frame that ends a stream that failed after it started: never a clean end.
    pub fn sse_data(&self) -> String {
        serde_json::to_string(&self.body()).unwrap_or_default()
    }
}

impl IntoResponse for BackendError {
    fn into_response(self) -> Response {
        let (status, ..) = self.parts();
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
