//! Hand-written AVX-512 kernels. Each computes a tile of R matrix rows × T tokens, loading
//! every weight vector once for the T tokens (R = 4; T = 4 for prompts and batches, 1 for the
//! rest).
//!
//! Pointers are derived from slices whose lengths `gemm` and the tile drivers check before any
//! unsafe code runs; each tile reads `R` rows of `stride` weights and `T` rows of activations.

// Tiles index several arrays (accumulators, rows, tokens) by the same i and j.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use crate::activations::ActivationData;
use crate::matrix::Weights;
use crate::{Activations, Isa, Matrix, Q4_BLOCK};

/// Runs `$body` for every tile of `$rows` × `$tokens`, with `$r`, `$t` the tile's first row and
/// token and `$R`, `$T` its size as constants: bands of four rows (four weight streams in
/// flight keep memory busy), four tokens at a time, then one.
macro_rules! tiles {
    ($rows:expr, $tokens:expr, |$r:ident, $t:ident, $R:ident, $T:ident| $body:block) => {
        tiles!($rows, $tokens, 4, |$r, $t, $R, $T| $body)
    };
    // `$wide`: the rows of a four-token tile (fewer where a kernel needs more registers).
    ($rows:expr, $tokens:expr, $wide:literal, |$r:ident, $t:ident, $R:ident, $T:ident| $body:block) => {{
        let rows: Range<usize> = $rows;
        let tokens: usize = $tokens;
        let mut $r = rows.start;
        while $r < rows.end {
            if rows.end - $r >= 4 {
                let mut $t = 0;
                let mut done = 0;
                while $t < tokens {
                    if tokens - $t >= 4 {
                        const $R: usize = $wide;
                        const $T: usize = 4;
                        // The band's four rows in tiles of `$wide`.
                        let first = $r;
                        while $r < first + 4 {
                            $body
                            $r += $wide;
                        }
                        $r = first;
                        $t += 4;
                    } else {
                        const $R: usize = 4;
                        const $T: usize = 1;
                        $body
                        $t += 1;
                    }
                    done += 1;
                }
                let _ = done;
                $r += 4;
            } else {
                let mut $t = 0;
                while $t < tokens {
                    if tokens - $t >= 4 {
                        const $R: usize = 1;
                        const $T: usize = 4;
                        $body
                        $t += 4;
                    } else {
                        const $R: usize = 1;
                        const $T: usize = 1;
                        $body
                        $t += 1;
                    }
                }
                $r += 1;
            }
        }
    }};
}

