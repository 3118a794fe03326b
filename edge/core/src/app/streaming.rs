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
//! Only a failure to store the turn ends with an error event and no `[DONE]`.

use serde_json::{Value, json};
use thiserror::Error;

use super::{EdgeApp, MINIMAL_ENGINE, TurnRequest};
use crate::api::{Flavour, OpenAiTurn};
use crate::backend::{self, BackendFailure};
use crate::history::{Role, Turn};
use crate::http::HttpResponse;
use crate::platform::{ConversationStore, Outbound, RecordKind, Services, StoreKey};
use crate::replies::{Reply, closing_sentence, minimal_reply};

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
        }
    }
}

fn openai_chunk(openai: &OpenAiTurn, delta: Value, finish_reason: Value) -> Value {
    json!({
        "id": openai.id,
        "object": "chat.completion.chunk",
        "created": openai.created_s,
        "model": openai.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    })
}

impl EdgeApp {
    /// Streams the answer of a turn [`EdgeApp::serve`] accepted, then stores it.
    pub async fn stream<S: ConversationStore, O: Outbound, K: BodySink>(
        &self,
        turn: StreamingTurn,
        svc: &Services<'_, S, O>,
        sink: &mut K,
    ) {
        let turn = *turn.turn;
        let span = tracing::info_span!("stream", request_id = %turn.request_id);
        let _entered = span.enter();
        let mut events = Events {
            sink,
            flavour: &turn.flavour,
            delivered: String::new(),
            client_gone: false,
        };
        let message = turn.message.as_str();
        let context = turn.context.as_ref();
        let roll = svc.random.next_u64();
        let mut engine = MINIMAL_ENGINE;
        let mut fallback_used = turn.wants_backend;
        let mut cut = None;
        if turn.wants_backend {
            let answered = self
                .stream_from_backend(&turn, svc, &mut events, roll)
                .await;
            match answered {
                Ok((answered_by, cut_by)) => {
                    engine = answered_by;
                    fallback_used = cut_by.is_some();
                    cut = cut_by;
                }
                Err(failure) => {
                    tracing::warn!(target: "fallback", reason = failure.reason(), %failure, "full mode fell back to minimal");
                }
            }
        }
        let mut context_used = engine != MINIMAL_ENGINE && context.is_some();
        let minimal = if engine == MINIMAL_ENGINE {
            // Nothing came from the backend: the minimal reply is the answer. The previous
            // assistant turn keeps it from repeating itself word for word.
            let previous = self.last_assistant_turn(&turn.user, svc).await;
            let reply = minimal_reply(message, context, previous.as_deref(), roll);
            events.delta(&reply.text).await;
            context_used = reply.context_used;
            Some(reply)
        } else {
            None
        };
        let delivered = events.delivered.trim().to_owned();
        let user_intent = context.and_then(|c| c.intent.clone());
        let stored = self
            .append_exchange(&turn.user, message, user_intent, svc, |_| {
                // The intent of the exchange as the reply engine reads it.
                let intent = minimal
                    .as_ref()
                    .map(|m| m.intent.clone())
                    .unwrap_or_else(|| minimal_reply(message, context, None, roll).intent);
                let reply = Reply {
                    text: delivered.clone(),
                    intent,
                    context_used,
                };
                (reply, engine)
            })
            .await;
        if let Err(error) = stored {
            tracing::error!(%error, "streamed turn not stored");
            let (_, error_type, code) = error.parts();
            let frame =
                json!({"error": {"message": error.to_string(), "type": error_type, "code": code}});
            events.frame(&frame.to_string()).await;
            return;
        }
        let reply = Reply {
            text: delivered,
            intent: String::new(),
            context_used,
        };
        let summary = self.summary_of(&turn, reply, engine, fallback_used, svc.clock.now_ms());
        match &turn.flavour {
            Flavour::Eindr => {
                let mut done = serde_json::to_value(&summary).unwrap_or(Value::Null);
                if let Value::Object(fields) = &mut done {
                    fields.insert("done".into(), Value::Bool(true));
                }
                events.frame(&done.to_string()).await;
            }
            // OpenAI clients have no place for a closing sentence: a cut answer ends with
            // an error event, never a clean-looking end.
            Flavour::OpenAi(_) if cut.is_some() => {
                let frame = json!({"error": {
                    "message": "the model's answer broke off",
                    "type": "server_error",
                    "code": "stream_cut",
                }});
                events.frame(&frame.to_string()).await;
                return;
            }
            Flavour::OpenAi(openai) => {
                let last = openai_chunk(openai, json!({}), json!("stop"));
                events.frame(&last.to_string()).await;
            }
        }
        events.frame("[DONE]").await;
    }

    /// Relays the backend's answer as deltas. `Ok((engine, cut))` once text was delivered
    /// (in the Eindr flavour a cut answer is finished with a closing sentence); `Err` when
    /// nothing usable came.
    async fn stream_from_backend<S: ConversationStore, O: Outbound, K: BodySink>(
        &self,
        turn: &TurnRequest,
        svc: &Services<'_, S, O>,
        events: &mut Events<'_, K>,
        roll: u64,
    ) -> Result<(&'static str, Option<BackendFailure>), BackendFailure> {
        let mut answer = backend::start(
            &self.config,
            &self.history,
            svc,
            &turn.user,
            &turn.message,
            turn.context.as_ref(),
        )
        .await?;
        let cut = loop {
            match answer.next_text().await {
                Ok(Some(text)) => {
                    events.delta(&text).await;
                    if events.client_gone {
                        break None;
                    }
                }
                Ok(None) => break None,
                Err(failure) => break Some(failure),
            }
        };
        events.delta(&answer.flush()).await;
        let nothing = events.delivered.trim().is_empty();
        let outcome = match (&cut, nothing) {
            (Some(failure), true) => Err(failure.clone()),
            (None, true) => Err(BackendFailure::Empty),
            (cut, false) => Ok(cut.clone()),
        };
        backend::settle(&self.config, svc, outcome.as_ref().map(Option::as_ref)).await;
        let cut = outcome?;
        if let Some(failure) = &cut {
            tracing::warn!(target: "fallback", reason = failure.reason(), %failure, "answer cut; closed by the edge");
            if turn.flavour == Flavour::Eindr {
                events.delta(&format!(" {}", closing_sentence(roll))).await;
            }
        }
        Ok((answer.engine(), cut))
    }

    async fn last_assistant_turn<S: ConversationStore, O: Outbound>(
        &self,
        user: &str,
        svc: &Services<'_, S, O>,
    ) -> Option<String> {
        let key = StoreKey {
            kind: RecordKind::History,
            owner: user,
        };
        let bytes = svc.store.get(key).await.ok()?;
        let conversation = self
            .history
            .decode(bytes.as_deref(), key.flat().as_bytes())
            .ok()?;
        conversation
            .turns
            .iter()
            .rev()
            .find(|t: &&Turn<'_>| t.role == Role::Assistant)
            .map(|t| t.content.to_string())
    }
}
