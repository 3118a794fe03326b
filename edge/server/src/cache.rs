//! Cached model answers where `STORE_URL` keeps the records: in this process's memory (bounded,
//! shared by its threads), or on Redis under `STORE_KEY_PREFIX` with Redis's own expiry, so
//! every instance fills and reads the same pools.

use edge_core::ResponseCache;
use edge_core::response_cache::CacheError;
use futures_util::future::LocalBoxFuture;

use crate::store::{CountedStore, ServerStore};

impl ResponseCache for CountedStore {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<Vec<u8>>, CacheError>> {
        match &self.store {
            ServerStore::Memory(_) => self.answers.get(key),
            ServerStore::Redis(redis) => Box::pin(redis.cache_get(key)),
        }
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl_s: u64,
    ) -> LocalBoxFuture<'a, Result<(), CacheError>> {
        match &self.store {
            ServerStore::Memory(_) => self.answers.put(key, value, ttl_s),
            ServerStore::Redis(redis) => Box::pin(redis.cache_put(key, value, ttl_s)),
        }
    }

    fn kind(&self) -> &'static str {
        match &self.store {
            ServerStore::Memory(_) => "memory",
            ServerStore::Redis(_) => "redis",
        }
    }
}
