//! The soak run: `cargo xtask soak [minutes] [workerd|spin|native ...]`.
//!
//! Drives mixed traffic at each runtime for `minutes` (default 10): valid turns, bursts of
//! concurrent turns of one user, history reads and deletes, invalid tokens, oversized and
//! malformed bodies. Samples the runtime's resident memory every 5 s. At the end reads every
//! user's history back and prints, per runtime: requests, status counts, 5xx (target 0), turns
//! acknowledged with a 200 but missing from history (target 0), and memory after warm-up, at
//! the end and at most (target: no growth beyond a bounded cache).
//!
//! Each worker thread owns its users: their turns and deletes are ordered, so "acknowledged
//! since the last delete" is exact, while bursts still send one user's turns concurrently.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use e2e::Runtime;
use e2e::client::Client;
use e2e::local::{Launcher, LocalRuntime};
use serde_json::json;

const WORKERS: usize = 4;
const USERS_PER_WORKER: usize = 5;
const BURST: usize = 6;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Limits that let the traffic through: refusals here would be the rate limiter's, not the
/// system's; history long enough to hold every turn between two deletes.
const SOAK_VARS: [(&str, &str); 3] = [
    ("RATE_LIMIT_PER_MINUTE", "1000000"),
    ("RATE_LIMIT_BURST", "1000000"),
    ("HISTORY_MAX_TURNS", "10000"),
];

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, u64>,
    unexpected: Vec<String>,
}

impl Tally {
    fn count(&mut self, what: &str, status: u16, expected: &[u16]) {
        *self.statuses.entry(status).or_default() += 1;
        if !expected.contains(&status) && self.unexpected.len() < 20 {
            self.unexpected
                .push(format!("{what}: {status}, expected one of {expected:?}"));
        }
    }
}

