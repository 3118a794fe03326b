//! The same end-to-end suite on the native server `eindr-edge`, on its memory store and on a
//! real Redis (Debian's `redis-server`), then what only a scaled-out deployment shows: two
//! instances on one Redis stay exact, a Redis outage under load gives 503s and loses no
//! acknowledged turn, and SIGTERM lets running turns finish.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use e2e::Runtime;
use e2e::client::Client;
use e2e::faulty::{Fault, FaultyBackend, PACED_ANSWER};
use e2e::local::{Launcher, LocalRuntime};
use e2e::redis::RedisServer;
use e2e::suite;
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

/// One instance of a deployment on `redis`: every instance verifies the same tokens.
fn on_redis(redis: &RedisServer, name: &str, vars: &[(&str, &str)]) -> LocalRuntime {
    let url = redis.url();
    let mut all = vec![
        ("STORE_URL", url.as_str()),
        (
            "JWT_HS256_SECRET",
            "e2e-secret-of-the-deployment-0123456789abcdef",
        ),
    ];
    all.extend_from_slice(vars);
    LocalRuntime::start(Launcher::Native, name, &all)
}

#[test]
fn two_instances_on_one_redis_are_exact() {
    let redis = RedisServer::start("two-instances");
    let strict = [("RATE_LIMIT_PER_MINUTE", "1"), ("RATE_LIMIT_BURST", "10")];
    let (a, b) = (
        on_redis(&redis, "strict-a", &strict),
        on_redis(&redis, "strict-b", &strict),
    );
    let both: [&dyn Runtime; 2] = [&a, &b];
    for round in 0..3 {
        let user = format!("e2e-two-burst-{round}");
        assert_eq!(suite::concurrent_admissions(&both, &user, 50), 10, "{user}");
    }
    drop((a, b));

    let roomy = [
        ("RATE_LIMIT_PER_MINUTE", "6000"),
        ("RATE_LIMIT_BURST", "1000"),
    ];
    let (a, b) = (
        on_redis(&redis, "roomy-a", &roomy),
        on_redis(&redis, "roomy-b", &roomy),
    );
    let both: [&dyn Runtime; 2] = [&a, &b];
    for round in 0..3 {
        suite::concurrent_turns(&both, &format!("e2e-two-turns-{round}"), 20);
    }
    // Written through one, read through the other.
    let (through_a, through_b) = (
        Client::new(&a.base_url(), a.secret()),
        Client::new(&b.base_url(), b.secret()),
    );
    let answer = through_a.respond("e2e-two-history", json!({"message": "remember the milk"}));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let history = through_b.get(
        "/api/chat/history/e2e-two-history",
        &through_b.token("e2e-two-history"),
    );
    assert_eq!(history.body["messages"][0]["content"], "remember the milk");
    assert_eq!(
        history.body["messages"][1]["content"],
        answer.body["response"]
    );
}

/// How long the outage test loads the two instances, and when Redis is down within it.
const LOAD: Duration = Duration::from_secs(60);
const OUTAGE: (Duration, Duration) = (Duration::from_secs(20), Duration::from_secs(40));
/// No answer may take longer: the store's timeouts must turn a dead Redis into a quick 503.
const DEADLINE: Duration = Duration::from_secs(5);

#[test]
fn redis_outage_under_load_gives_503s_and_loses_no_acknowledged_turn() {
    let mut redis = RedisServer::start("outage");
    let vars = [
        ("RATE_LIMIT_PER_MINUTE", "600000"),
        ("RATE_LIMIT_BURST", "100000"),
        ("HISTORY_MAX_TURNS", "10000"),
    ];
    let (a, b) = (
        on_redis(&redis, "outage-a", &vars),
        on_redis(&redis, "outage-b", &vars),
    );
    let clients = [
        Client::new(&a.base_url(), a.secret()),
        Client::new(&b.base_url(), b.secret()),
    ];
    let done = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (clients, done, slowest) = (clients.clone(), done.clone(), slowest.clone());
            thread::spawn(move || {
                let user = format!("e2e-outage-{w}");
                let (mut acknowledged, mut statuses) = (Vec::new(), Vec::new());
                let mut i = 0usize;
                while !done.load(Ordering::Relaxed) {
                    let message = format!("turn {i} of {user}");
                    let started = Instant::now();
                    let answer = clients[i % 2].respond(&user, json!({ "message": message }));
                    let took = started.elapsed();
                    let mut worst = slowest.lock().unwrap();
                    *worst = (*worst).max(took);
                    drop(worst);
                    match (answer.status, answer.code()) {
                        (200, _) => acknowledged.push(message),
                        (503, "store_unavailable") => {
                            assert!(
                                answer.header("retry-after").is_some(),
                                "503 without Retry-After"
                            );
                        }
                        (status, code) => panic!("{user}: {status} {code}: {}", answer.body),
                    }
                    statuses.push(answer.status);
                    i += 1;
                    thread::sleep(Duration::from_millis(20));
                }
                (user, acknowledged, statuses)
            })
        })
        .collect();
    let started = Instant::now();
    let ready = |c: &Client| c.send("GET", "/ready", None, None, None).status;
    thread::sleep(OUTAGE.0);
    redis.stop();
    thread::sleep(Duration::from_secs(1));
    assert_eq!(ready(&clients[0]), 503, "/ready while Redis is down");
    thread::sleep(OUTAGE.1 - OUTAGE.0 - Duration::from_secs(1));
    redis.resume();
    thread::sleep(LOAD - OUTAGE.1);
    assert_eq!(ready(&clients[1]), 200, "/ready after Redis came back");
    done.store(true, Ordering::Relaxed);
    let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    eprintln!(
        "outage: {:?} of load, slowest answer {:?}",
        started.elapsed(),
        slowest.lock().unwrap()
    );
    assert!(
        *slowest.lock().unwrap() < DEADLINE,
        "an answer hung past {DEADLINE:?}"
    );
    for (user, acknowledged, statuses) in &results {
        let unavailable = statuses.iter().filter(|s| **s == 503).count();
        assert!(unavailable > 0, "{user}: Redis was down, yet no 503");
        // After the outage the last turns are served again.
        assert!(
            statuses.iter().rev().take(10).all(|s| *s == 200),
            "{user}: not serving again after Redis came back: {:?}",
            &statuses[statuses.len().saturating_sub(10)..]
        );
        let c = &clients[0];
        let history = c.get(&format!("/api/chat/history/{user}"), &c.token(user));
        assert_eq!(history.status, 200, "{}", history.body);
        let stored: Vec<&str> = history.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "user")
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        for message in acknowledged {
            assert!(
                stored.contains(&message.as_str()),
                "{user}: acknowledged {message:?} is not in history"
            );
        }
        eprintln!(
            "outage: {user}: {} turns acknowledged and stored, {unavailable} answered 503",
            acknowledged.len()
        );
    }
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
