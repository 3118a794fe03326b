//! End-to-end harness: real runtimes started on 127.0.0.1, real HTTP, real signed JWTs.
//! The checks in `suite` take any `Runtime`, so every deployment runs the same ones.

// Test support: a failure here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod backend_api;
pub mod client;
pub mod faulty;
pub mod image;
pub mod local;
pub mod openai_spec;
pub mod redis;
pub mod scale_out;
pub mod suite;
pub mod vllm;

/// A running deployment of the edge.
pub trait Runtime: Send + Sync {
    fn base_url(&self) -> String;
    /// Stops and starts the runtime again on the same persisted state.
    fn restart(&mut self);
    /// The HS256 secret the runtime verifies tokens with.
    fn secret(&self) -> &str;
}

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Cargo's output folder, where `cargo xtask test` built the binaries the suites start:
/// `CARGO_TARGET_DIR` when set (CI keeps dependency builds there), else `target/`.
pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
