//! Configuration, from flags or the operators' environment variable names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::engine::{EngineChoice, Timeouts};
use crate::supervisor::{VLLM_QUANTIZATIONS, VllmDtype};

#[derive(Debug, Clone, Parser)]
#[command(about = "eindr-chat GPU backend: OpenAI-compatible chat over vLLM serving BLOOM")]
pub struct Args {
    /// Address to serve on.
    #[arg(long, env = "BACKEND_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// The key callers must send as `Authorization: Bearer <key>`.
    #[arg(long, env = "BACKEND_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Check that the server on BACKEND_LISTEN answers `GET /health` with 200 (an engine is
    /// ready) and exit 0, or 1 saying why: the image's healthcheck (no shell or curl in it).
    #[arg(long)]
    pub healthcheck: bool,
    /// What the assistant is called: the model's persona says "You are <name>" (the edge's
    /// minimal replies read the same variable).
    #[arg(long, env = "ASSISTANT_NAME", default_value = "Eindr")]
    pub assistant_name: String,
    /// Allow serving without BACKEND_API_KEY (local development only).
    #[arg(long, env = "BACKEND_DEV", default_value_t = false)]
    pub dev: bool,
    /// vLLM servers, comma-separated.
    #[arg(
        long,
        env = "VLLM_SERVER_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8001"
    )]
    pub vllm_server_url: Vec<String>,
    /// The model: a model directory (config.json, weights, tokenizer.json) or a hub id;
    /// defaults to CHAT_MODEL_NAME.
    #[arg(long, env = "VLLM_MODEL_PATH")]
    pub model_path: Option<String>,
    /// tokenizer.json for token counts (default: the model directory's).
    #[arg(long, env = "CHAT_TOKENIZER")]
    pub tokenizer: Option<PathBuf>,
    // The engine timeouts have names of their own: the edge's BACKEND_*_TIMEOUT_MS mean its
    // wait for gpu-backend, with other defaults, and one shared environment (compose, one
    // .env, `cargo xtask dev-full`) must not set both.
    /// Connecting to a vLLM server.
    #[arg(long, env = "ENGINE_CONNECT_TIMEOUT_MS", default_value_t = 2_000)]
    pub connect_timeout_ms: u64,
    /// From sending a request to an engine to its first token.
    #[arg(long, env = "ENGINE_FIRST_TOKEN_TIMEOUT_MS", default_value_t = 30_000)]
    pub first_token_timeout_ms: u64,
    /// Longest silence between two tokens.
    #[arg(long, env = "ENGINE_IDLE_TIMEOUT_MS", default_value_t = 10_000)]
    pub idle_timeout_ms: u64,
    /// A whole generation.
    #[arg(long, env = "ENGINE_TOTAL_TIMEOUT_MS", default_value_t = 120_000)]
    pub total_timeout_ms: u64,
    /// How often each vLLM server's `/health` is checked.
    #[arg(long, env = "ENGINE_HEALTH_INTERVAL_MS", default_value_t = 2_000)]
    pub health_interval_ms: u64,
    /// On SIGTERM or SIGINT: how long running answers may go on before they are ended and
    /// the supervised vLLM is stopped.
    #[arg(long, env = "BACKEND_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
    /// Which engines serve: vLLM then the CPU engine (auto), vLLM only, or the CPU engine only.
    #[arg(long, env = "ENGINE", value_enum, default_value_t = EngineChoice::Auto)]
    pub engine: EngineChoice,
    /// The CPU engine's model: a BLOOM checkpoint directory, the one vLLM serves
    /// (`config.json`, `model.safetensors`, `tokenizer.json`). Without it there is no CPU
    /// engine in auto mode.
    #[arg(long, env = "CPU_MODEL_PATH")]
    pub cpu_model_path: Option<PathBuf>,
    /// Threads for the CPU engine's matrix products (default: every core).
    #[arg(long, env = "CPU_THREADS")]
    pub cpu_threads: Option<usize>,
    /// How the CPU engine holds the weights: q4 (4-bit, a scale per 32; the default: the
    /// fastest to prefill and to decode, +0.8 % perplexity), int8 (a scale per row, +0.02 %),
    /// bf16, fp32.
    #[arg(long, env = "CPU_PRECISION", default_value = "q4", value_parser = parse_precision)]
    pub cpu_precision: cpu_kernels::Precision,
    /// Generations the CPU engine advances together (one pass over the weights per step);
    /// more wait for a place.
    #[arg(long, env = "CPU_MAX_BATCH", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub cpu_max_batch: u16,
    /// Start and supervise vLLM (`python -m vllm.entrypoints.openai.api_server`).
    #[arg(long, env = "VLLM_AUTOSTART", default_value_t = false)]
    pub vllm_autostart: bool,
    #[arg(long, env = "VLLM_SERVER_PORT", default_value_t = 8001)]
    pub vllm_server_port: u16,
    /// The share of GPU memory vLLM takes (on vLLM's CPU build: the share of RAM).
    #[arg(long, env = "VLLM_GPU_MEMORY_UTILIZATION", default_value_t = 0.8)]
    pub vllm_gpu_memory_utilization: f64,
    #[arg(long, env = "VLLM_TENSOR_PARALLEL_SIZE", default_value_t = 1)]
    pub vllm_tensor_parallel_size: u32,
    /// The type vLLM computes in on the GPU (`--dtype`): auto keeps the checkpoint's (bloom-560m:
    /// fp16); bfloat16 on GPUs from Ampere on; float for debugging.
    #[arg(long, env = "VLLM_DTYPE", value_enum, default_value_t = VllmDtype::Auto)]
    pub vllm_dtype: VllmDtype,
    /// vLLM's `--quantization` (none by default): fp8 or bitsandbytes quantize any checkpoint
    /// as it loads; the others need a checkpoint made by that method.
    #[arg(long, env = "VLLM_QUANTIZATION", value_parser = clap::builder::PossibleValuesParser::new(VLLM_QUANTIZATIONS))]
    pub vllm_quantization: Option<String>,
    /// The Python that has vLLM installed.
    #[arg(long, env = "VLLM_PYTHON", default_value = "python3")]
    pub vllm_python: String,
    /// Extra vLLM arguments, space-separated (e.g. `--enforce-eager` on CPU).
    #[arg(long, env = "VLLM_EXTRA_ARGS", default_value = "")]
    pub vllm_extra_args: String,
}

/// The edge's names that gpu-backend once read with another meaning; it says so at start.
pub const EDGE_ONLY_VARIABLES: [(&str, &str); 3] = [
    (
        "BACKEND_FIRST_TOKEN_TIMEOUT_MS",
        "ENGINE_FIRST_TOKEN_TIMEOUT_MS",
    ),
    ("BACKEND_IDLE_TIMEOUT_MS", "ENGINE_IDLE_TIMEOUT_MS"),
    ("BACKEND_TOTAL_TIMEOUT_MS", "ENGINE_TOTAL_TIMEOUT_MS"),
];

impl Args {
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_millis(self.connect_timeout_ms),
            first_token: Duration::from_millis(self.first_token_timeout_ms),
            idle: Duration::from_millis(self.idle_timeout_ms),
            total: Duration::from_millis(self.total_timeout_ms),
        }
    }
}

fn parse_precision(text: &str) -> Result<cpu_kernels::Precision, String> {
    cpu_kernels::Precision::parse(text)
        .ok_or_else(|| format!("{text:?}: expected int8, q4, bf16 or fp32"))
}
