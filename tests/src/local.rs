//! The edge on a real local runtime, on 127.0.0.1 with persisted state, as a child process:
//! - workerd through `wrangler dev` (what operators run; wrangler.toml is read),
//! - workerd through Miniflare's API (`tests/workerd/serve.mjs`: one workerd process, no
//!   wrangler proxy in front; the load benchmark uses it to measure the worker, not the proxy),
//! - the Spin component on `spin-test-host` (wasmtime with Spin's host interfaces emulated),
//!   on Spin's key-value store or on a real Redis,
//! - the native server `eindr-edge`, on its memory store or on a real Redis, or from its
//!   container image.
//!
//! The build must exist (`cargo xtask test` makes it).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::image::EdgeImage;
use crate::redis::{RedisCluster, RedisServer};
use crate::{Runtime, free_port, repo_root};

/// Which runtime runs the edge, and how it is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    WranglerDev,
    Miniflare,
    SpinHost,
    /// `eindr-edge` with `STORE_URL=memory` (unless the variables name another store).
    Native,
    /// `eindr-edge` on a Redis of its own, started with it (unless `STORE_URL` names one).
    NativeRedis,
    /// `eindr-edge` on a Redis Cluster of its own (three primaries, three replicas), started
    /// with it (unless `STORE_URL` names one).
    NativeCluster,
    /// `eindr-edge` from its container image, exported by `cargo xtask test` (`image`).
    Image,
    /// The Spin component on `spin-test-host` with `store_url` on a Redis of its own (unless
    /// `STORE_URL` names one), reached through Spin's outbound Redis interface.
    SpinRedis,
}

impl Launcher {
    /// What must be built first, and the command that builds it.
    fn artifact(self) -> (PathBuf, &'static str) {
        let root = repo_root();
        match self {
            Launcher::WranglerDev | Launcher::Miniflare => (
                root.join("edge/cloudflare/build/index.js"),
                "cargo xtask build-worker",
            ),
            Launcher::SpinHost | Launcher::SpinRedis => (
                root.join("target/wasm32-wasip2/release/edge_spin.wasm"),
                "cargo xtask build-spin",
            ),
            Launcher::Native | Launcher::NativeRedis | Launcher::NativeCluster => {
                (native_binary(), "cargo build -p edge-server")
            }
            Launcher::Image => (
                EdgeImage::exported().rootfs,
                "cargo xtask build-image (podman)",
            ),
        }
    }

    /// Whether state outlives a restart of the runtime (not the native memory store).
    pub fn persists(self) -> bool {
        !matches!(self, Launcher::Native | Launcher::Image)
    }

    /// Whether it serves `GET /ready` (the native server; Spin and workerd have no such probe).
    pub fn serves_ready(self) -> bool {
        matches!(
            self,
            Launcher::Native | Launcher::NativeRedis | Launcher::NativeCluster
        )
    }

    /// Whether it starts a Redis of its own for its state.
    fn on_redis(self) -> bool {
        matches!(self, Launcher::NativeRedis | Launcher::SpinRedis)
    }
}

/// A store started for one runtime; dropped (stopped) with it.
#[allow(dead_code)] // held for its Drop
enum OwnRedis {
    Server(RedisServer),
    Cluster(RedisCluster),
}

pub struct LocalRuntime {
    launcher: Launcher,
    vars: Vec<(String, String)>,
    state_dir: PathBuf,
    port: u16,
    child: Option<Child>,
    secret: String,
    /// The Redis a `NativeRedis`, `SpinRedis` or `NativeCluster` runtime started for
    /// itself, held (and stopped) with it.
    _redis: Option<OwnRedis>,
}

