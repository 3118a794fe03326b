//! What only a scaled-out deployment shows, for any runtime that keeps its state in Redis:
//! two instances on one Redis (or one Redis Cluster) stay exact, a Redis outage under load
//! gives quick 503s and loses no acknowledged turn, and a cluster's failover under load is
//! counted: errors, the longest time a user went unserved, acknowledged turns lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::Runtime;
use crate::client::Client;
use crate::local::{Launcher, LocalRuntime};
use crate::redis::{RedisCluster, RedisServer};
use crate::suite;

/// One instance of a deployment on the Redis at `url`: every instance verifies the same
/// tokens.
pub fn on_redis(launcher: Launcher, url: &str, name: &str, vars: &[(&str, &str)]) -> LocalRuntime {
    let mut all = vec![
        ("STORE_URL", url),
        (
            "JWT_HS256_SECRET",
            "e2e-secret-of-the-deployment-0123456789abcdef",
        ),
    ];
    all.extend_from_slice(vars);
    LocalRuntime::start(launcher, name, &all)
}

/// Two instances on one Redis, of the runtimes `first` and `second` (the same one, or a native
/// server beside a Spin replica: one store protocol): exact burst admission across both (10 of
/// 50), every concurrent turn stored (20 turns, 40 messages), and a turn written through one
/// read through the other.
pub fn two_instances_are_exact(first: Launcher, second: Launcher) {
    let redis = RedisServer::start(&format!("two-instances-{first:?}-{second:?}"));
    two_instances_are_exact_on(first, second, &redis.url());
}

