//! The engine's pieces as OpenAI answers: one `chat.completion` (post-processed), or chunks as
//! server-sent events ending in `[DONE]` after a clean finish, or in an error event (and no
//! `[DONE]`) when the engine failed mid-answer. The request's metrics record travels with the
//! answer and is written when it ends.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Json;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use eindr_contract::openai::{
    AnswerMessage, ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, Delta, Role, Usage,
};
use futures::{Stream, StreamExt};

use super::AppState;
use super::chat::now_s;
use crate::engine::Pieces;
use crate::metrics::RequestRecord;
use crate::postprocess::finish_reply;
use crate::sse::Piece;

pub(super) async fn whole_response(
    state: &AppState,
    mut pieces: Pieces,
    id: String,
    mut record: RequestRecord,
    prepared: Duration,
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
            Err(error) => {
                record.finish(error.parts().2);
                return error.into_response();
            }
        }
    }
    let finishing = Instant::now();
    let finish_reason = finish_reason.unwrap_or_else(|| "stop".into());
    let reply = match finish_reply(&text, finish_reason == "length") {
        Ok(reply) => reply,
        Err(error) => {
            record.finish(error.parts().2);
            return error.into_response();
        }
    };
    state
        .metrics
        .count_tokens(usage.prompt_tokens, usage.completion_tokens);
    let body = ChatCompletion {
        id,
        object: "chat.completion".into(),
        created: now_s(),
        model: state.generation.model_name.clone(),
        choices: vec![Choice {
            index: 0,
            message: AnswerMessage {
                role: Role::Assistant,
                content: reply,
                refusal: None,
            },
            logprobs: None,
            finish_reason,
        }],
        usage,
    };
    let response = Json(body).into_response();
    state
        .metrics
        .observe_added_latency((prepared + finishing.elapsed()).as_secs_f64());
    record.finish("ok");
    response
}

fn chunk(model: &str, id: &str, delta: Delta, finish: Option<String>) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: id.to_owned(),
        object: "chat.completion.chunk".into(),
        created: now_s(),
        model: model.to_owned(),
        choices: Some(vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
        }]),
        usage: None,
        error: None,
    }
}

fn event(value: &impl serde::Serialize) -> Event {
    Event::default().data(serde_json::to_string(value).unwrap_or_default())
}

/// Where a streamed answer stands between two pieces.
struct Relay {
    pieces: Pieces,
    record: RequestRecord,
    usage: Option<Usage>,
    done: bool,
}

pub(super) fn stream_response(
    state: &AppState,
    pieces: Pieces,
    id: String,
    include_usage: bool,
    record: RequestRecord,
    prepared: Duration,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
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
    let relay = Relay {
        pieces,
        record,
        usage: None,
        done: false,
    };
    let body = futures::stream::unfold(relay, move |mut relay| {
        let (model, id) = (model.clone(), id.clone());
        async move {
            if relay.done {
                return None;
            }
            let events = match relay.pieces.next().await {
                // vLLM's incremental detokenizer sends empty pieces; pass on only text.
                Some(Ok(Piece::Text {
                    text,
                    finish_reason: None,
                })) if text.is_empty() => Vec::new(),
                Some(Ok(Piece::Text {
                    text,
                    finish_reason,
                })) => {
                    let delta = Delta {
                        role: None,
                        content: Some(text),
                    };
                    vec![event(&chunk(&model, &id, delta, finish_reason))]
                }
                Some(Ok(Piece::Usage(u))) => {
                    relay.usage = Some(u);
                    Vec::new()
                }
                Some(Err(error)) => {
                    relay.record.finish(error.parts().2);
                    relay.done = true;
                    vec![Event::default().data(error.sse_data())]
                }
                None => {
                    let mut events = Vec::new();
                    if let Some(u) = relay.usage {
                        relay
                            .record
                            .metrics()
                            .count_tokens(u.prompt_tokens, u.completion_tokens);
                        if include_usage {
                            events.push(event(&ChatCompletionChunk {
                                id: id.clone(),
                                object: "chat.completion.chunk".into(),
                                created: now_s(),
                                model: model.clone(),
                                choices: Some(Vec::new()),
                                usage: Some(u),
                                error: None,
                            }));
                        }
                    }
                    events.push(Event::default().data("[DONE]"));
                    relay.record.finish("ok");
                    relay.done = true;
                    events
                }
            };
            Some((events, relay))
        }
    })
    .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok)));
    Sse::new(futures::stream::once(async move { Ok(opening) }).chain(body))
}
