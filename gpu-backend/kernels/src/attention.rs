//! One query's attention over a sequence's cached keys and values with ALiBi's bias (BLOOM):
//! scores `q·k_pos * scale + slope * pos`, softmax, and the weighted sum of the values. Plain
//! Rust in independent lanes, compiled for AVX-512 or AVX2 where the process may use them (the
//! crate is otherwise built for the baseline, whose 4-wide SSE made this a tenth of a step).

use crate::Isa;

/// Keys and values of one head: position `p`'s vector starts at `p * stride + offset`.
#[derive(Clone, Copy)]
pub struct HeadCache<'a> {
    pub keys: &'a [f32],
    pub values: &'a [f32],
    pub stride: usize,
    pub offset: usize,
}

/// One query of one head: `softmax(q·K * scale + slope * pos) · V` over the cache's first
/// `visible` positions.
#[derive(Clone, Copy)]
pub struct AttentionQuery<'a> {
    pub q: &'a [f32],
    pub cache: HeadCache<'a>,
    pub visible: usize,
    pub scale: f32,
    pub slope: f32,
}

/// `out` = the query's attention; `scores` is scratch space.
pub fn alibi_attention(query: &AttentionQuery<'_>, scores: &mut Vec<f32>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match Isa::detect() {
        Isa::Avx512 if crate::x86_attention::fits(query.q.len(), out.len()) && within(query) => {
            // SAFETY: `Isa::detect()` found AVX-512F usable by this process; `fits` and
            // `within` checked the head size and that every position read is in the cache.
            unsafe { crate::x86_attention::attention(query, scores, out) }
        }
        // SAFETY: `Isa::detect()` found AVX-512F (with AVX2 and FMA) usable by this process.
        Isa::Avx512 => unsafe { attention_avx512(query, scores, out) },
        // SAFETY: `Isa::detect()` found AVX2 and FMA usable by this process.
        Isa::Avx2 => unsafe { attention_avx2(query, scores, out) },
        Isa::Portable => attention(query, scores, out, |_| ()),
    }
    #[cfg(not(target_arch = "x86_64"))]
    attention(query, scores, out, |_| ());
}

/// Whether positions `0..visible` of the head lie inside its keys and values.
#[cfg(target_arch = "x86_64")]
fn within(query: &AttentionQuery<'_>) -> bool {
    let cache = &query.cache;
    let end = match query.visible.checked_sub(1) {
        None => return true,
        Some(last) => last * cache.stride + cache.offset + query.q.len(),
    };
    end <= cache.keys.len() && end <= cache.values.len()
}

/// The plain kernel where the hand-written one does not apply (a head size that is not a
/// multiple of 16 or above 128), compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn attention_avx512(query: &AttentionQuery<'_>, scores: &mut Vec<f32>, out: &mut [f32]) {
    attention(query, scores, out, prefetch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attention_avx2(query: &AttentionQuery<'_>, scores: &mut Vec<f32>, out: &mut [f32]) {
    attention(query, scores, out, prefetch);
}

/// Asks for the cache line at `p` ahead of its use. A prefetch never faults, whatever the
/// address, so `p` may point past the history.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch(p: *const f32) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: SSE is part of x86_64's baseline, and a prefetch reads nothing the program sees.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
}

/// Positions ahead of the one being read whose keys (and values, read after) are asked for:
/// a head's history is tens of KB that the hardware prefetcher, starting cold on each task,
/// does not fetch ahead fast enough (a batch's attention waited on memory half the time).
pub(crate) const PREFETCH_POSITIONS: usize = 8;

/// The reference kernel; `prefetch` asks for a cache line ahead of use (a no-op where there
/// is none).
#[inline(always)]
fn attention(
    query: &AttentionQuery<'_>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
    prefetch: impl Fn(*const f32),
) {
    let AttentionQuery {
        q,
        cache,
        visible,
        scale,
        slope,
    } = *query;
    let d = q.len();
    scores.clear();
    let mut max = f32::NEG_INFINITY;
    // A cache line holds 16 values.
    let lines = d.div_ceil(16);
    for pos in 0..visible {
        let start = pos * cache.stride + cache.offset;
        let ahead = start + PREFETCH_POSITIONS * cache.stride;
        for line in 0..lines {
            prefetch(cache.keys.as_ptr().wrapping_add(ahead + 16 * line));
            prefetch(cache.values.as_ptr().wrapping_add(start + 16 * line));
        }
        let score = dot(q, &cache.keys[start..start + d]) * scale + slope * pos as f32;
        max = max.max(score);
        scores.push(score);
    }
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = crate::elementwise::exp(*s - max);
        sum += *s;
    }
    let inv = 1.0 / sum;
    out.iter_mut().for_each(|o| *o = 0.0);
    for (pos, p) in scores.iter().enumerate() {
        let start = pos * cache.stride + cache.offset;
        let weight = p * inv;
        for (o, v) in out.iter_mut().zip(&cache.values[start..start + d]) {
            *o += weight * v;
        }
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The plain kernel alone, whatever the CPU (what the hand-written one is checked against).
pub fn alibi_attention_reference(
    query: &AttentionQuery<'_>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    attention(query, scores, out, |_| ());
}
