//! Load benchmark drivers (`cargo xtask bench-edge | bench-backend | bench-full`), apart from
//! the tests: they start the same real runtimes through the e2e harness and drive them with
//! wrk (closed loop, throughput) or oha (a fixed rate, open loop), printing their figures.

// Benchmark support: a failure here is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod full_edge;
pub mod load;
pub mod rate;
