//! A user's conversation: bounded, expired after the retention period, and optionally sealed
//! at rest (see `seal`).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::seal::{SealError, Sealer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    pub content: String,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Which engine produced an assistant turn (`minimal`, `vLLM`, `cpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Oldest first.
    pub turns: Vec<Turn>,
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

    /// `aad` binds a sealed record to its store key, so records can't be swapped between users.
    pub fn decode(&self, bytes: Option<&[u8]>, aad: &[u8]) -> Result<Conversation, HistoryError> {
        let Some(bytes) = bytes else {
            return Ok(Conversation::default());
        };
        let plain;
        let json: &[u8] = if Sealer::is_sealed_record(bytes) {
            let sealer = self.sealer.as_ref().ok_or(SealError::KeyMissing)?;
            plain = sealer.open(bytes, aad)?;
            &plain
        } else {
            // Plain records predate sealing (or sealing is off); they are re-sealed on the
            // next write.
            bytes
        };
        serde_json::from_slice(json).map_err(|e| HistoryError::Corrupt(e.to_string()))
    }

    pub fn encode(
        &self,
        conversation: &Conversation,
        aad: &[u8],
        nonce: [u8; 12],
    ) -> Result<Vec<u8>, HistoryError> {
        let json =
            serde_json::to_vec(conversation).map_err(|e| HistoryError::Corrupt(e.to_string()))?;
        match &self.sealer {
            Some(sealer) => Ok(sealer.seal(&json, aad, nonce)?),
            None => Ok(json),
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

    fn turn(ts_ms: u64) -> Turn {
        Turn {
            role: Role::User,
            content: format!("m{ts_ms}"),
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
    }
}
