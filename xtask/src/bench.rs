//! The benchmarks: criterion for the core, load drivers for the runtimes and backends.

use std::process::Command;

use crate::builds::{build_spin, build_worker};
use crate::cmd::{cargo, cargo_run_release, output, root, run, target_dir, test_data_dir};
use std::path::Path;

use crate::models::{
    ensure_560m_model, ensure_ggufs, ensure_tiny_model, ensure_trained_small_bloom,
};
use crate::tools::{
    ensure_litellm, ensure_llama_cpp, ensure_oha, ensure_test_packages, ensure_vllm, ensure_wrk,
};

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
/// throughput; then the CPU engine alone (vLLM stopped) on bloom-560m's shape at int8 and q4.
/// `cargo xtask bench-full [requests] [--cpu-only]`.
pub(crate) fn bench_full(extra: &[String]) -> Result<(), String> {
    ensure_wrk()?;
    build_worker()?;
    run(cargo().args(["build", "--release", "-p", "gpu-backend", "--bins"]))?;
    let python = ensure_vllm()?;
    let model = ensure_tiny_model(&python, &test_data_dir())?;
    let cpu_model = ensure_560m_model(&python)?;
    let cpu_only = extra.iter().any(|a| a == "--cpu-only");
    let args: Vec<String> = extra
        .iter()
        .filter(|a| *a != "--cpu-only")
        .cloned()
        .collect();
    let mut driver = load_driver("full_bench", &args);
    driver
        .env("EINDR_VLLM_PYTHON", &python)
        .env("EINDR_TINY_MODEL", &model)
        .env("EINDR_CPU_BENCH_MODEL", &cpu_model);
    if cpu_only {
        driver.env("EINDR_CPU_ONLY", "1");
    }
    run(&mut driver)
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

/// The CPU engine at every precision beside llama.cpp at the matching type and PyTorch, on
/// bloom-560m's shape (random weights made by the project's script, ~2.2 GB under
/// target/models), 2 threads each, one after the other, each in its own process; then the
/// quality figures: greedy agreement with fp32 on that shape, and held-out perplexity on a small
/// BLOOM trained by `models/train_small_bloom.py`. `cargo xtask bench-cpu [decode tokens]`.
pub(crate) fn bench_cpu(extra: &[String]) -> Result<(), String> {
    let python = ensure_vllm()?;
    let model = ensure_560m_model(&python)?;
    let trained = ensure_trained_small_bloom(&python, &test_data_dir())?;
    let llama = ensure_llama_cpp(&python)?;
    let ggufs = ensure_ggufs(&python, &llama, &model)?;
    let decode = extra.first().map_or("32", String::as_str);
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "gpu-backend",
        "--bin",
        "cpu_engine_bench",
    ]))?;
    let ours = |args: &[&str]| -> Result<String, String> {
        output(
            Command::new(target_dir().join("release/cpu_engine_bench"))
                .args(["--threads", "2"])
                .args(args),
        )
    };
    let model_arg = model.to_string_lossy().into_owned();
    println!("bloom-560m shape (hidden 1024, 24 layers, 16 heads, vocab 250880), 2 threads:");
    // "batch of 4" against one sequence stepped the same way, the two interleaved in one run.
    println!(
        "{:<34} {:>12} {:>11} {:>19} {:>9}",
        "engine", "prefill 64", "decode", "batch of 4 (× one)", "peak RSS"
    );
    let mut decode_rates = Vec::new();
    for (precision, gguf_type) in [
        ("fp32", "f32"),
        ("bf16", "bf16"),
        ("int8", "q8_0"),
        ("q4", "q4_0"),
    ] {
        let line = result_line(&ours(&[
            &model_arg,
            "--precision",
            precision,
            "--decode-tokens",
            decode,
        ])?)?;
        let rate = field(&line, "decode_tok_s")?;
        decode_rates.push((precision, rate));
        let batch: f64 = field(&line, "batch4_tok_s")?;
        println!(
            "{:<34} {:>8.1} t/s {:>7.2} t/s {:>7.2} t/s ({:.2}×) {:>6.0} MB",
            format!("eindr {precision} ({})", field_text(&line, "isa")),
            field(&line, "prefill_tok_s")?,
            rate,
            batch,
            batch / field(&line, "batch1_tok_s")?.max(f64::EPSILON),
            field(&line, "peak_rss_mb")?
        );
        let (prefill, generate) =
            llama_bench(&llama, &ggufs.join(format!("{gguf_type}.gguf")), decode)?;
        println!(
            "{:<34} {:>8.1} t/s {:>7.2} t/s",
            format!("llama.cpp {}", gguf_type.to_uppercase()),
            prefill,
            generate
        );
    }
    for dtype in ["fp32", "bf16"] {
        let line = result_line(&output(
            Command::new(&python)
                .arg(root().join("models/bench_bloom_torch.py"))
                .arg(&model)
                .args([
                    "--dtype",
                    dtype,
                    "--threads",
                    "2",
                    "--decode-tokens",
                    decode,
                ]),
        )?)?;
        println!(
            "{:<34} {:>8.1} t/s {:>7.2} t/s {:>11} {:>6.0} MB",
            format!("PyTorch {dtype} eager"),
            field(&line, "prefill_tok_s")?,
            field(&line, "decode_tok_s")?,
            "",
            field(&line, "peak_rss_mb")?
        );
    }

    println!("greedy tokens the same as fp32's over 64 steps (560m shape, random weights):");
    let greedy = |precision: &str| -> Result<Vec<String>, String> {
        let text = ours(&[&model_arg, "--precision", precision, "--greedy", "64"])?;
        let line = text
            .lines()
            .find(|l| l.starts_with("GREEDY "))
            .ok_or_else(|| format!("no GREEDY line in:\n{text}"))?;
        Ok(field_text(line, "ids")
            .split(',')
            .map(str::to_owned)
            .collect())
    };
    let reference = greedy("fp32")?;
    for precision in ["bf16", "int8", "q4"] {
        let ids = greedy(precision)?;
        let same = ids.iter().zip(&reference).filter(|(a, b)| a == b).count();
        let first = ids.iter().zip(&reference).position(|(a, b)| a != b);
        println!(
            "  {precision}: {same} of 64 (first difference: {})",
            first.map_or("none".to_owned(), |p| format!("step {p}"))
        );
    }

    let heldout = trained.join("heldout.txt").to_string_lossy().into_owned();
    let trained_arg = trained.to_string_lossy().into_owned();
    println!("held-out perplexity, small BLOOM trained on CLINC150 (models/train_small_bloom.py):");
    let mut fp32 = None;
    for precision in ["fp32", "bf16", "int8", "q4"] {
        let text = ours(&[
            &trained_arg,
            "--precision",
            precision,
            "--perplexity",
            &heldout,
        ])?;
        let line = text
            .lines()
            .find(|l| l.starts_with("PERPLEXITY "))
            .ok_or_else(|| format!("no PERPLEXITY line in:\n{text}"))?;
        let ppl: f64 = field(line, "perplexity")?;
        let base = *fp32.get_or_insert(ppl);
        println!(
            "  {precision}: {ppl:.4} ({:+.2} % vs fp32; {} tokens)",
            (ppl / base - 1.0) * 100.0,
            field_text(line, "tokens")
        );
    }
    let metrics = std::fs::read_to_string(trained.join("metrics.json")).unwrap_or_default();
    if let Some(torch) = metrics.lines().find_map(|l| {
        l.trim()
            .strip_prefix("\"heldout_perplexity_pytorch_fp32\": ")
    }) {
        println!(
            "  PyTorch fp32 on the same lines: {}",
            torch.trim_end_matches(',')
        );
    }
    if let Some((_, fp32)) = decode_rates.first() {
        for (precision, rate) in &decode_rates[1..] {
            println!("decode {precision} / eindr fp32 = {:.2}", rate / fp32);
        }
    }
    Ok(())
}

