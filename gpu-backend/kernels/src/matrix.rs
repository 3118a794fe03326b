//! A weight matrix in one of the precisions, quantized row by row as it is filled (so a loader
//! never holds a whole fp32 copy of a large matrix), and read back row by row (an embedding).

use crate::{COLUMN_ALIGN, KernelError, Precision, Q4_BLOCK, Q4_GROUP, round_to_i8};

/// `rows` × `cols` weights; each row padded with zeros to `stride` columns.
pub struct Matrix {
    rows: usize,
    cols: usize,
    stride: usize,
    pub(crate) weights: Weights,
}

pub(crate) enum Weights {
    F32(Vec<f32>),
    /// The upper half of each fp32 (round to nearest even).
    Bf16(Vec<u16>),
    /// `w ≈ (u - 128) * scale[row]`, held as unsigned bytes `u` (`vpdpbusd` multiplies
    /// unsigned by signed: the activations are the signed side, so that they can be broadcast
    /// straight from memory, and each token's `128 * sum` comes back off). Rows are stored in
    /// groups of [`Q4_GROUP`] (the last padded with zero rows): per four columns, 64 bytes
    /// holding those columns of the group's 16 rows, 4 bytes a row (see [`int8_at`]). One
    /// `vpdpbusd` then adds four columns to all 16 rows' sums, and the matrix is one
    /// sequential stream.
    Int8 {
        q: Vec<u8>,
        scales: Vec<f32>,
    },
    /// `w ≈ (nibble - 8) * scale[block]`, blocks of 32 along the row. Rows are stored in groups
    /// of [`Q4_GROUP`] (the last one padded with zero rows), and a group's block is one tile of
    /// [`Q4_TILE_BYTES`] (see [`q4_nibble_at`]) with its 16 scales side by side: the whole
    /// matrix is read as one sequential stream.
    Q4 {
        q: Vec<u8>,
        scales: Vec<f32>,
    },
}

impl Matrix {
    /// A matrix of zeros, to be filled with [`Matrix::set_rows`].
    pub fn zeros(precision: Precision, rows: usize, cols: usize) -> Self {
        let stride = cols.div_ceil(COLUMN_ALIGN) * COLUMN_ALIGN;
        let n = rows * stride;
        let weights = match precision {
            Precision::F32 => Weights::F32(vec![0.0; n]),
            Precision::Bf16 => Weights::Bf16(vec![0; n]),
            Precision::Int8 => {
                let padded = rows.div_ceil(Q4_GROUP) * Q4_GROUP;
                Weights::Int8 {
                    q: vec![128; padded * stride],
                    scales: vec![0.0; padded],
                }
            }
            Precision::Q4 => {
                let tiles = rows.div_ceil(Q4_GROUP) * (stride / Q4_BLOCK);
                Weights::Q4 {
                    q: vec![0x88; tiles * Q4_TILE_BYTES],
                    scales: vec![0.0; tiles * Q4_GROUP],
                }
            }
        };
        Self {
            rows,
            cols,
            stride,
            weights,
        }
    }

    /// The matrix of row-major fp32 `data` (`rows * cols` values) at `precision`.
    pub fn from_f32(
        precision: Precision,
        rows: usize,
        cols: usize,
        data: &[f32],
    ) -> Result<Self, KernelError> {
        let mut m = Self::zeros(precision, rows, cols);
        m.set_rows(0, data)?;
        Ok(m)
    }

