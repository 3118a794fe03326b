//! The edge's one entry point: an HTTP request and the platform's services in, an HTTP
//! response out. Every decision lives here; adapters only translate.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::api::{
    ChatContext, Flavour, Mode, ModelInfo, OpenAiChatRequest, OpenAiTurn, RespondRequest,
    RespondResponse,
};
use crate::auth::{Authenticator, KeySet, Principal, is_valid_user_id};
use crate::backend;
use crate::config::{ConfigError, EdgeConfig};
use crate::error::ApiError;
use crate::history::{Conversation, HistoryCodec, Role, Turn, rfc3339};
use crate::http::{HttpRequest, HttpResponse, percent_decode};
use crate::platform::{ConversationStore, Outbound, RecordKind, Services, StoreKey, StoreWrite};
use crate::rate_limit::{self, Decision, Quota};
use crate::replies::{Reply, closing_sentence, minimal_reply};
use crate::seal::Sealer;

/// The engine name reported for replies made at the edge.
pub const MINIMAL_ENGINE: &str = "minimal";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Health,
    Respond,
    History(String),
    DeleteHistory(String),
    Summary(String),
    ChatHealth,
    ModelInfo,
    OpenAiChat,
    OpenAiModels,
}

/// Matches method and path; unknown paths are 404, known paths with another method 405.
fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let not_allowed = |allow: &'static str| ApiError::MethodNotAllowed {
        method: method.to_owned(),
        allow,
    };
    let user_segment = |rest: &str| -> Result<String, ApiError> {
        let id = percent_decode(rest)
            .filter(|id| !rest.contains('/') && is_valid_user_id(id))
            .ok_or_else(|| {
                ApiError::invalid("invalid_user_id", "user id in the path is not valid")
            })?;
        Ok(id)
    };
    match path {
        "/health" => match method {
            "GET" | "HEAD" => Ok(Route::Health),
            _ => Err(not_allowed("GET")),
        },
        "/api/chat/respond" => match method {
            "POST" => Ok(Route::Respond),
            _ => Err(not_allowed("POST")),
        },
        "/api/chat/health" => match method {
            "GET" => Ok(Route::ChatHealth),
            _ => Err(not_allowed("GET")),
        },
        "/api/chat/model-info" => match method {
            "GET" => Ok(Route::ModelInfo),
            _ => Err(not_allowed("GET")),
        },
        "/v1/chat/completions" => match method {
            "POST" => Ok(Route::OpenAiChat),
            _ => Err(not_allowed("POST")),
        },
        "/v1/models" => match method {
            "GET" => Ok(Route::OpenAiModels),
            _ => Err(not_allowed("GET")),
        },
        _ => {
            if let Some(rest) = path.strip_prefix("/api/chat/history/") {
                match method {
                    "GET" => Ok(Route::History(user_segment(rest)?)),
                    "DELETE" => Ok(Route::DeleteHistory(user_segment(rest)?)),
                    _ => Err(not_allowed("GET, DELETE")),
                }
            } else if let Some(rest) = path.strip_prefix("/api/chat/summary/") {
                match method {
                    "GET" => Ok(Route::Summary(user_segment(rest)?)),
                    _ => Err(not_allowed("GET")),
                }
            } else {
                Err(ApiError::NotFound(path.to_owned()))
            }
        }
    }
}

mod streaming;

/// One turn, from either API, ready to be answered.
pub struct TurnRequest {
    user: String,
    message: String,
    context: Option<ChatContext>,
    wants_backend: bool,
    stream: bool,
    flavour: Flavour,
    started_ms: u64,
    request_id: String,
}

fn accepts_events(req: &HttpRequest) -> bool {
    req.header("accept")
        .is_some_and(|a| a.contains("text/event-stream"))
}

/// OpenAI's `chat.completion` for a whole answer, with the Eindr fields alongside.
fn openai_completion(openai: &OpenAiTurn, summary: &RespondResponse) -> Value {
    json!({
        "id": openai.id,
        "object": "chat.completion",
        "created": openai.created_s,
        "model": openai.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": summary.response},
            "finish_reason": "stop",
        }],
        "fallback_used": summary.fallback_used,
        "model_info": summary.model_info,
    })
}

pub use streaming::{BodySink, Served, SinkClosed, StreamingTurn};

