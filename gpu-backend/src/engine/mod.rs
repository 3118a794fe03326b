//! The engines behind the backend, tried in order: the vLLM servers (`VLLM_SERVER_URL`),
//! then the CPU engine when one is loaded. Each is an [`Engine`]; a third kind is a new type
//! added to the chain, not an edit here.
//!
//! A request that an engine cannot take, or that fails before its first token
//! ([`BackendError::NoEngine`], [`BackendError::Upstream`]), moves on to the next engine and
//! counts as a failover; once tokens have been sent it is not moved (the caller ends the
//! stream with an error instead). A timeout or a refused request is the answer as it is.

mod cpu;
mod vllm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eindr_contract::InferenceEngine;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::Serialize;
use serde_json::Value;

use crate::error::BackendError;
use crate::metrics::Metrics;
use crate::sse::Piece;

pub use cpu::CpuSlot;
pub use vllm::VllmPool;

/// Which engines serve (`ENGINE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineChoice {
    /// vLLM, and the CPU engine when vLLM cannot answer and `CPU_MODEL_PATH` is set.
    Auto,
    /// vLLM only.
    Vllm,
    /// The CPU engine only (no GPU on this host).
    Cpu,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_token: Duration,
    pub idle: Duration,
    pub total: Duration,
}

/// What the backend asks an engine for (vLLM's `/v1/completions` body).
#[derive(Debug, Clone, Serialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: String,
    pub max_tokens: u32,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: i32,
    pub repetition_penalty: f64,
    pub stop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub stream: bool,
    pub stream_options: StreamUsage,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct StreamUsage {
    pub include_usage: bool,
}

pub type Pieces = BoxStream<'static, Result<Piece, BackendError>>;

/// A started generation: the first piece has arrived.
pub struct Generation {
    pub engine: InferenceEngine,
    /// The server that answers (its URL), or the engine's name.
    pub server: String,
    pub pieces: Pieces,
}

/// One kind of engine: something that can start a streamed completion.
pub trait Engine: Send + Sync {
    fn kind(&self) -> InferenceEngine;
    /// Whether it would take a request now.
    fn available(&self) -> bool;
    /// Its entries in `/health` (one per server).
    fn health(&self) -> Vec<Value>;
    /// Checks its health now; engines that are up while the process is need not.
    fn check(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// Starts a completion; returns once the first piece came, before `deadline` ends it.
    fn start<'a>(
        &'a self,
        request: &'a CompletionRequest,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Generation, BackendError>>;
}

/// The engines in the order they are tried.
pub struct Engines {
    chain: Vec<Arc<dyn Engine>>,
    total: Duration,
    metrics: Arc<Metrics>,
}

impl Engines {
    pub fn new(chain: Vec<Arc<dyn Engine>>, total: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            chain,
            total,
            metrics,
        }
    }

    /// The engine that would answer now.
    pub fn serving(&self) -> Option<InferenceEngine> {
        self.chain.iter().find(|e| e.available()).map(|e| e.kind())
    }

    /// Every engine's `/health` entries, in chain order.
    pub fn health(&self) -> Vec<Value> {
        self.chain.iter().flat_map(|e| e.health()).collect()
    }

    /// Checks every engine's health now.
    pub async fn check_all(&self) {
        for engine in &self.chain {
            engine.check().await;
        }
    }

    /// Health checks every `every`, for the life of the process.
    pub fn spawn_health_checks(self: &Arc<Self>, every: Duration) {
        let engines = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                engines.check_all().await;
            }
        });
    }

    /// Starts a streamed completion on the first engine in the chain that can take it.
    pub async fn generate(&self, request: &CompletionRequest) -> Result<Generation, BackendError> {
        let deadline = Instant::now() + self.total;
        let mut failed: Option<(InferenceEngine, BackendError)> = None;
        for engine in &self.chain {
            if let Some((from, why)) = &failed {
                tracing::warn!(%from, to = %engine.kind(), reason = %why, "engine cannot answer: the next one takes the request");
                self.metrics.count_failover();
            }
            match engine.start(request, deadline).await {
                Ok(generation) => {
                    self.metrics.count_generation(generation.engine);
                    return Ok(generation);
                }
                Err(error @ (BackendError::NoEngine(_) | BackendError::Upstream(_))) => {
                    failed = Some((engine.kind(), error));
                }
                Err(error) => return Err(error),
            }
        }
        Err(failed.map_or_else(
            || BackendError::NoEngine("no engine is configured".into()),
            |(_, error)| error,
        ))
    }
}

/// Waits for the first piece until `first_token_by`, then passes the rest on with the `idle`
/// limit between pieces and the total `deadline`; `guard` lives as long as the stream.
async fn deadlined<G: Send + 'static>(
    mut stream: Pieces,
    guard: G,
    first_token_by: Instant,
    idle: Duration,
    deadline: Instant,
) -> Result<Pieces, BackendError> {
    let first = tokio::time::timeout_at(first_token_by.into(), stream.next())
        .await
        .map_err(|_| BackendError::Timeout("first token"))?
        .unwrap_or_else(|| Err(BackendError::Upstream("empty stream".into())))?;
    let rest = futures::stream::unfold(
        (stream, guard, false),
        move |(mut stream, guard, done)| async move {
            if done {
                return None;
            }
            let until = (Instant::now() + idle).min(deadline);
            match tokio::time::timeout_at(until.into(), stream.next()).await {
                Ok(Some(Ok(piece))) => Some((Ok(piece), (stream, guard, false))),
                Ok(Some(Err(e))) => Some((Err(e), (stream, guard, true))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(BackendError::Timeout(if Instant::now() >= deadline {
                        "total"
                    } else {
                        "idle between tokens"
                    })),
                    (stream, guard, true),
                )),
            }
        },
    );
    Ok(futures::stream::once(async move { Ok(first) })
        .chain(rest)
        .boxed())
}
