//! Cached model answers (`CACHE_MODE`). A full-mode answer whose prompt held nothing personal
//! (no history turns, no task data: only the persona, the generation settings, the model, the
//! message and its intent) is kept in a small pool. Its key hashes the model, its settings and
//! either the turn's shareable intent, when the edge read it as small talk sure enough
//! ([`shared`]: one pool for every phrasing), or exactly the normalised message and intent.
//! Later turns with the same key use the pool: as the fallback when the backend fails before
//! its first token, and in `serve` mode, once the pool is full, instead of calling the backend.
//!
//! The platform keeps the pools ([`ResponseCache`]): get, and put with a time to live. Pools
//! are read and rewritten without atomicity: a lost answer is harmless.

mod memory;
mod pool;
pub mod shared;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::LocalBoxFuture;
use thiserror::Error;

use crate::config::GenerationSettings;

pub use memory::{DEFAULT_MAX_KEYS, MemoryCache};
pub use pool::{CachedAnswer, Pool};
pub use shared::{KeyKind, Question};

/// What the cache is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Neither read nor written.
    Off,
    /// Filled by model answers; read only when the backend fails before its first token.
    Fallback,
    /// As `Fallback`, and a full pool answers without calling the backend.
    Serve,
}

impl CacheMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Fallback => "fallback",
            Self::Serve => "serve",
        }
    }
}

impl FromStr for CacheMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(Self::Off),
            "fallback" => Ok(Self::Fallback),
            "serve" => Ok(Self::Serve),
            _ => Err(()),
        }
    }
}

/// `CACHE_MODE`, `CACHE_POOL_SIZE`, `CACHE_TTL_SECONDS`, `CACHE_NAMESPACE`,
/// `CACHE_SHARED_INTENTS`, `CACHE_INTENT_MIN_CONFIDENCE`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub mode: CacheMode,
    /// Distinct answers kept per key; a full pool is what `serve` answers from.
    pub pool_size: usize,
    pub ttl_s: u64,
    /// Joins every key. gpu-backend's persona and weights are not visible to the edge: an
    /// operator who changes them changes this, and the old answers are never read again.
    pub namespace: String,
    /// Intents whose turns share one pool per intent (CLINC150 names; small talk only).
    pub shared_intents: Vec<&'static str>,
    /// The least confidence of the reading for a turn to use its intent's pool.
    pub intent_min_confidence: f32,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            mode: CacheMode::Fallback,
            pool_size: 8,
            ttl_s: 86_400,
            namespace: "1".into(),
            shared_intents: shared::all_small_talk(),
            intent_min_confidence: shared::DEFAULT_MIN_CONFIDENCE,
        }
    }
}

/// Turns answered from a pool without the backend, by key kind, since this instance started
/// (`/api/chat/health`; fleet-wide figures come from the `cache` log lines).
#[derive(Debug, Default)]
pub struct HitCounts {
    intent: AtomicU64,
    exact: AtomicU64,
}

impl HitCounts {
    fn counter(&self, kind: KeyKind) -> &AtomicU64 {
        match kind {
            KeyKind::Intent => &self.intent,
            KeyKind::Exact => &self.exact,
        }
    }

    pub fn count(&self, kind: KeyKind) {
        self.counter(kind).fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, kind: KeyKind) -> u64 {
        self.counter(kind).load(Ordering::Relaxed)
    }
}

#[derive(Debug, Error)]
#[error("response cache unavailable: {0}")]
pub struct CacheError(pub String);

/// Where the platform keeps pools. Not atomic; a failed call is logged and the turn goes on
/// as a miss. Object-safe (boxed futures, not `Send`: wasm requests run on one thread), so
/// [`crate::Services`] holds it as `&dyn ResponseCache`.
pub trait ResponseCache {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<Vec<u8>>, CacheError>>;

    /// Replaces the value; the store may drop it after `ttl_s` (pools carry their own expiry
    /// too, for stores without one).
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl_s: u64,
    ) -> LocalBoxFuture<'a, Result<(), CacheError>>;

    /// What keeps the pools, for `/api/chat/health`.
    fn kind(&self) -> &'static str;
}

