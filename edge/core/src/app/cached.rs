//! A full-mode turn and the cache of model answers (see [`crate::response_cache`]): before the
//! response head goes out, the user's conversation is read (the prompt's history) and, for a
//! turn whose prompt holds nothing personal, its pool; so `x-cache` can say `HIT`, `MISS` or
//! `BYPASS`. After the turn, a model answer that ended normally joins the pool.

use super::EdgeApp;
use super::turn::TurnRequest;
use crate::api::ChatContext;
use crate::backend::BackendFailure;
use crate::error::ApiError;
use crate::history::Conversation;
use crate::http::HttpRequest;
use crate::platform::{ConversationStore, Outbound, Services};
use crate::response_cache::{self, CacheMode, CachedAnswer, KeyKind, Pool, Question, shared};

/// The response header that says how the cache took part in a turn.
pub const CACHE_HEADER: &str = "x-cache";
/// The response header that names the kind of the turn's pool (`intent` or `exact`), when it
/// had one.
pub const CACHE_KEY_HEADER: &str = "x-cache-key";

/// The request's `Cache-Control`: `no-cache` (don't answer from the cache) and `no-store`
/// (don't keep this answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_cache: bool,
    pub no_store: bool,
}

impl CacheControl {
    pub fn of(req: &HttpRequest) -> Self {
        let mut control = Self::default();
        for directive in req.header("cache-control").unwrap_or("").split(',') {
            match directive.trim().to_ascii_lowercase().as_str() {
                "no-cache" => control.no_cache = true,
                "no-store" => control.no_store = true,
                _ => {}
            }
        }
        control
    }
}

/// What a full-mode turn knows before it is answered.
pub(super) struct Prepared {
    /// The user's conversation, retention applied; the failure the backend call reports when
    /// the store could not be read.
    pub conversation: Result<Conversation<'static>, BackendFailure>,
    pub cache: CacheLookup,
}

/// The turn's pool, as read before the head.
#[derive(Debug, Default)]
pub(super) struct CacheLookup {
    /// The pool's key when the turn may use the cache (its prompt holds nothing personal).
    pub key: Option<String>,
    /// Whether that key is the turn's intent's shared pool or its exact words'.
    pub kind: Option<KeyKind>,
    /// What the pool held (empty when it was not read).
    pub pool: Pool,
    pub read: bool,
    /// A full pool in `serve` mode: answered from it, the backend not called.
    pub hit: bool,
}

impl CacheLookup {
    /// How the cache took part: the `x-cache` value and the log's outcome.
    fn took_part(&self) -> (&'static str, &'static str) {
        match (self.hit, self.read) {
            (true, _) => ("HIT", "hit"),
            (false, true) => ("MISS", "miss"),
            (false, false) => ("BYPASS", "bypass"),
        }
    }

    pub fn header(&self) -> &'static str {
        self.took_part().0
    }

    /// `hit`, `miss` or `bypass`.
    pub fn outcome(&self) -> &'static str {
        self.took_part().1
    }

    pub fn key_header(&self) -> Option<&'static str> {
        self.kind.map(KeyKind::as_str)
    }
}

/// Whether the context adds anything but an intent to the prompt: a transcription or a
/// task's result is the user's, and such a prompt's answer is never shared.
fn is_personal(context: Option<&ChatContext>) -> bool {
    context.is_some_and(|c| c.original_transcription.is_some() || c.processing_result.is_some())
}

impl EdgeApp {
    /// Reads the conversation and, when the turn may use it, the pool.
    pub(super) async fn prepare<S: ConversationStore, O: Outbound>(
        &self,
        turn: &TurnRequest,
        svc: &Services<'_, S, O>,
    ) -> Prepared {
        let read = self.read_conversation(&turn.user, svc).await;
        // Only a history read and found empty makes a history-free prompt.
        let history_free = read.as_ref().is_ok_and(|c| c.turns.is_empty());
        let conversation = match read {
            Ok(conversation) => Ok(conversation),
            Err(ApiError::Store(e)) => Err(BackendFailure::Store(e.to_string())),
            // Unreadable history is reported when the turn is stored; the backend answers
            // without it.
            Err(_) => Ok(Conversation::default()),
        };
        let settings = &self.config.cache;
        if settings.mode == CacheMode::Off || !history_free || is_personal(turn.context.as_ref()) {
            tracing::info!(target: "cache", outcome = "bypass", "not cacheable");
            return Prepared {
                conversation,
                cache: CacheLookup::default(),
            };
        }
        Prepared {
            conversation,
            cache: self.look_up(turn, svc).await,
        }
    }