pub(crate) fn gemm(m: &Matrix, x: &Activations, rows: Range<usize>, out: &mut [f32]) {
    let (ms, xs, tokens) = (m.stride(), x.stride(), x.tokens());
    let (first, width) = (rows.start, rows.len());
    let mut put = |r: usize, t: usize, v: f32| out[t * width + (r - first)] = v;
    match (&m.weights, &x.data) {
        (Weights::F32(w), ActivationData::F32(a)) => {
            tiles!(rows, tokens, |r, t, R, T| {
                // SAFETY: rows r..r+R and tokens t..t+T lie inside `w` and `a` (the driver
                // stays within `rows` ⊆ the matrix and `tokens`), each `ms`/`xs` long, a
                // multiple of 64; `Isa::detect()` found AVX-512F.
                let v =
                    unsafe { f32_tile::<R, T>(w[r * ms..].as_ptr(), ms, a[t * xs..].as_ptr(), xs) };
                for i in 0..R {
                    for j in 0..T {
                        put(r + i, t + j, v[i][j]);
                    }
                }
            });
        }
        (Weights::Bf16(w), ActivationData::Bf16(a)) if crate::native_bf16() => {
            tiles!(rows, tokens, |r, t, R, T| {
                // SAFETY: as for fp32; `native_bf16()` found AVX512-BF16.
                let v = unsafe {
                    bf16_tile::<R, T>(w[r * ms..].as_ptr(), ms, a[t * xs..].as_ptr(), xs)
                };
                for i in 0..R {
                    for j in 0..T {
                        put(r + i, t + j, v[i][j]);
                    }
                }
            });
        }
        (Weights::Bf16(_), ActivationData::Bf16(_)) => {
            crate::portable::gemm(m, x, rows, out, Isa::Avx2);
        }
        (Weights::Int8 { q, scales, sums }, ActivationData::Int8 { q: aq, scales: s }) => {
            tiles!(rows, tokens, |r, t, R, T| {
                // SAFETY: as for fp32, over bytes; `Isa::detect()` found AVX-512 BW and VNNI.
                let v = unsafe {
                    int8_tile::<R, T>(q[r * ms..].as_ptr(), ms, aq[t * xs..].as_ptr(), xs)
                };
                for i in 0..R {
                    for j in 0..T {
                        let dot = v[i][j] - 128 * sums[r + i];
                        put(r + i, t + j, dot as f32 * scales[r + i] * s[t + j]);
                    }
                }
            });
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
            let pairs = xs / 64;
            tiles!(rows, tokens, 2, |r, t, R, T| {
                // SAFETY: rows r..r+R hold `ms / 2` packed bytes and `blocks` scales each;
                // tokens t..t+T hold `xs` bytes and `pairs * 16` offsets each (the driver stays
                // within the matrix and the tokens); AVX-512 BW and VNNI were detected.
                let v = unsafe {
                    q4_tile::<R, T>(
                        q[r * ms / 2..].as_ptr(),
                        ms / 2,
                        scales[r * blocks..].as_ptr(),
                        blocks,
                        aq[t * xs..].as_ptr(),
                        xs,
                        offsets[t * pairs * 16..].as_ptr(),
                        pairs,
                    )
                };
                for i in 0..R {
                    for j in 0..T {
                        put(r + i, t + j, v[i][j] * s[t + j]);
                    }
                }
            });
        }
        // `gemm` checked that both sides have the same precision.
        _ => {}
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
            // SAFETY: row i's weights c..c+16 are inside the tile (caller's contract).
            *v = unsafe { _mm512_loadu_ps(w.add(i * ws + c)) };
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
            // SAFETY: row i's 32 weights at c are inside the tile.
            *v = unsafe { _mm512_loadu_si512(w.add(i * ws + c).cast()) };
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

/// Integer sums of `(a + 128) * w` over the row.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn int8_tile<const R: usize, const T: usize>(
    w: *const i8,
    ws: usize,
    a: *const u8,
    xs: usize,
) -> [[i32; T]; R] {
    let mut acc = [[_mm512_setzero_si512(); T]; R];
    let mut wv = [_mm512_setzero_si512(); R];
    let mut c = 0;
    while c < ws {
        for (i, v) in wv.iter_mut().enumerate() {
            // SAFETY: row i's 64 weights at c are inside the tile. A prefetch never faults,
            // also past the end; it asks for the row's bytes some way ahead of the loads.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((i + R) * ws + c).cast());
                *v = _mm512_loadu_si512(w.add(i * ws + c).cast());
            }
        }
        for j in 0..T {
            // SAFETY: token j's 64 bytes at c are inside the tile.
            let av = unsafe { _mm512_loadu_si512(a.add(j * xs + c).cast()) };
            for i in 0..R {
                acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av, wv[i]);
            }
        }
        c += 64;
    }
    let mut out = [[0; T]; R];
    for i in 0..R {
        for j in 0..T {
            out[i][j] = _mm512_reduce_add_epi32(acc[i][j]);
        }
    }
    out
}

/// Sums over blocks of `scale[block] * (sum(nibble * a) - 8 * sum(a))`, in fp32. One 64-byte
/// load holds two pairs of blocks (low nibbles, high nibbles); in each, the two blocks' 32-bit
/// lanes alternate (see `Weights::Q4`), so a pair's two scales are one 64-bit broadcast.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q4_tile<const R: usize, const T: usize>(
    w: *const u8,
    ws: usize,
    scales: *const f32,
    blocks: usize,
    a: *const i8,
    xs: usize,
    offsets: *const i32,
    pairs: usize,
) -> [[f32; T]; R] {
    let low = _mm512_set1_epi8(0x0f);
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    let mut wv = [[_mm512_setzero_si512(); 2]; R];
    let mut sv = [[_mm512_setzero_ps(); 2]; R];
    for q in 0..pairs / 2 {
        for i in 0..R {
            // SAFETY: row i's 64 packed bytes of pairs 2q and 2q + 1, and their four scales,
            // are inside the tile; a prefetch never faults (it asks for the next tile's row).
            let (packed, s0, s1) = unsafe {
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((i + R) * ws + q * 64).cast());
                let base = scales.add(i * blocks + 4 * q).cast::<i64>();
                (
                    _mm512_loadu_si512(w.add(i * ws + q * 64).cast()),
                    base.read_unaligned(),
                    base.add(1).read_unaligned(),
                )
            };
            wv[i][0] = _mm512_and_si512(packed, low);
            wv[i][1] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low);
            sv[i][0] = _mm512_castsi512_ps(_mm512_set1_epi64(s0));
            sv[i][1] = _mm512_castsi512_ps(_mm512_set1_epi64(s1));
        }
        for j in 0..T {
            for half in 0..2 {
                let p = 2 * q + half;
                // SAFETY: token j's 64 values and 16 offsets of pair p are inside the tile.
                let (av, ov) = unsafe {
                    (
                        _mm512_loadu_si512(a.add(j * xs + p * 64).cast()),
                        _mm512_loadu_si512(offsets.add((j * pairs + p) * 16).cast()),
                    )
                };
                for i in 0..R {
                    let dot = _mm512_dpbusd_epi32(ov, wv[i][half], av);
                    acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sv[i][half], acc[i][j]);
                }
            }
        }
    }
    let mut out = [[0.0; T]; R];
    for i in 0..R {
        for j in 0..T {
            out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
        }
    }
    out
}
