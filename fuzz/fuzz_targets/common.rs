//! An edge app over the memory store, with a backend that answers whatever the input says.

use std::cell::{Cell, RefCell};

use edge_core::{
    Clock, EdgeApp, EdgeConfig, HttpRequest, HttpResponse, MemoryStore, Outbound, OutboundError,
    OutboundRequest, OutboundResponse, Randomness, Services,
};

/// The real time: the tokens below are minted for it.
pub struct Now;
impl Clock for Now {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

pub struct Counter(pub Cell<u64>);
impl Randomness for Counter {
    fn fill(&self, buf: &mut [u8]) {
        for b in buf {
            self.0.set(
                self.0
                    .get()
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1),
            );
            *b = (self.0.get() >> 33) as u8;
        }
    }
}

/// Answers every request with `chunks` as a 200 event stream.
pub struct Backend(pub RefCell<Vec<Vec<u8>>>);

impl Outbound for Backend {
    type Body = futures_util::stream::Iter<std::vec::IntoIter<Result<Vec<u8>, OutboundError>>>;

    async fn send(
        &self,
        _request: OutboundRequest,
    ) -> Result<OutboundResponse<Self::Body>, OutboundError> {
        let chunks: Vec<_> = self.0.borrow_mut().drain(..).map(Ok).collect();
        Ok(OutboundResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: futures_util::stream::iter(chunks),
        })
    }

    // Deadlines never fire: the stream is all there.
    async fn sleep(&self, _ms: u64) {
        std::future::pending::<()>().await
    }
}

pub const SECRET: &str = "fuzz-secret-0123456789abcdef0123456789";

pub fn app(extra: &[(&str, &str)]) -> EdgeApp {
    let mut vars: Vec<(&str, &str)> = vec![
        ("JWT_HS256_SECRET", SECRET),
        ("JWT_ISSUER", "eindr"),
        ("JWT_AUDIENCE", "eindr-chat"),
        ("RATE_LIMIT_BURST", "1000000"),
        ("RATE_LIMIT_PER_MINUTE", "1000000"),
    ];
    vars.extend_from_slice(extra);
    let config = EdgeConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    });
    match config.and_then(EdgeApp::new) {
        Ok(app) => app,
        Err(e) => panic!("fuzz setup: {e}"),
    }
}

/// A token for `user`, signed with [`SECRET`], valid for an hour.
pub fn token(user: &str) -> String {
    use jwt_simple::prelude::*;
    let claims = Claims::create(Duration::from_hours(1))
        .with_issuer("eindr")
        .with_audience("eindr-chat")
        .with_subject(user);
    match HS256Key::from_bytes(SECRET.as_bytes()).authenticate(claims) {
        Ok(token) => token,
        Err(e) => panic!("fuzz setup: {e}"),
    }
}

pub fn serve(app: &EdgeApp, backend: &Backend, req: &HttpRequest) -> HttpResponse {
    let store = MemoryStore::default();
    let services = Services {
        store: &store,
        clock: &Now,
        random: &Counter(Cell::new(7)),
        outbound: backend,
        cache: &edge_core::NoCache,
        facts: &edge_core::facts::LogOnly,
    };
    pollster::block_on(app.handle(req, &services))
}

/// An app configured with `extra`, and a valid token for `fuzz-user`.
pub struct SignedIn {
    pub app: EdgeApp,
    pub token: String,
}

pub fn signed_in(extra: &[(&str, &str)]) -> SignedIn {
    SignedIn {
        app: app(extra),
        token: token("fuzz-user"),
    }
}
