//! One key's pool: up to `CACHE_POOL_SIZE` distinct answers, with its own expiry (for stores
//! that have none) and the time it was last written (Workers KV takes one write per second
//! per key, so a pool is rewritten at most that often).

use eindr_contract::InferenceEngine;
use serde::{Deserialize, Serialize};

/// Least time between two writes of one pool.
pub const MIN_WRITE_INTERVAL_MS: u64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedAnswer {
    pub text: String,
    /// The engine that made it, reported again whenever it is served.
    pub engine: InferenceEngine,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    #[serde(default)]
    written_ms: u64,
    #[serde(default)]
    expires_ms: u64,
    #[serde(default)]
    answers: Vec<CachedAnswer>,
}

impl Pool {
    /// The pool in `bytes`; empty when there is none, it is unreadable or it has expired.
    pub fn decode(bytes: Option<&[u8]>, now_ms: u64) -> Self {
        bytes
            .and_then(|b| serde_json::from_slice::<Self>(b).ok())
            .filter(|pool| pool.expires_ms > now_ms)
            .unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// One answer picked by `roll`, never `avoid` (the user's previous reply) while another
    /// is there, so replies keep their variety.
    pub fn draw(&self, avoid: Option<&str>, roll: u64) -> Option<&CachedAnswer> {
        let fresh: Vec<&CachedAnswer> = self
            .answers
            .iter()
            .filter(|a| Some(a.text.as_str()) != avoid)
            .collect();
        let choices: Vec<&CachedAnswer> = if fresh.is_empty() {
            self.answers.iter().collect()
        } else {
            fresh
        };
        let n = choices.len() as u64;
        (n > 0).then(|| choices[(roll % n.max(1)) as usize])
    }

    /// Adds `answer` when it is new and there is room. `true` when the pool should be written
    /// now: it changed, and the last write was at least [`MIN_WRITE_INTERVAL_MS`] ago (an
    /// answer that arrives sooner is dropped; a later one fills the place).
    pub fn add(&mut self, answer: CachedAnswer, capacity: usize, now_ms: u64, ttl_ms: u64) -> bool {
        if self.answers.len() >= capacity
            || self.answers.iter().any(|a| a.text == answer.text)
            || (self.written_ms != 0 && now_ms < self.written_ms + MIN_WRITE_INTERVAL_MS)
        {
            return false;
        }
        if self.answers.is_empty() {
            self.expires_ms = now_ms.saturating_add(ttl_ms);
        }
        self.answers.push(answer);
        self.written_ms = now_ms;
        true
    }

    /// Whether an answer arriving at `now_ms` could be written (the last write was at least
    /// [`MIN_WRITE_INTERVAL_MS`] ago).
    pub fn writable_at(&self, now_ms: u64) -> bool {
        self.written_ms == 0 || now_ms >= self.written_ms + MIN_WRITE_INTERVAL_MS
    }

    /// Milliseconds the pool has left to live (its time to live when written).
    pub fn ttl_left_ms(&self, now_ms: u64) -> u64 {
        self.expires_ms.saturating_sub(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> CachedAnswer {
        CachedAnswer {
            text: text.into(),
            engine: InferenceEngine::Vllm,
        }
    }

    #[test]
    fn fills_with_distinct_answers_up_to_capacity_at_most_once_a_second() {
        let mut pool = Pool::default();
        assert!(pool.add(answer("a"), 2, 10_000, 60_000));
        // Too soon after the last write, and a repeat.
        assert!(!pool.add(answer("b"), 2, 10_500, 60_000));
        assert!(!pool.add(answer("a"), 2, 12_000, 60_000));
        assert!(pool.add(answer("b"), 2, 12_000, 60_000));
        assert!(!pool.add(answer("c"), 2, 14_000, 60_000));
        assert_eq!(pool.len(), 2);
        assert!(!pool.writable_at(12_999) && pool.writable_at(13_000));
        assert!(Pool::default().writable_at(0));
    }

    #[test]
    fn round_trips_and_expires_from_its_first_answer() {
        let mut pool = Pool::default();
        pool.add(answer("hi"), 8, 1_000, 5_000);
        pool.add(answer("hello"), 8, 3_000, 5_000);
        let bytes = pool.encode();
        assert_eq!(Pool::decode(Some(&bytes), 5_999), pool);
        assert!(Pool::decode(Some(&bytes), 6_000).is_empty());
        assert_eq!(pool.ttl_left_ms(5_000), 1_000);
        assert!(Pool::decode(Some(b"not json"), 0).is_empty());
        assert!(Pool::decode(None, 0).is_empty());
    }

    #[test]
    fn draws_avoid_the_previous_reply_while_there_is_another() {
        let mut pool = Pool::default();
        assert!(pool.draw(None, 7).is_none());
        pool.add(answer("one"), 8, 1_000, 60_000);
        assert_eq!(pool.draw(Some("one"), 3).unwrap().text, "one");
        pool.add(answer("two"), 8, 3_000, 60_000);
        for roll in 0..10 {
            assert_eq!(pool.draw(Some("one"), roll).unwrap().text, "two");
        }
        let drawn: std::collections::HashSet<_> = (0..10)
            .map(|r| pool.draw(None, r).unwrap().text.clone())
            .collect();
        assert_eq!(drawn.len(), 2);
    }
}
