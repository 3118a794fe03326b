//! One full-mode turn against gpu-backend: ask the circuit breaker, send the conversation
//! and the new message, hand out the masked answer piece by piece ([`BackendTurn`]), and tell
//! the breaker how it went ([`settle`]). The caller (the edge's turn runner) reads the
//! conversation once and decides what the user gets.

use eindr_contract::InferenceEngine;

use super::breaker::{Admission, BreakerPolicy, BreakerState};
use super::{BackendFailure, TokenStream, chat_request};
use crate::api::ChatContext;
use crate::config::{BackendConfig, GenerationSettings};
use crate::history::Turn;
use crate::pii::PiiStream;
use crate::platform::{ConversationStore, Outbound, RecordKind, Services, StoreKey};

/// The breaker's record: one per serving place (see [`RecordKind::BackendBreaker`]).
pub const BREAKER_KEY: StoreKey<'static> = StoreKey {
    kind: RecordKind::BackendBreaker,
    owner: "gpu-backend",
};

pub fn breaker_policy(backend: &BackendConfig) -> BreakerPolicy {
    BreakerPolicy {
        failures: backend.breaker_failures,
        open_ms: backend.breaker_open_ms,
    }
}

/// An answer in progress: masked text comes out of [`BackendTurn::next_text`].
pub struct BackendTurn<'a, O: Outbound> {
    tokens: TokenStream<'a, O>,
    masker: PiiStream,
    done: bool,
}

impl<O: Outbound> BackendTurn<'_, O> {
    pub fn engine(&self) -> InferenceEngine {
        self.tokens.engine()
    }

    pub fn first_token_ms(&self) -> Option<u64> {
        self.tokens.first_token_after_ms()
    }

    /// The backend's token counts, once its closing usage chunk came.
    pub fn usage(&self) -> Option<eindr_contract::openai::Usage> {
        self.tokens.usage()
    }

    /// The next text that may leave the edge (possibly empty while the masker holds a word
    /// back); `None` after a clean end. After an error nothing more comes, but what the
    /// masker held is still released by [`BackendTurn::flush`].
    pub async fn next_text(&mut self) -> Result<Option<String>, BackendFailure> {
        if self.done {
            return Ok(None);
        }
        match self.tokens.next().await {
            Ok(Some(piece)) => Ok(Some(self.masker.push(&piece.text))),
            Ok(None) => {
                self.done = true;
                Ok(Some(self.masker.finish()))
            }
            Err(failure) => {
                self.done = true;
                Err(failure)
            }
        }
    }

    /// Whether the PII filter masked any of the answer.
    pub fn masked_anything(&self) -> bool {
        self.masker.masked_anything()
    }

    /// What the masker still holds (after a failure: the words received before it).
    pub fn flush(&mut self) -> String {
        self.masker.finish()
    }
}

/// Starts a turn: breaker admission, the request with the conversation so far (`history`,
/// retention already applied), the response head within the first-token budget. A failure
/// here is already recorded with the breaker.
pub async fn start<'a, S: ConversationStore, O: Outbound>(
    backend: &BackendConfig,
    generation: &GenerationSettings,
    svc: &Services<'a, S, O>,
    history: &[Turn<'_>],
    message: &str,
    context: Option<&ChatContext>,
) -> Result<BackendTurn<'a, O>, BackendFailure> {
    let url = backend
        .url
        .as_deref()
        .ok_or(BackendFailure::NotConfigured)?;
    let policy = breaker_policy(backend);
    let mut admission = Admission::Send;
    svc.store
        .update(BREAKER_KEY, &mut |current| {
            let (a, write) = BreakerState::decode(current).admit(policy, svc.clock.now_ms());
            admission = a;
            write
        })
        .await
        .map_err(|e| BackendFailure::Store(e.to_string()))?;
    if let Admission::Reject { retry_in_ms } = admission {
        return Err(BackendFailure::BreakerOpen { retry_in_ms });
    }
    let request = chat_request(backend, url, generation, history, message, context);
    match TokenStream::open(svc.outbound, svc.clock, backend, request).await {
        Ok(tokens) => Ok(BackendTurn {
            tokens,
            masker: PiiStream::default(),
            done: false,
        }),
        Err(failure) => {
            settle(backend, svc, Err(&failure)).await;
            Err(failure)
        }
    }
}

/// Tells the breaker how a started turn ended: `Ok(cut)` when text came (with the failure
/// that cut it, if any), `Err` when nothing usable did.
pub async fn settle<S: ConversationStore, O: Outbound>(
    backend: &BackendConfig,
    svc: &Services<'_, S, O>,
    outcome: Result<Option<&BackendFailure>, &BackendFailure>,
) {
    let succeeded = match outcome {
        Ok(cut) => cut.is_none_or(|f| !f.counts_against_backend()),
        Err(f) => !f.counts_against_backend(),
    };
    let policy = breaker_policy(backend);
    let now = svc.clock.now_ms();
    let recorded = svc
        .store
        .update(BREAKER_KEY, &mut |current| {
            BreakerState::decode(current).record(policy, succeeded, now)
        })
        .await;
    if let Err(error) = recorded {
        // The answer is good either way; a lost breaker update only delays its reaction.
        tracing::warn!(%error, "circuit breaker state not saved");
    }
}
