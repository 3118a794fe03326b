//! The chat page in a real browser: Debian's chromium, driven by playwright-core
//! (`tests/browser/chat_page.mjs`), against the worker on workerd and the Spin build, with
//! full mode on the tiny model through gpu-backend's CPU engine. axe-core runs in the page.
//! Screenshots go to `target/e2e-screenshots/`, and the test prints their paths.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use e2e::client::Client;
use e2e::local::{Launcher, LocalRuntime};
use e2e::vllm::{Backend, MAX_MODEL_LEN, MODEL, tiny_model};
use e2e::{Runtime, repo_root, target_dir};
use serde_json::json;

/// Burst of the page's user: enough for every request the page makes in the test.
const BURST: u32 = 30;

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).is_file(),
        "{path} is missing: `cargo xtask test` installs Debian's chromium"
    );
    path
}

/// A full-mode reply long enough to reach the page in several reads: the CPU engine makes the
/// tiny model's tokens in a fraction of a millisecond each, and a reply of a few dozen can
/// arrive in one read, which the page shows in one step.
const REPLY_TOKENS: &str = "192";

fn start_edge(launcher: Launcher, name: &str, backend: &Backend) -> LocalRuntime {
    let burst = BURST.to_string();
    LocalRuntime::start(
        launcher,
        name,
        &[
            // Auto turns are answered at the edge; the page's "full" mode goes to gpu-backend.
            ("MINIMAL_MODE", "true"),
            ("BACKEND_URL", &backend.url()),
            ("BACKEND_API_KEY", &backend.key),
            ("BACKEND_FIRST_TOKEN_TIMEOUT_MS", "20000"),
            // The random model says words only when sampled hot.
            ("CHAT_TEMPERATURE", "2.0"),
            ("CHAT_MAX_TOKENS", REPLY_TOKENS),
            ("CHAT_MODEL_NAME", MODEL),
            ("VLLM_MAX_MODEL_LEN", &MAX_MODEL_LEN.to_string()),
            // One request per minute after the burst: the limited user's countdown is long.
            ("RATE_LIMIT_PER_MINUTE", "1"),
            ("RATE_LIMIT_BURST", &burst),
        ],
    )
}

/// The page's headers as the runtime sends them, and ETag revalidation through it.
fn page_headers(edge: &LocalRuntime, name: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent.get(format!("{}/", edge.base_url())).call().unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(response.status().as_u16(), 200, "{name}: GET /");
    assert!(header("content-type").starts_with("text/html"), "{name}");
    assert!(
        header("content-security-policy").contains("default-src 'none'")
            && header("content-security-policy").contains("connect-src 'self'"),
        "{name}: {}",
        header("content-security-policy")
    );
    assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{name}");
    let etag = header("etag");
    assert!(etag.starts_with('"'), "{name}: etag {etag:?}");
    let again = agent
        .get(format!("{}/chat", edge.base_url()))
        .header("if-none-match", &etag)
        .call()
        .unwrap();
    assert_eq!(again.status().as_u16(), 304, "{name}: revalidation");
}

/// Runs the browser checks against `edge`; panics with the script's output if one fails.
fn browse(edge: &LocalRuntime, name: &str, chromium: &str) {
    let client = Client::new(&edge.base_url(), edge.secret());
    let forger = Client::new(
        &edge.base_url(),
        "a-secret-the-edge-has-never-seen-0123456789",
    );
    // The limited user spends its whole burst before the page opens.
    let limited = format!("limited-{name}");
    let limited_token = client.token(&limited);
    for _ in 0..BURST {
        let answer = client.get(&format!("/api/chat/history/{limited}"), &limited_token);
        assert_eq!(answer.status, 200, "{name}: {}", answer.body);
    }
    let screenshots = target_dir().join("e2e-screenshots");
    let settings = json!({
        "base": edge.base_url(),
        "name": name,
        "token": client.token(&format!("page-{name}")),
        "forged_token": forger.token(&format!("page-{name}")),
        "limited_token": limited_token,
        "screenshots": screenshots,
        "full_mode": true,
    });
    let output = Command::new("node")
        .current_dir(repo_root())
        .arg("tests/browser/chat_page.mjs")
        .arg(settings.to_string())
        .env("CHROMIUM", chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    assert!(
        output.status.success(),
        "{name}: the browser checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn chat_page_in_chromium_on_workerd_and_spin() {
    let chromium = chromium();
    let model = tiny_model().to_string_lossy().into_owned();
    let backend = Backend::start(
        &[],
        &[
            ("ENGINE", "cpu"),
            ("CPU_MODEL_PATH", &model),
            ("CHAT_MAX_TOKENS", REPLY_TOKENS),
        ],
    );
    e2e::vllm::wait_healthy(
        &format!("{}/health", backend.url()),
        std::time::Duration::from_secs(60),
        "gpu-backend's CPU engine",
    );
    for (launcher, name) in [
        (Launcher::Miniflare, "workerd"),
        (Launcher::SpinHost, "spin"),
    ] {
        let edge = start_edge(launcher, &format!("page-{name}"), &backend);
        page_headers(&edge, name);
        browse(&edge, name, &chromium);
    }
}
