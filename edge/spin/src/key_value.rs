//! The conversation store on Spin's key-value store, through `wasi:keyvalue@0.2.0-draft2`.
//! Spin runs each request in its own instance, concurrently, so a read-modify-write is made
//! exact with the `atomics` interface: read through a CAS handle, swap only if the record is
//! unchanged, retry on conflict with the value the failed swap returns.

use edge_core::{ConversationStore, StoreError, StoreKey, StoreWrite};
use spin_sdk::wit::wasi::keyvalue::atomics::{self, Cas, CasError};
use spin_sdk::wit::wasi::keyvalue::store::{self, Bucket};

/// Attempts of one read-modify-write before reporting contention.
const CAS_ATTEMPTS: u32 = 32;

pub struct KeyValueStore {
    bucket: Bucket,
}

fn unavailable(e: impl std::fmt::Debug) -> StoreError {
    StoreError::Unavailable(format!("{e:?}"))
}

/// CAS cannot delete, so a deletion is written as an empty value, which reads as no record
/// (every record the core writes has a non-empty header).
fn present(value: Option<Vec<u8>>) -> Option<Vec<u8>> {
    value.filter(|v| !v.is_empty())
}

impl KeyValueStore {
    /// Opens the store labelled `label` in spin.toml (`key_value_stores`).
    pub fn open(label: &str) -> Result<Self, StoreError> {
        store::open(label)
            .map(|bucket| Self { bucket })
            .map_err(unavailable)
    }
}

impl KeyValueStore {
    /// A cached-answer pool. The key-value store has no expiry: the pool's own runs out, and
    /// the next answer for the key overwrites it.
    pub fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bucket.get(key).map(present).map_err(unavailable)
    }

    pub fn cache_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.bucket.set(key, value).map_err(unavailable)
    }
}

impl ConversationStore for KeyValueStore {
    async fn get(&self, key: StoreKey<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        self.bucket
            .get(&key.flat())
            .map(present)
            .map_err(unavailable)
    }

    async fn update(
        &self,
        key: StoreKey<'_>,
        apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    ) -> Result<(), StoreError> {
        let flat = key.flat();
        let mut cas = Cas::new(&self.bucket, &flat).map_err(unavailable)?;
        for _ in 0..CAS_ATTEMPTS {
            let current = present(cas.current().map_err(unavailable)?);
            let value = match apply(current.as_deref()) {
                StoreWrite::Keep => return Ok(()),
                StoreWrite::Put { bytes, .. } => bytes,
                StoreWrite::Delete if current.is_none() => return Ok(()),
                StoreWrite::Delete => Vec::new(),
            };
            match atomics::swap(cas, &value) {
                Ok(()) => return Ok(()),
                Err(CasError::CasFailed(latest)) => cas = latest,
                Err(CasError::StoreError(e)) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Contention {
            attempts: CAS_ATTEMPTS,
        })
    }
}
