//! BLOOM's forward pass over a Hugging Face checkpoint (`config.json`, safetensors), with the
//! weights of every matrix — the tied embedding / LM head included, one copy — held at the
//! operator's precision ([`cpu_kernels`]). One step runs the new tokens of any number of
//! sequences together, so that one pass over the weights serves a whole batch.

use std::path::Path;
use std::time::Instant;

use cpu_kernels::{
    Activations, AttentionQuery, Bf16, HeadCache, Isa, KvElement, Matrix, Precision, Q4_GROUP,
    alibi_attention, gemm_into,
};
use rayon::prelude::*;
use serde::Deserialize;
use thiserror::Error;

use super::CpuEngineError;
use super::checkpoint::Checkpoint;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("a step needs at least one token")]
    NoTokens,
    #[error("token id {0} is outside the vocabulary")]
    UnknownToken(u32),
    #[error("the context holds {len} tokens, the model takes at most {max}")]
    TooLong { len: usize, max: usize },
    #[error(transparent)]
    Kernel(#[from] cpu_kernels::KernelError),
}

/// `config.json` of a BLOOM checkpoint (transformers' `BloomConfig`).
#[derive(Debug, Deserialize)]
struct BloomConfig {
    #[serde(alias = "n_embed")]
    hidden_size: usize,
    n_layer: usize,
    #[serde(alias = "num_attention_heads")]
    n_head: usize,
    vocab_size: usize,
    #[serde(default = "default_epsilon")]
    layer_norm_epsilon: f32,
    #[serde(default)]
    apply_residual_connection_post_layernorm: bool,
}

fn default_epsilon() -> f32 {
    1e-5
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Linear {
    weight: Matrix,
    bias: Vec<f32>,
}

struct Layer {
    input_norm: Norm,
    qkv: Linear,
    dense: Linear,
    post_attention_norm: Norm,
    up: Linear,
    down: Linear,
}

pub struct Bloom {
    /// The word embeddings, also the LM head (BLOOM ties them).
    embeddings: Matrix,
    embeddings_norm: Norm,
    layers: Vec<Layer>,
    final_norm: Norm,
    slopes: Vec<f32>,
    hidden: usize,
    heads: usize,
    epsilon: f32,
    max_len: usize,
    precision: Precision,
    isa: Isa,
    pool: rayon::ThreadPool,
}

/// The keys and values of every layer for one sequence's tokens so far: per layer, per head,
/// `[position][head_dim]`. One head's history is contiguous so that attention streams it; laid
/// out `[position][hidden]`, each position of a head sat on its own 4 KB page and a batch's
/// attention waited on a cache miss per position.
pub struct KvCache {
    layers: Vec<Vec<HeadHistory>>,
    len: usize,
}

/// One head's keys and values: fp32 at fp32 precision (whose logits are checked against
/// transformers'), bf16 at the others, halving what a step's attention reads (a batch of four
/// spent a sixth of its step there, waiting on memory).
enum HeadHistory {
    F32(HeadValues<f32>),
    Bf16(HeadValues<Bf16>),
}

#[derive(Default)]
struct HeadValues<E> {
    keys: Vec<E>,
    values: Vec<E>,
}

impl<E: KvElement> HeadValues<E> {
    fn push(&mut self, keys: &[f32], values: &[f32]) {
        self.keys.extend(keys.iter().map(|v| E::from_f32(*v)));
        self.values.extend(values.iter().map(|v| E::from_f32(*v)));
    }

    /// The context vectors `[token][head_dim]` into `out` for `queries` of `head_dim` values
    /// (one per token of the step: the first sees `past + 1` positions, each next one more).
    fn attend<'q>(
        &self,
        queries: impl Iterator<Item = &'q [f32]>,
        past: usize,
        (head_dim, scale, slope): (usize, f32, f32),
        out: &mut [f32],
    ) {
        let mut scores = Vec::new();
        let cache = HeadCache {
            keys: &self.keys,
            values: &self.values,
            stride: head_dim,
            offset: 0,
        };
        for (t, (q, out)) in queries.zip(out.chunks_exact_mut(head_dim)).enumerate() {
            let query = AttentionQuery {
                q,
                cache,
                visible: past + t + 1,
                scale,
                slope,
            };
            alibi_attention(&query, &mut scores, out);
        }
    }
}

