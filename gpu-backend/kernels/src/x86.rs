//! Hand-written AVX-512 kernels. Each computes a tile of R matrix rows × T tokens, loading
//! every weight vector once for the T tokens (R = 4, or 16 for 4-bit weights stored in groups;
//! T = 4 for prompts and batches, 1 for the rest).
//!
//! Pointers are derived from slices whose lengths `gemm` and the tile drivers check before any
//! unsafe code runs; each tile reads `R` rows of `stride` weights and `T` rows of activations.

// Tiles index several arrays (accumulators, rows, tokens) by the same i and j.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use crate::activations::ActivationData;
use crate::matrix::{Q4_TILE_BYTES, Weights};
use crate::x86_tiles::{GroupKernels, INT8_AHEAD, Q4_AHEAD, group_gemm, store_tile};
use crate::{Activations, Matrix, Q4_BLOCK, Q4_GROUP};

pub(crate) fn gemm(m: &Matrix, x: &Activations, rows: Range<usize>, out: &mut [&mut [f32]]) {
    let (ms, xs, tokens) = (m.stride(), x.stride(), x.tokens());
    let first = rows.start;
    match (&m.weights, &x.data) {
        (Weights::F32(w), ActivationData::F32(a)) => {
            tiles!(rows, tokens, 4, |r, t, R, T| {
                // SAFETY: rows r..r+R and tokens t..t+T lie inside `w` and `a` (the driver
                // stays within `rows` ⊆ the matrix and `tokens`), each `ms`/`xs` long, a
                // multiple of 64; `Isa::detect()` found AVX-512F.
                let v =
                    unsafe { f32_tile::<R, T>(w[r * ms..].as_ptr(), ms, a[t * xs..].as_ptr(), xs) };
                store_tile(out, r - first, t, &v);
            });
        }
        (Weights::Bf16(w), ActivationData::Bf16(a)) if crate::native_bf16() => {
            tiles!(rows, tokens, 4, |r, t, R, T| {
                // SAFETY: as for fp32; `native_bf16()` found AVX512-BF16.
                let v = unsafe {
                    bf16_tile::<R, T>(w[r * ms..].as_ptr(), ms, a[t * xs..].as_ptr(), xs)
                };
                store_tile(out, r - first, t, &v);
            });
        }
        // Without AVX512-BF16 the AVX2 kernel widens bf16 to fp32 in the register.
        (Weights::Bf16(_), ActivationData::Bf16(_)) => crate::x86_avx2::gemm(m, x, rows, out),
        _ => group_gemm::<Avx512>(m, x, rows, out),
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn f32_tile<const R: usize, const T: usize>(
    w: *const f32,
    ws: usize,
    a: *const f32,
    xs: usize,
) -> [[f32; T]; R] {
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    let mut wv = [_mm512_setzero_ps(); R];
    let mut c = 0;
    while c < ws {
        for (i, v) in wv.iter_mut().enumerate() {
            // SAFETY: row i's weights c..c+16 are inside the tile (caller's contract); a
            // prefetch never faults.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((i + R) * ws + c).cast());
                *v = _mm512_loadu_ps(w.add(i * ws + c));
            }
        }
        for j in 0..T {
            // SAFETY: token j's values c..c+16 are inside the tile.
            let av = unsafe { _mm512_loadu_ps(a.add(j * xs + c)) };
            for i in 0..R {
                acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);
            }
        }
        c += 16;
    }
    let mut out = [[0.0; T]; R];
    for i in 0..R {
        for j in 0..T {
            out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
        }
    }
    out
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_tile<const R: usize, const T: usize>(
    w: *const u16,
    ws: usize,
    a: *const u16,
    xs: usize,
) -> [[f32; T]; R] {
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    let mut wv = [_mm512_setzero_si512(); R];
    let mut c = 0;
    while c < ws {
        for (i, v) in wv.iter_mut().enumerate() {
            // SAFETY: row i's 32 weights at c are inside the tile; a prefetch never faults.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((i + R) * ws + c).cast());
                *v = _mm512_loadu_si512(w.add(i * ws + c).cast());
            }
        }
        for j in 0..T {
            // SAFETY: token j's 32 values at c are inside the tile.
            let av = unsafe { _mm512_loadu_si512(a.add(j * xs + c).cast()) };
            for i in 0..R {
                // SAFETY: bf16 vectors are 32 u16 lanes with the same bits as __m512i.
                let (wb, ab) = unsafe {
                    (
                        std::mem::transmute::<__m512i, __m512bh>(wv[i]),
                        std::mem::transmute::<__m512i, __m512bh>(av),
                    )
                };
                acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wb, ab);
            }
        }
        c += 32;
    }
    let mut out = [[0.0; T]; R];
    for i in 0..R {
        for j in 0..T {
            out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
        }
    }
    out
}

