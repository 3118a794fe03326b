//! Hand-written AVX2 kernels, for x86-64 CPUs without AVX-512 (AMD before Zen 4, most Intel
//! client chips). Same layouts as the AVX-512 ones, read a half register at a time; where the
//! compiler vectorizing the portable loops was left at (int8 products widened to 32 bits and
//! multiplied with `vpmulld`), these multiply bytes with `vpmaddubsw`, as llama.cpp does.
//!
//! AVX2 has 16 registers, not 32: float tiles are 4 rows × 2 tokens, and the integer kernels
//! take a group's 16 rows as two halves of 8.
//!
//! Pointers are derived from slices whose lengths `gemm` checks before any unsafe code runs;
//! each tile reads `R` rows of `stride` weights and `T` rows of activations.

// Tiles index several arrays (accumulators, rows, tokens) by the same i and j.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use crate::activations::ActivationData;
use crate::matrix::{Q4_TILE_BYTES, Weights};
use crate::x86::{store_group, store_tile};
use crate::{Activations, Matrix, Q4_BLOCK, Q4_GROUP};

/// Tokens a float tile takes at once (4 rows × 2 tokens: 8 sums, 4 weight vectors and the
/// activations fill the 16 registers).
const FLOAT_TOKENS: usize = 2;

/// Tokens an integer group takes at once.
const INT_TOKENS: usize = 4;

