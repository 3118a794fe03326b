//! Prometheus metrics (`GET /metrics`, text exposition): requests by route and status, their
//! duration, rate-limited requests, store errors, turns by engine, fallbacks by reason and the
//! cache of model answers by outcome. The last three come from the core's own log events
//! (targets `turn`, `fallback`, `cache`), read by a tracing layer, so the core needs no metrics
//! API and every platform logs the same lines.

use std::sync::{Arc, Mutex};

use edge_core::StoreError;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<Labels, Counter>,
    request_seconds: Family<Labels, Histogram>,
    rate_limited: Family<Labels, Counter>,
    store_errors: Family<Labels, Counter>,
    turns: Family<Labels, Counter>,
    fallbacks: Family<Labels, Counter>,
    cache: Family<Labels, Counter>,
}

fn new_histogram() -> Histogram {
    // 100 µs .. ~26 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 19))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("eindr_edge");
        let requests = Family::<Labels, Counter>::default();
        let request_seconds =
            Family::<Labels, Histogram>::new_with_constructor(new_histogram as fn() -> Histogram);
        let rate_limited = Family::<Labels, Counter>::default();
        let store_errors = Family::<Labels, Counter>::default();
        let turns = Family::<Labels, Counter>::default();
        let fallbacks = Family::<Labels, Counter>::default();
        let cache = Family::<Labels, Counter>::default();
        registry.register("requests", "Requests by route and status", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time to the response head, by route (a streamed turn's body runs on after it)",
            request_seconds.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with 429, by code (rate_limit_exceeded, auth_failures_exceeded)",
            rate_limited.clone(),
        );
        registry.register(
            "store_errors",
            "Store operations that failed, by kind (unavailable, contention)",
            store_errors.clone(),
        );
        registry.register(
            "turns",
            "Turns answered and stored, by the engine that answered (minimal, vLLM, cpu)",
            turns.clone(),
        );
        registry.register(
            "fallbacks",
            "Full-mode turns the edge answered or closed itself, by reason",
            fallbacks.clone(),
        );
        registry.register(
            "cache",
            "Cached model answers by outcome (hit, miss, bypass, fallback, stored, error) and key kind (intent, exact, none)",
            cache.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            request_seconds,
            rate_limited,
            store_errors,
            turns,
            fallbacks,
            cache,
        }
    }

    pub fn request(&self, route: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.request_seconds
            .get_or_create(&vec![("route", route.to_owned())])
            .observe(seconds);
    }

    pub fn rate_limited(&self, code: &str) {
        self.rate_limited
            .get_or_create(&vec![("code", code.to_owned())])
            .inc();
    }

    pub fn store_error(&self, error: &StoreError) {
        let kind = match error {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Contention { .. } => "contention",
        };
        self.store_errors
            .get_or_create(&vec![("kind", kind.to_owned())])
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Writing into a String does not fail.
            let _ = encode(&mut out, &registry);
        }
        out
    }
}

/// The route label: the route's pattern, never a user id (bounded cardinality).
pub fn route_label(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    match path.trim_end_matches('/') {
        "" | "/chat" | "/chat.js" | "/chat.css" => "page",
        "/health" => "/health",
        "/ready" => "/ready",
        "/metrics" => "/metrics",
        "/api/chat/respond" => "/api/chat/respond",
        "/api/chat/health" => "/api/chat/health",
        "/api/chat/model-info" => "/api/chat/model-info",
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/models" => "/v1/models",
        "/api/chat/cache/warm" => "/api/chat/cache/warm",
        p if p.starts_with("/api/chat/history/") => "/api/chat/history/{user_id}",
        p if p.starts_with("/api/chat/summary/") => "/api/chat/summary/{user_id}",
        _ => "other",
    }
}

/// Counts the core's `turn`, `fallback` and `cache` events.
pub struct EventCounter(pub Arc<Metrics>);

#[derive(Default)]
struct Fields {
    engine: Option<String>,
    reason: Option<String>,
    outcome: Option<String>,
    key: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "engine" => self.engine = Some(value.to_owned()),
            "reason" => self.reason = Some(value.to_owned()),
            "outcome" => self.outcome = Some(value.to_owned()),
            "key" => self.key = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for EventCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if !matches!(target, "turn" | "fallback" | "cache") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(engine) = fields.engine.filter(|_| target == "turn") {
            self.0.turns.get_or_create(&vec![("engine", engine)]).inc();
        }
        if let Some(reason) = fields.reason.filter(|_| target == "fallback") {
            self.0
                .fallbacks
                .get_or_create(&vec![("reason", reason)])
                .inc();
        }
        if let Some(outcome) = fields.outcome.filter(|_| target == "cache") {
            // `key`: the pool's kind (intent or exact); absent for a turn that had none.
            let key = fields.key.unwrap_or_else(|| "none".into());
            self.0
                .cache
                .get_or_create(&vec![("outcome", outcome), ("key", key)])
                .inc();
        }
    }
}
