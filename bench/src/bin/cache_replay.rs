//! Cached model answers under repetitive traffic: `cargo xtask bench-cache [requests]`.
//!
//! CLINC150's small-talk `val` utterances (the 15 small-talk intents) are replayed as first
//! turns (a new user each, so no history) in one fixed order drawn with Zipf popularity
//! (s = 1: the most popular utterance is asked twice as often as the second), one request at
//! a time, through full mode on 127.0.0.1: the worker on workerd (Miniflare, its KV binding
//! holding the pools), gpu-backend, the real vLLM on the tiny model. Three runs on fresh edges:
//! `CACHE_MODE=off`; `serve` with exact keys only (`CACHE_SHARED_INTENTS=none`); `serve` with
//! the intent pools (the default). gpu-backend's `/metrics` counts the backend calls of each;
//! hits (`x-cache: HIT`) are timed apart, and the same utterances answered in minimal mode give
//! the reply a hit is compared with. A hit from an intent pool whose intent is not the
//! utterance's gold label is a false hit. A fourth run mixes in, for 30 % of the turns,
//! CLINC150's `oos_val` and the other domains' `val` utterances: how many of those an intent
//! pool answers (or takes an answer from) is the out-of-domain false-hit rate.

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

/// Turns timed in pairs (a hit, then the same utterance in minimal mode).
const PAIRED: usize = 400;

/// Of the mixed run's turns, the share drawn from the other domains and out of scope.
const OTHER_SHARE: f64 = 0.3;

/// A labelled utterance (Larson et al., 2019, CC BY 3.0).
struct Utterance {
    text: String,
    gold: String,
}

