//! Full mode over the core with a scripted backend: what is sent, what the user gets for
//! every way the backend can fail, what history keeps, and the circuit breaker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

const FULL: [(&str, &str); 4] = [
    ("MINIMAL_MODE", "false"),
    ("BACKEND_URL", "http://gpu.test:8000/"),
    ("BACKEND_API_KEY", "backend-key"),
    ("RATE_LIMIT_BURST", "100"),
];

fn full() -> Harness {
    Harness::new(&FULL)
}

fn turn(h: &Harness, message: &str) -> Value {
    let resp = h.respond("alice", json!({"message": message}));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    json(&resp)
}

fn history(h: &Harness) -> Vec<Value> {
    let resp = h.get("/api/chat/history/alice", &h.token("alice"));
    json(&resp)["messages"].as_array().unwrap().clone()
}

#[test]
fn a_full_turn_sends_history_and_context_and_keeps_what_the_user_got() {
    let h = full();
    play(&h, Script::tokens(&["Hello", " there."]));
    let first = turn(&h, "hi");
    assert_eq!(first["response"], "Hello there.");
    assert_eq!(first["fallback_used"], false);
    assert_eq!(first["model_info"]["inference_engine"], "vLLM");

    play(
        &h,
        Script::tokens(&[
            "Write to bob",
            "@example.org or call 555 12",
            "3 4567 today.",
        ]),
    );
    let resp = h.respond(
        "alice",
        json!({"message": "how do I reach Bob?", "context": {"intent": "contact_lookup"}}),
    );
    let second = json(&resp);
    assert_eq!(
        second["response"],
        "Write to [email] or call [phone] today."
    );

    let requests = h.backend.requests.borrow();
    assert_eq!(requests.len(), 2);
    // With no intent from the client, gpu-backend hears the edge's reading.
    let first_sent: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(first_sent["context"]["intent"], "greeting");
    assert_eq!(first["intent"], "greeting");
    assert!(first_sent["context"]["confidence"].as_f64().unwrap() > 0.5);
    let sent = &requests[1];
    assert_eq!(sent.url, "http://gpu.test:8000/v1/chat/completions");
    assert!(
        sent.headers
            .contains(&("authorization".into(), "Bearer backend-key".into()))
    );
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["context"]["intent"], "contact_lookup");
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(body["messages"][1]["content"], "Hello there.");

    let stored = history(&h);
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[3]["content"], second["response"]);
}