pub(crate) fn gemm(m: &Matrix, x: &Activations, rows: Range<usize>, out: &mut [&mut [f32]]) {
    let (ms, xs, tokens) = (m.stride(), x.stride(), x.tokens());
    let first = rows.start;
    match (&m.weights, &x.data) {
        (Weights::F32(w), ActivationData::F32(a)) => {
            tiles!(rows, tokens, FLOAT_TOKENS, |r, t, R, T| {
                // SAFETY: rows r..r+R and tokens t..t+T lie inside `w` and `a` (the driver
                // stays within `rows` ⊆ the matrix and `tokens`), each `ms`/`xs` long, a
                // multiple of 128; `Isa::detect()` found AVX2 and FMA.
                let v =
                    unsafe { f32_tile::<R, T>(w[r * ms..].as_ptr(), ms, a[t * xs..].as_ptr(), xs) };
                store_tile(out, r - first, t, &v);
            });
        }
        (Weights::Bf16(w), ActivationData::Bf16(a)) => {
            tiles!(rows, tokens, FLOAT_TOKENS, |r, t, R, T| {
                // SAFETY: as for fp32.
                let v = unsafe {
                    bf16_tile::<R, T>(w[r * ms..].as_ptr(), ms, a[t * xs..].as_ptr(), xs)
                };
                store_tile(out, r - first, t, &v);
            });
        }
        (
            Weights::Int8 { q, scales },
            ActivationData::Int8 {
                q: aq, scales: s, ..
            },
        ) => {
            for g in rows.start / Q4_GROUP..rows.end.div_ceil(Q4_GROUP) {
                let w = q[g * Q4_GROUP * ms..].as_ptr();
                let row_scales = &scales[g * Q4_GROUP..][..Q4_GROUP];
                let mut keep = |t: usize, dots: &[[i32; Q4_GROUP]]| {
                    for (j, lanes) in dots.iter().enumerate() {
                        let mut values = [0.0; Q4_GROUP];
                        for ((v, dot), scale) in values.iter_mut().zip(lanes).zip(row_scales) {
                            *v = *dot as f32 * scale * s[t + j];
                        }
                        store_group(out, &rows, g, t + j, &values);
                    }
                };
                let mut t = 0;
                while t < tokens {
                    let a = aq[t * xs..].as_ptr();
                    if tokens - t >= INT_TOKENS {
                        // SAFETY: group g holds 16 rows of `ms` bytes (the matrix is stored in
                        // whole groups); tokens t..t+4 hold `xs` bytes each, `xs == ms`; AVX2
                        // was detected.
                        keep(t, &unsafe { int8_group::<INT_TOKENS>(w, ms, a, xs) });
                        t += INT_TOKENS;
                    } else {
                        // SAFETY: as above, for token t alone.
                        keep(t, &unsafe { int8_group::<1>(w, ms, a, xs) });
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
            for g in rows.start / Q4_GROUP..rows.end.div_ceil(Q4_GROUP) {
                let (w, ws) = (
                    q[g * blocks * Q4_TILE_BYTES..].as_ptr(),
                    &scales[g * blocks * Q4_GROUP..],
                );
                let mut keep = |t: usize, sums: &[[f32; Q4_GROUP]]| {
                    for (j, lanes) in sums.iter().enumerate() {
                        store_group(out, &rows, g, t + j, &lanes.map(|v| v * s[t + j]));
                    }
                };
                let mut t = 0;
                while t < tokens {
                    let (a, o) = (aq[t * xs..].as_ptr(), offsets[t * blocks..].as_ptr());
                    if tokens - t >= INT_TOKENS {
                        // SAFETY: group g holds `blocks` tiles of Q4_TILE_BYTES and as many
                        // sets of 16 scales; tokens t..t+4 hold `xs` values and `blocks`
                        // offsets each; AVX2 was detected.
                        keep(t, &unsafe {
                            q4_tile::<INT_TOKENS>(w, ws.as_ptr(), blocks, a, xs, o)
                        });
                        t += INT_TOKENS;
                    } else {
                        // SAFETY: as above, for token t alone.
                        keep(t, &unsafe {
                            q4_tile::<1>(w, ws.as_ptr(), blocks, a, xs, o)
                        });
                        t += 1;
                    }
                }
            }
        }
        // `gemm` checked that both sides have the same precision.
        _ => {}
    }
}

/// The sums of up to eight vectors: lane k of the result is the sum of `v[k]`'s lanes. One
/// transposing tree (`vhaddps`) rather than eight separate reductions.
#[target_feature(enable = "avx2,fma")]
fn sum_lanes(v: [__m256; 8]) -> [f32; 8] {
    let h01 = _mm256_hadd_ps(v[0], v[1]);
    let h23 = _mm256_hadd_ps(v[2], v[3]);
    let h45 = _mm256_hadd_ps(v[4], v[5]);
    let h67 = _mm256_hadd_ps(v[6], v[7]);
    // Each 128-bit half now holds a partial sum of v0..v3 (and of v4..v7).
    let h0123 = _mm256_hadd_ps(h01, h23);
    let h4567 = _mm256_hadd_ps(h45, h67);
    let sums = _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(h0123, h4567),
        _mm256_permute2f128_ps::<0x31>(h0123, h4567),
    );
    let mut out = [0.0; 8];
    // SAFETY: an [f32; 8] is 32 bytes, one register.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sums) };
    out
}

/// A tile's accumulators summed, `[row][token]`.
#[target_feature(enable = "avx2,fma")]
fn tile_sums<const R: usize, const T: usize>(acc: &[[__m256; T]; R]) -> [[f32; T]; R] {
    let mut flat = [_mm256_setzero_ps(); 8];
    for i in 0..R {
        for j in 0..T {
            flat[i * T + j] = acc[i][j];
        }
    }
    let sums = sum_lanes(flat);
    let mut out = [[0.0; T]; R];
    for i in 0..R {
        for j in 0..T {
            out[i][j] = sums[i * T + j];
        }
    }
    out
}

#[target_feature(enable = "avx2,fma")]
unsafe fn f32_tile<const R: usize, const T: usize>(
    w: *const f32,
    ws: usize,
    a: *const f32,
    xs: usize,
) -> [[f32; T]; R] {
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    let mut c = 0;
    while c < ws {
        let mut av = [_mm256_setzero_ps(); T];
        for j in 0..T {
            // SAFETY: token j's values c..c+8 are inside the tile (caller's contract).
            av[j] = unsafe { _mm256_loadu_ps(a.add(j * xs + c)) };
        }
        for i in 0..R {
            // SAFETY: row i's weights c..c+8 are inside the tile.
            let wv = unsafe { _mm256_loadu_ps(w.add(i * ws + c)) };
            for j in 0..T {
                acc[i][j] = _mm256_fmadd_ps(wv, av[j], acc[i][j]);
            }
        }
        c += 8;
    }
    tile_sums(&acc)
}

/// bf16 pairs widened in the register: a 32-bit lane holding two bf16 values is the upper
/// one's fp32 once its low half is cleared, and the lower one's once shifted up. Weights and
/// activations are split the same way, so the products pair up.
#[target_feature(enable = "avx2,fma")]
fn widen_bf16(v: __m256i) -> (__m256, __m256) {
    let high = _mm256_set1_epi32(0xffff_0000_u32 as i32);
    (
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v)),
        _mm256_castsi256_ps(_mm256_and_si256(v, high)),
    )
}

