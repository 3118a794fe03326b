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
