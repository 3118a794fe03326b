//! Streamed turns (`"stream": true` or `Accept: text/event-stream`): the head goes out at
//! once, then the answer as server-sent events while gpu-backend produces it:
//!
//! ```text
//! data: {"delta":"Hello"}
//! data: {"delta":" there."}
//! data: {"done":true,"success":true,"response":"Hello there.","fallback_used":false,...}
//! data: [DONE]
//! ```
//!
//! Whatever goes wrong ends well-formed: no first token in time → the minimal reply as the
//! only delta; cut after tokens → a closing sentence; history records exactly the deltas sent.
//! Only a failure to store the turn ends with an error event and no `[DONE]`. The turn itself
//! is the one pipeline of `turn.rs`; this file is its event-stream sink and ending.

use serde_json::{Value, json};
use thiserror::Error;
use tracing::Instrument;

use super::EdgeApp;
use super::turn::{DeltaSink, TurnRequest};
use crate::api::{Flavour, OpenAiTurn};
use crate::facts::{self, RequestFacts};
use crate::http::HttpResponse;
use crate::platform::{Clock, ConversationStore, Outbound, Services};
use crate::speech::SentenceSplitter;

/// What the adapter sends for a request.
pub enum Served {
    Whole(HttpResponse),
    /// Send `head` now, then run [`EdgeApp::stream`] into the body.
    Stream(StreamingTurn),
}

impl Served {
    pub fn head_mut(&mut self) -> &mut HttpResponse {
        match self {
            Self::Whole(response) => response,
            Self::Stream(turn) => &mut turn.head,
        }
    }
}

/// An admitted, validated turn whose answer is still to be streamed.
pub struct StreamingTurn {
    pub head: HttpResponse,
    turn: Box<TurnRequest>,
}

impl StreamingTurn {
    pub(super) fn new(turn: TurnRequest) -> Self {
        let head = HttpResponse {
            status: 200,
            headers: vec![
                (
                    "content-type".into(),
                    "text/event-stream; charset=utf-8".into(),
                ),
                ("cache-control".into(), "no-cache".into()),
                // Proxies (nginx and alike) must pass events on as they come.
                ("x-accel-buffering".into(), "no".into()),
            ],
            body: Vec::new(),
        };
        Self {
            head,
            turn: Box::new(turn),
        }
    }
}

#[derive(Debug, Error)]
#[error("the client stopped reading")]
pub struct SinkClosed;

/// The response body as the adapter writes it to the client.
#[allow(async_fn_in_trait)]
pub trait BodySink {
    async fn send(&mut self, chunk: Vec<u8>) -> Result<(), SinkClosed>;
}

/// Collects the body (non-streaming adapters, tests).
impl BodySink for Vec<u8> {
    async fn send(&mut self, chunk: Vec<u8>) -> Result<(), SinkClosed> {
        self.extend_from_slice(&chunk);
        Ok(())
    }
}

/// SSE frames to the client in the turn's flavour; remembers the text it delivered.
struct Events<'k, K: BodySink> {
    sink: &'k mut K,
    flavour: &'k Flavour,
    delivered: String,
    client_gone: bool,
    clock: &'k dyn Clock,
    /// When the first text delta went out.
    first_delta_ms: Option<u64>,
    /// The Eindr stream's sentences for speech, each sent as it ends.
    sentences: SentenceSplitter,
}

impl<K: BodySink> Events<'_, K> {
    async fn frame(&mut self, data: &str) {
        if self.client_gone {
            return;
        }
        if self
            .sink
            .send(format!("data: {data}\n\n").into_bytes())
            .await
            .is_err()
        {
            self.client_gone = true;
        }
    }
}

impl<K: BodySink> DeltaSink for Events<'_, K> {
    async fn delta(&mut self, text: &str) {
        if text.is_empty() || self.client_gone {
            return;
        }
        let frame = match self.flavour {
            Flavour::Eindr => json!({ "delta": text }),
            Flavour::OpenAi(openai) => {
                let delta = if self.delivered.is_empty() {
                    json!({"role": "assistant", "content": text})
                } else {
                    json!({"content": text})
                };
                openai_chunk(openai, delta, Value::Null)
            }
        };
        self.frame(&frame.to_string()).await;
        if !self.client_gone {
            self.delivered.push_str(text);
            self.first_delta_ms
                .get_or_insert_with(|| self.clock.now_ms());
            if *self.flavour == Flavour::Eindr {
                for sentence in self.sentences.push(text) {
                    self.frame(&json!({ "sentence": sentence }).to_string())
                        .await;
                }
            }
        }
    }

    fn first_delta_ms(&self) -> Option<u64> {
        self.first_delta_ms
    }

    fn delivered(&self) -> &str {
        &self.delivered
    }

    fn client_gone(&self) -> bool {
        self.client_gone
    }

    fn closes_cut_answers(&self) -> bool {
        *self.flavour == Flavour::Eindr
    }
}

