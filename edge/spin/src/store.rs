//! The store `store_url` names: empty (the default) for Spin's key-value store, or
//! `redis://` / `rediss://` for a Redis shared by every replica (and by native instances).

use edge_core::redis_store::{DEFAULT_KEY_PREFIX, StoreUrl};
use edge_core::{ApiError, ConversationStore, StoreError, StoreKey, StoreWrite};

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
