//! The store `store_url` names: empty (the default) for Spin's key-value store, or
//! `redis://` / `rediss://` for a Redis shared by every replica (and by native instances).

use edge_core::redis_store::{DEFAULT_KEY_PREFIX, StoreUrl};
use edge_core::response_cache::CacheError;
use edge_core::{ApiError, ConversationStore, ResponseCache, StoreError, StoreKey, StoreWrite};
use futures_util::future::LocalBoxFuture;

use crate::config::lookup;
use crate::key_value::KeyValueStore;
use crate::redis_store::RedisStore;

/// The key-value store label in spin.toml.
const STORE_LABEL: &str = "default";

pub enum SpinStore {
    KeyValue(KeyValueStore),
    Redis(RedisStore),
}

impl SpinStore {
    /// Opens the configured store for this request.
    pub fn open() -> Result<Self, ApiError> {
        let url = lookup("STORE_URL").unwrap_or_default();
        Ok(match StoreUrl::parse(&url, "key-value")? {
            StoreUrl::Platform => Self::KeyValue(KeyValueStore::open(STORE_LABEL)?),
            StoreUrl::Redis(url) => {
                let prefix = lookup("STORE_KEY_PREFIX")
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned());
                Self::Redis(RedisStore::open(&url, &prefix)?)
            }
            // Spin's outbound Redis speaks to one address, without the cluster protocol.
            StoreUrl::RedisCluster(_) => {
                return Err(StoreUrl::invalid(
                    &url,
                    "Spin reaches one Redis address: at cluster scale use one Redis per region, a cluster proxy, or Spin's key-value store (docs/spin.md)",
                )
                .into());
            }
        })
    }
}

impl ConversationStore for SpinStore {
    async fn get(&self, key: StoreKey<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::KeyValue(store) => store.get(key).await,
            Self::Redis(store) => ConversationStore::get(store, key).await,
        }
    }

    async fn update(
        &self,
        key: StoreKey<'_>,
        apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    ) -> Result<(), StoreError> {
        match self {
            Self::KeyValue(store) => store.update(key, apply).await,
            Self::Redis(store) => store.update(key, apply).await,
        }
    }
}

/// Cached model answers beside the records: in the key-value store, or on the Redis every
/// replica shares.
impl ResponseCache for SpinStore {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<Vec<u8>>, CacheError>> {
        let found = match self {
            Self::KeyValue(store) => store.cache_get(key),
            Self::Redis(store) => store.cache_get(key),
        };
        Box::pin(async move { found.map_err(|e| CacheError(e.to_string())) })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl_s: u64,
    ) -> LocalBoxFuture<'a, Result<(), CacheError>> {
        let stored = match self {
            Self::KeyValue(store) => store.cache_put(key, &value),
            Self::Redis(store) => store.cache_put(key, &value, ttl_s),
        };
        Box::pin(async move { stored.map_err(|e| CacheError(e.to_string())) })
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::KeyValue(_) => "spin-key-value",
            Self::Redis(_) => "redis",
        }
    }
}