fn openai_chunk(openai: &OpenAiTurn, delta: Value, finish_reason: Value) -> Value {
    openai_frame(
        openai,
        json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]),
        Value::Null,
    )
}

/// A chunk as OpenAI sends it: with `include_usage`, every chunk has `usage` (null until the
/// last, which has no choices).
fn openai_frame(openai: &OpenAiTurn, choices: Value, usage: Value) -> Value {
    let mut frame = json!({
        "id": openai.id,
        "object": "chat.completion.chunk",
        "created": openai.created_s,
        "model": openai.model,
        "choices": choices,
    });
    if openai.include_usage {
        frame["usage"] = usage;
    }
    frame
}

impl EdgeApp {
    /// Streams the answer of a turn [`EdgeApp::serve`] accepted, then stores it.
    pub async fn stream<S: ConversationStore, O: Outbound, K: BodySink>(
        &self,
        turn: StreamingTurn,
        svc: &Services<'_, S, O>,
        sink: &mut K,
    ) {
        let status = turn.head.status;
        let turn = *turn.turn;
        let route = match turn.flavour {
            Flavour::Eindr => "/api/chat/respond",
            Flavour::OpenAi(_) => "/v1/chat/completions",
        };
        let started_ms = turn.started_ms;
        let span = tracing::info_span!("stream", request_id = %turn.request_id);
        // `instrument`, not `enter`, for the reason `EdgeApp::serve` gives.
        async {
            let error_code = self.stream_in_span(turn, svc, sink).await;
            // A streamed request's facts: its status went out with the head; an error that
            // ended the stream is its code.
            facts::emit_request(
                svc.facts,
                &RequestFacts {
                    route,
                    status,
                    error_code: error_code.map(str::to_owned),
                    rate_limited: false,
                    duration_ms: svc.clock.now_ms().saturating_sub(started_ms),
                },
            );
        }
        .instrument(span)
        .await;
    }

    /// Runs the turn into the event stream; the code of the error that ended it, if one did.
    async fn stream_in_span<S: ConversationStore, O: Outbound, K: BodySink>(
        &self,
        turn: TurnRequest,
        svc: &Services<'_, S, O>,
        sink: &mut K,
    ) -> Option<&'static str> {
        let mut events = Events {
            sink,
            flavour: &turn.flavour,
            delivered: String::new(),
            client_gone: false,
            clock: svc.clock,
            first_delta_ms: None,
            sentences: SentenceSplitter::default(),
        };
        let outcome = match self.run_turn(&turn, svc, &mut events).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(%error, "streamed turn not stored");
                let (_, error_type, code) = error.parts();
                let frame = json!({"error": {"message": error.to_string(), "type": error_type, "param": null, "code": code}});
                events.frame(&frame.to_string()).await;
                return Some(code);
            }
        };
        let cut = outcome.cut;
        match &turn.flavour {
            Flavour::Eindr => {
                // The last sentence, once the answer is whole.
                for sentence in events.sentences.finish() {
                    events
                        .frame(&json!({ "sentence": sentence }).to_string())
                        .await;
                }
                let response = self.turn_response(&turn, outcome, svc.clock.now_ms());
                let mut done = serde_json::to_value(&response).unwrap_or(Value::Null);
                if let Value::Object(fields) = &mut done {
                    fields.insert("done".into(), Value::Bool(true));
                }
                events.frame(&done.to_string()).await;
            }
            // OpenAI clients have no place for a closing sentence: a cut answer ends with
            // an error event, never a clean-looking end.
            Flavour::OpenAi(_) if cut => {
                let frame = json!({"error": {
                    "message": "the model's answer broke off",
                    "type": "server_error",
                    "param": null,
                    "code": "stream_cut",
                }});
                events.frame(&frame.to_string()).await;
                return Some("stream_cut");
            }
            Flavour::OpenAi(openai) => {
                let last = openai_chunk(openai, json!({}), json!("stop"));
                events.frame(&last.to_string()).await;
                if openai.include_usage {
                    // Zeros when no model ran (a rule reply or a cached answer).
                    let usage = json!(outcome.usage.unwrap_or_default());
                    let counts = openai_frame(openai, json!([]), usage);
                    events.frame(&counts.to_string()).await;
                }
            }
        }
        events.frame("[DONE]").await;
        None
    }
}
