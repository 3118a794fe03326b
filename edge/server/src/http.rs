//! One request: hyper's request → the core's `HttpRequest` (the body read within a size and
//! time limit), the core's answer → hyper's response, a streamed turn piped through a channel
//! as the core produces it. `/ready` and `/metrics` belong to this server, not the core.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_core::system::{OsRandom, SystemClock};
use edge_core::{
    ApiError, BodySink, EdgeApp, HttpRequest, HttpResponse, Served, Services, SinkClosed,
};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use serde_json::json;
use tokio::sync::mpsc;

use crate::metrics::{Metrics, route_label};
use crate::outbound::NativeOutbound;
use crate::redis_store::StoreHealth;
use crate::store::CountedStore;
use edge_core::ConversationStore;

pub type Body = BoxBody<Bytes, Infallible>;

#[derive(Debug, Clone)]
pub struct Limits {
    /// The core's `MAX_BODY_BYTES`: one byte more is read, so the core can answer 413.
    pub max_body_bytes: usize,
    /// Request line and headers together (hyper's read buffer; at least 8 KiB).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// A client that has not sent its headers, or its whole body, within these is cut off.
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// `GET /bench/empty`, the load benchmark's baseline (`EDGE_BENCH_ROUTES`).
    pub bench_routes: bool,
}

/// One worker thread's services.
pub struct Worker {
    pub app: Arc<EdgeApp>,
    pub metrics: Arc<Metrics>,
    pub store: CountedStore,
    pub outbound: NativeOutbound,
    pub limits: Limits,
}

impl Worker {
    fn services(&self) -> Services<'_, CountedStore, NativeOutbound> {
        Services {
            store: &self.store,
            clock: &SystemClock,
            random: &OsRandom,
            outbound: &self.outbound,
            cache: &self.store,
            facts: &*self.metrics,
        }
    }
}

fn whole(response: HttpResponse) -> Response<Body> {
    let mut builder = Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(response.body)).boxed())
        .unwrap_or_else(|_| {
            // A header the core made that HTTP can't carry: never expected; answer plainly.
            let mut fallback = Response::new(Full::new(Bytes::new()).boxed());
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}

/// How much of a too-large body is read and dropped before answering 413. Closing with unread
/// bytes in the socket makes the kernel reset the connection, and a client still sending
/// then never sees the 413; past this much, it doesn't get to.
const DRAIN_BYTES: usize = 1024 * 1024;

/// Reads the body up to `limit` bytes (the core answers 413 on seeing more than its maximum),
/// dropping up to [`DRAIN_BYTES`] beyond it, within the body timeout.
async fn read_body(body: Incoming, limit: usize, timeout: Duration) -> Result<Vec<u8>, ()> {
    let reading = async {
        let mut body = body;
        let mut bytes = Vec::new();
        let mut seen = 0usize;
        while seen <= limit + DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        seen += data.len();
                        let room = limit.saturating_sub(bytes.len());
                        bytes.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(_)) => return Err(()),
                None => break,
            }
        }
        Ok(bytes)
    };
    tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_| ())?
}

fn request_timeout() -> HttpResponse {
    let mut response = HttpResponse::json(
        408,
        &json!({"success": false, "error": {
            "message": "the request body did not arrive in time",
            "type": "invalid_request_error",
            "code": "request_timeout",
        }}),
    );
    response.set_header("connection", "close".into());
    response
}

/// The streamed body: each chunk the core sends goes to the client as it comes.
struct ChannelSink(mpsc::Sender<Bytes>);

impl BodySink for ChannelSink {
    async fn send(&mut self, chunk: Vec<u8>) -> Result<(), SinkClosed> {
        self.0
            .send(Bytes::from(chunk))
            .await
            .map_err(|_| SinkClosed)
    }
}

pub async fn handle(
    worker: Rc<Worker>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let route = route_label(request.uri().path());
    let response = match (request.method().as_str(), route) {
        ("GET", "/ready") => whole(ready(&worker).await),
        ("GET", "/metrics") => whole(metrics(&worker).await),
        ("GET", "other")
            if worker.limits.bench_routes && request.uri().path() == "/bench/empty" =>
        {
            whole(HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: Vec::new(),
            })
        }
        _ => answer(&worker, request, peer).await,
    };
    let status = response.status().as_u16();
    worker
        .metrics
        .request(route, status, started.elapsed().as_secs_f64());
    Ok(response)
}

async fn ready(worker: &Worker) -> HttpResponse {
    match worker.store.ready().await {
        Ok(StoreHealth::Ready) => HttpResponse::json(200, &json!({"status": "ready"})),
        // Still ready: the users on the slots that have a primary are served, and the others
        // get 503 store_unavailable with Retry-After until a replica takes over.
        Ok(StoreHealth::Degraded {
            slots_ok,
            slots_fail,
        }) => HttpResponse::json(
            200,
            &json!({"status": "degraded", "store": {"cluster_state": "fail", "slots_ok": slots_ok, "slots_without_primary": slots_fail}}),
        ),
        Err(error) => ApiError::Store(error).to_response(),
    }
}

/// The metrics, with the breaker's state as the store holds it now (every instance on one
/// store shares one breaker).
async fn metrics(worker: &Worker) -> HttpResponse {
    let backend = &worker.app.config().backend;
    if backend.url.is_some()
        && let Ok(bytes) = worker.store.get(edge_core::backend::BREAKER_KEY).await
    {
        let state = edge_core::backend::breaker::BreakerState::decode(bytes.as_deref());
        worker
            .metrics
            .set_breaker_open(state.is_open(edge_core::backend::breaker_policy(backend)));
    }
    let metrics = &worker.metrics;
    HttpResponse {
        status: 200,
        headers: vec![(
            "content-type".into(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
        )],
        body: metrics.render().into_bytes(),
    }
}

async fn answer(
    worker: &Rc<Worker>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let limits = &worker.limits;
    let Ok(body) = read_body(body, limits.max_body_bytes + 1, limits.body_timeout).await else {
        return whole(request_timeout());
    };
    let core_request = HttpRequest {
        method: parts.method.as_str().to_owned(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
        body,
        client_addr: Some(peer.ip().to_string()),
    };
    let served = worker.app.serve(&core_request, &worker.services()).await;
    let head = match &served {
        Served::Whole(response) => response,
        Served::Stream(turn) => &turn.head,
    };
    if head.status == 429 {
        let code = serde_json::from_slice::<serde_json::Value>(&head.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
        worker
            .metrics
            .rate_limited(code.as_deref().unwrap_or("unknown"));
    }
    match served {
        Served::Whole(response) => whole(response),
        Served::Stream(turn) => {
            let mut head = whole(turn.head.clone());
            // Small: the core waits for the client to take each event, as on the platforms.
            let (sender, mut receiver) = mpsc::channel::<Bytes>(8);
            let worker = worker.clone();
            tokio::task::spawn_local(async move {
                let mut sink = ChannelSink(sender);
                worker.app.stream(turn, &worker.services(), &mut sink).await;
            });
            let events = futures_util::stream::poll_fn(move |cx| {
                receiver
                    .poll_recv(cx)
                    .map(|chunk| chunk.map(|bytes| Ok::<_, Infallible>(Frame::data(bytes))))
            });
            *head.body_mut() = StreamBody::new(events).boxed();
            head
        }
    }
}
