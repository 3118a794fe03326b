//! A bounded cache of verified tokens, as API gateways keep (Envoy's `jwt_cache_config`):
//! a client sends the same token for its whole lifetime, and an isolate serves many of its
//! requests. The key is the whole token, so a hit is the exact bytes whose signature and
//! claims were verified; time claims are checked again on every hit.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Principal;

#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub principal: Principal,
    pub expires_at_s: u64,
    pub not_before_s: Option<u64>,
}

impl VerifiedToken {
    /// The same time rules as a full verification, with the same leeway.
    fn is_current(&self, now_s: u64, leeway_s: u64) -> bool {
        now_s.saturating_sub(leeway_s) <= self.expires_at_s
            && self.not_before_s.is_none_or(|nbf| nbf <= now_s + leeway_s)
    }
}

pub struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<String, VerifiedToken>>,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::default(),
        }
    }

    pub fn get(&self, token: &str, now_s: u64, leeway_s: u64) -> Option<Principal> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let hit = entries.get(token)?;
        hit.is_current(now_s, leeway_s)
            .then(|| hit.principal.clone())
    }

    pub fn insert(&self, token: &str, verified: VerifiedToken, now_s: u64, leeway_s: u64) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, v| v.is_current(now_s, leeway_s));
            if entries.len() >= self.capacity {
                // Bounded memory over recency: rarely reached, and a miss only costs a
                // verification.
                entries.clear();
            }
        }
        entries.insert(token.to_owned(), verified);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(exp: u64) -> VerifiedToken {
        VerifiedToken {
            principal: Principal {
                user_id: "u".into(),
                admin: false,
            },
            expires_at_s: exp,
            not_before_s: Some(100),
        }
    }

    #[test]
    fn hits_respect_time_and_capacity() {
        let cache = TokenCache::new(2);
        cache.insert("a", entry(1000), 100, 30);
        assert!(cache.get("a", 500, 30).is_some());
        assert!(cache.get("a", 1030, 30).is_some(), "within leeway");
        assert!(cache.get("a", 1031, 30).is_none(), "expired");
        assert!(cache.get("a", 69, 30).is_none(), "not yet valid");
        assert!(cache.get("b", 500, 30).is_none());
        cache.insert("b", entry(1000), 100, 30);
        cache.insert("c", entry(1000), 100, 30);
        assert!(cache.len() <= 2);
        let off = TokenCache::new(0);
        off.insert("a", entry(1000), 100, 30);
        assert!(off.get("a", 500, 30).is_none());
    }
}
