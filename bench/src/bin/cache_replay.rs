//! Cached model answers under repetitive traffic: `cargo xtask bench-cache [requests]`.
//!
//! CLINC150's small-talk `val` utterances (the 15 small-talk intents) are replayed as first
//! turns (a new user each, so no history) in one fixed order drawn with Zipf popularity
//! (s = 1: the most popular utterance is asked twice as often as the second), one request at
//! a time, through full mode on 127.0.0.1: the worker on workerd (Miniflare, its KV binding
//! holding the pools), gpu-backend, the real vLLM on the tiny model. Twice on fresh edges:
//! `CACHE_MODE=off`, then `serve` (default pool of 8). gpu-backend's `/metrics` counts the
//! backend calls of each; the `serve` run's hits (`x-cache: HIT`) are timed apart, and the
//! same utterances answered in minimal mode give the reply a hit is compared with.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use e2e::Runtime;
use e2e::backend_api::Api;
use e2e::client::Client;
use e2e::local::LocalRuntime;
use e2e::vllm::{Backend, Vllm};
use edge_core::understanding::TurnKind;
use eindr_bench::full_edge::{TEMPERATURE, start_full_edge};

const ZIPF_S: f64 = 1.0;

/// CLINC150's small-talk `val` utterances (Larson et al., 2019, CC BY 3.0).
fn small_talk_utterances() -> Vec<String> {
    let dir = std::env::var("EINDR_TEST_DATA").expect("EINDR_TEST_DATA: the xtask sets it");
    let path = std::path::Path::new(&dir).join("clinc150/train_val.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["val"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| {
            matches!(
                TurnKind::of(item[1].as_str().unwrap()),
                Some(TurnKind::SmallTalk(_))
            )
        })
        .map(|item| item[0].as_str().unwrap().to_owned())
        .collect()
}

/// `n` indices into `k` items with Zipf popularity, from a fixed seed (splitmix64).
fn zipf_order(k: usize, n: usize) -> Vec<usize> {
    let weights: Vec<f64> = (1..=k).map(|r| (r as f64).powf(-ZIPF_S)).collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(k);
    let mut sum = 0.0;
    for w in &weights {
        sum += w / total;
        cumulative.push(sum);
    }
    let mut state: u64 = 0x5EED_CAC4E;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64;
            cumulative.partition_point(|c| *c < u).min(k - 1)
        })
        .collect()
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

struct Replay {
    /// Milliseconds of every turn, and of the hits alone.
    all_ms: Vec<f64>,
    hit_ms: Vec<f64>,
    /// Hits among the second half of the turns (the pools of popular questions filled).
    late_hits: usize,
    backend_calls: u64,
    fallbacks: usize,
}

/// Sends each utterance of `order` as a new user's first turn, one at a time.
fn replay(
    edge: &LocalRuntime,
    backend: &Backend,
    utterances: &[String],
    order: &[usize],
    mode: &str,
    run: &str,
) -> Replay {
    let client = Client::new(&edge.base_url(), edge.secret());
    let calls_before = Api::new(backend).chat_requests();
    let mut result = Replay {
        all_ms: Vec::new(),
        hit_ms: Vec::new(),
        late_hits: 0,
        backend_calls: 0,
        fallbacks: 0,
    };
    for (i, &u) in order.iter().enumerate() {
        let user = format!("{run}-{i}");
        let body = serde_json::json!({"message": utterances[u], "mode": mode});
        let token = client.token(&user);
        let started = Instant::now();
        let answer = client.send(
            "POST",
            "/api/chat/respond",
            Some(&token),
            Some("application/json"),
            Some(body.to_string().into_bytes()),
        );
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(answer.status, 200, "{}", answer.body);
        result.all_ms.push(ms);
        if answer.header("x-cache") == Some("HIT") {
            result.hit_ms.push(ms);
            if i >= order.len() / 2 {
                result.late_hits += 1;
            }
        }
        if answer.body["fallback_used"] == true {
            result.fallbacks += 1;
        }
    }
    result.backend_calls = Api::new(backend).chat_requests() - calls_before;
    result
}

fn edge(name: &str, backend: &Backend, cache_mode: &str) -> LocalRuntime {
    start_full_edge(
        name,
        backend,
        &[
            ("BACKEND_BREAKER_FAILURES", "1000"),
            ("CACHE_MODE", cache_mode),
        ],
    )
}

fn main() {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let utterances = small_talk_utterances();
    let order = zipf_order(utterances.len(), requests);
    let distinct = {
        let mut seen = order.clone();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    };

    let vllm = Vllm::start();
    vllm.wait();
    let backend = Backend::start_release_ready(&[vllm.url()], &[("CHAT_TEMPERATURE", TEMPERATURE)]);
    // Warm vLLM and the worker off the clock.
    let warm = edge("cache-warm", &backend, "off");
    replay(&warm, &backend, &utterances, &order[..5], "full", "warm");
    drop(warm);

    let off_edge = edge("cache-off", &backend, "off");
    let off = replay(&off_edge, &backend, &utterances, &order, "full", "off");
    drop(off_edge);
    let serve_edge = edge("cache-serve", &backend, "serve");
    let serve = replay(&serve_edge, &backend, &utterances, &order, "full", "serve");
    let minimal = replay(
        &serve_edge,
        &backend,
        &utterances,
        &order,
        "minimal",
        "minimal",
    );

    println!(
        "\ncache replay: {requests} first turns of CLINC150 small-talk val ({} utterances, {distinct} asked), Zipf s = {ZIPF_S}, one at a time; workerd (Miniflare, KV) + gpu-backend + vLLM (tiny model, {} tokens)",
        utterances.len(),
        16
    );
    println!(
        "{:<26} {:>13} {:>9} {:>9} {:>10}",
        "run", "backend calls", "p50 ms", "p99 ms", "fallbacks"
    );
    for (label, run) in [
        ("cache off", &off),
        ("CACHE_MODE=serve", &serve),
        ("minimal mode (reference)", &minimal),
    ] {
        println!(
            "{label:<26} {:>13} {:>9.2} {:>9.2} {:>10}",
            run.backend_calls,
            percentile(&run.all_ms, 50.0),
            percentile(&run.all_ms, 99.0),
            run.fallbacks
        );
    }
    let hit_p50 = percentile(&serve.hit_ms, 50.0);
    let minimal_p50 = percentile(&minimal.all_ms, 50.0);
    println!(
        "{:<26} {:>13} {:>9.2} {:>9.2}",
        "  of which hits",
        serve.hit_ms.len(),
        hit_p50,
        percentile(&serve.hit_ms, 99.0)
    );
    let avoided = 100.0 * (1.0 - serve.backend_calls as f64 / off.backend_calls.max(1) as f64);
    let late = 100.0 * serve.late_hits as f64 / (order.len() - order.len() / 2).max(1) as f64;
    println!("answered from the cache in the second half of the run: {late:.1} %");
    println!(
        "backend calls avoided {avoided:.1} % (target >= 50 %); hit p50 {hit_p50:.2} ms vs minimal-mode p50 {minimal_p50:.2} ms: {:+.2} ms (target <= 2 ms)",
        hit_p50 - minimal_p50
    );
}
