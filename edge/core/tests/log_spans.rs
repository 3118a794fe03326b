//! Requests that interleave on one thread (a native server's worker, a Durable Object) each
//! log within their own span only. A span entered with a guard held across an await used to
//! leak into every request polled meanwhile, and the log lines' span lists grew without end.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use common::*;
use edge_core::platform::{ConversationStore, StoreError, StoreKey, StoreWrite};
use edge_core::{HttpRequest, MemoryStore, Services};
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};

/// Pending once, then ready: a store call that gives the executor a turn, as I/O does.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

struct YieldingStore(MemoryStore);

impl ConversationStore for YieldingStore {
    async fn get(&self, key: StoreKey<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        YieldOnce(false).await;
        self.0.get(key).await
    }

    async fn update(
        &self,
        key: StoreKey<'_>,
        apply: &mut dyn FnMut(Option<&[u8]>) -> StoreWrite,
    ) -> Result<(), StoreError> {
        YieldOnce(false).await;
        self.0.update(key, apply).await
    }
}

/// The deepest span stack any event was logged in.
#[derive(Clone, Default)]
struct DeepestScope(Arc<AtomicUsize>);

impl<S> Layer<S> for DeepestScope
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let depth = ctx.event_scope(event).map_or(0, Iterator::count);
        self.0.fetch_max(depth, Ordering::Relaxed);
    }
}

#[test]
fn interleaved_requests_log_in_their_own_span() {
    let deepest = DeepestScope::default();
    let subscriber = tracing_subscriber::registry().with(deepest.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let h = Harness::new(&[]);
    let store = YieldingStore(MemoryStore::new());
    let random = TestRandom(Cell::new(7));
    let svc = Services {
        store: &store,
        clock: &*h.clock,
        random: &random,
        outbound: &h.backend,
        cache: &edge_core::NoCache,
        facts: &edge_core::facts::LogOnly,
    };
    let requests: Vec<HttpRequest> = (0..8)
        .map(|i| {
            HttpRequest::new("POST", "/api/chat/respond")
                .with_header(
                    "authorization",
                    &format!("Bearer {}", h.token(&format!("u{i}"))),
                )
                .with_header("content-type", "application/json")
                .with_body(r#"{"message":"hello there"}"#)
        })
        .collect();
    let all = futures_util::future::join_all(requests.iter().map(|r| h.app.handle(r, &svc)));
    let responses = pollster::block_on(all);
    assert!(responses.iter().all(|r| r.status == 200));
    // Each event sits in its request's span, nothing else.
    assert_eq!(deepest.0.load(Ordering::Relaxed), 1);
}
