//! A turn's answer as the client gets it in one piece: the Eindr response object, or OpenAI's
//! `chat.completion` with the Eindr fields alongside. The streamed closing frame carries the
//! same response object.

use eindr_contract::openai::Usage;
use serde_json::{Value, json};

use super::EdgeApp;
use super::turn::{DeltaSink, TurnOutcome, TurnRequest};
use crate::api::{Flavour, ModelInfo, OpenAiTurn, RespondResponse};
use crate::http::HttpResponse;

/// The sink of a whole answer: collects the text.
#[derive(Default)]
pub(super) struct Collected(String);

impl DeltaSink for Collected {
    async fn delta(&mut self, text: &str) {
        self.0.push_str(text);
    }

    fn delivered(&self) -> &str {
        &self.0
    }

    fn client_gone(&self) -> bool {
        false
    }

    fn closes_cut_answers(&self) -> bool {
        true
    }
}

impl EdgeApp {
    /// The Eindr response object of a finished turn.
    pub(super) fn turn_response(
        &self,
        turn: &TurnRequest,
        outcome: TurnOutcome,
        finished_ms: u64,
    ) -> RespondResponse {
        RespondResponse {
            success: true,
            response: outcome.text,
            context_used: outcome.context_used,
            fallback_used: outcome.fallback_used,
            model_info: ModelInfo {
                model_name: self.config.generation.model_name.clone(),
                inference_engine: outcome.engine,
                response_time: finished_ms.saturating_sub(turn.started_ms) as f64 / 1000.0,
            },
            intent: outcome.intent,
            // Three decimals: a probability, not f32 noise widened to f64.
            confidence: (f64::from(outcome.confidence) * 1000.0).round() / 1000.0,
            cached: outcome.cached,
        }
    }

    pub(super) fn whole_answer(
        &self,
        turn: &TurnRequest,
        outcome: TurnOutcome,
        finished_ms: u64,
    ) -> HttpResponse {
        let usage = outcome.usage.unwrap_or_default();
        let response = self.turn_response(turn, outcome, finished_ms);
        let body = match &turn.flavour {
            Flavour::Eindr => serde_json::to_value(&response).unwrap_or(Value::Null),
            Flavour::OpenAi(openai) => openai_completion(openai, &response, usage),
        };
        HttpResponse::json(200, &body)
    }
}

/// OpenAI's `chat.completion` for a whole answer, with the Eindr fields alongside. `usage` is
/// the backend's counts, or zeros when no model ran (a rule reply or a cached answer).
fn openai_completion(openai: &OpenAiTurn, response: &RespondResponse, usage: Usage) -> Value {
    json!({
        "id": openai.id,
        "object": "chat.completion",
        "created": openai.created_s,
        "model": openai.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": response.response, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": usage,
        "fallback_used": response.fallback_used,
        "model_info": response.model_info,
        "intent": response.intent,
        "confidence": response.confidence,
        "cached": response.cached,
    })
}
