//! A client for gpu-backend's OpenAI-compatible API, as the edge and SDKs call it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::vllm::Backend;

pub struct Api {
    base: String,
    key: String,
    agent: ureq::Agent,
}

/// One answer: status, the engine that answered (`x-inference-engine`), body.
pub struct Answer {
    pub status: u16,
    pub engine: Option<String>,
    pub body: String,
}

impl Api {
    pub fn new(backend: &Backend) -> Self {
        Self {
            base: backend.url(),
            key: backend.key.clone(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(120)))
                .build()
                .into(),
        }
    }

    pub fn chat(&self, body: Value) -> (u16, String) {
        self.chat_with_key(&self.key, body)
    }

    pub fn chat_with_key(&self, key: &str, body: Value) -> (u16, String) {
        let answer = self.answer(key, body);
        (answer.status, answer.body)
    }

    /// A chat with the engine that answered it.
    pub fn chat_answer(&self, body: Value) -> Answer {
        self.answer(&self.key, body)
    }

    fn answer(&self, key: &str, body: Value) -> Answer {
        let mut r = self
            .agent
            .post(&format!("{}/v1/chat/completions", self.base))
            .header("authorization", &format!("Bearer {key}"))
            .send_json(body)
            .unwrap();
        Answer {
            status: r.status().as_u16(),
            engine: r
                .headers()
                .get("x-inference-engine")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: r.body_mut().read_to_string().unwrap(),
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut r = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("authorization", &format!("Bearer {}", self.key))
            .call()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }

    /// A streamed chat that must succeed and end with `[DONE]`: its chunks, `[DONE]` left off.
    pub fn chat_stream(&self, body: Value) -> Vec<Value> {
        let (status, body) = self.chat(body);
        assert_eq!(status, 200, "{body}");
        let frames = sse_data(&body);
        assert_eq!(frames.last().map(String::as_str), Some("[DONE]"), "{body}");
        frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect()
    }

    /// Chat requests gpu-backend has served (every outcome), from its `/metrics`.
    pub fn chat_requests(&self) -> u64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .filter(|l| l.starts_with("gpu_backend_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// `/health` as JSON (whatever its status).
    pub fn health(&self) -> Value {
        serde_json::from_str(&self.get("/health").1).unwrap()
    }
}

/// A one-message chat.
pub fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_owned())
        .collect()
}
