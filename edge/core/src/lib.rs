//! eindr-chat edge core: everything the edge decides, free of any platform.
//!
//! Adapters (Cloudflare Workers, Spin, the native dev server) turn their requests into
//! [`HttpRequest`], provide [`Services`] and call [`EdgeApp::serve`]: they send the
//! [`Served`] response, and for a streamed turn its head, then run [`EdgeApp::stream`] into
//! their response body. [`EdgeApp::handle`] does both and buffers the body, for tests and
//! callers that do not stream.

pub mod api;
pub mod app;
pub mod auth;
pub mod backend;
pub mod config;
pub mod error;
pub mod facts;
pub mod history;
pub mod http;
pub mod memory;
pub mod pii;
pub mod placement;
pub mod platform;
pub mod rate_limit;
pub mod redis_store;
pub mod replies;
pub mod response_cache;
pub mod seal;
pub mod speech;
pub mod spoken;
#[cfg(feature = "system")]
pub mod system;
pub mod understanding;

pub use app::{BodySink, EdgeApp, Served, SinkClosed, StreamingTurn};
pub use config::{ConfigError, EdgeConfig};
pub use error::ApiError;
pub use http::{HttpRequest, HttpResponse};
pub use memory::MemoryStore;
pub use platform::{
    Clock, ConversationStore, Offline, Outbound, OutboundError, OutboundRequest, OutboundResponse,
    Randomness, Services, StoreError, StoreKey, StoreWrite,
};
pub use response_cache::{MemoryCache, NoCache, ResponseCache};
