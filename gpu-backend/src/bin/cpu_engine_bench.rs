//! The CPU engine on one checkpoint at one precision, in its own process (so that peak memory
//! is this precision's alone): load time, prefill of 64 tokens (median of three), greedy decode
//! tokens/s through the engine's own generation loop (sampling and detokenizing included), the
//! tokens/s of a batch of sequences decoded together beside one sequence stepped the same way
//! (the two interleaved), and peak RSS. With `--perplexity FILE`
//! it prints the perplexity of the file's lines instead (each line scored after `</s>`).
//! `cargo xtask bench-cpu` runs it for every precision beside llama.cpp and PyTorch.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use gpu_backend::cpu::{
    CpuEngine, EngineSettings, GenerationSpec, Logits, Precision, SequenceStep,
};
use gpu_backend::sse::Piece;

#[derive(Parser)]
struct Args {
    /// A BLOOM checkpoint directory (config.json, model.safetensors, tokenizer.json).
    model: PathBuf,
    #[arg(long, default_value = "int8", value_parser = parse_precision)]
    precision: Precision,
    #[arg(long, default_value_t = 64)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 32)]
    decode_tokens: usize,
    /// Sequences decoded together for the batch figure (0: skip it).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Threads for the matrix products (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Prints the greedy ids of this many steps from the bench prompt (to compare precisions).
    #[arg(long)]
    greedy: Option<usize>,
    /// Scores the lines of this file instead of timing.
    #[arg(long)]
    perplexity: Option<PathBuf>,
}

fn parse_precision(text: &str) -> Result<Precision, String> {
    Precision::parse(text).ok_or_else(|| format!("unknown precision {text}"))
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
    let started = Instant::now();
    let settings = EngineSettings {
        precision: args.precision,
        threads,
        max_len: 4096,
    };
    let engine = CpuEngine::load(&args.model, settings).context("loading the CPU engine")?;
    let load_s = started.elapsed().as_secs_f64();
    let model = engine.model();
    if let Some(path) = &args.perplexity {
        return perplexity(&engine, path, args.precision);
    }
    // The same ids as the PyTorch side (models/bench_bloom_torch.py) and llama-bench's
    // synthetic prompt length.
    let prompt: Vec<u32> = (0..args.prompt_tokens as u32)
        .map(|i| (i * 7 + 3) % 4000)
        .collect();
    if let Some(steps) = args.greedy {
        let mut ids = Vec::new();
        let mut decoding = engine
            .start(GenerationSpec::greedy(prompt.clone(), steps))
            .map_err(anyhow::Error::msg)?;
        while !decoding.finished() {
            let logits = model
                .forward(&mut [decoding.step()])?
                .pop()
                .unwrap_or_default();
            ids.push(argmax(&logits));
            decoding
                .advance(&engine, logits)
                .map_err(anyhow::Error::msg)?;
        }
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("GREEDY precision={} ids={}", args.precision, ids.join(","));
        return Ok(());
    }

    let mut prefills = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        model.step(&prompt, model.empty_cache())?;
        prefills.push(t.elapsed().as_secs_f64());
    }
    prefills.sort_by(f64::total_cmp);
    let prefill_s = prefills[1];

    let spec = GenerationSpec::greedy(prompt.clone(), args.decode_tokens + 1);
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

    // A batch: every sequence prefilled, then decoded together one token each per step,
    // against one sequence stepped the same way. The two alternate in rounds of a few steps,
    // so that a neighbour slowing the VM for a moment weighs on both sides of the ratio.
    let (mut batch_tok_s, mut single_tok_s) = (0.0, 0.0);
    if args.batch > 0 {
        let step = |inputs: &[Vec<u32>], caches: &mut [gpu_backend::cpu::KvCache]| {
            let mut steps: Vec<SequenceStep> = inputs
                .iter()
                .zip(caches.iter_mut())
                .map(|(ids, cache)| SequenceStep {
                    ids,
                    cache,
                    logits: Logits::Last,
                })
                .collect();
            model.forward(&mut steps)
        };
        let prefilled = |sequences: usize| -> anyhow::Result<_> {
            let mut caches: Vec<_> = (0..sequences).map(|_| model.empty_cache()).collect();
            let inputs: Vec<Vec<u32>> = (0..sequences)
                .map(|b| prompt.iter().map(|id| (id + b as u32) % 4000).collect())
                .collect();
            let logits = step(&inputs, &mut caches)?;
            let next: Vec<Vec<u32>> = logits.iter().map(|l| vec![argmax(l)]).collect();
            Ok((next, caches))
        };
        let (mut batch_inputs, mut batch_caches) = prefilled(args.batch)?;
        let (mut single_inputs, mut single_caches) = prefilled(1)?;
        const ROUND: usize = 4;
        let (mut batch_s, mut single_s) = (0.0, 0.0);
        let mut done = 0;
        while done < args.decode_tokens {
            let steps = ROUND.min(args.decode_tokens - done);
            let t = Instant::now();
            for _ in 0..steps {
                let logits = step(&batch_inputs, &mut batch_caches)?;
                batch_inputs = logits.iter().map(|l| vec![argmax(l)]).collect();
            }
            batch_s += t.elapsed().as_secs_f64();
            let t = Instant::now();
            for _ in 0..steps {
                let logits = step(&single_inputs, &mut single_caches)?;
                single_inputs = logits.iter().map(|l| vec![argmax(l)]).collect();
            }
            single_s += t.elapsed().as_secs_f64();
            done += steps;
        }
        batch_tok_s = (args.decode_tokens * args.batch) as f64 / batch_s;
        single_tok_s = args.decode_tokens as f64 / single_s;
    }
    println!(
        "RESULT engine=eindr precision={} isa={} threads={threads} load_s={load_s:.2} weights_mb={} prefill_{}_s={prefill_s:.3} prefill_tok_s={:.1} decode_tok_s={tok_s:.2} batch{}_tok_s={batch_tok_s:.2} batch1_tok_s={single_tok_s:.2} peak_rss_mb={:.0}",
        args.precision,
        model.isa().as_str(),
        model.weight_bytes() / 1_000_000,
        args.prompt_tokens,
        args.prompt_tokens as f64 / prefill_s,
        args.batch,
        peak_rss_mb()
    );
    Ok(())
}

fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0 as u32
}

/// exp(mean negative log-likelihood) of every token of every line, each line after `</s>`.
fn perplexity(engine: &CpuEngine, path: &PathBuf, precision: Precision) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let start = engine.tokenizer().token_to_id("</s>").unwrap_or(0);
    let model = engine.model();
    let (mut nll, mut count) = (0.0f64, 0usize);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut ids = vec![start];
        ids.extend(engine.encode(line).map_err(anyhow::Error::msg)?);
        let mut cache = model.empty_cache();
        let logits = model
            .forward(&mut [SequenceStep {
                ids: &ids[..ids.len() - 1],
                cache: &mut cache,
                logits: Logits::All,
            }])?
            .pop()
            .unwrap_or_default();
        let vocab = model.vocab();
        for (pos, &next) in ids[1..].iter().enumerate() {
            let row = &logits[pos * vocab..(pos + 1) * vocab];
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
            nll -= f64::from(row[next as usize] - max) - sum.ln();
            count += 1;
        }
    }
    println!(
        "PERPLEXITY precision={precision} tokens={count} perplexity={:.4}",
        (nll / count.max(1) as f64).exp()
    );
    Ok(())
}
