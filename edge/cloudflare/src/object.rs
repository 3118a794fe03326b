//! `ConversationObject`: one Durable Object per place (`user:<id>` or `addr:<ip>`), holding
//! that place's history and rate-limit state and running the core for requests placed here.

use std::cell::OnceCell;

use edge_core::{ApiError, Clock, EdgeApp, EdgeConfig, HttpResponse, Services};
use worker::{DurableObject, Env, Request, Response, Result, State, durable_object};

use crate::platform::{WorkerClock, WorkerRandom, to_core_request, to_worker_response};
use crate::records::Records;
use crate::store::{ObjectStore, StoreOp, serve};
use crate::{BENCH_OBJECT, CLIENT_ADDR_HEADER, FORWARD_PREFIX, PLACE_HEADER, STORE_PATH, logging};

#[durable_object]
pub struct ConversationObject {
    env: Env,
    /// This object's records; an error (the database could not be opened) answers 503.
    records: std::result::Result<Records, HttpResponse>,
    /// Built on first use: a configuration error becomes the 500 answer to every request,
    /// not a crashed object.
    app: OnceCell<std::result::Result<EdgeApp, HttpResponse>>,
}

/// Reads a variable from `[vars]` or a secret (`.dev.vars` locally, `wrangler secret` in
/// production).
fn lookup(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|s| s.to_string()))
        .ok()
}

impl ConversationObject {
    fn app(&self) -> &std::result::Result<EdgeApp, HttpResponse> {
        self.app.get_or_init(|| {
            EdgeConfig::from_lookup(|name| lookup(&self.env, name))
                .and_then(EdgeApp::new)
                .map_err(|e| {
                    let error = ApiError::from(e);
                    tracing::error!(%error, "configuration error");
                    error.to_response()
                })
        })
    }
}

impl DurableObject for ConversationObject {
    fn new(state: State, env: Env) -> Self {
        logging::init();
        let records =
            Records::open(state.storage().sql()).map_err(|e| ApiError::from(e).to_response());
        Self {
            env,
            records,
            app: OnceCell::new(),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let place = req.headers().get(PLACE_HEADER)?.unwrap_or_default();
        let path = req.path();
        let records = match &self.records {
            Ok(records) => records,
            Err(response) => return to_worker_response(response.clone()),
        };
        if path == STORE_PATH {
            let op: StoreOp = req.json().await?;
            return match serve(records, op, WorkerClock.now_ms()) {
                Ok(reply) => Response::from_json(&reply),
                Err(e) => Response::error(e.to_string(), 503),
            };
        }
        if path.strip_prefix(FORWARD_PREFIX) == Some(BENCH_OBJECT)
            && crate::bench_routes_enabled(&self.env)
        {
            return Response::empty();
        }
        if !path.starts_with(FORWARD_PREFIX) {
            return Response::error("not found", 404);
        }
        let client_addr = req.headers().get(CLIENT_ADDR_HEADER)?;
        let (mut core_request, _) = to_core_request(req, client_addr).await?;
        core_request.path = core_request
            .path
            .strip_prefix(FORWARD_PREFIX)
            .unwrap_or(&core_request.path)
            .to_owned();
        let app = match self.app() {
            Ok(app) => app,
            Err(response) => return to_worker_response(response.clone()),
        };
        let store = ObjectStore {
            records,
            now_ms: WorkerClock.now_ms(),
            env: &self.env,
            place: &place,
        };
        let services = Services {
            store: &store,
            clock: &WorkerClock,
            random: &WorkerRandom,
        };
        to_worker_response(app.handle(&core_request, &services).await)
    }
}
