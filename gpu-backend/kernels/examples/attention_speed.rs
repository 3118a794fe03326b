//! One thread's speed of one head's attention over its history (head_dim 64): nanoseconds a
//! position, with the history held as fp32 and as bf16.
//! `cargo run --release -p cpu-kernels --example attention_speed [POSITIONS]`

use std::time::Instant;

use cpu_kernels::{AttentionQuery, Bf16, HeadCache, KvElement, alibi_attention};

fn main() {
    let visible: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    measure::<f32>("fp32", visible);
    measure::<Bf16>("bf16", visible);
}

fn measure<E: KvElement>(name: &str, visible: usize) {
    let d = 64;
    let keys: Vec<E> = (0..visible * d)
        .map(|i| E::from_f32(((i * 37) % 19) as f32 / 9.0 - 1.0))
        .collect();
    let values: Vec<E> = (0..visible * d)
        .map(|i| E::from_f32(((i * 11) % 23) as f32 / 11.0 - 1.0))
        .collect();
    let q: Vec<f32> = (0..d).map(|i| (i % 7) as f32 / 3.0 - 1.0).collect();
    let cache = HeadCache {
        keys: &keys,
        values: &values,
        stride: d,
        offset: 0,
    };
    let query = AttentionQuery {
        q: &q,
        cache,
        visible,
        scale: 0.125,
        slope: 0.25,
    };
    let (mut scores, mut out) = (Vec::new(), vec![0.0; d]);
    let reps = 2_000_000 / visible;
    let t = Instant::now();
    for _ in 0..reps {
        alibi_attention(&query, &mut scores, &mut out);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{name}, {visible} positions: {:.2} ns a position ({:.3} us a call)",
        s / (reps * visible) as f64 * 1e9,
        s / reps as f64 * 1e6
    );
}
