//! The worker on workerd in full mode in front of gpu-backend, as bench-full and bench-cache
//! start it: generous timeouts and limits, so the figures measure the chain, not its guards.

use e2e::local::{Launcher, LocalRuntime};
use e2e::vllm::{Backend, MAX_MODEL_LEN, MODEL};

/// One sampling temperature on every path (the edge and gpu-backend), so each asks vLLM for
/// the same work; the random tiny model says words only when sampled hot.
pub const TEMPERATURE: &str = "2.0";

/// Starts the worker in full mode on `backend`, with `extra` variables added.
pub fn start_full_edge(name: &str, backend: &Backend, extra: &[(&str, &str)]) -> LocalRuntime {
    let max_len = MAX_MODEL_LEN.to_string();
    let url = backend.url();
    let mut vars = vec![
        ("MINIMAL_MODE", "false"),
        ("BACKEND_URL", url.as_str()),
        ("BACKEND_API_KEY", backend.key.as_str()),
        ("BACKEND_FIRST_TOKEN_TIMEOUT_MS", "20000"),
        ("CHAT_MODEL_NAME", MODEL),
        ("CHAT_TEMPERATURE", TEMPERATURE),
        ("CHAT_MAX_TOKENS", "16"),
        ("VLLM_MAX_MODEL_LEN", max_len.as_str()),
        ("RATE_LIMIT_PER_MINUTE", "1000000"),
        ("RATE_LIMIT_BURST", "1000000"),
    ];
    vars.extend_from_slice(extra);
    LocalRuntime::start(Launcher::Miniflare, name, &vars)
}
