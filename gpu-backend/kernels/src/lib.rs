//! Matrix products for the CPU engine: a weight matrix (one row per output feature) times a
//! batch of activation vectors (one per token), with the weights held as fp32, bf16, int8 with
//! a scale per row, or 4-bit in blocks of 32 with a scale per block (like llama.cpp's Q4_0).
//!
//! Decoding a model of half a billion weights reads every weight once per token, so the speed
//! is the memory the weights take: int8 reads a quarter of fp32, 4-bit about a sixth. The
//! activations are quantized too (int8 per token), so the inner loops are integer dot products
//! (`vpdpbusd` on AVX-512 VNNI). Several tokens — a prompt, or one token of each sequence in a
//! batch — share one pass over the weights.
//!
//! Each kernel exists in a portable form (the reference) and, where the CPU has them, in
//! hand-written AVX2 (`vpmaddubsw` for the integer products) and AVX-512. Which one runs is
//! decided once at run time from what the process may really use ([`Isa::detect`]):
//! `is_x86_feature_detected!` checks both CPUID and that the OS saves the registers.

mod activations;
mod attention;
mod elementwise;
mod matrix;
mod portable;
#[cfg(target_arch = "x86_64")]
#[macro_use]
mod x86_tiles;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_attention;
#[cfg(target_arch = "x86_64")]
mod x86_avx2;

use std::ops::Range;

pub use activations::Activations;
pub use attention::{
    AttentionQuery, Bf16, HeadCache, KvElement, KvKind, alibi_attention, alibi_attention_reference,
};
pub use elementwise::gelu;
pub use matrix::Matrix;
use thiserror::Error;

/// Columns are padded to a multiple of this (two 512-bit registers of int8: one 64-byte load
/// of 4-bit weights).
pub const COLUMN_ALIGN: usize = 128;
/// 4-bit weights share one scale per block of this many.
pub const Q4_BLOCK: usize = 32;
/// 4-bit rows are stored interleaved in groups of this many (one 512-bit lane of 32 bits a
/// row), so that one integer sum per lane covers a whole block of one row.
pub const Q4_GROUP: usize = 16;

/// How weights are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    F32,
    Bf16,
    Int8,
    Q4,
}

impl Precision {
    pub const ALL: [Precision; 4] = [Self::F32, Self::Bf16, Self::Int8, Self::Q4];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "fp32",
            Self::Bf16 => "bf16",
            Self::Int8 => "int8",
            Self::Q4 => "q4",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Some(Self::F32),
            "bf16" | "bfloat16" => Some(Self::Bf16),
            "int8" | "q8" => Some(Self::Int8),
            "q4" | "int4" | "4bit" => Some(Self::Q4),
            _ => None,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The instruction sets a kernel may be written for, from the least to the most capable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust for the target's baseline.
    Portable,
    /// Hand-written AVX2 and FMA (x86-64 CPUs without AVX-512).
    Avx2,
    /// Hand-written AVX-512 (F, BW, VL, VNNI; BF16 for bf16 weights where present).
    Avx512,
}

impl Isa {
    /// The most capable set this process may use. An instruction the OS or VM refuses kills
    /// the process (SIGILL), so this asks the CPU and the OS, not the CPUID flags alone.
    pub fn detect() -> Self {
        *DETECTED.get_or_init(detect)
    }

    /// Every set usable here, least capable first (what the property tests compare).
    pub fn available() -> Vec<Self> {
        [Self::Portable, Self::Avx2, Self::Avx512]
            .into_iter()
            .filter(|isa| *isa <= Self::detect())
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }
}

/// Whether bf16 dot products run natively (AVX512-BF16); elsewhere bf16 weights are widened
/// to fp32 in the loop, which still reads half the memory of fp32.
pub fn native_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        Isa::detect() == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

static DETECTED: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        // An operator can hold the engine to a lesser set (e.g. to compare, or on a VM whose
        // flags promise more than it runs).
        let cap = std::env::var("CPU_KERNELS_MAX_ISA").ok();
        let allowed = |isa: &str| {
            let order = ["portable", "avx2", "avx512"];
            let want = order.iter().position(|i| *i == isa).unwrap_or(0);
            cap.as_deref()
                .and_then(|c| order.iter().position(|i| *i == c))
                .is_none_or(|max| want <= max)
        };
        if allowed("avx512")
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512vl")
            && has!("avx512vnni")
            && has!("avx2")
            && has!("fma")
        {
            return Isa::Avx512;
        }
        if allowed("avx2") && has!("avx2") && has!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KernelError {
    #[error("activations have {got} columns, the matrix {want}")]
    Columns { got: usize, want: usize },
    #[error("activations are prepared for {got}, the matrix holds {want}")]
    Precision { got: Precision, want: Precision },
    #[error("rows {start}..{end} are outside the matrix's {rows}")]
    Rows {
        start: usize,
        end: usize,
        rows: usize,
    },
    #[error("the output holds {got} values, {want} are needed")]
    Output { got: usize, want: usize },
    #[error("{got} values do not fill whole rows of {cols}")]
    Shape { got: usize, cols: usize },
}

