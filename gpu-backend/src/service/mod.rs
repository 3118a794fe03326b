//! The HTTP service: `POST /v1/chat/completions` (JSON or SSE) and `GET /v1/models` behind
//! the API key, `GET /health` and `GET /metrics` open.

mod answer;
mod chat;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use edge_core::config::GenerationSettings;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::engine::Engines;
use crate::error::BackendError;
use crate::metrics::Metrics;
use crate::prompt::TokenCounter;

pub struct AppState {
    pub api_key: Option<String>,
    pub generation: GenerationSettings,
    pub engines: Arc<Engines>,
    pub tokenizer: Box<dyn TokenCounter>,
    pub metrics: Arc<Metrics>,
    /// The prompt's first line when the caller sends no system message.
    pub persona: String,
}

pub fn router(state: Arc<AppState>) -> Router {
    let keyed = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_api_key,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(keyed)
        .with_state(state)
}

/// `Authorization: Bearer $BACKEND_API_KEY`, compared in constant time; no key configured
/// (`BACKEND_DEV=true`) lets everything through.
async fn require_api_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match authorize(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            state.metrics.request().finish(error.parts().2);
            error.into_response()
        }
    }
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), BackendError> {
    let Some(expected) = &state.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(BackendError::Unauthorized)
    }
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    let g = &state.generation;
    let data: Vec<_> = std::iter::once(&g.model_name)
        .chain(&g.model_aliases)
        .map(|id| {
            json!({
                "id": id,
                "object": "model",
                "created": 0,
                "owned_by": "eindr",
                "max_model_len": g.max_model_len,
            })
        })
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let serving = state.engines.serving();
    let status = if serving.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if serving.is_some() { "ok" } else { "unavailable" },
            "inference_engine": serving.map_or("none", |e| e.as_str()),
            "model": state.generation.model_name,
            "engines": state.engines.health(),
        })),
    )
        .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
