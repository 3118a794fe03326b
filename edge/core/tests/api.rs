//! Every endpoint and every error status of the edge API, over the core's entry point.

mod common;

use common::*;
use edge_core::HttpRequest;
use edge_core::platform::{RecordKind, StoreKey};
use serde_json::json;

#[test]
fn health_needs_no_auth() {
    let h = Harness::new(&[]);
    let resp = h.send(HttpRequest::new("GET", "/health"));
    assert_eq!(resp.status, 200);
    assert_eq!(json(&resp)["status"], "ok");
    assert!(resp.header("x-request-id").is_some());
}

#[test]
fn respond_in_minimal_mode_with_context() {
    let h = Harness::new(&[]);
    let resp = h.respond(
        "alice",
        json!({
            "message": "remind me about the meeting at 2",
            "context": {
                "intent": "create_reminder",
                "confidence": 0.93,
                "original_transcription": "remind me about the meeting at 2",
                "processing_result": {"success": true, "data": {"title": "meeting", "time": "14:00"}},
                "some_future_field": [1, 2]
            }
        }),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let body = json(&resp);
    assert_eq!(body["success"], true);
    assert_eq!(body["context_used"], true);
    assert_eq!(body["fallback_used"], false);
    let text = body["response"].as_str().unwrap();
    assert!(
        text.contains("'meeting'") && text.contains("2 PM"),
        "{text}"
    );
    assert_eq!(body["model_info"]["inference_engine"], "minimal");
    assert_eq!(body["model_info"]["model_name"], "bigscience/bloom-560m");
    assert!(body["model_info"]["response_time"].is_number());
    assert_eq!(resp.header("ratelimit-limit"), Some("10"));
    assert_eq!(resp.header("ratelimit-remaining"), Some("9"));
    assert!(resp.header("ratelimit-reset").is_some());
}

/// A turn as a recogniser writes it, addressed to the assistant by the name it is configured
/// with, is understood as the words after the name; the replies call the assistant by it.
#[test]
fn a_spoken_turn_to_the_assistant_by_its_name() {
    let h = Harness::new(&[("ASSISTANT_NAME", "Nova")]);
    let name = json(&h.respond("alice", json!({"message": "hey nova um what is your name"})));
    let text = name["response"].as_str().unwrap();
    assert!(text.contains("Nova") && !text.contains("Eindr"), "{text}");
    let joke = json(&h.respond("bob", json!({"message": "ok nova tell me tell me a joke"})));
    let plain = json(&Harness::new(&[]).respond("bob", json!({"message": "tell me a joke"})));
    assert_eq!(joke["intent"], plain["intent"], "{joke}");
    assert_eq!(joke["intent"], "tell_joke", "{joke}");
}

#[test]
fn full_mode_without_backend_falls_back() {
    let h = Harness::new(&[]);
    let body = json(&h.respond("alice", json!({"message": "hi", "mode": "full"})));
    assert_eq!(body["fallback_used"], true);
    assert_eq!(body["model_info"]["inference_engine"], "minimal");
    let body = json(&h.respond("alice", json!({"message": "hi", "mode": "minimal"})));
    assert_eq!(body["fallback_used"], false);
    // auto follows MINIMAL_MODE.
    let h = Harness::new(&[("MINIMAL_MODE", "false")]);
    let body = json(&h.respond("alice", json!({"message": "hi"})));
    assert_eq!(body["fallback_used"], true);
}

#[test]
fn history_get_limit_delete_and_summary() {
    let h = Harness::new(&[]);
    h.respond("alice", json!({"message": "hello"}));
    h.advance_ms(1000);
    h.respond(
        "alice",
        json!({"message": "set an alarm", "context": {"intent": "set_alarm",
            "processing_result": {"success": true, "data": {"time": "07:00"}}}}),
    );
    h.advance_ms(1000);
    h.respond("alice", json!({"message": "thanks!"}));
    let token = h.token("alice");

    let resp = h.get("/api/chat/history/alice", &token);
    assert_eq!(resp.status, 200);
    let body = json(&resp);
    assert_eq!(body["count"], 6);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], "hello");
    assert_eq!(messages[0]["intent"], "greeting");
    assert_eq!(messages[0]["timestamp"], "2026-11-24T00:00:00Z");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[2]["intent"], "set_alarm");
    assert_eq!(messages[5]["role"], "assistant");

    let body = json(&h.get("/api/chat/history/alice?limit=2", &token));
    assert_eq!(body["count"], 2);
    assert_eq!(body["messages"][0]["content"], "thanks!");

    let body = json(&h.get("/api/chat/summary/alice", &token));
    assert_eq!(body["message_count"], 6);
    assert_eq!(body["user_message_count"], 3);
    assert_eq!(body["first_timestamp"], "2026-11-24T00:00:00Z");
    assert_eq!(body["last_timestamp"], "2026-11-24T00:00:02Z");
    assert_eq!(body["last_user_message"], "thanks!");
    assert_eq!(body["top_intents"].as_array().unwrap().len(), 3);

    let resp = h.send(
        HttpRequest::new("DELETE", "/api/chat/history/alice")
            .with_header("authorization", &format!("Bearer {token}")),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(json(&resp)["deleted"], 6);
    let body = json(&h.get("/api/chat/history/alice", &token));
    assert_eq!(body["count"], 0);
    let body = json(&h.get("/api/chat/summary/alice", &token));
    assert_eq!(body["message_count"], 0);
    assert!(body["first_timestamp"].is_null());
}