impl LocalRuntime {
    /// Starts the edge on `launcher` with configuration `vars` (operators' names, e.g.
    /// `RATE_LIMIT_BURST`) on a fresh state folder.
    pub fn start(launcher: Launcher, name: &str, vars: &[(&str, &str)]) -> Self {
        let root = repo_root();
        let (artifact, build) = launcher.artifact();
        assert!(
            artifact.exists(),
            "{} is not built: run `{build}` (cargo xtask test does)",
            artifact.display()
        );
        // Instances of one deployment share a secret by naming it in `vars`.
        let secret = vars
            .iter()
            .find(|(k, _)| *k == "JWT_HS256_SECRET")
            .map_or_else(
                || format!("e2e-secret-{name}-0123456789abcdef0123456789"),
                |(_, v)| (*v).to_owned(),
            );
        let mut all: Vec<(String, String)> = vec![
            ("JWT_HS256_SECRET".into(), secret.clone()),
            ("JWT_ISSUER".into(), crate::client::ISSUER.into()),
            ("JWT_AUDIENCE".into(), crate::client::AUDIENCE.into()),
        ];
        all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut redis = None;
        if !vars.iter().any(|(k, _)| *k == "STORE_URL") {
            if launcher.on_redis() {
                let server = RedisServer::start(&format!("{name}-{launcher:?}"));
                all.push(("STORE_URL".into(), server.url()));
                redis = Some(OwnRedis::Server(server));
            } else if launcher == Launcher::NativeCluster {
                let cluster = RedisCluster::start(&format!("{name}-{launcher:?}"));
                all.push(("STORE_URL".into(), cluster.url()));
                redis = Some(OwnRedis::Cluster(cluster));
            }
        }
        let state_dir = root
            .join("target/e2e-state")
            // Tests of one binary run at once: each runtime gets its own folder.
            .join(format!("{name}-{launcher:?}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        let mut runtime = Self {
            launcher,
            vars: all,
            state_dir,
            port: free_port(),
            child: None,
            secret,
            _redis: redis,
        };
        runtime.launch();
        runtime
    }

    fn command(&self) -> Command {
        let root = repo_root();
        let mut cmd = match self.launcher {
            Launcher::WranglerDev => {
                let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
                cmd.args(["dev", "--ip", "127.0.0.1", "--port"])
                    .arg(self.port.to_string())
                    .arg("--inspector-port")
                    .arg(free_port().to_string())
                    .arg("--persist-to")
                    .arg(&self.state_dir)
                    // `log`: the worker's own log lines too (`logs()` reads them).
                    .args(["--log-level", "log", "--show-interactive-dev-session=false"]);
                for (k, v) in &self.vars {
                    cmd.arg("--var").arg(format!("{k}:{v}"));
                }
                cmd
            }
            Launcher::Miniflare => {
                let mut cmd = Command::new("node");
                cmd.arg("tests/workerd/serve.mjs")
                    .arg(self.port.to_string())
                    .arg(&self.state_dir);
                for (k, v) in &self.vars {
                    cmd.arg(format!("{k}={v}"));
                }
                cmd
            }
            Launcher::Native | Launcher::NativeRedis | Launcher::NativeCluster => {
                let mut cmd = Command::new(native_binary());
                cmd.arg("--addr").arg(format!("127.0.0.1:{}", self.port));
                cmd.envs(self.vars.iter().map(|(k, v)| (k, v)));
                cmd
            }
            Launcher::Image => {
                let image = EdgeImage::exported();
                let mut vars = self.vars.clone();
                vars.push(("EDGE_ADDR".into(), format!("127.0.0.1:{}", self.port)));
                image.command(&image.entrypoint(), &vars)
            }
            Launcher::SpinHost | Launcher::SpinRedis => {
                let mut cmd = Command::new(spin_host_binary());
                cmd.args(["--manifest", "spin.toml", "--listen"])
                    .arg(format!("127.0.0.1:{}", self.port))
                    .arg("--kv-file")
                    .arg(self.state_dir.join("sqlite_key_value.db"));
                // Spin variable names are the operators' names in lower case.
                for (k, v) in &self.vars {
                    cmd.arg("--variable")
                        .arg(format!("{}={v}", k.to_ascii_lowercase()));
                }
                cmd
            }
        };
        cmd.current_dir(&root)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .stdin(Stdio::null())
            .process_group(0);
        // Its output is kept for `logs()` (shown instead with E2E_RUNTIME_LOGS set).
        if std::env::var_os("E2E_RUNTIME_LOGS").is_some() {
            cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        } else {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.state_dir.join("runtime.log"))
                .unwrap();
            cmd.stdout(log.try_clone().unwrap()).stderr(log);
        }
        cmd
    }

    fn launch(&mut self) {
        let mut cmd = self.command();
        self.child = Some(cmd.spawn().expect("start the runtime"));
        let deadline = Instant::now() + Duration::from_secs(90);
        let url = format!("{}/health", self.base_url());
        let probe: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(3)))
            .build()
            .into();
        loop {
            if let Ok(r) = probe.get(&url).call()
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the runtime did not become ready"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // wrangler's workerd children may leave its process group; a survivor would keep
            // the persisted state locked, so end every descendant.
            let mut pids = gpu_backend::process::descendants(child.id());
            pids.push(child.id());
            for pid in &pids {
                let _ = Command::new("kill")
                    .args(["-s", "TERM", "--", &pid.to_string()])
                    .status();
            }
            // `--`: without it, procps kill may read `-<pgid>` as an option, and end up
            // signalling every process (`-1`).
            let _ = Command::new("kill")
                .args(["-s", "TERM", "--", &format!("-{}", child.id())])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            for pid in &pids {
                let _ = Command::new("kill")
                    .args(["-s", "KILL", "--", &pid.to_string()])
                    .status();
            }
            let _ = child.wait();
        }
    }
}

impl LocalRuntime {
    /// SIGTERM to the runtime's process alone, as an orchestrator sends it; its exit status
    /// once it exits within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let status = crate::vllm::terminate_child(self.child.as_mut()?, limit)?;
        self.child = None;
        Some(status)
    }
}

impl LocalRuntime {
    /// Resident memory of the runtime's processes (the child and its descendants: workerd
    /// under node, say), in KiB.
    pub fn memory_kib(&self) -> u64 {
        let Some(child) = &self.child else { return 0 };
        let mut pids = gpu_backend::process::descendants(child.id());
        pids.push(child.id());
        pids.iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .sum()
    }

    /// What the runtime has written to stdout and stderr so far (empty with E2E_RUNTIME_LOGS,
    /// which shows it instead).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("runtime.log")).unwrap_or_default()
    }
}

impl Runtime for LocalRuntime {
    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        self.stop();
        self.port = free_port();
        self.launch();
    }

    fn secret(&self) -> &str {
        &self.secret
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// `eindr-edge`, built by `cargo build -p edge-server` into this target folder, or the one
/// `EINDR_EDGE_BINARY` names (the load benchmark's release build).
fn native_binary() -> PathBuf {
    std::env::var_os("EINDR_EDGE_BINARY").map_or_else(
        || crate::target_dir().join("debug/eindr-edge"),
        PathBuf::from,
    )
}

/// The test host binary, built by `cargo build -p spin-test-host` into this target folder.
fn spin_host_binary() -> PathBuf {
    let binary = crate::target_dir().join("debug/spin-test-host");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo xtask build-spin` (cargo xtask test does)",
        binary.display()
    );
    binary
}
