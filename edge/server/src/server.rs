//! The server: one acceptor hands connections round-robin to `threads` worker threads, each
//! running a current-thread runtime whose LocalSet serves them (the core's futures are not
//! Send). Threads accepting from one socket themselves would not share the work: a burst of
//! connections all lands on whichever thread wakes first. SIGTERM or Ctrl-C stops accepting,
//! lets every running request and streamed turn finish within the grace period, and returns.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use edge_core::EdgeApp;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, mpsc, watch};

use crate::http::{Limits, Worker, handle};
use crate::metrics::Metrics;
use crate::outbound::NativeOutbound;
use crate::store::{CountedStore, SharedMemory, StoreSpec};

/// What every worker thread shares.
pub struct Shared {
    pub app: Arc<EdgeApp>,
    pub metrics: Arc<Metrics>,
    pub store: StoreSpec,
    pub memory: SharedMemory,
    pub limits: Limits,
    /// How long running requests get to finish after SIGTERM.
    pub grace: Duration,
}

type Handoff = mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>;

/// Serves on `listener` until SIGTERM/SIGINT, then drains. Errors only at start.
pub fn serve(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    threads: usize,
) -> Result<(), String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let (stop, stopping) = watch::channel(false);
    let mut workers = Vec::new();
    let mut handoffs: Vec<Handoff> = Vec::new();
    for index in 0..threads.max(1) {
        let (handoff, connections) = mpsc::unbounded_channel();
        let (shared, stopping) = (shared.clone(), stopping.clone());
        let worker = std::thread::Builder::new()
            .name(format!("edge-worker-{index}"))
            .spawn(move || worker_thread(shared, connections, stopping))
            .map_err(|e| e.to_string())?;
        workers.push(worker);
        handoffs.push(handoff);
    }
    let acceptor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    acceptor.block_on(accept_until_stopped(listener, &handoffs))?;
    tracing::info!(
        grace_s = shared.grace.as_secs(),
        "stopping: no new connections; running requests finish"
    );
    let _ = stop.send(true);
    drop(handoffs);
    let mut result = Ok(());
    for worker in workers {
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => result = Err(message),
            Err(_) => result = Err("a worker thread panicked".into()),
        }
    }
    tracing::info!("stopped");
    result
}

/// Accepts until a stop signal, handing each connection to the next worker in turn. The
/// listening socket closes when this returns.
async fn accept_until_stopped(
    listener: std::net::TcpListener,
    handoffs: &[Handoff],
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut next = 0usize;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let Ok(stream) = stream.into_std() else { continue };
                    if handoffs[next % handoffs.len()].send((stream, peer)).is_err() {
                        return Err("a worker thread stopped".into());
                    }
                    next = next.wrapping_add(1);
                }
                // Out of file descriptors and alike: pause rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut signal => return Ok(()),
        }
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "SIGTERM handler not installed");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn worker_thread(
    shared: Arc<Shared>,
    connections: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    stopping: watch::Receiver<bool>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve_connections(shared, connections, stopping))
}

/// Connections still open on this thread, and a wake-up when the last one closes.
#[derive(Default)]
struct OpenConnections {
    count: Cell<usize>,
    closed: Notify,
}

async fn serve_connections(
    shared: Arc<Shared>,
    mut connections: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    mut stopping: watch::Receiver<bool>,
) -> Result<(), String> {
    let store = CountedStore::open(&shared.store, &shared.memory, shared.metrics.clone())?;
    let worker = Rc::new(Worker {
        app: shared.app.clone(),
        metrics: shared.metrics.clone(),
        store,
        outbound: NativeOutbound::new()?,
        limits: shared.limits.clone(),
    });
    let open = Rc::new(OpenConnections::default());
    loop {
        tokio::select! {
            handed = connections.recv() => {
                let Some((stream, peer)) = handed else { break };
                let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { continue };
                open.count.set(open.count.get() + 1);
                let (worker, open, stopping) = (worker.clone(), open.clone(), stopping.clone());
                tokio::task::spawn_local(async move {
                    connection(worker, stream, peer, stopping).await;
                    open.count.set(open.count.get() - 1);
                    open.closed.notify_waiters();
                });
            }
            _ = stopping.changed() => break,
        }
    }
    let drained = async {
        while open.count.get() > 0 {
            let closed = open.closed.notified();
            if open.count.get() == 0 {
                break;
            }
            closed.await;
        }
    };
    if tokio::time::timeout(shared.grace, drained).await.is_err() {
        tracing::warn!(
            open = open.count.get(),
            "grace period over; closing the remaining connections"
        );
    }
    Ok(())
}

/// One HTTP/1.1 connection. On shutdown it finishes the request in flight (a streamed turn
/// to its end) and closes instead of waiting for another.
async fn connection(
    worker: Rc<Worker>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stopping: watch::Receiver<bool>,
) {
    let limits = worker.limits.clone();
    let service = service_fn(move |request| handle(worker.clone(), request, peer));
    let serving = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(serving);
    let result = tokio::select! {
        result = serving.as_mut() => result,
        _ = stopping.wait_for(|stop| *stop) => {
            serving.as_mut().graceful_shutdown();
            serving.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "connection ended with an error");
    }
}
