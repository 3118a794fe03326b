//! `gpu-backend`: serve the OpenAI-compatible chat API over vLLM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use edge_core::config::GenerationSettings;
use gpu_backend::config::{Args, EDGE_ONLY_VARIABLES};
use gpu_backend::cpu::{CpuEngine, EngineSettings};
use gpu_backend::engine::{CpuSlot, Engine, EngineChoice, Engines, VllmPool};
use gpu_backend::metrics::Metrics;
use gpu_backend::prompt::{self, TokenCounter};
use gpu_backend::service::{AppState, router};
use gpu_backend::supervisor::{self, VllmCommand};
use gpu_backend::tokenizer::{ByteBound, ModelTokenizer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if args.healthcheck {
        return edge_core::system::probe_health(&args.listen.to_string())
            .map_err(|message| anyhow::anyhow!("unhealthy: {message}"));
    }
    if args.api_key.as_deref().is_none_or(str::is_empty) && !args.dev {
        bail!(
            "BACKEND_API_KEY is not set: refusing to serve without authentication \
             (set BACKEND_DEV=true for a local development run)"
        );
    }
    for (edge_name, ours) in EDGE_ONLY_VARIABLES {
        if std::env::var_os(edge_name).is_some() {
            tracing::info!(
                "{edge_name} is the edge's wait for gpu-backend; gpu-backend's own is {ours}"
            );
        }
    }
    let generation = GenerationSettings::from_lookup(|name| std::env::var(name).ok())?;
    let metrics = Arc::new(Metrics::new());

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut urls = args.vllm_server_url.clone();
    let mut supervisor_task = None;
    if args.vllm_autostart && args.engine == EngineChoice::Cpu {
        bail!("VLLM_AUTOSTART=true and ENGINE=cpu contradict each other: choose one");
    }
    if args.vllm_autostart {
        let model = supervisor::model_argument(args.model_path.as_deref(), &generation.model_name)
            .map_err(anyhow::Error::msg)?;
        let command = VllmCommand {
            python: args.vllm_python.clone(),
            model,
            served_model_name: generation.model_name.clone(),
            port: args.vllm_server_port,
            max_model_len: generation.max_model_len,
            gpu_memory_utilization: args.vllm_gpu_memory_utilization,
            tensor_parallel_size: args.vllm_tensor_parallel_size,
            dtype: args.vllm_dtype,
            quantization: args.vllm_quantization.clone(),
            extra_args: args
                .vllm_extra_args
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        };
        // The supervised server is the one to use.
        urls = vec![command.url()];
        supervisor_task = Some(tokio::spawn(supervisor::supervise(
            command,
            Arc::clone(&metrics),
            shutdown_rx,
        )));
    }

    let tokenizer = load_tokenizer(&args)?;
    let cpu = load_cpu_engine(&args, generation.max_model_len as usize).await?;
    if args.engine == EngineChoice::Cpu {
        urls.clear();
    }
    let timeouts = args.timeouts();
    let mut chain: Vec<Arc<dyn Engine>> = Vec::new();
    if !urls.is_empty() {
        chain.push(Arc::new(VllmPool::new(
            &urls,
            timeouts,
            Arc::clone(&metrics),
        )?));
    }
    if let Some(cpu) = cpu {
        chain.push(Arc::new(CpuSlot::new(
            cpu,
            usize::from(args.cpu_max_batch),
            timeouts,
            &metrics,
        )));
    }
    let engines = Arc::new(Engines::new(chain, timeouts.total, Arc::clone(&metrics)));
    engines.check_all().await;
    engines.spawn_health_checks(Duration::from_millis(args.health_interval_ms.max(100)));
    let state = Arc::new(AppState {
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        generation,
        engines,
        tokenizer,
        metrics,
        persona: prompt::persona(&args.assistant_name),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, engines = ?urls, "gpu-backend serving");
    // Small SSE frames must leave at once: without TCP_NODELAY, Nagle's algorithm and the
    // client's delayed ACK hold each frame ~40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "TCP_NODELAY");
        }
    });
    // SIGTERM (docker, Kubernetes, systemd) and SIGINT alike: stop accepting, give running
    // answers the grace period, then stop vLLM so that it never outlives us.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    let serving = tokio::spawn(async move { server.await });
    let signal = shutdown_signal().await?;
    tracing::info!(signal, "shutting down: no new requests");
    let _ = stop_tx.send(true);
    let grace = Duration::from_millis(args.shutdown_grace_ms);
    match tokio::time::timeout(grace, serving).await {
        Ok(served) => served??,
        Err(_) => tracing::warn!(
            grace_ms = args.shutdown_grace_ms,
            "answers still running after the grace period are ended"
        ),
    }
    let _ = shutdown_tx.send(true);
    if let Some(task) = supervisor_task {
        let _ = task.await;
    }
    tracing::info!("gpu-backend stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT; its name.
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// The CPU engine, when ENGINE and CPU_MODEL_PATH ask for one: loaded (and quantized to
/// CPU_PRECISION) before serving, so the first request does not pay for it.
async fn load_cpu_engine(args: &Args, max_len: usize) -> anyhow::Result<Option<Arc<CpuEngine>>> {
    let path = match (args.engine, &args.cpu_model_path) {
        (EngineChoice::Vllm, Some(_)) => {
            tracing::warn!("ENGINE=vllm: CPU_MODEL_PATH is ignored");
            return Ok(None);
        }
        (EngineChoice::Vllm | EngineChoice::Auto, None) => return Ok(None),
        (EngineChoice::Cpu, None) => {
            bail!(
                "ENGINE=cpu needs CPU_MODEL_PATH, a BLOOM checkpoint directory (config.json, model.safetensors, tokenizer.json)"
            )
        }
        (_, Some(path)) => path.clone(),
    };
    let threads = args
        .cpu_threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    let settings = EngineSettings {
        precision: args.cpu_precision,
        threads,
        max_len,
    };
    let engine = tokio::task::spawn_blocking(move || CpuEngine::load(&path, settings)).await??;
    Ok(Some(Arc::new(engine)))
}

/// The model's tokenizer.json, from CHAT_TOKENIZER or the model directory; without one,
/// a byte count (an upper bound for BLOOM's byte-level BPE).
fn load_tokenizer(args: &Args) -> anyhow::Result<Box<dyn TokenCounter>> {
    let path: Option<PathBuf> = args.tokenizer.clone().or_else(|| {
        args.model_path
            .as_deref()
            .map(|m| Path::new(m).join("tokenizer.json"))
            .filter(|p| p.is_file())
    });
    match path {
        Some(path) => {
            let started = std::time::Instant::now();
            let tokenizer = ModelTokenizer::load(&path)?;
            tracing::info!(path = %path.display(), seconds = started.elapsed().as_secs_f64(), "tokenizer loaded");
            Ok(Box::new(tokenizer))
        }
        None => {
            tracing::warn!("no tokenizer.json (CHAT_TOKENIZER): counting bytes, an upper bound");
            Ok(Box::new(ByteBound))
        }
    }
}
