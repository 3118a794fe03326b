//! The conversation store on Redis (≥ 6) or Valkey, shared by every instance.
//!
//! A read-modify-write reads the record, lets the core compute the new one, and writes it with
//! one Lua script that swaps only if the record is still what was read (compared byte for
//! byte), so no update is lost and no request admitted twice across instances. A lost race
//! is retried with a short random back-off, a bounded number of times (then 503). Expiry maps
//! to the key's TTL. Keys carry the owner in a hash tag (`eindr:history:{alice}`), so one
//! owner's records share a Redis Cluster slot.

use std::time::Duration;

use edge_core::platform::{RecordKind, StoreError, StoreKey, StoreWrite};
use edge_core::system::{OsRandom, SystemClock};
use edge_core::{Clock, Randomness};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

/// The compare-and-swap. KEYS[1]: the record. ARGV: [1] "1" when the caller read a record,
/// "0" when it found none; [2] the bytes it read; [3] "put" or "del"; [4] the new bytes;
/// [5] time to live in ms ("0": none). Returns 1 when written, 0 when the record had changed.
const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
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
        let client = redis::Client::open(url).map_err(|e| format!("STORE_URL: {e}"))?;
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
        let mut connection = self.connection.clone();
        for attempt in 0..MAX_ATTEMPTS {
            let current: Option<Vec<u8>> = connection.get(&name).await.map_err(unavailable)?;
            let (operation, bytes, ttl_ms) = match apply(current.as_deref()) {
                StoreWrite::Keep => return Ok(()),
                StoreWrite::Delete => ("del", Vec::new(), 0),
                StoreWrite::Put {
                    bytes,
                    expires_at_ms,
                } => match expires_at_ms.map(|at| at.saturating_sub(SystemClock.now_ms())) {
                    // Already past its expiry: nothing to keep.
                    Some(0) => ("del", Vec::new(), 0),
                    Some(ttl) => ("put", bytes, ttl),
                    None => ("put", bytes, 0),
                },
            };
            let swapped: i64 = self
                .script
                .key(&name)
                .arg(if current.is_some() { "1" } else { "0" })
                .arg(current.unwrap_or_default())
                .arg(operation)
                .arg(bytes)
                .arg(ttl_ms)
                .invoke_async(&mut connection)
                .await
                .map_err(unavailable)?;
            if swapped == 1 {
                return Ok(());
            }
            // Lost the race: wait a random while that grows with each loss, so concurrent
            // writers of one record spread out instead of colliding again.
            let ceiling_us = 200u64 << attempt.min(6);
            let wait_us = OsRandom.next_u64() % ceiling_us;
            tokio::time::sleep(Duration::from_micros(wait_us)).await;
        }
        Err(StoreError::Contention {
            attempts: MAX_ATTEMPTS,
        })
    }
}
