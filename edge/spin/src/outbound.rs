//! The core's outbound I/O on Spin: `wasi:http/outgoing-handler` through spin-sdk, with the
//! body read as a stream, and a timer on `wasi:clocks/monotonic-clock` registered with
//! spin-sdk's executor (the one that drives the handler's future).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use edge_core::{Outbound, OutboundError, OutboundRequest, OutboundResponse};
use futures_util::Stream;
use spin_executor::CancelOnDropToken;
use spin_sdk::http::{IncomingResponse, Method, Request};
use wasi::clocks::monotonic_clock;

pub struct SpinOutbound;

type ChunkStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, OutboundError>>>>;

pub struct SpinBody {
    stream: ChunkStream,
    /// Dropping the response cancels the request, so it lives as long as its body.
    _response: IncomingResponse,
}

impl Stream for SpinBody {
    type Item = Result<Vec<u8>, OutboundError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_owned()),
    }
}

impl Outbound for SpinOutbound {
    type Body = SpinBody;

    async fn send(
        &self,
        request: OutboundRequest,
    ) -> Result<OutboundResponse<SpinBody>, OutboundError> {
        let mut builder = Request::builder();
        builder.method(method(request.method)).uri(&request.url);
        for (name, value) in &request.headers {
            builder.header(name, value);
        }
        let outgoing = builder.body(request.body).build();
        let response: IncomingResponse = spin_sdk::http::send(outgoing)
            .await
            .map_err(|e| OutboundError::Unreachable(e.to_string()))?;
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .filter_map(|(name, value)| Some((name, String::from_utf8(value).ok()?)))
            .collect();
        let status = response.status();
        let stream = futures_util::StreamExt::map(response.take_body_stream(), |chunk| {
            chunk.map_err(|e| OutboundError::Body(format!("{e:?}")))
        });
        Ok(OutboundResponse {
            status,
            headers,
            body: SpinBody {
                stream: Box::pin(stream),
                _response: response,
            },
        })
    }

    async fn sleep(&self, ms: u64) {
        sleep_ns(ms.saturating_mul(1_000_000)).await
    }
}

/// Waits `ns` nanoseconds on the monotonic clock.
pub async fn sleep_ns(ns: u64) {
    Sleep {
        deadline: monotonic_clock::now().saturating_add(ns),
        registration: None,
    }
    .await
}

/// Ready once the monotonic clock passes `deadline` (ns). Each pending poll registers a
/// fresh pollable with the executor, which consumes it; dropping the future cancels it.
struct Sleep {
    deadline: u64,
    registration: Option<CancelOnDropToken>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if monotonic_clock::now() >= self.deadline {
            return Poll::Ready(());
        }
        let pollable = monotonic_clock::subscribe_instant(self.deadline);
        let token = spin_executor::push_waker_and_get_token(pollable, cx.waker().clone());
        self.registration = Some(CancelOnDropToken::from(token));
        Poll::Pending
    }
}
