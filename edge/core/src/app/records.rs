//! A user's stored conversation: read with retention applied, and a turn's exchange appended
//! in one atomic update of the record (compare-and-swap on stores that need it).

use std::borrow::Cow;

use eindr_contract::InferenceEngine;

use super::EdgeApp;
use crate::error::ApiError;
use crate::history::{Conversation, HistoryError, Role, Turn};
use crate::platform::{ConversationStore, Outbound, RecordKind, Services, StoreKey, StoreWrite};
use crate::replies::{Previous, Reply};

pub(super) fn history_key(user: &str) -> StoreKey<'_> {
    StoreKey {
        kind: RecordKind::History,
        owner: user,
    }
}

impl EdgeApp {
    /// The user's conversation, retention applied.
    pub(super) async fn read_conversation<S: ConversationStore, O: Outbound>(
        &self,
        user: &str,
        svc: &Services<'_, S, O>,
    ) -> Result<Conversation<'static>, ApiError> {
        let key = history_key(user);
        let bytes = svc.store.get(key).await?;
        let mut conversation = self
            .history
            .decode(bytes.as_deref(), key.flat().as_bytes())?;
        self.config
            .history
            .enforce(&mut conversation, svc.clock.now_ms());
        Ok(conversation)
    }

    /// Appends the user's message (read as `intent`) and the reply to the user's history in
    /// one atomic update. `reply_to` makes the reply from the last assistant turn (so a
    /// minimal reply never repeats it); it may run more than once on compare-and-swap stores.
    pub(super) async fn append_exchange<S: ConversationStore, O: Outbound>(
        &self,
        user: &str,
        message: &str,
        intent: &str,
        svc: &Services<'_, S, O>,
        reply_to: impl Fn(Option<Previous<'_>>) -> (Reply, InferenceEngine),
    ) -> Result<(Reply, InferenceEngine), ApiError> {
        let key = history_key(user);
        let aad = key.flat();
        let policy = self.config.history;
        let mut outcome = None;
        svc.store
            .update(key, &mut |current| {
                let now = svc.clock.now_ms();
                let appended = self.history.read(current, aad.as_bytes(), |stored| {
                    // A shorter lifetime than the record's, so the new turns can borrow too.
                    let mut conversation: Conversation<'_> = stored;
                    policy.enforce(&mut conversation, now);
                    let previous = conversation
                        .turns
                        .iter()
                        .rev()
                        .find(|t| t.role == Role::Assistant)
                        .map(|t| Previous {
                            text: t.content.as_ref(),
                            intent: t.intent.as_deref(),
                        });
                    let (reply, engine) = reply_to(previous);
                    conversation.turns.push(Turn {
                        role: Role::User,
                        content: Cow::Borrowed(message),
                        ts_ms: now,
                        intent: Some(Cow::Owned(intent.to_owned())),
                        engine: None,
                    });
                    conversation.turns.push(Turn {
                        role: Role::Assistant,
                        content: Cow::Owned(reply.text.clone()),
                        ts_ms: now,
                        intent: Some(Cow::Owned(reply.intent.clone())),
                        engine: Some(Cow::Borrowed(engine.as_str())),
                    });
                    policy.enforce(&mut conversation, now);
                    self.write(&conversation, &aad, now, svc)
                        .map(|write| (write, (reply, engine)))
                });
                match appended.and_then(|r| r) {
                    Ok((write, reply)) => {
                        outcome = Some(Ok(reply));
                        write
                    }
                    Err(e) => {
                        outcome = Some(Err(e));
                        StoreWrite::Keep
                    }
                }
            })
            .await?;
        Ok(outcome.ok_or(ApiError::Internal("history update did not run"))??)
    }

    /// The record to write for `conversation`; none left means delete it.
    fn write<S: ConversationStore, O: Outbound>(
        &self,
        conversation: &Conversation<'_>,
        aad: &str,
        now: u64,
        svc: &Services<'_, S, O>,
    ) -> Result<StoreWrite, HistoryError> {
        if conversation.turns.is_empty() {
            return Ok(StoreWrite::Delete);
        }
        let mut nonce = [0u8; 12];
        svc.random.fill(&mut nonce);
        let bytes = self.history.encode(conversation, aad.as_bytes(), nonce)?;
        Ok(StoreWrite::Put {
            bytes,
            expires_at_ms: Some(self.config.history.expires_at(now)),
        })
    }
}
