//! gpu-backend's added latency: `cargo xtask bench-backend [seconds]`.
//!
//! In one run, the same streamed completions straight to an upstream and through gpu-backend
//! (`POST /v1/chat/completions`, stream), with wrk on 127.0.0.1: first against a fixed-delay
//! OpenAI-shaped upstream at >= 1,000 req/s (the method TensorZero publishes), then, when
//! EINDR_VLLM_PYTHON and EINDR_TINY_MODEL are set, against the real vLLM on the tiny model.
//! Prints req/s and p50/p99 of both, and their difference: the latency gpu-backend adds.
//! When EINDR_LITELLM names LiteLLM's `litellm` executable (PyPI, installed by the xtask),
//! LiteLLM's proxy runs on the same fixed-delay upstream in the same run, sent the very
//! completion the direct path gets, and its added latency is printed beside ours.
//! When EINDR_OHA names oha, the fixed-delay comparison is also run open loop at fixed rates
//! (TensorZero's published method: 1,000 req/s for gpu-backend, 100 req/s for LiteLLM), where
//! latency is the gateway's own cost rather than queueing behind a saturated CPU.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use e2e::free_port;
use e2e::vllm::{Backend, MODEL, Process, Vllm, wait_healthy};
use eindr_bench::load::{LoadResult, LoadShape, post_script, wrk};
use eindr_bench::rate::{FixedRate, oha_post};

const CHAT: &str = r#"{"model":"MODEL","messages":[{"role":"user","content":"Can you help me plan my day?"}],"stream":true,"max_tokens":4,"temperature":0}"#;

fn completion_body(prompt_model: &str) -> String {
    // What gpu-backend sends for CHAT (its prompt template, stop sequences, settings).
    format!(
        r#"{{"model":"{prompt_model}","prompt":"You are Eindr, a friendly voice assistant. Answer in one or two short, spoken sentences.\nUser: Can you help me plan my day?\nAssistant:","max_tokens":4,"temperature":0,"top_p":0.9,"top_k":50,"repetition_penalty":1.1,"stop":["\nUser:","\nAssistant:","\nSystem:"],"stream":true,"stream_options":{{"include_usage":true}}}}"#
    )
}

/// LiteLLM's proxy in front of `upstream`'s `/v1/completions`, as model `bench`.
fn start_litellm(litellm: &str, upstream: &str) -> (Process, String) {
    let port = free_port();
    let config = std::env::temp_dir().join(format!("litellm-bench-{port}.yaml"));
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: bench\n    litellm_params:\n      model: text-completion-openai/bench\n      api_base: {upstream}/v1\n      api_key: unused\nlitellm_settings:\n  drop_params: true\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(litellm);
    cmd.arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--telemetry", "False"])
        // No download of the model price list at start.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR");
    let process = Process::spawn(cmd);
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(
        &format!("{url}/health/liveliness"),
        Duration::from_secs(120),
        "LiteLLM proxy",
    );
    (process, url)
}

