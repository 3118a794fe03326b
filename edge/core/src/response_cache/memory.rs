//! Pools in this process's memory (the native server on its memory store, tests): bounded in
//! keys, expiry honoured on read.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::LocalBoxFuture;

use super::{CacheError, ResponseCache};

/// Keys kept before the oldest-expiring ones make room.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

pub struct MemoryCache {
    entries: Mutex<HashMap<String, (Vec<u8>, u64)>>,
    max_keys: usize,
    now_ms: fn() -> u64,
}

impl MemoryCache {
    /// `now_ms` is the clock expiry is judged by.
    pub fn new(max_keys: usize, now_ms: fn() -> u64) -> Self {
        Self {
            entries: Mutex::default(),
            max_keys: max_keys.max(1),
            now_ms,
        }
    }
}

impl ResponseCache for MemoryCache {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<Vec<u8>>, CacheError>> {
        let now = (self.now_ms)();
        let found = self
            .entries
            .lock()
            .map_err(|_| CacheError("memory cache lock poisoned".into()))
            .map(|entries| {
                entries
                    .get(key)
                    .filter(|(_, expires)| *expires > now)
                    .map(|(bytes, _)| bytes.clone())
            });
        Box::pin(async move { found })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl_s: u64,
    ) -> LocalBoxFuture<'a, Result<(), CacheError>> {
        let now = (self.now_ms)();
        let stored = self
            .entries
            .lock()
            .map_err(|_| CacheError("memory cache lock poisoned".into()))
            .map(|mut entries| {
                if entries.len() >= self.max_keys && !entries.contains_key(key) {
                    entries.retain(|_, (_, expires)| *expires > now);
                    // Still full: the one that would expire first goes.
                    if entries.len() >= self.max_keys
                        && let Some(first) = entries
                            .iter()
                            .min_by_key(|(_, (_, expires))| *expires)
                            .map(|(k, _)| k.clone())
                    {
                        entries.remove(&first);
                    }
                }
                entries.insert(key.to_owned(), (value, now.saturating_add(ttl_s * 1000)));
            });
        Box::pin(async move { stored })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000);

    fn now() -> u64 {
        NOW.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn keeps_within_its_bound_and_expires() {
        let cache = MemoryCache::new(2, now);
        pollster::block_on(async {
            cache.put("a", b"1".to_vec(), 10).await.unwrap();
            cache.put("b", b"2".to_vec(), 20).await.unwrap();
            cache.put("c", b"3".to_vec(), 30).await.unwrap();
            assert_eq!(
                cache.get("a").await.unwrap(),
                None,
                "first to expire made room"
            );
            assert_eq!(cache.get("c").await.unwrap(), Some(b"3".to_vec()));
            NOW.store(1_000 + 20_000, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(cache.get("b").await.unwrap(), None);
            assert_eq!(cache.get("c").await.unwrap(), Some(b"3".to_vec()));
        });
    }
}
