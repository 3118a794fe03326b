//! The conversation store on Redis (≥ 6) or Valkey, shared by every instance, with the
//! core's one Redis store protocol (`edge_core::redis_store`: keys, the compare-and-swap script,
//! the retry loop) over the `redis` crate.
//!
//! The record this process last wrote stands in for the first read (one round trip instead of
//! two); when another instance changed it since, the swap answers with the record as it is
//! and the update is computed again from that. Within one process, writers of one record take
//! turns first (a striped lock), so Redis only arbitrates between instances: one user's
//! concurrent requests would otherwise collide in every round (measured: 16 concurrent turns
//! of one user, 5.6 swaps tried per turn).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;
use std::time::Duration;

use edge_core::Clock;
use edge_core::platform::{StoreError, StoreKey, StoreWrite};
use edge_core::redis_store::{self, RedisCommands, RedisValue, Updated};
use edge_core::response_cache::CacheError;
use edge_core::system::{OsRandom, SystemClock};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

/// How long one command may take, and one connection attempt: past them the request gets
/// 503 `store_unavailable` rather than hanging on a dead or stalled Redis.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1_000);
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Striped locks: one of these is held per record key for the length of an update, in this
/// process. 1,024 stripes keep unrelated users apart without a map to clean up. Each guards
/// the records this process last wrote under its keys: a guess at what Redis holds, which the
/// swap checks, kept for at most [`KNOWN_PER_STRIPE`] keys a stripe.
const STRIPES: usize = 1024;
const KNOWN_PER_STRIPE: usize = 16;

/// A record as this process last wrote it, and when Redis drops it (its TTL), if ever.
type Known = HashMap<String, (Option<Vec<u8>>, Option<u64>)>;

fn stripe(key: &str) -> &'static tokio::sync::Mutex<Known> {
    static LOCKS: OnceLock<Vec<tokio::sync::Mutex<Known>>> = OnceLock::new();
    let locks = LOCKS.get_or_init(|| {
        (0..STRIPES)
            .map(|_| tokio::sync::Mutex::default())
            .collect()
    });
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    &locks[(hasher.finish() as usize) % STRIPES]
}

fn remember(known: &mut Known, name: String, record: Option<Vec<u8>>, expires_at_ms: Option<u64>) {
    if known.len() >= KNOWN_PER_STRIPE {
        known.clear();
    }
    known.insert(name, (record, expires_at_ms));
}

/// The guess for `name`: the record last written, or none once its TTL has run out (rate-limit
/// state expires within moments of its last use).
fn recall(known: &mut Known, name: &str) -> Option<Option<Vec<u8>>> {
    let (record, expires_at_ms) = known.remove(name)?;
    Some(match expires_at_ms {
        Some(at) if at <= SystemClock.now_ms() => None,
        _ => record,
    })
}

pub struct RedisStore {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}

/// The script's answer in the protocol's flat shape.
fn flatten(value: redis::Value, out: &mut Vec<RedisValue>) {
    match value {
        redis::Value::Array(values) => values.into_iter().for_each(|v| flatten(v, out)),
        redis::Value::Int(n) => out.push(RedisValue::Int(n)),
        redis::Value::BulkString(bytes) => out.push(RedisValue::Bytes(bytes)),
        redis::Value::Nil => out.push(RedisValue::Nil),
        redis::Value::Okay => out.push(RedisValue::Status("OK".into())),
        other => out.push(RedisValue::Status(format!("{other:?}"))),
    }
}

impl RedisStore {
    /// A store on `url` (`redis://` or `rediss://`). Connects on first use and reconnects by
    /// itself after Redis comes back, so the server starts and recovers without it.
    pub fn open(url: &str, prefix: &str) -> Result<Self, String> {
        // Without TCP_NODELAY (the crate's default is off) a small command waits on Nagle's
        // algorithm and the server's delayed ACK: ~40 ms stalls, a 10x slower turn.
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| format!("STORE_URL: {e}"))?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(|e| format!("STORE_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            // One quick retry inside a request; the next request tries again.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("STORE_URL: {e}"))?;
        Ok(Self {
            connection,
            script: Script::new(redis_store::COMPARE_AND_SWAP),
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, key: StoreKey<'_>) -> String {
        redis_store::record_key(&self.prefix, key)
    }

    /// Redis answers a PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    pub async fn get(&self, key: StoreKey<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        RedisCommands::get(self, &self.key(key)).await
    }

    /// A cached-answer pool (plain GET: pools are not compare-and-swapped).
    pub async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        RedisCommands::get(self, &format!("{}{key}", self.prefix))
            .await
            .map_err(|e| CacheError(e.to_string()))
    }

    /// Writes a pool with Redis's expiry (`SET … EX`).
    pub async fn cache_put(&self, key: &str, value: Vec<u8>, ttl_s: u64) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        connection
            .set_ex::<_, _, ()>(format!("{}{key}", self.prefix), value, ttl_s)
            .await
            .map_err(|e| CacheError(format!("redis: {e}")))
    }

    pub async fn update(
        &self,
        key: StoreKey<'_>,
        apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    ) -> Result<(), StoreError> {
        let name = self.key(key);
        let mut known = stripe(&name).lock().await;
        let guess = recall(&mut known, &name);
        let updated =
            redis_store::update(self, &name, guess, apply, &SystemClock, &OsRandom).await?;
        if let Updated::Written {
            record,
            expires_at_ms,
        } = updated
        {
            remember(&mut known, name, record, expires_at_ms);
        }
        Ok(())
    }
}

impl RedisCommands for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut connection = self.connection.clone();
        connection
            .get::<_, Option<Vec<u8>>>(key)
            .await
            .map_err(unavailable)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        args: [&[u8]; 5],
    ) -> Result<Vec<RedisValue>, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(key);
        for arg in args {
            invocation.arg(arg);
        }
        let answer: redis::Value = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let mut values = Vec::new();
        flatten(answer, &mut values);
        Ok(values)
    }

    async fn pause(&self, micros: u64) {
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
}
