//! The same end-to-end suite on the native server `eindr-edge`, on its memory store, on a
//! real Redis (Debian's `redis-server`) and on a Redis Cluster of them (three primaries,
//! three replicas), then what only a scaled-out deployment shows (two instances on one Redis
//! or cluster stay exact, a Redis outage under load gives 503s and loses no acknowledged turn,
//! a cluster failover under load is counted), `/ready` and `/metrics`, and SIGTERM letting
//! running turns finish.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::thread;
use std::time::Duration;

use e2e::Runtime;
use e2e::client::Client;
use e2e::faulty::{Fault, FaultyBackend, PACED_ANSWER};
use e2e::local::{Launcher, LocalRuntime};
use e2e::redis::RedisCluster;
use e2e::{scale_out, suite};
use serde_json::json;

#[test]
fn native_memory_api_authorization_and_concurrent_turns() {
    suite::run_main(Launcher::Native);
}

#[test]
fn native_memory_exact_rate_limit_and_retention() {
    suite::run_strict(Launcher::Native);
}

#[test]
fn native_redis_api_authorization_persistence_and_concurrent_turns() {
    suite::run_main(Launcher::NativeRedis);
}

#[test]
fn native_redis_exact_rate_limit_and_retention() {
    suite::run_strict(Launcher::NativeRedis);
}

#[test]
fn ready_and_metrics_count_what_happened() {
    let edge = LocalRuntime::start(
        Launcher::Native,
        "metrics",
        &[("RATE_LIMIT_PER_MINUTE", "1"), ("RATE_LIMIT_BURST", "3")],
    );
    let c = Client::new(&edge.base_url(), edge.secret());
    assert_eq!(c.send("GET", "/ready", None, None, None).status, 200);
    assert_eq!(
        c.respond("e2e-metrics", json!({"message": "tell me a joke"}))
            .status,
        200
    );
    let statuses: Vec<u16> = (0..3)
        .map(|_| c.respond("e2e-metrics", json!({"message": "hello"})).status)
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    let metrics = c.send("GET", "/metrics", None, None, None);
    let text = metrics.body.as_str().unwrap_or_default();
    for series in [
        r#"eindr_edge_requests_total{route="/api/chat/respond",status="200"} 3"#,
        r#"eindr_edge_requests_total{route="/api/chat/respond",status="429"} 1"#,
        r#"eindr_edge_rate_limited_total{code="rate_limit_exceeded"} 1"#,
        r#"eindr_edge_turns_total{engine="minimal"} 3"#,
        r#"eindr_edge_request_duration_seconds_count{route="/ready"} 1"#,
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
}

#[test]
fn two_instances_on_one_redis_are_exact() {
    scale_out::two_instances_are_exact(Launcher::NativeRedis, Launcher::NativeRedis);
}

#[test]
fn redis_outage_under_load_gives_503s_and_loses_no_acknowledged_turn() {
    scale_out::outage_under_load(Launcher::NativeRedis);
}

#[test]
fn native_cluster_api_authorization_persistence_and_concurrent_turns() {
    suite::run_main(Launcher::NativeCluster);
}

#[test]
fn native_cluster_exact_rate_limit_and_retention() {
    suite::run_strict(Launcher::NativeCluster);
}

/// 50 concurrent requests of a new user with burst 10 through two instances admit exactly 10,
/// and 20 concurrent turns store 40 messages, for users whose records lie on different
/// primaries of one Redis Cluster.
#[test]
fn two_instances_on_a_redis_cluster_are_exact() {
    let cluster = RedisCluster::start("two-instances");
    scale_out::two_instances_are_exact_on(
        Launcher::NativeCluster,
        Launcher::NativeCluster,
        &cluster.url(),
    );
}

/// A primary killed under load with `STORE_DURABILITY=replicated`: no 5xx but 503
/// `store_unavailable` (with Retry-After), the users of its slots served again once its
/// replica took over, and no acknowledged turn lost.
#[test]
fn cluster_failover_with_replicated_writes_loses_no_acknowledged_turn() {
    let report = scale_out::failover_under_load("replicated");
    assert!(report.other_errors.is_empty(), "{report:?}");
    assert!(
        report.unavailable > 0,
        "the failover went unnoticed: {report:?}"
    );
    assert!(
        report.longest_unserved < Duration::from_secs(20),
        "{report:?}"
    );
    assert_eq!(report.lost, 0, "{report:?}");
}

/// The same with `STORE_DURABILITY=primary`: the same availability; a turn the primary
/// acknowledged and died before copying is lost (the price of that setting), and counted.
#[test]
fn cluster_failover_with_primary_writes_counts_what_it_loses() {
    let report = scale_out::failover_under_load("primary");
    assert!(report.other_errors.is_empty(), "{report:?}");
    assert!(
        report.longest_unserved < Duration::from_secs(20),
        "{report:?}"
    );
    assert_eq!(report.unconfirmed, 0.0, "primary never waits: {report:?}");
    eprintln!(
        "failover with STORE_DURABILITY=primary: {} of {} acknowledged turns lost",
        report.lost, report.acknowledged
    );
}

#[test]
fn sigterm_lets_running_turns_finish_and_exits_0() {
    let backend = FaultyBackend::start(Fault::Paced(Duration::from_millis(100)));
    let mut edge = LocalRuntime::start(
        Launcher::Native,
        "sigterm",
        &[
            ("MINIMAL_MODE", "false"),
            ("BACKEND_URL", &backend.url()),
            ("BACKEND_API_KEY", "unused"),
            ("BACKEND_BREAKER_FAILURES", "1000"),
            ("RATE_LIMIT_PER_MINUTE", "6000"),
            ("RATE_LIMIT_BURST", "1000"),
        ],
    );
    let client = Client::new(&edge.base_url(), edge.secret());
    let turns: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            thread::spawn(move || {
                let token = client.token(&format!("e2e-sigterm-{i}"));
                client.send(
                    "POST",
                    "/api/chat/respond",
                    Some(&token),
                    Some("application/json"),
                    Some(
                        json!({"message": "count to ten", "stream": true})
                            .to_string()
                            .into_bytes(),
                    ),
                )
            })
        })
        .collect();
    // Every turn is under way (the answer takes a second), then the orchestrator stops us.
    thread::sleep(Duration::from_millis(300));
    let port = edge.base_url().rsplit(':').next().unwrap().to_owned();
    let status = edge.terminate(Duration::from_secs(20));
    for turn in turns {
        let answer = turn.join().unwrap();
        assert_eq!(answer.status, 200);
        let text = answer.body.as_str().unwrap_or_default();
        assert!(text.trim_end().ends_with("data: [DONE]"), "cut: {text}");
        let deltas: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|v| v["delta"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(deltas, PACED_ANSWER, "{text}");
        assert!(text.contains("\"fallback_used\":false"), "{text}");
    }
    let status = status.expect("eindr-edge did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "still accepting after SIGTERM"
    );
}
