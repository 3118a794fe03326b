//! Cached model answers in Workers KV (binding `ANSWERS` in wrangler.toml), read and written
//! by the Durable Object that runs the turn. KV suits pools: read often from every location,
//! written rarely. It takes one write per second per key, and the core writes a pool only
//! when it gains an answer and at most once a second; a refused write loses one answer,
//! which is harmless. KV is eventually consistent (a write may take up to a minute to be
//! seen elsewhere): a pool fills a little slower, never wrongly. Without the binding nothing
//! is cached and `/api/chat/health` says `"store": "none"`.

use edge_core::ResponseCache;
use edge_core::response_cache::CacheError;
use futures_util::future::LocalBoxFuture;
use worker::Env;
use worker::kv::KvStore;

/// The KV binding's name in wrangler.toml.
pub const ANSWERS_BINDING: &str = "ANSWERS";

pub struct KvAnswers(Option<KvStore>);

impl KvAnswers {
    pub fn from_env(env: &Env) -> Self {
        Self(env.kv(ANSWERS_BINDING).ok())
    }
}

fn failed(error: impl std::fmt::Display) -> CacheError {
    CacheError(format!("workers kv: {error}"))
}

impl ResponseCache for KvAnswers {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<Vec<u8>>, CacheError>> {
        Box::pin(async move {
            match &self.0 {
                Some(kv) => kv.get(key).bytes().await.map_err(failed),
                None => Ok(None),
            }
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl_s: u64,
    ) -> LocalBoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let Some(kv) = &self.0 else { return Ok(()) };
            kv.put_bytes(key, &value)
                .map_err(failed)?
                // KV's shortest time to live.
                .expiration_ttl(ttl_s.max(60))
                .execute()
                .await
                .map_err(failed)
        })
    }

    fn kind(&self) -> &'static str {
        if self.0.is_some() {
            "workers-kv"
        } else {
            "none"
        }
    }
}
