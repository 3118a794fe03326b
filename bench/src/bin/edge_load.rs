//! The edge's load benchmark: `cargo xtask bench-edge [workerd|spin|native] [seconds]`.
//!
//! Starts the shipped build on its runtime on 127.0.0.1 and drives, in one run, the runtime's
//! empty route and the full minimal-mode path (JWT, per-user state, reply, history write)
//! with wrk, then prints req/s, p50/p99 and the throughput ratio. `native` runs `eindr-edge`
//! on its memory store and on Redis, then a fixed 1,000 req/s of turns on Redis (open loop),
//! then both on a Redis Cluster (three primaries, three replicas) with each `STORE_DURABILITY`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use e2e::Runtime;
use e2e::client::Client;
use e2e::local::{Launcher, LocalRuntime};
use e2e::redis::{RedisCluster, RedisServer};
use eindr_bench::load::{self, ACKNOWLEDGMENT_BODY, CHAT_BODY, LoadShape, Route};
use eindr_bench::rate::{FixedRate, oha_post};

/// The two minimal-mode turns: a task acknowledgment and a chat turn the intent model reads.
const RESPOND_ROUTES: [Route<'static>; 2] = [
    Route::Respond {
        name: "acknowledgment",
        body: ACKNOWLEDGMENT_BODY,
        users: 64,
    },
    Route::Respond {
        name: "chat, intent model",
        body: CHAT_BODY,
        users: 64,
    },
];

/// The runtime's empty route, then both turns.
const EMPTY_AND_TURNS: [Route<'static>; 3] = [
    Route::Baseline {
        name: "empty route",
        path: "/bench/empty",
    },
    RESPOND_ROUTES[0],
    RESPOND_ROUTES[1],
];

/// Limits high enough that the benchmark measures the path, not the rate limiter's refusals;
/// a burst that refills within 10 s, so the worker keeps the state in memory as it does with
/// the default quota (edge/cloudflare/src/records.rs).
const BENCH_VARS: [(&str, &str); 3] = [
    ("EDGE_BENCH_ROUTES", "true"),
    ("RATE_LIMIT_PER_MINUTE", "1000000"),
    ("RATE_LIMIT_BURST", "100000"),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = args.first().map_or("workerd", String::as_str);
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let shape = LoadShape {
        threads: 2,
        connections: 16,
        duration: Duration::from_secs(seconds.clamp(1, 120)),
    };
    match runtime {
        "workerd" => {
            let rt = LocalRuntime::start(Launcher::Miniflare, "load", &BENCH_VARS);
            let routes = [
                Route::Baseline {
                    name: "empty route",
                    path: "/bench/empty",
                },
                Route::Baseline {
                    name: "hop to a Durable Object",
                    path: "/bench/object",
                },
                RESPOND_ROUTES[0],
                RESPOND_ROUTES[1],
            ];
            let results = load::drive(&rt, &routes, shape);
            load::report("workerd (Miniflare)", shape, &routes, &results);
        }
        "spin" => {
            let rt = LocalRuntime::start(Launcher::SpinHost, "load", &BENCH_VARS);
            let routes = EMPTY_AND_TURNS;
            let results = load::drive(&rt, &routes, shape);
            load::report("Spin component (spin-test-host)", shape, &routes, &results);
        }
        "native" => native(shape),
        other => {
            eprintln!("unknown runtime {other:?}; expected: workerd, spin, native");
            std::process::exit(2);
        }
    }
}

/// `eindr-edge` on its memory store, then on Redis (what several instances share), each with
/// the empty route and both turns; then, on a fresh server and Redis, the acknowledgment turn
/// at a fixed 1,000 req/s for the latency a client sees when the server is not saturated.
fn native(shape: LoadShape) {
    let routes = EMPTY_AND_TURNS;
    for (launcher, label) in [
        (Launcher::Native, "eindr-edge, memory store"),
        (Launcher::NativeRedis, "eindr-edge, Redis store"),
    ] {
        let (rt, _redis) = native_runtime(launcher, "load");
        let results = load::drive(&rt, &routes, shape);
        load::report(label, shape, &routes, &results);
    }
    // A fresh server and Redis, so the open loop doesn't start on the heap and the store the
    // closed-loop runs left behind.
    let (rt, _redis) = native_runtime(Launcher::NativeRedis, "open-loop");
    open_loop(&rt, shape.duration, "Redis");
    drop((rt, _redis));
    for durability in ["primary", "replicated"] {
        let label = format!("eindr-edge, Redis Cluster store, STORE_DURABILITY={durability}");
        let (rt, _cluster) = native_cluster_runtime(&format!("load-{durability}"), durability);
        let results = load::drive(&rt, &routes, shape);
        load::report(&label, shape, &routes, &results);
        drop((rt, _cluster));
        let (rt, _cluster) = native_cluster_runtime(&format!("open-loop-{durability}"), durability);
        open_loop(
            &rt,
            shape.duration,
            &format!("a Redis Cluster, STORE_DURABILITY={durability}"),
        );
    }
}