#[test]
fn users_see_only_their_own_history_admins_any() {
    let h = Harness::new(&[]);
    h.respond("alice", json!({"message": "hello"}));
    let bob = h.token("bob");
    for path in ["/api/chat/history/alice", "/api/chat/summary/alice"] {
        let resp = h.get(path, &bob);
        assert_eq!(resp.status, 403, "{path}");
        assert_eq!(error_code(&resp), "forbidden");
    }
    let resp = h.send(
        HttpRequest::new("DELETE", "/api/chat/history/alice")
            .with_header("authorization", &format!("Bearer {bob}")),
    );
    assert_eq!(resp.status, 403);
    // Nothing was lost by the refused delete.
    let alice = h.token("alice");
    assert_eq!(json(&h.get("/api/chat/history/alice", &alice))["count"], 2);

    let admin = h.admin_token("ops");
    assert_eq!(json(&h.get("/api/chat/history/alice", &admin))["count"], 2);
    let resp = h.send(
        HttpRequest::new("DELETE", "/api/chat/history/alice")
            .with_header("authorization", &format!("Bearer {admin}")),
    );
    assert_eq!(json(&resp)["deleted"], 2);
}

#[test]
fn user_ids_in_paths_are_decoded_and_validated() {
    let h = Harness::new(&[]);
    h.respond("a@b.c", json!({"message": "hello"}));
    let t = h.token("a@b.c");
    assert_eq!(json(&h.get("/api/chat/history/a%40b.c", &t))["count"], 2);
    let resp = h.get("/api/chat/history/a%2Fb", &t);
    assert_eq!(resp.status, 422);
    assert_eq!(error_code(&resp), "invalid_user_id");
}

#[test]
fn chat_health_and_model_info() {
    let h = Harness::new(&[("CHAT_TEMPERATURE", "0.3"), ("CHAT_TOP_K", "20")]);
    let t = h.token("alice");
    let body = json(&h.get("/api/chat/health", &t));
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["mode"], "minimal");
    assert_eq!(body["backend"]["configured"], false);
    let body = json(&h.get("/api/chat/model-info", &t));
    assert_eq!(body["model_name"], "bigscience/bloom-560m");
    assert_eq!(body["inference_engine"], "minimal");
    assert_eq!(body["generation"]["temperature"], 0.3);
    assert_eq!(body["generation"]["top_k"], 20);
    assert_eq!(body["generation"]["max_tokens"], 150);
    // Without a token these are refused.
    let resp = h.send(HttpRequest::new("GET", "/api/chat/health"));
    assert_eq!(resp.status, 401);
}

#[test]
fn the_chat_page_is_public_and_can_be_turned_off() {
    let h = Harness::new(&[]);
    for path in ["/", "/chat", "/chat/", "/chat.js", "/chat.css"] {
        let resp = h.send(HttpRequest::new("GET", path));
        assert_eq!(resp.status, 200, "{path}");
        assert!(!resp.body.is_empty(), "{path}");
        assert!(resp.header("etag").is_some() && resp.header("x-request-id").is_some());
        assert_eq!(resp.header("referrer-policy"), Some("no-referrer"));
    }
    let page = String::from_utf8(h.send(HttpRequest::new("GET", "/")).body).unwrap();
    assert!(page.contains("<title>Eindr chat</title>"));
    let resp = h.send(HttpRequest::new("POST", "/"));
    assert_eq!((resp.status, resp.header("allow")), (405, Some("GET")));

    let off = Harness::new(&[("CHAT_PAGE", "false")]);
    for path in ["/", "/chat", "/chat.js", "/chat.css"] {
        let resp = off.send(HttpRequest::new("GET", path));
        assert_eq!(
            (resp.status, error_code(&resp)),
            (404, "route_not_found".into()),
            "{path}"
        );
    }
    assert_eq!(off.send(HttpRequest::new("GET", "/health")).status, 200);
}