/// CLINC150's `val` and `oos_val`: (small talk, everything else).
fn clinc_val() -> (Vec<Utterance>, Vec<Utterance>) {
    let dir = std::env::var("EINDR_TEST_DATA").expect("EINDR_TEST_DATA: the xtask sets it");
    let path = std::path::Path::new(&dir).join("clinc150/train_val.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (mut small_talk, mut other) = (Vec::new(), Vec::new());
    for split in ["val", "oos_val"] {
        for item in doc[split].as_array().unwrap() {
            let utterance = Utterance {
                text: item[0].as_str().unwrap().to_owned(),
                gold: item[1].as_str().unwrap().to_owned(),
            };
            if matches!(TurnKind::of(&utterance.gold), Some(TurnKind::SmallTalk(_))) {
                small_talk.push(utterance);
            } else {
                other.push(utterance);
            }
        }
    }
    (small_talk, other)
}

/// Uniform numbers in [0, 1) from a fixed seed (splitmix64).
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` indices into `k` items with Zipf popularity, from a fixed seed.
fn zipf_order(k: usize, n: usize, draws: &mut Draws) -> Vec<usize> {
    let weights: Vec<f64> = (1..=k).map(|r| (r as f64).powf(-ZIPF_S)).collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(k);
    let mut sum = 0.0;
    for w in &weights {
        sum += w / total;
        cumulative.push(sum);
    }
    (0..n)
        .map(|_| {
            let u = draws.next();
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

#[derive(Default)]
struct Replay {
    /// Milliseconds of every turn, and of the hits alone.
    all_ms: Vec<f64>,
    hit_ms: Vec<f64>,
    intent_hits: usize,
    exact_hits: usize,
    /// Intent-pool hits whose pool is not the utterance's gold intent.
    false_hits: usize,
    /// Turns of small talk, and of the other domains and out of scope.
    small_talk_turns: usize,
    other_turns: usize,
    /// Other-domain turns answered from an intent pool, and those keyed to one at all (a miss
    /// there gives the pool its answer).
    other_answered_from_pool: usize,
    other_keyed_to_pool: usize,
    backend_calls: u64,
    fallbacks: usize,
}

/// Sends each utterance of `order` as a new user's first turn, one at a time.
fn replay(
    edge: &LocalRuntime,
    backend: &Backend,
    order: &[&Utterance],
    mode: &str,
    run: &str,
) -> Replay {
    let client = Client::new(&edge.base_url(), edge.secret());
    let calls_before = Api::new(backend).chat_requests();
    let mut result = Replay::default();
    for (i, utterance) in order.iter().enumerate() {
        let small_talk = matches!(TurnKind::of(&utterance.gold), Some(TurnKind::SmallTalk(_)));
        let user = format!("{run}-{i}");
        let body = serde_json::json!({"message": utterance.text, "mode": mode});
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
        let intent_pool = answer.header("x-cache-key") == Some("intent");
        let hit = answer.header("x-cache") == Some("HIT");
        if small_talk {
            result.small_talk_turns += 1;
        } else {
            result.other_turns += 1;
            result.other_keyed_to_pool += usize::from(intent_pool);
            result.other_answered_from_pool += usize::from(intent_pool && hit);
        }
        if hit {
            result.hit_ms.push(ms);
            if intent_pool {
                result.intent_hits += 1;
                result.false_hits += usize::from(answer.body["intent"] != *utterance.gold);
            } else {
                result.exact_hits += 1;
            }
        }
        if answer.body["fallback_used"] == true {
            result.fallbacks += 1;
        }
    }
    result.backend_calls = Api::new(backend).chat_requests() - calls_before;
    result
}

fn edge(name: &str, backend: &Backend, vars: &[(&str, &str)]) -> LocalRuntime {
    let mut all = vec![("BACKEND_BREAKER_FAILURES", "1000")];
    all.extend_from_slice(vars);
    start_full_edge(name, backend, &all)
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

fn main() {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let (small_talk, other) = clinc_val();
    let mut draws = Draws(0x5EED_CAC4E);
    let order: Vec<&Utterance> = zipf_order(small_talk.len(), requests, &mut draws)
        .into_iter()
        .map(|i| &small_talk[i])
        .collect();
    let distinct = {
        let mut seen: Vec<&str> = order.iter().map(|u| u.text.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    };
    // The mixed run: the same Zipf small talk, with 30 % of the turns drawn uniformly from
    // the other domains' and out-of-scope utterances (a long tail).
    let mut mix_draws = Draws(0x0DD_BA11);
    let mut small_talk_turns = order.iter();
    let mixed: Vec<&Utterance> = (0..requests)
        .map(|_| {
            if mix_draws.next() < OTHER_SHARE {
                &other[((mix_draws.next() * other.len() as f64) as usize).min(other.len() - 1)]
            } else {
                small_talk_turns.next().copied().unwrap_or(&small_talk[0])
            }
        })
        .collect();

    let vllm = Vllm::start();
    vllm.wait();
    let backend = Backend::start_release_ready(&[vllm.url()], &[("CHAT_TEMPERATURE", TEMPERATURE)]);
    // Warm vLLM and the worker off the clock.
    let warm = edge("cache-warm", &backend, &[("CACHE_MODE", "off")]);
    replay(&warm, &backend, &order[..5], "full", "warm");
    drop(warm);

    let runs = [
        ("cache off", "off", vec![("CACHE_MODE", "off")], &order),
        (
            "exact keys only",
            "exact",
            vec![("CACHE_MODE", "serve"), ("CACHE_SHARED_INTENTS", "none")],
            &order,
        ),
        (
            "intent pools",
            "intent",
            vec![("CACHE_MODE", "serve")],
            &order,
        ),
        (
            "intent pools, 30 % other",
            "mixed",
            vec![("CACHE_MODE", "serve")],
            &mixed,
        ),
    ];
    let mut results = Vec::new();
    let (mut paired_hits, mut paired_minimal) = (Vec::new(), Vec::new());
    let mut minimal = Replay::default();
    for (label, name, vars, turns) in &runs {
        let runtime = edge(&format!("cache-{name}"), &backend, vars);
        results.push((*label, replay(&runtime, &backend, turns, "full", name)));
        if *name == "intent" {
            minimal = replay(&runtime, &backend, &order, "minimal", "minimal");
            // Hits and minimal replies timed side by side (the pools full by now), so the
            // comparison does not ride on the machine's drift between two runs.
            for (i, utterance) in order.iter().take(PAIRED).enumerate() {
                let hit = replay(
                    &runtime,
                    &backend,
                    &[utterance],
                    "full",
                    &format!("pair-{i}"),
                );
                let rule = replay(
                    &runtime,
                    &backend,
                    &[utterance],
                    "minimal",
                    &format!("pair-m-{i}"),
                );
                if !hit.hit_ms.is_empty() {
                    paired_hits.extend(hit.hit_ms);
                    paired_minimal.extend(rule.all_ms);
                }
            }
        }
    }

    println!(
        "\ncache replay: {requests} first turns of CLINC150 small-talk val ({} utterances, {distinct} asked), Zipf s = {ZIPF_S}, one at a time; workerd (Miniflare, KV) + gpu-backend + vLLM (tiny model, 16 tokens); pools of 8",
        small_talk.len(),
    );
    println!(
        "{:<26} {:>13} {:>9} {:>9} {:>12} {:>11} {:>10}",
        "run", "backend calls", "p50 ms", "p99 ms", "intent hits", "exact hits", "false hits"
    );
    for (label, run) in results
        .iter()
        .map(|(l, r)| (*l, r))
        .chain([("minimal mode (reference)", &minimal)])
    {
        println!(
            "{label:<26} {:>13} {:>9.2} {:>9.2} {:>12} {:>11} {:>10}",
            run.backend_calls,
            percentile(&run.all_ms, 50.0),
            percentile(&run.all_ms, 99.0),
            run.intent_hits,
            run.exact_hits,
            run.false_hits,
        );
    }
    let off = &results[0].1;
    let minimal_p50 = percentile(&minimal.all_ms, 50.0);
    for (label, run) in &results[1..3] {
        let avoided = 100.0 * (1.0 - run.backend_calls as f64 / off.backend_calls.max(1) as f64);
        let hit_p50 = percentile(&run.hit_ms, 50.0);
        println!(
            "{label}: backend calls avoided {avoided:.1} % (target >= 85 % with intent pools); hit p50 {hit_p50:.2} ms vs minimal-mode p50 {minimal_p50:.2} ms: {:+.2} ms (target <= 2 ms)",
            hit_p50 - minimal_p50
        );
    }
    let (hit_p50, rule_p50) = (
        percentile(&paired_hits, 50.0),
        percentile(&paired_minimal, 50.0),
    );
    println!(
        "side by side ({} pairs): hit p50 {hit_p50:.2} ms, minimal-mode p50 {rule_p50:.2} ms: {:+.2} ms (target <= 2 ms)",
        paired_hits.len(),
        hit_p50 - rule_p50
    );
    let intent = &results[2].1;
    println!(
        "false hits (intent pool is not the utterance's gold intent): {} of {} intent-pool hits = {:.2} % (target <= 1 %)",
        intent.false_hits,
        intent.intent_hits,
        percent(intent.false_hits, intent.intent_hits)
    );
    let mixed = &results[3].1;
    println!(
        "mixed run: {} of {} other-domain and out-of-scope turns answered from a small-talk pool = {:.2} % (target <= 0.5 %); {} keyed to one ({:.2} %); small-talk false hits {} of {} intent hits",
        mixed.other_answered_from_pool,
        mixed.other_turns,
        percent(mixed.other_answered_from_pool, mixed.other_turns),
        mixed.other_keyed_to_pool,
        percent(mixed.other_keyed_to_pool, mixed.other_turns),
        mixed.false_hits,
        mixed.intent_hits,
    );
}
