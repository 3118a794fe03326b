//! One query's ALiBi attention in AVX-512, for head sizes of 16 to 128 (a multiple of 16):
//! the query and the output stay in registers, a score is one register's sum, and the
//! exponentials and their sum run sixteen at a time. The plain kernel took ~90 cycles a
//! position, most of them a sum of sixteen lanes added one after another.

use std::arch::x86_64::*;

use crate::attention::{AttentionQuery, KvElement, KvKind, PREFETCH_POSITIONS};

/// Whether a head of `d` values (and an output as long) is one this kernel takes.
pub(crate) fn fits(d: usize, out: usize) -> bool {
    d == out && d.is_multiple_of(16) && (16..=128).contains(&d)
}

/// # Safety
/// AVX-512F is usable; `fits(query.q.len(), out.len())`; positions `0..visible` lie inside
/// the cache's keys and values (`(visible - 1) * stride + offset + d` at most their length).
pub(crate) unsafe fn attention<E: KvElement>(
    query: &AttentionQuery<'_, E>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    // SAFETY: the caller's contract, passed on; the sizes are the registers each needs.
    unsafe {
        match query.q.len() / 16 {
            1 => head::<1, E>(query, scores, out),
            2 => head::<2, E>(query, scores, out),
            3 => head::<3, E>(query, scores, out),
            4 => head::<4, E>(query, scores, out),
            5 => head::<5, E>(query, scores, out),
            6 => head::<6, E>(query, scores, out),
            7 => head::<7, E>(query, scores, out),
            _ => head::<8, E>(query, scores, out),
        }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn head<const N: usize, E: KvElement>(
    query: &AttentionQuery<'_, E>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let AttentionQuery {
        q,
        cache,
        visible,
        scale,
        slope,
    } = *query;
    let (keys, values) = (cache.keys.as_ptr(), cache.values.as_ptr());
    let at = |pos: usize| pos * cache.stride + cache.offset;
    // Sixteen values at `p` as fp32 (a bf16 is the upper half of its fp32).
    let load = |p: *const E| -> __m512 {
        // SAFETY: the caller's contract: p's sixteen values are inside the cache.
        unsafe {
            match E::KIND {
                KvKind::F32 => _mm512_loadu_ps(p.cast()),
                KvKind::Bf16 => _mm512_castsi512_ps(_mm512_slli_epi32::<16>(
                    _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast())),
                )),
            }
        }
    };
    // Values a cache line holds.
    let per_line = 64 / std::mem::size_of::<E>();
    let mut qv = [_mm512_setzero_ps(); N];
    for (k, v) in qv.iter_mut().enumerate() {
        // SAFETY: q holds 16 * N values (`fits`).
        *v = unsafe { _mm512_loadu_ps(q.as_ptr().add(16 * k)) };
    }
    scores.clear();
    scores.resize(visible.next_multiple_of(16), f32::NEG_INFINITY);
    let mut max = f32::NEG_INFINITY;
    for (pos, slot) in scores[..visible].iter_mut().enumerate() {
        let start = at(pos);
        let mut acc = _mm512_setzero_ps();
        for line in 0..(16 * N).div_ceil(per_line) {
            // A prefetch never faults, also past the end.
            _mm_prefetch::<_MM_HINT_T0>(
                keys.wrapping_add(start + PREFETCH_POSITIONS * cache.stride + per_line * line)
                    .cast(),
            );
            _mm_prefetch::<_MM_HINT_T0>(values.wrapping_add(start + per_line * line).cast());
        }
        for (k, qk) in qv.iter().enumerate() {
            // SAFETY: position `pos < visible` lies inside the keys (caller's contract).
            acc = _mm512_fmadd_ps(*qk, load(unsafe { keys.add(start + 16 * k) }), acc);
        }
        let score = _mm512_reduce_add_ps(acc) * scale + slope * pos as f32;
        max = max.max(score);
        *slot = score;
    }
    // e^(score - max) sixteen at a time; the padding (-inf, clamped) adds e^-87 each.
    let (maxv, mut sum) = (_mm512_set1_ps(max), _mm512_setzero_ps());
    for chunk in scores.chunks_exact_mut(16) {
        // SAFETY: a chunk is 16 values.
        unsafe {
            let e = exp(_mm512_sub_ps(_mm512_loadu_ps(chunk.as_ptr()), maxv));
            _mm512_storeu_ps(chunk.as_mut_ptr(), e);
            sum = _mm512_add_ps(sum, e);
        }
    }
    let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
    let mut acc = [_mm512_setzero_ps(); N];
    for (pos, &p) in scores[..visible].iter().enumerate() {
        let (start, w) = (at(pos), _mm512_set1_ps(p));
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: position `pos < visible` lies inside the values (caller's contract).
            *a = _mm512_fmadd_ps(w, load(unsafe { values.add(start + 16 * k) }), *a);
        }
    }
    for (k, a) in acc.iter().enumerate() {
        // SAFETY: out holds 16 * N values (`fits`).
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(16 * k), _mm512_mul_ps(*a, inv)) };
    }
}

/// `crate::elementwise::exp` sixteen lanes at a time (the same steps, with fused multiply-adds).
#[target_feature(enable = "avx512f")]
fn exp(x: __m512) -> __m512 {
    let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
    let x = _mm512_min_ps(x, _mm512_set1_ps(88.0));
    let round = _mm512_set1_ps(12_582_912.0);
    let shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), round);
    let n = _mm512_sub_ps(shifted, round);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let r2 = _mm512_mul_ps(r, r);
    let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    let bits = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_castps_si512(round));
    let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(bits, _mm512_set1_epi32(127)));
    _mm512_mul_ps(e, _mm512_castsi512_ps(scale))
}
