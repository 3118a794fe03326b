//! Translation between workers-rs types and the core's, and the platform services.

use edge_core::{Clock, HttpRequest, HttpResponse, Randomness};
use worker::{Headers, Method, Request, RequestInit, Response, Result, Url};

use crate::{CLIENT_ADDR_HEADER, PLACE_HEADER};

pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> u64 {
        worker::Date::now().as_millis()
    }
}

pub struct WorkerRandom;

impl Randomness for WorkerRandom {
    fn fill(&self, buf: &mut [u8]) {
        // crypto.getRandomValues cannot fail for these sizes; if the runtime ever refused,
        // a zeroed buffer would repeat AES-GCM nonces, so stop the isolate instead.
        if getrandom::fill(buf).is_err() {
            std::process::abort();
        }
    }
}

/// The core's request from a workers-rs one. `client_addr` overrides the header (inside the
/// object, the worker's forwarded value is the truth).
pub async fn to_core_request(
    mut req: Request,
    client_addr: Option<String>,
) -> Result<(HttpRequest, Url)> {
    let url = req.url()?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let headers: Vec<(String, String)> = req
        .headers()
        .entries()
        .filter(|(name, _)| name != PLACE_HEADER && name != CLIENT_ADDR_HEADER)
        .collect();
    let client_addr = client_addr.or_else(|| req.headers().get("cf-connecting-ip").ok().flatten());
    let body = req.bytes().await?;
    Ok((
        HttpRequest {
            method: req.method().to_string(),
            path,
            headers,
            body,
            client_addr,
        },
        url,
    ))
}

/// A client request on its way to the Durable Object that holds its records.
pub struct Forwarded {
    pub place: String,
    pub request: Request,
}

/// Places a client request and re-addresses it to the object's internal URL space, passing
/// its body stream through untouched (it never enters wasm here; the object reads it). The
/// place and client-address headers are ours: whatever a client sent under those names is
/// overwritten or removed.
pub fn forward_request(req: &Request, prefix: &str) -> Result<Forwarded> {
    let headers = req.headers();
    let client_addr = headers.get("cf-connecting-ip")?;
    let mut probe = HttpRequest::new("", "");
    probe.client_addr.clone_from(&client_addr);
    if let Some(authorization) = headers.get("authorization")? {
        probe
            .headers
            .push(("authorization".to_owned(), authorization));
    }
    let place = edge_core::placement::place_for_request(&probe);
    let out = headers.clone();
    out.set(PLACE_HEADER, &place)?;
    match &client_addr {
        Some(addr) => out.set(CLIENT_ADDR_HEADER, addr)?,
        None => out.delete(CLIENT_ADDR_HEADER)?,
    }
    let url = req.url()?;
    let target = match url.query() {
        Some(q) => format!("https://object.internal{prefix}{}?{q}", url.path()),
        None => format!("https://object.internal{prefix}{}", url.path()),
    };
    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(out);
    // A GET or HEAD may arrive with an empty body stream (a client sent `Content-Length: 0`);
    // a Request with those methods must not have one.
    if !matches!(req.method(), Method::Get | Method::Head)
        && let Some(body) = req.inner().body()
    {
        init.with_body(Some(body.into()));
    }
    Ok(Forwarded {
        place,
        request: Request::new_with_init(&target, &init)?,
    })
}

/// A request to a Durable Object over the internal URL space.
pub fn internal_request(
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    place: &str,
    client_addr: Option<&str>,
    body: &[u8],
) -> Result<Request> {
    let out = Headers::new();
    for (name, value) in headers {
        out.append(name, value)?;
    }
    out.set(PLACE_HEADER, place)?;
    if let Some(addr) = client_addr {
        out.set(CLIENT_ADDR_HEADER, addr)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(method.to_owned()))
        .with_headers(out);
    if !body.is_empty() {
        init.with_body(Some(worker::js_sys::Uint8Array::from(body).into()));
    }
    Request::new_with_init(&format!("https://object.internal{path_and_query}"), &init)
}

pub fn to_worker_response(response: HttpResponse) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in &response.headers {
        headers.append(name, value)?;
    }
    Ok(Response::from_bytes(response.body)?
        .with_status(response.status)
        .with_headers(headers))
}
