//! What the core needs from the platform it runs on. Adapters implement these; the core
//! never names a platform crate.

use thiserror::Error;

use crate::response_cache::ResponseCache;

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> u64;
}

/// Cryptographically secure randomness (nonces for history sealing, reply choice).
pub trait Randomness {
    fn fill(&self, buf: &mut [u8]);

    fn next_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// Which record of the store a key names. Every record belongs to one owner (a user id or,
/// for failed-authentication limits, a client address), so an adapter can route all of one
/// owner's records to one strongly consistent place (a Durable Object per user, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    History,
    RateLimit,
    AuthFailures,
    /// The circuit breaker's state for the GPU backend. It has no owner to place it by: it
    /// lives wherever the request is served (per user object on Cloudflare, per app on Spin).
    BackendBreaker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreKey<'a> {
    pub kind: RecordKind,
    pub owner: &'a str,
}

impl RecordKind {
    /// The kind's name in stored keys.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::History => "history",
            RecordKind::RateLimit => "ratelimit",
            RecordKind::AuthFailures => "authfail",
            RecordKind::BackendBreaker => "breaker",
        }
    }
}

impl StoreKey<'_> {
    /// A flat key for key-value stores, e.g. `history:alice`.
    pub fn flat(&self) -> String {
        format!("{}:{}", self.kind.name(), self.owner)
    }
}

/// The outcome of one read-modify-write step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreWrite {
    /// Leave the record as it is.
    Keep,
    /// Replace the record. `expires_at_ms` lets stores with native expiry drop it unattended.
    Put {
        bytes: Vec<u8>,
        expires_at_ms: Option<u64>,
    },
    Delete,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("conversation store unavailable: {0}")]
    Unavailable(String),
    #[error("conversation store kept conflicting; gave up after {attempts} attempts")]
    Contention { attempts: u32 },
}

/// A per-owner record store with an atomic read-modify-write.
///
/// Futures are not `Send`: on both wasm platforms a request runs on one thread.
#[allow(async_fn_in_trait)]
pub trait ConversationStore {
    async fn get(&self, key: StoreKey<'_>) -> Result<Option<Vec<u8>>, StoreError>;

    /// Applies `apply` to the current record atomically: no other update of the same key
    /// interleaves. Implementations on compare-and-swap stores may call `apply` more than
    /// once, so it must only compute from its input.
    async fn update(
        &self,
        key: StoreKey<'_>,
        apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    ) -> Result<(), StoreError>;
}

/// One HTTP request to the GPU backend.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// No connection, DNS failure, refused, reset before the response head.
    #[error("backend unreachable: {0}")]
    Unreachable(String),
    /// The response body broke off.
    #[error("backend stream failed: {0}")]
    Body(String),
    /// This platform build has no outbound HTTP.
    #[error("no outbound HTTP on this platform")]
    Unsupported,
}

/// A response head; the body is read chunk by chunk as it arrives.
pub struct OutboundResponse<B> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: B,
}

impl<B> OutboundResponse<B> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The platform's outbound I/O: an HTTP call whose body streams, and a timer. Deadlines are
/// the core's policy, so the platform only needs to sleep; the core races the two.
#[allow(async_fn_in_trait)]
pub trait Outbound {
    type Body: futures_core::Stream<Item = Result<Vec<u8>, OutboundError>> + Unpin;

    async fn send(
        &self,
        request: OutboundRequest,
    ) -> Result<OutboundResponse<Self::Body>, OutboundError>;

    async fn sleep(&self, ms: u64);
}

/// For platforms and tests without outbound HTTP: every call fails at once, so full-mode
/// turns fall back to the minimal reply.
#[derive(Debug, Default, Clone, Copy)]
pub struct Offline;

impl Outbound for Offline {
    type Body = futures_util::stream::Empty<Result<Vec<u8>, OutboundError>>;

    async fn send(
        &self,
        _request: OutboundRequest,
    ) -> Result<OutboundResponse<Self::Body>, OutboundError> {
        Err(OutboundError::Unsupported)
    }

    async fn sleep(&self, _ms: u64) {}
}

/// The platform's services for one request.
pub struct Services<'a, S: ConversationStore, O: Outbound = Offline> {
    pub store: &'a S,
    pub clock: &'a dyn Clock,
    pub random: &'a dyn Randomness,
    pub outbound: &'a O,
    /// Pools of cached model answers ([`crate::response_cache::NoCache`] where there are none).
    pub cache: &'a dyn ResponseCache,
    /// Where the turn's and the request's facts go besides the log
    /// ([`crate::facts::LogOnly`] where nothing else takes them).
    pub facts: &'a dyn crate::facts::FactsSink,
}
