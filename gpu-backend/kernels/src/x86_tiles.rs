//! What the AVX-512 and AVX2 kernels share: the drivers that walk a matrix in tiles of rows ×
//! tokens, the stores of a tile's sums into each token's output, and the prefetch distances.
//! Each instruction set brings only its kernels.

// Tiles index several arrays (accumulators, rows, tokens) by the same i and j.
#![allow(clippy::needless_range_loop)]

use std::ops::Range;

use crate::activations::ActivationData;
use crate::matrix::{Q4_TILE_BYTES, Weights};
use crate::{Activations, Matrix, Q4_BLOCK, Q4_GROUP};

/// Runs `$body` for every tile of `$rows` × `$tokens`, with `$r`, `$t` the tile's first row and
/// token and `$R`, `$T` its size as constants: bands of four rows (four weight streams in
/// flight keep memory busy), `$group` tokens at a time, then one.
macro_rules! tiles {
    ($rows:expr, $tokens:expr, $group:expr, |$r:ident, $t:ident, $R:ident, $T:ident| $body:block) => {{
        let rows: Range<usize> = $rows;
        let tokens: usize = $tokens;
        let mut $r = rows.start;
        while $r < rows.end {
            // A band of four rows, or one row at the end.
            let band = if rows.end - $r >= 4 { 4 } else { 1 };
            let mut $t = 0;
            while $t < tokens {
                if tokens - $t >= $group {
                    if band == 4 {
                        const $R: usize = 4;
                        const $T: usize = $group;
                        $body
                    } else {
                        const $R: usize = 1;
                        const $T: usize = $group;
                        $body
                    }
                    $t += $group;
                } else {
                    if band == 4 {
                        const $R: usize = 4;
                        const $T: usize = 1;
                        $body
                    } else {
                        const $R: usize = 1;
                        const $T: usize = 1;
                        $body
                    }
                    $t += 1;
                }
            }
            $r += band;
        }
    }};
}

/// A tile's values into each token's slice, its first row at `at` (rows past the slice, which
/// `gemm_into` sized, are not there to write).
#[inline(always)]
pub(crate) fn store_tile<const R: usize, const T: usize>(
    out: &mut [&mut [f32]],
    at: usize,
    t: usize,
    v: &[[f32; T]; R],
) {
    for j in 0..T {
        if let Some(dst) = out.get_mut(t + j).and_then(|o| o.get_mut(at..at + R)) {
            for (i, d) in dst.iter_mut().enumerate() {
                *d = v[i][j];
            }
        }
    }
}

/// Group `g`'s sixteen values for token `t`, those of its rows inside `rows`.
#[inline(always)]
fn store_group(
    out: &mut [&mut [f32]],
    rows: &Range<usize>,
    g: usize,
    t: usize,
    values: &[f32; Q4_GROUP],
) {
    let (start, end) = (
        (g * Q4_GROUP).max(rows.start),
        ((g + 1) * Q4_GROUP).min(rows.end),
    );
    if let Some(dst) = out
        .get_mut(t)
        .and_then(|o| o.get_mut(start - rows.start..end - rows.start))
    {
        dst.copy_from_slice(&values[start - g * Q4_GROUP..end - g * Q4_GROUP]);
    }
}

/// Bytes ahead of the one being read that an int8 group asks for (as the 4-bit tile's).
/// Measured by `gemm_speed 131072 2` (a matrix read from memory) on AVX-512, means of six runs:
/// four tokens took 4.76 ms at 2 KB ahead, 4.28 at 6 KB, 4.11 at 8 KB; one token the same.
pub(crate) const INT8_AHEAD: usize = 8192;

/// Tiles ahead of the one being read whose four cache lines and scales are asked for: with
/// four tokens a tile takes long enough that out-of-order execution alone runs too few loads
/// ahead to keep memory busy. Measured as for int8, means of five runs: at 8 tiles (2 KB) one
/// token took 2.14 ms and four 2.40; at 24 tiles 1.94 and 1.98.
pub(crate) const Q4_AHEAD: usize = 24;

/// Tokens an integer group takes at once.
const GROUP_TOKENS: usize = 4;

/// One instruction set's kernels over a group of [`Q4_GROUP`] interleaved rows.
pub(crate) trait GroupKernels {
    /// What each int8 dot holds beyond `w * a`, per unit of the token's sum of `a`: 128 where
    /// the kernel multiplies the biased unsigned bytes (`vpdpbusd`), 0 where it makes them
    /// signed first.
    const INT8_BIAS: i32;

