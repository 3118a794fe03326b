//! `POST /v1/chat/completions`: the request checked against the served model and the
//! generation bounds, the BLOOM prompt built, an engine started, the answer whole or streamed.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use edge_core::config::GenerationSettings;
use eindr_contract::ENGINE_HEADER;
use eindr_contract::openai::{ChatRequest, Stop};
use eindr_contract::sampling;

use super::AppState;
use super::answer::{stream_response, whole_response};
use crate::engine::{CompletionRequest, StreamUsage};
use crate::error::BackendError;
use crate::prompt::{self, STOP_SEQUENCES};

pub(super) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) async fn chat_completions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let mut record = state.metrics.request();
    let started = Instant::now();
    let (req, completion) = match prepare(&state, &body) {
        Ok(prepared) => prepared,
        Err(error) => {
            record.finish(error.parts().2);
            return error.into_response();
        }
    };
    let prepared = started.elapsed();
    let generation = match state.engines.generate(&completion).await {
        Ok(generation) => generation,
        Err(error) => {
            record.finish(error.parts().2);
            return error.into_response();
        }
    };
    state.metrics.observe_first_token(record.elapsed_s());
    tracing::debug!(engine = %generation.engine, server = %generation.server, "generation started");
    let engine = generation.engine;
    let id = format!("chatcmpl-{:x}{:x}", now_s(), started.elapsed().as_nanos());
    let mut response = if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        stream_response(
            &state,
            generation.pieces,
            id,
            include_usage,
            record,
            prepared,
        )
        .into_response()
    } else {
        whole_response(&state, generation.pieces, id, record, prepared).await
    };
    // The edge reports which engine answered (`model_info.inference_engine`).
    response
        .headers_mut()
        .insert(ENGINE_HEADER, HeaderValue::from_static(engine.as_str()));
    response
}

fn prepare(
    state: &AppState,
    body: &[u8],
) -> Result<(ChatRequest<'static>, CompletionRequest), BackendError> {
    let req: ChatRequest<'static> = serde_json::from_slice(body)
        .map_err(|e| BackendError::BadRequest(format!("invalid request body: {e}")))?;
    if let Some(model) = &req.model
        && !model.is_empty()
        && !state.generation.serves(model)
    {
        return Err(BackendError::ModelNotFound(model.clone()));
    }
    let settings = settings(&state.generation, &req)?;
    let prompt = prompt::build(
        &req.messages,
        req.context.as_ref(),
        settings.max_model_len as usize,
        settings.max_tokens as usize,
        state.tokenizer.as_ref(),
        &state.persona,
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

/// Generation settings for one request: a request may lower the configured ones, never
/// raise them; values outside the bounds the edge's configuration has too are refused.
fn settings(
    configured: &GenerationSettings,
    req: &ChatRequest,
) -> Result<GenerationSettings, BackendError> {
    let g = configured;
    let bad =
        |param: &'static str, bounds: &'static str| BackendError::OutOfRange { param, bounds };
    let max_tokens = match req.max_completion_tokens.or(req.max_tokens) {
        // Above the bound is allowed: it is lowered to the configured limit.
        Some(0) => return Err(bad("max_tokens", sampling::MAX_TOKENS)),
        Some(n) => n.min(g.max_tokens),
        None => g.max_tokens,
    };
    let temperature = match req.temperature {
        Some(t) if !sampling::temperature_ok(t) => {
            return Err(bad("temperature", sampling::TEMPERATURE));
        }
        Some(t) => t.min(g.temperature),
        None => g.temperature,
    };
    let top_p = match req.top_p {
        Some(p) if !sampling::top_p_ok(p) => return Err(bad("top_p", sampling::TOP_P)),
        Some(p) => p.min(g.top_p),
        None => g.top_p,
    };
    let top_k = match req.top_k {
        Some(k) if !sampling::top_k_ok(k) => return Err(bad("top_k", sampling::TOP_K)),
        Some(-1) | None => g.top_k,
        Some(k) if g.top_k == -1 => k,
        Some(k) => k.min(g.top_k),
    };
    let repetition_penalty = match req.repetition_penalty {
        Some(r) if !sampling::repetition_penalty_ok(r) => {
            return Err(bad("repetition_penalty", sampling::REPETITION_PENALTY));
        }
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
