//! The intent model's weights (`models/intent/intent.bin`, written by
//! `models/train_intent.py`) and its forward pass: the mean of the features' embedding rows, a
//! hidden layer with ReLU, and one score per intent. int8 weights with one scale per row, used
//! as stored: a row's products are summed on the int8 values and scaled once (`s·(q·x) + b`),
//! which differs from the training framework's `(q·s)·x + b` only by float rounding.

use thiserror::Error;

use super::features::{bucket_ids_of_words, words};

const MAGIC: &[u8; 4] = b"EIM1";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("not an intent model (bad magic)")]
    Magic,
    #[error("the model file is truncated at {0}")]
    Truncated(&'static str),
    #[error("the model file's shape is inconsistent: {0}")]
    Shape(&'static str),
}

/// One int8 matrix with a scale per row.
struct Rows<'a> {
    values: &'a [u8],
    /// Little-endian f32s, read where used: converting 16,384 of them at load would be most
    /// of the load's work.
    scales: &'a [u8],
    width: usize,
}

impl Rows<'_> {
    fn row(&self, i: usize) -> (&[u8], f32) {
        let start = i * self.width;
        let scale = &self.scales[4 * i..4 * i + 4];
        (
            &self.values[start..start + self.width],
            f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]),
        )
    }

    /// `out[i] = scale_i · (q_i · x) + bias[i]`: the int8 rows are used as they are stored,
    /// so that loading the model costs next to nothing (Spin instantiates the component, and
    /// so loads the model, for every request). Measured natively: load 6 µs
    /// instead of 196 µs with the layers widened to f32 at load, for 13 µs more per message.
    fn apply(&self, x: &[f32], bias: &[f32], out: &mut Vec<f32>) {
        out.clear();
        for (i, b) in bias.iter().enumerate() {
            let (row, scale) = self.row(i);
            out.push(dot(row, x) * scale + b);
        }
    }
}

/// A dot product in eight independent sums, so the compiler keeps them in vector registers
/// (one running sum must be added in order and stays scalar).
fn dot(w: &[u8], x: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0f32; LANES];
    let (ws, xs) = (w.chunks_exact(LANES), x.chunks_exact(LANES));
    let tail: f32 = ws
        .remainder()
        .iter()
        .zip(xs.remainder())
        .map(|(a, b)| f32::from(*a as i8) * b)
        .sum();
    for (wc, xc) in ws.zip(xs) {
        // Widened to f32 first, as one array: the loop below then vectorizes.
        let widened: [f32; LANES] = std::array::from_fn(|lane| f32::from(wc[lane] as i8));
        for ((sum, w), x) in sums.iter_mut().zip(widened).zip(xc) {
            *sum += w * x;
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// A parsed model borrowing its weights from the embedded bytes.
pub struct IntentModel<'a> {
    buckets: u32,
    embedding: Rows<'a>,
    hidden: Rows<'a>,
    hidden_bias: Vec<f32>,
    output: Rows<'a>,
    output_bias: Vec<f32>,
    labels: Vec<&'a str>,
    oos: usize,
    threshold: f32,
}

/// What the model makes of a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction<'a> {
    /// The top intent, or `oos` below the model's threshold.
    pub intent: &'a str,
    /// The top intent before the threshold.
    pub argmax: &'a str,
    /// Its softmax probability.
    pub confidence: f32,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ModelError> {
        let end = self.at.checked_add(n).ok_or(ModelError::Truncated(what))?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(ModelError::Truncated(what))?;
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ModelError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f32s(&mut self, n: usize, what: &'static str) -> Result<Vec<f32>, ModelError> {
        let bytes = self.take(n.checked_mul(4).ok_or(ModelError::Truncated(what))?, what)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn rows(
        &mut self,
        rows: usize,
        width: usize,
        what: &'static str,
    ) -> Result<Rows<'a>, ModelError> {
        let values = self.take(
            rows.checked_mul(width).ok_or(ModelError::Truncated(what))?,
            what,
        )?;
        let scales = self.take(
            rows.checked_mul(4).ok_or(ModelError::Truncated(what))?,
            what,
        )?;
        Ok(Rows {
            values,
            scales,
            width,
        })
    }
}

impl<'a> IntentModel<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ModelError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4, "magic")? != MAGIC {
            return Err(ModelError::Magic);
        }
        let buckets = r.u32("header")?;
        let dim = r.u32("header")? as usize;
        let hidden = r.u32("header")? as usize;
        let classes = r.u32("header")? as usize;
        let oos = r.u32("header")? as usize;
        let threshold = r.f32s(1, "header")?[0];
        if buckets == 0 || dim == 0 || hidden == 0 || oos >= classes {
            return Err(ModelError::Shape("empty layer or oos out of range"));
        }
        let embedding = r.rows(buckets as usize, dim, "embedding")?;
        let hidden_rows = r.rows(hidden, dim, "hidden layer")?;
        let output = r.rows(classes, hidden, "output layer")?;
        let hidden_bias = r.f32s(hidden, "hidden bias")?;
        let output_bias = r.f32s(classes, "output bias")?;
        let mut labels = Vec::with_capacity(classes);
        for _ in 0..classes {
            let len = r.take(1, "labels")?[0] as usize;
            let name = std::str::from_utf8(r.take(len, "labels")?)
                .map_err(|_| ModelError::Shape("a label is not UTF-8"))?;
            labels.push(name);
        }
        if r.at != bytes.len() {
            return Err(ModelError::Shape("bytes after the labels"));
        }
        Ok(Self {
            buckets,
            embedding,
            hidden: hidden_rows,
            hidden_bias,
            output,
            output_bias,
            labels,
            oos,
            threshold,
        })
    }

    pub fn labels(&self) -> &[&'a str] {
        &self.labels
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn predict(&self, message: &str) -> Prediction<'a> {
        self.predict_words(&words(message))
    }

    /// [`Self::predict`] of a message already split by [`words`].
    pub fn predict_words(&self, words: &[String]) -> Prediction<'a> {
        let mut ids = Vec::with_capacity(128);
        bucket_ids_of_words(words, self.buckets, &mut ids);
        let dim = self.embedding.width;
        let mut pooled = vec![0f32; dim];
        for id in &ids {
            let (row, scale) = self.embedding.row(*id as usize);
            for (acc, q) in pooled.iter_mut().zip(row) {
                *acc += f32::from(*q as i8) * scale;
            }
        }
        let n = ids.len() as f32;
        pooled.iter_mut().for_each(|v| *v /= n);
        let mut hidden = Vec::with_capacity(self.hidden_bias.len());
        self.hidden.apply(&pooled, &self.hidden_bias, &mut hidden);
        hidden.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut logits = Vec::with_capacity(self.output_bias.len());
        self.output.apply(&hidden, &self.output_bias, &mut logits);
        let (best, top) =
            logits
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, v)| {
                    if *v > bv { (i, *v) } else { (bi, bv) }
                });
        let total: f32 = logits.iter().map(|v| (v - top).exp()).sum();
        let confidence = 1.0 / total;
        let argmax = self.labels[best];
        let intent = if confidence < self.threshold {
            self.labels[self.oos]
        } else {
            argmax
        };
        Prediction {
            intent,
            argmax,
            confidence,
        }
    }
}
