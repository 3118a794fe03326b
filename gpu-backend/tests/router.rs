//! gpu-backend's HTTP layer in process: the axum router with a scripted engine in place of
//! vLLM, driven with `tower::ServiceExt::oneshot`. Authentication, bounds, error bodies, SSE
//! framing and the engine header, without Python or a server. The real vLLM path is tested
//! in `tests/tests/gpu_backend.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use edge_core::config::GenerationSettings;
use eindr_contract::InferenceEngine;
use futures::StreamExt;
use futures::future::BoxFuture;
use gpu_backend::engine::{CompletionRequest, Engine, Engines, Generation};
use gpu_backend::error::BackendError;
use gpu_backend::metrics::Metrics;
use gpu_backend::prompt::{self, TokenCounter};
use gpu_backend::service::{AppState, router};
use gpu_backend::sse::Piece;
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY: &str = "test-key";

/// What the scripted engine does with a request.
#[derive(Clone)]
enum Script {
    /// These pieces, then a clean end.
    Answer(Vec<&'static str>),
    /// These pieces, then a failure mid-answer.
    CutAfter(Vec<&'static str>),
    /// Cannot take requests.
    Down,
}

struct Scripted {
    kind: InferenceEngine,
    script: Script,
    /// The prompts it was asked for.
    seen: Mutex<Vec<CompletionRequest>>,
}

impl Engine for Scripted {
    fn kind(&self) -> InferenceEngine {
        self.kind
    }

    fn available(&self) -> bool {
        !matches!(self.script, Script::Down)
    }

    fn health(&self) -> Vec<Value> {
        vec![json!({"engine": self.kind, "healthy": self.available()})]
    }

    fn start<'a>(
        &'a self,
        request: &'a CompletionRequest,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Generation, BackendError>> {
        self.seen.lock().unwrap().push(request.clone());
        let script = self.script.clone();
        let kind = self.kind;
        Box::pin(async move {
            let (texts, cut) = match script {
                Script::Down => return Err(BackendError::NoEngine("scripted: down".into())),
                Script::Answer(texts) => (texts, false),
                Script::CutAfter(texts) => (texts, true),
            };
            let count = texts.len();
            let mut pieces: Vec<Result<Piece, BackendError>> = texts
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    Ok(Piece::Text {
                        text: t.to_owned(),
                        finish_reason: (!cut && i + 1 == count).then(|| "stop".to_owned()),
                    })
                })
                .collect();
            if cut {
                pieces.push(Err(BackendError::Upstream("scripted: cut".into())));
            } else {
                pieces.push(Ok(Piece::Usage(eindr_contract::openai::Usage {
                    prompt_tokens: 7,
                    completion_tokens: count as u32,
                    total_tokens: 7 + count as u32,
                })));
            }
            Ok(Generation {
                engine: kind,
                server: "scripted".into(),
                pieces: futures::stream::iter(pieces).boxed(),
            })
        })
    }
}

struct Words;

impl TokenCounter for Words {
    fn count(&self, text: &str) -> Result<usize, BackendError> {
        Ok(text.split_whitespace().count() + 1)
    }
}

fn build(chain: Vec<Arc<Scripted>>) -> (axum::Router, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let chain: Vec<Arc<dyn Engine>> = chain.into_iter().map(|e| e as Arc<dyn Engine>).collect();
    let engines = Arc::new(Engines::new(
        chain,
        Duration::from_secs(5),
        Arc::clone(&metrics),
    ));
    let generation = GenerationSettings::from_lookup(|name| match name {
        "CHAT_MODEL_NAME" => Some("tiny".into()),
        "CHAT_MAX_TOKENS" => Some("16".into()),
        "VLLM_MAX_MODEL_LEN" => Some("512".into()),
        _ => None,
    })
    .unwrap();
    let state = Arc::new(AppState {
        api_key: Some(KEY.into()),
        generation,
        engines,
        tokenizer: Box::new(Words),
        metrics: Arc::clone(&metrics),
        persona: prompt::persona("Eindr"),
    });
    (router(state), metrics)
}

