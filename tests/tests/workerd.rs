//! The end-to-end suite on workerd (`wrangler dev`), the worker as built for Cloudflare.

use e2e::local::Launcher;
use e2e::suite;

#[test]
fn workerd_api_authorization_persistence_and_concurrent_turns() {
    suite::run_main(Launcher::WranglerDev);
}

#[test]
fn workerd_exact_rate_limit_under_concurrency_and_retention() {
    suite::run_strict(Launcher::WranglerDev);
}

/// The worker writes one Workers Analytics Engine data point per request, laid out as
/// docs/operations.md says (the Miniflare launcher's FACTS binding prints each point).
#[test]
fn workerd_writes_one_analytics_engine_point_per_request() {
    use e2e::Runtime;
    use serde_json::{Value, json};
    let rt = e2e::local::LocalRuntime::start(Launcher::Miniflare, "facts-points", &[]);
    let c = e2e::client::Client::new(&rt.base_url(), rt.secret());
    let answer = c.respond(
        "points",
        json!({"message": "tell me a joke", "stream": true}),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(c.get("/nowhere", &c.token("points")).status, 404);
    let points = || -> Vec<Value> {
        rt.logs()
            .lines()
            .filter_map(|l| l.split_once("analytics-engine-point ").map(|(_, p)| p))
            .filter_map(|p| serde_json::from_str::<Value>(p.trim()).ok())
            // The launcher's readiness probes write theirs too.
            .filter(|p| p["indexes"] != json!(["/health"]))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while points().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let points = points();
    assert_eq!(points.len(), 2, "{points:?}\n{}", rt.logs());
    let (turn, missing) = (&points[0], &points[1]);
    assert_eq!(turn["indexes"], json!(["/api/chat/respond"]));
    let blobs = |p: &Value| -> Vec<String> {
        p["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        blobs(turn),
        [
            "/api/chat/respond",
            "",
            "eindr",
            "minimal",
            "",
            "bypass",
            "",
            "small_talk"
        ]
    );
    let doubles = |p: &Value| -> Vec<f64> {
        p["doubles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_f64().unwrap())
            .collect()
    };
    let d = doubles(turn);
    assert_eq!(
        (d[0], d[3], d[4], d[5], d[6], d[7]),
        (200.0, 0.0, 0.0, 1.0, 1.0, 0.0)
    );
    assert_eq!(missing["indexes"], json!(["other"]));
    assert_eq!(blobs(missing)[..3], ["other", "route_not_found", ""]);
    assert_eq!(doubles(missing)[0], 404.0);
    assert_eq!(doubles(missing)[6], 0.0);
}
