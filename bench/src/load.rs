//! Load runs with `wrk` (Debian's package) on loopback: the minimal-mode route against the
//! runtime's empty route, in one run, bounded in time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::Runtime;
use e2e::client::Client;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct LoadResult {
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// Non-2xx/3xx answers plus socket errors: a sound run has none.
    pub failures: u64,
}

/// A bounded load: `connections` keep-alive connections on `threads` threads for `duration`.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
}

/// A task acknowledgment, the common minimal-mode turn (the upstream NLU read it: the intent
/// model does not run).
pub const ACKNOWLEDGMENT_BODY: &str = r#"{"message":"Remind me about the meeting at 2","context":{"intent":"create_reminder","processing_result":{"success":true,"data":{"title":"meeting","time":"14:00"}}}}"#;

/// A chat turn without context: the edge's intent model reads it.
pub const CHAT_BODY: &str = r#"{"message":"could you tell me a funny joke please"}"#;

/// One route the benchmark drives.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// A GET that the runtime answers without the core (a baseline).
    Baseline { name: &'a str, path: &'a str },
    /// POST /api/chat/respond with `body`, tokens rotated over `users` users, so each user's
    /// Durable Object or KV key sees its share.
    Respond {
        name: &'a str,
        body: &'a str,
        users: usize,
    },
}

impl Route<'_> {
    pub fn name(&self) -> String {
        match self {
            Route::Baseline { name, .. } => (*name).to_owned(),
            Route::Respond { name, .. } => format!("respond, {name}"),
        }
    }
}

