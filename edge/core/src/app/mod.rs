//! The edge's one entry point: an HTTP request and the platform's services in, an HTTP
//! response out. Every decision lives here; adapters only translate.
//!
//! - `routes`: method and path → route;
//! - `gate`: authentication and the per-user rate limit;
//! - `body`: request bodies;
//! - `turn`: the one turn pipeline (backend or reply engine, into a sink, then stored);
//! - `answer` and `streaming`: a turn's answer whole or as server-sent events;
//! - `records`: the user's stored conversation;
//! - `history_api`, `info`, `warm`: the other routes;
//! - `page`: the chat page for browsers;
//! - `cors`: cross-origin access and the headers every response carries.

mod answer;
mod body;
mod cached;
pub mod cors;
mod gate;
mod history_api;
mod info;
mod openai_checks;
mod page;
mod records;
mod routes;
mod streaming;
mod turn;
mod warm;

use crate::auth::{Authenticator, KeySet};
use crate::config::{ConfigError, EdgeConfig};
use crate::error::ApiError;
use crate::facts::{self, RequestFacts};
use crate::history::HistoryCodec;
use crate::http::{HttpRequest, HttpResponse};
use crate::platform::{ConversationStore, Outbound, Services};
use crate::response_cache::HitCounts;
use crate::seal::Sealer;
use routes::{ApiRoute, Route, route};
use tracing::Instrument;

pub use streaming::{BodySink, Served, SinkClosed, StreamingTurn};

pub struct EdgeApp {
    config: EdgeConfig,
    auth: Authenticator,
    history: HistoryCodec,
    cache_hits: HitCounts,
}

impl EdgeApp {
    pub fn new(config: EdgeConfig) -> Result<Self, ConfigError> {
        let mut keys = KeySet::default();
        if let Some(secret) = &config.auth.hs256_secret {
            keys.add_hs256_secret(secret.as_bytes(), None)?;
        }
        if let Some(public) = &config.auth.public_keys {
            keys.add_public_keys(public)?;
        }
        let auth = Authenticator::new(keys, config.auth.policy.clone())?;
        let sealer = config
            .history_encryption_key
            .as_deref()
            .map(Sealer::from_config)
            .transpose()?;
        Ok(Self {
            config,
            auth,
            history: HistoryCodec::new(sealer),
            cache_hits: HitCounts::default(),
        })
    }

    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// Handles one request and returns the whole response; a streamed turn is run to its end
    /// into the body (for adapters and tests that do not stream). Never panics.
    pub async fn handle<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        svc: &Services<'_, S, O>,
    ) -> HttpResponse {
        match self.serve(req, svc).await {
            Served::Whole(response) => response,
            Served::Stream(turn) => {
                let mut response = turn.head.clone();
                let mut body = Vec::new();
                self.stream(turn, svc, &mut body).await;
                response.body = body;
                response
            }
        }
    }

    /// Handles one request. A streamed turn comes back as its head; the adapter sends it and
    /// then runs [`EdgeApp::stream`] into the response body. Never panics and never fails:
    /// errors become JSON responses.
    pub async fn serve<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        svc: &Services<'_, S, O>,
    ) -> Served {
        let request_id = req
            .header("x-request-id")
            .filter(|id| id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{:016x}", svc.random.next_u64()));
        let span = tracing::info_span!("request", request_id = %request_id, method = %req.method, path = %req.route_path());
        // `instrument`, not `enter`: a guard held across an await leaks this span into
        // whatever other request the executor polls meanwhile (the log lines' span lists
        // then grow without end).
        self.serve_in_span(req, svc, request_id)
            .instrument(span)
            .await
    }

    async fn serve_in_span<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        svc: &Services<'_, S, O>,
        request_id: String,
    ) -> Served {
        let started_ms = svc.clock.now_ms();
        let dispatched = match self.config.cors.preflight(req) {
            Some(preflight) => Ok(Served::Whole(preflight)),
            None => self.dispatch(req, svc, &request_id).await,
        };
        let mut reply = match dispatched {
            Ok(reply) => reply,
            Err(error) => {
                let (status, ..) = error.parts();
                if status >= 500 {
                    tracing::error!(%error, status, "request failed");
                } else {
                    tracing::info!(%error, status, "request refused");
                }
                Served::Whole(error.to_response())
            }
        };
        let head = reply.head_mut();
        head.set_header("x-request-id", request_id);
        self.config.cors.decorate(req, head);
        cors::secure(head);
        // A streamed turn's request facts come at the end of its stream.
        if let Served::Whole(response) = &reply {
            facts::emit_request(
                svc.facts,
                &RequestFacts {
                    route: facts::route_label(req.route_path()),
                    status: response.status,
                    error_code: error_code(response),
                    rate_limited: response.status == 429,
                    duration_ms: svc.clock.now_ms().saturating_sub(started_ms),
                },
            );
        }
        reply
    }

    async fn dispatch<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        svc: &Services<'_, S, O>,
        request_id: &str,
    ) -> Result<Served, ApiError> {
        let api_route = match route(&req.method, req.route_path())? {
            Route::Health => return Ok(Served::Whole(info::liveness())),
            Route::Page(asset) if self.config.chat_page => {
                return Ok(Served::Whole(page::serve(asset, req)));
            }
            Route::Page(_) => return Err(ApiError::NotFound(req.route_path().to_owned())),
            Route::Api(api_route) => api_route,
        };
        let principal = self.authenticate(req, svc).await?;
        let decision = self.admit(&principal, svc).await?;
        let result = match api_route {
            ApiRoute::Respond => self.respond(req, &principal, svc, request_id).await,
            ApiRoute::OpenAiChat => self
                .openai_chat(req, &principal, svc, request_id)
                .await
                .map_err(ApiError::for_openai),
            ApiRoute::History(user) => self
                .history(req, &principal, &user, svc)
                .await
                .map(Served::Whole),
            ApiRoute::DeleteHistory(user) => self
                .delete_history(&principal, &user, svc)
                .await
                .map(Served::Whole),
            ApiRoute::HistoryStats(user) => self
                .history_stats(&principal, &user, svc)
                .await
                .map(Served::Whole),
            ApiRoute::ChatHealth => Ok(Served::Whole(self.chat_health(svc).await)),
            ApiRoute::ModelInfo => Ok(Served::Whole(self.model_info())),
            ApiRoute::OpenAiModels => Ok(Served::Whole(self.models())),
            ApiRoute::WarmCache => self
                .warm_cache(req, &principal, svc, request_id)
                .await
                .map(Served::Whole),
        };
        // An admitted request's answer, error or not, carries its rate-limit headers.
        let mut reply = result.unwrap_or_else(|e| Served::Whole(e.to_response()));
        for (name, value) in decision.headers() {
            reply.head_mut().set_header(name, value);
        }
        Ok(reply)
    }
}

/// The code in an error answer's body (every error is `{"error": {"code": …}}`).
fn error_code(response: &crate::http::HttpResponse) -> Option<String> {
    if response.status < 400 {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    body["error"]["code"].as_str().map(str::to_owned)
}
