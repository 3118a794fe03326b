//! The reference kernels, in plain Rust: what every hand-written kernel is checked against,
//! and what runs on a CPU without AVX2. The loops are written in independent lanes so that
//! the compiler can vectorize them for the target's baseline.

// A block's columns index both the packed row and the activations.
#![allow(clippy::needless_range_loop)]

use std::ops::Range;

use crate::activations::ActivationData;
use crate::matrix::{Weights, from_bf16, get_nibble, q4_scale_at};
use crate::{Activations, Matrix, Q4_BLOCK, Q4_GROUP};

pub(crate) fn gemm(m: &Matrix, x: &Activations, rows: Range<usize>, out: &mut [&mut [f32]]) {
    let (ms, xs, tokens) = (m.stride(), x.stride(), x.tokens());
    let first = rows.start;
    if let (
        Weights::Int8 { q, scales },
        ActivationData::Int8 {
            q: aq,
            scales: s,
            sums,
        },
    ) = (&m.weights, &x.data)
    {
        // A group's 16 rows at once, as they are stored: sixteen sums in independent lanes.
        for g in first / Q4_GROUP..rows.end.div_ceil(Q4_GROUP) {
            let group = &q[g * Q4_GROUP * ms..(g + 1) * Q4_GROUP * ms];
            for t in 0..tokens {
                let mut acc = [0i32; Q4_GROUP];
                for (four, a) in group
                    .chunks_exact(64)
                    .zip(aq[t * xs..(t + 1) * xs].chunks_exact(4))
                {
                    for i in 0..Q4_GROUP {
                        for j in 0..4 {
                            acc[i] += i32::from(four[4 * i + j]) * i32::from(a[j]);
                        }
                    }
                }
                for (i, dot) in acc.iter().enumerate() {
                    let r = g * Q4_GROUP + i;
                    if rows.contains(&r) {
                        out[t][r - first] = (dot - 128 * sums[t]) as f32 * scales[r] * s[t];
                    }
                }
            }
        }
        return;
    }
    for r in rows {
        for t in 0..tokens {
            let a = t * xs..(t + 1) * xs;
            let w = r * ms..(r + 1) * ms;
            out[t][r - first] = match (&m.weights, &x.data) {
                (Weights::F32(wv), ActivationData::F32(av)) => dot_f32(&wv[w], &av[a]),
                (Weights::Bf16(wv), ActivationData::Bf16(av)) => dot_bf16(&wv[w], &av[a]),
                (
                    Weights::Q4 { q, scales },
                    ActivationData::Q8 {
                        q: aq,
                        scales: s,
                        offsets,
                    },
                ) => {
                    let blocks = ms / Q4_BLOCK;
                    let act = &aq[a];
                    let offs = &offsets[t * blocks..(t + 1) * blocks];
                    let mut acc = 0.0f32;
                    for b in 0..blocks {
                        let mut dot = offs[b];
                        for c in b * Q4_BLOCK..(b + 1) * Q4_BLOCK {
                            dot += i32::from(get_nibble(q, blocks, r, c)) * i32::from(act[c]);
                        }
                        acc += dot as f32 * scales[q4_scale_at(blocks, r, b)];
                    }
                    acc * s[t]
                }
                // `gemm` checked that both sides have the same precision.
                _ => 0.0,
            };
        }
    }
}

const LANES: usize = 16;

#[inline(always)]
fn dot_f32(w: &[f32], a: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (wc, ac) in w.chunks_exact(LANES).zip(a.chunks_exact(LANES)) {
        for i in 0..LANES {
            acc[i] += wc[i] * ac[i];
        }
    }
    acc.iter().sum()
}

#[inline(always)]
fn dot_bf16(w: &[u16], a: &[u16]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (wc, ac) in w.chunks_exact(LANES).zip(a.chunks_exact(LANES)) {
        for i in 0..LANES {
            acc[i] += from_bf16(wc[i]) * from_bf16(ac[i]);
        }
    }
    acc.iter().sum()
}
