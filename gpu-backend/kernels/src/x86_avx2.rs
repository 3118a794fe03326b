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
use crate::x86_tiles::{GroupKernels, INT8_AHEAD, Q4_AHEAD, group_gemm, store_tile};
use crate::{Activations, Matrix, Q4_BLOCK, Q4_GROUP};

/// Tokens a float tile takes at once (4 rows × 2 tokens: 8 sums, 4 weight vectors and the
/// activations fill the 16 registers).
const FLOAT_TOKENS: usize = 2;

pub(crate) fn gemm(m: &Matrix, x: &Activations, rows: Range<usize>, out: &mut [&mut [f32]]) {
    match (&m.weights, &x.data) {
        (Weights::F32(w), ActivationData::F32(a)) => float_gemm(m, x, w, a, rows, out),
        (Weights::Bf16(w), ActivationData::Bf16(a)) => float_gemm(m, x, w, a, rows, out),
        _ => group_gemm::<Avx2>(m, x, rows, out),
    }
}

/// Float weights and activations (fp32, or bf16 widened in the register) in tiles of 4 rows
/// × 2 tokens.
fn float_gemm<E: Floats>(
    m: &Matrix,
    x: &Activations,
    w: &[E],
    a: &[E],
    rows: Range<usize>,
    out: &mut [&mut [f32]],
) {
    let (ms, xs, tokens) = (m.stride(), x.stride(), x.tokens());
    let first = rows.start;
    tiles!(rows, tokens, FLOAT_TOKENS, |r, t, R, T| {
        // SAFETY: rows r..r+R and tokens t..t+T lie inside `w` and `a` (the driver stays
        // within `rows` ⊆ the matrix and `tokens`), each `ms`/`xs` long, a multiple of 128;
        // `Isa::detect()` found AVX2 and FMA.
        let v = unsafe {
            float_tile::<E, R, T>(w[r * ms..].as_ptr(), ms, a[t * xs..].as_ptr(), xs, t == 0)
        };
        store_tile(out, r - first, t, &v);
    });
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

/// Float elements as the tiles read them: 16 at a time, as two vectors of fp32 that pair up
/// between weights and activations (not necessarily in column order).
trait Floats: Copy {
    /// # Safety
    /// 16 values at `p` are readable, and the CPU has AVX2 and FMA.
    unsafe fn load16(p: *const Self) -> (__m256, __m256);
}

impl Floats for f32 {
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load16(p: *const f32) -> (__m256, __m256) {
        // SAFETY: the caller's contract.
        unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
    }
}

/// bf16, as the upper halves of fp32 values.
impl Floats for u16 {
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load16(p: *const u16) -> (__m256, __m256) {
        // SAFETY: the caller's contract.
        widen_bf16(unsafe { _mm256_loadu_si256(p.cast()) })
    }
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

/// R rows × T tokens of float dot products. With `ahead` (the band's first tokens), each
/// weight load asks for the next band's: rows are short streams (2-4 KB) that the hardware
/// prefetcher alone follows too late. gemm_speed, 131,072 rows, 2 threads, medians of ten:
/// bf16 one token 21.3 -> 17.4 ms, four 27.3 -> 22.1; asking on every token pair instead
/// slowed 64 tokens by a fifth.
#[target_feature(enable = "avx2,fma")]
unsafe fn float_tile<E: Floats, const R: usize, const T: usize>(
    w: *const E,
    ws: usize,
    a: *const E,
    xs: usize,
    ahead: bool,
) -> [[f32; T]; R] {
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    let mut c = 0;
    while c < ws {
        let mut av = [(_mm256_setzero_ps(), _mm256_setzero_ps()); T];
        for j in 0..T {
            // SAFETY: token j's 16 values at c are inside the tile (caller's contract).
            av[j] = unsafe { E::load16(a.add(j * xs + c)) };
        }
        for i in 0..R {
            if ahead {
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((i + R) * ws + c).cast());
            }
            // SAFETY: row i's 16 weights at c are inside the tile.
            let (lo, hi) = unsafe { E::load16(w.add(i * ws + c)) };
            for j in 0..T {
                acc[i][j] = _mm256_fmadd_ps(lo, av[j].0, acc[i][j]);
                acc[i][j] = _mm256_fmadd_ps(hi, av[j].1, acc[i][j]);
            }
        }
        c += 16;
    }
    tile_sums(&acc)
}

/// The AVX2 integer kernels, for the shared group driver.
pub(crate) struct Avx2;

impl GroupKernels for Avx2 {
    const INT8_BIAS: i32 = 0;

    /// Integer sums of `w * a` over the row for the 16 rows of one group and T tokens. The biased
    /// bytes (`w + 128`) are made signed again, and `vpmaddubsw` multiplies |w| by a carrying w's
    /// sign: |w| <= 128 and |a| <= 127 keep its pairwise 16-bit sums from saturating.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn int8<const T: usize>(
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
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(c * 16 + INT8_AHEAD).cast());
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
                unsafe {
                    _mm256_storeu_si256(out[j][half * 8..].as_mut_ptr().cast(), acc[j][half])
                };
            }
        }
        out
    }

    /// A 4-bit group's 16 rows times T tokens. Per block and half of the rows, the eight
    /// `vpmaddubsw` results (nibble <= 15 times |a| <= 127, two products a lane) are summed in 16
    /// bits: 16 products of at most 1,905 stay below 32,767.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn q4<const T: usize>(
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
        if first == 0 {
            // The second pass over a group finds it in cache; a prefetch never faults.
            _mm_prefetch::<_MM_HINT_T0>(scales.wrapping_add((b + Q4_AHEAD) * Q4_GROUP).cast());
            for l in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>(
                    tile.wrapping_add(Q4_AHEAD * Q4_TILE_BYTES + l * 64).cast(),
                );
            }
        }
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
