//! An in-memory `ConversationStore`: for tests, benchmarks and the native dev server.
//! A mutex makes each update atomic; expiry is honoured on read.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::platform::{ConversationStore, StoreError, StoreKey, StoreWrite};

/// A record's bytes and optional expiry (ms since the epoch).
type Record = (Vec<u8>, Option<u64>);

#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<String, Record>>,
    /// Clock for expiry; `None` keeps records until deleted.
    now_ms: Option<fn() -> u64>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops records whose expiry has passed by `now_ms()`.
    pub fn with_expiry_clock(now_ms: fn() -> u64) -> Self {
        Self {
            records: Mutex::default(),
            now_ms: Some(now_ms),
        }
    }

    /// The raw bytes of a record, to check what is at rest.
    pub fn raw(&self, key: StoreKey<'_>) -> Option<Vec<u8>> {
        self.records
            .lock()
            .ok()?
            .get(&key.flat())
            .map(|(bytes, _)| bytes.clone())
    }

    pub fn put_raw(&self, key: StoreKey<'_>, bytes: Vec<u8>) {
        if let Ok(mut records) = self.records.lock() {
            records.insert(key.flat(), (bytes, None));
        }
    }

    fn live(&self, entry: Option<&Record>) -> Option<Vec<u8>> {
        let (bytes, expires) = entry?;
        match (expires, self.now_ms) {
            (Some(at), Some(now)) if now() >= *at => None,
            _ => Some(bytes.clone()),
        }
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("memory store lock poisoned".into())
}

impl ConversationStore for MemoryStore {
    async fn get(&self, key: StoreKey<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        let records = self.records.lock().map_err(poisoned)?;
        Ok(self.live(records.get(&key.flat())))
    }

    async fn update(
        &self,
        key: StoreKey<'_>,
        apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    ) -> Result<(), StoreError> {
        let flat = key.flat();
        let mut records = self.records.lock().map_err(poisoned)?;
        let now = self.now_ms.map(|now| now());
        let current = records
            .get(&flat)
            .filter(|(_, expires)| !matches!((expires, now), (Some(at), Some(now)) if now >= *at))
            .map(|(bytes, _)| bytes.as_slice());
        match apply(current) {
            StoreWrite::Keep => {}
            StoreWrite::Put {
                bytes,
                expires_at_ms,
            } => {
                records.insert(flat, (bytes, expires_at_ms));
            }
            StoreWrite::Delete => {
                records.remove(&flat);
            }
        }
        Ok(())
    }
}
