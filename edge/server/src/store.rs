//! The store `STORE_URL` names: `memory` (one instance; nothing kept across a restart),
//! `redis://` / `rediss://` (shared by every instance, kept by Redis) or `redis+cluster://`
//! (the same on a Redis Cluster). Store failures are counted for `/metrics` here, where every
//! one of them passes.

use std::sync::Arc;
use std::time::Duration;

use edge_core::platform::{ConversationStore, StoreError, StoreKey, StoreWrite};
use edge_core::redis_store::StoreUrl;
use edge_core::response_cache::DEFAULT_MAX_KEYS;
use edge_core::system::SystemClock;
use edge_core::{Clock, MemoryCache, MemoryStore};

use crate::metrics::Metrics;
use crate::redis_store::{Durability, Options, RedisStore, StoreHealth, Target};

/// What `STORE_URL` says, parsed once; each worker thread opens its own client from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    Memory,
    Redis {
        url: StoreUrl,
        prefix: String,
        durability: Durability,
        replication_timeout: Duration,
    },
}

impl StoreSpec {
    pub fn parse(
        url: &str,
        prefix: &str,
        durability: Durability,
        replication_timeout: Duration,
    ) -> Result<Self, String> {
        match StoreUrl::parse(url, "memory").map_err(|e| e.to_string())? {
            StoreUrl::Platform => Ok(Self::Memory),
            url => Ok(Self::Redis {
                url,
                prefix: prefix.to_owned(),
                durability,
                replication_timeout,
            }),
        }
    }

    /// For the startup line: never the URL itself, which may carry a password.
    pub fn describe(&self) -> String {
        match self {
            Self::Memory => "in-memory store (this instance only)".into(),
            Self::Redis {
                url, durability, ..
            } => format!(
                "{} (durability {durability:?})",
                match url {
                    StoreUrl::RedisCluster(nodes) =>
                        format!("Redis Cluster store ({} seed nodes)", nodes.len()),
                    _ => "Redis store".into(),
                }
            ),
        }
    }
}

fn now_ms() -> u64 {
    SystemClock.now_ms()
}

/// One worker thread's store. The memory store is shared by all threads of the process.
pub enum ServerStore {
    Memory(Arc<MemoryStore>),
    Redis(RedisStore),
}

/// The process-wide part: the memory store's records and cached answers (Redis clients are
/// per thread).
pub struct SharedMemory {
    pub records: Arc<MemoryStore>,
    pub answers: Arc<MemoryCache>,
}

pub fn shared_memory() -> SharedMemory {
    SharedMemory {
        records: Arc::new(MemoryStore::with_expiry_clock(now_ms)),
        answers: Arc::new(MemoryCache::new(DEFAULT_MAX_KEYS, now_ms)),
    }
}

pub struct CountedStore {
    pub store: ServerStore,
    pub metrics: Arc<Metrics>,
    /// Cached answers when the store is memory (on Redis they live in Redis).
    pub answers: Arc<MemoryCache>,
}

impl CountedStore {
    pub fn open(
        spec: &StoreSpec,
        memory: &SharedMemory,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let store = match spec {
            StoreSpec::Memory => ServerStore::Memory(memory.records.clone()),
            StoreSpec::Redis {
                url,
                prefix,
                durability,
                replication_timeout,
            } => {
                let target = match url {
                    StoreUrl::RedisCluster(nodes) => Target::Cluster(nodes),
                    StoreUrl::Redis(url) => Target::Server(url),
                    StoreUrl::Platform => return Err("not a Redis URL".into()),
                };
                let counted = metrics.clone();
                ServerStore::Redis(RedisStore::open(
                    target,
                    Options {
                        prefix,
                        durability: *durability,
                        replication_timeout: *replication_timeout,
                        unconfirmed: Arc::new(move || counted.unconfirmed_write()),
                    },
                )?)
            }
        };
        Ok(Self {
            store,
            metrics,
            answers: memory.answers.clone(),
        })
    }

    /// `/ready`: the store answers, and on a cluster whether every slot has a primary.
    pub async fn ready(&self) -> Result<StoreHealth, StoreError> {
        let result = match &self.store {
            ServerStore::Memory(_) => Ok(StoreHealth::Ready),
            ServerStore::Redis(redis) => redis.ping().await,
        };
        self.count(result)
    }

    fn count<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error) = &result {
            self.metrics.store_error(error);
        }
        result
    }
}

impl ConversationStore for CountedStore {
    async fn get(&self, key: StoreKey<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        let result = match &self.store {
            ServerStore::Memory(memory) => memory.get(key).await,
            ServerStore::Redis(redis) => redis.get(key).await,
        };
        self.count(result)
    }

    async fn update(
        &self,
        key: StoreKey<'_>,
        apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    ) -> Result<(), StoreError> {
        let result = match &self.store {
            ServerStore::Memory(memory) => memory.update(key, apply).await,
            ServerStore::Redis(redis) => redis.update(key, apply).await,
        };
        self.count(result)
    }
}
