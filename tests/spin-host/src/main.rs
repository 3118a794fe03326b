//! `spin-test-host`: serves the edge's shipped Spin component (the unchanged `.wasm`) on
//! 127.0.0.1 for the end-to-end tests and local runs.
//!
//! This is an emulation of Spin's host interfaces on wasmtime, not Spin: the Spin CLI cannot
//! be installed here and `wasmtime serve` lacks Spin's interfaces. It reads `spin.toml` for
//! the component's source, key-value stores and variables, implements the interfaces the
//! component imports (see `host`), keeps key-value data in a SQLite file across restarts,
//! connects the component's outbound Redis to a real Redis (see `outbound_redis`), and
//! sets Spin's request headers (`spin-client-addr`, `spin-full-url`, `spin-path-info`).

mod host;
mod kv;
mod outbound_redis;
mod variables;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::host::{HostState, Shared};

#[derive(Parser)]
#[command(about = "Test host emulating Spin's host interfaces for the eindr-chat edge component")]
struct Args {
    /// The application manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// The component id in the manifest.
    #[arg(long, default_value = "edge")]
    component: String,
    /// Listen address (loopback only).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The key-value data file (created if missing).
    #[arg(long, default_value = ".spin/sqlite_key_value.db")]
    kv_file: PathBuf,
    /// Application variable values, `name=value` (like `spin up --variable`).
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    variables: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        bail!(
            "the test host listens on loopback only, not {}",
            args.listen
        );
    }
    let overrides: HashMap<String, String> = args
        .variables
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--variable {pair:?} is not NAME=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let config = variables::load(&args.manifest, &args.component, &overrides)?;
    let base = args
        .manifest
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let source = base.join(&config.source);
    if let Some(dir) = args.kv_file.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let shared = Arc::new(Shared {
        kv: kv::KvData::open(&args.kv_file)?,
        stores: config.key_value_stores,
        allowed_outbound_hosts: config.allowed_outbound_hosts,
        variables: config.variables,
    });

    let engine = engine()?;
    let component = Component::from_file(&engine, &source).map_err(|e| {
        anyhow::Error::from(e).context(format!("load component {}", source.display()))
    })?;
    let mut linker = Linker::<HostState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    host::add_to_linker(&mut linker)?;
    let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args.listen, pre, shared))
}

/// Wasmtime as `spin up` configures it: Spin's pooling instance allocator with Spin's sizes
/// (spin-core's `Config::default`): a memory slot reused, its first 2 MiB kept resident,
/// rather than a new mapping per request (on `bench-edge spin` here the two measured alike).
/// With `SPIN_WASMTIME_POOLING=0` (Spin's own switch), or where the address space can't hold
/// the pool, instances are allocated on demand, as Spin falls back to.
fn engine() -> anyhow::Result<Engine> {
    let on_demand = || Engine::new(&Config::new()).map_err(anyhow::Error::from);
    if std::env::var("SPIN_WASMTIME_POOLING").is_ok_and(|v| v == "0") {
        return on_demand();
    }
    const MIB: usize = 1 << 20;
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(1_000)
        .max_component_instance_size(10 * MIB)
        .max_core_instance_size(10 * MIB)
        .max_core_instances_per_component(200)
        .max_tables_per_component(20)
        .table_elements(100_000)
        .max_memories_per_component(32)
        .total_memories(1_000)
        .total_tables(2_000)
        .max_memory_size(4 << 30)
        .linear_memory_keep_resident(2 * MIB)
        .table_keep_resident(MIB / 2);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    Engine::new(&config).or_else(|e| {
        eprintln!("spin-test-host: no pooling allocator ({e}); instances allocated on demand");
        on_demand()
    })
}

async fn serve(
    addr: SocketAddr,
    pre: ProxyPre<HostState>,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!(
        "spin-test-host: serving on http://{}",
        listener.local_addr()?
    );
    loop {
        let (client, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let pre = pre.clone();
        let shared = shared.clone();
        tokio::task::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                handle(pre.clone(), shared.clone(), peer, addr, req)
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(client), service)
                .await
            {
                eprintln!("spin-test-host: connection from {peer}: {e}");
            }
        });
    }
}

/// Runs one request in a fresh instance, as Spin does.
async fn handle(
    pre: ProxyPre<HostState>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    local: SocketAddr,
    mut req: hyper::Request<hyper::body::Incoming>,
) -> anyhow::Result<hyper::Response<HyperOutgoingBody>> {
    set_spin_headers(&mut req, peer, local)?;
    let mut store = Store::new(
        pre.engine(),
        HostState {
            shared,
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
        },
    );
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let incoming = wasmtime_wasi_http::WasiHttpView::http(store.data_mut())
        .new_incoming_request(Scheme::Http, req)?;
    let out =
        wasmtime_wasi_http::WasiHttpView::http(store.data_mut()).new_response_outparam(sender)?;
    let task = tokio::task::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, out)
            .await
    });
    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            let e = match task.await {
                Ok(Ok(())) => anyhow::anyhow!("the component never set a response"),
                Ok(Err(e)) => e.into(),
                Err(e) => e.into(),
            };
            Err(e.context("the component failed"))
        }
    }
}

/// Spin's headers on every request; whatever a client sent under these names is replaced.
fn set_spin_headers(
    req: &mut hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
) -> anyhow::Result<()> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let path_info = req.uri().path().to_owned();
    let headers = req.headers_mut();
    let names: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
    headers.insert("spin-client-addr", peer.to_string().parse()?);
    headers.insert("spin-full-url", format!("http://{local}{path}").parse()?);
    headers.insert("spin-path-info", path_info.parse()?);
    headers.insert("spin-matched-route", "/...".parse()?);
    Ok(())
}
