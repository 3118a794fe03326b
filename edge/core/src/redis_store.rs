//! The store protocol on Redis (≥ 6) or Valkey, one for every client: the native server (the
//! `redis` crate) and the Spin component (Spin's outbound Redis interface) run the same
//! compare-and-swap script on the same keys, so instances of either kind share one Redis.
//!
//! A read-modify-write starts from the record as read (or as the client last wrote it, a
//! guess that saves a round trip), lets the core compute the new one, and writes it with one
//! Lua script that swaps only if the record is still what the update started from, compared
//! byte for byte. When it is not, the script answers with the record as it is and the update
//! is computed again from that, after a random pause that grows with each loss, a bounded
//! number of times (then `Contention`: 503). No update is lost and no request admitted twice,
//! however many instances write. Expiry maps to the key's TTL. Keys carry the owner in a hash
//! tag (`eindr:history:{alice}`), so one owner's records share a Redis Cluster slot.

use crate::config::ConfigError;
use crate::platform::{Clock, Randomness, StoreError, StoreKey, StoreWrite};

/// The prefix of every key unless `STORE_KEY_PREFIX` says otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "eindr:";

/// What `STORE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The platform's own store (empty, or the platform's name for it).
    Platform,
    /// A Redis or Valkey server, `redis://` or `rediss://` (TLS).
    Redis(String),
    /// A Redis (or Valkey) Cluster, `redis+cluster://host:port,host:port` (`rediss+cluster://`
    /// for TLS; credentials once, before the first host): the nodes to discover it from, each
    /// as a `redis://` URL with the credentials. Any one reachable node is enough; listing a
    /// few lets the client start while one is down.
    RedisCluster(Vec<String>),
}

impl StoreUrl {
    /// Reads `STORE_URL`, where `platform` names the platform's own store (`memory` natively).
    /// An error never repeats the URL's credentials.
    pub fn parse(url: &str, platform: &str) -> Result<Self, ConfigError> {
        let url = url.trim();
        if url.is_empty() || url == platform {
            Ok(Self::Platform)
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            Ok(Self::Redis(url.to_owned()))
        } else if let Some((scheme, rest)) = url
            .strip_prefix("redis+cluster://")
            .map(|rest| ("redis", rest))
            .or_else(|| url.strip_prefix("rediss+cluster://").map(|r| ("rediss", r)))
        {
            let (credentials, hosts) = match rest.rsplit_once('@') {
                Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
                None => (String::new(), rest),
            };
            let nodes: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|host| !host.is_empty())
                .map(|host| format!("{scheme}://{credentials}{host}"))
                .collect();
            if nodes.is_empty() || hosts.contains('/') {
                return Err(Self::invalid(
                    url,
                    "expected `redis+cluster://host:port,host:port` (a cluster has no database number)",
                ));
            }
            Ok(Self::RedisCluster(nodes))
        } else {
            Err(Self::invalid(
                url,
                &format!(
                    "expected `{platform}`, `redis://...`, `rediss://...` or `redis+cluster://host:port,...`"
                ),
            ))
        }
    }

    /// `STORE_URL` refused for `reason`, shown without its credentials.
    pub fn invalid(url: &str, reason: &str) -> ConfigError {
        ConfigError::Invalid {
            var: "STORE_URL",
            value: url.rsplit('@').next().unwrap_or_default().to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// The compare-and-swap. KEYS[1]: the record. ARGV: [1] "1" when the caller read a record,
/// "0" when it found none; [2] the bytes it read; [3] "put" or "del"; [4] the new bytes;
/// [5] time to live in ms ("0": none). Answers 1 when written. When the record is not what
/// the caller read: `{0, record}`, or `{0}` when there is none (never a nil inside the array:
/// some Spin releases drop nils from `execute`'s answer), so the caller retries without a GET.
pub const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then
    if current then return {0, current} end
    return {0}
  end
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
pub const MAX_ATTEMPTS: u32 = 64;

/// The key of a record: `prefix` + kind + the owner as a hash tag, `eindr:ratelimit:{alice}`.
pub fn record_key(prefix: &str, key: StoreKey<'_>) -> String {
    format!("{prefix}{}:{{{}}}", key.kind.name(), key.owner)
}

/// One value of a command's answer, arrays spread out in order: the shape Spin's `execute`
/// gives, to which the native client flattens its answer too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisValue {
    Nil,
    Int(i64),
    Bytes(Vec<u8>),
    Status(String),
}

/// What a Redis client must do for the protocol.
#[allow(async_fn_in_trait)]
pub trait RedisCommands {
    /// GET `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Runs [`COMPARE_AND_SWAP`] on `key` with `args`; the answer flattened.
    async fn compare_and_swap(
        &self,
        key: &str,
        args: [&[u8]; 5],
    ) -> Result<Vec<RedisValue>, StoreError>;

    /// Waits `micros` before the next try.
    async fn pause(&self, micros: u64);
}

/// How an update ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    /// The record was left as it was (its TTL is not known here).
    Kept,
    /// The record is now `record` (none: deleted), dropped by Redis at `expires_at_ms`.
    Written {
        record: Option<Vec<u8>>,
        expires_at_ms: Option<u64>,
    },
}

