//! Full mode's calls to gpu-backend with reqwest, the answer's body read as a stream, and
//! tokio's timer; the deadlines themselves are the core's.

use std::pin::Pin;
use std::time::Duration;

use edge_core::{Outbound, OutboundError, OutboundRequest, OutboundResponse};
use futures_util::{Stream, StreamExt};

/// One per worker thread: its connection pool lives on that thread's runtime.
pub struct NativeOutbound {
    client: reqwest::Client,
}

impl NativeOutbound {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            // The core's first-token deadline is the real limit; this only bounds a connect
            // that would otherwise wait on the OS.
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { client })
    }
}

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, OutboundError>> + Send>>;

impl Outbound for NativeOutbound {
    type Body = ChunkStream;

    async fn send(
        &self,
        request: OutboundRequest,
    ) -> Result<OutboundResponse<ChunkStream>, OutboundError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| OutboundError::Unreachable(e.to_string()))?;
        let mut builder = self.client.request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .body(request.body)
            .send()
            .await
            .map_err(|e| OutboundError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect();
        let body = response.bytes_stream().map(|chunk| {
            chunk
                .map(|bytes| bytes.to_vec())
                .map_err(|e| OutboundError::Body(e.to_string()))
        });
        Ok(OutboundResponse {
            status,
            headers,
            body: Box::pin(body),
        })
    }

    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
