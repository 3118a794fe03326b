//! Activation vectors prepared for a matrix of one precision: padded to the matrix's stride,
//! and for the integer kernels quantized to int8 with one scale per token.

use crate::matrix::to_bf16;
use crate::{COLUMN_ALIGN, Isa, KernelError, Precision, Q4_BLOCK};

pub struct Activations {
    precision: Precision,
    tokens: usize,
    cols: usize,
    stride: usize,
    pub(crate) data: ActivationData,
}

pub(crate) enum ActivationData {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
    /// For int8 weights, whose biased bytes are the unsigned side: `q` signed,
    /// `x ≈ q * scale[token]`, and `sums[token]` the token's sum of `q` (the products summed
    /// `128 * sum` too many).
    Int8 {
        q: Vec<i8>,
        scales: Vec<f32>,
        sums: Vec<i32>,
    },
    /// For 4-bit weights, whose nibbles are the unsigned side: `q` signed, and per token and
    /// block `-8 * sum(q)` over the block, to start the integer sums from.
    Q8 {
        q: Vec<i8>,
        scales: Vec<f32>,
        offsets: Vec<i32>,
    },
}

impl Activations {
    /// `x` holds `tokens` rows of `cols` values.
    pub fn prepare(precision: Precision, x: &[f32], cols: usize) -> Result<Self, KernelError> {
        if cols == 0 || !x.len().is_multiple_of(cols) {
            return Err(KernelError::Shape { got: x.len(), cols });
        }
        let tokens = x.len() / cols;
        let stride = cols.div_ceil(COLUMN_ALIGN) * COLUMN_ALIGN;
        let data = quantize_rows(precision, x, cols, stride);
        Ok(Self {
            precision,
            tokens,
            cols,
            stride,
            data,
        })
    }

    pub fn tokens(&self) -> usize {
        self.tokens
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }
}

/// The rows of `x` padded to `stride` and held as `precision` wants them, compiled for the
/// widest instruction set this process may use: built for the baseline, quantizing a batch's
/// four tokens for the MLP's down projection took 25 µs, a tenth of the product itself.
fn quantize_rows(precision: Precision, x: &[f32], cols: usize, stride: usize) -> ActivationData {
    #[cfg(target_arch = "x86_64")]
    match Isa::detect() {
        // SAFETY: `Isa::detect()` found AVX-512 F, BW and VL usable by this process.
        Isa::Avx512 => return unsafe { quantize_rows_avx512(precision, x, cols, stride) },
        // SAFETY: `Isa::detect()` found AVX2 and FMA usable by this process.
        Isa::Avx2 => return unsafe { quantize_rows_avx2(precision, x, cols, stride) },
        Isa::Portable => {}
    }
    quantize_rows_body(precision, x, cols, stride)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn quantize_rows_avx512(
    precision: Precision,
    x: &[f32],
    cols: usize,
    stride: usize,
) -> ActivationData {
    quantize_rows_body(precision, x, cols, stride)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_rows_avx2(
    precision: Precision,
    x: &[f32],
    cols: usize,
    stride: usize,
) -> ActivationData {
    quantize_rows_body(precision, x, cols, stride)
}

#[inline(always)]
fn quantize_rows_body(
    precision: Precision,
    x: &[f32],
    cols: usize,
    stride: usize,
) -> ActivationData {
    let tokens = x.len() / cols;
    let rows = x.chunks_exact(cols);
    match precision {
        Precision::F32 => {
            let mut out = vec![0.0; tokens * stride];
            for (dst, row) in out.chunks_exact_mut(stride).zip(rows) {
                dst[..cols].copy_from_slice(row);
            }
            ActivationData::F32(out)
        }
        Precision::Bf16 => {
            let mut out = vec![0; tokens * stride];
            for (dst, row) in out.chunks_exact_mut(stride).zip(rows) {
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = to_bf16(v);
                }
            }
            ActivationData::Bf16(out)
        }
        Precision::Int8 => {
            let mut q = vec![0i8; tokens * stride];
            let mut scales = Vec::with_capacity(tokens);
            let mut sums = Vec::with_capacity(tokens);
            for (dst, row) in q.chunks_exact_mut(stride).zip(rows) {
                let (scale, inv) = scale_of(row);
                scales.push(scale);
                let mut sum = 0i32;
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = quantize(v, inv);
                    sum += i32::from(*d);
                }
                sums.push(sum);
            }
            ActivationData::Int8 { q, scales, sums }
        }
        Precision::Q4 => {
            let mut q = vec![0i8; tokens * stride];
            let mut scales = Vec::with_capacity(tokens);
            let blocks = stride / Q4_BLOCK;
            let mut offsets = vec![0i32; tokens * blocks];
            for ((dst, row), offs) in q
                .chunks_exact_mut(stride)
                .zip(rows)
                .zip(offsets.chunks_exact_mut(blocks))
            {
                let (scale, inv) = scale_of(row);
                scales.push(scale);
                // A block's sum in a register: summed into `offs` in memory, each value
                // waited on the last one's store (a tenth of a prompt's time).
                for ((dst, src), off) in dst
                    .chunks_exact_mut(Q4_BLOCK)
                    .zip(row.chunks(Q4_BLOCK))
                    .zip(offs.iter_mut())
                {
                    let mut sum = 0i32;
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = quantize(v, inv);
                        sum += i32::from(*d);
                    }
                    *off = -8 * sum;
                }
            }
            ActivationData::Q8 { q, scales, offsets }
        }
    }
}

/// One scale per token: the largest magnitude maps to 127.
#[inline(always)]
fn scale_of(row: &[f32]) -> (f32, f32) {
    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = max / 127.0;
    (scale, if scale > 0.0 { 1.0 / scale } else { 0.0 })
}

#[inline(always)]
fn quantize(v: f32, inv: f32) -> i8 {
    crate::round_to_i8(v * inv)
}
