//! Prometheus metrics (`GET /metrics`, text exposition): requests, time to first token,
//! tokens, engine availability, generations by engine, failovers, and the backend's own added latency.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use eindr_contract::InferenceEngine;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
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
    supervisor_restarts: Counter,
    /// OpenTelemetry's GenAI semantic conventions, unprefixed, with the spec's buckets.
    gen_ai: Mutex<Registry>,
    operation_seconds: Family<Labels, Histogram>,
    token_usage: Family<Labels, Histogram>,
    server_first_token_seconds: Histogram,
}

/// `gen_ai.client.operation.duration`'s advised buckets (seconds).
const OPERATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// `gen_ai.client.token.usage`'s advised buckets (tokens).
const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
/// `gen_ai.server.time_to_first_token`'s advised buckets (seconds).
const FIRST_TOKEN_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

fn operation_histogram() -> Histogram {
    Histogram::new(OPERATION_BUCKETS)
}

fn token_histogram() -> Histogram {
    Histogram::new(TOKEN_BUCKETS)
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
        let supervisor_restarts = Counter::default();
        registry.register(
            "vllm_restarts",
            "Times the supervisor restarted the vLLM it runs (after an exit or a failed start)",
            supervisor_restarts.clone(),
        );
        let mut gen_ai = Registry::default();
        let operation_seconds = Family::<Labels, Histogram>::new_with_constructor(
            operation_histogram as fn() -> Histogram,
        );
        let token_usage =
            Family::<Labels, Histogram>::new_with_constructor(token_histogram as fn() -> Histogram);
        let server_first_token_seconds = Histogram::new(FIRST_TOKEN_BUCKETS);
        gen_ai.register_with_unit(
            "gen_ai_client_operation_duration",
            "GenAI operation duration (OpenTelemetry gen_ai.client.operation.duration)",
            prometheus_client::registry::Unit::Seconds,
            operation_seconds.clone(),
        );
        gen_ai.register(
            "gen_ai_client_token_usage",
            "Tokens used by a GenAI operation, by gen_ai_token_type (OpenTelemetry gen_ai.client.token.usage)",
            token_usage.clone(),
        );
        gen_ai.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time to the first generated token (OpenTelemetry gen_ai.server.time_to_first_token)",
            prometheus_client::registry::Unit::Seconds,
            server_first_token_seconds.clone(),
        );
        Self {
            supervisor_restarts,
            gen_ai: Mutex::new(gen_ai),
            operation_seconds,
            token_usage,
            server_first_token_seconds,
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
        self.server_first_token_seconds.observe(seconds);
    }

    pub fn count_vllm_restart(&self) {
        self.supervisor_restarts.inc();
    }

    pub fn observe_added_latency(&self, seconds: f64) {
        self.added_latency_seconds.observe(seconds);
    }

    pub fn count_tokens(&self, prompt: u32, completion: u32) {
        for (kind, count) in [("input", prompt), ("output", completion)] {
            self.token_usage
                .get_or_create(&vec![
                    ("gen_ai_operation_name", "chat".to_owned()),
                    ("gen_ai_token_type", kind.to_owned()),
                ])
                .observe(f64::from(count));
        }
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
        // Writing to a String cannot fail.
        if let Ok(registry) = self.registry.lock() {
            let _ = encode_registry(&mut text, &registry);
        }
        if let Ok(gen_ai) = self.gen_ai.lock() {
            let _ = encode_registry(&mut text, &gen_ai);
        }
        let _ = encode_eof(&mut text);
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
        // `error_type` as the GenAI conventions name it: empty when the operation succeeded.
        let error_type = if self.outcome == "ok" {
            ""
        } else {
            self.outcome
        };
        self.metrics
            .operation_seconds
            .get_or_create(&vec![
                ("gen_ai_operation_name", "chat".to_owned()),
                ("error_type", error_type.to_owned()),
            ])
            .observe(self.elapsed_s());
    }
}
