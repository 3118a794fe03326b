//! Full mode: the chat sent to gpu-backend, the answer read back token by token under the
//! edge's deadlines, and every way that can fail, so the caller can answer itself instead.

pub mod breaker;
mod tokens;
mod turn;

use eindr_contract::openai::{ChatMessage, ChatRequest, Role as WireRole, StreamOptions};
use serde_json::Value;
use thiserror::Error;

use crate::api::ChatContext;
use crate::config::{BackendConfig, GenerationSettings};
use crate::history::{Role, Turn};
use crate::platform::{OutboundError, OutboundRequest};

pub use tokens::{Piece, TokenStream};
pub use turn::{BREAKER_KEY, BackendTurn, breaker_policy, settle, start};

#[derive(Debug, Error, Clone, PartialEq)]
pub enum BackendFailure {
    #[error("no backend configured")]
    NotConfigured,
    #[error("circuit breaker open; next probe in {retry_in_ms} ms")]
    BreakerOpen { retry_in_ms: u64 },
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    #[error("backend answered {status} ({code})")]
    Status { status: u16, code: String },
    #[error("no first token within {0} ms")]
    FirstTokenTimeout(u64),
    #[error("no token for {0} ms")]
    IdleTimeout(u64),
    #[error("answer took longer than {0} ms")]
    TotalTimeout(u64),
    #[error("backend reported an error mid-answer: {0}")]
    ErrorEvent(String),
    #[error("backend stream ended without [DONE]")]
    Cut,
    #[error("backend sent something other than OpenAI chunks: {0}")]
    Garbage(String),
    #[error("backend's answer was empty")]
    Empty,
    /// The edge's own store failed around the call (breaker state, history).
    #[error("store: {0}")]
    Store(String),
}

impl BackendFailure {
    /// A short label for logs and counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::BreakerOpen { .. } => "breaker_open",
            Self::Outbound(OutboundError::Unreachable(_)) => "unreachable",
            Self::Outbound(OutboundError::Body(_)) => "stream_failed",
            Self::Outbound(OutboundError::Unsupported) => "unsupported",
            Self::Status { .. } => "error_status",
            Self::FirstTokenTimeout(_) => "first_token_timeout",
            Self::IdleTimeout(_) => "idle_timeout",
            Self::TotalTimeout(_) => "total_timeout",
            Self::ErrorEvent(_) => "error_event",
            Self::Cut => "stream_cut",
            Self::Garbage(_) => "garbage",
            Self::Empty => "empty",
            Self::Store(_) => "store",
        }
    }

    /// Whether this says something about the backend's health. A refused request (4xx) or
    /// a model that produced nothing usable is the request's problem, not the backend's.
    pub fn counts_against_backend(&self) -> bool {
        match self {
            Self::NotConfigured | Self::BreakerOpen { .. } | Self::Empty | Self::Store(_) => false,
            Self::Outbound(OutboundError::Unsupported) => false,
            Self::Status { status, code } => *status >= 500 && code != "empty_completion",
            _ => true,
        }
    }
}

/// The OpenAI chat request for one turn: the stored history, the new message, and the edge's
/// context (gpu-backend puts it into the prompt). Always streamed, so the edge sees the first
/// token's time and a cut answer, whatever the client asked for.
pub fn chat_request(
    backend: &BackendConfig,
    url: &str,
    generation: &GenerationSettings,
    history: &[Turn<'_>],
    message: &str,
    context: Option<&ChatContext>,
) -> OutboundRequest {
    let mut messages: Vec<ChatMessage<'_>> = history
        .iter()
        .map(|t| ChatMessage {
            role: match t.role {
                Role::User => WireRole::User,
                Role::Assistant => WireRole::Assistant,
            },
            content: t.content.as_ref().into(),
        })
        .collect();
    messages.push(ChatMessage {
        role: WireRole::User,
        content: message.into(),
    });
    let request = ChatRequest {
        model: Some(generation.model_name.clone()),
        messages,
        stream: true,
        // The token counts come back in a last chunk: `/v1` answers report them.
        stream_options: Some(StreamOptions {
            include_usage: true,
        }),
        max_tokens: Some(generation.max_tokens),
        temperature: Some(generation.temperature),
        top_p: Some(generation.top_p),
        top_k: Some(generation.top_k),
        repetition_penalty: Some(generation.repetition_penalty),
        context: context.and_then(|c| serde_json::to_value(c).ok()),
        ..ChatRequest::default()
    };
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("accept".to_owned(), "text/event-stream".to_owned()),
    ];
    authorized(
        backend,
        "POST",
        format!("{url}/v1/chat/completions"),
        headers,
        serde_json::to_vec(&request).unwrap_or_default(),
    )
}

/// gpu-backend's health endpoint, for `/api/chat/health`.
pub fn health_request(backend: &BackendConfig, url: &str) -> OutboundRequest {
    authorized(
        backend,
        "GET",
        format!("{url}/health"),
        Vec::new(),
        Vec::new(),
    )
}

/// A request to gpu-backend, with its API key when one is configured.
fn authorized(
    backend: &BackendConfig,
    method: &'static str,
    url: String,
    mut headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> OutboundRequest {
    if let Some(key) = &backend.api_key {
        headers.push(("authorization".to_owned(), format!("Bearer {key}")));
    }
    OutboundRequest {
        method,
        url,
        headers,
        body,
    }
}

/// gpu-backend as `/api/chat/health` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackendHealth {
    pub configured: bool,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// gpu-backend's own health document (its engines), when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

/// Largest health document read from gpu-backend.
const HEALTH_BODY_LIMIT: usize = 64 * 1024;

/// Calls gpu-backend's `/health` within the first-token budget.
pub async fn probe<O: crate::platform::Outbound>(
    outbound: &O,
    clock: &dyn crate::platform::Clock,
    config: &BackendConfig,
) -> BackendHealth {
    use futures_util::StreamExt;
    let Some(url) = config.url.as_deref() else {
        return BackendHealth {
            configured: false,
            reachable: false,
            status: None,
            latency_ms: None,
            error: None,
            detail: None,
        };
    };
    let started = clock.now_ms();
    let budget = config.first_token_timeout_ms;
    let work = async {
        let mut response = outbound.send(health_request(config, url)).await?;
        let mut body = Vec::new();
        while let Some(chunk) = response.body.next().await {
            body.extend_from_slice(&chunk?);
            if body.len() > HEALTH_BODY_LIMIT {
                break;
            }
        }
        Ok::<_, OutboundError>((response.status, body))
    };
    let outcome = tokens::within(outbound, budget, work).await;
    let latency_ms = Some(clock.now_ms().saturating_sub(started));
    let (status, error, detail) = match outcome {
        None => (
            None,
            Some(BackendFailure::FirstTokenTimeout(budget).to_string()),
            None,
        ),
        Some(Err(e)) => (None, Some(e.to_string()), None),
        Some(Ok((status, body))) => (Some(status), None, serde_json::from_slice(&body).ok()),
    };
    BackendHealth {
        configured: true,
        reachable: status.is_some(),
        status,
        latency_ms,
        error,
        detail,
    }
}
