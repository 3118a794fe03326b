//! The conversation store on Redis (≥ 6) or Valkey, shared by every instance.
//!
//! A read-modify-write reads the record, lets the core compute the new one, and writes it with
//! one Lua script that swaps only if the record is still what was read (compared byte for
//! byte), so no update is lost and no request admitted twice across instances. The record
//! this process last wrote stands in for the read (one round trip instead of two); when
//! another instance changed it since, the script answers with the record as it is and the
//! update is computed again from that. A lost race
//! is retried with a short random back-off, a bounded number of times (then 503). Within one
//! process, writers of one record take turns first (a striped lock), so Redis only arbitrates
//! between instances: one user's concurrent requests would otherwise collide in every round
//! (measured: 16 concurrent turns of one user, 5.6 swaps tried per turn). Expiry maps
//! to the key's TTL. Keys carry the owner in a hash tag (`eindr:history:{alice}`), so one
//! owner's records share a Redis Cluster slot.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;
use std::time::Duration;

use edge_core::platform::{RecordKind, StoreError, StoreKey, StoreWrite};
use edge_core::system::{OsRandom, SystemClock};
use edge_core::{Clock, Randomness};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

/// The compare-and-swap. KEYS[1]: the record. ARGV: [1] "1" when the caller read a record,
/// "0" when it found none; [2] the bytes it read; [3] "put" or "del"; [4] the new bytes;
/// [5] time to live in ms ("0": none). Returns 1 when written; when the record was not what
/// the caller read, `{0, record}` (nil when there is none), so it can retry without a GET.
const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return {0, current} end
elseif current then
  return {0, current}
end
if ARGV[3] == 'del' then
  redis.call('DEL', KEYS[1])
elseif ARGV[5] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
else
  redis.call('SET', KEYS[1], ARGV[4])
end
return 1
";

/// Swaps lost to another writer before giving up with 503 (`Contention`).
const MAX_ATTEMPTS: u32 = 64;

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
            script: Script::new(COMPARE_AND_SWAP),
            prefix: prefix.to_owned(),
        })
    }

    /// `prefix` + kind + the owner as a hash tag: `eindr:ratelimit:{alice}`.
    pub fn key(&self, key: StoreKey<'_>) -> String {
        let kind = match key.kind {
            RecordKind::History => "history",
            RecordKind::RateLimit => "ratelimit",
            RecordKind::AuthFailures => "authfail",
            RecordKind::BackendBreaker => "breaker",
        };
        format!("{}{kind}:{{{}}}", self.prefix, key.owner)
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
        let mut connection = self.connection.clone();
        connection
            .get::<_, Option<Vec<u8>>>(self.key(key))
            .await
            .map_err(unavailable)
    }

    pub async fn update(
        &self,
        key: StoreKey<'_>,
        apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    ) -> Result<(), StoreError> {
        let name = self.key(key);
        let mut known = stripe(&name).lock().await;
        let mut connection = self.connection.clone();
        let mut current: Option<Vec<u8>> = match recall(&mut known, &name) {
            Some(record) => record,
            None => connection.get(&name).await.map_err(unavailable)?,
        };
        for attempt in 0..MAX_ATTEMPTS {
            let (operation, bytes, ttl_ms, expires_at_ms) = match apply(current.as_deref()) {
                // Unchanged; its TTL is not known here, so the next update reads it.
                StoreWrite::Keep => return Ok(()),
                StoreWrite::Delete => ("del", Vec::new(), 0, None),
                StoreWrite::Put {
                    bytes,
                    expires_at_ms,
                } => match expires_at_ms.map(|at| at.saturating_sub(SystemClock.now_ms())) {
                    // Already past its expiry: nothing to keep.
                    Some(0) => ("del", Vec::new(), 0, None),
                    Some(ttl) => ("put", bytes, ttl, expires_at_ms),
                    None => ("put", bytes, 0, None),
                },
            };
            let answer: redis::Value = self
                .script
                .key(&name)
                .arg(if current.is_some() { "1" } else { "0" })
                .arg(current.as_deref().unwrap_or_default())
                .arg(operation)
                .arg(&bytes)
                .arg(ttl_ms)
                .invoke_async(&mut connection)
                .await
                .map_err(unavailable)?;
            match answer {
                redis::Value::Int(1) => {
                    let record = (operation == "put").then_some(bytes);
                    remember(&mut known, name, record, expires_at_ms);
                    return Ok(());
                }
                redis::Value::Array(mut reply) if reply.len() == 2 => {
                    current = match reply.pop() {
                        Some(redis::Value::BulkString(record)) => Some(record),
                        _ => None,
                    };
                }
                other => {
                    return Err(StoreError::Unavailable(format!(
                        "redis: unexpected answer to the swap: {other:?}"
                    )));
                }
            }
            // Another writer got there first. The first time that is usually just a stale
            // guess; after that, wait a random while that grows with each loss, so writers of
            // one record in several instances spread out instead of colliding again.
            if attempt > 0 {
                let ceiling_us = 200u64 << attempt.min(6);
                let wait_us = OsRandom.next_u64() % ceiling_us;
                tokio::time::sleep(Duration::from_micros(wait_us)).await;
            }
        }
        Err(StoreError::Contention {
            attempts: MAX_ATTEMPTS,
        })
    }
}
