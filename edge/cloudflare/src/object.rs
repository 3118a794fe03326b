//! `ConversationObject`: one Durable Object per place (`user:<id>` or `addr:<ip>`), holding
//! that place's history and rate-limit state and running the core for requests placed here.

use std::cell::OnceCell;
use std::rc::Rc;

use edge_core::{
    ApiError, BodySink, Clock, EdgeApp, EdgeConfig, HttpResponse, Served, Services, SinkClosed,
    StreamingTurn,
};
use futures_channel::mpsc;
use worker::{DurableObject, Env, Request, Response, Result, State, durable_object};

use crate::answers::KvAnswers;
use crate::facts::AnalyticsFacts;
use crate::outbound::WorkerOutbound;
use crate::platform::{WorkerClock, WorkerRandom, to_core_request, to_worker_response};
use crate::records::Records;
use crate::store::{ObjectStore, StoreOp, serve};
use crate::{BENCH_OBJECT, CLIENT_ADDR_HEADER, FORWARD_PREFIX, PLACE_HEADER, STORE_PATH, logging};

#[durable_object]
pub struct ConversationObject {
    env: Env,
    /// This object's records; an error (the database could not be opened) answers 503.
    /// Shared with streamed answers, which outlive the `fetch` call that started them.
    records: std::result::Result<Rc<Records>, HttpResponse>,
    /// Built on first use: a configuration error becomes the 500 answer to every request,
    /// not a crashed object.
    app: OnceCell<std::result::Result<Rc<EdgeApp>, HttpResponse>>,
}

/// Reads a variable from `[vars]` or a secret (`.dev.vars` locally, `wrangler secret` in
/// production).
fn lookup(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|s| s.to_string()))
        .ok()
}

/// Whether the configured quota refills its burst quickly enough for its state to live in
/// memory (records.rs says why); a configuration error keeps it in SQLite (and every request
/// gets the error anyway).
fn rate_limit_in_memory(env: &Env) -> bool {
    EdgeConfig::from_lookup(|name| lookup(env, name)).is_ok_and(|config| {
        let quota = config.rate_limit;
        let refill_ms = u64::from(quota.burst) * 60_000 / u64::from(quota.per_minute.max(1));
        refill_ms <= crate::records::MEMORY_REFILL_LIMIT_MS
    })
}

impl ConversationObject {
    fn app(&self) -> &std::result::Result<Rc<EdgeApp>, HttpResponse> {
        self.app.get_or_init(|| {
            EdgeConfig::from_lookup(|name| lookup(&self.env, name))
                .and_then(EdgeApp::new)
                .map(Rc::new)
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
        let records = Records::open(state.storage().sql(), rate_limit_in_memory(&env))
            .map(Rc::new)
            .map_err(|e| ApiError::from(e).to_response());
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
        let store = ObjectStore::new(records, &self.env, &place);
        let answers = KvAnswers::from_env(&self.env);
        let facts = AnalyticsFacts::from_env(&self.env);
        let services = services(&store, &answers, &facts);
        match app.serve(&core_request, &services).await {
            Served::Whole(response) => to_worker_response(response),
            Served::Stream(turn) => {
                self.start_stream(Rc::clone(app), Rc::clone(records), place, turn)
            }
        }
    }
}

/// The platform's services around this object's store.
fn services<'a>(
    store: &'a ObjectStore<'a>,
    answers: &'a KvAnswers,
    facts: &'a AnalyticsFacts,
) -> Services<'a, ObjectStore<'a>, WorkerOutbound> {
    Services {
        store,
        clock: &WorkerClock,
        random: &WorkerRandom,
        outbound: &WorkerOutbound,
        cache: answers,
        facts,
    }
}

/// The client's response body: chunks go through a channel into the streamed `Response`.
struct ChannelSink(mpsc::UnboundedSender<Result<Vec<u8>>>);

impl BodySink for ChannelSink {
    async fn send(&mut self, chunk: Vec<u8>) -> std::result::Result<(), SinkClosed> {
        self.0.unbounded_send(Ok(chunk)).map_err(|_| SinkClosed)
    }
}

impl ConversationObject {
    /// Returns the streamed response at once and produces its body in a task of its own:
    /// the answer outlives this `fetch` call, so the task owns what it uses.
    fn start_stream(
        &self,
        app: Rc<EdgeApp>,
        records: Rc<Records>,
        place: String,
        turn: StreamingTurn,
    ) -> Result<Response> {
        let (sender, receiver) = mpsc::unbounded();
        let head = HttpResponse {
            body: Vec::new(),
            ..turn.head.clone()
        };
        let env = self.env.clone();
        worker::wasm_bindgen_futures::spawn_local(async move {
            let store = ObjectStore::new(&records, &env, &place);
            let answers = KvAnswers::from_env(&env);
            let facts = AnalyticsFacts::from_env(&env);
            app.stream(
                turn,
                &services(&store, &answers, &facts),
                &mut ChannelSink(sender),
            )
            .await;
        });
        let headers = worker::Headers::new();
        for (name, value) in &head.headers {
            headers.append(name, value)?;
        }
        Ok(Response::from_stream(receiver)?
            .with_status(head.status)
            .with_headers(headers))
    }
}
