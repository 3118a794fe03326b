//! The HTTP service: `POST /v1/chat/completions` (JSON or SSE), `GET /v1/models`,
//! `GET /health`, `GET /metrics`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use edge_core::config::GenerationSettings;
use futures::{Stream, StreamExt};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::api::{
    ChatCompletion, ChatCompletionChunk, ChatMessage, ChatRequest, Choice, ChunkChoice, Delta,
    Role, Stop, Usage,
};
use crate::engine::{CPU_ENGINE, CompletionRequest, Engines, StreamUsage, VLLM_ENGINE};
use crate::error::BackendError;
use crate::metrics::Metrics;
use crate::postprocess::finish_reply;
use crate::prompt::{self, STOP_SEQUENCES, TokenCounter};
use crate::sse::Piece;

pub struct AppState {
    pub api_key: Option<String>,
    pub generation: GenerationSettings,
    pub engines: Arc<Engines>,
    pub tokenizer: Box<dyn TokenCounter>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
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

/// Response header naming the engine that answered; the edge reads it.
const ENGINE_HEADER: &str = "x-inference-engine";

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.generation.model_name,
            "object": "model",
            "created": 0,
            "owned_by": "eindr",
            "max_model_len": state.generation.max_model_len,
        }]
    }))
    .into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let mut engines: Vec<_> = state
        .engines
        .servers()
        .iter()
        .map(|s| json!({"engine": VLLM_ENGINE, "url": s.url, "healthy": s.healthy()}))
        .collect();
    if state.engines.has_cpu() {
        engines.push(json!({"engine": CPU_ENGINE, "healthy": true}));
    }
    let serving = state.engines.serving();
    let up = serving.is_some();
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if up { "ok" } else { "unavailable" },
            "inference_engine": serving.unwrap_or("none"),
            "model": state.generation.model_name,
            "engines": engines,
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

/// Generation settings for one request: a request may lower the configured ones, never
/// raise them; values outside the valid ranges are refused.
fn settings(state: &AppState, req: &ChatRequest) -> Result<GenerationSettings, BackendError> {
    let g = &state.generation;
    let bad = |what: &str| BackendError::BadRequest(format!("{what} is out of range"));
    let max_tokens = match req.max_completion_tokens.or(req.max_tokens) {
        Some(0) => return Err(bad("max_tokens")),
        Some(n) => n.min(g.max_tokens),
        None => g.max_tokens,
    };
    let temperature = match req.temperature {
        Some(t) if !(0.0..=2.0).contains(&t) => return Err(bad("temperature")),
        Some(t) => t.min(g.temperature),
        None => g.temperature,
    };
    let top_p = match req.top_p {
        Some(p) if !(p > 0.0 && p <= 1.0) => return Err(bad("top_p")),
        Some(p) => p.min(g.top_p),
        None => g.top_p,
    };
    let top_k = match req.top_k {
        Some(k) if k != -1 && k < 1 => return Err(bad("top_k")),
        Some(-1) | None => g.top_k,
        Some(k) if g.top_k == -1 => k,
        Some(k) => k.min(g.top_k),
    };
    let repetition_penalty = match req.repetition_penalty {
        Some(r) if !(r > 0.0 && r <= 2.0) => return Err(bad("repetition_penalty")),
        Some(r) => r,
        None => g.repetition_penalty,
    };
    Ok(GenerationSettings {
        max_tokens,
        temperature,
        top_p,
        top_k,
        repetition_penalty,
        ..g.clone()
    })
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    match prepare(&state, &headers, &body) {
        Err(e) => failed(&state, e, started),
        Ok((req, completion)) => {
            let prepared = started.elapsed();
            let generation = state.engines.generate(&completion).await;
            let generation = match generation {
                Ok(g) => g,
                Err(e) => return failed(&state, e, started),
            };
            state
                .metrics
                .observe_first_token(started.elapsed().as_secs_f64());
            tracing::debug!(engine = generation.engine, server = %generation.server, "generation started");
            let engine = generation.engine;
            let id = format!("chatcmpl-{:x}{:x}", now_s(), started.elapsed().as_nanos());
            let mut response = if req.stream {
                let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
                stream_response(
                    state,
                    generation.pieces,
                    id,
                    include_usage,
                    started,
                    prepared,
                )
                .into_response()
            } else {
                whole_response(&state, generation.pieces, id, started, prepared).await
            };
            // The edge reports which engine answered (`model_info.inference_engine`).
            response
                .headers_mut()
                .insert(ENGINE_HEADER, axum::http::HeaderValue::from_static(engine));
            response
        }
    }
}

/// The template's stop sequences plus the caller's (OpenAI allows up to 4, non-empty).
fn stop_sequences(req: &ChatRequest) -> Result<Vec<String>, BackendError> {
    let extra = req.stop.clone().map(Stop::into_vec).unwrap_or_default();
    if extra.len() > 4 || extra.iter().any(|s| s.is_empty() || s.len() > 64) {
        return Err(BackendError::BadRequest(
            "stop takes at most 4 non-empty sequences of up to 64 bytes".into(),
        ));
    }
    Ok(STOP_SEQUENCES
        .iter()
        .map(|s| (*s).to_owned())
        .chain(extra)
        .collect())
}

/// A request that ends in an error answer: counted by its code.
fn failed(state: &AppState, error: BackendError, started: Instant) -> Response {
    state
        .metrics
        .count_request(error.parts().2, started.elapsed().as_secs_f64());
    error.into_response()
}

fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(ChatRequest, CompletionRequest), BackendError> {
    authorize(state, headers)?;
    let req: ChatRequest = serde_json::from_slice(body)
        .map_err(|e| BackendError::BadRequest(format!("invalid request body: {e}")))?;
    if let Some(model) = &req.model
        && !model.is_empty()
        && model != &state.generation.model_name
    {
        return Err(BackendError::BadRequest(format!(
            "model {model:?} is not served here; this backend serves {:?}",
            state.generation.model_name
        )));
    }
    let settings = settings(state, &req)?;
    let prompt = prompt::build(
        &req.messages,
        req.context.as_ref(),
        settings.max_model_len as usize,
        settings.max_tokens as usize,
        state.tokenizer.as_ref(),
    )?;
    let completion = CompletionRequest {
        model: settings.model_name.clone(),
        prompt: prompt.text,
        max_tokens: settings.max_tokens,
        temperature: settings.temperature,
        top_p: settings.top_p,
        top_k: settings.top_k,
        repetition_penalty: settings.repetition_penalty,
        stop: stop_sequences(&req)?,
        seed: req.seed,
        stream: true,
        stream_options: StreamUsage {
            include_usage: true,
        },
    };
    Ok((req, completion))
}

async fn whole_response(
    state: &AppState,
    mut pieces: futures::stream::BoxStream<'static, Result<Piece, BackendError>>,
    id: String,
    started: Instant,
    prepared: std::time::Duration,
) -> Response {
    let mut text = String::new();
    let mut finish_reason = None;
    let mut usage = Usage::default();
    while let Some(piece) = pieces.next().await {
        match piece {
            Ok(Piece::Text {
                text: t,
                finish_reason: f,
            }) => {
                text.push_str(&t);
                if f.is_some() {
                    finish_reason = f;
                }
            }
            Ok(Piece::Usage(u)) => usage = u,
            Err(e) => return failed(state, e, started),
        }
    }
    let finishing = Instant::now();
    let finish_reason = finish_reason.unwrap_or_else(|| "stop".into());
    let reply = match finish_reply(&text, finish_reason == "length") {
        Ok(reply) => reply,
        Err(e) => return failed(state, e, started),
    };
    state
        .metrics
        .count_tokens(usage.prompt_tokens, usage.completion_tokens);
    let body = ChatCompletion {
        id,
        object: "chat.completion",
        created: now_s(),
        model: state.generation.model_name.clone(),
        choices: vec![Choice {
            index: 0,
            message: ChatMessage {
                role: Role::Assistant,
                content: reply,
            },
            finish_reason,
        }],
        usage,
    };
    let response = Json(body).into_response();
    state
        .metrics
        .observe_added_latency((prepared + finishing.elapsed()).as_secs_f64());
    state
        .metrics
        .count_request("ok", started.elapsed().as_secs_f64());
    response
}

fn chunk(state_model: &str, id: &str, delta: Delta, finish: Option<String>) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: id.to_owned(),
        object: "chat.completion.chunk",
        created: now_s(),
        model: state_model.to_owned(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
        }],
        usage: None,
    }
}

fn event(value: &impl serde::Serialize) -> Event {
    Event::default().data(serde_json::to_string(value).unwrap_or_default())
}

/// Tokens as they arrive, OpenAI chunk by chunk; the end is `[DONE]` after a clean finish,
/// or an error event (and no `[DONE]`) when the engine failed mid-answer.
fn stream_response(
    state: Arc<AppState>,
    pieces: futures::stream::BoxStream<'static, Result<Piece, BackendError>>,
    id: String,
    include_usage: bool,
    started: Instant,
    prepared: std::time::Duration,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let model = state.generation.model_name.clone();
    state.metrics.observe_added_latency(prepared.as_secs_f64());
    let opening = event(&chunk(
        &model,
        &id,
        Delta {
            role: Some(Role::Assistant),
            content: Some(String::new()),
        },
        None,
    ));
    let body = futures::stream::unfold(
        (pieces, false, None::<Usage>),
        move |(mut pieces, done, mut usage)| {
            let (state, model, id) = (Arc::clone(&state), model.clone(), id.clone());
            async move {
                if done {
                    return None;
                }
                match pieces.next().await {
                    // vLLM's incremental detokenizer sends empty pieces; pass on only text.
                    Some(Ok(Piece::Text {
                        text,
                        finish_reason: None,
                    })) if text.is_empty() => Some((Vec::new(), (pieces, false, usage))),
                    Some(Ok(Piece::Text {
                        text,
                        finish_reason,
                    })) => {
                        let delta = Delta {
                            role: None,
                            content: Some(text),
                        };
                        let ev = event(&chunk(&model, &id, delta, finish_reason));
                        Some((vec![ev], (pieces, false, usage)))
                    }
                    Some(Ok(Piece::Usage(u))) => {
                        usage = Some(u);
                        Some((Vec::new(), (pieces, false, usage)))
                    }
                    Some(Err(e)) => {
                        state
                            .metrics
                            .count_request(e.parts().2, started.elapsed().as_secs_f64());
                        let ev = Event::default().data(e.sse_data());
                        Some((vec![ev], (pieces, true, usage)))
                    }
                    None => {
                        let mut events = Vec::new();
                        if let Some(u) = usage {
                            state
                                .metrics
                                .count_tokens(u.prompt_tokens, u.completion_tokens);
                            if include_usage {
                                events.push(event(&ChatCompletionChunk {
                                    id: id.clone(),
                                    object: "chat.completion.chunk",
                                    created: now_s(),
                                    model: model.clone(),
                                    choices: Vec::new(),
                                    usage: Some(u),
                                }));
                            }
                        }
                        events.push(Event::default().data("[DONE]"));
                        state
                            .metrics
                            .count_request("ok", started.elapsed().as_secs_f64());
                        Some((events, (pieces, true, usage)))
                    }
                }
            }
        },
    )
    .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok)));
    Sse::new(futures::stream::once(async move { Ok(opening) }).chain(body))
}