impl KvCache {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Which positions of a step's tokens get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// The last one: what the next token is drawn from.
    Last,
    /// Every one (perplexity).
    All,
}

/// One sequence's part of a step: its new tokens after those in its cache.
pub struct SequenceStep<'a> {
    pub ids: &'a [u32],
    pub cache: &'a mut KvCache,
    pub logits: Logits,
}

impl Bloom {
    /// Loads `config.json` and the safetensors of a BLOOM checkpoint at `precision`.
    pub fn load(
        dir: &Path,
        precision: Precision,
        threads: usize,
        max_len: usize,
    ) -> Result<Self, CpuEngineError> {
        let started = Instant::now();
        let malformed = |reason: String| CpuEngineError::Malformed {
            path: dir.display().to_string(),
            reason,
        };
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|_| CpuEngineError::Missing {
            path: config_path.display().to_string(),
            what: "config.json",
        })?;
        let config: BloomConfig = serde_json::from_str(&text)
            .map_err(|e| malformed(format!("config.json is not a BLOOM config: {e}")))?;
        if config.apply_residual_connection_post_layernorm {
            return Err(malformed(
                "apply_residual_connection_post_layernorm=true is not supported (bloom-560m: false)"
                    .into(),
            ));
        }
        let (h, layers_n, heads) = (config.hidden_size, config.n_layer, config.n_head);
        if heads == 0 || h % heads != 0 || layers_n == 0 {
            return Err(malformed(format!(
                "hidden size {h} does not split into {heads} heads"
            )));
        }
        let checkpoint = Checkpoint::open(dir).map_err(|reason| {
            if reason.contains("not found") {
                CpuEngineError::Missing {
                    path: dir.join("model.safetensors").display().to_string(),
                    what: "model.safetensors",
                }
            } else {
                malformed(reason)
            }
        })?;
        let vocab = checkpoint
            .shape("word_embeddings.weight")
            .and_then(|s| s.first().copied())
            .unwrap_or(config.vocab_size);
        let norm = |name: &str| -> Result<Norm, CpuEngineError> {
            Ok(Norm {
                weight: checkpoint
                    .vector(&format!("{name}.weight"), h)
                    .map_err(malformed)?,
                bias: checkpoint
                    .vector(&format!("{name}.bias"), h)
                    .map_err(malformed)?,
            })
        };
        let linear = |name: &str, rows: usize, cols: usize| -> Result<Linear, CpuEngineError> {
            Ok(Linear {
                weight: checkpoint
                    .matrix(&format!("{name}.weight"), rows, cols, precision)
                    .map_err(malformed)?,
                bias: checkpoint
                    .vector(&format!("{name}.bias"), rows)
                    .map_err(malformed)?,
            })
        };
        let embeddings = checkpoint
            .matrix("word_embeddings.weight", vocab, h, precision)
            .map_err(malformed)?;
        let mut layers = Vec::with_capacity(layers_n);
        for i in 0..layers_n {
            let p = format!("h.{i}");
            layers.push(Layer {
                input_norm: norm(&format!("{p}.input_layernorm"))?,
                qkv: linear(&format!("{p}.self_attention.query_key_value"), 3 * h, h)?,
                dense: linear(&format!("{p}.self_attention.dense"), h, h)?,
                post_attention_norm: norm(&format!("{p}.post_attention_layernorm"))?,
                up: linear(&format!("{p}.mlp.dense_h_to_4h"), 4 * h, h)?,
                down: linear(&format!("{p}.mlp.dense_4h_to_h"), h, 4 * h)?,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("cpu-engine-{i}"))
            .build()
            .map_err(|e| malformed(format!("threads: {e}")))?;
        let model = Self {
            embeddings_norm: norm("word_embeddings_layernorm")?,
            final_norm: norm("ln_f")?,
            embeddings,
            layers,
            slopes: alibi_slopes(heads),
            hidden: h,
            heads,
            epsilon: config.layer_norm_epsilon,
            max_len,
            precision,
            isa: Isa::detect(),
            pool,
        };
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            layers = layers_n,
            heads,
            hidden = h,
            vocab,
            precision = %precision,
            isa = model.isa.as_str(),
            native_bf16 = cpu_kernels::native_bf16(),
            weights_mb = model.weight_bytes() / 1_000_000,
            "cpu engine: model loaded"
        );
        Ok(model)
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Tokens a sequence may hold.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn vocab(&self) -> usize {
        self.embeddings.rows()
    }

    /// Bytes of weights held (what one decoded token reads).
    pub fn weight_bytes(&self) -> usize {
        self.embeddings.bytes()
            + self
                .layers
                .iter()
                .map(|l| {
                    l.qkv.weight.bytes()
                        + l.dense.weight.bytes()
                        + l.up.weight.bytes()
                        + l.down.weight.bytes()
                })
                .sum::<usize>()
    }

    pub fn empty_cache(&self) -> KvCache {
        KvCache {
            layers: (0..self.layers.len())
                .map(|_| {
                    (0..self.heads)
                        .map(|_| match self.precision {
                            Precision::F32 => HeadHistory::F32(HeadValues::default()),
                            _ => HeadHistory::Bf16(HeadValues::default()),
                        })
                        .collect()
                })
                .collect(),
            len: 0,
        }
    }

    /// Runs `ids` after the tokens in `cache`: the next token's logits, and the grown cache.
    pub fn step(&self, ids: &[u32], mut cache: KvCache) -> Result<(Vec<f32>, KvCache), ModelError> {
        let mut out = self.forward(&mut [SequenceStep {
            ids,
            cache: &mut cache,
            logits: Logits::Last,
        }])?;
        Ok((out.pop().unwrap_or_default(), cache))
    }

    /// One step of every sequence together: per sequence, the logits it asked for
    /// (`vocab` values per position, positions in order).
    pub fn forward(&self, seqs: &mut [SequenceStep<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.pool.install(|| self.forward_here(seqs))
    }

    fn forward_here(&self, seqs: &mut [SequenceStep<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let h = self.hidden;
        let mut total = 0;
        for s in seqs.iter() {
            if s.ids.is_empty() {
                return Err(ModelError::NoTokens);
            }
            let len = s.cache.len + s.ids.len();
            if len > self.max_len {
                return Err(ModelError::TooLong {
                    len,
                    max: self.max_len,
                });
            }
            total += s.ids.len();
        }
        let mut x = vec![0.0f32; total * h];
        for (id, row) in seqs
            .iter()
            .flat_map(|s| s.ids.iter())
            .zip(x.chunks_exact_mut(h))
        {
            if *id as usize >= self.vocab() {
                return Err(ModelError::UnknownToken(*id));
            }
            self.embeddings.row_into(*id as usize, row)?;
        }
        layer_norm(&mut x, &self.embeddings_norm, self.epsilon);
        for (li, layer) in self.layers.iter().enumerate() {
            let mut normed = x.clone();
            layer_norm(&mut normed, &layer.input_norm, self.epsilon);
            let qkv = self.linear(&layer.qkv, &normed, total)?;
            let context = self.attention(li, &qkv, seqs);
            let attended = self.linear(&layer.dense, &context, total)?;
            add(&mut x, &attended);
            let mut normed = x.clone();
            layer_norm(&mut normed, &layer.post_attention_norm, self.epsilon);
            let mut up = self.linear(&layer.up, &normed, total)?;
            up.par_chunks_mut(PARALLEL_VALUES)
                .for_each(cpu_kernels::gelu);
            let down = self.linear(&layer.down, &up, total)?;
            add(&mut x, &down);
        }
        // The positions that need logits, in order.
        let mut picked = Vec::new();
        let mut counts = Vec::with_capacity(seqs.len());
        let mut offset = 0;
        for s in seqs.iter_mut() {
            let n = s.ids.len();
            let rows = match s.logits {
                Logits::Last => offset + n - 1..offset + n,
                Logits::All => offset..offset + n,
            };
            counts.push(rows.len());
            picked.extend_from_slice(&x[rows.start * h..rows.end * h]);
            s.cache.len += n;
            offset += n;
        }
        layer_norm(&mut picked, &self.final_norm, self.epsilon);
        // Each sequence's logits are written where they are returned, not copied there.
        let vocab = self.vocab();
        let mut out: Vec<Vec<f32>> = counts.iter().map(|c| vec![0.0f32; c * vocab]).collect();
        let mut per_position: Vec<&mut [f32]> =
            out.iter_mut().flat_map(|o| o.chunks_mut(vocab)).collect();
        self.product_into(&self.embeddings, &picked, &mut per_position)?;
        Ok(out)
    }

    /// Appends each sequence's new keys and values to its cache and attends: the context
    /// vectors `[token][hidden]` for every token of the step. Each (sequence, head) is one task
    /// of one parallel pass, over that sequence's tokens of the step (a task per token and
    /// head cost more in hand-offs than a prompt's attention itself).
    fn attention(&self, layer: usize, qkv: &[f32], seqs: &mut [SequenceStep<'_>]) -> Vec<f32> {
        let (h, heads) = (self.hidden, self.heads);
        let hd = h / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let total = qkv.len() / (3 * h);
        // Per sequence: its first token in the step, its tokens, and the positions before.
        let mut spans = Vec::with_capacity(seqs.len());
        let mut offset = 0;
        for s in seqs.iter_mut() {
            let history = &mut s.cache.layers[layer];
            let (past, n) = (s.cache.len, s.ids.len());
            // transformers views the fused projection as [heads, 3, head_dim].
            for row in qkv[offset * 3 * h..(offset + n) * 3 * h].chunks_exact(3 * h) {
                for (head, fused) in history.iter_mut().zip(row.chunks_exact(3 * hd)) {
                    let (keys, values) = (&fused[hd..2 * hd], &fused[2 * hd..]);
                    match head {
                        HeadHistory::F32(head) => head.push(keys, values),
                        HeadHistory::Bf16(head) => head.push(keys, values),
                    }
                }
            }
            spans.push((offset, n, past));
            offset += n;
        }
        let histories: Vec<&[HeadHistory]> = seqs
            .iter()
            .map(|s| s.cache.layers[layer].as_slice())
            .collect();
        // `[token of the sequence][head_dim]` per (sequence, head).
        let parts: Vec<Vec<f32>> = (0..spans.len() * heads)
            .into_par_iter()
            .map(|task| {
                let (seq, head) = (task / heads, task % heads);
                let (first, n, past) = spans[seq];
                let queries = (first..first + n).map(|t| &qkv[t * 3 * h + head * 3 * hd..][..hd]);
                let shape = (hd, scale, self.slopes[head]);
                let mut out = vec![0.0f32; n * hd];
                match &histories[seq][head] {
                    HeadHistory::F32(history) => history.attend(queries, past, shape, &mut out),
                    HeadHistory::Bf16(history) => history.attend(queries, past, shape, &mut out),
                }
                out
            })
            .collect();
        let mut context = vec![0.0f32; total * h];
        for (task, part) in parts.iter().enumerate() {
            let (seq, head) = (task / heads, task % heads);
            let first = spans[seq].0;
            for (t, values) in part.chunks_exact(hd).enumerate() {
                context[(first + t) * h + head * hd..][..hd].copy_from_slice(values);
            }
        }
        context
    }

    fn linear(&self, l: &Linear, x: &[f32], tokens: usize) -> Result<Vec<f32>, ModelError> {
        let mut out = self.product(&l.weight, x, tokens)?;
        for row in out.chunks_exact_mut(l.bias.len()) {
            add(row, &l.bias);
        }
        Ok(out)
    }

    /// `x · mᵀ` for `tokens` rows of `x`: `[token][matrix row]`.
    fn product(&self, m: &Matrix, x: &[f32], tokens: usize) -> Result<Vec<f32>, ModelError> {
        let mut out = vec![0.0f32; m.rows() * tokens];
        let mut per_token: Vec<&mut [f32]> = out.chunks_mut(m.rows()).collect();
        self.product_into(m, x, &mut per_token)?;
        Ok(out)
    }

    /// `x · mᵀ` into `out`, one slice of `m.rows()` values per row of `x`. Threads take bands
    /// of the matrix's rows, each writing its part of every token's slice in place.
    fn product_into(
        &self,
        m: &Matrix,
        x: &[f32],
        out: &mut [&mut [f32]],
    ) -> Result<(), ModelError> {
        let acts = Activations::prepare(m.precision(), x, m.cols())?;
        let rows = m.rows();
        let threads = rayon::current_num_threads();
        // Whole groups of 4-bit rows (a multiple of every kernel's tile).
        let band = rows
            .div_ceil(threads * 4)
            .max(Q4_GROUP)
            .next_multiple_of(Q4_GROUP);
        // Per band, its part of each token's slice.
        let mut bands: Vec<Vec<&mut [f32]>> = (0..rows.div_ceil(band))
            .map(|_| Vec::with_capacity(out.len()))
            .collect();
        for token in out.iter_mut() {
            for (parts, part) in bands.iter_mut().zip(token.chunks_mut(band)) {
                parts.push(part);
            }
        }
        bands
            .par_iter_mut()
            .enumerate()
            .try_for_each(|(i, parts)| {
                let first = i * band;
                let width = parts.first().map_or(0, |p| p.len());
                gemm_into(m, &acts, first..first + width, parts, self.isa)
            })?;
        Ok(())
    }
}

/// transformers' `build_alibi_tensor`, slopes only.
fn alibi_slopes(heads: usize) -> Vec<f32> {
    let closest = 1usize << heads.ilog2();
    let base = 2f64.powf(-(2f64.powf(-((closest as f64).log2() - 3.0))));
    let mut slopes: Vec<f32> = (1..=closest).map(|p| base.powi(p as i32) as f32).collect();
    if closest != heads {
        let extra = 2f64.powf(-(2f64.powf(-((2.0 * closest as f64).log2() - 3.0))));
        let remaining = (heads - closest).min(closest);
        slopes.extend((0..remaining).map(|i| extra.powi((1 + 2 * i) as i32) as f32));
    }
    slopes
}

/// Element-wise work is handed to threads in parts of this many values (smaller parts cost
/// more in hand-offs than they save).
const PARALLEL_VALUES: usize = 4 * 1024;

fn layer_norm(x: &mut [f32], norm: &Norm, epsilon: f32) {
    let h = norm.weight.len();
    let rows_per_task = (PARALLEL_VALUES / h).max(1);
    x.par_chunks_mut(h * rows_per_task).for_each(|rows| {
        rows.chunks_exact_mut(h).for_each(|row| {
            let mean = row.iter().sum::<f32>() / h as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let inv = 1.0 / (var + epsilon).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
                *v = (*v - mean) * inv * w + b;
            }
        })
    });
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alibi_slopes_are_transformers_ones() {
        // transformers' build_alibi_tensor for 16 heads: 2^-0.5, 2^-1, ..., 2^-8.
        let s = alibi_slopes(16);
        assert_eq!(s.len(), 16);
        assert!((s[0] - 2f32.powf(-0.5)).abs() < 1e-7);
        assert!((s[15] - 2f32.powf(-8.0)).abs() < 1e-7);
        // 12 heads: 8 of base 2^-1, then 4 odd powers of 2^-0.5.
        let s = alibi_slopes(12);
        assert_eq!(s.len(), 12);
        assert!((s[8] - 2f32.powf(-0.5)).abs() < 1e-7);
        assert!((s[9] - 2f32.powf(-1.5)).abs() < 1e-7);
    }
}