/// A small deterministic generator per worker (xorshift).
struct Dice(u64);
impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn work(
    c: &Client,
    worker: usize,
    done: &AtomicBool,
    tally: &Mutex<Tally>,
) -> Vec<(String, Vec<String>)> {
    let users: Vec<String> = (0..USERS_PER_WORKER)
        .map(|u| format!("soak-{worker}-{u}"))
        .collect();
    let tokens: Vec<String> = users.iter().map(|u| c.token(u)).collect();
    let forger = Client::new(c.base(), "a-secret-the-edge-has-never-seen-0123456789");
    let mut acknowledged: Vec<Vec<String>> = vec![Vec::new(); users.len()];
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1));
    let mut n = 0u64;
    let oversized = vec![b'x'; 64 * 1024];
    while !done.load(Ordering::Relaxed) {
        n += 1;
        let u = dice.roll(users.len() as u64) as usize;
        let (user, token) = (&users[u], &tokens[u]);
        let roll = dice.roll(100);
        let mut t = Tally::default();
        match roll {
            0..=49 => {
                let message = format!("turn {n} of {user}");
                let answer = c.respond(user, json!({ "message": message }));
                t.count("turn", answer.status, &[200]);
                if answer.status == 200 {
                    acknowledged[u].push(message);
                }
            }
            50..=54 => {
                let messages: Vec<String> = (0..BURST)
                    .map(|i| format!("burst {n}.{i} of {user}"))
                    .collect();
                let statuses: Vec<u16> = thread::scope(|s| {
                    let handles: Vec<_> = messages
                        .iter()
                        .map(|m| s.spawn(move || c.respond(user, json!({ "message": m })).status))
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
                for (message, status) in messages.into_iter().zip(statuses) {
                    t.count("burst turn", status, &[200]);
                    if status == 200 {
                        acknowledged[u].push(message);
                    }
                }
            }
            55..=69 => {
                let answer = c.get(&format!("/api/chat/history/{user}"), token);
                t.count("history", answer.status, &[200]);
            }
            70..=74 => {
                let answer = c.delete(&format!("/api/chat/history/{user}"), token);
                t.count("delete", answer.status, &[200]);
                if answer.status == 200 {
                    acknowledged[u].clear();
                }
            }
            75..=84 => {
                let answer = forger.respond(user, json!({"message": "let me in"}));
                // 429 once the address has spent its failed-authentication burst.
                t.count("forged token", answer.status, &[401, 429]);
            }
            85..=92 => {
                let answer = c.send(
                    "POST",
                    "/api/chat/respond",
                    Some(token),
                    Some("application/json"),
                    Some(oversized.clone()),
                );
                t.count("oversized body", answer.status, &[413]);
            }
            _ => {
                let answer = c.send(
                    "POST",
                    "/api/chat/respond",
                    Some(token),
                    Some("application/json"),
                    Some(b"{\"message\": \"unterminated".to_vec()),
                );
                t.count("malformed body", answer.status, &[400]);
            }
        }
        let mut all = tally.lock().unwrap();
        for (status, count) in t.statuses {
            *all.statuses.entry(status).or_default() += count;
        }
        for line in t.unexpected {
            if all.unexpected.len() < 20 {
                all.unexpected.push(line);
            }
        }
    }
    users.into_iter().zip(acknowledged).collect()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Soaks one runtime; true when it met the targets.
fn soak(name: &str, launcher: Launcher, minutes: f64) -> bool {
    let rt = LocalRuntime::start(launcher, &format!("soak-{name}"), &SOAK_VARS);
    let c = Client::new(&rt.base_url(), rt.secret());
    let done = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let length = Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    let owners: Vec<(String, Vec<String>)> = thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (c, done, tally) = (&c, &done, &tally);
                s.spawn(move || work(c, w, done, tally))
            })
            .collect();
        let mut samples = Vec::new();
        while started.elapsed() < length {
            thread::sleep(SAMPLE_EVERY.min(length.saturating_sub(started.elapsed())));
            samples.push((started.elapsed(), rt.memory_kib()));
        }
        done.store(true, Ordering::Relaxed);
        let owners = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        // Memory after the first tenth of the run (warmed up), at the end, and at most.
        let warm = samples
            .iter()
            .find(|(at, _)| *at >= length / 10)
            .map_or(0, |(_, kib)| *kib);
        let end = samples.last().map_or(0, |(_, kib)| *kib);
        let max = samples.iter().map(|(_, kib)| *kib).max().unwrap_or(0);
        println!(
            "soak {name}: memory after warm-up {}, at the end {}, at most {} ({} samples)",
            mib(warm),
            mib(end),
            mib(max),
            samples.len()
        );
        owners
    });
    let mut missing = 0usize;
    for (user, acknowledged) in &owners {
        let history = c.get(
            &format!("/api/chat/history/{user}?limit=10000"),
            &c.token(user),
        );
        let stored: Vec<&str> = history.body["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["content"].as_str()).collect())
            .unwrap_or_default();
        missing += acknowledged
            .iter()
            .filter(|m| !stored.contains(&m.as_str()))
            .count();
    }
    let tally = tally.lock().unwrap();
    let requests: u64 = tally.statuses.values().sum();
    let server_errors: u64 = tally
        .statuses
        .iter()
        .filter(|(status, _)| **status >= 500)
        .map(|(_, n)| n)
        .sum();
    let acknowledged: usize = owners.iter().map(|(_, a)| a.len()).sum();
    println!(
        "soak {name}: {requests} requests in {:.1} min ({:.0}/s), statuses {:?}, 5xx {server_errors}, \
         {missing} of {acknowledged} acknowledged turns (since each user's last delete) missing from history",
        started.elapsed().as_secs_f64() / 60.0,
        requests as f64 / started.elapsed().as_secs_f64(),
        tally.statuses
    );
    for line in &tally.unexpected {
        println!("soak {name}: unexpected: {line}");
    }
    server_errors == 0 && missing == 0 && tally.unexpected.is_empty()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let minutes: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let chosen: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let runtimes = [
        ("workerd", Launcher::Miniflare),
        ("spin", Launcher::SpinHost),
        ("native", Launcher::Native),
    ];
    let mut clean = true;
    for (name, launcher) in runtimes {
        if chosen.is_empty() || chosen.contains(&name) {
            clean &= soak(name, launcher, minutes);
        }
    }
    if !clean {
        eprintln!("soak: a target was missed (see above)");
        std::process::exit(1);
    }
}
