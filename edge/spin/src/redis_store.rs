//! The conversation store on Redis through Spin's outbound Redis interface
//! (`fermyon:spin/redis@2.0.0`), with the core's one Redis store protocol
//! (`edge_core::redis_store`): the very compare-and-swap script the native server runs, on the
//! same keys, so Spin replicas (and native instances) share one Redis exactly. Spin's own
//! Redis key-value backend is not used: its compare-and-swap reports failures as successes
//! and successes as failures (docs/spin.md).

use edge_core::ConversationStore;
use edge_core::platform::{StoreError, StoreKey, StoreWrite};
use edge_core::redis_store::{self, RedisCommands, RedisValue};
use edge_core::system::{OsRandom, SystemClock};
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

use crate::outbound::sleep_ns;

pub struct RedisStore {
    connection: Connection,
    prefix: String,
}

fn unavailable(error: spin_sdk::redis::Error) -> StoreError {
    StoreError::Unavailable(format!("redis: {error:?}"))
}

impl RedisStore {
    /// A connection to `url` for this request (Spin gives each request its own instance).
    /// The host refuses addresses not listed in the component's `allowed_outbound_hosts`.
    pub fn open(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let connection = Connection::open(url).map_err(unavailable)?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
        })
    }
}

impl RedisStore {
    /// A cached-answer pool, under the store's prefix.
    pub fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.connection
            .get(&format!("{}{key}", self.prefix))
            .map_err(unavailable)
    }

    /// Writes a pool with Redis's expiry (`SET … EX`).
    pub fn cache_put(&self, key: &str, value: &[u8], ttl_s: u64) -> Result<(), StoreError> {
        let parameters = [
            RedisParameter::Binary(format!("{}{key}", self.prefix).into_bytes()),
            RedisParameter::Binary(value.to_vec()),
            RedisParameter::Binary(b"EX".to_vec()),
            RedisParameter::Int64(i64::try_from(ttl_s).unwrap_or(i64::MAX)),
        ];
        self.connection
            .execute("SET", &parameters)
            .map(drop)
            .map_err(unavailable)
    }
}

impl RedisCommands for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.connection.get(key).map_err(unavailable)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        args: [&[u8]; 5],
    ) -> Result<Vec<RedisValue>, StoreError> {
        // EVAL sends the script's ~500 bytes each time; EVALSHA would need its SHA-1 here
        // and a NOSCRIPT fallback, for no measurable gain on a connection per request.
        let mut parameters = vec![
            RedisParameter::Binary(redis_store::COMPARE_AND_SWAP.as_bytes().to_vec()),
            RedisParameter::Int64(1),
            RedisParameter::Binary(key.as_bytes().to_vec()),
        ];
        parameters.extend(args.iter().map(|arg| RedisParameter::Binary(arg.to_vec())));
        let answer = self
            .connection
            .execute("EVAL", &parameters)
            .map_err(unavailable)?;
        Ok(answer
            .into_iter()
            .map(|value| match value {
                RedisResult::Nil => RedisValue::Nil,
                RedisResult::Int64(n) => RedisValue::Int(n),
                RedisResult::Binary(bytes) => RedisValue::Bytes(bytes),
                RedisResult::Status(status) => RedisValue::Status(status),
            })
            .collect())
    }

    async fn pause(&self, micros: u64) {
        sleep_ns(micros.saturating_mul(1_000)).await;
    }
}

impl ConversationStore for RedisStore {
    async fn get(&self, key: StoreKey<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        RedisCommands::get(self, &redis_store::record_key(&self.prefix, key)).await
    }

    async fn update(
        &self,
        key: StoreKey<'_>,
        apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    ) -> Result<(), StoreError> {
        let name = redis_store::record_key(&self.prefix, key);
        redis_store::update(self, &name, None, apply, &SystemClock, &OsRandom)
            .await
            .map(drop)
    }
}
