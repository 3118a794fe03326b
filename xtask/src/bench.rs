//! The benchmarks: criterion for the core, load drivers for the runtimes and backends.

use std::process::Command;

use crate::builds::{build_spin, build_worker};
use crate::cmd::{cargo, cargo_run_release, output, root, run, stale, target_dir, test_data_dir};
use crate::models::ensure_tiny_model;
use crate::tools::{ensure_litellm, ensure_oha, ensure_test_packages, ensure_vllm, ensure_wrk};

pub(crate) fn bench() -> Result<(), String> {
    run(cargo().args(["bench", "-p", "edge-core", "--bench", "respond"]))
}

/// The load benchmark of a deployed build on its local runtime (wrk on loopback).
pub(crate) fn bench_edge(extra: &[String]) -> Result<(), String> {
    ensure_wrk()?;
    match extra.first().map(String::as_str) {
        None | Some("workerd") => build_worker()?,
        Some("spin") => {
            build_spin()?;
            run(cargo().args(["build", "-p", "spin-test-host"]))?;
        }
        Some("native") => {
            ensure_test_packages()?;
            let oha = ensure_oha()?;
            run(cargo().args(["build", "--release", "-p", "edge-server"]))?;
            return run(load_driver("edge_load", extra)
                .env("EINDR_EDGE_BINARY", target_dir().join("release/eindr-edge"))
                .env("EINDR_OHA", &oha));
        }
        Some(_) => {}
    }
    run(&mut load_driver("edge_load", extra))
}

/// `cargo xtask soak [minutes] [workerd|spin|native ...]`: mixed traffic at each runtime for
/// that long (bench/src/bin/soak.rs), printing requests, statuses, 5xx, lost turns, memory.
pub(crate) fn soak(extra: &[String]) -> Result<(), String> {
    build_worker()?;
    build_spin()?;
    run(cargo().args(["build", "-p", "spin-test-host"]))?;
    run(cargo().args(["build", "--release", "-p", "edge-server"]))?;
    run(load_driver("soak", extra)
        .env("EINDR_EDGE_BINARY", target_dir().join("release/eindr-edge")))
}

/// A load benchmark driver (`bench/src/bin`), in release mode.
pub(crate) fn load_driver(bin: &str, extra: &[String]) -> Command {
    let mut cmd = cargo_run_release("eindr-bench", &["--bin", bin]);
    cmd.args(extra);
    cmd
}

/// gpu-backend's added latency over its upstream: a fixed-delay upstream (with LiteLLM's
/// proxy on it for comparison), then the real vLLM.
pub(crate) fn bench_backend(extra: &[String]) -> Result<(), String> {
    ensure_wrk()?;
    let oha = ensure_oha()?;
    run(cargo().args(["build", "--release", "-p", "gpu-backend", "--bins"]))?;
    let python = ensure_vllm()?;
    let litellm = ensure_litellm(&python.with_file_name("uv"))?;
    let model = ensure_tiny_model(&python, &test_data_dir())?;
    run(load_driver("backend_load", extra)
        .env("EINDR_VLLM_PYTHON", &python)
        .env("EINDR_TINY_MODEL", &model)
        .env("EINDR_LITELLM", &litellm)
        .env("EINDR_OHA", &oha))
}

/// Full mode's time to first token through edge + gpu-backend vs vLLM directly, and its
/// throughput.
pub(crate) fn bench_full(extra: &[String]) -> Result<(), String> {
    ensure_wrk()?;
    build_worker()?;
    run(cargo().args(["build", "--release", "-p", "gpu-backend", "--bins"]))?;
    let python = ensure_vllm()?;
    let model = ensure_tiny_model(&python, &test_data_dir())?;
    run(load_driver("full_bench", extra)
        .env("EINDR_VLLM_PYTHON", &python)
        .env("EINDR_TINY_MODEL", &model))
}

/// Cached model answers: CLINC150 small talk replayed with Zipf popularity through full mode,
/// cache off and in `serve` mode (bench/src/bin/cache_replay.rs).
pub(crate) fn bench_cache(extra: &[String]) -> Result<(), String> {
    build_worker()?;
    run(cargo().args(["build", "--release", "-p", "gpu-backend", "--bins"]))?;
    let python = ensure_vllm()?;
    let data = test_data_dir();
    let model = ensure_tiny_model(&python, &data)?;
    run(load_driver("cache_replay", extra)
        .env("EINDR_VLLM_PYTHON", &python)
        .env("EINDR_TINY_MODEL", &model)
        .env("EINDR_TEST_DATA", &data))
}

/// The CPU engine against PyTorch fp32 eager on bloom-560m's shape (random weights made by
/// the project's script, exported once; ~6 GB under target/models): prefill, decode tokens/s,
/// peak RSS, each in its own process, one after the other.
pub(crate) fn bench_cpu(extra: &[String]) -> Result<(), String> {
    let python = ensure_vllm()?;
    let root = root();
    let model = root.join("target/models/bloom-560m-random");
    let onnx = model.join("onnx");
    if stale(
        &model.join("model.safetensors"),
        &[&root.join("models/make_tiny_bloom.py")],
    ) {
        run(Command::new(&python)
            .arg(root.join("models/make_tiny_bloom.py"))
            .arg(&model)
            .args(["--shape", "560m"]))?;
    }
    if stale(
        &onnx.join("model.onnx"),
        &[
            &root.join("models/export_bloom_onnx.py"),
            &model.join("model.safetensors"),
        ],
    ) {
        run(Command::new(&python)
            .arg(root.join("models/export_bloom_onnx.py"))
            .arg(&model)
            .arg(&onnx))?;
    }
    let decode = extra.first().map_or("32", String::as_str);
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "gpu-backend",
        "--bin",
        "cpu_engine_bench",
    ]))?;
    let ours = output(
        Command::new(target_dir().join("release/cpu_engine_bench"))
            .arg(&onnx)
            .args(["--decode-tokens", decode]),
    )?;
    let torch = output(
        Command::new(&python)
            .arg(root.join("models/bench_bloom_torch.py"))
            .arg(&model)
            .args(["--decode-tokens", decode]),
    )?;
    let result = |text: &str| -> Result<(String, f64), String> {
        let line = text
            .lines()
            .find(|l| l.starts_with("RESULT "))
            .ok_or_else(|| format!("no RESULT line in:\n{text}"))?;
        let rate = line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("decode_tok_s="))
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("no decode rate in {line}"))?;
        Ok((line.to_owned(), rate))
    };
    let (ours, ours_rate) = result(&ours)?;
    let (torch, torch_rate) = result(&torch)?;
    println!("bloom-560m shape (hidden 1024, 24 layers, 16 heads, vocab 250880), fp32:");
    println!("  {ours}");
    println!("  {torch}");
    println!(
        "  decode ratio tract / PyTorch = {:.2} (target >= 1.0)",
        ours_rate / torch_rate
    );
    Ok(())
}

/// The intent model through the Rust inference on a file in CLINC150's format; prints the
/// figures, ending with the line the targets are read from.
pub(crate) fn eval_understanding(extra: &[String]) -> Result<(), String> {
    if extra.is_empty() {
        return Err(
            "usage: cargo xtask eval-understanding FILE [--split val] [--oos-split oos_val]".into(),
        );
    }
    run(cargo_run_release("edge-core", &["--example", "eval_understanding"]).args(extra))
}
