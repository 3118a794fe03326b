//! The component's HTTP entry: translate the Spin request, run the core, translate back.
// spin-sdk's #[http_component] expands to unsafe resource-handle conversions.
#![allow(unsafe_code)]

use std::sync::Once;

use edge_core::system::{OsRandom, SystemClock};
use edge_core::{
    ApiError, BodySink, EdgeApp, EdgeConfig, HttpRequest, HttpResponse, Served, Services,
    SinkClosed,
};
use futures_util::{Sink, SinkExt};
use spin_sdk::http::{Fields, OutgoingResponse, Request, ResponseOutparam};
use spin_sdk::http_component;

use crate::config::lookup;
use crate::outbound::SpinOutbound;
use crate::store::SpinStore;
/// Spin's header with the client's address.
const CLIENT_ADDR_HEADER: &str = "spin-client-addr";
/// The benchmark's baseline route, served only with `edge_bench_routes = "true"`.
const BENCH_EMPTY: &str = "/bench/empty";

#[http_component]
async fn handle(req: Request, out: ResponseOutparam) {
    init_logging();
    if req.path() == BENCH_EMPTY && lookup("EDGE_BENCH_ROUTES").as_deref() == Some("true") {
        let empty = HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        };
        return send_whole(out, empty).await;
    }
    // Spin gives each request a fresh instance, so configuration is read per request.
    let app = match EdgeConfig::from_lookup(lookup).and_then(EdgeApp::new) {
        Ok(app) => app,
        Err(e) => return unavailable(out, ApiError::from(e)).await,
    };
    let store = match SpinStore::open() {
        Ok(store) => store,
        Err(e) => return unavailable(out, e).await,
    };
    let services = Services {
        store: &store,
        clock: &SystemClock,
        random: &OsRandom,
        outbound: &SpinOutbound,
        cache: &store,
        facts: &edge_core::facts::LogOnly,
    };
    match app.serve(&to_core_request(req), &services).await {
        Served::Whole(response) => send_whole(out, response).await,
        Served::Stream(turn) => {
            let response = outgoing(&turn.head);
            let mut body = ChunkSink(response.take_body());
            out.set(response);
            app.stream(turn, &services, &mut body).await;
        }
    }
}

/// The response body as the core's sink: each chunk is written and flushed as it comes.
struct ChunkSink<K>(K);

impl<K: Sink<Vec<u8>> + Unpin> BodySink for ChunkSink<K> {
    async fn send(&mut self, chunk: Vec<u8>) -> Result<(), SinkClosed> {
        self.0.send(chunk).await.map_err(|_| SinkClosed)
    }
}

fn to_core_request(req: Request) -> HttpRequest {
    let path = match req.path_and_query() {
        Some(pq) => pq.to_owned(),
        None => req.path().to_owned(),
    };
    let headers = req
        .headers()
        .filter_map(|(name, value)| Some((name.to_owned(), value.as_str()?.to_owned())))
        .collect();
    let client_addr = req
        .header(CLIENT_ADDR_HEADER)
        .and_then(|v| v.as_str())
        // `ip:port`: the rate limit of failed authentications is per address, not per port.
        .map(|addr| strip_port(addr).to_owned());
    HttpRequest {
        method: req.method().to_string(),
        path,
        headers,
        body: req.into_body(),
        client_addr,
    }
}

fn strip_port(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => addr,
    }
}

/// The response head (status and headers) in wasi-http's terms.
fn outgoing(head: &HttpResponse) -> OutgoingResponse {
    let entries: Vec<(String, Vec<u8>)> = head
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
        .collect();
    // The core only makes valid header names and values; should one ever be refused, the
    // response still goes out, without headers, rather than not at all.
    let fields = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(head.status);
    response
}

async fn send_whole(out: ResponseOutparam, response: HttpResponse) {
    let head = outgoing(&response);
    if let Err(e) = out.set_with_body(head, response.body).await {
        tracing::warn!(error = ?e, "response body not delivered");
    }
}

/// A failure before the core could run, in the API's error shape.
async fn unavailable(out: ResponseOutparam, error: ApiError) {
    tracing::error!(%error, "edge unavailable");
    send_whole(out, error.to_response()).await
}

static LOGGING: Once = Once::new();

fn init_logging() {
    LOGGING.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
    });
}