/// [`two_instances_are_exact`] on the Redis (or Redis Cluster) at `url`. The users' records
/// lie in different slots (on a cluster, on different primaries).
pub fn two_instances_are_exact_on(first: Launcher, second: Launcher, redis: &str) {
    let strict = [("RATE_LIMIT_PER_MINUTE", "1"), ("RATE_LIMIT_BURST", "10")];
    let (a, b) = (
        on_redis(first, redis, "strict-a", &strict),
        on_redis(second, redis, "strict-b", &strict),
    );
    let both: [&dyn Runtime; 2] = [&a, &b];
    for round in 0..4 {
        let user = format!("e2e-two-burst-{round}");
        assert_eq!(suite::concurrent_admissions(&both, &user, 50), 10, "{user}");
    }
    drop((a, b));

    let roomy = [
        ("RATE_LIMIT_PER_MINUTE", "6000"),
        ("RATE_LIMIT_BURST", "1000"),
    ];
    let (a, b) = (
        on_redis(first, redis, "roomy-a", &roomy),
        on_redis(second, redis, "roomy-b", &roomy),
    );
    let both: [&dyn Runtime; 2] = [&a, &b];
    for round in 0..4 {
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

/// A minute of turns on two instances while Redis is down for 20 s of it: 503
/// `store_unavailable` with `Retry-After` while it is down, no answer slower than
/// [`DEADLINE`], serving again once it is back, and every acknowledged turn in history.
pub fn outage_under_load(launcher: Launcher) {
    let mut redis = RedisServer::start(&format!("outage-{launcher:?}"));
    let vars = [
        ("RATE_LIMIT_PER_MINUTE", "600000"),
        ("RATE_LIMIT_BURST", "100000"),
        ("HISTORY_MAX_TURNS", "10000"),
    ];
    let (a, b) = (
        on_redis(launcher, &redis.url(), "outage-a", &vars),
        on_redis(launcher, &redis.url(), "outage-b", &vars),
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
    // `/ready` where the runtime has it: 503 while Redis is down, 200 once it is back.
    let ready = |c: &Client, expected: u16| {
        if launcher.serves_ready() {
            let status = c.send("GET", "/ready", None, None, None).status;
            assert_eq!(
                status,
                expected,
                "/ready with Redis {}",
                if expected == 200 { "up" } else { "down" }
            );
        }
    };
    thread::sleep(OUTAGE.0);
    redis.stop();
    thread::sleep(Duration::from_secs(1));
    ready(&clients[0], 503);
    thread::sleep(OUTAGE.1 - OUTAGE.0 - Duration::from_secs(1));
    redis.resume();
    thread::sleep(LOAD - OUTAGE.1);
    ready(&clients[1], 200);
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

/// What a failover under load cost.
#[derive(Debug)]
pub struct FailoverReport {
    pub turns: usize,
    pub acknowledged: usize,
    /// 503 `store_unavailable`, each with `Retry-After`.
    pub unavailable: usize,
    /// Any other 5xx, by status and code.
    pub other_errors: Vec<(u16, String)>,
    /// The longest time from a user's first unanswered turn to their next answered one.
    pub longest_unserved: Duration,
    /// Acknowledged turns missing from history afterwards.
    pub lost: usize,
    /// `eindr_edge_store_unconfirmed_writes_total` over both instances.
    pub unconfirmed: f64,
}

/// A minute of turns from eight users through two `eindr-edge` instances on a Redis Cluster
/// (`durability` is `STORE_DURABILITY`); at 20 s one primary is killed (SIGKILL) and its
/// replica takes over. Counts what it cost; the caller holds the targets.
pub fn failover_under_load(durability: &str) -> FailoverReport {
    const USERS: usize = 8;
    let mut cluster = RedisCluster::start(&format!("failover-{durability}"));
    let vars = [
        ("RATE_LIMIT_PER_MINUTE", "600000"),
        ("RATE_LIMIT_BURST", "100000"),
        ("HISTORY_MAX_TURNS", "10000"),
        ("STORE_DURABILITY", durability),
    ];
    let url = cluster.url();
    let (a, b) = (
        on_redis(Launcher::NativeCluster, &url, "failover-a", &vars),
        on_redis(Launcher::NativeCluster, &url, "failover-b", &vars),
    );
    let clients = [
        Client::new(&a.base_url(), a.secret()),
        Client::new(&b.base_url(), b.secret()),
    ];
    let done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..USERS)
        .map(|w| {
            let (clients, done) = (clients.clone(), done.clone());
            thread::spawn(move || {
                let user = format!("e2e-failover-{w}");
                let mut acknowledged = Vec::new();
                let (mut turns, mut unavailable, mut other) = (0, 0, Vec::new());
                let (mut unserved_since, mut longest) = (None::<Instant>, Duration::ZERO);
                let mut i = 0usize;
                while !done.load(Ordering::Relaxed) {
                    let message = format!("turn {i} of {user}");
                    let started = Instant::now();
                    let answer = clients[i % 2].respond(&user, json!({ "message": message }));
                    turns += 1;
                    match (answer.status, answer.code()) {
                        (200, _) => {
                            acknowledged.push(message);
                            if let Some(since) = unserved_since.take() {
                                longest = longest.max(since.elapsed());
                            }
                        }
                        (503, "store_unavailable") => {
                            assert!(
                                answer.header("retry-after").is_some(),
                                "503 without Retry-After"
                            );
                            unavailable += 1;
                            unserved_since.get_or_insert(started);
                        }
                        (status, code) => {
                            other.push((status, code.to_owned()));
                            unserved_since.get_or_insert(started);
                        }
                    }
                    i += 1;
                    thread::sleep(Duration::from_millis(20));
                }
                if let Some(since) = unserved_since {
                    longest = longest.max(since.elapsed());
                }
                (user, acknowledged, turns, unavailable, other, longest)
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(20));
    let killed = cluster.kill_a_primary();
    eprintln!("failover ({durability}): killed the primary on port {killed}");
    thread::sleep(Duration::from_secs(40));
    done.store(true, Ordering::Relaxed);
    let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    cluster.wait_until_ok(Duration::from_secs(30));
    let mut report = FailoverReport {
        turns: 0,
        acknowledged: 0,
        unavailable: 0,
        other_errors: Vec::new(),
        longest_unserved: Duration::ZERO,
        lost: 0,
        unconfirmed: [&clients[0], &clients[1]]
            .iter()
            .map(|c| {
                c.metric("eindr_edge_store_unconfirmed_writes_total")
                    .unwrap_or(0.0)
            })
            .sum(),
    };
    for (user, acknowledged, turns, unavailable, other, longest) in results {
        let c = &clients[0];
        // As a client would: a 503 says when to come back (the cluster's nodes agree on the
        // new primary a little after one of them says the cluster is ok).
        let read_deadline = Instant::now() + Duration::from_secs(10);
        let history = loop {
            let history = c.get(&format!("/api/chat/history/{user}"), &c.token(&user));
            if history.status != 503 || Instant::now() > read_deadline {
                break history;
            }
            thread::sleep(Duration::from_secs(1));
        };
        assert_eq!(history.status, 200, "{}", history.body);
        let stored: std::collections::HashSet<&str> = history.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "user")
            .filter_map(|m| m["content"].as_str())
            .collect();
        report.lost += acknowledged
            .iter()
            .filter(|m| !stored.contains(m.as_str()))
            .count();
        report.turns += turns;
        report.acknowledged += acknowledged.len();
        report.unavailable += unavailable;
        report.other_errors.extend(other);
        report.longest_unserved = report.longest_unserved.max(longest);
    }
    eprintln!("failover ({durability}): {report:?}");
    report
}