/// llama-bench on one GGUF, 2 threads, prompt 64 and `decode` generated tokens, 3 runs:
/// (prefill t/s, decode t/s) from its CSV.
fn llama_bench(llama: &Path, gguf: &Path, decode: &str) -> Result<(f64, f64), String> {
    let csv = output(
        Command::new(llama.join("build/bin/llama-bench"))
            .arg("-m")
            .arg(gguf)
            .args(["-t", "2", "-p", "64", "-n", decode, "-r", "3", "-o", "csv"]),
    )?;
    let mut lines = csv
        .lines()
        .filter(|l| l.starts_with('"') || l.contains(','));
    let header: Vec<String> = lines
        .next()
        .ok_or("llama-bench printed nothing")?
        .split(',')
        .map(|c| c.trim_matches('"').to_owned())
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or(format!("llama-bench: no {name} column"))
    };
    let (prompt, generated, rate) = (column("n_prompt")?, column("n_gen")?, column("avg_ts")?);
    let (mut prefill, mut decoding) = (0.0, 0.0);
    for line in lines {
        let cells: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        let value = |i: usize| {
            cells
                .get(i)
                .and_then(|c| c.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if value(prompt) > 0.0 {
            prefill = value(rate);
        } else if value(generated) > 0.0 {
            decoding = value(rate);
        }
    }
    Ok((prefill, decoding))
}

/// The first `RESULT ` line of a benchmark's output.
fn result_line(text: &str) -> Result<String, String> {
    text.lines()
        .find(|l| l.starts_with("RESULT "))
        .map(str::to_owned)
        .ok_or_else(|| format!("no RESULT line in:\n{text}"))
}

fn field_text<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or("")
}

fn field(line: &str, name: &str) -> Result<f64, String> {
    field_text(line, name)
        .parse()
        .map_err(|_| format!("no {name} in {line}"))
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

/// The understanding's thresholds chosen by cross-validation on a file in CLINC150's format;
/// prints the folds and, last, the thresholds the edge should use.
pub(crate) fn fit_thresholds(extra: &[String]) -> Result<(), String> {
    if extra.is_empty() {
        return Err(
            "usage: cargo xtask fit-thresholds FILE [--folds 10] [--recall 50] [--other 0.5]"
                .into(),
        );
    }
    run(cargo_run_release("edge-core", &["--example", "fit_thresholds"]).args(extra))
}
