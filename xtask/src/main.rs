//! Project tasks (the cargo-xtask convention): `cargo xtask dev | test | bench | ...`.
//!
//! Only std: this runs before anything else is built, on a fresh machine. One module per
//! concern: `dev` (local runs), `test_suite`, `bench`, `builds` (worker, Spin component),
//! `image` (the edge's container image, for the test suite), `fuzz` (the fuzz targets),
//! `tools` and `models` (what they install or make), `cmd` (running commands).

mod bench;
mod builds;
mod cmd;
mod dev;
mod fuzz;
mod image;
mod models;
mod test_suite;
mod tools;

use std::env;
use std::process::ExitCode;

use crate::bench::{
    bench, bench_backend, bench_cache, bench_cpu, bench_edge, bench_full, eval_understanding,
    fit_thresholds, soak,
};
use crate::builds::{build_spin, build_worker};
use crate::dev::{dev, dev_full, dev_native, dev_spin, warm_cache};
use crate::fuzz::fuzz;
use crate::image::build_edge_image;
use crate::models::{measure_teacher, spoken_clinc, train_intent};
use crate::test_suite::test;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dev") => dev(),
        Some("dev-native") => dev_native(&args[1..]),
        Some("test") => test(),
        Some("build-worker") => build_worker(),
        Some("build-spin") => build_spin(),
        Some("build-image") => build_edge_image().map(drop),
        Some("fuzz") => fuzz(&args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("dev-spin") => dev_spin(),
        Some("dev-full") => dev_full(),
        Some("bench") => bench(),
        Some("bench-edge") => bench_edge(&args[1..]),
        Some("bench-backend") => bench_backend(&args[1..]),
        Some("bench-full") => bench_full(&args[1..]),
        Some("bench-cache") => bench_cache(&args[1..]),
        Some("bench-cpu") => bench_cpu(&args[1..]),
        Some("warm-cache") => warm_cache(&args[1..]),
        Some("eval-understanding") => eval_understanding(&args[1..]),
        Some("fit-thresholds") => fit_thresholds(&args[1..]),
        Some("spoken-clinc") => spoken_clinc(&args[1..]),
        Some("train-intent") => train_intent(),
        Some("measure-teacher") => measure_teacher(),
        _ => {
            eprintln!(
                "usage: cargo xtask <dev | dev-full | dev-spin | dev-native [eindr-edge args] | test | bench | bench-edge [workerd|spin|native] [seconds] | bench-backend [seconds] | bench-full [requests] | bench-cache [requests] | bench-cpu [decode tokens] | warm-cache [URL] [FILE] | eval-understanding FILE [--split S] [--oos-split S] | spoken-clinc [OUT] | fit-thresholds FILE | train-intent | measure-teacher | build-worker | build-spin | build-image | fuzz [seconds per target] | soak [minutes] [workerd|spin|native]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
