//! `POST /api/chat/cache/warm` (admin scope): fills pools ahead of traffic, so the first users
//! of a popular question do not wait for the model. Each question is read and keyed as a new
//! user's first turn would be (its intent's shared pool when it is sure small talk, else its
//! exact words); a pool that is not full gets one model answer per call, since a pool is
//! written at most once a second (Workers KV's limit per key). `cargo xtask warm-cache` calls
//! this in rounds until every pool is full.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::EdgeApp;
use super::answer::Collected;
use super::body::parse_warm;
use super::cached::{CacheControl, Prepared};
use super::turn::DeltaSink;
use super::turn::TurnRequest;
use crate::api::Flavour;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::history::Conversation;
use crate::http::{HttpRequest, HttpResponse};
use crate::platform::{ConversationStore, Outbound, Services};
use crate::response_cache::{CacheMode, CachedAnswer, KeyKind};

/// Questions one call may warm: each may take a backend call, and a Worker's request has a
/// bounded number of subrequests and a bounded time.
pub const MAX_WARM_QUESTIONS: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmRequest {
    pub questions: Vec<String>,
}

/// What happened to one question's pool.
#[derive(Debug, Serialize)]
struct Warmed {
    question: String,
    intent: String,
    key: &'static str,
    /// Answers in the pool after this call.
    pool_size: usize,
    full: bool,
    /// A model answer joined the pool in this call.
    added: bool,
    /// Why no answer was added to a pool that is not full (the backend failed, the answer was
    /// cut or masked, or the pool was written less than a second ago).
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
}

impl EdgeApp {
    pub(super) async fn warm_cache<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        principal: &Principal,
        svc: &Services<'_, S, O>,
        request_id: &str,
    ) -> Result<HttpResponse, ApiError> {
        if !principal.admin {
            return Err(ApiError::Forbidden(
                "warming the cache needs the chat:admin scope".into(),
            ));
        }
        let body = parse_warm(req, &self.config)?;
        if self.config.cache.mode == CacheMode::Off {
            return Err(ApiError::invalid(
                "cache_off",
                "CACHE_MODE is off: there are no pools to warm",
            ));
        }
        if self.config.minimal_mode || self.config.backend.url.is_none() {
            return Err(ApiError::invalid(
                "no_backend",
                "the edge runs in minimal mode: there is no model to answer the questions",
            ));
        }
        let mut warmed = Vec::with_capacity(body.questions.len());
        for question in body.questions {
            warmed.push(self.warm_one(question, principal, svc, request_id).await);
        }
        Ok(HttpResponse::json(
            200,
            &serde_json::json!({"success": true, "warmed": warmed}),
        ))
    }

    async fn warm_one<S: ConversationStore, O: Outbound>(
        &self,
        question: String,
        principal: &Principal,
        svc: &Services<'_, S, O>,
        request_id: &str,
    ) -> Warmed {
        let turn = TurnRequest {
            user: principal.user_id.clone(),
            message: question,
            context: None,
            wants_backend: true,
            stream: false,
            flavour: Flavour::Eindr,
            started_ms: svc.clock.now_ms(),
            request_id: request_id.to_owned(),
            // Read the pool, and keep the answer.
            cache_control: CacheControl::default(),
            prepared: None,
            prediction: OnceLock::new(),
        };
        let lookup = self.look_up(&turn, svc).await;
        let reading = turn.reading(&self.config.assistant);
        let capacity = self.config.cache.pool_size;
        let mut warmed = Warmed {
            question: turn.message.clone(),
            intent: reading.intent.to_owned(),
            key: lookup.kind.map_or("exact", KeyKind::as_str),
            pool_size: lookup.pool.len(),
            full: lookup.pool.len() >= capacity,
            added: false,
            skipped: None,
        };
        if warmed.full {
            return warmed;
        }
        // A first turn's prompt: no history.
        let prepared = Prepared {
            conversation: Ok(Conversation::default()),
            cache: lookup,
        };
        let informed = super::turn::informed_context(None, &reading);
        let mut sink = Collected::default();
        let roll = svc.random.next_u64();
        match self
            .answer_from_backend(
                &prepared,
                &turn.message,
                informed.as_ref(),
                svc,
                &mut sink,
                roll,
            )
            .await
        {
            Ok(answer) if answer.complete => {
                let fresh = CachedAnswer {
                    text: sink.delivered().trim().to_owned(),
                    engine: answer.engine,
                };
                warmed.added = self
                    .remember(&turn, &prepared.cache, fresh, answer.masked, svc)
                    .await;
                if warmed.added {
                    warmed.pool_size += 1;
                    warmed.full = warmed.pool_size >= capacity;
                } else {
                    warmed.skipped = Some(
                        "not kept: the same answer is there, the PII filter changed it, or the pool was written less than a second ago".into(),
                    );
                }
            }
            Ok(_) => warmed.skipped = Some("the answer was cut".into()),
            Err(failure) => warmed.skipped = Some(format!("the backend failed: {failure}")),
        }
        warmed
    }
}
