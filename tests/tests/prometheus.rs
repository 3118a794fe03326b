//! Debian's Prometheus scraping `eindr-edge` and gpu-backend (its CPU engine on the tiny
//! model): the shipped rules pass `promtool`, and every query of the shipped Grafana dashboard
//! and every recording rule returns series after a few turns; every alert expression
//! evaluates (deploy/prometheus/, deploy/grafana/, docs/operations.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::Runtime;
use e2e::client::Client;
use e2e::local::{Launcher, LocalRuntime};
use e2e::vllm::{Backend, MAX_MODEL_LEN, MODEL, tiny_model};
use e2e::{free_port, repo_root};
use serde_json::{Value, json};

struct Prometheus {
    process: Child,
    url: String,
    _dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Prometheus on its own port and storage, scraping `edge` and `backend` every second with the
/// shipped rules.
fn prometheus(edge: &str, backend: &str) -> Prometheus {
    let dir = std::env::temp_dir().join(format!("eindr-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rules = repo_root().join("deploy/prometheus/rules.yml");
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [{rules:?}]\nscrape_configs:\n  - job_name: eindr-edge\n    static_configs: [{{targets: [\"{}\"]}}]\n  - job_name: gpu-backend\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        host_port(edge),
        host_port(backend),
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let check = Command::new("promtool")
        .arg("check")
        .arg("config")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let port = free_port();
    let process = Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's package; cargo xtask test installs it)");
    Prometheus {
        process,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

fn query(prometheus: &Prometheus, promql: &str) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    match agent
        .get(&format!("{}/api/v1/query", prometheus.url))
        .query("query", promql)
        .call()
    {
        Ok(mut response) => response.body_mut().read_json().unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn series(answer: &Value) -> usize {
    answer["data"]["result"].as_array().map_or(0, Vec::len)
}

/// Waits until `promql` returns at least `want` series.
fn wait_for(prometheus: &Prometheus, promql: &str, want: usize, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let answer = query(prometheus, promql);
        if series(&answer) >= want || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every `expr` in the Grafana dashboard, with whether it reads vLLM's own metrics.
fn dashboard_queries() -> Vec<String> {
    let text =
        std::fs::read_to_string(repo_root().join("deploy/grafana/eindr-prometheus.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// The rules file's recording-rule names and alert expressions.
fn rules() -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(repo_root().join("deploy/prometheus/rules.yml")).unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    let (mut records, mut alerts) = (Vec::new(), Vec::new());
    for group in doc["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            if let Some(record) = rule["record"].as_str() {
                records.push(record.to_owned());
            } else {
                alerts.push(rule["expr"].as_str().unwrap().trim().to_owned());
            }
        }
    }
    (records, alerts)
}

#[test]
fn prometheus_scrapes_the_edge_and_gpu_backend_and_every_shipped_query_answers() {
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(repo_root().join("deploy/prometheus/rules.yml"))
        .output()
        .expect("promtool (Debian's prometheus package)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let model = tiny_model().to_string_lossy().into_owned();
    let backend = Backend::start(&[], &[("ENGINE", "cpu"), ("CPU_MODEL_PATH", &model)]);
    let max_len = MAX_MODEL_LEN.to_string();
    let url = backend.url();
    let edge = LocalRuntime::start(
        Launcher::Native,
        "prometheus",
        &[
            ("MINIMAL_MODE", "false"),
            ("BACKEND_URL", url.as_str()),
            ("BACKEND_API_KEY", backend.key.as_str()),
            ("BACKEND_FIRST_TOKEN_TIMEOUT_MS", "20000"),
            ("CHAT_MODEL_NAME", MODEL),
            ("CHAT_TEMPERATURE", "2.0"),
            ("CHAT_MAX_TOKENS", "8"),
            ("VLLM_MAX_MODEL_LEN", max_len.as_str()),
            ("RATE_LIMIT_BURST", "1000"),
        ],
    );
    let prometheus = prometheus(&edge.base_url(), &url);
    let up = wait_for(&prometheus, "up == 1", 2, Duration::from_secs(60));
    assert_eq!(series(&up), 2, "both targets scraped: {up}");

    // Turns of each kind while Prometheus watches: full mode whole and streamed, minimal.
    let client = Client::new(&edge.base_url(), edge.secret());
    for i in 0..6 {
        let user = format!("prom-{i}");
        let message = ["tell me a joke", "what's the weather in paris", "hello"][i % 3];
        let stream = i % 2 == 0;
        let answer = client.respond(&user, json!({"message": message, "stream": stream}));
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    client.respond(
        "prom-minimal",
        json!({"message": "thanks", "mode": "minimal"}),
    );

    let (records, alerts) = rules();
    for record in &records {
        let answer = wait_for(&prometheus, record, 1, Duration::from_secs(30));
        assert!(series(&answer) >= 1, "recording rule {record}: {answer}");
    }
    for promql in dashboard_queries() {
        let answer = wait_for(&prometheus, &promql, 1, Duration::from_secs(10));
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        // vLLM's own series exist only where vLLM runs (not in this test).
        if !promql.contains("vllm:") {
            assert!(series(&answer) >= 1, "dashboard query {promql}: {answer}");
        }
    }
    for promql in &alerts {
        let answer = query(&prometheus, promql);
        assert_eq!(answer["status"], "success", "alert {promql}: {answer}");
    }
    // Nothing is wrong here: no alert fires.
    let firing = query(&prometheus, "ALERTS{alertstate=\"firing\"}");
    assert_eq!(series(&firing), 0, "{firing}");
}
