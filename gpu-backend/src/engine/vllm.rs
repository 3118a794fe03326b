//! vLLM servers (`VLLM_SERVER_URL`, comma-separated) as one engine. Each request goes to the
//! least busy healthy server; one that fails a request or its health check is taken out
//! until a health check passes again, and a request that fails before its first token is
//! tried on the next server. A server back in health takes the next request: the switch back
//! needs nothing but the check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eindr_contract::InferenceEngine;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use super::{CompletionRequest, Engine, Generation, Timeouts, deadlined};
use crate::error::BackendError;
use crate::metrics::Metrics;
use crate::sse::pieces;

struct Server {
    url: String,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
}

impl Server {
    fn healthy(&self) -> bool {
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

pub struct VllmPool {
    servers: Vec<Arc<Server>>,
    client: reqwest::Client,
    timeouts: Timeouts,
    metrics: Arc<Metrics>,
}

impl VllmPool {
    pub fn new(
        urls: &[String],
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
        Ok(Self {
            servers,
            client,
            timeouts,
            metrics,
        })
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
            .set_engine_available(InferenceEngine::Vllm, &server.url, healthy);
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

    async fn check_all(&self) {
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

    async fn start_anywhere(
        &self,
        request: &CompletionRequest,
        deadline: Instant,
    ) -> Result<Generation, BackendError> {
        let mut tried = Vec::new();
        let mut last_error = None;
        while let Some((index, server)) = self.pick(&tried) {
            tried.push(index);
            if tried.len() > 1 {
                self.metrics.count_failover();
            }
            match self.start_on(&server, request, deadline).await {
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

    async fn start_on(
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
            let message = serde_json::from_str::<eindr_contract::openai::ErrorBody>(&body)
                .map(|e| e.error.message)
                .unwrap_or(body);
            return Err(if status.is_client_error() {
                BackendError::BadRequest(format!("engine refused the request: {message}"))
            } else {
                BackendError::Upstream(format!("{status}: {message}"))
            });
        }
        let stream = pieces(response.bytes_stream().map_err(|e| e.to_string()).boxed()).boxed();
        Ok(Generation {
            engine: InferenceEngine::Vllm,
            server: server.url.clone(),
            pieces: deadlined(stream, guard, first_token_by, self.timeouts.idle, deadline).await?,
        })
    }
}

impl Engine for VllmPool {
    fn kind(&self) -> InferenceEngine {
        InferenceEngine::Vllm
    }

    fn available(&self) -> bool {
        self.servers.iter().any(|s| s.healthy())
    }

    fn health(&self) -> Vec<Value> {
        self.servers
            .iter()
            .map(|s| json!({"engine": self.kind(), "url": s.url, "healthy": s.healthy()}))
            .collect()
    }

    fn check(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.check_all())
    }

    fn start<'a>(
        &'a self,
        request: &'a CompletionRequest,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Generation, BackendError>> {
        Box::pin(self.start_anywhere(request, deadline))
    }
}