/// Drives each route in turn in one run (after a short warm-up of each) and returns what wrk
/// measured, in order.
pub fn drive(rt: &dyn Runtime, routes: &[Route<'_>], shape: LoadShape) -> Vec<LoadResult> {
    let client = Client::new(&rt.base_url(), rt.secret());
    let dir = e2e::repo_root().join("target/load");
    std::fs::create_dir_all(&dir).unwrap();
    let url = rt.base_url();
    let targets: Vec<(String, Option<PathBuf>)> = routes
        .iter()
        .enumerate()
        .map(|(i, route)| match route {
            Route::Baseline { path, .. } => (format!("{url}{path}"), None),
            Route::Respond { body, users, .. } => {
                let tokens: Vec<String> = (0..*users)
                    .map(|i| client.token(&format!("load-user-{i}")))
                    .collect();
                let script = dir.join(format!("respond-{i}.lua"));
                write_respond_script(&script, &tokens, body);
                (format!("{url}/api/chat/respond"), Some(script))
            }
        })
        .collect();
    // Warm every path (module instantiation, object creation) before measuring.
    let warm = LoadShape {
        duration: Duration::from_secs(2),
        ..shape
    };
    for (target, script) in &targets {
        wrk(target, script.as_deref(), warm);
    }
    targets
        .iter()
        .map(|(target, script)| wrk(target, script.as_deref(), shape))
        .collect()
}

/// Prints every route's figures and each one's throughput relative to the first (the empty
/// route), the ratio the issues set a target for.
pub fn report(runtime: &str, shape: LoadShape, routes: &[Route<'_>], results: &[LoadResult]) {
    println!(
        "\n{runtime}: wrk -t{} -c{} -d{}s on 127.0.0.1",
        shape.threads,
        shape.connections,
        shape.duration.as_secs()
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "route", "req/s", "p50 ms", "p99 ms", "requests", "failures", "vs first"
    );
    let base = results.first().map_or(f64::MIN_POSITIVE, |r| {
        r.requests_per_s.max(f64::MIN_POSITIVE)
    });
    for (route, r) in routes.iter().zip(results) {
        println!(
            "{:<28} {:>10.0} {:>10.2} {:>10.2} {:>10} {:>9} {:>8.1}%",
            route.name(),
            r.requests_per_s,
            r.p50_ms,
            r.p99_ms,
            r.requests,
            r.failures,
            100.0 * r.requests_per_s / base
        );
    }
    if let Some(first) = results.first() {
        for (route, respond) in routes.iter().zip(results) {
            if matches!(route, Route::Respond { .. }) {
                println!(
                    "{} / empty throughput: {:.1}% (target >= 50%)",
                    route.name(),
                    100.0 * respond.requests_per_s / first.requests_per_s.max(f64::MIN_POSITIVE)
                );
            }
        }
    }
}

/// A wrk Lua script at `path` that POSTs `body` with a token chosen round-robin.
fn write_respond_script(path: &Path, tokens: &[String], body: &str) {
    let mut lua = String::from("local tokens = {\n");
    for t in tokens {
        writeln!(lua, "  \"{t}\",").unwrap();
    }
    lua.push_str("}\nlocal body = [[");
    lua.push_str(body);
    lua.push_str(
        "]]\nlocal n = 0\n\
         request = function()\n\
         \x20 n = n + 1\n\
         \x20 local headers = {}\n\
         \x20 headers[\"Content-Type\"] = \"application/json\"\n\
         \x20 headers[\"Authorization\"] = \"Bearer \" .. tokens[(n % #tokens) + 1]\n\
         \x20 return wrk.format(\"POST\", nil, headers, body)\n\
         end\n",
    );
    std::fs::write(path, lua).unwrap();
}

/// A wrk Lua script that POSTs `body` with `headers` (for routes other than respond).
pub fn post_script(name: &str, headers: &[(&str, &str)], body: &str) -> PathBuf {
    let dir = e2e::repo_root().join("target/load");
    std::fs::create_dir_all(&dir).unwrap();
    let mut lua = String::from("wrk.method = \"POST\"\n");
    for (k, v) in headers {
        writeln!(lua, "wrk.headers[\"{k}\"] = \"{v}\"").unwrap();
    }
    writeln!(lua, "wrk.body = [[{body}]]").unwrap();
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, lua).unwrap();
    path
}

/// Runs wrk and reads its summary.
pub fn wrk(url: &str, script: Option<&Path>, shape: LoadShape) -> LoadResult {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{}", shape.threads))
        .arg(format!("-c{}", shape.connections))
        .arg(format!("-d{}s", shape.duration.as_secs().max(1)))
        .args(["--latency", "--timeout", "10s"]);
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk; `cargo xtask bench-edge` installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk failed: {text}");
    parse_wrk(&text).unwrap_or_else(|| panic!("unreadable wrk output:\n{text}"))
}

/// Reads `Requests/sec`, the 50%/99% latency lines, the request count and failures.
pub fn parse_wrk(text: &str) -> Option<LoadResult> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let requests_per_s = field("Requests/sec:")?.parse().ok()?;
    let p50_ms = duration_ms(field("50%")?)?;
    let p99_ms = duration_ms(field("99%")?)?;
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let non_2xx: u64 = field("Non-2xx or 3xx responses:").map_or(Some(0), |v| v.parse().ok())?;
    let socket_errors: u64 = field("Socket errors:").map_or(0, |v| {
        v.split(',')
            .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    });
    Some(LoadResult {
        requests_per_s,
        p50_ms,
        p99_ms,
        requests,
        failures: non_2xx + socket_errors,
    })
}

/// wrk prints durations as `812.00us`, `1.21ms`, `2.03s`.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(value / 1000.0),
        "ms" => Some(value),
        "s" => Some(value * 1000.0),
        "m" => Some(value * 60_000.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_summary() {
        let text = "Running 5s test @ http://127.0.0.1:1/\n  2 threads and 10 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.10ms  400.00us   9.00ms   90.00%\n  Latency Distribution\n     50%  812.00us\n     75%    1.21ms\n     90%    1.50ms\n     99%    2.03s\n  4800 requests in 5.00s, 1.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:    960.12\nTransfer/sec:    200.00KB\n";
        let r = parse_wrk(text).unwrap();
        assert_eq!(r.requests, 4800);
        assert!((r.requests_per_s - 960.12).abs() < 1e-9);
        assert!((r.p50_ms - 0.812).abs() < 1e-9);
        assert!((r.p99_ms - 2030.0).abs() < 1e-9);
        assert_eq!(r.failures, 7);
    }
}