pub struct EdgeApp {
    config: EdgeConfig,
    auth: Authenticator,
    history: HistoryCodec,
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
        let _entered = span.enter();
        let mut reply = match self.dispatch(req, svc, &request_id).await {
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
        reply.head_mut().set_header("x-request-id", request_id);
        reply
    }

    async fn dispatch<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        svc: &Services<'_, S, O>,
        request_id: &str,
    ) -> Result<Served, ApiError> {
        let route = route(&req.method, req.route_path())?;
        if route == Route::Health {
            return Ok(Served::Whole(HttpResponse::json(
                200,
                &json!({"status": "ok"}),
            )));
        }
        let principal = self.authenticate(req, svc).await?;
        let decision = self.admit(&principal, svc).await?;
        let result = match route {
            Route::Respond => self.respond(req, &principal, svc, request_id).await,
            Route::History(user) => self
                .history(req, &principal, &user, svc)
                .await
                .map(Served::Whole),
            Route::DeleteHistory(user) => self
                .delete_history(&principal, &user, svc)
                .await
                .map(Served::Whole),
            Route::Summary(user) => self
                .summary(&principal, &user, svc)
                .await
                .map(Served::Whole),
            Route::ChatHealth => Ok(Served::Whole(self.chat_health(svc).await)),
            Route::ModelInfo => Ok(Served::Whole(self.model_info())),
            Route::OpenAiChat => self.openai_chat(req, &principal, svc, request_id).await,
            Route::OpenAiModels => Ok(Served::Whole(self.models())),
            Route::Health => Ok(Served::Whole(HttpResponse::json(
                200,
                &json!({"status": "ok"}),
            ))),
        };
        let mut reply = result.unwrap_or_else(|e| Served::Whole(e.to_response()));
        for (name, value) in decision.headers() {
            reply.head_mut().set_header(name, value);
        }
        Ok(reply)
    }

    /// Verifies the bearer token; failures count against the client address.
    async fn authenticate<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        svc: &Services<'_, S, O>,
    ) -> Result<Principal, ApiError> {
        let now = svc.clock.now_ms();
        match self.auth.authenticate(req.header("authorization"), now) {
            Ok(principal) => Ok(principal),
            Err(error) => {
                let addr = req.client_addr.as_deref().unwrap_or("unknown");
                let key = StoreKey {
                    kind: RecordKind::AuthFailures,
                    owner: addr,
                };
                let decision = consume(svc, key, self.config.auth_failure_limit).await?;
                tracing::info!(target: "audit", client = addr, reason = error.code(), "authentication failed");
                if decision.allowed {
                    Err(ApiError::Unauthenticated(error))
                } else {
                    Err(ApiError::AuthFailuresExceeded {
                        retry_after_s: decision.retry_after_s,
                    })
                }
            }
        }
    }

    /// Applies the per-user rate limit.
    async fn admit<S: ConversationStore, O: Outbound>(
        &self,
        principal: &Principal,
        svc: &Services<'_, S, O>,
    ) -> Result<Decision, ApiError> {
        let key = StoreKey {
            kind: RecordKind::RateLimit,
            owner: &principal.user_id,
        };
        let decision = consume(svc, key, self.config.rate_limit).await?;
        if decision.allowed {
            Ok(decision)
        } else {
            Err(ApiError::RateLimited(decision))
        }
    }

    async fn respond<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        principal: &Principal,
        svc: &Services<'_, S, O>,
        request_id: &str,
    ) -> Result<Served, ApiError> {
        let started_ms = svc.clock.now_ms();
        let body = parse_respond(req, &self.config)?;
        let wants_backend = match body.mode {
            Mode::Minimal => false,
            Mode::Full => true,
            Mode::Auto => !self.config.minimal_mode,
        };
        let stream = body.stream || accepts_events(req);
        let turn = TurnRequest {
            user: principal.user_id.clone(),
            message: body.message,
            context: body.context,
            wants_backend,
            stream,
            flavour: Flavour::Eindr,
            started_ms,
            request_id: request_id.to_owned(),
        };
        self.take_turn(turn, svc).await
    }

    /// OpenAI's chat completion over the same turn: the JWT is the API key.
    async fn openai_chat<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        principal: &Principal,
        svc: &Services<'_, S, O>,
        request_id: &str,
    ) -> Result<Served, ApiError> {
        let started_ms = svc.clock.now_ms();
        let body = parse_openai(req, &self.config)?;
        let message = openai_message(&body, &self.config)?;
        let model = self.config.generation.model_name.clone();
        if let Some(asked) = body.model.as_deref().filter(|m| *m != model) {
            tracing::debug!(asked, served = %model, "model name differs; answering with ours");
        }
        let turn = TurnRequest {
            user: principal.user_id.clone(),
            message,
            context: None,
            wants_backend: !self.config.minimal_mode,
            stream: body.stream,
            flavour: Flavour::OpenAi(OpenAiTurn {
                id: format!("chatcmpl-{request_id}"),
                created_s: started_ms / 1000,
                model,
            }),
            started_ms,
            request_id: request_id.to_owned(),
        };
        self.take_turn(turn, svc).await
    }

    fn models(&self) -> HttpResponse {
        HttpResponse::json(
            200,
            &json!({
                "object": "list",
                "data": [{
                    "id": self.config.generation.model_name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "eindr",
                }],
            }),
        )
    }

    /// Answers a turn: streamed (the adapter sends the head, then runs `stream`), or whole.
    async fn take_turn<S: ConversationStore, O: Outbound>(
        &self,
        turn: TurnRequest,
        svc: &Services<'_, S, O>,
    ) -> Result<Served, ApiError> {
        if turn.stream {
            return Ok(Served::Stream(StreamingTurn::new(turn)));
        }
        let context = turn.context.as_ref();
        let user_intent = context.and_then(|c| c.intent.clone());
        let generated = if turn.wants_backend {
            let result = backend::generate(
                &self.config,
                &self.history,
                svc,
                &turn.user,
                &turn.message,
                context,
            )
            .await;
            if let Err(failure) = &result {
                // The fallback counter: one log line per turn the edge answered itself.
                tracing::warn!(target: "fallback", reason = failure.reason(), %failure, "full mode fell back to minimal");
            }
            result.ok()
        } else {
            None
        };
        let fallback_used =
            turn.wants_backend && generated.as_ref().is_none_or(|g| g.cut.is_some());
        let roll = svc.random.next_u64();
        let (reply, engine) = self
            .append_exchange(&turn.user, &turn.message, user_intent, svc, |previous| {
                let mut reply = minimal_reply(&turn.message, context, previous, roll);
                let mut engine = MINIMAL_ENGINE;
                if let Some(g) = &generated {
                    // What the user receives is what history keeps: a cut answer ends with
                    // the reply engine's closing sentence.
                    reply.text = match &g.cut {
                        None => g.text.clone(),
                        Some(_) => format!("{} {}", g.text, closing_sentence(roll)),
                    };
                    reply.context_used = context.is_some();
                    engine = g.engine;
                }
                (reply, engine)
            })
            .await?;
        let summary = self.summary_of(&turn, reply, engine, fallback_used, svc.clock.now_ms());
        let body = match &turn.flavour {
            Flavour::Eindr => serde_json::to_value(&summary).unwrap_or(Value::Null),
            Flavour::OpenAi(openai) => openai_completion(openai, &summary),
        };
        Ok(Served::Whole(HttpResponse::json(200, &body)))
    }

    fn summary_of(
        &self,
        turn: &TurnRequest,
        reply: Reply,
        engine: &'static str,
        fallback_used: bool,
        finished_ms: u64,
    ) -> RespondResponse {
        RespondResponse {
            success: true,
            response: reply.text,
            context_used: reply.context_used,
            fallback_used,
            model_info: ModelInfo {
                model_name: self.config.generation.model_name.clone(),
                inference_engine: engine,
                response_time: finished_ms.saturating_sub(turn.started_ms) as f64 / 1000.0,
            },
        }
    }

    /// Appends the user's message and the reply to the user's history in one atomic update.
    /// `reply_to` makes the reply from the last assistant turn (so a minimal reply never
    /// repeats it); it may run more than once on compare-and-swap stores.
    async fn append_exchange<S: ConversationStore, O: Outbound>(
        &self,
        user: &str,
        message: &str,
        user_intent: Option<String>,
        svc: &Services<'_, S, O>,
        reply_to: impl Fn(Option<&str>) -> (Reply, &'static str),
    ) -> Result<(Reply, &'static str), ApiError> {
        let key = StoreKey {
            kind: RecordKind::History,
            owner: user,
        };
        let aad = key.flat();
        let policy = self.config.history;
        let mut outcome = None;
        svc.store
            .update(key, &mut |current| {
                let now = svc.clock.now_ms();
                let appended = self.history.read(current, aad.as_bytes(), |stored| {
                    // A shorter lifetime than the record's, so the new turns can borrow too.
                    let mut conversation: Conversation<'_> = stored;
                    policy.enforce(&mut conversation, now);
                    let previous = conversation
                        .turns
                        .iter()
                        .rev()
                        .find(|t| t.role == Role::Assistant)
                        .map(|t| t.content.as_ref());
                    let (reply, engine) = reply_to(previous);
                    conversation.turns.push(Turn {
                        role: Role::User,
                        content: Cow::Borrowed(message),
                        ts_ms: now,
                        intent: Some(Cow::Owned(
                            user_intent.clone().unwrap_or_else(|| reply.intent.clone()),
                        )),
                        engine: None,
                    });
                    conversation.turns.push(Turn {
                        role: Role::Assistant,
                        content: Cow::Owned(reply.text.clone()),
                        ts_ms: now,
                        intent: Some(Cow::Owned(reply.intent.clone())),
                        engine: Some(Cow::Borrowed(engine)),
                    });
                    policy.enforce(&mut conversation, now);
                    self.write(&conversation, &aad, now, svc)
                        .map(|write| (write, (reply, engine)))
                });
                match appended.and_then(|r| r) {
                    Ok((write, reply)) => {
                        outcome = Some(Ok(reply));
                        write
                    }
                    Err(e) => {
                        outcome = Some(Err(e));
                        StoreWrite::Keep
                    }
                }
            })
            .await?;
        Ok(outcome.ok_or(ApiError::Internal("history update did not run"))??)
    }

    fn write<S: ConversationStore, O: Outbound>(
        &self,
        conversation: &Conversation<'_>,
        aad: &str,
        now: u64,
        svc: &Services<'_, S, O>,
    ) -> Result<StoreWrite, crate::history::HistoryError> {
        if conversation.turns.is_empty() {
            return Ok(StoreWrite::Delete);
        }
        let mut nonce = [0u8; 12];
        svc.random.fill(&mut nonce);
        let bytes = self.history.encode(conversation, aad.as_bytes(), nonce)?;
        Ok(StoreWrite::Put {
            bytes,
            expires_at_ms: Some(self.config.history.expires_at(now)),
        })
    }

    /// Reads a user's conversation with retention applied; checks access and audits.
    async fn read_conversation<S: ConversationStore, O: Outbound>(
        &self,
        principal: &Principal,
        user: &str,
        action: &'static str,
        svc: &Services<'_, S, O>,
    ) -> Result<Conversation<'static>, ApiError> {
        self.check_access(principal, user, action, svc)?;
        let key = StoreKey {
            kind: RecordKind::History,
            owner: user,
        };
        let bytes = svc.store.get(key).await?;
        let mut conversation = self
            .history
            .decode(bytes.as_deref(), key.flat().as_bytes())?;
        self.config
            .history
            .enforce(&mut conversation, svc.clock.now_ms());
        Ok(conversation)
    }

    fn check_access<S: ConversationStore, O: Outbound>(
        &self,
        principal: &Principal,
        user: &str,
        action: &'static str,
        svc: &Services<'_, S, O>,
    ) -> Result<(), ApiError> {
        let allowed = principal.may_access(user);
        tracing::info!(
            target: "audit",
            actor = %principal.user_id,
            subject = %user,
            action,
            admin = principal.admin,
            allowed,
            at = %rfc3339(svc.clock.now_ms()),
            "history access"
        );
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "you may only {action} your own history"
            )))
        }
    }

    async fn history<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        principal: &Principal,
        user: &str,
        svc: &Services<'_, S, O>,
    ) -> Result<HttpResponse, ApiError> {
        let limit = match req.query_param("limit") {
            None => None,
            Some(text) => Some(
                text.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid("invalid_limit", "limit must be an integer in 1..=10000")
                    })?,
            ),
        };
        let conversation = self.read_conversation(principal, user, "read", svc).await?;
        let turns = &conversation.turns;
        let skip = limit.map_or(0, |l| turns.len().saturating_sub(l));
        let messages: Vec<Value> = turns[skip..]
            .iter()
            .map(|t| {
                json!({
                    "role": t.role,
                    "content": t.content,
                    "timestamp": rfc3339(t.ts_ms),
                    "intent": t.intent,
                })
            })
            .collect();
        Ok(HttpResponse::json(
            200,
            &json!({
                "success": true,
                "user_id": user,
                "count": messages.len(),
                "total": turns.len(),
                "messages": messages,
            }),
        ))
    }

    async fn delete_history<S: ConversationStore, O: Outbound>(
        &self,
        principal: &Principal,
        user: &str,
        svc: &Services<'_, S, O>,
    ) -> Result<HttpResponse, ApiError> {
        self.check_access(principal, user, "delete", svc)?;
        let key = StoreKey {
            kind: RecordKind::History,
            owner: user,
        };
        let aad = key.flat();
        let mut outcome = None;
        svc.store
            .update(key, &mut |current| {
                match self.history.decode(current, aad.as_bytes()) {
                    Ok(mut c) => {
                        self.config.history.enforce(&mut c, svc.clock.now_ms());
                        outcome = Some(Ok(c.turns.len()));
                        StoreWrite::Delete
                    }
                    // Unreadable history is kept: deleting what we can't read could hide a
                    // configuration mistake (a wrong key) and lose data for good.
                    Err(e) => {
                        outcome = Some(Err(e));
                        StoreWrite::Keep
                    }
                }
            })
            .await?;
        let deleted = outcome.ok_or(ApiError::Internal("history update did not run"))??;
        Ok(HttpResponse::json(
            200,
            &json!({"success": true, "user_id": user, "deleted": deleted}),
        ))
    }

    async fn summary<S: ConversationStore, O: Outbound>(
        &self,
        principal: &Principal,
        user: &str,
        svc: &Services<'_, S, O>,
    ) -> Result<HttpResponse, ApiError> {
        let conversation = self
            .read_conversation(principal, user, "summarise", svc)
            .await?;
        let turns = &conversation.turns;
        let mut counts: Vec<(String, usize)> = Vec::new();
        for intent in turns
            .iter()
            .filter(|t| t.role == Role::User)
            .filter_map(|t| t.intent.as_ref())
        {
            match counts.iter_mut().find(|(i, _)| i == intent) {
                Some((_, n)) => *n += 1,
                None => counts.push((intent.to_string(), 1)),
            }
        }
        // Most frequent first; ties in order of first appearance (the sort is stable).
        counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let top: Vec<Value> = counts
            .iter()
            .take(5)
            .map(|(intent, count)| json!({"intent": intent, "count": count}))
            .collect();
        let user_turns = turns.iter().filter(|t| t.role == Role::User).count();
        Ok(HttpResponse::json(
            200,
            &json!({
                "success": true,
                "user_id": user,
                "message_count": turns.len(),
                "user_message_count": user_turns,
                "assistant_message_count": turns.len() - user_turns,
                "first_timestamp": turns.first().map(|t| rfc3339(t.ts_ms)),
                "last_timestamp": turns.last().map(|t| rfc3339(t.ts_ms)),
                "top_intents": top,
                "last_user_message": turns.iter().rev().find(|t| t.role == Role::User).map(|t| &t.content),
            }),
        ))
    }

    /// The engine full-mode turns go to while the backend answers.
    fn configured_engine(&self) -> &'static str {
        if self.config.minimal_mode || self.config.backend.url.is_none() {
            MINIMAL_ENGINE
        } else {
            backend::VLLM_ENGINE
        }
    }

    async fn chat_health<S: ConversationStore, O: Outbound>(
        &self,
        svc: &Services<'_, S, O>,
    ) -> HttpResponse {
        let c = &self.config;
        let backend_health = backend::probe(svc.outbound, svc.clock, &c.backend).await;
        let breaker = match svc.store.get(backend::BREAKER_KEY).await {
            Ok(bytes) => {
                let state = backend::breaker::BreakerState::decode(bytes.as_deref());
                if state.is_open(backend::breaker_policy(c)) {
                    "open"
                } else {
                    "closed"
                }
            }
            Err(_) => "unknown",
        };
        let engine = match (self.configured_engine(), backend_health.reachable) {
            (MINIMAL_ENGINE, _) | (_, false) => MINIMAL_ENGINE,
            (engine, true) => engine,
        };
        HttpResponse::json(
            200,
            &json!({
                "success": true,
                "status": "healthy",
                "mode": if c.minimal_mode { "minimal" } else { "full" },
                "minimal_mode": c.minimal_mode,
                "inference_engine": engine,
                "backend": backend_health,
                "circuit_breaker": breaker,
                "store": "ok",
                "history": {
                    "encrypted": self.history.is_sealed(),
                    "max_turns": c.history.max_turns,
                    "retention_days": c.history.retention_ms as f64 / 86_400_000.0,
                },
                "rate_limit": {"per_minute": c.rate_limit.per_minute, "burst": c.rate_limit.burst},
                "auth": {"algorithms": self.auth.algorithms()},
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )
    }

    fn model_info(&self) -> HttpResponse {
        let g = &self.config.generation;
        HttpResponse::json(
            200,
            &json!({
                "success": true,
                "model_name": g.model_name,
                "inference_engine": self.configured_engine(),
                "minimal_mode": self.config.minimal_mode,
                "max_model_len": g.max_model_len,
                "generation": {
                    "max_tokens": g.max_tokens,
                    "temperature": g.temperature,
                    "top_p": g.top_p,
                    "top_k": g.top_k,
                    "repetition_penalty": g.repetition_penalty,
                },
            }),
        )
    }
}

/// Reads one `Decision` from the store's GCRA state and records the consumed cell.
async fn consume<S: ConversationStore, O: Outbound>(
    svc: &Services<'_, S, O>,
    key: StoreKey<'_>,
    quota: Quota,
) -> Result<Decision, ApiError> {
    let mut outcome = None;
    svc.store
        .update(key, &mut |current| {
            let now = svc.clock.now_ms();
            let (decision, tat) = rate_limit::check(quota, rate_limit::decode_tat(current), now);
            outcome = Some(decision);
            if decision.allowed {
                StoreWrite::Put {
                    bytes: rate_limit::encode_tat(tat),
                    // Past its theoretical arrival time (µs) the state equals a fresh one.
                    expires_at_ms: Some(tat.div_ceil(1000)),
                }
            } else {
                StoreWrite::Keep
            }
        })
        .await?;
    outcome.ok_or(ApiError::Internal("rate limit update did not run"))
}

fn parse_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    config: &EdgeConfig,
) -> Result<T, ApiError> {
    let is_json = req.header("content-type").is_some_and(|ct| {
        let mime = ct.split(';').next().unwrap_or("").trim();
        mime.eq_ignore_ascii_case("application/json")
    });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit = config.limits.max_body_bytes;
    if req.body.len() > limit {
        return Err(ApiError::PayloadTooLarge {
            size: req.body.len(),
            limit,
        });
    }
    serde_json::from_slice(&req.body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid("invalid_request", e.to_string()),
        _ => ApiError::InvalidJson(e.to_string()),
    })
}