#[test]
fn routing_errors() {
    let h = Harness::new(&[]);
    let resp = h.send(HttpRequest::new("GET", "/nope"));
    assert_eq!(resp.status, 404);
    assert_eq!(json(&resp)["success"], false);
    assert_eq!(error_code(&resp), "route_not_found");
    assert_eq!(json(&resp)["error"]["type"], "not_found_error");
    let resp = h.send(HttpRequest::new("GET", "/api/chat/respond"));
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("POST"));
    let resp = h.send(HttpRequest::new("PUT", "/api/chat/history/alice"));
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, DELETE"));
}

fn post_raw(h: &Harness, content_type: Option<&str>, body: Vec<u8>) -> edge_core::HttpResponse {
    let mut req = HttpRequest::new("POST", "/api/chat/respond")
        .with_header("authorization", &format!("Bearer {}", h.token("alice")))
        .with_body(body);
    if let Some(ct) = content_type {
        req = req.with_header("content-type", ct);
    }
    h.send(req)
}

#[test]
fn bad_bodies_get_clear_errors_and_store_nothing() {
    let h = Harness::new(&[("RATE_LIMIT_BURST", "100")]);
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (
            None,
            b"{\"message\":\"hi\"}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            Some("text/plain"),
            b"{\"message\":\"hi\"}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            Some("application/json"),
            vec![b' '; 16 * 1024 + 1],
            413,
            "payload_too_large",
        ),
        (
            Some("application/json"),
            b"{\"message\":".to_vec(),
            400,
            "invalid_json",
        ),
        (
            Some("application/json"),
            b"not json".to_vec(),
            400,
            "invalid_json",
        ),
        (
            Some("application/json"),
            vec![0xff, 0xfe],
            400,
            "invalid_json",
        ),
        (
            Some("application/json"),
            b"{\"message\": 5}".to_vec(),
            422,
            "invalid_request",
        ),
        (
            Some("application/json"),
            b"{}".to_vec(),
            422,
            "invalid_request",
        ),
        (
            Some("application/json"),
            b"[]".to_vec(),
            422,
            "invalid_request",
        ),
        (
            Some("application/json"),
            b"{\"message\":\"hi\",\"mesage\":1}".to_vec(),
            422,
            "invalid_request",
        ),
        (
            Some("application/json"),
            b"{\"message\":\"hi\",\"mode\":\"turbo\"}".to_vec(),
            422,
            "invalid_request",
        ),
        (
            Some("application/json"),
            b"{\"message\":\"   \"}".to_vec(),
            422,
            "empty_message",
        ),
        (
            Some("application/json"),
            json!({"message": "x".repeat(4001)})
                .to_string()
                .into_bytes(),
            422,
            "message_too_long",
        ),
        (
            Some("application/json"),
            b"{\"message\":\"hi\",\"context\":{\"intent\":7}}".to_vec(),
            422,
            "invalid_request",
        ),
    ];
    for (ct, body, status, code) in cases {
        let resp = post_raw(&h, ct, body);
        assert_eq!(
            resp.status,
            status,
            "{code}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert_eq!(error_code(&resp), code);
        let err = &json(&resp)["error"];
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(err["type"].is_string());
    }
    // 4,000 characters (not bytes) is accepted.
    let resp = post_raw(
        &h,
        Some("application/json; charset=utf-8"),
        json!({"message": "é".repeat(4000)})
            .to_string()
            .into_bytes(),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        json(&h.get("/api/chat/history/alice", &h.token("alice")))["count"],
        2
    );
}

#[test]
fn history_limit_param_is_validated() {
    let h = Harness::new(&[]);
    let t = h.token("alice");
    for bad in ["0", "-1", "abc", "99999"] {
        let resp = h.get(&format!("/api/chat/history/alice?limit={bad}"), &t);
        assert_eq!(resp.status, 422, "{bad}");
        assert_eq!(error_code(&resp), "invalid_limit");
    }
}

