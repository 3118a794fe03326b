//! The engines behind the backend, in the order they are tried: the vLLM servers
//! (`VLLM_SERVER_URL`, comma-separated), then the CPU engine when one is loaded.
//!
//! Each request goes to the least busy healthy vLLM server; one that fails a request or its
//! health check is taken out until a health check passes again. A request that fails before
//! its first token is tried on the next server, and when no server can take it, on the CPU
//! engine; once tokens have been sent it is not (the caller ends the stream with an error
//! instead). A vLLM server that passes its health check again takes the next request: the
//! switch back needs nothing but the check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::cpu::{CpuEngine, GenerationSpec, SamplingParams};
use crate::error::BackendError;
use crate::metrics::Metrics;
use crate::sse::{Piece, pieces};

/// `x-inference-engine` and `/health` names of the engines.
pub const VLLM_ENGINE: &str = "vLLM";
pub const CPU_ENGINE: &str = "cpu";

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

/// What the backend asks vLLM for (`/v1/completions`).
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

pub struct Server {
    pub url: String,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
}

impl Server {
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Counts a request against its server for as long as its stream lives.
struct InFlight(Arc<Server>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The CPU engine and its one slot: a generation uses every core's share of memory
/// bandwidth, so requests take turns (waiting counts against the first-token deadline).
struct CpuSlot {
    engine: Arc<CpuEngine>,
    turn: Arc<tokio::sync::Semaphore>,
}

pub struct Engines {
    servers: Vec<Arc<Server>>,
    cpu: Option<CpuSlot>,
    client: reqwest::Client,
    timeouts: Timeouts,
    metrics: Arc<Metrics>,
}

type Pieces = BoxStream<'static, Result<Piece, BackendError>>;

/// A started generation: the first piece has arrived.
pub struct Generation {
    /// [`VLLM_ENGINE`] or [`CPU_ENGINE`].
    pub engine: &'static str,
    pub server: String,
    pub pieces: Pieces,
}

impl Engines {
    pub fn new(
        urls: &[String],
        cpu: Option<Arc<CpuEngine>>,
        timeouts: Timeouts,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        let servers = urls
            .iter()
            .map(|url| {
                Arc::new(Server {
                    url: url.trim_end_matches('/').to_owned(),
                    // Optimistic until the first check: a request proves it either way.
                    healthy: AtomicBool::new(true),
                    in_flight: AtomicUsize::new(0),
                })
            })
            .collect();
        if cpu.is_some() {
            metrics.set_engine_available(CPU_ENGINE, "local", true);
        }
        let cpu = cpu.map(|engine| CpuSlot {
            engine,
            turn: Arc::new(tokio::sync::Semaphore::new(1)),
        });
        Ok(Self {
            servers,
            cpu,
            client,
            timeouts,
            metrics,
        })
    }

    pub fn servers(&self) -> &[Arc<Server>] {
        &self.servers
    }

    /// The engine that would answer now: vLLM while a server is healthy, else the CPU engine.
    pub fn serving(&self) -> Option<&'static str> {
        if self.servers.iter().any(|s| s.healthy()) {
            Some(VLLM_ENGINE)
        } else if self.cpu.is_some() {
            Some(CPU_ENGINE)
        } else {
            None
        }
    }

    pub fn has_cpu(&self) -> bool {
        self.cpu.is_some()
    }

    fn mark(&self, server: &Server, healthy: bool) {
        if server.healthy.swap(healthy, Ordering::Relaxed) != healthy {
            if healthy {
                tracing::info!(server = %server.url, "engine back in rotation");
            } else {
                tracing::warn!(server = %server.url, "engine taken out of rotation");
            }
        }
        self.metrics
            .set_engine_available("vllm", &server.url, healthy);
    }

    /// Checks every server's `/health` now.
    pub async fn check_all(&self) {
        for server in &self.servers {
            let ok = self
                .client
                .get(format!("{}/health", server.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            self.mark(server, ok);
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

    /// The least busy healthy server not yet tried.
    fn pick(&self, tried: &[usize]) -> Option<(usize, Arc<Server>)> {
        self.servers
            .iter()
            .enumerate()
            .filter(|(i, s)| s.healthy() && !tried.contains(i))
            .min_by_key(|(_, s)| s.in_flight.load(Ordering::Relaxed))
            .map(|(i, s)| (i, Arc::clone(s)))
    }

    /// Starts a streamed completion: on a healthy vLLM server, moving on to the next one when
    /// a server fails before its first token, and to the CPU engine when none can answer.
    pub async fn generate(&self, request: &CompletionRequest) -> Result<Generation, BackendError> {
        let deadline = Instant::now() + self.timeouts.total;
        let on_vllm = if self.servers.is_empty() {
            Err(BackendError::NoEngine(
                "no vLLM server is configured".into(),
            ))
        } else {
            self.generate_on_vllm(request, deadline).await
        };
        let generation = match (on_vllm, &self.cpu) {
            (Err(BackendError::NoEngine(why) | BackendError::Upstream(why)), Some(cpu)) => {
                if !self.servers.is_empty() {
                    tracing::warn!(reason = %why, "vLLM cannot answer: the CPU engine takes the request");
                    self.metrics.count_failover();
                }
                self.start_on_cpu(cpu, request, deadline).await?
            }
            (result, _) => result?,
        };
        self.metrics.count_generation(generation.engine);
        Ok(generation)
    }

    async fn generate_on_vllm(
        &self,
        request: &CompletionRequest,
        deadline: Instant,
    ) -> Result<Generation, BackendError> {
        let mut tried = Vec::new();
        let mut last_error = None;
        while let Some((index, server)) = self.pick(&tried) {
            tried.push(index);
            if !tried.len().eq(&1) {
                self.metrics.count_failover();
            }
            match self.start(&server, request, deadline).await {
                Ok(generation) => return Ok(generation),
                Err(error) => {
                    tracing::warn!(server = %server.url, %error, "engine failed before its first token");
                    // A timeout is a slow server, not necessarily a dead one; the health
                    // check decides. Anything else takes it out now.
                    if !matches!(error, BackendError::Timeout(_)) {
                        self.mark(&server, false);
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(match last_error {
            Some(BackendError::Timeout(what)) => BackendError::Timeout(what),
            Some(error) => BackendError::NoEngine(format!("every engine failed; last: {error}")),
            None => BackendError::NoEngine("no engine is healthy".into()),
        })
    }

    /// Runs the request on the CPU engine in a blocking thread; dropping the stream (the
    /// client left) stops the generation at its next token.
    async fn start_on_cpu(
        &self,
        cpu: &CpuSlot,
        request: &CompletionRequest,
        deadline: Instant,
    ) -> Result<Generation, BackendError> {
        let first_token_by = (Instant::now() + self.timeouts.first_token).min(deadline);
        let turn =
            tokio::time::timeout_at(first_token_by.into(), Arc::clone(&cpu.turn).acquire_owned())
                .await
                .map_err(|_| BackendError::Timeout("first token: the CPU engine is busy"))?
                .map_err(|_| BackendError::NoEngine("the CPU engine is shut down".into()))?;
        let spec = GenerationSpec {
            prompt: cpu
                .engine
                .encode(&request.prompt)
                .map_err(BackendError::Tokenizer)?,
            max_tokens: request.max_tokens as usize,
            params: SamplingParams {
                temperature: request.temperature,
                top_p: request.top_p,
                top_k: request.top_k,
                repetition_penalty: request.repetition_penalty,
            },
            seed: request.seed,
            stops: request.stop.clone(),
            ignore_eos: false,
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(32);
        let engine = Arc::clone(&cpu.engine);
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let sent = |piece| tx.blocking_send(Ok(piece)).is_ok();
            if let Err(e) = engine.generate(&spec, sent) {
                let _ = tx.blocking_send(Err(BackendError::Upstream(format!("cpu engine: {e}"))));
            }
        });
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
        Ok(Generation {
            engine: CPU_ENGINE,
            server: CPU_ENGINE.to_owned(),
            pieces: self.deadlined(stream, (), first_token_by, deadline).await?,
        })
    }

    async fn start(
        &self,
        server: &Arc<Server>,
        request: &CompletionRequest,
        deadline: Instant,
    ) -> Result<Generation, BackendError> {
        server.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(Arc::clone(server));
        let first_token_by = (Instant::now() + self.timeouts.first_token).min(deadline);
        let send = self
            .client
            .post(format!("{}/v1/completions", server.url))
            .json(request)
            .send();
        let response = tokio::time::timeout_at(first_token_by.into(), send)
            .await
            .map_err(|_| BackendError::Timeout("first token"))?
            .map_err(|e| BackendError::Upstream(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            return Err(if status.is_client_error() {
                BackendError::BadRequest(format!("engine refused the request: {message}"))
            } else {
                BackendError::Upstream(format!("{status}: {message}"))
            });
        }
        let stream = pieces(response.bytes_stream().map_err(|e| e.to_string()).boxed()).boxed();
        Ok(Generation {
            engine: VLLM_ENGINE,
            server: server.url.clone(),
            pieces: self
                .deadlined(stream, guard, first_token_by, deadline)
                .await?,
        })
    }

    /// Waits for the first piece until `first_token_by`, then passes the rest on with the idle
    /// limit between pieces and the total deadline; `guard` lives as long as the stream.
    async fn deadlined<G: Send + 'static>(
        &self,
        mut stream: Pieces,
        guard: G,
        first_token_by: Instant,
        deadline: Instant,
    ) -> Result<Pieces, BackendError> {
        let first = tokio::time::timeout_at(first_token_by.into(), stream.next())
            .await
            .map_err(|_| BackendError::Timeout("first token"))?
            .unwrap_or_else(|| Err(BackendError::Upstream("empty stream".into())))?;
        let idle = self.timeouts.idle;
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
}
