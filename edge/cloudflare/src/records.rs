//! The object's own records in its SQLite database, through the synchronous SQL API: a
//! read-modify-write here is atomic by construction (nothing is awaited, so no other event
//! can run in between), and the writes of one request commit together behind the output gate.
//! It is also cheaper than the promise-based key-value API: no promise per get and put.
//!
//! Rate-limit state is the exception: it is held in the object's memory. A storage write
//! holds the object's response, and every fetch it makes, behind the output gate until the
//! write is confirmed (0.4 ms a request on a quiet local workerd, 3.3 ms with the CPU busy;
//! replication in production), and the rate limit writes on every request, so each answer
//! and each full-mode call to gpu-backend would wait for it. The object is the one place its
//! user's requests run, so the limit stays exact while it lives; after a restart it starts
//! full, which changes nothing once the object has been idle for longer than a burst takes
//! to refill. That holds when the burst refills within [`MEMORY_REFILL_LIMIT_MS`] (10 s with
//! the defaults; an idle object is evicted only after longer than that); a stricter quota
//! (say 1 a minute after a burst of 10) keeps its state in SQLite, or an eviction would
//! hand the user a fresh burst. History, the breaker and failed-authentication counts stay in
//! SQLite.

use std::cell::RefCell;
use std::collections::HashMap;

use edge_core::platform::RecordKind;
use edge_core::{StoreError, StoreKey, StoreWrite};
use worker::{SqlStorage, SqlStorageValue};

use crate::store::unavailable;

/// The longest burst refill for which rate-limit state may live in memory (see the module's
/// note).
pub const MEMORY_REFILL_LIMIT_MS: u64 = 10_000;

pub struct Records {
    sql: SqlStorage,
    /// Rate-limit records by flat key.
    memory: RefCell<HashMap<String, Held>>,
    /// The flat-key prefix of the records held in memory (see the module's note), if any.
    memory_prefix: Option<String>,
}

/// A record held in memory, with the expiry a SQL row would have.
struct Held {
    bytes: Vec<u8>,
    expires_at_ms: Option<u64>,
}

impl Held {
    fn live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
}

/// Milliseconds as SQLite integers (exact: well inside JavaScript's safe integers).
fn ms(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}

impl Records {
    /// `rate_limit_in_memory`: whether rate-limit state may live in memory (the quota's burst
    /// refills within [`MEMORY_REFILL_LIMIT_MS`]).
    pub fn open(sql: SqlStorage, rate_limit_in_memory: bool) -> Result<Self, StoreError> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS records (
                 key TEXT PRIMARY KEY,
                 value BLOB NOT NULL,
                 expires_at INTEGER
             )",
            None,
        )
        .map_err(unavailable)?;
        Ok(Self {
            sql,
            memory: RefCell::new(HashMap::new()),
            memory_prefix: rate_limit_in_memory.then(|| {
                StoreKey {
                    kind: RecordKind::RateLimit,
                    owner: "",
                }
                .flat()
            }),
        })
    }

    fn held_in_memory(&self, key: &str) -> bool {
        self.memory_prefix
            .as_deref()
            .is_some_and(|prefix| key.starts_with(prefix))
    }

    /// The record under `key`, unless it has expired by `now_ms`.
    pub fn get(&self, key: &str, now_ms: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if self.held_in_memory(key) {
            return Ok(self
                .memory
                .borrow()
                .get(key)
                .filter(|held| held.live(now_ms))
                .map(|held| held.bytes.clone()));
        }
        let cursor = self
            .sql
            .exec(
                "SELECT value FROM records WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                vec![SqlStorageValue::String(key.to_owned()), ms(now_ms)],
            )
            .map_err(unavailable)?;
        match cursor.raw().next() {
            None => Ok(None),
            Some(row) => match row.map_err(unavailable)?.into_iter().next() {
                Some(SqlStorageValue::Blob(bytes)) => Ok(Some(bytes)),
                other => Err(unavailable(format!(
                    "record {key} is not a blob: {other:?}"
                ))),
            },
        }
    }

    /// Applies a write; a put also clears this object's expired records, so a record past
    /// its retention does not outlive the next write.
    pub fn write(&self, key: &str, write: StoreWrite, now_ms: u64) -> Result<(), StoreError> {
        if self.held_in_memory(key) {
            let mut memory = self.memory.borrow_mut();
            match write {
                StoreWrite::Keep => {}
                StoreWrite::Put {
                    bytes,
                    expires_at_ms,
                } => {
                    memory.retain(|_, held| held.live(now_ms));
                    memory.insert(
                        key.to_owned(),
                        Held {
                            bytes,
                            expires_at_ms,
                        },
                    );
                }
                StoreWrite::Delete => {
                    memory.remove(key);
                }
            }
            return Ok(());
        }
        match write {
            StoreWrite::Keep => Ok(()),
            StoreWrite::Put {
                bytes,
                expires_at_ms,
            } => {
                self.sql
                    .exec(
                        "DELETE FROM records WHERE expires_at <= ?",
                        vec![ms(now_ms)],
                    )
                    .map_err(unavailable)?;
                self.sql
                    .exec(
                        "INSERT INTO records (key, value, expires_at) VALUES (?, ?, ?)
                         ON CONFLICT (key) DO UPDATE
                         SET value = excluded.value, expires_at = excluded.expires_at",
                        vec![
                            SqlStorageValue::String(key.to_owned()),
                            SqlStorageValue::Blob(bytes),
                            expires_at_ms.map_or(SqlStorageValue::Null, ms),
                        ],
                    )
                    .map(drop)
                    .map_err(unavailable)
            }
            StoreWrite::Delete => self
                .sql
                .exec(
                    "DELETE FROM records WHERE key = ?",
                    vec![SqlStorageValue::String(key.to_owned())],
                )
                .map(drop)
                .map_err(unavailable),
        }
    }
}
