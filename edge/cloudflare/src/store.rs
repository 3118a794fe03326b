//! The conversation store inside a Durable Object. Records of this object's own place are in
//! its SQLite database (`Records`, synchronous, so a read-modify-write is atomic). Records of
//! another place (an admin reading another user's history, a client address's
//! failed-authentication count) go to that object with a compare-and-swap.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use edge_core::placement::place_of;
use edge_core::{ConversationStore, StoreError, StoreKey, StoreWrite};
use serde::{Deserialize, Serialize};
use worker::Env;

use crate::records::Records;
use crate::{NAMESPACE, STORE_PATH, platform};

/// Attempts of one remote compare-and-swap before giving up.
const CAS_ATTEMPTS: u32 = 16;

pub struct ObjectStore<'a> {
    pub records: &'a Records,
    pub now_ms: u64,
    pub env: &'a Env,
    /// This object's place (`user:alice`).
    pub place: &'a str,
}

impl<'a> ObjectStore<'a> {
    pub fn new(records: &'a Records, env: &'a Env, place: &'a str) -> Self {
        Self {
            records,
            now_ms: edge_core::Clock::now_ms(&crate::platform::WorkerClock),
            env,
            place,
        }
    }
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The object-to-object store protocol.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoreOp {
    Get {
        key: String,
    },
    /// Apply `write` only if the record still equals `expected`.
    Cas {
        key: String,
        expected: Option<String>,
        write: WireWrite,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireWrite {
    Put(String),
    Delete,
}

#[derive(Serialize, Deserialize)]
pub struct StoreReply {
    pub ok: bool,
    pub current: Option<String>,
}

fn b64(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| STANDARD.encode(b))
}

fn unb64(text: Option<&str>) -> Result<Option<Vec<u8>>, StoreError> {
    text.map(|t| STANDARD.decode(t).map_err(unavailable))
        .transpose()
}

/// Serves one store operation on this object's own records.
pub fn serve(records: &Records, op: StoreOp, now_ms: u64) -> Result<StoreReply, StoreError> {
    match op {
        StoreOp::Get { key } => {
            let current = records.get(&key, now_ms)?;
            Ok(StoreReply {
                ok: true,
                current: b64(current.as_deref()),
            })
        }
        StoreOp::Cas {
            key,
            expected,
            write,
        } => {
            let current = records.get(&key, now_ms)?;
            if b64(current.as_deref()) != expected {
                return Ok(StoreReply {
                    ok: false,
                    current: b64(current.as_deref()),
                });
            }
            let write = match write {
                WireWrite::Put(text) => StoreWrite::Put {
                    bytes: unb64(Some(&text))?.unwrap_or_default(),
                    expires_at_ms: None,
                },
                WireWrite::Delete => StoreWrite::Delete,
            };
            records.write(&key, write, now_ms)?;
            Ok(StoreReply {
                ok: true,
                current: None,
            })
        }
    }
}

impl ObjectStore<'_> {
    async fn remote(&self, place: &str, op: &StoreOp) -> Result<StoreReply, StoreError> {
        let body = serde_json::to_vec(op).map_err(unavailable)?;
        let request = platform::internal_request("POST", STORE_PATH, &[], place, None, &body)
            .map_err(unavailable)?;
        let stub = self
            .env
            .durable_object(NAMESPACE)
            .and_then(|ns| ns.get_by_name(place))
            .map_err(unavailable)?;
        let mut response = stub
            .fetch_with_request(request)
            .await
            .map_err(unavailable)?;
        if response.status_code() != 200 {
            return Err(unavailable(format!(
                "store object answered {}",
                response.status_code()
            )));
        }
        response.json::<StoreReply>().await.map_err(unavailable)
    }
}

impl ConversationStore for ObjectStore<'_> {
    async fn get(&self, key: StoreKey<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        let place = match place_of(key) {
            Some(place) if place != self.place => place,
            _ => return self.records.get(&key.flat(), self.now_ms),
        };
        let reply = self
            .remote(&place, &StoreOp::Get { key: key.flat() })
            .await?;
        unb64(reply.current.as_deref())
    }

    async fn update(
        &self,
        key: StoreKey<'_>,
        apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    ) -> Result<(), StoreError> {
        let flat = key.flat();
        let place = match place_of(key) {
            Some(place) if place != self.place => place,
            _ => {
                let current = self.records.get(&flat, self.now_ms)?;
                let write = apply(current.as_deref());
                return self.records.write(&flat, write, self.now_ms);
            }
        };
        let mut current = unb64(
            self.remote(&place, &StoreOp::Get { key: flat.clone() })
                .await?
                .current
                .as_deref(),
        )?;
        for _ in 0..CAS_ATTEMPTS {
            let write = match apply(current.as_deref()) {
                StoreWrite::Keep => return Ok(()),
                StoreWrite::Put { bytes, .. } => WireWrite::Put(STANDARD.encode(bytes)),
                StoreWrite::Delete => WireWrite::Delete,
            };
            let op = StoreOp::Cas {
                key: flat.clone(),
                expected: b64(current.as_deref()),
                write,
            };
            let reply = self.remote(&place, &op).await?;
            if reply.ok {
                return Ok(());
            }
            current = unb64(reply.current.as_deref())?;
        }
        Err(StoreError::Contention {
            attempts: CAS_ATTEMPTS,
        })
    }
}