fn validate_message(message: &str, config: &EdgeConfig) -> Result<(), ApiError> {
    if message.trim().is_empty() {
        return Err(ApiError::invalid(
            "empty_message",
            "message must not be empty",
        ));
    }
    let chars = message.chars().count();
    if chars > config.limits.max_message_chars {
        return Err(ApiError::invalid(
            "message_too_long",
            format!(
                "message is {chars} characters; the limit is {}",
                config.limits.max_message_chars
            ),
        ));
    }
    Ok(())
}

/// Checks content type and size, then parses and validates a `respond` body.
fn parse_respond(req: &HttpRequest, config: &EdgeConfig) -> Result<RespondRequest, ApiError> {
    let body: RespondRequest = parse_json(req, config)?;
    validate_message(&body.message, config)?;
    Ok(body)
}

/// The new user message of an OpenAI chat request: its last message, which must be the
/// user's. Earlier messages are not used: the edge keeps the conversation itself.
fn parse_openai(req: &HttpRequest, config: &EdgeConfig) -> Result<OpenAiChatRequest, ApiError> {
    let body: OpenAiChatRequest = parse_json(req, config)?;
    Ok(body)
}

fn openai_message(body: &OpenAiChatRequest, config: &EdgeConfig) -> Result<String, ApiError> {
    let last = body
        .messages
        .last()
        .filter(|m| m.role == "user")
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_messages",
                "messages must end with the user's message",
            )
        })?;
    let message = last.content.as_ref().map(|c| c.text()).unwrap_or_default();
    validate_message(&message, config)?;
    Ok(message)
}
