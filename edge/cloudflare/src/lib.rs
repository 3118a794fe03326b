//! Cloudflare Workers adapter. The fetch handler only places the request: it forwards it to
//! the Durable Object that holds the records it touches (`edge_core::placement`), where the
//! core runs against that object's storage. Nothing here decides anything about the API.

mod logging;
mod object;
mod platform;
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

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    logging::init();
    // A route with no work, for the benchmark's baseline; off unless configured.
    if req.path() == "/bench/empty"
        && env
            .var("EDGE_BENCH_ROUTES")
            .is_ok_and(|v| v.to_string() == "true")
    {
        return Response::empty();
    }
    let (core_request, url) = platform::to_core_request(req, None).await?;
    let place = edge_core::placement::place_for_request(&core_request);
    let stub = env.durable_object(NAMESPACE)?.get_by_name(&place)?;
    let path_and_query = match url.query() {
        Some(q) => format!("{}{}?{q}", FORWARD_PREFIX, url.path()),
        None => format!("{}{}", FORWARD_PREFIX, url.path()),
    };
    let forwarded = platform::internal_request(
        &core_request.method,
        &path_and_query,
        &core_request.headers,
        &place,
        core_request.client_addr.as_deref(),
        &core_request.body,
    )?;
    stub.fetch_with_request(forwarded).await
}
