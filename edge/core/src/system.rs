//! Clock and randomness from the operating system (or WASI), for adapters on targets that have
//! them: the native dev server and the Spin component. Not for wasm32-unknown-unknown, where
//! `SystemTime` does not exist (the Workers adapter brings its own).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::platform::{Clock, Randomness};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

pub struct OsRandom;

impl Randomness for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            // No entropy to give: fail closed rather than reuse AES-GCM nonces.
            std::process::abort();
        }
    }
}

/// A container healthcheck for images without a shell or curl (`FROM scratch`): asks the
/// server listening on `listen` (a wildcard address means this host) for `GET /health` and
/// says whether it answered 200 within two seconds.
pub fn probe_health(listen: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
    use std::time::Duration;

    let mut addr: SocketAddr = listen
        .to_socket_addrs()
        .map_err(|e| format!("{listen}: {e}"))?
        .next()
        .ok_or_else(|| format!("{listen}: no address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let timeout = Duration::from_secs(2);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("{addr}: {e}"))?;
    match &head[9..12] {
        b"200" => Ok(()),
        status => Err(format!(
            "{addr}: /health answered {}",
            String::from_utf8_lossy(status)
        )),
    }
}
