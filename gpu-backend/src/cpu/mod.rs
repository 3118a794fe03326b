//! The CPU engine: BLOOM exported to ONNX (`models/export_bloom_onnx.py`) and run in pure Rust
//! by tract, for hosts without a GPU or when every vLLM server is down. It produces the same
//! [`Piece`]s as a vLLM stream, so the HTTP layer does not know which engine answered.

mod model;
mod sampling;
mod text;

use std::path::Path;
use std::time::Instant;

use serde::Deserialize;
use thiserror::Error;
use tokenizers::Tokenizer;

use crate::sse::Piece;
use eindr_contract::openai::Usage;

pub use model::{BloomOnnx, KvCache};
pub use sampling::{Sampler, SamplingParams, truncated_distribution};
pub use text::{Emit, TextAssembler};

#[derive(Debug, Error)]
pub enum CpuEngineError {
    #[error(
        "{path}: {what} not found (make one with models/export_bloom_onnx.py MODEL_DIR OUT_DIR)"
    )]
    Missing { path: String, what: &'static str },
    #[error("{path} is not a usable BLOOM ONNX export: {reason}")]
    Malformed { path: String, reason: String },
    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: String, reason: String },
}

/// What to generate: the prompt's ids and vLLM's request settings.
#[derive(Debug, Clone)]
pub struct GenerationSpec {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub params: SamplingParams,
    pub seed: Option<u64>,
    pub stops: Vec<String>,
    /// Keep going past `</s>` (vLLM's `ignore_eos`; the golden tests use it).
    pub ignore_eos: bool,
}

impl GenerationSpec {
    /// Greedy decoding of exactly `tokens` tokens (past `</s>` too): what the goldens and the
    /// benchmark compare.
    pub fn greedy(prompt: Vec<u32>, tokens: usize) -> Self {
        Self {
            prompt,
            max_tokens: tokens,
            params: SamplingParams {
                temperature: 0.0,
                top_p: 1.0,
                top_k: -1,
                repetition_penalty: 1.0,
            },
            seed: None,
            stops: Vec::new(),
            ignore_eos: true,
        }
    }
}

/// `config.json` fields the engine needs beyond the graph.
#[derive(Debug, Deserialize)]
struct ModelConfig {
    eos_token_id: Option<u32>,
}

pub struct CpuEngine {
    model: BloomOnnx,
    tokenizer: Tokenizer,
    eos: Option<u32>,
    vocab: usize,
}

impl CpuEngine {
    /// Loads an export directory (`model.onnx`, `model.onnx.data`, `tokenizer.json`,
    /// `config.json`), saying how much it read and how long it took.
    pub fn load(dir: &Path) -> Result<Self, CpuEngineError> {
        let started = Instant::now();
        let model_path = dir.join("model.onnx");
        let tokenizer_path = dir.join("tokenizer.json");
        for (path, what) in [
            (&model_path, "model.onnx"),
            (&tokenizer_path, "tokenizer.json"),
        ] {
            if !path.is_file() {
                return Err(CpuEngineError::Missing {
                    path: path.display().to_string(),
                    what,
                });
            }
        }
        let bytes: u64 = [model_path.clone(), dir.join("model.onnx.data")]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        tracing::info!(dir = %dir.display(), megabytes = bytes / 1_000_000, "cpu engine: loading model");
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| CpuEngineError::Tokenizer {
                path: tokenizer_path.display().to_string(),
                reason: e.to_string(),
            })?;
        let eos = read_config(&dir.join("config.json"))
            .and_then(|c| c.eos_token_id)
            .or_else(|| tokenizer.token_to_id("</s>"));
        let model = BloomOnnx::load(&model_path)?;
        let vocab = tokenizer.get_vocab_size(true);
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            megabytes = bytes / 1_000_000,
            "cpu engine: ready"
        );
        Ok(Self {
            model,
            tokenizer,
            eos,
            vocab,
        })
    }

    pub fn model(&self) -> &BloomOnnx {
        &self.model
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| e.to_string())
    }

    /// Generates on this thread, handing each piece to `emit` as it is ready; `emit`
    /// answering false (the client left) stops the work. Text pieces end with one carrying
    /// the finish reason (`stop` or `length`), then usage.
    pub fn generate(
        &self,
        spec: &GenerationSpec,
        mut emit: impl FnMut(Piece) -> bool,
    ) -> Result<(), String> {
        if spec.prompt.is_empty() {
            return Err("the prompt has no tokens".into());
        }
        let mut sampler = Sampler::new(spec.params, spec.seed, self.vocab, &spec.prompt);
        let mut assembler = TextAssembler::new(&spec.stops);
        let failed = |e: tract_onnx::prelude::TractError| format!("{e:#}");
        let cache = self.model.empty_cache().map_err(failed)?;
        let (mut logits, mut cache) = self.model.step(&spec.prompt, cache).map_err(failed)?;
        let mut sampled = 0;
        let mut generated = Vec::new();
        loop {
            let id = sampler.next(&mut logits);
            sampled += 1;
            let eos = !spec.ignore_eos && Some(id) == self.eos;
            if !eos {
                generated.push(id);
            }
            let length = sampled >= spec.max_tokens;
            let decoded = self
                .tokenizer
                .decode(&generated, true)
                .map_err(|e| e.to_string())?;
            let out = assembler.push(&decoded, eos || length);
            let finish_reason = if out.stopped || eos {
                Some("stop")
            } else if length {
                Some("length")
            } else {
                None
            };
            let piece = Piece::Text {
                text: out.text,
                finish_reason: finish_reason.map(str::to_owned),
            };
            if !emit(piece) {
                return Ok(());
            }
            if finish_reason.is_some() {
                break;
            }
            (logits, cache) = self.model.step(&[id], cache).map_err(failed)?;
        }
        let prompt_tokens = spec.prompt.len() as u32;
        emit(Piece::Usage(Usage {
            prompt_tokens,
            completion_tokens: sampled as u32,
            total_tokens: prompt_tokens + sampled as u32,
        }));
        Ok(())
    }
}

/// Runs tract's matrix products on `threads` threads (process-wide; 1 means this thread).
pub fn use_threads(threads: usize) {
    use tract_linalg::multithread::{Executor, set_default_executor};
    if threads > 1 {
        set_default_executor(Executor::multithread(threads));
    }
    tracing::info!(threads, "cpu engine: threads");
}

fn read_config(path: &Path) -> Option<ModelConfig> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}
