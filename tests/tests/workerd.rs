//! The end-to-end suite on workerd (`wrangler dev`), the worker as built for Cloudflare.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use e2e::suite;
use e2e::workerd::Workerd;

#[test]
fn workerd_api_authorization_persistence_and_concurrent_turns() {
    let mut rt = Workerd::start(
        "main",
        &[
            ("RATE_LIMIT_PER_MINUTE", "6000"),
            ("RATE_LIMIT_BURST", "1000"),
        ],
    );
    suite::endpoints(&rt);
    suite::errors(&rt);
    suite::authorization(&rt);
    suite::concurrent_turns(&rt, "e2e-concurrent", 20);
    suite::persistence(&mut rt);
}

#[test]
fn workerd_exact_rate_limit_under_concurrency_and_retention() {
    // One request a minute after a burst of 10: nothing refills during the test.
    let retention_days = "0.00006"; // 5.2 s
    let rt = Workerd::start(
        "strict",
        &[
            ("RATE_LIMIT_PER_MINUTE", "1"),
            ("RATE_LIMIT_BURST", "10"),
            ("HISTORY_RETENTION_DAYS", retention_days),
        ],
    );
    assert_eq!(suite::concurrent_admissions(&rt, "e2e-burst", 50), 10);
    suite::retention(&rt, Duration::from_millis(5184));
}
