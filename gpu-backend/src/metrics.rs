//! Prometheus metrics (`GET /metrics`, text exposition): requests, time to first token,
//! tokens, engine availability, generations by engine, failovers, and the backend's own added latency.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use eindr_contract::InferenceEngine;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<Labels, Counter>,
    request_seconds: Histogram,
    first_token_seconds: Histogram,
    added_latency_seconds: Histogram,
    tokens: Family<Labels, Counter>,
    engine_available: Family<Labels, Gauge>,
    generations: Family<Labels, Counter>,
    failovers: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gpu_backend");
        let requests = Family::<Labels, Counter>::default();
        // 1 ms .. ~65 s.
        let request_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        let first_token_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        // 10 µs .. ~160 ms: the backend's own work per request.
        let added_latency_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 15));
        let tokens = Family::<Labels, Counter>::default();
        let engine_available = Family::<Labels, Gauge>::default();
        let failovers = Counter::default();
        let generations = Family::<Labels, Counter>::default();
        registry.register("requests", "Chat requests by outcome", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Chat request duration",
            request_seconds.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time from request to the engine's first token",
            first_token_seconds.clone(),
        );
        registry.register(
            "added_latency_seconds",
            "Time spent in the backend itself (prompt building, parsing, forwarding), excluding the engine",
            added_latency_seconds.clone(),
        );
        registry.register("tokens", "Tokens by kind", tokens.clone());
        registry.register(
            "engine_available",
            "1 when the engine can answer: a vLLM server passing its health check, or the loaded CPU engine",
            engine_available.clone(),
        );
        registry.register(
            "generations",
            "Generations started, by the engine that answered (vLLM, cpu)",
            generations.clone(),
        );
        registry.register(
            "failovers",
            "Requests moved to another engine after one failed before its first token (the fallback count)",
            failovers.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            request_seconds,
            first_token_seconds,
            added_latency_seconds,
            tokens,
            engine_available,
            generations,
            failovers,
        }
    }

    /// Starts the record of one chat request; see [`RequestRecord`].
    pub fn request(self: &Arc<Self>) -> RequestRecord {
        RequestRecord {
            metrics: Arc::clone(self),
            started: Instant::now(),
            outcome: "cancelled",
        }
    }

    pub fn observe_first_token(&self, seconds: f64) {
        self.first_token_seconds.observe(seconds);
    }

    pub fn observe_added_latency(&self, seconds: f64) {
        self.added_latency_seconds.observe(seconds);
    }

    pub fn count_tokens(&self, prompt: u32, completion: u32) {
        self.tokens
            .get_or_create(&vec![("kind", "prompt".to_owned())])
            .inc_by(u64::from(prompt));
        self.tokens
            .get_or_create(&vec![("kind", "completion".to_owned())])
            .inc_by(u64::from(completion));
    }

    /// One series per vLLM server, one for the CPU engine (`server="local"`).
    pub fn set_engine_available(&self, engine: InferenceEngine, server: &str, available: bool) {
        self.engine_available
            .get_or_create(&vec![
                ("engine", engine.as_str().to_owned()),
                ("server", server.to_owned()),
            ])
            .set(i64::from(available));
    }

    /// A generation started on `engine`: which engine is answering.
    pub fn count_generation(&self, engine: InferenceEngine) {
        self.generations
            .get_or_create(&vec![("inference_engine", engine.as_str().to_owned())])
            .inc();
    }

    pub fn count_failover(&self) {
        self.failovers.inc();
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Writing to a String cannot fail.
            let _ = encode(&mut text, &registry);
        }
        text
    }
}

/// One chat request in the metrics: written once, when the record is dropped (the answer
/// sent, the stream ended, or the client gone), with the outcome last set by
/// [`RequestRecord::finish`] (`ok` or the error's code; `cancelled` when the client left
/// before the end) and the time since the request came in.
pub struct RequestRecord {
    metrics: Arc<Metrics>,
    started: Instant,
    outcome: &'static str,
}

impl RequestRecord {
    pub fn finish(&mut self, outcome: &'static str) {
        self.outcome = outcome;
    }

    /// Seconds since the request came in.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.metrics
            .requests
            .get_or_create(&vec![("outcome", self.outcome.to_owned())])
            .inc();
        self.metrics.request_seconds.observe(self.elapsed_s());
    }
}
