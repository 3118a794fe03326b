//! The key-value data: one SQLite file holding every store, in the shape of Spin's default
//! store (`store`, `key`, `value`), so data survives a restart of the host. One connection
//! behind a mutex: each operation, and a compare-and-swap as a whole, is atomic.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Clone)]
pub struct KvData {
    db: Arc<Mutex<Connection>>,
}

impl KvData {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let db = Connection::open(path).with_context(|| format!("open {}", path.display()))?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS spin_key_value (
                 store TEXT NOT NULL,
                 key TEXT NOT NULL,
                 value BLOB NOT NULL,
                 PRIMARY KEY (store, key)
             );",
        )?;
        Ok(Self {
            db: Arc::new(Mutex::new(db)),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, String> {
        let db = self
            .db
            .lock()
            .map_err(|_| "key-value store poisoned".to_owned())?;
        f(&db).map_err(|e| e.to_string())
    }

    pub fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.with(|db| {
            db.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row(params![store, key], |row| row.get(0))
                .optional()
        })
    }

    pub fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), String> {
        self.with(|db| {
            db.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![store, key, value])
            .map(drop)
        })
    }

    pub fn delete(&self, store: &str, key: &str) -> Result<(), String> {
        self.with(|db| {
            db.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute(params![store, key])
                .map(drop)
        })
    }

    pub fn keys(&self, store: &str) -> Result<Vec<String>, String> {
        self.with(|db| {
            db.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?
                .query_map(params![store], |row| row.get(0))?
                .collect()
        })
    }

    /// Writes `value` if the record still equals `expected` (`None`: absent). Returns the
    /// current record when it does not.
    pub fn compare_and_swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Result<(), Option<Vec<u8>>>, String> {
        self.with(|db| {
            let current: Option<Vec<u8>> = db
                .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row(params![store, key], |row| row.get(0))
                .optional()?;
            if current.as_deref() != expected {
                return Ok(Err(current));
            }
            db.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![store, key, value])?;
            Ok(Ok(()))
        })
    }

    pub fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, String> {
        let db = self
            .db
            .lock()
            .map_err(|_| "key-value store poisoned".to_owned())?;
        let current: Option<Vec<u8>> = db
            .query_row(
                "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                params![store, key],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| e.to_string())?;
        let number = match current {
            None => 0,
            Some(bytes) => String::from_utf8_lossy(&bytes)
                .parse::<i64>()
                .map_err(|e| format!("{key} is not a number: {e}"))?,
        };
        let next = number
            .checked_add(delta)
            .ok_or_else(|| format!("{key} would overflow"))?;
        db.execute(
            "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            params![store, key, next.to_string().into_bytes()],
        )
        .map_err(|e| e.to_string())?;
        Ok(next)
    }
}
