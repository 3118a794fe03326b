//! Fills the edge's cache pools ahead of traffic: `cargo xtask warm-cache [URL] [FILE]`.
//!
//! Sends the questions of FILE (one per line, `#` comments) to `POST /api/chat/cache/warm` in
//! calls of 16, with the admin token in `EINDR_ADMIN_TOKEN`, round after round (a pool takes
//! one answer per call, and is written at most once a second) until every question's pool is
//! full, or two rounds in a row added nothing. Prints each pool's size at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// The endpoint's limit per call.
const PER_CALL: usize = 16;
const MAX_ROUNDS: usize = 64;

fn main() {
    if let Err(message) = run() {
        eprintln!("warm-cache: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(file)) = (args.first(), args.get(1)) else {
        return Err("usage: warm_cache URL FILE (token in EINDR_ADMIN_TOKEN)".into());
    };
    let token = std::env::var("EINDR_ADMIN_TOKEN")
        .map_err(|_| "EINDR_ADMIN_TOKEN must hold a token with the chat:admin scope")?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let mut pending: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    let endpoint = format!("{}/api/chat/cache/warm", url.trim_end_matches('/'));
    // Pool (key kind and intent, or the question for an exact key) → its size.
    let mut pools: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    let mut idle_rounds = 0;
    for round in 1..=MAX_ROUNDS {
        if pending.is_empty() || idle_rounds >= 2 {
            break;
        }
        let mut added = 0;
        let mut still = Vec::new();
        for chunk in pending.chunks(PER_CALL) {
            let mut response = agent
                .post(&endpoint)
                .header("authorization", &format!("Bearer {token}"))
                .send_json(json!({ "questions": chunk }))
                .map_err(|e| format!("{endpoint}: {e}"))?;
            let status = response.status().as_u16();
            let body: Value = response
                .body_mut()
                .read_json()
                .map_err(|e| format!("{endpoint}: {status}: {e}"))?;
            if status != 200 {
                return Err(format!("{endpoint}: {status}: {}", body["error"]));
            }
            for item in body["warmed"].as_array().into_iter().flatten() {
                let question = item["question"].as_str().unwrap_or_default().to_owned();
                let pool = match item["key"].as_str() {
                    Some("intent") => format!("intent {}", item["intent"].as_str().unwrap_or("")),
                    _ => format!("exact {question:?}"),
                };
                let size = item["pool_size"].as_u64().unwrap_or(0) as usize;
                let full = item["full"] == true;
                pools.insert(pool, (size, full));
                added += usize::from(item["added"] == true);
                if !full {
                    if let Some(reason) = item["skipped"].as_str() {
                        eprintln!("round {round}: {question:?}: {reason}");
                    }
                    still.push(question);
                }
            }
        }
        println!(
            "round {round}: {added} answers added, {} questions' pools not yet full",
            still.len()
        );
        idle_rounds = if added == 0 { idle_rounds + 1 } else { 0 };
        pending = still;
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(1_100));
        }
    }
    println!("{:<48} {:>5}", "pool", "size");
    for (pool, (size, full)) in &pools {
        println!("{pool:<48} {size:>5}{}", if *full { " (full)" } else { "" });
    }
    Ok(())
}
