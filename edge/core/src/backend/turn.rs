//! One full-mode turn against gpu-backend: ask the circuit breaker, send the stored history
//! and the new message, hand out the masked answer piece by piece, and tell the breaker how
//! it went. [`generate`] collects a whole answer; a streaming caller drives [`BackendTurn`].

use super::breaker::{Admission, BreakerPolicy, BreakerState};
use super::{BackendFailure, TokenStream, chat_request};
use crate::api::ChatContext;
use crate::config::EdgeConfig;
use crate::history::HistoryCodec;
use crate::pii::PiiStream;
use crate::platform::{ConversationStore, Outbound, RecordKind, Services, StoreKey};

/// The breaker's record: one per serving place (see [`RecordKind::BackendBreaker`]).
pub const BREAKER_KEY: StoreKey<'static> = StoreKey {
    kind: RecordKind::BackendBreaker,
    owner: "gpu-backend",
};

/// What the backend said, already masked.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub text: String,
    pub engine: &'static str,
    /// Set when the answer broke off after some text: the caller finishes it.
    pub cut: Option<BackendFailure>,
    pub first_token_ms: Option<u64>,
}

pub fn breaker_policy(config: &EdgeConfig) -> BreakerPolicy {
    BreakerPolicy {
        failures: config.backend.breaker_failures,
        open_ms: config.backend.breaker_open_ms,
    }
}

/// An answer in progress: masked text comes out of [`BackendTurn::next_text`].
pub struct BackendTurn<'a, O: Outbound> {
    tokens: TokenStream<'a, O>,
    masker: PiiStream,
    done: bool,
}

impl<O: Outbound> BackendTurn<'_, O> {
    pub fn engine(&self) -> &'static str {
        self.tokens.engine()
    }

    pub fn first_token_ms(&self) -> Option<u64> {
        self.tokens.first_token_after_ms()
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

    /// What the masker still holds (after a failure: the words received before it).
    pub fn flush(&mut self) -> String {
        self.masker.finish()
    }
}

/// Starts a turn: breaker admission, the stored history, the request, the response head
/// within the first-token budget. A failure here is already recorded with the breaker.
pub async fn start<'a, S: ConversationStore, O: Outbound>(
    config: &EdgeConfig,
    codec: &HistoryCodec,
    svc: &Services<'a, S, O>,
    user: &str,
    message: &str,
    context: Option<&ChatContext>,
) -> Result<BackendTurn<'a, O>, BackendFailure> {
    let url = config
        .backend
        .url
        .as_deref()
        .ok_or(BackendFailure::NotConfigured)?;
    let policy = breaker_policy(config);
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
    let key = StoreKey {
        kind: RecordKind::History,
        owner: user,
    };
    let stored = match svc.store.get(key).await {
        Ok(stored) => stored,
        Err(e) => {
            let failure = BackendFailure::Store(e.to_string());
            settle(config, svc, Err(&failure)).await;
            return Err(failure);
        }
    };
    // Unreadable history is the history's problem, reported when the turn is stored; the
    // backend then answers without it.
    let mut conversation = codec
        .decode(stored.as_deref(), key.flat().as_bytes())
        .unwrap_or_default();
    config
        .history
        .enforce(&mut conversation, svc.clock.now_ms());
    let request = chat_request(
        &config.backend,
        url,
        &config.generation,
        &conversation.turns,
        message,
        context,
    );
    match TokenStream::open(svc.outbound, svc.clock, &config.backend, request).await {
        Ok(tokens) => Ok(BackendTurn {
            tokens,
            masker: PiiStream::default(),
            done: false,
        }),
        Err(failure) => {
            settle(config, svc, Err(&failure)).await;
            Err(failure)
        }
    }
}

/// Tells the breaker how a started turn ended: `Ok(cut)` when text came (with the failure
/// that cut it, if any), `Err` when nothing usable did.
pub async fn settle<S: ConversationStore, O: Outbound>(
    config: &EdgeConfig,
    svc: &Services<'_, S, O>,
    outcome: Result<Option<&BackendFailure>, &BackendFailure>,
) {
    let succeeded = match outcome {
        Ok(cut) => cut.is_none_or(|f| !f.counts_against_backend()),
        Err(f) => !f.counts_against_backend(),
    };
    let policy = breaker_policy(config);
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

/// Asks gpu-backend for the whole reply to `message`. Errors mean nothing usable came back.
pub async fn generate<S: ConversationStore, O: Outbound>(
    config: &EdgeConfig,
    codec: &HistoryCodec,
    svc: &Services<'_, S, O>,
    user: &str,
    message: &str,
    context: Option<&ChatContext>,
) -> Result<Generated, BackendFailure> {
    let mut turn = start(config, codec, svc, user, message, context).await?;
    let mut text = String::new();
    let cut = loop {
        match turn.next_text().await {
            Ok(Some(piece)) => text.push_str(&piece),
            Ok(None) => break None,
            Err(failure) => break Some(failure),
        }
    };
    text.push_str(&turn.flush());
    let text = text.trim().to_owned();
    let outcome = match cut {
        Some(failure) if text.is_empty() => Err(failure),
        None if text.is_empty() => Err(BackendFailure::Empty),
        cut => Ok(Generated {
            text,
            engine: turn.engine(),
            cut,
            first_token_ms: turn.first_token_ms(),
        }),
    };
    settle(config, svc, outcome.as_ref().map(|g| g.cut.as_ref())).await;
    outcome
}
