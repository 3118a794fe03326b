//! The CPU engine ([`crate::cpu`]) as an engine of the chain. One worker thread owns the
//! running generations and advances them together: each step feeds every sequence's next
//! input (a new request's whole prompt, the others' last token) through one forward pass, so
//! a batch of turns costs about one pass over the weights per token instead of one per turn.
//! Requests beyond `CPU_MAX_BATCH` wait their turn (waiting counts against the first-token
//! deadline). Dropping the stream (the client left) ends that generation at its next step.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::Instant;

use eindr_contract::InferenceEngine;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::{CompletionRequest, Engine, Generation, Timeouts, deadlined};
use crate::cpu::{CpuEngine, Decoding, GenerationSpec, SamplingParams};
use crate::error::BackendError;
use crate::metrics::Metrics;
use crate::sse::Piece;

type PieceSender = UnboundedSender<Result<Piece, BackendError>>;

struct Job {
    spec: GenerationSpec,
    pieces: PieceSender,
}

pub struct CpuSlot {
    engine: Arc<CpuEngine>,
    jobs: std::sync::Mutex<Sender<Job>>,
    timeouts: Timeouts,
}

impl CpuSlot {
    /// Starts the worker thread; it ends when the slot is dropped.
    pub fn new(
        engine: Arc<CpuEngine>,
        max_batch: usize,
        timeouts: Timeouts,
        metrics: &Metrics,
    ) -> Self {
        metrics.set_engine_available(InferenceEngine::Cpu, "local", true);
        let (jobs, queue) = std::sync::mpsc::channel();
        let worker = Arc::clone(&engine);
        let spawned = std::thread::Builder::new()
            .name("cpu-engine".into())
            .spawn(move || run_batches(&worker, &queue, max_batch.max(1)));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cpu engine: no worker thread");
        }
        Self {
            engine,
            jobs: std::sync::Mutex::new(jobs),
            timeouts,
        }
    }

    async fn start_generation(
        &self,
        request: &CompletionRequest,
        deadline: Instant,
    ) -> Result<Generation, BackendError> {
        let first_token_by = (Instant::now() + self.timeouts.first_token).min(deadline);
        let spec = GenerationSpec {
            prompt: self
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
        let (pieces, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sent = self
            .jobs
            .lock()
            .map_err(|_| BackendError::NoEngine("the CPU engine is shut down".into()))?
            .send(Job { spec, pieces });
        if sent.is_err() {
            return Err(BackendError::NoEngine("the CPU engine is shut down".into()));
        }
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
        Ok(Generation {
            engine: InferenceEngine::Cpu,
            server: InferenceEngine::Cpu.as_str().to_owned(),
            pieces: deadlined(stream, (), first_token_by, self.timeouts.idle, deadline).await?,
        })
    }
}

impl Engine for CpuSlot {
    fn kind(&self) -> InferenceEngine {
        InferenceEngine::Cpu
    }

    fn available(&self) -> bool {
        true
    }

    fn health(&self) -> Vec<Value> {
        let model = self.engine.model();
        vec![json!({
            "engine": self.kind(),
            "healthy": true,
            "precision": model.precision().as_str(),
            "isa": model.isa().as_str(),
        })]
    }

    fn start<'a>(
        &'a self,
        request: &'a CompletionRequest,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Generation, BackendError>> {
        Box::pin(self.start_generation(request, deadline))
    }
}

struct Running {
    decoding: Decoding,
    pieces: PieceSender,
}

/// The worker: admits waiting jobs up to `max_batch`, steps every running generation
/// together, sends each its pieces, drops the finished and the abandoned.
fn run_batches(engine: &CpuEngine, queue: &Receiver<Job>, max_batch: usize) {
    let mut running: Vec<Running> = Vec::new();
    loop {
        if running.is_empty() {
            match queue.recv() {
                Ok(job) => admit(engine, job, &mut running),
                Err(_) => return,
            }
        }
        while running.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => admit(engine, job, &mut running),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) if running.is_empty() => return,
                Err(TryRecvError::Disconnected) => break,
            }
        }
        if running.is_empty() {
            continue;
        }
        let mut steps: Vec<_> = running.iter_mut().map(|r| r.decoding.step()).collect();
        let result = engine.model().forward(&mut steps);
        drop(steps);
        match result {
            Ok(logits) => {
                for (r, logits) in running.iter_mut().zip(logits) {
                    let sent = match r.decoding.advance(engine, logits) {
                        Ok(pieces) => pieces.into_iter().all(|p| r.pieces.send(Ok(p)).is_ok()),
                        Err(e) => {
                            let _ = r.pieces.send(Err(failed(&e)));
                            false
                        }
                    };
                    if !sent {
                        // The client left (or the generation failed): stop it now.
                        r.pieces = closed_sender();
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, sequences = running.len(), "cpu engine: step failed");
                for r in running.drain(..) {
                    let _ = r.pieces.send(Err(failed(&e.to_string())));
                }
            }
        }
        running.retain(|r| !r.decoding.finished() && !r.pieces.is_closed());
    }
}

/// Starts a job unless its client already left; a prompt that cannot fit fails alone.
fn admit(engine: &CpuEngine, job: Job, running: &mut Vec<Running>) {
    if job.pieces.is_closed() {
        return;
    }
    match engine.start(job.spec) {
        Ok(decoding) => running.push(Running {
            decoding,
            pieces: job.pieces,
        }),
        Err(e) => {
            let _ = job.pieces.send(Err(failed(&e)));
        }
    }
}

fn failed(reason: &str) -> BackendError {
    BackendError::Upstream(format!("cpu engine: {reason}"))
}

/// A sender whose receiver is gone: marks a generation to be dropped.
fn closed_sender() -> PieceSender {
    tokio::sync::mpsc::unbounded_channel().0
}
