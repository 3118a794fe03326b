//! The conversation store on Redis (≥ 6) or Valkey, one server or a cluster, shared by every
//! instance, with the core's one Redis store protocol (`edge_core::redis_store`: keys, the
//! compare-and-swap script, the retry loop) over the `redis` crate. On a cluster every script
//! touches one key, so one slot, and the client follows MOVED/ASK and refreshes the topology
//! after a failover.
//!
//! Durability (`STORE_DURABILITY`): `primary` acknowledges a turn once the primary has it;
//! `replicated` only after `WAIT 1` saw a replica have it too. A wait that times out (or a
//! primary lost while waiting) still answers the turn, counted and logged as unconfirmed.
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
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncCommands, Cmd, Pipeline, RedisFuture, Script, Value};

/// How long one command may take, and one connection attempt: past them the request gets
/// 503 `store_unavailable` rather than hanging on a dead or stalled Redis.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1_000);
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// On a cluster, how long one command may take with its redirections and retries: a MOVED or
/// a topology refresh after a failover costs an attempt, not a failed turn.
pub const CLUSTER_REQUEST_TIMEOUT: Duration = Duration::from_millis(2_000);

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

/// What acknowledges a write (`STORE_DURABILITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// The primary has it: a primary lost before its replica copied the write loses it.
    Primary,
    /// A replica has it too (`WAIT 1`): a lost primary loses nothing acknowledged.
    Replicated,
}

/// One server's connection or a cluster's, as one `ConnectionLike`.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// What `/ready` says of the store when it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    Ready,
    /// A cluster with slots that have no primary (`cluster_state:fail`): the users whose
    /// records live there get 503 `store_unavailable`, the others are served.
    Degraded {
        slots_ok: u32,
        slots_fail: u32,
    },
}

impl StoreHealth {
    /// Reads `CLUSTER INFO`'s `field:value` lines.
    fn of_cluster(info: &str) -> Self {
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let count = |name: &str| field(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        const SLOTS: u32 = 16_384;
        let slots_ok = count("cluster_slots_ok");
        if field("cluster_state") == Some("ok") && slots_ok == SLOTS {
            Self::Ready
        } else {
            Self::Degraded {
                slots_ok,
                slots_fail: SLOTS - slots_ok.min(SLOTS),
            }
        }
    }
}

/// Where `STORE_URL` points, as the store opens it.
pub enum Target<'a> {
    Server(&'a str),
    Cluster(&'a [String]),
}

pub struct RedisStore {
    connection: Connection,
    script: Script,
    prefix: String,
    durability: Durability,
    replication_timeout: Duration,
    /// Writes acknowledged without a replica's confirmation under `replicated`.
    unconfirmed: std::sync::Arc<dyn Fn() + Send + Sync>,
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

/// How the store is opened, besides where.
pub struct Options<'a> {
    pub prefix: &'a str,
    pub durability: Durability,
    /// How long a `replicated` write waits for a replica.
    pub replication_timeout: Duration,
    /// Called for each write acknowledged without a replica's confirmation.
    pub unconfirmed: std::sync::Arc<dyn Fn() + Send + Sync>,
}

/// Without TCP_NODELAY (the crate's default is off) a small command waits on Nagle's
/// algorithm and the server's delayed ACK: ~40 ms stalls, a 10x slower turn.
fn nodelay() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

impl RedisStore {
    /// A store on one server (`redis://` or `rediss://`) or a cluster. Connects on first use
    /// and reconnects by itself after Redis comes back, so the server starts and recovers
    /// without it.
    pub fn open(target: Target<'_>, options: Options<'_>) -> Result<Self, String> {
        let connection = match target {
            Target::Server(url) => {
                let info = redis::IntoConnectionInfo::into_connection_info(url)
                    .map_err(|e| format!("STORE_URL: {e}"))?
                    .set_tcp_settings(nodelay());
                let client = redis::Client::open(info).map_err(|e| format!("STORE_URL: {e}"))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    // One quick retry inside a request; the next request tries again.
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Connection::Single(
                    ConnectionManager::new_lazy_with_config(client, config)
                        .map_err(|e| format!("STORE_URL: {e}"))?,
                )
            }
            Target::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.to_vec())
                    .tcp_settings(nodelay())
                    // A slot whose primary died is served again once a replica is promoted
                    // (cluster-node-timeout, seconds). Redirections and refreshes each take
                    // one retry (a MOVED is followed at once), so there are several; the
                    // request's whole time is bounded instead, and past it the turn gets 503
                    // store_unavailable with Retry-After.
                    .retries(6)
                    .min_retry_wait(50)
                    .max_retry_wait(200)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(COMMAND_TIMEOUT)
                    .overall_response_timeout(Some(CLUSTER_REQUEST_TIMEOUT))
                    .build()
                    .map_err(|e| format!("STORE_URL: {e}"))?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(COMMAND_TIMEOUT);
                Connection::Cluster(client.get_pending_async_connection_with_config(config))
            }
        };
        Ok(Self {
            connection,
            script: Script::new(redis_store::COMPARE_AND_SWAP),
            prefix: options.prefix.to_owned(),
            durability: options.durability,
            replication_timeout: options.replication_timeout,
            unconfirmed: options.unconfirmed,
        })
    }

    /// Under `replicated`, waits until a replica has this connection's writes to the node of
    /// `key` (on a cluster, `WAIT` goes to that key's primary). Never fails the turn: a write
    /// that no replica confirmed in time is counted and logged.
    async fn confirm_replicated(&self, key: &str) {
        if self.durability != Durability::Replicated {
            return;
        }
        let timeout_ms = self.replication_timeout.as_millis() as u64;
        let mut wait = redis::cmd("WAIT");
        wait.arg(1).arg(timeout_ms);
        let replicas: Result<i64, redis::RedisError> = match &self.connection {
            Connection::Single(connection) => wait.query_async(&mut connection.clone()).await,
            Connection::Cluster(connection) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                connection
                    .clone()
                    .route_command(
                        wait,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await
                    .and_then(|value| redis::from_redis_value(value).map_err(Into::into))
            }
        };
        match replicas {
            Ok(n) if n >= 1 => {}
            outcome => {
                (self.unconfirmed)();
                tracing::warn!(
                    key,
                    timeout_ms,
                    outcome = ?outcome,
                    "a write was acknowledged without a replica's confirmation (STORE_DURABILITY=replicated)"
                );
            }
        }
    }

    fn key(&self, key: StoreKey<'_>) -> String {
        redis_store::record_key(&self.prefix, key)
    }

    /// Redis answers a PING; on a cluster, a node answers `CLUSTER INFO` and says whether
    /// every slot has a primary.
    pub async fn ping(&self) -> Result<StoreHealth, StoreError> {
        let mut connection = self.connection.clone();
        if let Connection::Cluster(_) = connection {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            return Ok(StoreHealth::of_cluster(&info));
        }
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| StoreHealth::Ready)
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
            self.confirm_replicated(&name).await;
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

#[cfg(test)]
mod tests {
    use super::StoreHealth;

    #[test]
    fn cluster_info_says_whether_every_slot_has_a_primary() {
        let ok = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n";
        assert_eq!(StoreHealth::of_cluster(ok), StoreHealth::Ready);
        let failing = "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:10923\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:5461\r\n";
        assert_eq!(
            StoreHealth::of_cluster(failing),
            StoreHealth::Degraded {
                slots_ok: 10_923,
                slots_fail: 5_461
            }
        );
    }
}
