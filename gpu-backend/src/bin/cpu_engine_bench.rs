//! The CPU engine's speed on one export directory: load time, prefill of 64 tokens (median of
//! three), greedy decode tokens/s through the engine's own generation loop (sampling and
//! detokenizing included), and the process's peak RSS. `cargo xtask bench-cpu` runs it beside
//! PyTorch on the same weights and prints the ratio.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use gpu_backend::cpu::{CpuEngine, GenerationSpec};
use gpu_backend::sse::Piece;

#[derive(Parser)]
struct Args {
    /// A directory made by models/export_bloom_onnx.py.
    model: PathBuf,
    #[arg(long, default_value_t = 64)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 32)]
    decode_tokens: usize,
    /// Threads for tract's matrix products (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Peak resident set (VmHWM) in MB, from /proc.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    gpu_backend::cpu::use_threads(threads);
    let started = Instant::now();
    let engine = CpuEngine::load(&args.model).context("loading the CPU engine")?;
    let load_s = started.elapsed().as_secs_f64();
    // The same ids as the PyTorch side (models/bench_bloom_torch.py).
    let prompt: Vec<u32> = (0..args.prompt_tokens as u32)
        .map(|i| (i * 7 + 3) % 4000)
        .collect();

    let model = engine.model();
    let mut prefills = Vec::new();
    for _ in 0..3 {
        let cache = model.empty_cache()?;
        let t = Instant::now();
        model.step(&prompt, cache)?;
        prefills.push(t.elapsed().as_secs_f64());
    }
    prefills.sort_by(f64::total_cmp);
    let prefill_s = prefills[1];

    let spec = GenerationSpec::greedy(prompt, args.decode_tokens + 1);
    // Decode rate from the first token (the prefill's) to the last.
    let mut first = None;
    let mut last = Instant::now();
    let mut tokens = 0usize;
    engine
        .generate(&spec, |piece| {
            if let Piece::Text { .. } = piece {
                tokens += 1;
                last = Instant::now();
                first.get_or_insert(last);
            }
            true
        })
        .map_err(anyhow::Error::msg)?;
    let decoded = tokens.saturating_sub(1);
    let decode_s = first.map_or(0.0, |f| (last - f).as_secs_f64());
    let tok_s = decoded as f64 / decode_s.max(f64::EPSILON);
    println!(
        "RESULT engine=tract threads={threads} load_s={load_s:.2} prefill_{}_s={prefill_s:.3} decode_tok_s={tok_s:.2} peak_rss_mb={:.0}",
        args.prompt_tokens,
        peak_rss_mb()
    );
    Ok(())
}
