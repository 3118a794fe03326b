//! The object's own records in its SQLite database, through the synchronous SQL API: a
//! read-modify-write here is atomic by construction (nothing is awaited, so no other event
//! can run in between), and the writes of one request commit together behind the output gate.
//! It is also cheaper than the promise-based key-value API: no promise per get and put.

use edge_core::{StoreError, StoreWrite};
use worker::{SqlStorage, SqlStorageValue};

use crate::store::unavailable;

pub struct Records {
    sql: SqlStorage,
}

/// Milliseconds as SQLite integers (exact: well inside JavaScript's safe integers).
fn ms(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}

impl Records {
    pub fn open(sql: SqlStorage) -> Result<Self, StoreError> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS records (
                 key TEXT PRIMARY KEY,
                 value BLOB NOT NULL,
                 expires_at INTEGER
             )",
            None,
        )
        .map_err(unavailable)?;
        Ok(Self { sql })
    }

    /// The record under `key`, unless it has expired by `now_ms`.
    pub fn get(&self, key: &str, now_ms: u64) -> Result<Option<Vec<u8>>, StoreError> {
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
