//! The edge's load benchmark: `cargo xtask bench-edge [workerd|spin] [seconds]`.
//!
//! Starts the shipped build on its runtime on 127.0.0.1 and drives, in one run, the runtime's
//! empty route and the full minimal-mode path (JWT, per-user state, reply, history write)
//! with wrk, then prints req/s, p50/p99 and the throughput ratio.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use e2e::local::{Launcher, LocalRuntime};
use eindr_bench::load::{self, ACKNOWLEDGMENT_BODY, CHAT_BODY, LoadShape, Route};

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

/// Limits high enough that the benchmark measures the path, not the rate limiter's refusals.
const BENCH_VARS: [(&str, &str); 3] = [
    ("EDGE_BENCH_ROUTES", "true"),
    ("RATE_LIMIT_PER_MINUTE", "1000000"),
    ("RATE_LIMIT_BURST", "1000000"),
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
            let routes = [
                Route::Baseline {
                    name: "empty route",
                    path: "/bench/empty",
                },
                RESPOND_ROUTES[0],
                RESPOND_ROUTES[1],
            ];
            let results = load::drive(&rt, &routes, shape);
            load::report("Spin component (spin-test-host)", shape, &routes, &results);
        }
        other => {
            eprintln!("unknown runtime {other:?}; expected: workerd, spin");
            std::process::exit(2);
        }
    }
}
