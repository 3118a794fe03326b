//! `cargo xtask test`: formatting, lints, the wasm checks, the builds, then every test, closed
//! by one summary line.

use std::process::Command;

use crate::builds::{build_spin, build_worker};
use crate::cmd::{cargo, output, root, run, test_data_dir};
use crate::image::build_edge_image;
use crate::models::ensure_tiny_model;
use crate::tools::{
    WASM_TARGETS, ensure_cargo_deny, ensure_test_packages, ensure_vllm, ensure_wasm_targets,
};

/// Crates that would tie the core to one deployment platform or runtime. (WASI and
/// wasm-bindgen shims that jwt-simple's clock and RNG pull in per target are not platforms.)
pub(crate) const PLATFORM_CRATES: [&str; 6] = [
    "worker",
    "worker-sys",
    "spin-sdk",
    "spin-executor",
    "tokio",
    "web-sys",
];

pub(crate) fn test() -> Result<(), String> {
    ensure_wasm_targets()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    for target in WASM_TARGETS {
        run(cargo().args(["check", "-p", "edge-core", "--target", target]))?;
    }
    check_core_is_platform_free()?;
    // Licences, banned duplicates and sources of every dependency, by deny.toml.
    run(Command::new(ensure_cargo_deny()?)
        .current_dir(root())
        .args(["check", "licenses", "bans", "sources"]))?;
    build_worker()?;
    build_spin()?;
    let data = test_data_dir();
    if !data.is_dir() {
        return Err(format!(
            "test data not found at {} (set EINDR_TEST_DATA)",
            data.display()
        ));
    }
    // The binaries the suites start (spin-test-host, gpu-backend), built for the same set of
    // packages as the test run below, so it reuses them instead of building wasmtime twice.
    run(cargo().args(["build", "--workspace", "--exclude", "edge-spin", "--bins"]))?;
    let python = ensure_vllm()?;
    ensure_test_packages()?;
    let model = ensure_tiny_model(&python, &data)?;
    let image = build_edge_image()?;
    let mut tests = cargo();
    // edge-spin is a wasm32-wasip2 component: its cdylib does not link natively, and the e2e
    // suite tests the built component on the Spin test host.
    tests
        .args([
            "test",
            "--workspace",
            "--exclude",
            "edge-spin",
            "--no-fail-fast",
        ])
        .env("EINDR_TEST_DATA", &data)
        .env("EINDR_VLLM_PYTHON", &python)
        .env("EINDR_TINY_MODEL", &model);
    // The image test is the one ignored test: it runs when the image could be built, and is
    // counted as skipped otherwise.
    if let Some(image) = &image {
        tests
            .env("EINDR_EDGE_IMAGE", image)
            .args(["--", "--include-ignored"]);
    }
    run_tests(&mut tests)
}

/// Runs a test command, passing its output through, and closes with one summary line over
/// all its test binaries (cargo prints one `test result:` line per binary).
pub(crate) fn run_tests(cmd: &mut Command) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    println!("xtask: {cmd:?}");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |label: &str| {
                    rest.split(';')
                        .find_map(|part| part.trim().strip_suffix(label))
                        .and_then(|n| {
                            n.trim()
                                .trim_start_matches("ok.")
                                .trim_start_matches("FAILED.")
                                .trim()
                                .parse::<u64>()
                                .ok()
                        })
                        .unwrap_or(0)
                };
                passed += count(" passed");
                failed += count(" failed");
                ignored += count(" ignored");
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    println!("summary: {passed} passed, {failed} failed, {ignored} skipped");
    if status.success() {
        Ok(())
    } else {
        Err(format!("tests failed ({status})"))
    }
}

/// The core may depend on no platform crate, on any target.
pub(crate) fn check_core_is_platform_free() -> Result<(), String> {
    for target in WASM_TARGETS.iter().copied().chain(["all"]) {
        let tree = output(cargo().args([
            "tree",
            "-p",
            "edge-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--target",
            target,
        ]))?;
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if PLATFORM_CRATES.contains(&name) {
                return Err(format!(
                    "edge-core depends on platform crate {name} ({target})"
                ));
            }
        }
    }
    println!("xtask: edge-core is free of platform crates");
    Ok(())
}