/// For platforms and tests without a cache: nothing is kept.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCache;

impl ResponseCache for NoCache {
    fn get<'a>(&'a self, _key: &'a str) -> LocalBoxFuture<'a, Result<Option<Vec<u8>>, CacheError>> {
        Box::pin(async { Ok(None) })
    }

    fn put<'a>(
        &'a self,
        _key: &'a str,
        _value: Vec<u8>,
        _ttl_s: u64,
    ) -> LocalBoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async { Ok(()) })
    }

    fn kind(&self) -> &'static str {
        "none"
    }
}

/// The message as a key sees it: lower case, every run of anything but letters and digits one
/// space, trimmed ("Hello!!" and "hello" ask the same; "what's up" and "whats up" do not).
pub fn normalise(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut gap = false;
    for c in message.chars() {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

/// The pool's key: a SHA-256 of every input of a history-free prompt (for a shared pool, the
/// intent in place of the words), each length-prefixed so no two different inputs run
/// together into one.
pub fn key(
    settings: &CacheSettings,
    generation: &GenerationSettings,
    question: Question,
) -> String {
    let g = generation;
    let asked = match question {
        Question::Intent(intent) => ["intent".to_owned(), intent.to_owned(), String::new()],
        Question::Exact { message, intent } => {
            ["exact".to_owned(), intent.to_owned(), normalise(message)]
        }
    };
    let fields = [
        "eindr-answer-v1".to_owned(),
        settings.namespace.clone(),
        g.model_name.clone(),
        g.max_tokens.to_string(),
        g.temperature.to_string(),
        g.top_p.to_string(),
        g.top_k.to_string(),
        g.repetition_penalty.to_string(),
    ];
    let mut hasher = hmac_sha256::Hash::new();
    for field in fields.iter().chain(&asked) {
        hasher.update((field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    let digest = hasher.finalize();
    let mut key = String::with_capacity(8 + 64);
    key.push_str("answers:");
    for byte in digest {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation() -> GenerationSettings {
        GenerationSettings::from_lookup(|_| None).unwrap()
    }

    #[test]
    fn normalising_drops_case_punctuation_and_spacing() {
        assert_eq!(normalise("  Hello,   THERE!! "), "hello there");
        assert_eq!(normalise("hello there"), "hello there");
        assert_eq!(normalise("What's up?"), "what s up");
        assert_eq!(normalise("¿Qué tal?"), "qué tal");
        assert_eq!(normalise("?!"), "");
    }

    #[test]
    fn keys_differ_in_every_input_and_agree_on_the_same_question() {
        let s = CacheSettings::default();
        let g = generation();
        let exact = |message, intent| Question::Exact { message, intent };
        let key = |s: &CacheSettings, g: &GenerationSettings, message, intent| {
            key(s, g, exact(message, intent))
        };
        let base = key(&s, &g, "Hello!", "greeting");
        assert_eq!(base, key(&s, &g, "hello", "greeting"));
        assert!(base.starts_with("answers:") && base.len() == 8 + 64);
        assert_ne!(base, key(&s, &g, "hello you", "greeting"));
        assert_ne!(base, key(&s, &g, "hello", "goodbye"));
        let shared = super::key(&s, &g, Question::Intent("greeting"));
        assert_ne!(base, shared);
        assert_ne!(shared, super::key(&s, &g, Question::Intent("goodbye")));
        assert_ne!(shared, key(&s, &g, "", "greeting"));
        let hotter = GenerationSettings {
            temperature: 0.9,
            ..g.clone()
        };
        assert_ne!(base, key(&s, &hotter, "hello", "greeting"));
        let other_model = GenerationSettings {
            model_name: "other".into(),
            ..g.clone()
        };
        assert_ne!(base, key(&s, &other_model, "hello", "greeting"));
        let renamed = CacheSettings {
            namespace: "2".into(),
            ..s.clone()
        };
        assert_ne!(base, key(&renamed, &g, "hello", "greeting"));
        // Length prefixes: moving text between fields changes the key.
        assert_ne!(key(&s, &g, "a b", "c"), key(&s, &g, "b", "a c"));
    }
}
