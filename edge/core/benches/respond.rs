//! CPU time of the core per `POST /api/chat/respond`: minimal mode, 20 turns of history,
//! HS256 and EdDSA tokens, in-memory store. Targets: < 20 µs (HS256), < 100 µs (EdDSA).
//! Also the token verification alone, to show where the time goes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use edge_core::auth::EdgeClaims;
use edge_core::{Clock, EdgeApp, EdgeConfig, HttpRequest, MemoryStore, Randomness, Services};
use jwt_simple::prelude::*;

const SECRET: &str = "bench-secret-0123456789abcdef-0123456789";

struct SystemClock;
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }
}

/// splitmix64; the platforms' crypto RNGs cost about the same for 20 bytes a request.
struct FastRandom(Cell<u64>);
impl Randomness for FastRandom {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut z = self.0.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            self.0.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes()[..chunk.len()]);
        }
    }
}

fn app(extra: &[(&str, String)]) -> EdgeApp {
    let mut vars: Vec<(&str, String)> = vec![
        ("JWT_ISSUER", "bench".into()),
        ("JWT_AUDIENCE", "eindr-chat".into()),
        // Never refuse during the run: a million a minute, a billion burst.
        ("RATE_LIMIT_PER_MINUTE", "1000000".into()),
        ("RATE_LIMIT_BURST", "1000000".into()),
        // 20 turns read on every request; 22 after the append, trimmed back to 20.
        ("HISTORY_MAX_TURNS", "20".into()),
    ];
    vars.extend(extra.iter().cloned());
    let config =
        EdgeConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap();
    EdgeApp::new(config).unwrap()
}

fn claims() -> JWTClaims<EdgeClaims> {
    Claims::with_custom_claims(EdgeClaims::default(), Duration::from_hours(2))
        .with_issuer("bench")
        .with_audience("eindr-chat")
        .with_subject("bench-user")
}

fn request(token: &str) -> HttpRequest {
    HttpRequest::new("POST", "/api/chat/respond")
        .with_header("authorization", &format!("Bearer {token}"))
        .with_header("content-type", "application/json")
        .with_body(
            r#"{"message":"remind me about the meeting","context":{"intent":"create_reminder","confidence":0.94,"processing_result":{"success":true,"data":{"title":"meeting","time":"14:00","date":"2026-11-25"}}}}"#,
        )
}

fn bench_case(c: &mut Criterion, name: &str, app: &EdgeApp, token: &str) {
    let store = MemoryStore::new();
    let random = FastRandom(Cell::new(7));
    let svc = Services {
        store: &store,
        clock: &SystemClock,
        random: &random,
        outbound: &edge_core::Offline,
        cache: &edge_core::NoCache,
        facts: &edge_core::facts::LogOnly,
    };
    let req = request(token);
    for _ in 0..10 {
        let resp = pollster::block_on(app.handle(&req, &svc));
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    }
    c.bench_function(name, |b| {
        b.iter(|| black_box(pollster::block_on(app.handle(black_box(&req), &svc))))
    });
}

fn respond(c: &mut Criterion) {
    // "cold": every request verifies its token in full (JWT_CACHE_SIZE=0).
    // "warm": the same token again, as a client sends it, from the verified-token cache.
    let hs_token = HS256Key::from_bytes(SECRET.as_bytes())
        .authenticate(claims())
        .unwrap();
    let ed = Ed25519KeyPair::generate();
    let ed_token = ed.sign(claims()).unwrap();
    for (cache, label) in [("0", "cold"), ("1024", "warm")] {
        let hs_app = app(&[
            ("JWT_HS256_SECRET", SECRET.into()),
            ("JWT_CACHE_SIZE", cache.into()),
        ]);
        bench_case(
            c,
            &format!("respond/minimal/hs256-{label}/20-turns"),
            &hs_app,
            &hs_token,
        );
        let ed_app = app(&[
            ("JWT_PUBLIC_KEYS", ed.public_key().to_pem()),
            ("JWT_CACHE_SIZE", cache.into()),
        ]);
        bench_case(
            c,
            &format!("respond/minimal/eddsa-{label}/20-turns"),
            &ed_app,
            &ed_token,
        );
    }

    let sealed = app(&[
        ("JWT_HS256_SECRET", SECRET.into()),
        (
            "HISTORY_ENCRYPTION_KEY",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".into(),
        ),
    ]);
    bench_case(
        c,
        "respond/minimal/hs256-warm-sealed/20-turns",
        &sealed,
        &hs_token,
    );

    let key = HS256Key::from_bytes(SECRET.as_bytes());
    c.bench_function("verify/hs256", |b| {
        b.iter(|| {
            key.verify_token::<EdgeClaims>(black_box(&hs_token), None)
                .unwrap()
        })
    });
    let ed_public = ed.public_key();
    c.bench_function("verify/eddsa", |b| {
        b.iter(|| {
            ed_public
                .verify_token::<EdgeClaims>(black_box(&ed_token), None)
                .unwrap()
        })
    });
}

/// The understanding of one message of each kind (a chat turn's cost of it: the transcript
/// read as typed, then the intent model).
fn understand(c: &mut Criterion) {
    use edge_core::understanding::{self, AssistantName};
    understanding::model().unwrap();
    let assistant = AssistantName::default();
    for (name, message) in [
        ("short", "tell me a joke"),
        (
            "long",
            "can you please remind me to call my mother about the dinner reservation tomorrow at seven in the evening",
        ),
        (
            "spoken",
            "hey eindr um can you can you remind me to call my mother about the uh dinner tomorrow at seven",
        ),
    ] {
        c.bench_function(&format!("understand/{name}"), |b| {
            b.iter(|| understanding::understand(black_box(message), &assistant))
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = respond, understand
}
criterion_main!(benches);
