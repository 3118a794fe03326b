//! A real Redis (Debian's `redis-server`) on 127.0.0.1 for the native server's store: its own
//! port and folder, append-only persistence (an acknowledged turn survives a restart), and
//! stop/start for the outage checks. Benchmarks start one without persistence. A Redis
//! Cluster of six of them (three primaries, three replicas), made with `redis-cli --cluster
//! create`, for the cluster checks and its failover.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::free_port;
use crate::vllm::Process;

pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    persistent: bool,
    /// More `redis-server` arguments (a cluster node's).
    extra: Vec<String>,
    process: Option<Process>,
}

/// Debian's binary, which `cargo xtask test` installs.
fn binary() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("REDIS_SERVER").unwrap_or_else(|_| "/usr/bin/redis-server".into()),
    );
    assert!(
        path.is_file(),
        "{} is missing: `cargo xtask test` installs Debian's redis-server",
        path.display()
    );
    path
}

impl RedisServer {
    pub fn start(name: &str) -> Self {
        Self::start_with(name, true)
    }

    /// One that keeps its data in memory only, for benchmarks: with append-only persistence,
    /// the disk's writeback after a heavy run shows up in the latency tail (measured: an
    /// open-loop p99 of 3.9 to 12 ms after 200,000 turns, 2.3 to 4.0 ms without).
    pub fn start_in_memory(name: &str) -> Self {
        Self::start_with(name, false)
    }

    fn start_with(name: &str, persistent: bool) -> Self {
        Self::start_with_args(name, persistent, Vec::new())
    }

    fn start_with_args(name: &str, persistent: bool, extra: Vec<String>) -> Self {
        let dir = crate::target_dir()
            .join("e2e-redis")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port: free_port(),
            dir,
            persistent,
            extra,
            process: None,
        };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and data folder.
    pub fn resume(&mut self) {
        let mut cmd = Command::new(binary());
        cmd.args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly"])
            .arg(if self.persistent { "yes" } else { "no" })
            // Every write reaches the file before its reply. With Redis's default (`everysec`)
            // a write is postponed for up to 2 s while the previous fsync is still running,
            // yet answered: a killed redis-server then loses turns it acknowledged (seen in
            // CI, with the disk busy beside the rest of the suite).
            .args(["--appendfsync", "always"])
            .args(["--protected-mode", "no"])
            .args(&self.extra);
        self.process = Some(Process::spawn(cmd));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it hard, as a crash or a lost host would.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A PING gets a PONG (spoken in RESP over a plain socket: no client crate needed).
    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Debian's `redis-cli` (redis-tools, which redis-server depends on).
fn cli() -> PathBuf {
    PathBuf::from(std::env::var("REDIS_CLI").unwrap_or_else(|_| "/usr/bin/redis-cli".into()))
}

/// `redis-cli -p PORT ARGS...`'s output, or `None` when the node does not answer.
fn ask(port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new(cli())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
        .filter(|text| !text.starts_with("Could not connect"))
}

/// A Redis Cluster on loopback: three primaries with a replica each, append-only persistence,
/// and a node timeout of [`NODE_TIMEOUT_MS`], so that a replica takes over a dead primary
/// within seconds.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

pub const NODE_TIMEOUT_MS: u64 = 2_000;

impl RedisCluster {
    pub fn start(name: &str) -> Self {
        Self::start_with(name, true)
    }

    /// One whose nodes keep their data in memory only, for benchmarks (see
    /// [`RedisServer::start_in_memory`]).
    pub fn start_in_memory(name: &str) -> Self {
        Self::start_with(name, false)
    }

    fn start_with(name: &str, persistent: bool) -> Self {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|i| {
                RedisServer::start_with_args(
                    &format!("{name}-cluster-{i}"),
                    persistent,
                    vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        "nodes.conf".into(),
                        "--cluster-node-timeout".into(),
                        NODE_TIMEOUT_MS.to_string(),
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new(cli())
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster.wait_until_replicated(Duration::from_secs(30));
        cluster
    }

    /// Every replica has finished its first sync with its primary (`master_link_status:up`):
    /// before that, `WAIT` finds no replica and a `replicated` write waits out its timeout.
    fn wait_until_replicated(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let synced = |node: &RedisServer| {
            ask(node.port, &["info", "replication"]).is_some_and(|info| {
                !info.contains("role:slave") || info.contains("master_link_status:up")
            })
        };
        while !self.nodes.iter().all(synced) {
            assert!(Instant::now() < deadline, "the replicas did not sync");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Every running node says `cluster_state:ok` and knows every slot covered.
    pub fn is_ok(&self) -> bool {
        let running: Vec<&RedisServer> =
            self.nodes.iter().filter(|n| n.process.is_some()).collect();
        !running.is_empty()
            && running.iter().all(|node| {
                ask(node.port, &["cluster", "info"]).is_some_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
                })
            })
    }

    pub fn wait_until_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.is_ok() {
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster did not become ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills one primary that has a replica (SIGKILL, as a lost host), and returns its port.
    pub fn kill_a_primary(&mut self) -> u16 {
        let survivor = self
            .nodes
            .iter()
            .find(|n| n.process.is_some())
            .expect("a running node");
        let table = ask(survivor.port, &["cluster", "nodes"]).expect("cluster nodes");
        // `<id> <ip:port@cport> <flags> <master> ...`: a primary is flagged `master`.
        let port = table
            .lines()
            .filter(|line| {
                line.split_whitespace()
                    .nth(2)
                    .is_some_and(|flags| flags.contains("master") && !flags.contains("fail"))
            })
            .filter_map(|line| {
                let address = line.split_whitespace().nth(1)?;
                address.split(['@', ':']).nth(1)?.parse::<u16>().ok()
            })
            .next()
            .expect("a primary");
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("the primary is one of ours");
        node.stop();
        port
    }
}