#[test]
fn rate_limit_burst_refusal_and_refill() {
    let h = Harness::new(&[("RATE_LIMIT_PER_MINUTE", "60"), ("RATE_LIMIT_BURST", "3")]);
    let t = h.token("alice");
    for remaining in ["2", "1", "0"] {
        let resp = h.get("/api/chat/model-info", &t);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("ratelimit-remaining"), Some(remaining));
    }
    let resp = h.get("/api/chat/model-info", &t);
    assert_eq!(resp.status, 429);
    assert_eq!(error_code(&resp), "rate_limit_exceeded");
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(resp.header("ratelimit-remaining"), Some("0"));
    // Another user is unaffected.
    assert_eq!(h.get("/api/chat/model-info", &h.token("bob")).status, 200);
    // One interval later, one more request.
    h.advance_ms(1000);
    assert_eq!(h.get("/api/chat/model-info", &t).status, 200);
    assert_eq!(h.get("/api/chat/model-info", &t).status, 429);
    // A full window later, the whole burst.
    h.advance_ms(60_000);
    for _ in 0..3 {
        assert_eq!(h.get("/api/chat/model-info", &t).status, 200);
    }
    assert_eq!(h.get("/api/chat/model-info", &t).status, 429);
}

#[test]
fn refused_respond_stores_nothing() {
    let h = Harness::new(&[("RATE_LIMIT_BURST", "1")]);
    assert_eq!(h.respond("alice", json!({"message": "hi"})).status, 200);
    assert_eq!(h.respond("alice", json!({"message": "hi"})).status, 429);
    h.advance_ms(60_000);
    let body = json(&h.get("/api/chat/history/alice", &h.token("alice")));
    assert_eq!(body["count"], 2);
}

#[test]
fn failed_authentications_are_limited_per_address() {
    let h = Harness::new(&[
        ("AUTH_FAILURE_LIMIT_PER_MINUTE", "6"),
        ("AUTH_FAILURE_BURST", "3"),
    ]);
    let bad = |addr: &str| {
        h.send(
            HttpRequest::new("GET", "/api/chat/model-info")
                .with_header("authorization", "Bearer not.a.token")
                .with_client_addr(addr),
        )
    };
    for _ in 0..3 {
        assert_eq!(bad("198.51.100.7").status, 401);
    }
    let resp = bad("198.51.100.7");
    assert_eq!(resp.status, 429);
    assert_eq!(error_code(&resp), "auth_failures_exceeded");
    assert_eq!(resp.header("retry-after"), Some("10"));
    // Other addresses, and valid tokens from the same address, still get through.
    assert_eq!(bad("198.51.100.8").status, 401);
    let ok = h.send(
        HttpRequest::new("GET", "/api/chat/model-info")
            .with_header("authorization", &format!("Bearer {}", h.token("alice")))
            .with_client_addr("198.51.100.7"),
    );
    assert_eq!(ok.status, 200);
    h.advance_ms(10_000);
    assert_eq!(bad("198.51.100.7").status, 401);
}

#[test]
fn history_is_bounded_to_max_turns() {
    let h = Harness::new(&[("HISTORY_MAX_TURNS", "6"), ("RATE_LIMIT_BURST", "100")]);
    for i in 0..10 {
        h.respond("alice", json!({"message": format!("message {i}")}));
        h.advance_ms(10);
    }
    let body = json(&h.get("/api/chat/history/alice", &h.token("alice")));
    assert_eq!(body["count"], 6);
    assert_eq!(body["messages"][0]["content"], "message 7");
    assert_eq!(body["messages"][4]["content"], "message 9");
}

#[test]
fn history_expires_after_retention() {
    let h = Harness::new(&[("HISTORY_RETENTION_DAYS", "2")]);
    h.respond("alice", json!({"message": "old"}));
    h.advance_ms(86_400_000);
    h.respond("alice", json!({"message": "newer"}));
    h.advance_ms(86_400_000 + 1);
    let t = h.token("alice");
    let body = json(&h.get("/api/chat/history/alice", &t));
    assert_eq!(body["count"], 2);
    assert_eq!(body["messages"][0]["content"], "newer");
    // The record carries an expiry for stores that can drop it unattended.
    h.advance_ms(86_400_000);
    assert_eq!(
        json(&h.get("/api/chat/history/alice", &h.token("alice")))["count"],
        0
    );
}

