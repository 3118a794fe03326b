//! One thread's speed of each kernel on a 4096 × 1024 matrix (a BLOOM-560m MLP projection):
//! one token (decode: GB/s of weights read) and 64 tokens (prefill: GMAC/s).
//! `cargo run --release -p cpu-kernels --example gemm_speed`

use std::time::Instant;

use cpu_kernels::{Activations, Isa, Matrix, Precision, gemm};

fn main() -> Result<(), cpu_kernels::KernelError> {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(4096);
    let cols = 1024;
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0)
        .collect();
    for precision in Precision::ALL {
        let m = Matrix::from_f32(precision, rows, cols, &w)?;
        for tokens in [1usize, 4, 64] {
            let x: Vec<f32> = (0..tokens * cols)
                .map(|i| ((i * 31) % 17) as f32 - 8.0)
                .collect();
            let a = Activations::prepare(precision, &x, cols)?;
            let mut out = vec![0.0; rows * tokens];
            let reps = (256 / tokens).max(4);
            gemm(&m, &a, 0..rows, &mut out, Isa::detect())?;
            let t = Instant::now();
            for _ in 0..reps {
                gemm(&m, &a, 0..rows, &mut out, Isa::detect())?;
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{precision:>5} tokens {tokens:>2}: {:7.3} ms  {:6.1} GB/s of weights  {:6.1} GMAC/s",
                s * 1e3,
                m.bytes() as f64 / s / 1e9,
                (rows * cols * tokens) as f64 / s / 1e9
            );
        }
    }
    Ok(())
}
