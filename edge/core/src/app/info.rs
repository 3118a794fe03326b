//! What the edge says about itself: `/health` (liveness), `/api/chat/health` (mode, backend,
//! breaker, history and rate-limit settings), `/api/chat/model-info`, and `/v1/models`.

use eindr_contract::InferenceEngine;
use serde_json::json;

use super::EdgeApp;
use crate::backend::{self, breaker::BreakerState};
use crate::http::HttpResponse;
use crate::platform::{ConversationStore, Outbound, Services};
use crate::response_cache::KeyKind;

pub(super) fn liveness() -> HttpResponse {
    HttpResponse::json(200, &json!({"status": "ok"}))
}

impl EdgeApp {
    /// The engine full-mode turns go to while the backend answers.
    fn configured_engine(&self) -> InferenceEngine {
        if self.config.minimal_mode || self.config.backend.url.is_none() {
            InferenceEngine::Minimal
        } else {
            InferenceEngine::Vllm
        }
    }

    pub(super) async fn chat_health<S: ConversationStore, O: Outbound>(
        &self,
        svc: &Services<'_, S, O>,
    ) -> HttpResponse {
        let c = &self.config;
        let backend_health = backend::probe(svc.outbound, svc.clock, &c.backend).await;
        let breaker = match svc.store.get(backend::BREAKER_KEY).await {
            Ok(bytes) => {
                let state = BreakerState::decode(bytes.as_deref());
                if state.is_open(backend::breaker_policy(&c.backend)) {
                    "open"
                } else {
                    "closed"
                }
            }
            Err(_) => "unknown",
        };
        let engine = match self.configured_engine() {
            InferenceEngine::Minimal => InferenceEngine::Minimal,
            _ if !backend_health.reachable => InferenceEngine::Minimal,
            engine => engine,
        };
        HttpResponse::json(
            200,
            &json!({
                "success": true,
                "status": "healthy",
                "mode": if c.minimal_mode { "minimal" } else { "full" },
                "minimal_mode": c.minimal_mode,
                "inference_engine": engine,
                "backend": backend_health,
                "circuit_breaker": breaker,
                "store": "ok",
                "history": {
                    "encrypted": self.history.is_sealed(),
                    "max_turns": c.history.max_turns,
                    "retention_days": c.history.retention_ms as f64 / 86_400_000.0,
                },
                "rate_limit": {"per_minute": c.rate_limit.per_minute, "burst": c.rate_limit.burst},
                "cache": {
                    "mode": c.cache.mode.as_str(),
                    "pool_size": c.cache.pool_size,
                    "ttl_seconds": c.cache.ttl_s,
                    "store": svc.cache.kind(),
                    "shared_intents": c.cache.shared_intents,
                    "intent_min_confidence": c.cache.intent_min_confidence,
                    // Since this instance started: on Workers and Spin an instance is short-lived;
                    // the `cache` log lines count the whole fleet.
                    "hits": {
                        "intent": self.cache_hits.get(KeyKind::Intent),
                        "exact": self.cache_hits.get(KeyKind::Exact),
                        "scope": "this instance",
                    },
                },
                "auth": {"algorithms": self.auth.algorithms()},
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )
    }

    pub(super) fn model_info(&self) -> HttpResponse {
        let g = &self.config.generation;
        HttpResponse::json(
            200,
            &json!({
                "success": true,
                "model_name": g.model_name,
                "inference_engine": self.configured_engine(),
                "minimal_mode": self.config.minimal_mode,
                "max_model_len": g.max_model_len,
                "generation": {
                    "max_tokens": g.max_tokens,
                    "temperature": g.temperature,
                    "top_p": g.top_p,
                    "top_k": g.top_k,
                    "repetition_penalty": g.repetition_penalty,
                },
            }),
        )
    }

    pub(super) fn models(&self) -> HttpResponse {
        let g = &self.config.generation;
        HttpResponse::json(
            200,
            &json!({
                "object": "list",
                "data": std::iter::once(&g.model_name)
                    .chain(&g.model_aliases)
                    .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "eindr"}))
                    .collect::<Vec<_>>(),
            }),
        )
    }
}
