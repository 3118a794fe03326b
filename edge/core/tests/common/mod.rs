//! Shared test fixtures: a controllable clock, seeded randomness, token minting.
// Fixtures may unwrap: a failure here is a failed test, not a crashed request.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;

use edge_core::auth::EdgeClaims;
use edge_core::auth::Scope;
use edge_core::{
    Clock, EdgeApp, EdgeConfig, HttpRequest, HttpResponse, MemoryStore, Outbound, OutboundError,
    OutboundRequest, OutboundResponse, Randomness, Services,
};
use futures_util::stream::{self, Stream, StreamExt};
use jwt_simple::prelude::*;

pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
pub const ISSUER: &str = "https://auth.eindr.test";
pub const AUDIENCE: &str = "eindr-chat";
/// 2026-11-24T00:00:00Z
pub const T0_MS: u64 = 1_795_478_400_000;

pub struct TestClock(pub Cell<u64>);

impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// splitmix64: deterministic, good enough to pick phrasings and nonces in tests.
pub struct TestRandom(pub Cell<u64>);

impl Randomness for TestRandom {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut z = self.0.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            self.0.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

pub fn config_with(extra: &[(&str, &str)]) -> EdgeConfig {
    let mut vars: HashMap<String, String> = [
        ("JWT_HS256_SECRET", SECRET),
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    EdgeConfig::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

/// One step of a scripted backend answer.
#[derive(Debug, Clone)]
pub enum Step {
    Bytes(Vec<u8>),
    /// Nothing more ever arrives (the edge's timer has to end it).
    Hang,
    /// The connection breaks.
    Break,
}

/// How the scripted backend answers one request.
#[derive(Debug, Clone)]
pub enum Script {
    Unreachable,
    /// The response head never comes.
    Hang,
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        steps: Vec<Step>,
    },
}

impl Script {
    /// A well-formed OpenAI stream of `pieces` ending in `[DONE]`.
    pub fn tokens(pieces: &[&str]) -> Self {
        let mut steps = vec![Step::Bytes(
            br#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#
                .to_vec(),
        )];
        steps.push(Step::Bytes(b"\n\n".to_vec()));
        for piece in pieces {
            steps.push(Step::Bytes(sse_piece(piece).into_bytes()));
        }
        steps.push(Step::Bytes(b"data: [DONE]\n\n".to_vec()));
        Self::Respond {
            status: 200,
            headers: Vec::new(),
            steps,
        }
    }
}

impl Script {
    /// As [`Script::tokens`], with gpu-backend's closing usage chunk (no choices) before
    /// `[DONE]`.
    pub fn tokens_with_usage(pieces: &[&str], prompt: u32, completion: u32) -> Self {
        let Self::Respond {
            status,
            headers,
            mut steps,
        } = Self::tokens(pieces)
        else {
            unreachable!()
        };
        let usage = serde_json::json!({"choices": [], "usage": {
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        }});
        steps.insert(
            steps.len() - 1,
            Step::Bytes(format!("data: {usage}\n\n").into_bytes()),
        );
        Self::Respond {
            status,
            headers,
            steps,
        }
    }
}

/// `POST /v1/chat/completions` as `alice`.
pub fn openai(h: &Harness, body: serde_json::Value) -> HttpResponse {
    h.send(
        HttpRequest::new("POST", "/v1/chat/completions")
            .with_header("authorization", &format!("Bearer {}", h.token("alice")))
            .with_header("content-type", "application/json")
            .with_body(body.to_string()),
    )
}

/// Queues the scripted backend's next answer.
pub fn play(h: &Harness, script: Script) {
    h.backend.scripts.borrow_mut().push_back(script);
}

/// The `data:` payloads of a server-sent event stream.
pub fn events(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

pub fn sse_piece(text: &str) -> String {
    let chunk = serde_json::json!({"choices":[{"index":0,"delta":{"content":text}}]});
    format!("data: {chunk}\n\n")
}

/// An `Outbound` that plays scripts in order and records requests. Its timer advances the
/// harness clock and fires at once, so a `Hang` costs no real time.
#[derive(Default)]
pub struct ScriptedBackend {
    pub scripts: RefCell<VecDeque<Script>>,
    pub requests: RefCell<Vec<OutboundRequest>>,
    pub clock: Option<std::rc::Rc<TestClock>>,
}

pub type ScriptBody = Pin<Box<dyn Stream<Item = Result<Vec<u8>, OutboundError>>>>;

impl Outbound for ScriptedBackend {
    type Body = ScriptBody;

    async fn send(
        &self,
        request: OutboundRequest,
    ) -> Result<OutboundResponse<Self::Body>, OutboundError> {
        self.requests.borrow_mut().push(request);
        let script = self
            .scripts
            .borrow_mut()
            .pop_front()
            .unwrap_or(Script::Unreachable);
        match script {
            Script::Unreachable => Err(OutboundError::Unreachable("connection refused".into())),
            Script::Hang => std::future::pending().await,
            Script::Respond {
                status,
                headers,
                steps,
            } => {
                let body = stream::iter(steps).then(|step| async move {
                    match step {
                        Step::Bytes(b) => Some(Ok(b)),
                        Step::Hang => std::future::pending().await,
                        Step::Break => Some(Err(OutboundError::Body("connection reset".into()))),
                    }
                });
                let body = body
                    .take_while(|item| std::future::ready(item.is_some()))
                    .filter_map(std::future::ready);
                Ok(OutboundResponse {
                    status,
                    headers,
                    body: Box::pin(body),
                })
            }
        }
    }

    async fn sleep(&self, ms: u64) {
        if let Some(clock) = &self.clock {
            clock.0.set(clock.0.get() + ms);
        }
    }
}

pub struct Harness {
    pub app: EdgeApp,
    pub store: MemoryStore,
    pub clock: std::rc::Rc<TestClock>,
    pub random: TestRandom,
    pub backend: ScriptedBackend,
    /// Cached model answers; pools carry their own expiry, judged by the harness clock.
    pub cache: edge_core::MemoryCache,
    /// Every fact the core emitted, in order.
    pub facts: RecordedFacts,
}

/// The facts of every turn and request, as a platform's sink receives them.
#[derive(Default)]
pub struct RecordedFacts {
    pub turns: RefCell<Vec<edge_core::facts::TurnFacts>>,
    pub requests: RefCell<Vec<edge_core::facts::RequestFacts>>,
}

impl edge_core::facts::FactsSink for RecordedFacts {
    fn turn(&self, facts: &edge_core::facts::TurnFacts) {
        self.turns.borrow_mut().push(facts.clone());
    }

    fn request(&self, facts: &edge_core::facts::RequestFacts) {
        self.requests.borrow_mut().push(facts.clone());
    }
}

impl Harness {
    pub fn new(extra: &[(&str, &str)]) -> Self {
        let clock = std::rc::Rc::new(TestClock(Cell::new(T0_MS)));
        Self {
            app: EdgeApp::new(config_with(extra)).unwrap(),
            store: MemoryStore::new(),
            backend: ScriptedBackend {
                clock: Some(clock.clone()),
                ..ScriptedBackend::default()
            },
            clock,
            random: TestRandom(Cell::new(42)),
            cache: edge_core::MemoryCache::new(1000, || 0),
            facts: RecordedFacts::default(),
        }
    }

    pub fn advance_ms(&self, ms: u64) {
        self.clock.0.set(self.clock.0.get() + ms);
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.0.get()
    }

    pub fn send(&self, req: HttpRequest) -> HttpResponse {
        let svc = Services {
            store: &self.store,
            clock: &*self.clock,
            random: &self.random,
            outbound: &self.backend,
            cache: &self.cache,
            facts: &self.facts,
        };
        pollster::block_on(self.app.handle(&req, &svc))
    }

    /// A token for `user` valid for an hour from the harness clock.
    pub fn token(&self, user: &str) -> String {
        mint(user, None, self.now_ms())
    }

    pub fn admin_token(&self, user: &str) -> String {
        mint(user, Some("chat:read chat:admin"), self.now_ms())
    }

    pub fn respond(&self, user: &str, body: serde_json::Value) -> HttpResponse {
        self.send(
            HttpRequest::new("POST", "/api/chat/respond")
                .with_header("authorization", &format!("Bearer {}", self.token(user)))
                .with_header("content-type", "application/json")
                .with_body(body.to_string()),
        )
    }

    pub fn get(&self, path: &str, token: &str) -> HttpResponse {
        self.send(
            HttpRequest::new("GET", path).with_header("authorization", &format!("Bearer {token}")),
        )
    }
}

pub fn claims_at(user: &str, scope: Option<&str>, now_ms: u64) -> JWTClaims<EdgeClaims> {
    let now = Duration::from_millis(now_ms);
    JWTClaims {
        issued_at: Some(now),
        expires_at: Some(now + Duration::from_hours(1)),
        invalid_before: Some(now),
        issuer: Some(ISSUER.to_owned()),
        subject: Some(user.to_owned()),
        audiences: Some(Audiences::AsString(AUDIENCE.to_owned())),
        jwt_id: None,
        nonce: None,
        custom: EdgeClaims {
            scope: scope.map(|s| Scope::Text(s.to_owned())),
        },
    }
}

pub fn mint(user: &str, scope: Option<&str>, now_ms: u64) -> String {
    HS256Key::from_bytes(SECRET.as_bytes())
        .authenticate(claims_at(user, scope, now_ms))
        .unwrap()
}

pub fn json(resp: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&resp.body).unwrap()
}

pub fn error_code(resp: &HttpResponse) -> String {
    json(resp)["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// CLINC150 as shared (Larson et al., 2019, CC BY 3.0): `EINDR_TEST_DATA`, else
/// `../shared/data` beside the checkout.
pub fn clinc_path() -> std::path::PathBuf {
    std::env::var_os("EINDR_TEST_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
        })
        .join("clinc150/train_val.json")
}

/// CLINC150's `[utterance, intent]` pairs of `splits`.
pub fn clinc(splits: &[&str]) -> Vec<(String, String)> {
    clinc_file(&clinc_path(), splits)
}

/// CLINC150 in spoken form, as `models/spoken_clinc.py` makes it (run here with the
/// system's `python3`; it needs nothing else).
pub fn spoken_clinc(splits: &[&str]) -> Vec<(String, String)> {
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("spoken-clinc-{}.json", std::process::id()));
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/spoken_clinc.py");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .arg(clinc_path())
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", script.display()));
    assert!(status.success(), "{} failed: {status}", script.display());
    clinc_file(&out, splits)
}

fn clinc_file(path: &std::path::Path, splits: &[&str]) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (set EINDR_TEST_DATA)", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    splits
        .iter()
        .flat_map(|split| doc[split].as_array().unwrap().clone())
        .map(|item| {
            (
                item[0].as_str().unwrap().to_owned(),
                item[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