    /// The pool of a turn whose prompt holds nothing personal: its key (the intent's shared
    /// pool or the exact words'), and, unless the request said `no-cache`, what it holds.
    pub(super) async fn look_up<S: ConversationStore, O: Outbound>(
        &self,
        turn: &TurnRequest,
        svc: &Services<'_, S, O>,
    ) -> CacheLookup {
        let settings = &self.config.cache;
        let context = turn.context.as_ref();
        let mut cache = CacheLookup::default();
        let reading = turn.reading(&self.config.assistant);
        let question = match shared::shared_intent(
            &reading,
            context.and_then(|c| c.confidence),
            &settings.shared_intents,
            settings.intent_min_confidence,
        ) {
            Some(intent) => Question::Intent(intent),
            None => Question::Exact {
                message: &turn.message,
                // The intent gpu-backend hears: the client's, else the edge's reading.
                intent: context
                    .and_then(|c| c.intent.as_deref())
                    .unwrap_or(reading.intent),
            },
        };
        let kind = question.kind();
        let key = response_cache::key(settings, &self.config.generation, question);
        if !turn.cache_control.no_cache {
            cache.read = true;
            cache.pool = match svc.cache.get(&key).await {
                Ok(bytes) => Pool::decode(bytes.as_deref(), svc.clock.now_ms()),
                Err(error) => {
                    tracing::warn!(target: "cache", outcome = "error", %error, "cache read failed");
                    Pool::default()
                }
            };
            // A full pool answers; so does one still filling whose last write was under a
            // second ago, since this turn's answer could not join it: a backend call then
            // would only repeat the work (a popular question's pool fills at one answer a
            // second, and every turn in between called the backend).
            let pool = &cache.pool;
            cache.hit = settings.mode == CacheMode::Serve
                && (pool.len() >= settings.pool_size
                    || (!pool.is_empty() && !pool.writable_at(svc.clock.now_ms())));
        }
        let outcome = cache.took_part().1;
        if cache.hit {
            self.cache_hits.count(kind);
        }
        tracing::info!(target: "cache", outcome, key = kind.as_str(), "cache looked up");
        cache.key = Some(key);
        cache.kind = Some(kind);
        cache
    }

    /// Adds a model answer that ended normally to the turn's pool, unless the request said
    /// `no-store` or the PII filter changed it. Whether the pool was written with it.
    pub(super) async fn remember<S: ConversationStore, O: Outbound>(
        &self,
        turn: &TurnRequest,
        lookup: &CacheLookup,
        answer: CachedAnswer,
        masked: bool,
        svc: &Services<'_, S, O>,
    ) -> bool {
        let settings = &self.config.cache;
        let Some(key) = &lookup.key else {
            return false;
        };
        if settings.mode == CacheMode::Off || turn.cache_control.no_store || masked {
            return false;
        }
        // A `no-cache` request did not read the pool: read it now, so its answer joins it.
        let mut pool = if lookup.read {
            lookup.pool.clone()
        } else {
            match svc.cache.get(key).await {
                Ok(bytes) => Pool::decode(bytes.as_deref(), svc.clock.now_ms()),
                Err(_) => return false,
            }
        };
        let now = svc.clock.now_ms();
        if !pool.add(answer, settings.pool_size, now, settings.ttl_s * 1000) {
            return false;
        }
        let ttl_s = pool.ttl_left_ms(now).div_ceil(1000).max(60);
        match svc.cache.put(key, pool.encode(), ttl_s).await {
            Ok(()) => {
                let key = lookup.kind.map_or("exact", KeyKind::as_str);
                tracing::info!(target: "cache", outcome = "stored", key, size = pool.len(), "answer cached");
                true
            }
            Err(error) => {
                tracing::warn!(target: "cache", outcome = "error", %error, "cache write failed");
                false
            }
        }
    }
}

/// The cached answer a turn gets without the backend: on a hit, or (in either mode) when the
/// backend failed before its first token. `previous` is the user's last reply, avoided.
pub(super) fn cached_answer<'p>(
    prepared: Option<&'p Prepared>,
    mode: CacheMode,
    previous: Option<&str>,
    roll: u64,
) -> Option<&'p CachedAnswer> {
    let lookup = &prepared?.cache;
    if mode == CacheMode::Off || lookup.key.is_none() {
        return None;
    }
    lookup.pool.draw(previous, roll)
}
