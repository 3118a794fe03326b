//! Supervising vLLM (`VLLM_AUTOSTART=true`): start its OpenAI server, wait for `/health` with a
//! progress line, restart it with backoff when it dies (saying why, from its own output),
//! and stop it and every process it started on shutdown.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::process::{alive, descendants};

/// How long vLLM gets to stop after SIGTERM before it and its workers get SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct VllmCommand {
    pub python: String,
    pub model: String,
    pub served_model_name: String,
    pub port: u16,
    pub max_model_len: u32,
    pub gpu_memory_utilization: f64,
    pub tensor_parallel_size: u32,
    /// `--dtype` (`VLLM_DTYPE`).
    pub dtype: VllmDtype,
    /// `--quantization` (`VLLM_QUANTIZATION`), when set.
    pub quantization: Option<String>,
    pub extra_args: Vec<String>,
}

/// The weights' and activations' type on the GPU (vLLM's `--dtype`). bloom-560m is published
/// in fp16; `auto` keeps it, `bfloat16` suits GPUs from Ampere on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VllmDtype {
    Auto,
    Half,
    Float16,
    Bfloat16,
    Float,
    Float32,
}

/// The `VLLM_QUANTIZATION` methods gpu-backend passes on: `fp8` and `bitsandbytes` quantize any
/// checkpoint as vLLM loads it (fp8 needs a GPU with FP8, e.g. Hopper); the others read a
/// checkpoint quantized beforehand by that method.
pub const VLLM_QUANTIZATIONS: [&str; 10] = [
    "fp8",
    "bitsandbytes",
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "compressed-tensors",
    "gguf",
    "experts_int8",
    "torchao",
];

/// What to pass as `--model`: a model directory or a hub id. A lone weights file (like the
/// seed's `models/Bloom560m.bin`) is refused with the reason.
pub fn model_argument(model_path: Option<&str>, model_name: &str) -> Result<String, String> {
    let model = model_path.unwrap_or(model_name);
    let path = Path::new(model);
    if path.is_file() {
        return Err(format!(
            "{model} is a single file; vLLM loads a model directory (config.json, weights, tokenizer) \
             or a hub id such as bigscience/bloom-560m"
        ));
    }
    if path.is_dir() && !path.join("config.json").is_file() {
        return Err(format!(
            "{model} is a directory without config.json; it is not a model directory"
        ));
    }
    Ok(model.to_owned())
}

