//! Every kernel usable on this machine against the portable reference, on random shapes
//! (row and token counts that exercise every tile size and remainder, columns that need
//! padding) and random values; and every precision against the exact fp32 product, within
//! what its rounding allows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cpu_kernels::{Activations, Bf16, Isa, KernelError, KvElement, Matrix, Precision, gemm};
use proptest::prelude::*;

fn product(
    precision: Precision,
    w: &[f32],
    x: &[f32],
    rows: usize,
    cols: usize,
    isa: Isa,
) -> Vec<f32> {
    let m = Matrix::from_f32(precision, rows, cols, w).unwrap();
    let a = Activations::prepare(precision, x, cols).unwrap();
    let mut out = vec![0.0; rows * a.tokens()];
    gemm(&m, &a, 0..rows, &mut out, isa).unwrap();
    out
}

fn exact(w: &[f32], x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let tokens = x.len() / cols;
    let mut out = vec![0.0; rows * tokens];
    for r in 0..rows {
        for t in 0..tokens {
            out[t * rows + r] = (0..cols)
                .map(|c| f64::from(w[r * cols + c]) * f64::from(x[t * cols + c]))
                .sum::<f64>() as f32;
        }
    }
    out
}

fn case() -> impl Strategy<Value = (usize, usize, Vec<f32>, Vec<f32>)> {
    (1usize..40, 1usize..200, 1usize..10).prop_flat_map(|(rows, cols, tokens)| {
        (
            Just(rows),
            Just(cols),
            prop::collection::vec(-2.0f32..2.0, rows * cols),
            prop::collection::vec(-3.0f32..3.0, tokens * cols),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_kernel_matches_the_portable_one((rows, cols, w, x) in case()) {
        for precision in Precision::ALL {
            let reference = product(precision, &w, &x, rows, cols, Isa::Portable);
            for isa in Isa::available() {
                let got = product(precision, &w, &x, rows, cols, isa);
                for (g, r) in got.iter().zip(&reference) {
                    // Integer sums are exact; only the order of the fp32 sums differs.
                    let tolerance = 1e-4 * (1.0 + r.abs()) + 1e-5 * cols as f32;
                    prop_assert!((g - r).abs() <= tolerance,
                        "{precision} on {isa:?}: {g} vs portable {r} ({rows}x{cols})");
                }
            }
        }
    }

    #[test]
    fn every_precision_is_close_to_the_exact_product((rows, cols, w, x) in case()) {
        let want = exact(&w, &x, rows, cols);
        // Worst case of the rounding: per-element relative steps of weights and activations,
        // summed over the row (|w| <= 2, |x| <= 3).
        let n = cols as f32;
        for (precision, step) in [
            (Precision::F32, 1e-6),
            (Precision::Bf16, 2.0 * 2.0 * 3.0 / 256.0),
            (Precision::Int8, 3.0 * 2.0 / 127.0 + 2.0 * 3.0 / 127.0),
            (Precision::Q4, 3.0 * 2.0 / 8.0 + 2.0 * 3.0 / 127.0),
        ] {
            let got = product(precision, &w, &x, rows, cols, Isa::detect());
            for (g, e) in got.iter().zip(&want) {
                prop_assert!((g - e).abs() <= step * n / 2.0 + 1e-4,
                    "{precision}: {g} vs exact {e} ({rows}x{cols})");
            }
        }
    }

    #[test]
    fn a_range_of_rows_is_that_part_of_the_whole((rows, cols, w, x) in case(), cut in 0usize..11) {
        let cut = cut.min(rows);
        for precision in Precision::ALL {
            let m = Matrix::from_f32(precision, rows, cols, &w).unwrap();
            let a = Activations::prepare(precision, &x, cols).unwrap();
            let tokens = a.tokens();
            let mut whole = vec![0.0; rows * tokens];
            gemm(&m, &a, 0..rows, &mut whole, Isa::detect()).unwrap();
            let mut part = vec![0.0; (rows - cut) * tokens];
            gemm(&m, &a, cut..rows, &mut part, Isa::detect()).unwrap();
            for t in 0..tokens {
                prop_assert_eq!(&whole[t * rows + cut..(t + 1) * rows], &part[t * (rows - cut)..(t + 1) * (rows - cut)]);
            }
        }
    }
}

#[test]
fn mismatched_inputs_are_errors_not_panics() {
    let m = Matrix::from_f32(Precision::Int8, 2, 64, &[0.5; 128]).unwrap();
    let a = Activations::prepare(Precision::Int8, &[1.0; 32], 32).unwrap();
    let mut out = vec![0.0; 2];
    assert_eq!(
        gemm(&m, &a, 0..2, &mut out, Isa::detect()),
        Err(KernelError::Columns { got: 32, want: 64 })
    );
    let a = Activations::prepare(Precision::Q4, &[1.0; 64], 64).unwrap();
    assert!(matches!(
        gemm(&m, &a, 0..2, &mut out, Isa::detect()),
        Err(KernelError::Precision { .. })
    ));
    let a = Activations::prepare(Precision::Int8, &[1.0; 64], 64).unwrap();
    assert!(gemm(&m, &a, 1..3, &mut out, Isa::detect()).is_err());
    assert!(gemm(&m, &a, 0..2, &mut out[..1], Isa::detect()).is_err());
    assert!(gemm(&m, &a, 0..2, &mut out, Isa::detect()).is_ok());
}

#[test]
fn the_isa_detected_is_usable() {
    let isa = Isa::detect();
    assert!(Isa::available().contains(&isa));
    eprintln!(
        "detected: {}, native bf16: {}",
        isa.as_str(),
        cpu_kernels::native_bf16()
    );
}

/// The attention of one query against a plain computation in f64.
#[test]
fn alibi_attention_matches_the_formula() {
    let (d, visible, stride, offset) = (64, 37, 3 * 64, 64);
    let keys: Vec<f32> = (0..visible * stride)
        .map(|i| ((i * 37) % 19) as f32 / 9.0 - 1.0)
        .collect();
    let values: Vec<f32> = (0..visible * stride)
        .map(|i| ((i * 11) % 23) as f32 / 11.0 - 1.0)
        .collect();
    let q: Vec<f32> = (0..d).map(|i| (i % 7) as f32 / 3.0 - 1.0).collect();
    let (scale, slope) = (0.125, 0.25);
    let cache = cpu_kernels::HeadCache {
        keys: &keys,
        values: &values,
        stride,
        offset,
    };
    let mut out = vec![0.0; d];
    let query = cpu_kernels::AttentionQuery {
        q: &q,
        cache,
        visible,
        scale,
        slope,
    };
    cpu_kernels::alibi_attention(&query, &mut Vec::new(), &mut out);
    let scores: Vec<f64> = (0..visible)
        .map(|p| {
            (0..d)
                .map(|i| f64::from(q[i]) * f64::from(keys[p * stride + offset + i]))
                .sum::<f64>()
                * f64::from(scale)
                + f64::from(slope) * p as f64
        })
        .collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    for i in 0..d {
        let want: f64 = (0..visible)
            .map(|p| weights[p] / total * f64::from(values[p * stride + offset + i]))
            .sum();
        assert!(
            (f64::from(out[i]) - want).abs() < 1e-5,
            "{i}: {} vs {want}",
            out[i]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever kernel this CPU runs against the plain one, on head sizes it takes and ones it
    /// leaves to the plain one, with the head's vectors at an offset inside wider rows.
    #[test]
    fn attention_matches_the_plain_kernel(
        d in prop::sample::select(vec![16usize, 32, 48, 64, 80, 128, 24, 144]),
        visible in 1usize..80,
        extra in 0usize..2,
        seed in 0u32..1000,
    ) {
        let (stride, offset) = (d * (1 + extra), d * extra);
        let value = |i: usize, k: u32| ((i as u32 * k + seed) % 97) as f32 / 24.0 - 2.0;
        let keys: Vec<f32> = (0..visible * stride).map(|i| value(i, 37)).collect();
        let values: Vec<f32> = (0..visible * stride).map(|i| value(i, 11)).collect();
        let q: Vec<f32> = (0..d).map(|i| value(i, 7)).collect();
        let cache = cpu_kernels::HeadCache { keys: &keys, values: &values, stride, offset };
        let (mut got, mut want) = (vec![0.0; d], vec![0.0; d]);
        let query = cpu_kernels::AttentionQuery { q: &q, cache, visible, scale: 0.125, slope: -0.0625 };
        cpu_kernels::alibi_attention(&query, &mut Vec::new(), &mut got);
        cpu_kernels::alibi_attention_reference(&query, &mut Vec::new(), &mut want);
        for (g, w) in got.iter().zip(&want) {
            prop_assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "d {d}, visible {visible}: {g} vs {w}");
        }
        // The same history held as bf16: the kernels agree on the rounded values, and those
        // stay within bf16's step of the fp32 answer.
        let (keys16, values16): (Vec<Bf16>, Vec<Bf16>) = (
            keys.iter().map(|v| Bf16::from_f32(*v)).collect(),
            values.iter().map(|v| Bf16::from_f32(*v)).collect(),
        );
        let cache = cpu_kernels::HeadCache { keys: &keys16, values: &values16, stride, offset };
        let query = cpu_kernels::AttentionQuery { q: &q, cache, visible, scale: 0.125, slope: -0.0625 };
        let (mut got16, mut want16) = (vec![0.0; d], vec![0.0; d]);
        cpu_kernels::alibi_attention(&query, &mut Vec::new(), &mut got16);
        cpu_kernels::alibi_attention_reference(&query, &mut Vec::new(), &mut want16);
        for ((g, w), exact) in got16.iter().zip(&want16).zip(&want) {
            prop_assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "bf16, d {d}, visible {visible}: {g} vs {w}");
            prop_assert!((w - exact).abs() <= 0.05 * (1.0 + exact.abs()), "bf16 against fp32, d {d}: {w} vs {exact}");
        }
    }
}
