//! What operators chart, in one vocabulary on every runtime: the facts of each turn and of
//! each request, emitted once each. Never the message, the user id or a token: every field is
//! a small closed set or a number, so any platform can index or label by it.
//!
//! The core logs each as a `facts` event (one structured line: Workers Logs, Spin's log
//! collector) and hands it to the platform's [`FactsSink`]: Prometheus in `eindr-edge`, a
//! Workers Analytics Engine data point on Cloudflare.

use serde::Serialize;

/// One turn: how it was answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnFacts {
    /// `eindr` (`/api/chat/respond`) or `openai` (`/v1/chat/completions`).
    pub api: &'static str,
    pub streamed: bool,
    /// What made the text: `minimal`, `vLLM`, `cpu`, or a cached model answer's engine.
    pub engine: &'static str,
    /// Full mode was asked for and the edge answered (part of) it itself.
    pub fallback: bool,
    /// Why, when it fell back: the backend failure's reason (`first_token_timeout`, …).
    pub fallback_reason: Option<&'static str>,
    /// `hit`, `miss` or `bypass` (not read).
    pub cache: &'static str,
    /// `intent` or `exact`, when the turn had a pool.
    pub cache_key: Option<&'static str>,
    /// `small_talk`, `control`, `task`, `topic` or `out_of_scope`.
    pub intent_family: &'static str,
    /// From the turn's start to its end (the last byte of a streamed answer).
    pub duration_ms: u64,
    /// From the turn's start to its first text delta, for streamed turns.
    pub first_delta_ms: Option<u64>,
}

/// One request: its route and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestFacts {
    /// The route's template (`/api/chat/history/{user_id}`), `other` for unknown paths.
    pub route: &'static str,
    pub status: u16,
    /// The error body's code, for 4xx and 5xx answers.
    pub error_code: Option<String>,
    pub rate_limited: bool,
    /// To the response head for a whole answer; to the last byte for a streamed one.
    pub duration_ms: u64,
}

/// Where a platform carries the facts. One per request, so a sink may join a request's turn
/// to the request (Analytics Engine writes one data point per request).
pub trait FactsSink {
    fn turn(&self, _facts: &TurnFacts) {}
    fn request(&self, _facts: &RequestFacts) {}
}

/// For platforms and tests that only log them.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogOnly;

impl FactsSink for LogOnly {}

/// The route's template for a method and path, as metrics label it.
pub fn route_label(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    match path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path)
    {
        "/health" => "/health",
        "/api/chat/respond" => "/api/chat/respond",
        "/api/chat/health" => "/api/chat/health",
        "/api/chat/model-info" => "/api/chat/model-info",
        "/api/chat/cache/warm" => "/api/chat/cache/warm",
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/models" => "/v1/models",
        "/ready" => "/ready",
        "/metrics" => "/metrics",
        p if p.starts_with("/api/chat/history/") => "/api/chat/history/{user_id}",
        p if p.starts_with("/api/chat/summary/") => "/api/chat/summary/{user_id}",
        "" | "/" | "/chat" | "/chat.js" | "/chat.css" => "page",
        _ => "other",
    }
}

/// One request as a Workers Analytics Engine data point: the index is the route (low
/// cardinality, never the user), and the columns are fixed, so the SQL in
/// docs/operations.md names them: `blob1` route, `blob2` error code, `blob3` api, `blob4`
/// engine, `blob5` fallback reason, `blob6` cache outcome, `blob7` cache key kind, `blob8`
/// intent family; `double1` status, `double2` duration ms, `double3` time to first delta ms
/// (0 when none), `double4` fallback (0/1), `double5` rate-limited (0/1), `double6` streamed
/// (0/1), `double7` a turn (0/1), `double8` the breaker was open for this turn (0/1). A
/// request without a turn leaves the turn's blobs empty.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    pub index: &'static str,
    pub blobs: [String; 8],
    pub doubles: [f64; 8],
}

pub fn data_point(request: &RequestFacts, turn: Option<&TurnFacts>) -> DataPoint {
    let text = |s: Option<&str>| s.unwrap_or("").to_owned();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    DataPoint {
        index: request.route,
        blobs: [
            request.route.to_owned(),
            text(request.error_code.as_deref()),
            text(turn.map(|t| t.api)),
            text(turn.map(|t| t.engine)),
            text(turn.and_then(|t| t.fallback_reason)),
            text(turn.map(|t| t.cache)),
            text(turn.and_then(|t| t.cache_key)),
            text(turn.map(|t| t.intent_family)),
        ],
        doubles: [
            f64::from(request.status),
            request.duration_ms as f64,
            turn.and_then(|t| t.first_delta_ms).unwrap_or(0) as f64,
            flag(turn.is_some_and(|t| t.fallback)),
            flag(request.rate_limited),
            flag(turn.is_some_and(|t| t.streamed)),
            flag(turn.is_some()),
            flag(turn.is_some_and(|t| t.fallback_reason == Some("breaker_open"))),
        ],
    }
}

pub(crate) fn emit_turn(sink: &dyn FactsSink, facts: &TurnFacts) {
    let line = serde_json::to_string(facts).unwrap_or_default();
    tracing::info!(target: "facts", kind = "turn", facts = %line, "turn facts");
    sink.turn(facts);
}

pub(crate) fn emit_request(sink: &dyn FactsSink, facts: &RequestFacts) {
    let line = serde_json::to_string(facts).unwrap_or_default();
    tracing::info!(target: "facts", kind = "request", facts = %line, "request facts");
    sink.request(facts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates_never_ids() {
        assert_eq!(
            route_label("/api/chat/history/alice"),
            "/api/chat/history/{user_id}"
        );
        assert_eq!(route_label("/api/chat/respond?x=1"), "/api/chat/respond");
        assert_eq!(route_label("/v1/chat/completions/"), "/v1/chat/completions");
        assert_eq!(route_label("/wp-admin"), "other");
    }

    #[test]
    fn a_data_point_has_fixed_columns() {
        let request = RequestFacts {
            route: "/api/chat/respond",
            status: 200,
            error_code: None,
            rate_limited: false,
            duration_ms: 41,
        };
        let turn = TurnFacts {
            api: "eindr",
            streamed: true,
            engine: "minimal",
            fallback: true,
            fallback_reason: Some("first_token_timeout"),
            cache: "miss",
            cache_key: Some("exact"),
            intent_family: "topic",
            duration_ms: 40,
            first_delta_ms: Some(1501),
        };
        let point = data_point(&request, Some(&turn));
        assert_eq!(point.index, "/api/chat/respond");
        assert_eq!(point.blobs[4], "first_token_timeout");
        assert_eq!(point.blobs[7], "topic");
        assert_eq!(
            point.doubles,
            [200.0, 41.0, 1501.0, 1.0, 0.0, 1.0, 1.0, 0.0]
        );
        let bare = data_point(&request, None);
        assert_eq!(bare.blobs[3], "");
        assert_eq!(bare.doubles[6], 0.0);
    }
}
