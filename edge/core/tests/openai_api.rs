//! `/v1/chat/completions` as OpenAI's API behaves: requests it refuses are refused with 400 and
//! the parameter named, an unserved model is 404, and every answer carries `usage` (with
//! `stream_options.include_usage`, in a last chunk without choices). The schema check of
//! these bodies against OpenAI's own document runs in the e2e suite (`tests/tests/openai_spec.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use edge_core::HttpRequest;
use serde_json::{Value, json};

fn full(extra: &[(&str, &str)]) -> Harness {
    let mut vars = vec![
        ("MINIMAL_MODE", "false"),
        ("BACKEND_URL", "http://gpu.test:8000"),
        ("RATE_LIMIT_BURST", "1000"),
        ("CACHE_MODE", "off"),
    ];
    vars.extend_from_slice(extra);
    Harness::new(&vars)
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[test]
fn requests_openai_refuses_are_400_naming_the_parameter() {
    let h = Harness::new(&[("RATE_LIMIT_BURST", "1000")]);
    let cases = [
        (json!({"messages": []}), "messages", "invalid_value"),
        (
            json!({"messages": [{"role": "robot", "content": "hi"}]}),
            "messages[0].role",
            "invalid_value",
        ),
        (
            json!({"messages": user("hi"), "temperature": 2.5}),
            "temperature",
            "decimal_above_max_value",
        ),
        (
            json!({"messages": user("hi"), "temperature": -1}),
            "temperature",
            "decimal_below_min_value",
        ),
        (
            json!({"messages": user("hi"), "top_p": 1.5}),
            "top_p",
            "decimal_above_max_value",
        ),
        (
            json!({"messages": user("hi"), "max_tokens": 0}),
            "max_tokens",
            "integer_below_min_value",
        ),
        (
            json!({"messages": user("hi"), "max_completion_tokens": 100_000_000}),
            "max_completion_tokens",
            "invalid_value",
        ),
        (
            json!({"messages": user("hi"), "n": 2}),
            "n",
            "unsupported_value",
        ),
        (
            json!({"messages": user("hi"), "stop": ["a", "b", "c", "d", "e"]}),
            "stop",
            "invalid_value",
        ),
        (
            json!({"messages": user("hi"), "stop": 7}),
            "stop",
            "invalid_value",
        ),
        (
            json!({"messages": user("hi"), "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "tools",
            "unsupported_parameter",
        ),
        (
            json!({"messages": user("hi"), "response_format": {"type": "json_object"}}),
            "response_format",
            "unsupported_parameter",
        ),
        (
            json!({"messages": user("hi"), "logprobs": true}),
            "logprobs",
            "unsupported_parameter",
        ),
        (
            json!({"messages": user("hi"), "stream_options": {"include_usage": true}}),
            "stream_options",
            "invalid_value",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            "messages[0].content[0].type",
            "unsupported_content",
        ),
    ];
    for (body, param, code) in cases {
        let resp = openai(&h, body.clone());
        assert_eq!(
            resp.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let error = &json(&resp)["error"];
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["param"], param, "{body}");
        assert_eq!(error["code"], code, "{body}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    // Not JSON, and a shape serde refuses: 400 too (the Eindr API says 422 for the latter).
    for body in ["{", r#"{"messages": "hi"}"#] {
        let resp = h.send(
            HttpRequest::new("POST", "/v1/chat/completions")
                .with_header("authorization", &format!("Bearer {}", h.token("alice")))
                .with_header("content-type", "application/json")
                .with_body(body.to_owned()),
        );
        assert_eq!(resp.status, 400, "{body}");
        assert!(json(&resp)["error"].get("param").is_some());
    }
    // Within bounds, text parts, `response_format: text`, a stop string: answered.
    let fine = json!({
        "model": "bigscience/bloom-560m",
        "messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "temperature": 2, "top_p": 0, "max_tokens": 16, "n": 1, "stop": "\n",
        "response_format": {"type": "text"}, "tools": null, "presence_penalty": -2,
    });
    assert_eq!(openai(&h, fine).status, 200);
}

#[test]
fn an_unserved_model_is_404_and_aliases_are_served() {
    let h = Harness::new(&[("CHAT_MODEL_ALIASES", "eindr-chat, gpt-4o-mini")]);
    let resp = openai(&h, json!({"model": "gpt-5", "messages": user("hi")}));
    assert_eq!(resp.status, 404);
    let error = &json(&resp)["error"];
    assert_eq!(
        (error["code"].as_str(), error["param"].as_str()),
        (Some("model_not_found"), Some("model"))
    );
    assert_eq!(error["type"], "invalid_request_error");
    let resp = openai(&h, json!({"model": "gpt-4o-mini", "messages": user("hi")}));
    assert_eq!(resp.status, 200);
    assert_eq!(json(&resp)["model"], "bigscience/bloom-560m");
    let models = json(&h.get("/v1/models", &h.token("alice")));
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bigscience/bloom-560m", "eindr-chat", "gpt-4o-mini"]);
}

#[test]
fn usage_comes_from_the_backend_and_is_zero_when_no_model_ran() {
    let h = full(&[]);
    play(&h, Script::tokens_with_usage(&["Hi", " there."], 12, 3));
    let body = json(&openai(&h, json!({"messages": user("hello")})));
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15})
    );
    assert_eq!(body["choices"][0]["message"]["refusal"], Value::Null);

    let minimal = Harness::new(&[]);
    let body = json(&openai(&minimal, json!({"messages": user("hello")})));
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    );
}

#[test]
fn include_usage_adds_a_last_chunk_with_the_counts() {
    let h = full(&[]);
    play(&h, Script::tokens_with_usage(&["One", ", two."], 9, 4));
    let resp = openai(
        &h,
        json!({"messages": user("count"), "stream": true, "stream_options": {"include_usage": true}}),
    );
    let frames = events(&resp.body);
    assert_eq!(frames.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    let (last, text_chunks) = chunks.split_last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 13);
    for chunk in text_chunks {
        assert_eq!(chunk["usage"], Value::Null, "{chunk}");
        assert!(chunk.as_object().unwrap().contains_key("usage"), "{chunk}");
    }
    // Without it, no usage anywhere.
    play(&h, Script::tokens_with_usage(&["Three."], 9, 2));
    let resp = openai(&h, json!({"messages": user("count"), "stream": true}));
    let frames = events(&resp.body);
    assert!(frames.iter().all(|f| !f.contains("usage")), "{frames:?}");
}

#[test]
fn a_refused_request_carries_openais_rate_limit_headers() {
    let h = Harness::new(&[("RATE_LIMIT_BURST", "1"), ("RATE_LIMIT_PER_MINUTE", "1")]);
    let first = openai(&h, json!({"messages": user("hi")}));
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-limit-requests"), Some("1"));
    let refused = openai(&h, json!({"messages": user("hi")}));
    assert_eq!(refused.status, 429);
    assert_eq!(json(&refused)["error"]["type"], "rate_limit_error");
    assert_eq!(refused.header("x-ratelimit-remaining-requests"), Some("0"));
    assert!(
        refused
            .header("x-ratelimit-reset-requests")
            .unwrap()
            .ends_with('s')
    );
}