/// `out[t * rows.len() + (r - rows.start)] = dot(matrix row r, activation t)` for every row in
/// `rows` and every token, with the kernel of `isa` (capped at what is detected). Threads can
/// each take a range of rows into a buffer of their own.
pub fn gemm(
    matrix: &Matrix,
    x: &Activations,
    rows: Range<usize>,
    out: &mut [f32],
    isa: Isa,
) -> Result<(), KernelError> {
    let want = rows.len() * x.tokens();
    if out.len() != want {
        return Err(KernelError::Output {
            got: out.len(),
            want,
        });
    }
    let mut per_token: Vec<&mut [f32]> = if rows.is_empty() {
        (0..x.tokens()).map(|_| <&mut [f32]>::default()).collect()
    } else {
        out.chunks_mut(rows.len()).collect()
    };
    gemm_into(matrix, x, rows, &mut per_token, isa)
}

/// `out[t][r - rows.start] = dot(matrix row r, activation t)`: one slice per token, each
/// `rows.len()` long, so that threads taking bands of rows write straight into a
/// `[token][row]` result (copying a batch's logits into place cost a twentieth of its step).
pub fn gemm_into(
    matrix: &Matrix,
    x: &Activations,
    rows: Range<usize>,
    out: &mut [&mut [f32]],
    isa: Isa,
) -> Result<(), KernelError> {
    if x.cols() != matrix.cols() {
        return Err(KernelError::Columns {
            got: x.cols(),
            want: matrix.cols(),
        });
    }
    if x.precision() != matrix.precision() {
        return Err(KernelError::Precision {
            got: x.precision(),
            want: matrix.precision(),
        });
    }
    if rows.start > rows.end || rows.end > matrix.rows() {
        return Err(KernelError::Rows {
            start: rows.start,
            end: rows.end,
            rows: matrix.rows(),
        });
    }
    let got = out.iter().map(|o| o.len()).sum::<usize>();
    let want = rows.len() * x.tokens();
    if out.len() != x.tokens() || out.iter().any(|o| o.len() != rows.len()) {
        return Err(KernelError::Output { got, want });
    }
    let isa = isa.min(Isa::detect());
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        x86::gemm(matrix, x, rows, out);
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 {
        x86_avx2::gemm(matrix, x, rows, out);
        return Ok(());
    }
    portable::gemm(matrix, x, rows, out);
    Ok(())
}

/// Rounds half away from zero (as `f32::round`) and clamps to ±127 (NaN to -127), without a
/// call into libm (the baseline x86-64 target has no rounding instruction; the cast truncates
/// inline). The unchecked cast lets loops of it vectorize: a saturating `as` kept them scalar.
#[inline(always)]
pub(crate) fn round_to_i8(x: f32) -> i8 {
    let shifted = if x >= 0.0 { x + 0.5 } else { x - 0.5 };
    // `max` and `min` return the number when the other side is NaN: never NaN from here
    // (`clamp` would keep a NaN, which the unchecked cast must not see).
    #[allow(clippy::manual_clamp)]
    let clamped = shifted.max(-127.0).min(127.0);
    // SAFETY: `clamped` is a number within ±127, so truncating it fits an i32.
    (unsafe { clamped.to_int_unchecked::<i32>() }) as i8
}

#[cfg(test)]
mod tests {
    use super::round_to_i8;

    #[test]
    fn rounds_half_away_from_zero_and_clamps() {
        for (x, want) in [
            (0.49, 0),
            (0.5, 1),
            (-0.5, -1),
            (-0.49, 0),
            (2.5, 3),
            (-2.5, -3),
            (126.6, 127),
            (1e9, 127),
            (-1e9, -127),
            (f32::INFINITY, 127),
            (f32::NEG_INFINITY, -127),
            (f32::NAN, -127),
        ] {
            assert_eq!(round_to_i8(x), want, "{x}");
        }
        for i in -2540..=2540 {
            let x = i as f32 / 20.0;
            assert_eq!(i32::from(round_to_i8(x)), x.round() as i32, "{x}");
        }
    }
}