impl VllmCommand {
    /// vLLM's command line after the Python interpreter.
    pub fn arguments(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            &self.model,
            "--served-model-name",
            &self.served_model_name,
            "--host",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--max-model-len",
            &self.max_model_len.to_string(),
            "--gpu-memory-utilization",
            &self.gpu_memory_utilization.to_string(),
            "--tensor-parallel-size",
            &self.tensor_parallel_size.to_string(),
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        if self.dtype != VllmDtype::Auto {
            let dtype = clap::ValueEnum::to_possible_value(&self.dtype)
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default();
            args.extend(["--dtype".to_owned(), dtype]);
        }
        if let Some(method) = &self.quantization {
            args.extend(["--quantization".to_owned(), method.clone()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn start(&self) -> std::io::Result<Child> {
        let mut cmd = Command::new(&self.python);
        cmd.args(self.arguments())
            .stdin(Stdio::null())
            // Read by `relay_output`: passed on, and its last error line kept.
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The last line of vLLM's output that reads as an error (Python's `...Error: ...`, or a log
/// line at ERROR), else its last line: what an operator needs when it will not start.
#[derive(Clone, Default)]
struct LastWords(Arc<Mutex<(Option<String>, Option<String>)>>);

impl LastWords {
    fn note(&self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        if let Ok(mut words) = self.0.lock() {
            if line.contains("Error") || line.contains("ERROR") {
                words.0 = Some(line.to_owned());
            }
            words.1 = Some(line.to_owned());
        }
    }

    fn take(&self) -> String {
        self.0
            .lock()
            .ok()
            .and_then(|mut words| {
                let (error, last) = std::mem::take(&mut *words);
                error.or(last)
            })
            .unwrap_or_else(|| "no output".to_owned())
    }
}

/// Passes vLLM's output on to ours, line by line, noting its last words.
fn relay_output(child: &mut Child, words: &LastWords) {
    fn relay(stream: impl AsyncRead + Unpin + Send + 'static, words: LastWords) {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{line}");
                words.note(&line);
            }
        });
    }
    if let Some(out) = child.stdout.take() {
        relay(out, words.clone());
    }
    if let Some(err) = child.stderr.take() {
        relay(err, words.clone());
    }
}

/// Runs vLLM until `shutdown` turns true.
pub async fn supervise(
    command: VllmCommand,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = reqwest::Client::new();
    let health = format!("{}/health", command.url());
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let mut child = match command.start() {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(error = %e, python = %command.python, "could not start vLLM");
                if wait_or_shutdown(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let words = LastWords::default();
        relay_output(&mut child, &words);
        tracing::info!(pid = child.id(), model = %command.model, "vLLM starting");
        let mut ready = false;
        let mut last_progress = Instant::now();
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = shutdown.changed() => {
                    stop(&mut child).await;
                    return;
                }
                _ = tokio::time::sleep(Duration::from_millis(500)), if !ready => {
                    if client.get(&health).timeout(Duration::from_secs(2)).send().await
                        .is_ok_and(|r| r.status().is_success())
                    {
                        ready = true;
                        tracing::info!(seconds = started.elapsed().as_secs_f64(), "vLLM is ready");
                    } else if last_progress.elapsed() >= Duration::from_secs(5) {
                        last_progress = Instant::now();
                        tracing::info!(waited_s = started.elapsed().as_secs(), "waiting for vLLM /health");
                    }
                }
            }
        };
        // A run that stayed up a while starts the backoff over.
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        // Give the output relays a moment to read vLLM's last lines.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let why = words.take();
        metrics.count_vllm_restart();
        if ready {
            tracing::warn!(%status, last_error = %why, retry_in_s = backoff.as_secs(), "vLLM exited; restarting it");
        } else {
            tracing::warn!(%status, last_error = %why, retry_in_s = backoff.as_secs(), "vLLM failed to start; retrying");
        }
        if wait_or_shutdown(backoff, &mut shutdown).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Waits `delay`; true when shutdown came first.
async fn wait_or_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// SIGTERM to vLLM, then SIGKILL after [`STOP_GRACE`] to it and every process it started
/// (its engine core and workers, which would otherwise outlive it holding the GPU and port).
async fn stop(child: &mut Child) {
    let Some(pid) = child.id() else {
        return;
    };
    // Taken before the signal: once vLLM is gone its workers belong to init.
    let family = descendants(pid);
    signal("TERM", pid).await;
    let stopped = tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok();
    if !stopped {
        tracing::warn!(pid, "vLLM did not stop within the grace period: killing it");
        let _ = child.kill().await;
    }
    // Workers still running a moment after their parent ended are killed.
    let deadline = Instant::now() + Duration::from_secs(2);
    while family.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for left in family.into_iter().filter(|p| alive(*p)) {
        tracing::warn!(pid = left, "a vLLM worker outlived it: killing it");
        signal("KILL", left).await;
    }
    tracing::info!(pid, "vLLM stopped");
}

async fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args(["-s", name, "--", &pid.to_string()])
        .status()
        .await;
}

#[cfg(test)]
mod tests {
    use super::{LastWords, VllmCommand, VllmDtype, model_argument};

    fn command(dtype: VllmDtype, quantization: Option<&str>) -> VllmCommand {
        VllmCommand {
            python: "python3".into(),
            model: "bigscience/bloom-560m".into(),
            served_model_name: "bigscience/bloom-560m".into(),
            port: 8001,
            max_model_len: 2048,
            gpu_memory_utilization: 0.8,
            tensor_parallel_size: 1,
            dtype,
            quantization: quantization.map(str::to_owned),
            extra_args: vec!["--enforce-eager".into()],
        }
    }

    #[test]
    fn dtype_and_quantization_reach_vllm_only_when_set() {
        let plain = command(VllmDtype::Auto, None).arguments().join(" ");
        assert!(
            !plain.contains("--dtype") && !plain.contains("--quantization"),
            "{plain}"
        );
        assert!(plain.ends_with("--enforce-eager"), "{plain}");
        let set = command(VllmDtype::Bfloat16, Some("fp8"))
            .arguments()
            .join(" ");
        assert!(set.contains("--dtype bfloat16 --quantization fp8"), "{set}");
    }

    #[test]
    fn the_last_error_line_says_why() {
        let words = LastWords::default();
        for line in [
            "INFO starting",
            "ValueError: Available memory on node 0 (13.74/15.84 GiB) on startup is less than desired CPU memory utilization (0.9, 14.25 GiB)",
            "  ",
            "INFO shutting down",
        ] {
            words.note(line);
        }
        assert!(words.take().starts_with("ValueError: Available memory"));
        words.note("just a line");
        assert_eq!(words.take(), "just a line");
        assert_eq!(words.take(), "no output");
    }

    #[test]
    fn a_lone_file_is_refused_a_directory_or_hub_id_is_taken() {
        let dir = std::env::temp_dir().join(format!("gpu-backend-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("Bloom560m.bin");
        std::fs::write(&file, b"weights").unwrap();
        let err = model_argument(file.to_str(), "x").unwrap_err();
        assert!(err.contains("single file"), "{err}");
        assert!(
            model_argument(dir.to_str(), "x")
                .unwrap_err()
                .contains("config.json")
        );
        std::fs::write(dir.join("config.json"), b"{}").unwrap();
        assert_eq!(
            model_argument(dir.to_str(), "x").unwrap(),
            dir.to_str().unwrap()
        );
        assert_eq!(
            model_argument(None, "bigscience/bloom-560m").unwrap(),
            "bigscience/bloom-560m"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
