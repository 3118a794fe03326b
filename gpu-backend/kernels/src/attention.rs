//! One query's attention over a sequence's cached keys and values with ALiBi's bias (BLOOM):
//! scores `q·k_pos * scale + slope * pos`, softmax, and the weighted sum of the values. Plain
//! Rust in independent lanes, compiled for AVX-512 or AVX2 where the process may use them (the
//! crate is otherwise built for the baseline, whose 4-wide SSE made this a tenth of a step).

use crate::Isa;
use crate::matrix::{from_bf16, to_bf16};

/// What a head's cached keys and values are held as: fp32, or bf16 (half the memory a step's
/// attention reads, which is what it waits on once a batch's histories outgrow the caches).
pub trait KvElement: Copy + Default + Send + Sync + 'static {
    /// Which one, for the hand-written kernel's loads.
    const KIND: KvKind;
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvKind {
    F32,
    Bf16,
}

impl KvElement for f32 {
    const KIND: KvKind = KvKind::F32;
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

/// A bfloat16: the upper half of an fp32, rounded to nearest even.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl KvElement for Bf16 {
    const KIND: KvKind = KvKind::Bf16;
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        Bf16(to_bf16(v))
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        from_bf16(self.0)
    }
}

/// Keys and values of one head: position `p`'s vector starts at `p * stride + offset`.
#[derive(Clone, Copy)]
pub struct HeadCache<'a, E: KvElement = f32> {
    pub keys: &'a [E],
    pub values: &'a [E],
    pub stride: usize,
    pub offset: usize,
}

/// One query of one head: `softmax(q·K * scale + slope * pos) · V` over the cache's first
/// `visible` positions.
#[derive(Clone, Copy)]
pub struct AttentionQuery<'a, E: KvElement = f32> {
    pub q: &'a [f32],
    pub cache: HeadCache<'a, E>,
    pub visible: usize,
    pub scale: f32,
    pub slope: f32,
}

/// `out` = the query's attention; `scores` is scratch space.
pub fn alibi_attention<E: KvElement>(
    query: &AttentionQuery<'_, E>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
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
fn within<E: KvElement>(query: &AttentionQuery<'_, E>) -> bool {
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
unsafe fn attention_avx512<E: KvElement>(
    query: &AttentionQuery<'_, E>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    attention(query, scores, out, prefetch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attention_avx2<E: KvElement>(
    query: &AttentionQuery<'_, E>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    attention(query, scores, out, prefetch);
}

/// Asks for the cache line at `p` ahead of its use. A prefetch never faults, whatever the
/// address, so `p` may point past the history.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch(p: *const u8) {
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
fn attention<E: KvElement>(
    query: &AttentionQuery<'_, E>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
    prefetch: impl Fn(*const u8),
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
    // A cache line holds 64 bytes.
    let per_line = 64 / std::mem::size_of::<E>();
    let lines = d.div_ceil(per_line);
    for pos in 0..visible {
        let start = pos * cache.stride + cache.offset;
        let ahead = start + PREFETCH_POSITIONS * cache.stride;
        for line in 0..lines {
            prefetch(
                cache
                    .keys
                    .as_ptr()
                    .wrapping_add(ahead + per_line * line)
                    .cast(),
            );
            prefetch(
                cache
                    .values
                    .as_ptr()
                    .wrapping_add(start + per_line * line)
                    .cast(),
            );
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
            *o += weight * v.to_f32();
        }
    }
}

#[inline(always)]
fn dot<E: KvElement>(a: &[f32], b: &[E]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y.to_f32())
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i].to_f32();
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The plain kernel alone, whatever the CPU (what the hand-written one is checked against).
pub fn alibi_attention_reference<E: KvElement>(
    query: &AttentionQuery<'_, E>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    attention(query, scores, out, |_| ());
}
