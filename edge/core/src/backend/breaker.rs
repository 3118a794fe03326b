//! Circuit breaker for the GPU backend: after `failures` failures in a row the edge stops
//! sending for `open_ms` and answers in minimal mode at once; then one request probes, and
//! its outcome closes the breaker or opens it again.
//!
//! The state is a record in the conversation store (a few bytes), so it survives between
//! requests on platforms that keep no memory between them (Spin starts an instance per
//! request). A healthy backend causes no writes: success on a closed breaker keeps the record.

use crate::platform::StoreWrite;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BreakerState {
    /// Failures in a row.
    pub failures: u32,
    /// While `now < open_until_ms`, nothing is sent.
    pub open_until_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub failures: u32,
    pub open_ms: u64,
}

/// What the breaker allows for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Send,
    /// The open period is over: this request probes; others wait for its outcome.
    Probe,
    Reject {
        retry_in_ms: u64,
    },
}

const RECORD_LEN: usize = 12;

impl BreakerState {
    pub fn decode(bytes: Option<&[u8]>) -> Self {
        match bytes {
            Some(b) if b.len() == RECORD_LEN => {
                let mut failures = [0u8; 4];
                let mut until = [0u8; 8];
                failures.copy_from_slice(&b[..4]);
                until.copy_from_slice(&b[4..]);
                Self {
                    failures: u32::from_le_bytes(failures),
                    open_until_ms: u64::from_le_bytes(until),
                }
            }
            // Absent or unreadable: a closed breaker (the safe default is to try).
            _ => Self::default(),
        }
    }

    fn write(self) -> StoreWrite {
        if self == Self::default() {
            return StoreWrite::Delete;
        }
        let mut bytes = Vec::with_capacity(RECORD_LEN);
        bytes.extend_from_slice(&self.failures.to_le_bytes());
        bytes.extend_from_slice(&self.open_until_ms.to_le_bytes());
        StoreWrite::Put {
            bytes,
            expires_at_ms: None,
        }
    }

    pub fn is_open(&self, policy: BreakerPolicy) -> bool {
        self.failures >= policy.failures
    }

    /// Decides for a request at `now`, and the record to write (a probe pushes the open
    /// period on, so concurrent requests keep falling back while it runs).
    pub fn admit(self, policy: BreakerPolicy, now_ms: u64) -> (Admission, StoreWrite) {
        if !self.is_open(policy) {
            return (Admission::Send, StoreWrite::Keep);
        }
        if now_ms < self.open_until_ms {
            let retry_in_ms = self.open_until_ms - now_ms;
            return (Admission::Reject { retry_in_ms }, StoreWrite::Keep);
        }
        let probing = Self {
            open_until_ms: now_ms + policy.open_ms,
            ..self
        };
        (Admission::Probe, probing.write())
    }

    /// The record after a request's outcome.
    pub fn record(self, policy: BreakerPolicy, succeeded: bool, now_ms: u64) -> StoreWrite {
        if succeeded {
            return if self == Self::default() {
                StoreWrite::Keep
            } else {
                StoreWrite::Delete
            };
        }
        let failures = self.failures.saturating_add(1);
        let open_until_ms = if failures >= policy.failures {
            now_ms + policy.open_ms
        } else {
            self.open_until_ms
        };
        Self {
            failures,
            open_until_ms,
        }
        .write()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures: 3,
        open_ms: 1000,
    };

    fn apply(state: BreakerState, write: StoreWrite) -> BreakerState {
        match write {
            StoreWrite::Keep => state,
            StoreWrite::Delete => BreakerState::default(),
            StoreWrite::Put { bytes, .. } => BreakerState::decode(Some(&bytes)),
        }
    }

    #[test]
    fn opens_after_failures_in_a_row_then_probes_once() {
        let mut s = BreakerState::default();
        for _ in 0..2 {
            assert_eq!(s.admit(POLICY, 0).0, Admission::Send);
            s = apply(s, s.record(POLICY, false, 0));
        }
        // A success in between resets the count.
        s = apply(s, s.record(POLICY, true, 0));
        assert_eq!(s, BreakerState::default());
        for _ in 0..3 {
            s = apply(s, s.record(POLICY, false, 100));
        }
        assert!(s.is_open(POLICY));
        assert_eq!(
            s.admit(POLICY, 600).0,
            Admission::Reject { retry_in_ms: 500 }
        );
        let (admission, write) = s.admit(POLICY, 1100);
        assert_eq!(admission, Admission::Probe);
        s = apply(s, write);
        // While the probe runs, others are turned away.
        assert!(matches!(s.admit(POLICY, 1200).0, Admission::Reject { .. }));
        // A failed probe opens it again; a good one closes it.
        let failed = apply(s, s.record(POLICY, false, 1300));
        assert_eq!(failed.open_until_ms, 2300);
        let healed = apply(s, s.record(POLICY, true, 1300));
        assert_eq!(healed.admit(POLICY, 1300).0, Admission::Send);
    }

    #[test]
    fn healthy_traffic_writes_nothing_and_junk_reads_closed() {
        let s = BreakerState::default();
        assert_eq!(s.admit(POLICY, 5).1, StoreWrite::Keep);
        assert_eq!(s.record(POLICY, true, 5), StoreWrite::Keep);
        assert_eq!(BreakerState::decode(Some(b"junk")), BreakerState::default());
    }
}
