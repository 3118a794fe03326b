//! OpenAI's own client libraries against the edge's `/v1` (minimal mode; full mode streams
//! through the Python SDK in full_mode.rs): the npm `openai` package (v7) and the Python one,
//! on workerd and `eindr-edge`. Whole and streamed answers with `usage` read by the SDK, an
//! aborted stream, and each error as the SDK's own class: `AuthenticationError`,
//! `BadRequestError`, `NotFoundError`, `RateLimitError` (tests/sdk/).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use e2e::Runtime;
use e2e::client::Client;
use e2e::local::{Launcher, LocalRuntime};
use e2e::repo_root;
use serde_json::json;

/// Requests a user may make at once; the script's limited user spends them, then is refused.
const BURST: u32 = 10;

/// Runs one SDK's script (`program` `script` SETTINGS) against a fresh edge.
fn sdk_checks(launcher: Launcher, name: &str, program: &std::path::Path, script: &str) {
    let burst = BURST.to_string();
    let edge = LocalRuntime::start(
        launcher,
        name,
        &[
            ("RATE_LIMIT_BURST", burst.as_str()),
            ("RATE_LIMIT_PER_MINUTE", "1"),
        ],
    );
    let client = Client::new(&edge.base_url(), edge.secret());
    let settings = json!({
        "base": edge.base_url(),
        "token": client.token(&format!("sdk-{name}")),
        "limited_token": client.token(&format!("sdk-limited-{name}")),
        "burst": BURST,
    });
    let output = Command::new(program)
        .current_dir(repo_root())
        .arg(script)
        .arg(settings.to_string())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    assert!(
        output.status.success(),
        "{name}: {script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const NODE: &str = "tests/sdk/openai_node.mjs";
const PYTHON: &str = "tests/sdk/openai_python.py";

#[test]
fn openai_sdks_on_workerd() {
    sdk_checks(
        Launcher::Miniflare,
        "sdk-workerd-node",
        "node".as_ref(),
        NODE,
    );
    sdk_checks(
        Launcher::Miniflare,
        "sdk-workerd-python",
        e2e::vllm::python().as_ref(),
        PYTHON,
    );
}

#[test]
fn openai_sdks_on_eindr_edge() {
    sdk_checks(Launcher::Native, "sdk-native-node", "node".as_ref(), NODE);
    sdk_checks(
        Launcher::Native,
        "sdk-native-python",
        e2e::vllm::python().as_ref(),
        PYTHON,
    );
}