#[test]
fn every_failure_before_the_first_token_gets_the_minimal_reply() {
    let garbage = Script::Respond {
        status: 200,
        headers: Vec::new(),
        steps: vec![Step::Bytes(b"data: <html>oops</html>\n\n".to_vec())],
    };
    let error_status = Script::Respond {
        status: 503,
        headers: Vec::new(),
        steps: vec![Step::Bytes(
            br#"{"error":{"message":"all engines down","type":"x","code":"no_engine"}}"#.to_vec(),
        )],
    };
    let error_event = Script::Respond {
        status: 200,
        headers: Vec::new(),
        steps: vec![
            Step::Bytes(br#"data: {"error":{"message":"engine died"}}"#.to_vec()),
            Step::Bytes(b"\n\n".to_vec()),
        ],
    };
    let silent_after_head = Script::Respond {
        status: 200,
        headers: Vec::new(),
        steps: vec![Step::Hang],
    };
    let clean_end_without_done = Script::Respond {
        status: 200,
        headers: Vec::new(),
        steps: vec![],
    };
    let scripts = [
        ("unreachable", Script::Unreachable),
        ("no head", Script::Hang),
        ("silent", silent_after_head),
        ("garbage", garbage),
        ("503", error_status),
        ("error event", error_event),
        ("no [DONE]", clean_end_without_done),
    ];
    for (name, script) in scripts {
        let h = Harness::new(&[FULL.as_slice(), &[("BACKEND_BREAKER_FAILURES", "100")]].concat());
        play(&h, script);
        let before = h.now_ms();
        let body = turn(&h, "tell me a joke");
        assert_eq!(body["fallback_used"], true, "{name}");
        assert_eq!(body["model_info"]["inference_engine"], "minimal", "{name}");
        assert!(!body["response"].as_str().unwrap().is_empty(), "{name}");
        // Nothing waits past the first-token budget (1.5 s by default).
        assert!(
            h.now_ms() - before <= 1500,
            "{name}: {} ms",
            h.now_ms() - before
        );
        let stored = history(&h);
        assert_eq!(stored.len(), 2, "{name}");
        assert_eq!(stored[1]["content"], body["response"], "{name}");
    }
}

#[test]
fn an_answer_cut_after_tokens_ends_with_a_closing_sentence() {
    for tail in [Step::Break, Step::Hang] {
        let h = full();
        play(
            &h,
            Script::Respond {
                status: 200,
                headers: vec![("x-inference-engine".into(), "cpu".into())],
                steps: vec![
                    Step::Bytes(sse_piece("The capital of France is").into_bytes()),
                    tail.clone(),
                ],
            },
        );
        let body = turn(&h, "capital of France?");
        let text = body["response"].as_str().unwrap();
        assert!(text.starts_with("The capital of France is "), "{text}");
        assert!(
            text.len() > "The capital of France is ".len() + 10,
            "{text}"
        );
        assert_eq!(body["fallback_used"], true);
        assert_eq!(body["model_info"]["inference_engine"], "cpu");
        assert_eq!(history(&h)[1]["content"], body["response"]);
    }
}

#[test]
fn the_breaker_opens_after_failures_in_a_row_and_a_probe_closes_it() {
    let h = Harness::new(
        &[
            FULL.as_slice(),
            &[
                ("BACKEND_BREAKER_FAILURES", "2"),
                ("BACKEND_BREAKER_OPEN_MS", "5000"),
            ],
        ]
        .concat(),
    );
    turn(&h, "one");
    turn(&h, "two");
    assert_eq!(h.backend.requests.borrow().len(), 2);
    // Open: answered at once without calling the backend.
    let body = turn(&h, "three");
    assert_eq!(body["fallback_used"], true);
    assert_eq!(h.backend.requests.borrow().len(), 2);
    let health = json(&h.get("/api/chat/health", &h.token("alice")));
    assert_eq!(health["circuit_breaker"], "open");
    // After the open period one probe goes through; its success closes the breaker.
    h.advance_ms(5001);
    play(&h, Script::tokens(&["Back again."]));
    let body = turn(&h, "four");
    assert_eq!(body["response"], "Back again.");
    assert_eq!(body["fallback_used"], false);
    play(&h, Script::tokens(&["Still here."]));
    assert_eq!(turn(&h, "five")["response"], "Still here.");
    assert_eq!(h.backend.requests.borrow().len(), 5);
}

/// Speech has nothing to say for an answer of emoji alone: the edge answers itself.
#[test]
fn an_answer_of_emoji_alone_falls_back() {
    let h = Harness::new(&FULL);
    play(&h, Script::tokens(&["🌀"]));
    let body = turn(&h, "hi");
    assert_eq!(body["fallback_used"], true, "{body}");
    assert!(
        !body["response"].as_str().unwrap_or("").is_empty(),
        "{body}"
    );
}

#[test]
fn an_empty_model_answer_falls_back_without_blaming_the_backend() {
    let h = Harness::new(&[FULL.as_slice(), &[("BACKEND_BREAKER_FAILURES", "1")]].concat());
    for _ in 0..2 {
        play(
            &h,
            Script::Respond {
                status: 502,
                headers: Vec::new(),
                steps: vec![Step::Bytes(
                    br#"{"error":{"message":"nothing","type":"x","code":"empty_completion"}}"#
                        .to_vec(),
                )],
            },
        );
        assert_eq!(turn(&h, "hm")["fallback_used"], true);
    }
    // Both went to the backend: the breaker stayed closed.
    assert_eq!(h.backend.requests.borrow().len(), 2);
}

#[test]
fn minimal_turns_never_call_the_backend() {
    let h = full();
    let resp = h.respond("alice", json!({"message": "hi", "mode": "minimal"}));
    assert_eq!(json(&resp)["fallback_used"], false);
    let h2 = Harness::new(&[("BACKEND_URL", "http://gpu.test:8000")]);
    assert_eq!(turn(&h2, "hi")["fallback_used"], false);
    assert!(h.backend.requests.borrow().is_empty() && h2.backend.requests.borrow().is_empty());
}

#[test]
fn health_reports_the_backend() {
    let h = full();
    play(
        &h,
        Script::Respond {
            status: 200,
            headers: Vec::new(),
            steps: vec![Step::Bytes(
                br#"{"status":"ok","engines":[{"name":"vllm-0","available":true}]}"#.to_vec(),
            )],
        },
    );
    let health = json(&h.get("/api/chat/health", &h.token("alice")));
    assert_eq!(health["backend"]["configured"], true);
    assert_eq!(health["backend"]["reachable"], true);
    assert_eq!(health["backend"]["detail"]["status"], "ok");
    assert_eq!(health["inference_engine"], "vLLM");
    let health = json(&h.get("/api/chat/health", &h.token("alice")));
    assert_eq!(health["backend"]["reachable"], false);
    assert_eq!(health["inference_engine"], "minimal");
    let info = json(&h.get("/api/chat/model-info", &h.token("alice")));
    assert_eq!(info["inference_engine"], "vLLM");
}

/// `data:` payloads of an SSE body.
fn streamed(h: &Harness, message: &str) -> (Vec<String>, String, Value) {
    let resp = h.respond("alice", json!({"message": message, "stream": true}));
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let frames = events(&resp.body);
    assert_eq!(
        frames.last().map(String::as_str),
        Some("[DONE]"),
        "{frames:?}"
    );
    let summary: Value = serde_json::from_str(&frames[frames.len() - 2]).unwrap();
    assert_eq!(summary["done"], true);
    let parsed: Vec<Value> = frames[..frames.len() - 2]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    let text: String = parsed.iter().filter_map(|f| f["delta"].as_str()).collect();
    // The sentences for speech are the same text, cut where sentences end.
    let sentences: String = parsed
        .iter()
        .filter_map(|f| f["sentence"].as_str())
        .collect();
    assert_eq!(sentences.trim_end(), text.trim_end(), "{frames:?}");
    assert!(
        parsed
            .iter()
            .all(|f| f["delta"].is_string() ^ f["sentence"].is_string())
    );
    (frames, text, summary)
}

#[test]
fn streamed_turns_relay_tokens_and_end_well_formed_whatever_happens() {
    let h = full();
    play(
        &h,
        Script::tokens(&["Sure", ", mail ", "me at ann@", "example.com now."]),
    );
    let (frames, text, summary) = streamed(&h, "hi");
    assert_eq!(text, "Sure, mail me at [email] now.");
    assert!(
        frames.len() >= 5,
        "pieces are relayed as they come: {frames:?}"
    );
    assert_eq!(summary["response"], text);
    assert_eq!(summary["fallback_used"], false);
    assert_eq!(summary["model_info"]["inference_engine"], "vLLM");

    // Nothing in time: the minimal reply is the one delta.
    play(&h, Script::Hang);
    let (_, text, summary) = streamed(&h, "hello");
    assert!(!text.is_empty());
    assert_eq!(summary["fallback_used"], true);
    assert_eq!(summary["model_info"]["inference_engine"], "minimal");

    // Cut after tokens: the closing sentence ends it.
    play(
        &h,
        Script::Respond {
            status: 200,
            headers: Vec::new(),
            steps: vec![Step::Bytes(sse_piece("Paris is").into_bytes()), Step::Break],
        },
    );
    let (_, text, summary) = streamed(&h, "capital?");
    assert!(text.starts_with("Paris is ") && text.len() > 20, "{text}");
    assert_eq!(summary["fallback_used"], true);

    // History holds exactly what was delivered, in order.
    let stored = history(&h);
    assert_eq!(stored.len(), 6);
    assert_eq!(stored[1]["content"], "Sure, mail me at [email] now.");
    assert_eq!(stored[5]["content"], text);
}

#[test]
fn accept_header_asks_for_a_stream_and_minimal_mode_streams_too() {
    let h = Harness::new(&[]);
    let resp = h.send(
        edge_core::HttpRequest::new("POST", "/api/chat/respond")
            .with_header("authorization", &format!("Bearer {}", h.token("alice")))
            .with_header("content-type", "application/json")
            .with_header("accept", "text/event-stream")
            .with_body(json!({"message": "good morning"}).to_string()),
    );
    let frames = events(&resp.body);
    // One delta, its two sentences as they ended, the summary, [DONE].
    assert_eq!(frames.len(), 5, "{frames:?}");
    let sentence =
        |i: usize| serde_json::from_str::<Value>(&frames[i]).unwrap()["sentence"].clone();
    assert_eq!(sentence(1), "Hello! ");
    assert_eq!(sentence(2), "All good here, and ready to help.");
    let summary: Value = serde_json::from_str(&frames[3]).unwrap();
    assert_eq!(summary["fallback_used"], false);
    assert!(resp.header("ratelimit-remaining").is_some());
}

#[test]
fn the_openai_api_answers_whole_and_streamed_turns() {
    let h = full();
    play(&h, Script::tokens(&["Hi", " Alice."]));
    let resp = openai(
        &h,
        json!({"model": "bigscience/bloom-560m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]}),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let body = json(&resp);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hi Alice.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["model"], "bigscience/bloom-560m");

    play(&h, Script::tokens(&["One", ", two."]));
    let resp = openai(
        &h,
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "count"}]}], "stream": true}),
    );
    let frames = events(&resp.body);
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "One, two.");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    // A cut answer ends with an error event and no [DONE].
    play(
        &h,
        Script::Respond {
            status: 200,
            headers: Vec::new(),
            steps: vec![Step::Bytes(sse_piece("Half an").into_bytes()), Step::Break],
        },
    );
    let resp = openai(
        &h,
        json!({"messages": [{"role": "user", "content": "more"}], "stream": true}),
    );
    let frames = events(&resp.body);
    let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_cut");
    assert!(!frames.iter().any(|f| f == "[DONE]"));
    assert_eq!(history(&h)[5]["content"], "Half an");

    // Bad requests get OpenAI's errors (more in tests/openai_api.rs).
    let resp = openai(
        &h,
        json!({"messages": [{"role": "assistant", "content": "hi"}]}),
    );
    assert_eq!(
        (resp.status, error_code(&resp).as_str()),
        (400, "invalid_messages")
    );
    assert_eq!(json(&resp)["error"]["param"], "messages");
    let models = json(&h.get("/v1/models", &h.token("alice")));
    assert_eq!(models["data"][0]["id"], "bigscience/bloom-560m");
}

#[test]
fn a_model_answer_is_plain_text_for_speech_in_the_stream_and_in_history() {
    let h = full();
    play(
        &h,
        Script::tokens(&[
            "**Sure!**",
            " Here",
            " is 🎉",
            " the [gui",
            "de](https://x.io).",
            "\n- one",
        ]),
    );
    let (frames, text, summary) = streamed(&h, "help me");
    assert_eq!(text, "Sure! Here is the guide.\none", "{frames:?}");
    assert_eq!(summary["response"], "Sure! Here is the guide.\none");
    assert_eq!(
        history(&h).last().unwrap()["content"],
        "Sure! Here is the guide.\none"
    );
}
