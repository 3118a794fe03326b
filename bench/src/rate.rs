//! Open-loop load at a fixed arrival rate with oha (crates.io, installed by the xtask): the
//! method TensorZero publishes for a gateway's added latency. wrk keeps a fixed number of
//! connections busy, so at saturation its latencies are queueing; here requests start on a
//! schedule whether or not earlier ones have finished, and each latency is counted from its
//! scheduled start (oha's `--latency-correction`), so a stall is not hidden by the requests it
//! delayed.

use std::process::Command;
use std::time::Duration;

use crate::load::LoadResult;

/// A fixed arrival rate for a bounded time, over at most `connections` connections.
#[derive(Debug, Clone, Copy)]
pub struct FixedRate {
    pub per_second: u32,
    pub connections: u32,
    pub duration: Duration,
}

/// POSTs `body` with `headers` to `url` at `rate` and reads oha's JSON summary. `oha` is the
/// executable (EINDR_OHA).
pub fn oha_post(
    oha: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
    rate: FixedRate,
) -> LoadResult {
    let mut cmd = Command::new(oha);
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "--latency-correction",
    ])
    .args(["-m", "POST", "-d", body])
    .arg("-q")
    .arg(rate.per_second.to_string())
    .arg("-c")
    .arg(rate.connections.to_string())
    .arg("-z")
    .arg(format!("{}s", rate.duration.as_secs().max(1)))
    // Requests still open at the end are waited for, not counted as failures.
    .args(["-w", "-t", "10s"]);
    for (name, value) in headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    let out = cmd
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("run {oha}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "oha failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_oha(&text).unwrap_or_else(|| panic!("unreadable oha output:\n{text}"))
}

/// Reads oha's `--output-format json`: the rate achieved, latency percentiles (ms), the
/// request count and every answer that was not a 200 or never came.
pub fn parse_oha(text: &str) -> Option<LoadResult> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let latency = &v["metrics"]["latency_ms"];
    let statuses = v["statusCodeDistribution"].as_object()?;
    let ok = statuses.get("200").and_then(serde_json::Value::as_u64);
    let answered: u64 = statuses
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    let errors: u64 = v["errorDistribution"]
        .as_object()?
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    Some(LoadResult {
        requests_per_s: v["summary"]["requestsPerSec"].as_f64()?,
        p50_ms: latency["p50"].as_f64()?,
        p99_ms: latency["p99"].as_f64()?,
        requests: answered + errors,
        failures: answered - ok.unwrap_or(0) + errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oha_summary() {
        let text = r#"{"summary":{"successRate":0.99,"total":10.0,"requestsPerSec":999.5},
            "metrics":{"success_rate":0.99,"requests_per_sec":999.5,
              "latency_ms":{"min":5.1,"mean":6.0,"p50":5.9,"p95":6.8,"p99":7.25,"max":12.0}},
            "statusCodeDistribution":{"200":9990,"503":3},
            "errorDistribution":{"aborted due to deadline":7}}"#;
        let r = parse_oha(text).unwrap();
        assert_eq!(r.requests, 10_000);
        assert_eq!(r.failures, 10);
        assert!((r.requests_per_s - 999.5).abs() < 1e-9);
        assert!((r.p50_ms - 5.9).abs() < 1e-9);
        assert!((r.p99_ms - 7.25).abs() < 1e-9);
    }
}