const KEY_HEX: &str = "8f2c1e0d4b3a29187f6e5d4c3b2a19080f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[test]
fn sealed_history_is_not_plaintext_at_rest() {
    let h = Harness::new(&[("HISTORY_ENCRYPTION_KEY", KEY_HEX)]);
    h.respond("alice", json!({"message": "my secret plan is pineapple"}));
    let raw = h
        .store
        .raw(StoreKey {
            kind: RecordKind::History,
            owner: "alice",
        })
        .unwrap();
    assert!(!raw.windows(9).any(|w| w == b"pineapple"));
    assert!(!raw.windows(7).any(|w| w == b"content"));
    let body = json(&h.get("/api/chat/history/alice", &h.token("alice")));
    assert_eq!(
        body["messages"][0]["content"],
        "my secret plan is pineapple"
    );
    let health = json(&h.get("/api/chat/health", &h.token("alice")));
    assert_eq!(health["history"]["encrypted"], true);
}

#[test]
fn a_record_moved_to_another_user_does_not_open() {
    let h = Harness::new(&[("HISTORY_ENCRYPTION_KEY", KEY_HEX)]);
    h.respond("alice", json!({"message": "hello"}));
    let raw = h
        .store
        .raw(StoreKey {
            kind: RecordKind::History,
            owner: "alice",
        })
        .unwrap();
    h.store.put_raw(
        StoreKey {
            kind: RecordKind::History,
            owner: "mallory",
        },
        raw.clone(),
    );
    let resp = h.get("/api/chat/history/mallory", &h.token("mallory"));
    assert_eq!(resp.status, 500);
    assert_eq!(error_code(&resp), "history_sealed");
    // A respond on the unreadable record fails without overwriting it.
    let resp = h.respond("mallory", json!({"message": "hi"}));
    assert_eq!(resp.status, 500);
    let after = h
        .store
        .raw(StoreKey {
            kind: RecordKind::History,
            owner: "mallory",
        })
        .unwrap();
    assert_eq!(after, raw);
}

#[test]
fn plaintext_history_is_sealed_on_next_write() {
    let h = Harness::new(&[]);
    h.respond("alice", json!({"message": "before sealing"}));
    let plain = h
        .store
        .raw(StoreKey {
            kind: RecordKind::History,
            owner: "alice",
        })
        .unwrap();
    assert!(plain.windows(6).any(|w| w == b"before"));
    let sealed = Harness {
        app: edge_core::EdgeApp::new(config_with(&[("HISTORY_ENCRYPTION_KEY", KEY_HEX)])).unwrap(),
        ..h
    };
    sealed.respond("alice", json!({"message": "after"}));
    let raw = sealed
        .store
        .raw(StoreKey {
            kind: RecordKind::History,
            owner: "alice",
        })
        .unwrap();
    assert!(!raw.windows(6).any(|w| w == b"before"));
    assert_eq!(
        json(&sealed.get("/api/chat/history/alice", &sealed.token("alice")))["count"],
        4
    );
}

#[test]
fn sealed_history_without_key_is_refused_not_lost() {
    let sealed = Harness::new(&[("HISTORY_ENCRYPTION_KEY", KEY_HEX)]);
    sealed.respond("alice", json!({"message": "hello"}));
    let raw = sealed
        .store
        .raw(StoreKey {
            kind: RecordKind::History,
            owner: "alice",
        })
        .unwrap();
    let plain = Harness {
        app: edge_core::EdgeApp::new(config_with(&[])).unwrap(),
        ..sealed
    };
    let t = plain.token("alice");
    let resp = plain.send(
        HttpRequest::new("DELETE", "/api/chat/history/alice")
            .with_header("authorization", &format!("Bearer {t}")),
    );
    assert_eq!(resp.status, 500);
    assert_eq!(error_code(&resp), "history_sealed");
    assert_eq!(
        plain
            .store
            .raw(StoreKey {
                kind: RecordKind::History,
                owner: "alice"
            })
            .unwrap(),
        raw
    );
}

#[test]
fn replies_do_not_repeat_for_a_user() {
    let h = Harness::new(&[("RATE_LIMIT_BURST", "100")]);
    let mut previous = String::new();
    for _ in 0..30 {
        let body = json(&h.respond("alice", json!({"message": "hello"})));
        let text = body["response"].as_str().unwrap().to_owned();
        assert_ne!(text, previous);
        previous = text;
    }
}

#[test]
fn request_id_is_echoed_or_generated() {
    let h = Harness::new(&[]);
    let resp = h.send(HttpRequest::new("GET", "/health").with_header("x-request-id", "abc-123"));
    assert_eq!(resp.header("x-request-id"), Some("abc-123"));
    let a = h.send(HttpRequest::new("GET", "/health"));
    let b = h.send(HttpRequest::new("GET", "/health"));
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}
