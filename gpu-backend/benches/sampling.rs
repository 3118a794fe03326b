//! Time to choose one token from BLOOM's 250,880 logits, as the CPU engine does after every
//! step: the defaults (temperature 0.7, top-k 50, top-p 0.9), top-p alone, and no cut at all.
//! `cargo bench -p gpu-backend --bench sampling`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gpu_backend::cpu::{SamplingParams, truncated_distribution};

const VOCAB: usize = 250_880;

/// Logits spread like a model's: a few likely tokens over a long flat tail (xorshift, fixed).
fn logits() -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..VOCAB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 40) as f32 / (1u64 << 24) as f32;
            // Cubing pushes most of the mass to the top few percent.
            -12.0 + 24.0 * u * u * u
        })
        .collect()
}

fn sampling(c: &mut Criterion) {
    let logits = logits();
    for (name, top_p, top_k) in [
        ("defaults (top-k 50, top-p 0.9)", 0.9, 50),
        ("top-p 0.9 alone", 0.9, -1),
        ("no cut", 1.0, -1),
    ] {
        let params = SamplingParams {
            temperature: 0.7,
            top_p,
            top_k,
            repetition_penalty: 1.0,
        };
        c.bench_function(&format!("one token of 250,880, {name}"), |b| {
            b.iter(|| truncated_distribution(black_box(&logits), black_box(&params)))
        });
    }
}

criterion_group!(benches, sampling);
criterion_main!(benches);
