//! A user's conversation: bounded, expired after the retention period, and optionally sealed
//! at rest (see `seal`).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use crate::seal::{SealError, Sealer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One turn. Strings borrow from the stored record where they can, so the hot path (read,
/// append, write back) copies bytes instead of allocating a string per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn<'a> {
    pub role: Role,
    #[serde(borrow)]
    pub content: Cow<'a, str>,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    // No `skip_serializing_if`: postcard records are positional.
    #[serde(default, borrow, deserialize_with = "borrowed_opt")]
    pub intent: Option<Cow<'a, str>>,
    /// Which engine produced an assistant turn (`minimal`, `vLLM`, `cpu`).
    #[serde(default, borrow, deserialize_with = "borrowed_opt")]
    pub engine: Option<Cow<'a, str>>,
}

/// serde borrows a `Cow<str>` only as a direct field; this keeps it borrowed inside `Option`.
fn borrowed_opt<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Option::<Borrowed<'a>>::deserialize(d).map(|o| o.map(|b| b.0))
}

impl Turn<'_> {
    pub fn into_owned(self) -> Turn<'static> {
        Turn {
            role: self.role,
            content: Cow::Owned(self.content.into_owned()),
            ts_ms: self.ts_ms,
            intent: self.intent.map(|i| Cow::Owned(i.into_owned())),
            engine: self.engine.map(|e| Cow::Owned(e.into_owned())),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation<'a> {
    /// Oldest first.
    #[serde(borrow)]
    pub turns: Vec<Turn<'a>>,
}

impl Conversation<'_> {
    pub fn into_owned(self) -> Conversation<'static> {
        Conversation {
            turns: self.turns.into_iter().map(Turn::into_owned).collect(),
        }
    }
}

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("stored history could not be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl HistoryError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Corrupt(_) => "history_corrupt",
            Self::Seal(_) => "history_sealed",
        }
    }
}

/// Bounds from configuration.
#[derive(Debug, Clone, Copy)]
pub struct HistoryPolicy {
    pub max_turns: usize,
    pub retention_ms: u64,
}

impl HistoryPolicy {
    /// Drops turns past retention, then the oldest beyond `max_turns`.
    pub fn enforce(&self, conversation: &mut Conversation, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        conversation.turns.retain(|t| t.ts_ms >= cutoff);
        let excess = conversation.turns.len().saturating_sub(self.max_turns);
        conversation.turns.drain(..excess);
    }

    /// When a record last written at `now_ms` is entirely past retention.
    pub fn expires_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.retention_ms)
    }
}

/// Tag of a plain (unsealed) postcard record. Sealed records carry the same bytes inside the
/// AEAD; records that start with `{` are JSON from before the binary format and still read.
const POSTCARD_TAG: [u8; 3] = [0x02, b'P', b'C'];

fn decode_plain(bytes: &[u8]) -> Result<Conversation<'_>, HistoryError> {
    let corrupt = |e: &dyn std::fmt::Display| HistoryError::Corrupt(e.to_string());
    match bytes.strip_prefix(&POSTCARD_TAG) {
        Some(body) => postcard::from_bytes(body).map_err(|e| corrupt(&e)),
        None => serde_json::from_slice(bytes).map_err(|e| corrupt(&e)),
    }
}

/// Reads and writes conversations in the store's bytes.
pub struct HistoryCodec {
    sealer: Option<Sealer>,
}

impl HistoryCodec {
    pub fn new(sealer: Option<Sealer>) -> Self {
        Self { sealer }
    }

    pub fn is_sealed(&self) -> bool {
        self.sealer.is_some()
    }

    /// Decodes a record and hands the conversation, borrowing from it, to `use_it`.
    /// `aad` binds a sealed record to its store key, so records can't be swapped between users.
    pub fn read<R>(
        &self,
        bytes: Option<&[u8]>,
        aad: &[u8],
        use_it: impl FnOnce(Conversation<'_>) -> R,
    ) -> Result<R, HistoryError> {
        let Some(bytes) = bytes else {
            return Ok(use_it(Conversation::default()));
        };
        if Sealer::is_sealed_record(bytes) {
            let sealer = self.sealer.as_ref().ok_or(SealError::KeyMissing)?;
            let plain = sealer.open(bytes, aad)?;
            Ok(use_it(decode_plain(&plain)?))
        } else {
            // Plain records predate sealing (or sealing is off); they are re-sealed on the
            // next write.
            Ok(use_it(decode_plain(bytes)?))
        }
    }

    /// An owned copy of the conversation in a record.
    pub fn decode(
        &self,
        bytes: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Conversation<'static>, HistoryError> {
        self.read(bytes, aad, |c| c.into_owned())
    }

    pub fn encode(
        &self,
        conversation: &Conversation,
        aad: &[u8],
        nonce: [u8; 12],
    ) -> Result<Vec<u8>, HistoryError> {
        let size: usize = conversation
            .turns
            .iter()
            .map(|t| t.content.len() + 48)
            .sum();
        let mut plain = Vec::with_capacity(size + POSTCARD_TAG.len() + 8);
        plain.extend_from_slice(&POSTCARD_TAG);
        plain = postcard::to_extend(conversation, plain)
            .map_err(|e| HistoryError::Corrupt(e.to_string()))?;
        match &self.sealer {
            Some(sealer) => Ok(sealer.seal(&plain, aad, nonce)?),
            None => Ok(plain),
        }
    }
}

/// RFC 3339 (UTC, millisecond precision) for a Unix-epoch millisecond timestamp.
pub fn rfc3339(ts_ms: u64) -> String {
    let nanos = i128::from(ts_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(ts_ms: u64) -> Turn<'static> {
        Turn {
            role: Role::User,
            content: format!("m{ts_ms}").into(),
            ts_ms,
            intent: None,
            engine: None,
        }
    }

    #[test]
    fn enforce_drops_expired_then_oldest() {
        let policy = HistoryPolicy {
            max_turns: 3,
            retention_ms: 1000,
        };
        let mut c = Conversation {
            turns: (0..10).map(|i| turn(i * 200)).collect(),
        };
        policy.enforce(&mut c, 1800);
        let kept: Vec<u64> = c.turns.iter().map(|t| t.ts_ms).collect();
        assert_eq!(kept, vec![1400, 1600, 1800]);
    }

    #[test]
    fn rfc3339_formats_utc_millis() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn plain_round_trip() {
        let codec = HistoryCodec::new(None);
        let c = Conversation {
            turns: vec![turn(5)],
        };
        let bytes = codec.encode(&c, b"k", [0; 12]).unwrap();
        assert_eq!(codec.decode(Some(&bytes), b"k").unwrap(), c);
        assert!(codec.decode(Some(b"not json"), b"k").is_err());
        assert!(codec.decode(Some(b"\x02PC\xff\xff"), b"k").is_err());
    }

    #[test]
    fn json_records_from_before_the_binary_format_still_read() {
        let codec = HistoryCodec::new(None);
        let json = br#"{"turns":[{"role":"user","content":"hi","ts_ms":5}]}"#;
        let c = codec.decode(Some(json), b"k").unwrap();
        assert_eq!(c.turns[0].content, "hi");
        // Postcard records are read without copying the strings.
        let bytes = codec.encode(&c, b"k", [0; 12]).unwrap();
        let borrowed = codec
            .read(Some(&bytes), b"k", |c| {
                matches!(c.turns[0].content, Cow::Borrowed(_))
            })
            .unwrap();
        assert!(borrowed);
        assert_eq!(c.turns[0].intent, None);
    }
}
