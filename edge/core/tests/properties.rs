//! Invariants of the core's parsers and bookkeeping on generated input (proptest, 256 cases
//! each): the PII filter over any split of a text, the rate limit over any arrival times,
//! history bounds and sealing after any appends, and the backend's SSE stream over any split
//! of its bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::borrow::Cow;

use common::*;
use edge_core::history::{Conversation, HistoryCodec, HistoryPolicy, Role, Turn};
use edge_core::pii::{PiiStream, mask};
use edge_core::rate_limit::{Quota, check};
use edge_core::seal::Sealer;
use proptest::prelude::*;
use serde_json::json;

/// A card number that passes the Luhn check, from 15 random digits.
fn card_number() -> impl Strategy<Value = String> {
    proptest::collection::vec(0u32..10, 15).prop_map(|digits| {
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                // The check digit goes last, so the payload's last digit is doubled.
                if i % 2 == 0 {
                    let doubled = d * 2;
                    if doubled > 9 { doubled - 9 } else { doubled }
                } else {
                    d
                }
            })
            .sum();
        let check = (10 - sum % 10) % 10;
        let all: String = digits
            .iter()
            .chain(std::iter::once(&check))
            .map(|d| char::from_digit(*d, 10).unwrap())
            .collect();
        format!(
            "{} {} {} {}",
            &all[..4],
            &all[4..8],
            &all[8..12],
            &all[12..]
        )
    })
}

/// Prose with the shapes the filter looks for mixed in: words, addresses, phone and card
/// numbers, digits and separators, any Unicode, joined by any spacing.
fn prose() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "[A-Za-z]{1,8}",
        "[a-z.]{1,8}@[a-z]{1,8}\\.(com|org|io)",
        "\\+?[0-9]{1,3}[ -]?\\(?[0-9]{3}\\)?[ .-]?[0-9]{3}[ .-]?[0-9]{4}",
        card_number(),
        "[0-9 ./()+-]{1,12}",
        "\\PC{1,6}",
        "[,.!?:;\"'()<>]",
    ];
    let gap = prop_oneof!["", " ", "  ", "\n", "\t", ", "];
    proptest::collection::vec((part, gap), 0..12).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(part, gap)| format!("{part}{gap}"))
            .collect()
    })
}

/// `text` cut at `cuts` (byte offsets, moved back to character boundaries).
fn split(text: &str, cuts: &[usize]) -> Vec<String> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| {
            let mut at = c % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        })
        .collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for at in points.into_iter().chain(std::iter::once(text.len())) {
        pieces.push(text[from..at].to_owned());
        from = at;
    }
    pieces
}

/// `bytes` cut at `cuts`, anywhere (inside a UTF-8 sequence too).
fn split_bytes(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for at in points.into_iter().chain(std::iter::once(bytes.len())) {
        pieces.push(bytes[from..at].to_vec());
        from = at;
    }
    pieces
}

const PER_MINUTE: [u32; 4] = [1, 7, 60, 600];

