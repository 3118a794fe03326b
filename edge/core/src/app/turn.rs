//! One turn, from either API, through one pipeline: the answer is made (by gpu-backend in full
//! mode, else or on any failure by the reply engine), written into a [`DeltaSink`] as it comes,
//! and the exchange stored in the user's history exactly as the user received it. A streamed
//! answer's sink is the client's event stream; a whole answer's sink collects.

use std::sync::OnceLock;

use eindr_contract::InferenceEngine;
use eindr_contract::openai::Usage;

use super::body::{parse_openai, parse_respond};
use super::cached::{CACHE_HEADER, CACHE_KEY_HEADER, CacheControl, Prepared, cached_answer};
use super::streaming::{Served, StreamingTurn};
use super::{EdgeApp, answer};
use crate::api::{ChatContext, Flavour, Mode, OpenAiTurn};
use crate::auth::Principal;
use crate::backend::{self, BackendFailure};
use crate::error::ApiError;
use crate::facts::{self, TurnFacts};
use crate::history::Turn;
use crate::http::HttpRequest;
use crate::platform::{ConversationStore, Outbound, Services};
use crate::replies::{Reply, closing_sentence, minimal_reply};
use crate::response_cache::CachedAnswer;
use crate::spoken::SpokenText;
use crate::understanding::{self, AssistantName, Prediction, Reading};

/// One turn, from either API, ready to be answered.
pub struct TurnRequest {
    pub(super) user: String,
    pub(super) message: String,
    pub(super) context: Option<ChatContext>,
    pub(super) wants_backend: bool,
    pub(super) stream: bool,
    pub(super) flavour: Flavour,
    pub(super) started_ms: u64,
    pub(super) request_id: String,
    pub(super) cache_control: CacheControl,
    /// Read before the head goes out (full-mode turns): the conversation and the cache.
    pub(super) prepared: Option<Prepared>,
    /// The intent model's prediction, made at most once: a cacheable turn needs it for the
    /// cache key before the head and for the reply after.
    pub(super) prediction: OnceLock<Option<Prediction<'static>>>,
}

impl TurnRequest {
    /// How the turn is understood (the upstream intent, else the model's reading of a
    /// message that may address the assistant by name, `ASSISTANT_NAME`).
    pub(super) fn reading(&self, assistant: &AssistantName) -> Reading<'_> {
        understanding::read_with(self.context.as_ref(), || {
            *self
                .prediction
                .get_or_init(|| understanding::understand(&self.message, assistant))
        })
    }
}

/// Where a turn's answer goes as it is made.
#[allow(async_fn_in_trait)]
pub(super) trait DeltaSink {
    /// Passes `text` on (nothing when it is empty or the client is gone) and keeps it.
    async fn delta(&mut self, text: &str);
    /// Everything passed on so far.
    fn delivered(&self) -> &str;
    fn client_gone(&self) -> bool;
    /// Whether an answer cut after some text is finished with a closing sentence (an OpenAI
    /// stream ends with an error event instead: its clients have no place for one).
    fn closes_cut_answers(&self) -> bool;
    /// When (clock ms) the first text delta reached the client, for a sink that streams.
    fn first_delta_ms(&self) -> Option<u64> {
        None
    }
}

/// How a turn was answered; the text is the sink's.
pub(super) struct TurnOutcome {
    pub engine: InferenceEngine,
    pub fallback_used: bool,
    /// The backend's answer broke off after some text.
    pub cut: bool,
    pub context_used: bool,
    /// What the user received and history keeps.
    pub text: String,
    /// The intent the turn was read as, and how sure of it the reading was.
    pub intent: String,
    pub confidence: f32,
    /// The answer came from the cache of model answers.
    pub cached: bool,
    /// The backend's token counts for the answer it made (none when no model ran).
    pub usage: Option<Usage>,
}

/// A model answer relayed into the sink.
pub(super) struct BackendAnswer {
    pub engine: InferenceEngine,
    /// The failure that broke it off after some text.
    pub cut: Option<BackendFailure>,
    /// It ended with the backend's own end (not cut, not left by the client).
    pub complete: bool,
    /// The PII filter changed some of it.
    pub masked: bool,
    pub usage: Option<Usage>,
}

fn accepts_events(req: &HttpRequest) -> bool {
    req.header("accept")
        .is_some_and(|a| a.contains("text/event-stream"))
}

impl EdgeApp {
    /// `POST /api/chat/respond`.
    pub(super) async fn respond<S: ConversationStore, O: Outbound>(
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
        let turn = TurnRequest {
            user: principal.user_id.clone(),
            message: body.message,
            context: body.context,
            wants_backend,
            stream: body.stream || accepts_events(req),
            flavour: Flavour::Eindr,
            started_ms,
            request_id: request_id.to_owned(),
            cache_control: CacheControl::of(req),
            prepared: None,
            prediction: OnceLock::new(),
        };
        self.take_turn(turn, svc).await
    }