    /// Integer dots of the group's 16 rows (`cols` bytes each, stored interleaved) with T
    /// tokens of `xs` bytes.
    ///
    /// # Safety
    /// The group and the T tokens are readable, `cols` is a multiple of 128 and the CPU has
    /// the kernel's instructions.
    unsafe fn int8<const T: usize>(
        w: *const u8,
        cols: usize,
        a: *const i8,
        xs: usize,
    ) -> [[i32; Q4_GROUP]; T];

    /// Sums of the group's 16 rows of `blocks` 4-bit blocks with T tokens, scaled by the
    /// weights' scales (not yet the tokens').
    ///
    /// # Safety
    /// The group's `blocks` tiles and their scales, and the T tokens' values and per-block
    /// offsets, are readable, and the CPU has the kernel's instructions.
    unsafe fn q4<const T: usize>(
        w: *const u8,
        scales: *const f32,
        blocks: usize,
        a: *const i8,
        xs: usize,
        offsets: *const i32,
    ) -> [[f32; Q4_GROUP]; T];
}

/// The int8 and 4-bit products of `rows` (whole groups of 16 rows, a group the range cuts is
/// computed whole and only its rows in the range kept), four tokens at a time, then one.
pub(crate) fn group_gemm<K: GroupKernels>(
    m: &Matrix,
    x: &Activations,
    rows: Range<usize>,
    out: &mut [&mut [f32]],
) {
    let (ms, xs, tokens) = (m.stride(), x.stride(), x.tokens());
    let groups = rows.start / Q4_GROUP..rows.end.div_ceil(Q4_GROUP);
    match (&m.weights, &x.data) {
        (
            Weights::Int8 { q, scales },
            ActivationData::Int8 {
                q: aq,
                scales: s,
                sums,
            },
        ) => {
            for g in groups {
                let w = q[g * Q4_GROUP * ms..].as_ptr();
                let row_scales = &scales[g * Q4_GROUP..][..Q4_GROUP];
                let mut keep = |t: usize, dots: &[[i32; Q4_GROUP]]| {
                    for (j, lanes) in dots.iter().enumerate() {
                        let bias = K::INT8_BIAS * sums[t + j];
                        let mut values = [0.0; Q4_GROUP];
                        for ((v, dot), scale) in values.iter_mut().zip(lanes).zip(row_scales) {
                            *v = (dot - bias) as f32 * scale * s[t + j];
                        }
                        store_group(out, &rows, g, t + j, &values);
                    }
                };
                let mut t = 0;
                while t < tokens {
                    let a = aq[t * xs..].as_ptr();
                    if tokens - t >= GROUP_TOKENS {
                        // SAFETY: group g holds 16 rows of `ms` bytes (the matrix is stored in
                        // whole groups); tokens t..t+4 hold `xs` bytes each, `xs == ms`, a
                        // multiple of 128; `Isa::detect()` found the kernel's instructions.
                        keep(t, &unsafe { K::int8::<GROUP_TOKENS>(w, ms, a, xs) });
                        t += GROUP_TOKENS;
                    } else {
                        // SAFETY: as above, for token t alone.
                        keep(t, &unsafe { K::int8::<1>(w, ms, a, xs) });
                        t += 1;
                    }
                }
            }
        }
        (
            Weights::Q4 { q, scales },
            ActivationData::Q8 {
                q: aq,
                scales: s,
                offsets,
            },
        ) => {
            let blocks = ms / Q4_BLOCK;
            for g in groups {
                let (w, ws) = (
                    q[g * blocks * Q4_TILE_BYTES..].as_ptr(),
                    scales[g * blocks * Q4_GROUP..].as_ptr(),
                );
                let mut keep = |t: usize, sums: &[[f32; Q4_GROUP]]| {
                    for (j, lanes) in sums.iter().enumerate() {
                        store_group(out, &rows, g, t + j, &lanes.map(|v| v * s[t + j]));
                    }
                };
                let mut t = 0;
                while t < tokens {
                    let (a, o) = (aq[t * xs..].as_ptr(), offsets[t * blocks..].as_ptr());
                    if tokens - t >= GROUP_TOKENS {
                        // SAFETY: group g holds `blocks` tiles of Q4_TILE_BYTES and as many
                        // sets of 16 scales (the matrix is stored in whole groups); tokens
                        // t..t+4 hold `xs` values and `blocks` offsets each;
                        // `Isa::detect()` found the kernel's instructions.
                        keep(t, &unsafe {
                            K::q4::<GROUP_TOKENS>(w, ws, blocks, a, xs, o)
                        });
                        t += GROUP_TOKENS;
                    } else {
                        // SAFETY: as above, for token t alone.
                        keep(t, &unsafe { K::q4::<1>(w, ws, blocks, a, xs, o) });
                        t += 1;
                    }
                }
            }
        }
        // The float precisions have tiles of their own; `gemm` checked that both sides have
        // the same precision.
        _ => {}
    }
}
