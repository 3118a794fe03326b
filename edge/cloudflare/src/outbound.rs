//! The core's outbound I/O on Workers: `fetch` with its body as a stream, and `setTimeout`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use edge_core::{Outbound, OutboundError, OutboundRequest, OutboundResponse};
use futures_util::Stream;
use worker::{AbortController, ByteStream, Delay, Fetch, Headers, Method, Request, RequestInit};

pub struct WorkerOutbound;

/// Aborts the fetch when the core stops reading (a deadline passed, or the answer is done),
/// so an abandoned backend stream does not keep running.
struct AbortOnDrop(Option<AbortController>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(controller) = self.0.take() {
            controller.abort();
        }
    }
}

pub struct WorkerBody {
    stream: Option<Pin<Box<ByteStream>>>,
    _abort: AbortOnDrop,
}

impl Stream for WorkerBody {
    type Item = Result<Vec<u8>, OutboundError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.stream.as_mut() {
            None => Poll::Ready(None),
            Some(stream) => stream
                .as_mut()
                .poll_next(cx)
                .map(|item| item.map(|r| r.map_err(|e| OutboundError::Body(e.to_string())))),
        }
    }
}

fn build(request: &OutboundRequest) -> worker::Result<Request> {
    let headers = Headers::new();
    for (name, value) in &request.headers {
        headers.append(name, value)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(request.method.to_owned()))
        .with_headers(headers);
    if !request.body.is_empty() {
        init.with_body(Some(
            worker::js_sys::Uint8Array::from(request.body.as_slice()).into(),
        ));
    }
    Request::new_with_init(&request.url, &init)
}

impl Outbound for WorkerOutbound {
    type Body = WorkerBody;

    async fn send(
        &self,
        request: OutboundRequest,
    ) -> Result<OutboundResponse<WorkerBody>, OutboundError> {
        let unreachable = |e: worker::Error| OutboundError::Unreachable(e.to_string());
        let js_request = build(&request).map_err(unreachable)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let abort = AbortOnDrop(Some(controller));
        let mut response = Fetch::Request(js_request)
            .send_with_signal(&signal)
            .await
            .map_err(unreachable)?;
        let headers = response.headers().entries().collect();
        let stream = response.stream().ok().map(Box::pin);
        Ok(OutboundResponse {
            status: response.status_code(),
            headers,
            body: WorkerBody {
                stream,
                _abort: abort,
            },
        })
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await;
    }
}
