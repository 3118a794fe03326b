//! Supervising vLLM (`VLLM_AUTOSTART=true`): start its OpenAI server, wait for `/health` with a
//! progress line, restart it with backoff when it dies, stop it on shutdown.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct VllmCommand {
    pub python: String,
    pub model: String,
    pub served_model_name: String,
    pub port: u16,
    pub max_model_len: u32,
    pub gpu_memory_utilization: f64,
    pub tensor_parallel_size: u32,
    pub extra_args: Vec<String>,
}

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
    fn start(&self) -> std::io::Result<Child> {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "vllm.entrypoints.openai.api_server", "--model"])
            .arg(&self.model)
            .arg("--served-model-name")
            .arg(&self.served_model_name)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--max-model-len")
            .arg(self.max_model_len.to_string())
            .arg("--gpu-memory-utilization")
            .arg(self.gpu_memory_utilization.to_string())
            .arg("--tensor-parallel-size")
            .arg(self.tensor_parallel_size.to_string())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd.spawn()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Runs vLLM until `shutdown` turns true.
pub async fn supervise(command: VllmCommand, mut shutdown: watch::Receiver<bool>) {
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
        tracing::info!(pid = child.id(), model = %command.model, "vLLM starting");
        let mut ready = false;
        let mut last_progress = Instant::now();
        loop {
            tokio::select! {
                status = child.wait() => {
                    tracing::error!(?status, "vLLM exited");
                    break;
                }
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
        }
        // A run that stayed up a while starts the backoff over.
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tracing::warn!(retry_in_s = backoff.as_secs(), "restarting vLLM");
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

/// SIGTERM, then SIGKILL after 10 s.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::model_argument;

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
