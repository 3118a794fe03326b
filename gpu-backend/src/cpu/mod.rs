//! The CPU engine: BLOOM run in pure Rust from its Hugging Face checkpoint (the same model
//! directory vLLM serves), with the weights at the operator's precision (`CPU_PRECISION`:
//! int8 by default, 4-bit, bf16 or fp32; [`cpu_kernels`]), for hosts without a GPU or when
//! every vLLM server is down. It produces the same [`Piece`]s as a vLLM stream, so the HTTP
//! layer does not know which engine answered; several generations advance together, one
//! pass over the weights per step ([`Decoding`], `engine::cpu`).

mod checkpoint;
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

pub use cpu_kernels::{Isa, Precision};
pub use model::{Bloom, KvCache, Logits, ModelError, SequenceStep};
pub use sampling::{Sampler, SamplingParams, truncated_distribution};
pub use text::{Emit, TextAssembler};

#[derive(Debug, Error)]
pub enum CpuEngineError {
    #[error(
        "{path}: {what} not found (CPU_MODEL_PATH is a BLOOM checkpoint directory: config.json, model.safetensors, tokenizer.json)"
    )]
    Missing { path: String, what: &'static str },
    #[error("{path} is not a usable BLOOM checkpoint: {reason}")]
    Malformed { path: String, reason: String },
    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: String, reason: String },
}

/// How the engine runs: the operator's choices.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    pub precision: Precision,
    /// Threads for the matrix products.
    pub threads: usize,
    /// Tokens a sequence may hold, prompt and answer together.
    pub max_len: usize,
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

/// `config.json` fields the engine needs beyond the model's shape.
#[derive(Debug, Deserialize)]
struct ModelConfig {
    eos_token_id: Option<u32>,
}

pub struct CpuEngine {
    model: Bloom,
    tokenizer: Tokenizer,
    eos: Option<u32>,
    vocab: usize,
    /// Ids the tokenizer can turn into text: the model's rows past them (bloom-560m pads its
    /// 250,680 tokens to 250,880 rows) are never sampled.
    decodable: usize,
}

impl CpuEngine {
    /// Loads a checkpoint directory (`config.json`, `model.safetensors` or its shards,
    /// `tokenizer.json`), saying how much it read and how long it took.
    pub fn load(dir: &Path, settings: EngineSettings) -> Result<Self, CpuEngineError> {
        let started = Instant::now();
        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(CpuEngineError::Missing {
                path: tokenizer_path.display().to_string(),
                what: "tokenizer.json",
            });
        }
        tracing::info!(dir = %dir.display(), precision = %settings.precision, threads = settings.threads, "cpu engine: loading model");
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| CpuEngineError::Tokenizer {
                path: tokenizer_path.display().to_string(),
                reason: e.to_string(),
            })?;
        let eos = read_config(&dir.join("config.json"))
            .and_then(|c| c.eos_token_id)
            .or_else(|| tokenizer.token_to_id("</s>"));
        let model = Bloom::load(dir, settings.precision, settings.threads, settings.max_len)?;
        let vocab = model.vocab();
        let decodable = tokenizer.get_vocab_size(true).clamp(1, vocab);
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "cpu engine: ready"
        );
        Ok(Self {
            model,
            tokenizer,
            eos,
            vocab,
            decodable,
        })
    }

    pub fn model(&self) -> &Bloom {
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

    /// A generation ready to be stepped: its prompt is the first input.
    pub fn start(&self, spec: GenerationSpec) -> Result<Decoding, String> {
        if spec.prompt.is_empty() {
            return Err("the prompt has no tokens".into());
        }
        let room = self.model.max_len().saturating_sub(spec.prompt.len());
        if room == 0 {
            return Err(format!(
                "the prompt has {} tokens, the engine holds at most {}",
                spec.prompt.len(),
                self.model.max_len()
            ));
        }
        let mut spec = spec;
        spec.max_tokens = spec.max_tokens.min(room);
        Ok(Decoding {
            sampler: Sampler::new(spec.params, spec.seed, self.vocab, &spec.prompt),
            assembler: TextAssembler::new(&spec.stops),
            cache: self.model.empty_cache(),
            input: spec.prompt.clone(),
            generated: Vec::new(),
            sampled: 0,
            finished: false,
            spec,
        })
    }

    /// Generates on this thread, handing each piece to `emit` as it is ready; `emit`
    /// answering false (the client left) stops the work. Text pieces end with one carrying
    /// the finish reason (`stop` or `length`), then usage.
    pub fn generate(
        &self,
        spec: &GenerationSpec,
        mut emit: impl FnMut(Piece) -> bool,
    ) -> Result<(), String> {
        let mut decoding = self.start(spec.clone())?;
        while !decoding.finished() {
            let mut logits = self
                .model
                .forward(&mut [decoding.step()])
                .map_err(|e| e.to_string())?;
            let logits = logits.pop().unwrap_or_default();
            for piece in decoding.advance(self, logits)? {
                if !emit(piece) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// One generation in progress: the tokens to feed next (the prompt, then each sampled
/// token), its cache, and what it has said.
pub struct Decoding {
    spec: GenerationSpec,
    sampler: Sampler,
    assembler: TextAssembler,
    cache: KvCache,
    input: Vec<u32>,
    generated: Vec<u32>,
    sampled: usize,
    finished: bool,
}

impl Decoding {
    /// This generation's part of the next forward step.
    pub fn step(&mut self) -> SequenceStep<'_> {
        SequenceStep {
            ids: &self.input,
            cache: &mut self.cache,
            logits: Logits::Last,
        }
    }

    pub fn finished(&self) -> bool {
        self.finished
    }

    pub fn prompt_tokens(&self) -> usize {
        self.spec.prompt.len()
    }

    /// The ids generated so far (`</s>` left out unless the spec ignores it).
    pub fn generated(&self) -> &[u32] {
        &self.generated
    }

    /// Takes the logits the step gave: the next token, and what to send for it (a text
    /// piece; with the last one, its finish reason and then usage).
    pub fn advance(
        &mut self,
        engine: &CpuEngine,
        mut logits: Vec<f32>,
    ) -> Result<Vec<Piece>, String> {
        let spec = &self.spec;
        logits.truncate(engine.decodable);
        let id = self.sampler.next(&mut logits);
        self.sampled += 1;
        let eos = !spec.ignore_eos && Some(id) == engine.eos;
        if !eos {
            self.generated.push(id);
        }
        let length = self.sampled >= spec.max_tokens;
        let decoded = engine
            .tokenizer
            .decode(&self.generated, true)
            .map_err(|e| e.to_string())?;
        let out = self.assembler.push(&decoded, eos || length);
        let finish_reason = if out.stopped || eos {
            Some("stop")
        } else if length {
            Some("length")
        } else {
            None
        };
        let mut pieces = vec![Piece::Text {
            text: out.text,
            finish_reason: finish_reason.map(str::to_owned),
        }];
        self.input = vec![id];
        if finish_reason.is_some() {
            self.finished = true;
            let prompt_tokens = spec.prompt.len() as u32;
            pieces.push(Piece::Usage(Usage {
                prompt_tokens,
                completion_tokens: self.sampled as u32,
                total_tokens: prompt_tokens + self.sampled as u32,
            }));
        }
        Ok(pieces)
    }
}

fn read_config(path: &Path) -> Option<ModelConfig> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}
