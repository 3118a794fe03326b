//! GCRA (generic cell rate algorithm), the algorithm of the `governor` crate, with its one
//! number of state (the theoretical arrival time) kept in the conversation store so the
//! limit is exact wherever the store's read-modify-write is.

/// A quota: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

impl Quota {
    /// Microseconds between two cells at the sustained rate (the emission interval); never
    /// zero, so rates up to a million a minute stay exact.
    fn interval_us(&self) -> u64 {
        (60_000_000 / u64::from(self.per_minute.max(1))).max(1)
    }

    /// How far ahead of now the theoretical arrival time may run (burst capacity).
    fn capacity_us(&self) -> u64 {
        self.interval_us()
            .saturating_mul(u64::from(self.burst.max(1)))
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the full burst is available again.
    pub reset_s: u64,
    /// Seconds until one more request would be allowed (0 when allowed).
    pub retry_after_s: u64,
}

impl Decision {
    /// `RateLimit-*` headers (IETF draft-ietf-httpapi-ratelimit-headers).
    /// The IETF draft's `ratelimit-*` and, with the same figures, OpenAI's
    /// `x-ratelimit-*-requests` (its SDKs and gateways read those).
    pub fn headers(&self) -> [(&'static str, String); 6] {
        [
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", self.reset_s.to_string()),
            ("x-ratelimit-limit-requests", self.limit.to_string()),
            ("x-ratelimit-remaining-requests", self.remaining.to_string()),
            ("x-ratelimit-reset-requests", format!("{}s", self.reset_s)),
        ]
    }
}

/// Stored state: the theoretical arrival time in µs since the epoch, as 8 bytes.
pub fn decode_tat(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

pub fn encode_tat(tat: u64) -> Vec<u8> {
    tat.to_le_bytes().to_vec()
}

fn ceil_s(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

/// Decides one request at `now_ms` against the stored TAT; returns the decision and the
/// new TAT to store (unchanged when refused, so refusals cost nothing).
pub fn check(quota: Quota, stored_tat: u64, now_ms: u64) -> (Decision, u64) {
    let now = now_ms.saturating_mul(1000);
    let t = quota.interval_us();
    let capacity = quota.capacity_us();
    let tat = stored_tat.max(now);
    let new_tat = tat.saturating_add(t);
    let ahead = new_tat - now;
    if ahead <= capacity {
        let remaining = ((capacity - ahead) / t) as u32;
        let decision = Decision {
            allowed: true,
            limit: quota.burst,
            remaining,
            reset_s: ceil_s(ahead),
            retry_after_s: 0,
        };
        (decision, new_tat)
    } else {
        let decision = Decision {
            allowed: false,
            limit: quota.burst,
            remaining: 0,
            reset_s: ceil_s(tat - now),
            retry_after_s: ceil_s(ahead - capacity).max(1),
        };
        (decision, stored_tat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        per_minute: 60,
        burst: 5,
    };

    #[test]
    fn burst_then_refusal_then_refill() {
        let mut tat = 0;
        let now = 1_000_000;
        for i in 0..5 {
            let (d, t) = check(Q, tat, now);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 4 - i);
            tat = t;
        }
        let (d, t) = check(Q, tat, now);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_s, 1);
        assert_eq!(t, tat, "a refusal does not consume");
        // One interval (1 s) later exactly one more request fits.
        let (d, t) = check(Q, tat, now + 1000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let (d, _) = check(Q, t, now + 1000);
        assert!(!d.allowed);
        // After the whole burst window the bucket is full again.
        let (d, _) = check(Q, t, now + 60_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
    }

    #[test]
    fn high_rates_stay_exact() {
        let q = Quota {
            per_minute: 1_000_000,
            burst: 3,
        };
        let (mut tat, now) = (0, 5_000);
        for _ in 0..3 {
            let (d, t) = check(q, tat, now);
            assert!(d.allowed);
            tat = t;
        }
        assert!(!check(q, tat, now).0.allowed);
        // 60 µs per cell: 1 ms later the 180 µs burst window has fully refilled.
        let mut admitted = 0;
        loop {
            let (d, t) = check(q, tat, now + 1);
            if !d.allowed {
                break;
            }
            admitted += 1;
            tat = t;
        }
        assert_eq!(admitted, 3);
    }

    #[test]
    fn reset_counts_until_full() {
        let (d, tat) = check(Q, 0, 10_000);
        assert_eq!(d.reset_s, 1);
        let (d, _) = check(Q, tat, 10_000);
        assert_eq!(d.reset_s, 2);
    }

    #[test]
    fn state_round_trips_and_garbage_reads_as_fresh() {
        assert_eq!(decode_tat(Some(&encode_tat(42))), 42);
        assert_eq!(decode_tat(Some(b"bad")), 0);
        assert_eq!(decode_tat(None), 0);
    }
}
