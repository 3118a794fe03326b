//! gpu-backend's added latency: `cargo xtask bench-backend [seconds]`.
//!
//! In one run, the same streamed completions straight to an upstream and through gpu-backend
//! (`POST /v1/chat/completions`, stream), with wrk on 127.0.0.1: first against a fixed-delay
//! OpenAI-shaped upstream at >= 1,000 req/s (the method TensorZero publishes), then, when
//! EINDR_VLLM_PYTHON and EINDR_TINY_MODEL are set, against the real vLLM on the tiny model.
//! Prints req/s and p50/p99 of both, and their difference: the latency gpu-backend adds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use e2e::load::{LoadResult, LoadShape, post_script, wrk};
use e2e::vllm::{Backend, MODEL, Process, Vllm, wait_healthy};
use e2e::{free_port, repo_root};

const CHAT: &str = r#"{"model":"MODEL","messages":[{"role":"user","content":"Can you help me plan my day?"}],"stream":true,"max_tokens":4,"temperature":0}"#;

fn completion_body(prompt_model: &str) -> String {
    // What gpu-backend sends for CHAT (its prompt template, stop sequences, settings).
    format!(
        r#"{{"model":"{prompt_model}","prompt":"You are Eindr, a friendly voice assistant. Answer in one or two short, spoken sentences.\nUser: Can you help me plan my day?\nAssistant:","max_tokens":4,"temperature":0,"top_p":0.9,"top_k":50,"repetition_penalty":1.1,"stop":["\nUser:","\nAssistant:","\nSystem:"],"stream":true,"stream_options":{{"include_usage":true}}}}"#
    )
}

fn compare(name: &str, upstream: &str, backend: &Backend, model: &str, shape: LoadShape) {
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
    report(name, shape, direct, through);
}

fn report(name: &str, shape: LoadShape, direct: LoadResult, through: LoadResult) {
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
    for (label, r) in [
        ("upstream directly", direct),
        ("through gpu-backend", through),
    ] {
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
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let bin = repo_root().join("target/release");
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
    compare(
        "fixed-delay upstream (5 ms)",
        &upstream,
        &backend,
        "bench",
        shape,
    );

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
        );
    }
}