/// The record as the swap found it, when it was not what the update started from.
enum Answer {
    Written,
    Changed(Option<Vec<u8>>),
}

fn read_answer(values: Vec<RedisValue>) -> Result<Answer, StoreError> {
    let mut values = values.into_iter();
    match (values.next(), values.next(), values.next()) {
        (Some(RedisValue::Int(1)), None, None) => Ok(Answer::Written),
        (Some(RedisValue::Int(0)), None | Some(RedisValue::Nil), None) => Ok(Answer::Changed(None)),
        (Some(RedisValue::Int(0)), Some(RedisValue::Bytes(record)), None) => {
            Ok(Answer::Changed(Some(record)))
        }
        other => Err(StoreError::Unavailable(format!(
            "redis: unexpected answer to the swap: {other:?}"
        ))),
    }
}

/// Applies `apply` to the record under `key` atomically across every client of this Redis.
/// `guess` is what the caller believes the record is (skipping the first read); `None`
/// reads it first.
pub async fn update<C: RedisCommands>(
    client: &C,
    key: &str,
    guess: Option<Option<Vec<u8>>>,
    apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    clock: &dyn Clock,
    random: &dyn Randomness,
) -> Result<Updated, StoreError> {
    let mut current = match guess {
        Some(record) => record,
        None => client.get(key).await?,
    };
    for attempt in 0..MAX_ATTEMPTS {
        let (operation, bytes, ttl_ms, expires_at_ms) = match apply(current.as_deref()) {
            StoreWrite::Keep => return Ok(Updated::Kept),
            StoreWrite::Delete => ("del", Vec::new(), 0, None),
            StoreWrite::Put {
                bytes,
                expires_at_ms,
            } => match expires_at_ms.map(|at| at.saturating_sub(clock.now_ms())) {
                // Already past its expiry: nothing to keep.
                Some(0) => ("del", Vec::new(), 0, None),
                Some(ttl) => ("put", bytes, ttl, expires_at_ms),
                None => ("put", bytes, 0, None),
            },
        };
        let ttl = ttl_ms.to_string();
        let read: &[u8] = if current.is_some() { b"1" } else { b"0" };
        let args = [
            read,
            current.as_deref().unwrap_or_default(),
            operation.as_bytes(),
            &bytes,
            ttl.as_bytes(),
        ];
        match read_answer(client.compare_and_swap(key, args).await?)? {
            Answer::Written => {
                return Ok(Updated::Written {
                    record: (operation == "put").then_some(bytes),
                    expires_at_ms,
                });
            }
            Answer::Changed(record) => current = record,
        }
        // Another writer got there first. The first time that is usually just a stale
        // guess; after that, wait a random while that grows with each loss, so writers of
        // one record in several instances spread out instead of colliding again.
        if attempt > 0 {
            let ceiling_us = 200u64 << attempt.min(6);
            client.pause(random.next_u64() % ceiling_us).await;
        }
    }
    Err(StoreError::Contention {
        attempts: MAX_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::RecordKind;

    #[test]
    fn store_urls() {
        assert_eq!(StoreUrl::parse("", "memory").unwrap(), StoreUrl::Platform);
        assert_eq!(
            StoreUrl::parse(" memory ", "memory").unwrap(),
            StoreUrl::Platform
        );
        assert_eq!(
            StoreUrl::parse("rediss://:pw@cache:6380/0", "memory").unwrap(),
            StoreUrl::Redis("rediss://:pw@cache:6380/0".into())
        );
        assert_eq!(
            StoreUrl::parse("redis+cluster://:pw@10.0.0.1:7000, 10.0.0.2:7001", "memory").unwrap(),
            StoreUrl::RedisCluster(vec![
                "redis://:pw@10.0.0.1:7000".into(),
                "redis://:pw@10.0.0.2:7001".into()
            ])
        );
        assert_eq!(
            StoreUrl::parse("rediss+cluster://cache:6380", "memory").unwrap(),
            StoreUrl::RedisCluster(vec!["rediss://cache:6380".into()])
        );
        for refused in ["redis+cluster://", "redis+cluster://:secret@a:1/0"] {
            let error = StoreUrl::parse(refused, "memory").unwrap_err().to_string();
            assert!(!error.contains("secret"), "{error}");
        }
        let refused = StoreUrl::parse("postgres://user:secret@db/x", "memory")
            .unwrap_err()
            .to_string();
        assert!(!refused.contains("secret"), "{refused}");
        assert!(refused.contains("db/x"), "{refused}");
    }

    /// The script's semantics over one in-memory record, with another writer that changes
    /// the record before each of the first `interfere` swaps.
    struct OneRecord {
        record: std::cell::RefCell<Option<Vec<u8>>>,
        interfere: std::cell::Cell<u32>,
        swaps: std::cell::Cell<u32>,
    }

    impl RedisCommands for OneRecord {
        async fn get(&self, _key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.record.borrow().clone())
        }

        async fn compare_and_swap(
            &self,
            _key: &str,
            [read, expected, operation, bytes, _ttl]: [&[u8]; 5],
        ) -> Result<Vec<RedisValue>, StoreError> {
            self.swaps.set(self.swaps.get() + 1);
            if self.interfere.get() > 0 {
                self.interfere.set(self.interfere.get() - 1);
                let mut other = self.record.borrow().clone().unwrap_or_default();
                other.push(b'x');
                *self.record.borrow_mut() = Some(other);
            }
            let mut record = self.record.borrow_mut();
            let same = match (&*record, read) {
                (Some(current), b"1") => current.as_slice() == expected,
                (None, b"0") => true,
                _ => false,
            };
            if !same {
                let mut answer = vec![RedisValue::Int(0)];
                answer.extend(record.clone().map(RedisValue::Bytes));
                return Ok(answer);
            }
            *record = (operation == b"put").then(|| bytes.to_vec());
            Ok(vec![RedisValue::Int(1)])
        }

        async fn pause(&self, _micros: u64) {}
    }

    struct At(u64);
    impl Clock for At {
        fn now_ms(&self) -> u64 {
            self.0
        }
    }
    struct Counter;
    impl Randomness for Counter {
        fn fill(&self, buf: &mut [u8]) {
            buf.fill(7);
        }
    }

    fn append_y(current: Option<&[u8]>) -> StoreWrite {
        let mut bytes = current.unwrap_or_default().to_vec();
        bytes.push(b'y');
        StoreWrite::Put {
            bytes,
            expires_at_ms: Some(2_000),
        }
    }

    #[test]
    fn a_lost_swap_is_computed_again_from_the_record_as_it_is() {
        let store = OneRecord {
            record: Some(b"a".to_vec()).into(),
            interfere: 2.into(),
            swaps: 0.into(),
        };
        let updated = pollster::block_on(update(
            &store,
            "k",
            Some(Some(b"a".to_vec())),
            &mut append_y,
            &At(1_000),
            &Counter,
        ))
        .unwrap();
        // Both interfering writes are kept, and ours lands on top of them.
        assert_eq!(store.record.borrow().as_deref(), Some(&b"axxy"[..]));
        assert_eq!(store.swaps.get(), 3);
        assert_eq!(
            updated,
            Updated::Written {
                record: Some(b"axxy".to_vec()),
                expires_at_ms: Some(2_000)
            }
        );
    }

    #[test]
    fn a_stale_guess_costs_one_swap_and_endless_contention_gives_up() {
        let store = OneRecord {
            record: Some(b"b".to_vec()).into(),
            interfere: 0.into(),
            swaps: 0.into(),
        };
        pollster::block_on(update(
            &store,
            "k",
            Some(None),
            &mut append_y,
            &At(0),
            &Counter,
        ))
        .unwrap();
        assert_eq!(store.record.borrow().as_deref(), Some(&b"by"[..]));
        assert_eq!(store.swaps.get(), 2);

        store.interfere.set(u32::MAX);
        let outcome =
            pollster::block_on(update(&store, "k", None, &mut append_y, &At(0), &Counter));
        assert!(matches!(
            outcome,
            Err(StoreError::Contention {
                attempts: MAX_ATTEMPTS
            })
        ));
    }

    #[test]
    fn a_put_already_past_its_expiry_deletes() {
        let store = OneRecord {
            record: Some(b"c".to_vec()).into(),
            interfere: 0.into(),
            swaps: 0.into(),
        };
        let updated = pollster::block_on(update(
            &store,
            "k",
            None,
            &mut append_y,
            &At(5_000),
            &Counter,
        ))
        .unwrap();
        assert_eq!(*store.record.borrow(), None);
        assert_eq!(
            updated,
            Updated::Written {
                record: None,
                expires_at_ms: None
            }
        );
    }

    #[test]
    fn keys_carry_the_owner_as_a_hash_tag() {
        let key = StoreKey {
            kind: RecordKind::RateLimit,
            owner: "alice",
        };
        assert_eq!(record_key("eindr:", key), "eindr:ratelimit:{alice}");
    }

    #[test]
    fn answers_with_and_without_a_nil() {
        use RedisValue::*;
        assert!(matches!(read_answer(vec![Int(1)]), Ok(Answer::Written)));
        assert!(matches!(
            read_answer(vec![Int(0)]),
            Ok(Answer::Changed(None))
        ));
        assert!(matches!(
            read_answer(vec![Int(0), Nil]),
            Ok(Answer::Changed(None))
        ));
        assert!(matches!(
            read_answer(vec![Int(0), Bytes(b"r".to_vec())]),
            Ok(Answer::Changed(Some(r))) if r == b"r"
        ));
        assert!(read_answer(vec![Status("OK".into())]).is_err());
        assert!(read_answer(vec![Int(1), Int(1)]).is_err());
    }
}
