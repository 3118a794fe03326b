//! Cloudflare Workers adapter. The fetch handler only places the request: it forwards it to
//! the Durable Object that holds the records it touches (`edge_core::placement`), where the
//! core runs against that object's storage. Nothing here decides anything about the API.

mod answers;
mod facts;
mod logging;
mod object;
mod outbound;
mod platform;
mod records;
mod store;

use worker::{Context, Env, Request, Response, Result, event};

pub use object::ConversationObject;

/// The Durable Object namespace binding in wrangler.toml.
pub(crate) const NAMESPACE: &str = "CONVERSATIONS";
/// Headers our worker sets on every forwarded request (overwriting anything a client sent).
pub(crate) const PLACE_HEADER: &str = "x-eindr-place";
pub(crate) const CLIENT_ADDR_HEADER: &str = "x-eindr-client-addr";
/// Forwarded API requests and object-to-object store calls use distinct internal paths, so a
/// client path can never reach the store protocol.
pub(crate) const FORWARD_PREFIX: &str = "/fwd";
pub(crate) const STORE_PATH: &str = "/store";
/// Benchmark baselines, served only when `EDGE_BENCH_ROUTES=true`.
const BENCH_EMPTY: &str = "/bench/empty";
pub(crate) const BENCH_OBJECT: &str = "/bench/object";

pub(crate) fn bench_routes_enabled(env: &Env) -> bool {
    env.var("EDGE_BENCH_ROUTES")
        .is_ok_and(|v| v.to_string() == "true")
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    logging::init();
    if bench_routes_enabled(&env) {
        // The benchmark's baselines: no work at all, and only the hop to a Durable Object.
        match req.path().as_str() {
            BENCH_EMPTY => return Response::empty(),
            BENCH_OBJECT => {
                let stub = env.durable_object(NAMESPACE)?.get_by_name("bench:object")?;
                return stub
                    .fetch_with_str(&format!(
                        "https://object.internal{FORWARD_PREFIX}{BENCH_OBJECT}"
                    ))
                    .await;
            }
            _ => {}
        }
    }
    let forwarded = platform::forward_request(&req, FORWARD_PREFIX)?;
    let stub = env
        .durable_object(NAMESPACE)?
        .get_by_name(&forwarded.place)?;
    stub.fetch_with_request(forwarded.request).await
}
