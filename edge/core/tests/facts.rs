//! The turn and request facts every platform carries out (docs/operations.md): a run of turns
//! of each kind gives exactly the expected facts, once per turn and once per request, and
//! never the message or the user.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use edge_core::HttpRequest;
use edge_core::facts::{RequestFacts, TurnFacts};
use serde_json::json;

fn full() -> Harness {
    Harness::new(&[
        ("MINIMAL_MODE", "false"),
        ("BACKEND_URL", "http://gpu.test:8000"),
        ("RATE_LIMIT_BURST", "5"),
        ("RATE_LIMIT_PER_MINUTE", "1"),
        ("CACHE_MODE", "serve"),
        ("CACHE_POOL_SIZE", "1"),
        ("BACKEND_BREAKER_FAILURES", "1000"),
    ])
}

fn turn(api: &'static str, streamed: bool, engine: &'static str) -> TurnFacts {
    TurnFacts {
        api,
        streamed,
        engine,
        fallback: false,
        fallback_reason: None,
        cache: "bypass",
        cache_key: None,
        intent_family: "small_talk",
        duration_ms: 0,
        first_delta_ms: None,
    }
}

fn request(route: &'static str, status: u16, error_code: Option<&str>) -> RequestFacts {
    RequestFacts {
        route,
        status,
        error_code: error_code.map(str::to_owned),
        rate_limited: status == 429,
        duration_ms: 0,
    }
}

#[test]
fn each_kind_of_turn_and_request_gives_its_facts() {
    let h = full();
    // A model answer, first turn: the intent's pool missed, the answer joins it.
    play(&h, Script::tokens(&["Ha", "!"]));
    assert_eq!(
        h.respond("a", json!({"message": "tell me a joke"})).status,
        200
    );
    // The same intent again: a hit from the pool.
    assert_eq!(
        h.respond("b", json!({"message": "make me laugh"})).status,
        200
    );
    // The backend down: the edge answers itself (a topic question, no pool for it).
    let _ = h.respond(
        "c",
        json!({"message": "what's the weather in paris", "mode": "full"}),
    );
    // Streamed, on the OpenAI API.
    let streamed = h.send(
        HttpRequest::new("POST", "/v1/chat/completions")
            .with_header("authorization", &format!("Bearer {}", h.token("d")))
            .with_header("content-type", "application/json")
            .with_body(
                json!({"messages": [{"role": "user", "content": "hi"}], "stream": true})
                    .to_string(),
            ),
    );
    assert_eq!(streamed.status, 200);
    // Not a turn: a history read, an unknown path, and a user over the limit.
    assert_eq!(h.get("/api/chat/history/a", &h.token("a")).status, 200);
    assert_eq!(h.get("/nowhere", &h.token("a")).status, 404);
    for _ in 0..6 {
        h.respond("e", json!({"message": "hello", "mode": "minimal"}));
    }

    let turns = h.facts.turns.borrow().clone();
    let minimal = |family| TurnFacts {
        intent_family: family,
        ..turn("eindr", false, "minimal")
    };
    assert_eq!(
        turns[..4],
        [
            TurnFacts {
                cache: "miss",
                cache_key: Some("intent"),
                ..turn("eindr", false, "vLLM")
            },
            TurnFacts {
                cache: "hit",
                cache_key: Some("intent"),
                ..turn("eindr", false, "vLLM")
            },
            TurnFacts {
                fallback: true,
                fallback_reason: Some("unreachable"),
                cache: "miss",
                cache_key: Some("exact"),
                ..minimal("topic")
            },
            // Full mode, the backend down: the rule reply, streamed.
            TurnFacts {
                fallback: true,
                fallback_reason: Some("unreachable"),
                cache: "miss",
                cache_key: Some("intent"),
                first_delta_ms: Some(0),
                ..turn("openai", true, "minimal")
            },
        ]
    );
    assert_eq!(
        turns.len(),
        4 + 5,
        "the burst's five turns of `e`, the sixth refused"
    );
    assert_eq!(turns[8], minimal("small_talk"));

    let requests = h.facts.requests.borrow().clone();
    assert_eq!(
        requests[..6],
        [
            request("/api/chat/respond", 200, None),
            request("/api/chat/respond", 200, None),
            request("/api/chat/respond", 200, None),
            request("/v1/chat/completions", 200, None),
            request("/api/chat/history/{user_id}", 200, None),
            request("other", 404, Some("route_not_found")),
        ]
    );
    assert_eq!(requests.len(), 6 + 6);
    assert_eq!(
        requests.last().unwrap(),
        &request("/api/chat/respond", 429, Some("rate_limit_exceeded"))
    );
}
