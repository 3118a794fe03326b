//! The component's HTTP entry: translate the Spin request, run the core, translate back.
// spin-sdk's #[http_component] expands to unsafe resource-handle conversions.
#![allow(unsafe_code)]

use std::sync::Once;

use edge_core::system::{OsRandom, SystemClock};
use edge_core::{ApiError, EdgeApp, EdgeConfig, HttpRequest, HttpResponse, Services};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

use crate::config::lookup;
use crate::store::KeyValueStore;

/// The key-value store label in spin.toml.
const STORE_LABEL: &str = "default";
/// Spin's header with the client's address.
const CLIENT_ADDR_HEADER: &str = "spin-client-addr";
/// The benchmark's baseline route, served only with `edge_bench_routes = "true"`.
const BENCH_EMPTY: &str = "/bench/empty";

#[http_component]
async fn handle(req: Request) -> Response {
    init_logging();
    if req.path() == BENCH_EMPTY && lookup("EDGE_BENCH_ROUTES").as_deref() == Some("true") {
        return Response::new(200, ());
    }
    // Spin gives each request a fresh instance, so configuration is read per request.
    let app = match EdgeConfig::from_lookup(lookup).and_then(EdgeApp::new) {
        Ok(app) => app,
        Err(e) => return unavailable(ApiError::from(e)),
    };
    let store = match KeyValueStore::open(STORE_LABEL) {
        Ok(store) => store,
        Err(e) => return unavailable(ApiError::from(e)),
    };
    let services = Services {
        store: &store,
        clock: &SystemClock,
        random: &OsRandom,
    };
    to_spin_response(app.handle(&to_core_request(req), &services).await)
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

fn to_spin_response(response: HttpResponse) -> Response {
    let mut builder = Response::builder();
    builder.status(response.status);
    for (name, value) in response.headers {
        builder.header(name, value);
    }
    builder.body(response.body).build()
}

/// A failure before the core could run, in the API's error shape.
fn unavailable(error: ApiError) -> Response {
    tracing::error!(%error, "edge unavailable");
    to_spin_response(error.to_response())
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
