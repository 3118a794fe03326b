//! gpu-backend's streamed answer, read under the edge's deadlines: the first token within
//! its budget (counted from the send), then no silence longer than the idle limit, and the
//! whole answer within the total. A clean end is `[DONE]`; anything else is a failure.

use std::pin::pin;

use eindr_contract::openai::{ChatCompletionChunk, ErrorBody, Usage};
use eindr_contract::{ENGINE_HEADER, InferenceEngine};
use eventsource_stream::{EventStream, EventStreamError};
use futures_util::StreamExt;
use futures_util::future::{Either, select};

use super::BackendFailure;
use crate::config::BackendConfig;
use crate::platform::{Clock, Outbound, OutboundRequest};

/// One piece of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub finish_reason: Option<String>,
}

pub struct TokenStream<'a, O: Outbound> {
    outbound: &'a O,
    clock: &'a dyn Clock,
    events: EventStream<O::Body>,
    engine: InferenceEngine,
    started_ms: u64,
    first_token_ms: u64,
    idle_ms: u64,
    total_ms: u64,
    /// Time to first token, once it came.
    first_token_after_ms: Option<u64>,
    finished: bool,
    /// The token counts of the closing usage chunk, once it came.
    usage: Option<Usage>,
}

/// Runs `work` unless `ms` pass first.
pub(crate) async fn within<O: Outbound, T>(
    outbound: &O,
    ms: u64,
    work: impl Future<Output = T>,
) -> Option<T> {
    match select(pin!(work), pin!(outbound.sleep(ms))).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(((), _)) => None,
    }
}

impl<'a, O: Outbound> TokenStream<'a, O> {
    /// Sends the request; the response head must come within the first-token budget.
    pub async fn open(
        outbound: &'a O,
        clock: &'a dyn Clock,
        config: &BackendConfig,
        request: OutboundRequest,
    ) -> Result<Self, BackendFailure> {
        let started_ms = clock.now_ms();
        let budget = config.first_token_timeout_ms;
        let response = within(outbound, budget, outbound.send(request))
            .await
            .ok_or(BackendFailure::FirstTokenTimeout(budget))??;
        if response.status != 200 {
            let status = response.status;
            let elapsed = clock.now_ms().saturating_sub(started_ms);
            let mut body = response.body;
            // The error's code says whether the backend is at fault (see `counts_against_backend`).
            let first = within(outbound, budget.saturating_sub(elapsed).max(1), body.next()).await;
            let code = first
                .flatten()
                .and_then(Result::ok)
                .and_then(|bytes| serde_json::from_slice::<ErrorBody>(&bytes).ok())
                .map_or_else(|| "unknown".into(), |e| e.error.code_text());
            return Err(BackendFailure::Status { status, code });
        }
        Ok(Self {
            engine: InferenceEngine::from_header(response.header(ENGINE_HEADER)),
            outbound,
            clock,
            events: EventStream::new(response.body),
            started_ms,
            first_token_ms: budget,
            idle_ms: config.idle_timeout_ms,
            total_ms: config.total_timeout_ms,
            first_token_after_ms: None,
            finished: false,
            usage: None,
        })
    }

    pub fn engine(&self) -> InferenceEngine {
        self.engine
    }

    pub fn first_token_after_ms(&self) -> Option<u64> {
        self.first_token_after_ms
    }

    /// The backend's token counts (prompt and answer), once its usage chunk came.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The next piece with text, `None` after `[DONE]`.
    pub async fn next(&mut self) -> Result<Option<Piece>, BackendFailure> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let now = self.clock.now_ms();
            let elapsed = now.saturating_sub(self.started_ms);
            let total_left = self.total_ms.saturating_sub(elapsed);
            let (wait, on_timeout) = match self.first_token_after_ms {
                None => (
                    self.first_token_ms.saturating_sub(elapsed),
                    BackendFailure::FirstTokenTimeout(self.first_token_ms),
                ),
                Some(_) => (self.idle_ms, BackendFailure::IdleTimeout(self.idle_ms)),
            };
            let (wait, on_timeout) = if total_left < wait {
                (total_left, BackendFailure::TotalTimeout(self.total_ms))
            } else {
                (wait, on_timeout)
            };
            if wait == 0 {
                return Err(on_timeout);
            }
            let event = within(self.outbound, wait, self.events.next())
                .await
                .ok_or(on_timeout)?;
            let event = match event {
                None => return Err(BackendFailure::Cut),
                Some(Err(EventStreamError::Transport(e))) => return Err(e.into()),
                Some(Err(e)) => return Err(BackendFailure::Garbage(e.to_string())),
                Some(Ok(event)) => event,
            };
            let data = event.data.trim();
            if data == "[DONE]" {
                self.finished = true;
                return Ok(None);
            }
            let chunk: ChatCompletionChunk = serde_json::from_str(data)
                .map_err(|e| BackendFailure::Garbage(format!("{e}: {}", preview(data))))?;
            if let Some(error) = chunk.error {
                let error = serde_json::to_string(&error).unwrap_or_default();
                return Err(BackendFailure::ErrorEvent(preview(&error)));
            }
            if let Some(usage) = chunk.usage {
                self.usage = Some(usage);
            }
            // A usage-only chunk has no choices; the opening chunk has only the role.
            let Some(choice) = chunk.choices.into_iter().flatten().next() else {
                continue;
            };
            let text = choice.delta.content.unwrap_or_default();
            if text.is_empty() && choice.finish_reason.is_none() {
                continue;
            }
            if self.first_token_after_ms.is_none() {
                self.first_token_after_ms =
                    Some(self.clock.now_ms().saturating_sub(self.started_ms));
            }
            return Ok(Some(Piece {
                text,
                finish_reason: choice.finish_reason,
            }));
        }
    }
}

fn preview(text: &str) -> String {
    text.chars().take(120).collect()
}