proptest! {
    #[test]
    fn pii_masking_does_not_depend_on_how_the_text_is_split(
        text in prose(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut stream = PiiStream::default();
        let mut streamed = String::new();
        for piece in split(&text, &cuts) {
            streamed.push_str(&stream.push(&piece));
        }
        streamed.push_str(&stream.finish());
        prop_assert_eq!(streamed, mask(&text));
    }

    /// GCRA is a token bucket of `burst` refilled one per interval `T`: a request is admitted
    /// exactly when, for every earlier admitted request `i`, the admitted requests in
    /// `[t_i, now]` (this one included) stay within `burst + (now - t_i) / T`, and when the
    /// burst itself allows one.
    #[test]
    fn the_rate_limit_admits_exactly_what_the_bound_allows(
        rate in proptest::sample::select(&PER_MINUTE[..]),
        burst in 1u32..6,
        gaps_ms in proptest::collection::vec(0u64..3_000, 1..40),
    ) {
        let quota = Quota { per_minute: rate, burst };
        let interval_us = 60_000_000 / u64::from(rate);
        let mut now_ms = 1_000_000u64;
        let (mut tat, mut admitted): (u64, Vec<u64>) = (0, Vec::new());
        for gap in gaps_ms {
            now_ms += gap;
            let now_us = now_ms * 1_000;
            let allowed_by_bound = admitted.iter().enumerate().all(|(i, &at_us)| {
                let in_window = (admitted.len() - i) as u64 + 1;
                in_window * interval_us <= u64::from(burst) * interval_us + (now_us - at_us)
            });
            let (decision, new_tat) = check(quota, tat, now_ms);
            prop_assert_eq!(decision.allowed, allowed_by_bound, "at {} ms", now_ms);
            if decision.allowed {
                admitted.push(now_us);
                tat = new_tat;
            } else {
                prop_assert_eq!(new_tat, tat, "a refusal changed the state");
                prop_assert!(decision.retry_after_s >= 1);
            }
        }
    }

    #[test]
    fn history_stays_within_its_bounds_and_keeps_the_newest_turns(
        max_turns in 1usize..8,
        retention_ms in 1u64..10_000,
        appends in proptest::collection::vec((0u64..4_000, "\\PC{0,12}"), 1..30),
    ) {
        let policy = HistoryPolicy { max_turns, retention_ms };
        let mut conversation = Conversation::default();
        let mut all = Vec::new();
        let mut now_ms = 50_000u64;
        for (gap, content) in appends {
            now_ms += gap;
            all.push((now_ms, content.clone()));
            conversation.turns.push(Turn {
                role: Role::User,
                content: Cow::Owned(content),
                ts_ms: now_ms,
                intent: None,
                engine: None,
            });
            policy.enforce(&mut conversation, now_ms);
            let kept = &conversation.turns;
            prop_assert!(kept.len() <= max_turns);
            prop_assert!(kept.iter().all(|t| t.ts_ms + retention_ms >= now_ms));
            // What is kept is the newest of what may be kept, oldest first.
            let expected: Vec<&(u64, String)> = all
                .iter()
                .filter(|(ts, _)| ts + retention_ms >= now_ms)
                .collect();
            let expected = &expected[expected.len().saturating_sub(max_turns)..];
            prop_assert_eq!(kept.len(), expected.len());
            for (turn, (ts, content)) in kept.iter().zip(expected) {
                prop_assert_eq!(turn.ts_ms, *ts);
                prop_assert_eq!(turn.content.as_ref(), content.as_str());
            }
        }
    }

    #[test]
    fn a_sealed_record_opens_under_its_own_key_only(
        contents in proptest::collection::vec("\\PC{0,40}", 0..6),
        owner in "[a-z0-9-]{1,12}",
        other in "[a-z0-9-]{1,12}",
        nonce in any::<[u8; 12]>(),
    ) {
        let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let codec = HistoryCodec::new(Some(Sealer::from_config(key).unwrap()));
        let plain = HistoryCodec::new(None);
        let conversation = Conversation {
            turns: contents
                .iter()
                .enumerate()
                .map(|(i, c)| Turn {
                    role: if i % 2 == 0 { Role::User } else { Role::Assistant },
                    content: Cow::Owned(c.clone()),
                    ts_ms: 1_000 + i as u64,
                    intent: (i % 2 == 0).then(|| Cow::Owned("greeting".to_owned())),
                    engine: (i % 2 == 1).then(|| Cow::Owned("minimal".to_owned())),
                })
                .collect(),
        };
        let aad = format!("history:{owner}");
        let sealed = codec.encode(&conversation, aad.as_bytes(), nonce).unwrap();
        prop_assert_eq!(codec.decode(Some(&sealed), aad.as_bytes()).unwrap(), conversation.clone());
        // Moved to another user's key, it never opens; without the key, neither.
        if other != owner {
            let moved = format!("history:{other}");
            prop_assert!(codec.decode(Some(&sealed), moved.as_bytes()).is_err());
        }
        prop_assert!(plain.decode(Some(&sealed), aad.as_bytes()).is_err());
        let unsealed = plain.encode(&conversation, aad.as_bytes(), nonce).unwrap();
        prop_assert_eq!(plain.decode(Some(&unsealed), b"any").unwrap(), conversation);
    }
}

proptest! {
    // Each case runs two whole turns through the app.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_backend_stream_reads_the_same_however_its_bytes_are_split(
        // Each piece starts with a letter: an answer of nothing but emoji or symbols is cleaned
        // to nothing for speech and the edge falls back (full_mode.rs tests that on its own).
        pieces in proptest::collection::vec("[a-zA-Z]\\PC{0,7}", 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let Script::Respond { steps, .. } = Script::tokens(&pieces) else { unreachable!() };
        let bytes: Vec<u8> = steps
            .into_iter()
            .flat_map(|s| match s {
                Step::Bytes(b) => b,
                _ => Vec::new(),
            })
            .collect();
        let answers: Vec<serde_json::Value> = [vec![bytes.clone()], split_bytes(&bytes, &cuts)]
            .into_iter()
            .map(|chunks| {
                let h = Harness::new(&[
                    ("MINIMAL_MODE", "false"),
                    ("BACKEND_URL", "http://gpu.test:8000/"),
                    ("BACKEND_API_KEY", "backend-key"),
                ]);
                h.backend.scripts.borrow_mut().push_back(Script::Respond {
                    status: 200,
                    headers: Vec::new(),
                    steps: chunks.into_iter().map(Step::Bytes).collect(),
                });
                json(&h.respond("alice", json!({"message": "hi"})))
            })
            .collect();
        prop_assert_eq!(&answers[0]["fallback_used"], &json!(false), "{}", answers[0]);
        prop_assert_eq!(&answers[1]["fallback_used"], &json!(false), "{}", answers[1]);
        prop_assert_eq!(&answers[0]["response"], &answers[1]["response"]);
    }
}
