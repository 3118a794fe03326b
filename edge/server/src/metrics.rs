//! Prometheus metrics (`GET /metrics`, text exposition): requests by route and status, their
//! duration, rate-limited requests, store errors, turns by engine, fallbacks by reason and the
//! cache of model answers by outcome. The last three come from the core's own log events
//! (targets `turn`, `fallback`, `cache`), read by a tracing layer, so the core needs no metrics
//! API and every platform logs the same lines.

use std::sync::{Arc, Mutex};

use edge_core::StoreError;
use edge_core::facts::{FactsSink, TurnFacts};
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
    unconfirmed_writes: Counter,
    turns: Family<Labels, Counter>,
    fallbacks: Family<Labels, Counter>,
    cache: Family<Labels, Counter>,
    turn_facts: Family<Labels, Counter>,
    breaker_open: prometheus_client::metrics::gauge::Gauge,
    turn_seconds: Family<Labels, Histogram>,
    first_delta_seconds: Family<Labels, Histogram>,
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
        let unconfirmed_writes = Counter::default();
        registry.register(
            "store_unconfirmed_writes",
            "Writes acknowledged under STORE_DURABILITY=replicated without a replica's confirmation (WAIT timed out or its primary was lost)",
            unconfirmed_writes.clone(),
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
        let turn_facts = Family::<Labels, Counter>::default();
        let turn_seconds =
            Family::<Labels, Histogram>::new_with_constructor(new_histogram as fn() -> Histogram);
        let first_delta_seconds =
            Family::<Labels, Histogram>::new_with_constructor(new_histogram as fn() -> Histogram);
        registry.register(
            "turn_facts",
            "Turns by the core's facts: api, engine, fallback, cache outcome and key kind, intent family (docs/operations.md)",
            turn_facts.clone(),
        );
        registry.register(
            "turn_duration_seconds",
            "A turn from its start to its end (a streamed answer's last byte), by api, engine and streamed",
            turn_seconds.clone(),
        );
        registry.register(
            "time_to_first_delta_seconds",
            "A streamed turn from its start to its first text delta, by api and engine",
            first_delta_seconds.clone(),
        );
        let breaker_open = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "backend_breaker_open",
            "1 while the circuit breaker in front of gpu-backend is open (turns answered here)",
            breaker_open.clone(),
        );
        Self {
            turn_facts,
            breaker_open,
            turn_seconds,
            first_delta_seconds,
            registry: Mutex::new(registry),
            requests,
            request_seconds,
            rate_limited,
            store_errors,
            unconfirmed_writes,
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

    pub fn unconfirmed_write(&self) {
        self.unconfirmed_writes.inc();
    }

    pub fn set_breaker_open(&self, open: bool) {
        self.breaker_open.set(i64::from(open));
    }

    /// One turn's facts (the core calls this through [`edge_core::facts::FactsSink`]).
    fn turn_facts(&self, f: &TurnFacts) {
        self.turn_facts
            .get_or_create(&vec![
                ("api", f.api.to_owned()),
                ("engine", f.engine.to_owned()),
                ("fallback", f.fallback.to_string()),
                ("cache", f.cache.to_owned()),
                ("cache_key", f.cache_key.unwrap_or("none").to_owned()),
                ("intent_family", f.intent_family.to_owned()),
            ])
            .inc();
        self.turn_seconds
            .get_or_create(&vec![
                ("api", f.api.to_owned()),
                ("engine", f.engine.to_owned()),
                ("streamed", f.streamed.to_string()),
            ])
            .observe(f.duration_ms as f64 / 1000.0);
        if let Some(ms) = f.first_delta_ms {
            self.first_delta_seconds
                .get_or_create(&vec![
                    ("api", f.api.to_owned()),
                    ("engine", f.engine.to_owned()),
                ])
                .observe(ms as f64 / 1000.0);
        }
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
pub use edge_core::facts::route_label;

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

/// The core's facts as Prometheus series (requests are counted by the HTTP layer, at the head).
impl FactsSink for Metrics {
    fn turn(&self, facts: &TurnFacts) {
        self.turn_facts(facts);
    }
}
