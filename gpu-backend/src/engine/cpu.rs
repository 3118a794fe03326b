//! The CPU engine (tract-onnx, [`crate::cpu`]) as an engine of the chain. It has one slot: a
//! generation uses every core's share of memory bandwidth, so requests take turns (waiting
//! counts against the first-token deadline). Dropping the stream (the client left) stops the
//! generation at its next token.

use std::sync::Arc;
use std::time::Instant;

use eindr_contract::InferenceEngine;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{CompletionRequest, Engine, Generation, Timeouts, deadlined};
use crate::cpu::{CpuEngine, GenerationSpec, SamplingParams};
use crate::error::BackendError;
use crate::metrics::Metrics;

pub struct CpuSlot {
    engine: Arc<CpuEngine>,
    turn: Arc<tokio::sync::Semaphore>,
    timeouts: Timeouts,
}

impl CpuSlot {
    pub fn new(engine: Arc<CpuEngine>, timeouts: Timeouts, metrics: &Metrics) -> Self {
        metrics.set_engine_available(InferenceEngine::Cpu, "local", true);
        Self {
            engine,
            turn: Arc::new(tokio::sync::Semaphore::new(1)),
            timeouts,
        }
    }

    async fn start_generation(
        &self,
        request: &CompletionRequest,
        deadline: Instant,
    ) -> Result<Generation, BackendError> {
        let first_token_by = (Instant::now() + self.timeouts.first_token).min(deadline);
        let turn = tokio::time::timeout_at(
            first_token_by.into(),
            Arc::clone(&self.turn).acquire_owned(),
        )
        .await
        .map_err(|_| BackendError::Timeout("first token: the CPU engine is busy"))?
        .map_err(|_| BackendError::NoEngine("the CPU engine is shut down".into()))?;
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
        let (tx, mut rx) = tokio::sync::mpsc::channel(32);
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let sent = |piece| tx.blocking_send(Ok(piece)).is_ok();
            if let Err(e) = engine.generate(&spec, sent) {
                let _ = tx.blocking_send(Err(BackendError::Upstream(format!("cpu engine: {e}"))));
            }
        });
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
        vec![json!({"engine": self.kind(), "healthy": true})]
    }

    fn start<'a>(
        &'a self,
        request: &'a CompletionRequest,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Generation, BackendError>> {
        Box::pin(self.start_generation(request, deadline))
    }
}
