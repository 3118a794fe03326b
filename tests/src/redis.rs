//! A real Redis (Debian's `redis-server`) on 127.0.0.1 for the native server's store: its own
//! port and folder, append-only persistence (an acknowledged turn survives a restart), and
//! stop/start for the outage checks. Benchmarks start one without persistence.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::free_port;
use crate::vllm::Process;

pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    persistent: bool,
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
        let dir = crate::target_dir()
            .join("e2e-redis")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port: free_port(),
            dir,
            persistent,
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
            // Redis's default fsync (every second): a killed redis-server loses nothing it
            // acknowledged, since its writes reach the kernel before it replies.
            .args(["--save", "", "--appendonly"])
            .arg(if self.persistent { "yes" } else { "no" })
            .args(["--protected-mode", "no"]);
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