/// The AVX-512 integer kernels (BW and VNNI), for the shared group driver.
pub(crate) struct Avx512;

impl GroupKernels for Avx512 {
    const INT8_BIAS: i32 = 128;

    /// Integer sums of `(w + 128) * a` over the row, for the 16 rows of one group (lane i is row
    /// i) and T tokens. Each 64-byte load is four columns of every row, against those four
    /// activations broadcast; four sums a token in turn keep `vpdpbusd`'s latency out of the way.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn int8<const T: usize>(
        w: *const u8,
        cols: usize,
        a: *const i8,
        xs: usize,
    ) -> [[i32; Q4_GROUP]; T] {
        let mut acc = [[_mm512_setzero_si512(); 4]; T];
        let mut c = 0;
        while c < cols {
            for u in 0..4 {
                let at = (c + 4 * u) * 16;
                // SAFETY: the group's 64 bytes of columns c + 4u.. are inside it (caller's
                // contract: `cols` a multiple of 128); a prefetch never faults.
                let wv = unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(at + INT8_AHEAD).cast());
                    _mm512_loadu_si512(w.add(at).cast())
                };
                for j in 0..T {
                    // SAFETY: token j's four bytes at c + 4u are inside its row.
                    let av = unsafe { a.add(j * xs + c + 4 * u).cast::<i32>().read_unaligned() };
                    acc[j][u] = _mm512_dpbusd_epi32(acc[j][u], wv, _mm512_set1_epi32(av));
                }
            }
            c += 16;
        }
        let mut out = [[0; Q4_GROUP]; T];
        for j in 0..T {
            let sum = _mm512_add_epi32(
                _mm512_add_epi32(acc[j][0], acc[j][1]),
                _mm512_add_epi32(acc[j][2], acc[j][3]),
            );
            // SAFETY: an [i32; 16] is 64 bytes, one register.
            unsafe { _mm512_storeu_si512(out[j].as_mut_ptr().cast(), sum) };
        }
        out
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn q4<const T: usize>(
        w: *const u8,
        scales: *const f32,
        blocks: usize,
        a: *const i8,
        xs: usize,
        offsets: *const i32,
    ) -> [[f32; Q4_GROUP]; T] {
        let low = _mm512_set1_epi8(0x0f);
        let mut acc = [_mm512_setzero_ps(); T];
        let mut wv = [_mm512_setzero_si512(); 8];
        for b in 0..blocks {
            // SAFETY: tile b's Q4_TILE_BYTES and 16 scales are inside the group (caller's
            // contract); a prefetch never faults (it asks for a tile some way ahead).
            let sv = unsafe {
                let tile = w.add(b * Q4_TILE_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(scales.wrapping_add((b + Q4_AHEAD) * Q4_GROUP).cast());
                for l in 0..4 {
                    _mm_prefetch::<_MM_HINT_T0>(
                        tile.wrapping_add(Q4_AHEAD * Q4_TILE_BYTES + l * 64).cast(),
                    );
                    let packed = _mm512_loadu_si512(tile.add(l * 64).cast());
                    wv[l] = _mm512_and_si512(packed, low);
                    wv[l + 4] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low);
                }
                _mm512_loadu_ps(scales.add(b * Q4_GROUP))
            };
            for j in 0..T {
                // SAFETY: token j's 32 values of block b and its offset are inside the tile.
                let (first, second) = unsafe {
                    let act = a.add(j * xs + b * Q4_BLOCK).cast::<i32>();
                    let mut first = _mm512_set1_epi32(offsets.add(j * blocks + b).read_unaligned());
                    let mut second = _mm512_setzero_si512();
                    for k in 0..4 {
                        first = _mm512_dpbusd_epi32(
                            first,
                            wv[k],
                            _mm512_set1_epi32(act.add(k).read_unaligned()),
                        );
                        second = _mm512_dpbusd_epi32(
                            second,
                            wv[k + 4],
                            _mm512_set1_epi32(act.add(k + 4).read_unaligned()),
                        );
                    }
                    (first, second)
                };
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(first, second));
                acc[j] = _mm512_fmadd_ps(dot, sv, acc[j]);
            }
        }
        let mut out = [[0.0; Q4_GROUP]; T];
        for j in 0..T {
            // SAFETY: a [f32; 16] is 64 bytes, one register.
            unsafe { _mm512_storeu_ps(out[j].as_mut_ptr(), acc[j]) };
        }
        out
    }
}