#[target_feature(enable = "avx2,fma")]
unsafe fn bf16_tile<const R: usize, const T: usize>(
    w: *const u16,
    ws: usize,
    a: *const u16,
    xs: usize,
) -> [[f32; T]; R] {
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    let mut c = 0;
    while c < ws {
        let mut av = [(_mm256_setzero_ps(), _mm256_setzero_ps()); T];
        for j in 0..T {
            // SAFETY: token j's 16 values at c are inside the tile (caller's contract).
            av[j] = widen_bf16(unsafe { _mm256_loadu_si256(a.add(j * xs + c).cast()) });
        }
        for i in 0..R {
            // SAFETY: row i's 16 weights at c are inside the tile.
            let (lo, hi) = widen_bf16(unsafe { _mm256_loadu_si256(w.add(i * ws + c).cast()) });
            for j in 0..T {
                acc[i][j] = _mm256_fmadd_ps(lo, av[j].0, acc[i][j]);
                acc[i][j] = _mm256_fmadd_ps(hi, av[j].1, acc[i][j]);
            }
        }
        c += 16;
    }
    tile_sums(&acc)
}

/// Integer sums of `w * a` over the row for the 16 rows of one group and T tokens. The biased
/// bytes (`w + 128`) are made signed again, and `vpmaddubsw` multiplies |w| by a carrying w's
/// sign: |w| <= 128 and |a| <= 127 keep its pairwise 16-bit sums from saturating.
#[target_feature(enable = "avx2,fma")]
unsafe fn int8_group<const T: usize>(
    w: *const u8,
    cols: usize,
    a: *const i8,
    xs: usize,
) -> [[i32; Q4_GROUP]; T] {
    let bias = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; T];
    let mut c = 0;
    while c < cols {
        for half in 0..2 {
            // SAFETY: the group's 64 bytes of columns c..c+4 are inside it (caller's
            // contract: `cols` a multiple of 128); this half is 32 of them.
            let signed = _mm256_xor_si256(
                unsafe { _mm256_loadu_si256(w.add(c * 16 + half * 32).cast()) },
                bias,
            );
            let magnitude = _mm256_abs_epi8(signed);
            for j in 0..T {
                // SAFETY: token j's four bytes at c are inside its row.
                let av = unsafe { a.add(j * xs + c).cast::<i32>().read_unaligned() };
                let pairs = _mm256_maddubs_epi16(
                    magnitude,
                    _mm256_sign_epi8(_mm256_set1_epi32(av), signed),
                );
                acc[j][half] = _mm256_add_epi32(acc[j][half], _mm256_madd_epi16(pairs, ones));
            }
        }
        c += 4;
    }
    let mut out = [[0; Q4_GROUP]; T];
    for j in 0..T {
        for half in 0..2 {
            // SAFETY: eight i32 are 32 bytes, one register, inside `out[j]`.
            unsafe { _mm256_storeu_si256(out[j][half * 8..].as_mut_ptr().cast(), acc[j][half]) };
        }
    }
    out
}