fn compare(
    name: &str,
    upstream: &str,
    backend: &Backend,
    model: &str,
    shape: LoadShape,
    litellm: Option<&str>,
) {
    let direct_script = post_script(
        &format!("{name}-direct"),
        &[("Content-Type", "application/json")],
        &completion_body(model),
    );
    let auth = format!("Bearer {}", backend.key);
    let chat_script = post_script(
        &format!("{name}-backend"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        &CHAT.replace("MODEL", model),
    );
    let direct_url = format!("{upstream}/v1/completions");
    let backend_url = format!("{}/v1/chat/completions", backend.url());
    let warm = LoadShape {
        duration: Duration::from_secs(2),
        ..shape
    };
    wrk(&direct_url, Some(&direct_script), warm);
    wrk(&backend_url, Some(&chat_script), warm);
    let direct = wrk(&direct_url, Some(&direct_script), shape);
    let through = wrk(&backend_url, Some(&chat_script), shape);
    let other = litellm.map(|url| {
        let litellm_url = format!("{url}/v1/completions");
        wrk(&litellm_url, Some(&direct_script), warm);
        wrk(&litellm_url, Some(&direct_script), shape)
    });
    report(name, shape, direct, through, other);
}

/// The same requests straight to the upstream and through a proxy, each at `per_second`,
/// open loop (oha, latency corrected), after a short warm-up of each.
fn at_rate(
    oha: &str,
    direct: (&str, &[(&str, &str)], &str),
    through: (&str, &[(&str, &str)], &str),
    per_second: u32,
    seconds: u64,
) -> (LoadResult, LoadResult) {
    let rate = FixedRate {
        per_second,
        connections: 64,
        duration: Duration::from_secs(seconds),
    };
    let warm = FixedRate {
        duration: Duration::from_secs(2),
        ..rate
    };
    let run = |(url, headers, body): (&str, &[(&str, &str)], &str), rate| {
        oha_post(oha, url, headers, body, rate)
    };
    run(direct, warm);
    run(through, warm);
    (run(direct, rate), run(through, rate))
}

/// gpu-backend at 1,000 req/s and, when given, LiteLLM's proxy at 100 req/s (where
/// TensorZero's comparison ran it), on the fixed-delay upstream.
fn fixed_rates(oha: &str, upstream: &str, backend: &Backend, litellm: Option<&str>, seconds: u64) {
    let json = [("Content-Type", "application/json")];
    let auth = format!("Bearer {}", backend.key);
    let with_key = [
        ("Content-Type", "application/json"),
        ("Authorization", &auth),
    ];
    let completion = completion_body("bench");
    let chat = CHAT.replace("MODEL", "bench");
    let direct_url = format!("{upstream}/v1/completions");
    let backend_url = format!("{}/v1/chat/completions", backend.url());
    let direct = (direct_url.as_str(), &json[..], completion.as_str());
    let mut rows = vec![(
        "gpu-backend",
        1000,
        " (target: p99 < 1 ms)",
        at_rate(oha, direct, (&backend_url, &with_key, &chat), 1000, seconds),
    )];
    if let Some(url) = litellm {
        let litellm_url = format!("{url}/v1/completions");
        rows.push((
            "LiteLLM proxy",
            100,
            "",
            at_rate(
                oha,
                direct,
                (&litellm_url, &json, &completion),
                100,
                seconds,
            ),
        ));
    }
    println!(
        "\nfixed-delay upstream (5 ms), open loop at a fixed rate: oha -q RATE -c64 -z{seconds}s \
         --latency-correction, streamed completions"
    );
    println!(
        "{:<14} {:>6} {:>9} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9}",
        "proxy",
        "rate",
        "req/s",
        "direct p50",
        "direct p99",
        "proxy p50",
        "proxy p99",
        "requests",
        "failures"
    );
    for (name, rate, _, (d, t)) in &rows {
        println!(
            "{name:<14} {rate:>6} {:>9.0} {:>11.3} {:>11.3} {:>11.3} {:>11.3} {:>9} {:>9}",
            t.requests_per_s,
            d.p50_ms,
            d.p99_ms,
            t.p50_ms,
            t.p99_ms,
            t.requests,
            d.failures + t.failures
        );
    }
    for (name, rate, target, (d, t)) in &rows {
        println!(
            "{name} added at {rate} req/s: p50 {:+.3} ms, p99 {:+.3} ms{target}",
            t.p50_ms - d.p50_ms,
            t.p99_ms - d.p99_ms,
        );
    }
}

fn report(
    name: &str,
    shape: LoadShape,
    direct: LoadResult,
    through: LoadResult,
    litellm: Option<LoadResult>,
) {
    println!(
        "\n{name}: wrk -t{} -c{} -d{}s on 127.0.0.1, streamed completions",
        shape.threads,
        shape.connections,
        shape.duration.as_secs()
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "path", "req/s", "p50 ms", "p99 ms", "requests", "failures"
    );
    let rows = [
        ("upstream directly", Some(direct)),
        ("through gpu-backend", Some(through)),
        ("through LiteLLM proxy", litellm),
    ];
    for (label, r) in rows.into_iter().filter_map(|(l, r)| r.map(|r| (l, r))) {
        println!(
            "{label:<22} {:>10.0} {:>10.3} {:>10.3} {:>10} {:>9}",
            r.requests_per_s, r.p50_ms, r.p99_ms, r.requests, r.failures
        );
    }
    println!(
        "added latency: p50 {:+.3} ms, p99 {:+.3} ms (target: p99 < 1 ms)",
        through.p50_ms - direct.p50_ms,
        through.p99_ms - direct.p99_ms
    );
    if let Some(l) = litellm {
        let (ours, theirs) = (through.p50_ms - direct.p50_ms, l.p50_ms - direct.p50_ms);
        println!(
            "LiteLLM proxy added: p50 {theirs:+.3} ms, p99 {:+.3} ms; {:.0} vs {:.0} req/s; \
             added p50 LiteLLM / gpu-backend = {:.1}",
            l.p99_ms - direct.p99_ms,
            l.requests_per_s,
            through.requests_per_s,
            theirs / ours.max(0.001)
        );
    }
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let bin = e2e::target_dir().join("release");
    let port = free_port();
    let mut upstream_cmd = Command::new(bin.join("fixed_delay_upstream"));
    upstream_cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--delay-ms", "5"]);
    let _upstream = Process::spawn(upstream_cmd);
    let upstream = format!("http://127.0.0.1:{port}");
    wait_healthy(
        &format!("{upstream}/health"),
        Duration::from_secs(30),
        "upstream",
    );
    let backend = Backend::start_binary(
        &bin.join("gpu-backend"),
        std::slice::from_ref(&upstream),
        &[("CHAT_MODEL_NAME", "bench"), ("RUST_LOG", "warn")],
    );
    wait_healthy(
        &format!("{}/health", backend.url()),
        Duration::from_secs(30),
        "gpu-backend",
    );
    let shape = LoadShape {
        threads: 2,
        connections: 16,
        duration: Duration::from_secs(seconds.clamp(1, 120)),
    };
    let litellm = std::env::var("EINDR_LITELLM")
        .ok()
        .map(|bin| start_litellm(&bin, &upstream));
    compare(
        "fixed-delay upstream (5 ms)",
        &upstream,
        &backend,
        "bench",
        shape,
        litellm.as_ref().map(|(_, url)| url.as_str()),
    );
    if let Ok(oha) = std::env::var("EINDR_OHA") {
        fixed_rates(
            &oha,
            &upstream,
            &backend,
            litellm.as_ref().map(|(_, url)| url.as_str()),
            seconds.clamp(1, 120),
        );
    }
    drop(litellm);

    if std::env::var_os("EINDR_VLLM_PYTHON").is_some() {
        let vllm = Vllm::start();
        vllm.wait();
        let backend = Backend::start_binary(
            &bin.join("gpu-backend"),
            &[vllm.url()],
            &[("RUST_LOG", "warn")],
        );
        wait_healthy(
            &format!("{}/health", backend.url()),
            Duration::from_secs(30),
            "gpu-backend",
        );
        let shape = LoadShape {
            threads: 1,
            connections: 4,
            ..shape
        };
        compare(
            "vLLM (tiny BLOOM, CPU)",
            &vllm.url(),
            &backend,
            MODEL,
            shape,
            None,
        );
    }
}