    /// Quantizes whole rows of fp32 `data` into rows `first..`.
    pub fn set_rows(&mut self, first: usize, data: &[f32]) -> Result<(), KernelError> {
        if self.cols == 0 || !data.len().is_multiple_of(self.cols) {
            return Err(KernelError::Shape {
                got: data.len(),
                cols: self.cols,
            });
        }
        let count = data.len() / self.cols;
        if first + count > self.rows {
            return Err(KernelError::Rows {
                start: first,
                end: first + count,
                rows: self.rows,
            });
        }
        let (stride, cols) = (self.stride, self.cols);
        for (i, row) in data.chunks_exact(cols).enumerate() {
            let r = first + i;
            let span = r * stride..r * stride + cols;
            match &mut self.weights {
                Weights::F32(w) => w[span].copy_from_slice(row),
                Weights::Bf16(w) => {
                    for (dst, &v) in w[span].iter_mut().zip(row) {
                        *dst = to_bf16(v);
                    }
                }
                Weights::Int8 { q, scales } => {
                    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let scale = max / 127.0;
                    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
                    for (col, &v) in row.iter().enumerate() {
                        q[int8_at(stride, r, col)] = (i16::from(round_to_i8(v * inv)) + 128) as u8;
                    }
                    scales[r] = scale;
                }
                Weights::Q4 { q, scales } => {
                    let blocks = stride / Q4_BLOCK;
                    for b in 0..blocks {
                        let lo = (b * Q4_BLOCK).min(cols);
                        let hi = ((b + 1) * Q4_BLOCK).min(cols);
                        let block = &row[lo..hi];
                        // llama.cpp's Q4_0: the value of largest magnitude maps to -8, which
                        // uses the one extra negative step.
                        let extreme = block
                            .iter()
                            .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                        let scale = extreme / -8.0;
                        let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
                        scales[q4_scale_at(blocks, r, b)] = scale;
                        for c in 0..Q4_BLOCK {
                            let col = b * Q4_BLOCK + c;
                            let v = block.get(c).copied().unwrap_or(0.0);
                            let nibble = (i32::from(round_to_i8(v * inv)) + 8).clamp(0, 15) as u8;
                            set_nibble(q, blocks, r, col, nibble);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Row `r` as fp32 (dequantized) into `out[..cols]`.
    pub fn row_into(&self, r: usize, out: &mut [f32]) -> Result<(), KernelError> {
        if r >= self.rows {
            return Err(KernelError::Rows {
                start: r,
                end: r + 1,
                rows: self.rows,
            });
        }
        if out.len() < self.cols {
            return Err(KernelError::Output {
                got: out.len(),
                want: self.cols,
            });
        }
        let span = r * self.stride..r * self.stride + self.cols;
        let out = &mut out[..self.cols];
        match &self.weights {
            Weights::F32(w) => out.copy_from_slice(&w[span]),
            Weights::Bf16(w) => {
                for (dst, &v) in out.iter_mut().zip(&w[span]) {
                    *dst = from_bf16(v);
                }
            }
            Weights::Int8 { q, scales, .. } => {
                for (col, dst) in out.iter_mut().enumerate() {
                    *dst = (f32::from(q[int8_at(self.stride, r, col)]) - 128.0) * scales[r];
                }
            }
            Weights::Q4 { q, scales } => {
                let blocks = self.stride / Q4_BLOCK;
                for (col, dst) in out.iter_mut().enumerate() {
                    let nibble = get_nibble(q, blocks, r, col);
                    *dst =
                        (f32::from(nibble) - 8.0) * scales[q4_scale_at(blocks, r, col / Q4_BLOCK)];
                }
            }
        }
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    pub fn precision(&self) -> Precision {
        match self.weights {
            Weights::F32(_) => Precision::F32,
            Weights::Bf16(_) => Precision::Bf16,
            Weights::Int8 { .. } => Precision::Int8,
            Weights::Q4 { .. } => Precision::Q4,
        }
    }

    /// Bytes the weights and their scales take in memory.
    pub fn bytes(&self) -> usize {
        match &self.weights {
            Weights::F32(w) => w.len() * 4,
            Weights::Bf16(w) => w.len() * 2,
            Weights::Int8 { q, scales } => q.len() + scales.len() * 4,
            Weights::Q4 { q, scales } => q.len() + scales.len() * 4,
        }
    }
}

/// fp32 → bf16, rounding to nearest even (NaN kept a NaN).
#[inline(always)]
pub(crate) fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

pub(crate) fn from_bf16(v: u16) -> f32 {
    f32::from_bits(u32::from(v) << 16)
}

/// Where row `r`'s column `col` sits in an int8 matrix of `stride` columns: in its group, the
/// 64 bytes of its four columns, the 4-byte lane of its row.
pub(crate) fn int8_at(stride: usize, r: usize, col: usize) -> usize {
    let (group, lane) = (r / Q4_GROUP, r % Q4_GROUP);
    group * Q4_GROUP * stride + (col / 4) * 64 + lane * 4 + col % 4
}

/// Bytes of one 4-bit tile: a group's 16 rows × one block's 32 columns.
pub(crate) const Q4_TILE_BYTES: usize = Q4_GROUP * Q4_BLOCK / 2;

/// Where row `r`'s column `col` sits in a 4-bit matrix of `blocks` blocks a row: its byte,
/// and whether it is the high nibble. A tile is four 64-byte loads; load `l`'s 4-byte lane
/// `i` holds row `i` of the group, its low nibbles columns `4l..4l + 4` of the block and its
/// high nibbles columns `16 + 4l..16 + 4l + 4`. So each of the eight registers a tile unpacks
/// into holds four columns of all 16 rows, and `vpdpbusd` sums a row's block within its lane.
pub(crate) fn q4_nibble_at(blocks: usize, r: usize, col: usize) -> (usize, bool) {
    let (group, lane) = (r / Q4_GROUP, r % Q4_GROUP);
    let (block, c) = (col / Q4_BLOCK, col % Q4_BLOCK);
    let (four, byte) = (c / 4, c % 4);
    let tile = (group * blocks + block) * Q4_TILE_BYTES;
    (tile + (four % 4) * 64 + lane * 4 + byte, four >= 4)
}

/// Where the scale of row `r`'s block `block` sits: a tile's 16 scales are side by side.
pub(crate) fn q4_scale_at(blocks: usize, r: usize, block: usize) -> usize {
    ((r / Q4_GROUP) * blocks + block) * Q4_GROUP + r % Q4_GROUP
}

pub(crate) fn get_nibble(q: &[u8], blocks: usize, r: usize, col: usize) -> u8 {
    let (byte, high) = q4_nibble_at(blocks, r, col);
    if high { q[byte] >> 4 } else { q[byte] & 0x0f }
}

fn set_nibble(q: &mut [u8], blocks: usize, r: usize, col: usize, nibble: u8) {
    let (byte, high) = q4_nibble_at(blocks, r, col);
    q[byte] = if high {
        (q[byte] & 0x0f) | (nibble << 4)
    } else {
        (q[byte] & 0xf0) | (nibble & 0x0f)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(from_bf16(to_bf16(1.0)), 1.0);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        // 1 + 2^-8 lies halfway between two bf16 values: to the even one, 1.0.
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }

    #[test]
    fn rows_come_back_within_half_a_step() {
        let data: Vec<f32> = (0..3 * 100)
            .map(|i| ((i * 37) % 23) as f32 - 11.0)
            .collect();
        for precision in Precision::ALL {
            let m = Matrix::from_f32(precision, 3, 100, &data).unwrap();
            let mut row = vec![0.0; 100];
            for r in 0..3 {
                m.row_into(r, &mut row).unwrap();
                let want = &data[r * 100..(r + 1) * 100];
                let step = match precision {
                    Precision::F32 => 0.0,
                    Precision::Bf16 => 11.0 / 128.0,
                    Precision::Int8 => 11.0 / 127.0,
                    // Q4_0's rounding: when a block's extremes are opposite and equal, the
                    // positive one is clipped a whole step.
                    Precision::Q4 => 2.0 * 11.0 / 8.0,
                };
                for (g, w) in row.iter().zip(want) {
                    assert!(
                        (g - w).abs() <= step / 2.0 + 1e-6,
                        "{precision}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_partial_row_is_refused() {
        let mut m = Matrix::zeros(Precision::Int8, 2, 10);
        assert!(m.set_rows(0, &[1.0; 15]).is_err());
        assert!(m.set_rows(1, &[1.0; 20]).is_err());
        assert!(m.set_rows(1, &[1.0; 10]).is_ok());
    }

    #[test]
    fn q4_nibbles_fill_each_tile_once() {
        let blocks = 3;
        let mut seen = std::collections::HashSet::new();
        for r in 0..2 * Q4_GROUP {
            for col in 0..blocks * Q4_BLOCK {
                let (byte, high) = q4_nibble_at(blocks, r, col);
                assert!(byte < 2 * blocks * Q4_TILE_BYTES);
                assert!(seen.insert((byte, high)), "row {r} column {col}");
            }
        }
        // Row 1's first four columns are lane 1's low nibbles; columns 16.. the high ones.
        assert_eq!(q4_nibble_at(blocks, 1, 0), (4, false));
        assert_eq!(q4_nibble_at(blocks, 1, 17), (5, true));
        assert_eq!(q4_nibble_at(blocks, 0, 4), (64, false));
        assert_eq!(
            q4_nibble_at(blocks, Q4_GROUP, 0),
            (blocks * Q4_TILE_BYTES, false)
        );
    }
}