/// A 4-bit group's 16 rows times T tokens. Per block and half of the rows, the eight
/// `vpmaddubsw` results (nibble <= 15 times |a| <= 127, two products a lane) are summed in 16
/// bits: 16 products of at most 1,905 stay below 32,767.
#[target_feature(enable = "avx2,fma")]
unsafe fn q4_tile<const T: usize>(
    w: *const u8,
    scales: *const f32,
    blocks: usize,
    a: *const i8,
    xs: usize,
    offsets: *const i32,
) -> [[f32; Q4_GROUP]; T] {
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    if T == 1 {
        // SAFETY: the caller's contract, passed on.
        let both = unsafe { q4_halves::<T, 2>(w, scales, blocks, a, xs, offsets, 0) };
        acc = both;
    } else {
        // One half of the rows over every block, then the other: with both at once the sums
        // of four tokens did not fit the 16 registers, and the group (16 KB for 1,024
        // columns) is still in cache for the second pass. gemm_speed, one thread, 64 tokens:
        // 4.3-5.9 ms -> 3.6-4.7.
        for half in 0..2 {
            // SAFETY: the caller's contract, passed on.
            let one = unsafe { q4_halves::<T, 1>(w, scales, blocks, a, xs, offsets, half) };
            for j in 0..T {
                acc[j][half] = one[j][0];
            }
        }
    }
    let mut out = [[0.0; Q4_GROUP]; T];
    for j in 0..T {
        for half in 0..2 {
            // SAFETY: eight f32 are 32 bytes, one register, inside `out[j]`.
            unsafe { _mm256_storeu_ps(out[j][half * 8..].as_mut_ptr(), acc[j][half]) };
        }
    }
    out
}

/// The sums of `H` halves of a 4-bit group's rows, from half `first`, over every block.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn q4_halves<const T: usize, const H: usize>(
    w: *const u8,
    scales: *const f32,
    blocks: usize,
    a: *const i8,
    xs: usize,
    offsets: *const i32,
    first: usize,
) -> [[__m256; H]; T] {
    let low = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); H]; T];
    for b in 0..blocks {
        // SAFETY: tile b's Q4_TILE_BYTES and 16 scales are inside the group (caller's
        // contract).
        let tile = unsafe { w.add(b * Q4_TILE_BYTES) };
        for h in 0..H {
            let half = first + h;
            let mut sums = [_mm256_setzero_si256(); T];
            for l in 0..4 {
                // SAFETY: load l's 32 bytes of this half are inside the tile.
                let packed = unsafe { _mm256_loadu_si256(tile.add(l * 64 + half * 32).cast()) };
                let lo = _mm256_and_si256(packed, low);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low);
                for j in 0..T {
                    // SAFETY: token j's 32 values of block b are inside its row.
                    let (first, second) = unsafe {
                        let act = a.add(j * xs + b * Q4_BLOCK).cast::<i32>();
                        (act.add(l).read_unaligned(), act.add(l + 4).read_unaligned())
                    };
                    sums[j] = _mm256_add_epi16(
                        sums[j],
                        _mm256_add_epi16(
                            _mm256_maddubs_epi16(lo, _mm256_set1_epi32(first)),
                            _mm256_maddubs_epi16(hi, _mm256_set1_epi32(second)),
                        ),
                    );
                }
            }
            // SAFETY: the tile's 16 scales; this half's 8 of them.
            let sv = unsafe { _mm256_loadu_ps(scales.add(b * Q4_GROUP + half * 8)) };
            for j in 0..T {
                // SAFETY: token j's offset for block b is inside `offsets`.
                let offset = unsafe { offsets.add(j * blocks + b).read_unaligned() };
                let dot =
                    _mm256_add_epi32(_mm256_madd_epi16(sums[j], ones), _mm256_set1_epi32(offset));
                acc[j][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), sv, acc[j][h]);
            }
        }
    }
    acc
}