    /// `POST /v1/chat/completions`: OpenAI's chat completion over the same turn; the JWT is
    /// the API key.
    pub(super) async fn openai_chat<S: ConversationStore, O: Outbound>(
        &self,
        req: &HttpRequest,
        principal: &Principal,
        svc: &Services<'_, S, O>,
        request_id: &str,
    ) -> Result<Served, ApiError> {
        let started_ms = svc.clock.now_ms();
        let (body, message) = parse_openai(req, &self.config)?;
        let generation = &self.config.generation;
        // OpenAI requires `model`; a request without one gets the served model (curl users
        // and older clients), one naming another model a 404 as OpenAI answers it.
        if let Some(asked) = body.model.as_deref().filter(|m| !generation.serves(m)) {
            return Err(ApiError::ModelNotFound(asked.to_owned()));
        }
        let model = generation.model_name.clone();
        let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
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
                include_usage,
            }),
            started_ms,
            request_id: request_id.to_owned(),
            cache_control: CacheControl::of(req),
            prepared: None,
            prediction: OnceLock::new(),
        };
        self.take_turn(turn, svc).await
    }

    /// A streamed turn comes back as its head (the adapter sends it, then runs
    /// [`EdgeApp::stream`]); a whole one is run here into a collecting sink.
    async fn take_turn<S: ConversationStore, O: Outbound>(
        &self,
        mut turn: TurnRequest,
        svc: &Services<'_, S, O>,
    ) -> Result<Served, ApiError> {
        if turn.wants_backend {
            turn.prepared = Some(self.prepare(&turn, svc).await);
        }
        let cache_header = turn
            .prepared
            .as_ref()
            .map_or("BYPASS", |p| p.cache.header());
        let key_header = turn.prepared.as_ref().and_then(|p| p.cache.key_header());
        let mut served = if turn.stream {
            Served::Stream(StreamingTurn::new(turn))
        } else {
            let mut collected = answer::Collected::default();
            let outcome = self.run_turn(&turn, svc, &mut collected).await?;
            Served::Whole(self.whole_answer(&turn, outcome, svc.clock.now_ms()))
        };
        let head = served.head_mut();
        head.set_header(CACHE_HEADER, cache_header.to_owned());
        if let Some(kind) = key_header {
            head.set_header(CACHE_KEY_HEADER, kind.to_owned());
        }
        Ok(served)
    }

    /// The pipeline every turn runs. `Err` only when the exchange could not be stored.
    pub(super) async fn run_turn<S: ConversationStore, O: Outbound, K: DeltaSink>(
        &self,
        turn: &TurnRequest,
        svc: &Services<'_, S, O>,
        sink: &mut K,
    ) -> Result<TurnOutcome, ApiError> {
        let roll = svc.random.next_u64();
        let context = turn.context.as_ref();
        let reading = turn.reading(&self.config.assistant);
        let prepared = turn.prepared.as_ref();
        let hit = prepared.is_some_and(|p| p.cache.hit);
        let mut fallback_reason = None;
        let answered = match prepared {
            Some(prepared) if turn.wants_backend && !hit => {
                // gpu-backend hears what the edge understood when nobody upstream said.
                let informed = informed_context(context, &reading);
                match self
                    .answer_from_backend(
                        prepared,
                        &turn.message,
                        informed.as_ref().or(context),
                        svc,
                        sink,
                        roll,
                    )
                    .await
                {
                    Ok(answered) => Some(answered),
                    Err(failure) => {
                        // The fallback counter: one log line per turn the edge answered itself.
                        tracing::warn!(target: "fallback", reason = failure.reason(), %failure, "full mode fell back to minimal");
                        fallback_reason = Some(failure.reason());
                        None
                    }
                }
            }
            _ => None,
        };
        let delivered = sink.delivered().trim().to_owned();
        let mode = self.config.cache.mode;
        // Without the backend's answer: a cached model answer for the same question when
        // there is one (a hit, or the backend failed), else the reply engine, from the
        // previous assistant turn as stored (so it never repeats itself word for word, and
        // "repeat" can).
        let (reply, engine) = self
            .append_exchange(&turn.user, &turn.message, reading.intent, svc, |previous| {
                match &answered {
                    None => match cached_answer(prepared, mode, previous.map(|p| p.text), roll) {
                        Some(cached) => (
                            Reply {
                                text: cached.text.clone(),
                                intent: reading.intent.to_owned(),
                                context_used: context.is_some(),
                            },
                            cached.engine,
                        ),
                        None => (
                            minimal_reply(
                                &reading,
                                context,
                                previous,
                                roll,
                                self.config.assistant.display(),
                            ),
                            InferenceEngine::Minimal,
                        ),
                    },
                    Some(answer) => {
                        let reply = Reply {
                            text: delivered.clone(),
                            intent: reading.intent.to_owned(),
                            context_used: context.is_some(),
                        };
                        (reply, answer.engine)
                    }
                }
            })
            .await?;
        // Only the cache gives a model's engine to an answer the backend did not make.
        let cached = answered.is_none() && engine != InferenceEngine::Minimal;
        if cached && !hit {
            let key = prepared
                .and_then(|p| p.cache.key_header())
                .unwrap_or("none");
            tracing::info!(target: "cache", outcome = "fallback", key, "cached answer instead of the rule reply");
        }
        if answered.is_none() {
            sink.delta(&reply.text).await;
        }
        if let (Some(prepared), Some(answer)) = (prepared, &answered)
            && answer.complete
        {
            let fresh = CachedAnswer {
                text: reply.text.clone(),
                engine: answer.engine,
            };
            self.remember(turn, &prepared.cache, fresh, answer.masked, svc)
                .await;
        }
        let cut = answered.as_ref().is_some_and(|a| a.cut.is_some());
        let fallback_used = turn.wants_backend && !hit && (answered.is_none() || cut);
        // One line per stored turn, without its text: what answered it (metrics count these).
        tracing::info!(target: "turn", engine = engine.as_str(), fallback_used, cached, intent = reply.intent.as_str(), "turn answered");
        let now = svc.clock.now_ms();
        let cache = prepared.map(|p| &p.cache);
        facts::emit_turn(
            svc.facts,
            &TurnFacts {
                api: match turn.flavour {
                    Flavour::Eindr => "eindr",
                    Flavour::OpenAi(_) => "openai",
                },
                streamed: turn.stream,
                engine: engine.as_str(),
                fallback: fallback_used,
                fallback_reason: fallback_reason.or_else(|| {
                    answered
                        .as_ref()
                        .and_then(|a| a.cut.as_ref())
                        .map(|f| f.reason())
                }),
                cache: cache.map_or("bypass", |c| c.outcome()),
                cache_key: cache.and_then(|c| c.key_header()),
                intent_family: reading.kind.family(),
                duration_ms: now.saturating_sub(turn.started_ms),
                first_delta_ms: sink
                    .first_delta_ms()
                    .map(|at| at.saturating_sub(turn.started_ms)),
            },
        );
        Ok(TurnOutcome {
            engine,
            fallback_used,
            cut,
            context_used: reply.context_used,
            text: reply.text,
            intent: reply.intent,
            confidence: reading.confidence,
            cached,
            usage: answered.as_ref().and_then(|a| a.usage),
        })
    }

    /// Relays gpu-backend's answer into the sink. `Ok` once text was delivered (a cut answer
    /// is finished with a closing sentence where the sink takes one); `Err` when nothing
    /// usable came.
    pub(super) async fn answer_from_backend<S: ConversationStore, O: Outbound, K: DeltaSink>(
        &self,
        prepared: &Prepared,
        message: &str,
        context: Option<&ChatContext>,
        svc: &Services<'_, S, O>,
        sink: &mut K,
        roll: u64,
    ) -> Result<BackendAnswer, BackendFailure> {
        let history: &[Turn<'_>] = match &prepared.conversation {
            Ok(conversation) => &conversation.turns,
            Err(failure) => return Err(failure.clone()),
        };
        let config = &self.config;
        let mut answer = backend::start(
            &config.backend,
            &config.generation,
            svc,
            history,
            message,
            context,
        )
        .await?;
        let mut complete = false;
        // What the user hears and history keeps: plain text, no markdown or emoji.
        let mut spoken = SpokenText::default();
        let cut = loop {
            match answer.next_text().await {
                Ok(Some(text)) => {
                    sink.delta(&spoken.push(&text)).await;
                    if sink.client_gone() {
                        break None;
                    }
                }
                Ok(None) => {
                    complete = true;
                    break None;
                }
                Err(failure) => break Some(failure),
            }
        };
        let rest = spoken.push(&answer.flush()) + &spoken.finish();
        sink.delta(&rest).await;
        let outcome = match (cut, sink.delivered().trim().is_empty()) {
            (Some(failure), true) => Err(failure),
            (None, true) => Err(BackendFailure::Empty),
            (cut, false) => Ok(cut),
        };
        backend::settle(&config.backend, svc, outcome.as_ref().map(Option::as_ref)).await;
        let cut = outcome?;
        if let Some(failure) = &cut {
            tracing::warn!(target: "fallback", reason = failure.reason(), %failure, "answer cut; closed by the edge");
            if sink.closes_cut_answers() {
                let space = if sink.delivered().ends_with(char::is_whitespace) {
                    ""
                } else {
                    " "
                };
                sink.delta(&format!("{space}{}", closing_sentence(roll)))
                    .await;
            }
        }
        Ok(BackendAnswer {
            engine: answer.engine(),
            complete: complete && cut.is_none() && !sink.client_gone(),
            masked: answer.masked_anything(),
            cut,
            usage: answer.usage(),
        })
    }
}

/// The context for gpu-backend with the edge's reading filled in where the client sent no
/// intent; `None` when the client's context already names one.
pub(super) fn informed_context(
    context: Option<&ChatContext>,
    reading: &Reading<'_>,
) -> Option<ChatContext> {
    if reading.upstream || context.is_some_and(|c| c.intent.is_some()) {
        return None;
    }
    let mut informed = context.cloned().unwrap_or_default();
    informed.intent = Some(reading.intent.to_owned());
    informed.confidence = Some(f64::from(reading.confidence));
    Some(informed)
}