/// `eindr-edge` with the bench's configuration on a Redis Cluster of its own (in memory, as
/// [`native_runtime`]'s Redis), held as long as the server.
fn native_cluster_runtime(name: &str, durability: &str) -> (LocalRuntime, RedisCluster) {
    let cluster = RedisCluster::start_in_memory(name);
    let url = cluster.url();
    let mut vars = BENCH_VARS.to_vec();
    vars.push(("STORE_URL", &url));
    vars.push(("STORE_DURABILITY", durability));
    (
        LocalRuntime::start(Launcher::NativeCluster, name, &vars),
        cluster,
    )
}

/// `eindr-edge` with the bench's configuration; on Redis, a Redis without persistence (see
/// [`RedisServer::start_in_memory`]), returned to be held as long as the server.
fn native_runtime(launcher: Launcher, name: &str) -> (LocalRuntime, Option<RedisServer>) {
    if launcher != Launcher::NativeRedis {
        return (LocalRuntime::start(launcher, name, &BENCH_VARS), None);
    }
    let redis = RedisServer::start_in_memory(name);
    let url = redis.url();
    let mut vars = BENCH_VARS.to_vec();
    vars.push(("STORE_URL", &url));
    (LocalRuntime::start(launcher, name, &vars), Some(redis))
}

/// Users of the open-loop run, each at an equal share of [`OPEN_LOOP_RATE`]: one user's turns
/// take turns on its records, and a real load comes from many users.
const OPEN_LOOP_USERS: u32 = 10;
const OPEN_LOOP_RATE: u32 = 1_000;

/// The acknowledgment turn at a fixed total arrival rate (oha per user, latency counted from
/// each request's scheduled start); prints the total rate and the worst user's p50 and p99.
fn open_loop(rt: &LocalRuntime, duration: Duration, store: &str) {
    let oha = std::env::var("EINDR_OHA").expect("EINDR_OHA: cargo xtask bench-edge sets it");
    let client = Client::new(&rt.base_url(), rt.secret());
    let url = format!("{}/api/chat/respond", rt.base_url());
    let rate = FixedRate {
        per_second: OPEN_LOOP_RATE / OPEN_LOOP_USERS,
        connections: 4,
        duration,
    };
    let runs: Vec<_> = (0..OPEN_LOOP_USERS)
        .map(|i| {
            let (oha, url) = (oha.clone(), url.clone());
            let authorization = format!("Bearer {}", client.token(&format!("open-loop-{i}")));
            std::thread::spawn(move || {
                oha_post(
                    &oha,
                    &url,
                    &[
                        ("content-type", "application/json"),
                        ("authorization", &authorization),
                    ],
                    ACKNOWLEDGMENT_BODY,
                    rate,
                )
            })
        })
        .collect();
    let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    let total: f64 = results.iter().map(|r| r.requests_per_s).sum();
    let worst = |f: fn(&load::LoadResult) -> f64| results.iter().map(f).fold(0.0, f64::max);
    println!(
        "open loop on {store}, acknowledgment, {OPEN_LOOP_USERS} users x {} req/s for {}s (oha, latency from each request's scheduled start): {total:.0} req/s, p50 {:.2} ms, p99 {:.2} ms (worst user; target p99 < 5 ms), {} requests, {} failures",
        rate.per_second,
        duration.as_secs(),
        worst(|r| r.p50_ms),
        worst(|r| r.p99_ms),
        results.iter().map(|r| r.requests).sum::<u64>(),
        results.iter().map(|r| r.failures).sum::<u64>(),
    );
}