fn engine(kind: InferenceEngine, script: Script) -> Arc<Scripted> {
    Arc::new(Scripted {
        kind,
        script,
        seen: Mutex::new(Vec::new()),
    })
}

fn chat(key: Option<&str>, body: Value) -> Request<Body> {
    let mut request =
        Request::post("/v1/chat/completions").header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.body(Body::from(body.to_string())).unwrap()
}

async fn send(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

fn error_code(body: &str) -> Value {
    let body: Value = serde_json::from_str(body).unwrap();
    for field in ["message", "type", "code", "param"] {
        assert!(
            body["error"].get(field).is_some(),
            "{field} missing: {body}"
        );
    }
    body["error"]["code"].clone()
}

/// The `data:` payloads of an SSE body, checking its framing on the way.
fn sse_data(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "events end with a blank line: {body:?}"
    );
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"))
                .to_owned()
        })
        .collect()
}

fn hello() -> Value {
    json!([{"role": "user", "content": "hello"}])
}

#[tokio::test]
async fn the_api_key_guards_chat_and_models_only() {
    let (app, _) = build(vec![engine(
        InferenceEngine::Vllm,
        Script::Answer(vec!["Hi"]),
    )]);
    for key in [None, Some("wrong")] {
        let (status, headers, body) = send(&app, chat(key, json!({"messages": hello()}))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert_eq!(error_code(&body), "invalid_api_key");
    }
    let models = Request::get("/v1/models").body(Body::empty()).unwrap();
    assert_eq!(send(&app, models).await.0, StatusCode::UNAUTHORIZED);
    let models = Request::get("/v1/models")
        .header("authorization", format!("Bearer {KEY}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, models).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["data"][0]["id"],
        "tiny"
    );
    for open in ["/health", "/metrics"] {
        let request = Request::get(open).body(Body::empty()).unwrap();
        assert_eq!(send(&app, request).await.0, StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn out_of_bounds_settings_and_bad_bodies_are_400() {
    let (app, _) = build(vec![engine(
        InferenceEngine::Vllm,
        Script::Answer(vec!["Hi"]),
    )]);
    for body in [
        json!({"messages": hello(), "temperature": 5}),
        json!({"messages": hello(), "top_p": 0}),
        json!({"messages": hello(), "top_k": 0}),
        json!({"messages": hello(), "repetition_penalty": 3}),
        json!({"messages": hello(), "max_tokens": 0}),
        json!({"messages": hello(), "stop": ["a", "b", "c", "d", "e"]}),
        json!({"messages": []}),
        json!({"messages": [{"role": "assistant", "content": "last"}]}),
        json!({"message": "no messages"}),
    ] {
        let (status, _, answer) = send(&app, chat(Some(KEY), body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        let code = error_code(&answer);
        assert!(
            code == "invalid_request" || code == "invalid_value",
            "{body}: {code}"
        );
    }
    // A bound names its parameter; a model not served is 404, as OpenAI answers.
    let (_, _, answer) = send(
        &app,
        chat(Some(KEY), json!({"messages": hello(), "top_p": 0})),
    )
    .await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["error"]["param"], "top_p");
    let (status, _, answer) = send(
        &app,
        chat(Some(KEY), json!({"messages": hello(), "model": "another"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(error_code(&answer), "model_not_found");
}

#[tokio::test]
async fn a_request_may_lower_the_settings_never_raise_them() {
    let vllm = engine(InferenceEngine::Vllm, Script::Answer(vec!["Hi"]));
    let (app, _) = build(vec![Arc::clone(&vllm)]);
    let (status, _, _) = send(
        &app,
        chat(
            Some(KEY),
            json!({"messages": hello(), "max_tokens": 1000, "temperature": 0.2}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seen = vllm.seen.lock().unwrap();
    assert_eq!(seen[0].max_tokens, 16);
    assert_eq!(seen[0].temperature, 0.2);
    assert!(
        seen[0].prompt.ends_with("User: hello\nAssistant:"),
        "{}",
        seen[0].prompt
    );
}

#[tokio::test]
async fn a_streamed_answer_is_framed_as_openai_chunks_ending_in_done() {
    let (app, metrics) = build(vec![engine(
        InferenceEngine::Vllm,
        Script::Answer(vec!["Hel", "lo."]),
    )]);
    let body =
        json!({"messages": hello(), "stream": true, "stream_options": {"include_usage": true}});
    let (status, headers, text) = send(&app, chat(Some(KEY), body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-inference-engine"], "vLLM");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let frames = sse_data(&text);
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello.");
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "tiny");
    }
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 9);
    let rendered = metrics.render();
    assert!(
        rendered.contains("gpu_backend_requests_total{outcome=\"ok\"} 1"),
        "{rendered}"
    );
}

#[tokio::test]
async fn a_stream_cut_mid_answer_ends_with_an_error_event_not_done() {
    let (app, metrics) = build(vec![engine(
        InferenceEngine::Vllm,
        Script::CutAfter(vec!["Hel"]),
    )]);
    let (status, _, text) = send(
        &app,
        chat(Some(KEY), json!({"messages": hello(), "stream": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let frames = sse_data(&text);
    assert!(!frames.contains(&"[DONE]".to_owned()), "{text}");
    assert_eq!(error_code(frames.last().unwrap()), "engine_error");
    assert!(metrics.render().contains("outcome=\"engine_error\"} 1"));
}

#[tokio::test]
async fn a_whole_answer_is_one_completion_with_usage() {
    let (app, metrics) = build(vec![engine(
        InferenceEngine::Cpu,
        Script::Answer(vec!["Hello", " there."]),
    )]);
    let (status, headers, text) = send(&app, chat(Some(KEY), json!({"messages": hello()}))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(headers["x-inference-engine"], "cpu");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(
        answer["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hello there.", "refusal": null})
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 2);
    // The same request under OpenTelemetry's GenAI names, with the spec's buckets.
    let rendered = metrics.render();
    for series in [
        "gen_ai_client_operation_duration_seconds_bucket{le=\"81.92\",gen_ai_operation_name=\"chat\",error_type=\"\"} 1",
        "gen_ai_client_token_usage_bucket{le=\"4.0\",gen_ai_operation_name=\"chat\",gen_ai_token_type=\"output\"} 1",
        "gen_ai_server_time_to_first_token_seconds_count 1",
    ] {
        assert!(rendered.contains(series), "{series} not in\n{rendered}");
    }
    assert_eq!(rendered.matches("# EOF").count(), 1);
}

#[tokio::test]
async fn a_down_engine_hands_over_to_the_next_and_none_left_is_503() {
    let down = engine(InferenceEngine::Vllm, Script::Down);
    let cpu = engine(InferenceEngine::Cpu, Script::Answer(vec!["Hi."]));
    let (app, metrics) = build(vec![Arc::clone(&down), cpu]);
    let (status, headers, _) = send(&app, chat(Some(KEY), json!({"messages": hello()}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-inference-engine"], "cpu");
    assert!(metrics.render().contains("gpu_backend_failovers_total 1"));
    let health = Request::get("/health").body(Body::empty()).unwrap();
    let (_, _, body) = send(&app, health).await;
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["inference_engine"], "cpu");
    assert_eq!(health["engines"].as_array().unwrap().len(), 2);

    let (app, _) = build(vec![down]);
    let (status, _, body) = send(&app, chat(Some(KEY), json!({"messages": hello()}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "engine_unavailable");
    let health = Request::get("/health").body(Body::empty()).unwrap();
    assert_eq!(send(&app, health).await.0, StatusCode::SERVICE_UNAVAILABLE);
}
