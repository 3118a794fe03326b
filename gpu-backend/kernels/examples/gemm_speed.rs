//! Each kernel's speed on a ROWS × 1024 matrix (default 4096: a BLOOM-560m MLP projection; a
//! large one, e.g. 131072, is read from memory rather than cache), over THREADS threads that
//! each take a band of rows (default 1): one token (decode: GB/s of weights read), 4 and 64
//! tokens (prefill: GMAC/s).
//! `cargo run --release -p cpu-kernels --example gemm_speed [ROWS] [THREADS]`

use std::time::Instant;

use cpu_kernels::{Activations, Isa, Matrix, Precision, gemm};

fn main() -> Result<(), cpu_kernels::KernelError> {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(4096);
    let threads: usize = std::env::args()
        .nth(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let band = rows.div_ceil(threads).div_ceil(4) * 4;
    let cols: usize = std::env::var("COLS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1024);
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
            // Each thread writes its band's `[token][row]` part.
            let run = |out: &mut [f32]| {
                std::thread::scope(|s| {
                    let parts: Vec<_> = out
                        .chunks_mut(band * tokens)
                        .enumerate()
                        .map(|(i, part)| {
                            let first = i * band;
                            let (m, a) = (&m, &a);
                            s.spawn(move || {
                                gemm(
                                    m,
                                    a,
                                    first..first + part.len() / tokens,
                                    part,
                                    Isa::detect(),
                                )
                            })
                        })
                        .collect();
                    parts
                        .into_iter()
                        .try_for_each(|p| p.join().unwrap_or(Ok(())))
                })
            };
            run(&mut out)?;
            let t = Instant::now();
            for _ in 0..reps {
                run(&mut out)?;
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
