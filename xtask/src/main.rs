//! Project tasks (the cargo-xtask convention): `cargo xtask dev | test | bench`.
//!
//! Only std: this runs before anything else is built, on a fresh machine.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASM_TARGETS: [&str; 2] = ["wasm32-unknown-unknown", "wasm32-wasip2"];
/// Crates that would tie the core to one deployment platform or runtime. (WASI and
/// wasm-bindgen shims that jwt-simple's clock and RNG pull in per target are not platforms.)
const PLATFORM_CRATES: [&str; 6] = [
    "worker",
    "worker-sys",
    "spin-sdk",
    "spin-executor",
    "tokio",
    "web-sys",
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dev") => dev(),
        Some("dev-native") => dev_native(&args[1..]),
        Some("test") => test(),
        Some("build-worker") => build_worker(),
        Some("bench") => bench(),
        Some("bench-edge") => bench_edge(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <dev | dev-native [edge-dev args] | test | bench | bench-edge [workerd] [seconds] | build-worker>"
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

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    println!("xtask: {shown}");
    let status = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs the wasm targets once; a second run finds them and does nothing.
fn ensure_wasm_targets() -> Result<(), String> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    for target in WASM_TARGETS {
        if !installed.lines().any(|l| l.trim() == target) {
            run(Command::new("rustup").args(["target", "add", target]))?;
        }
    }
    Ok(())
}

/// Shared test data (CLINC150, Wycheproof) lives beside the checkout, as in CI.
fn test_data_dir() -> PathBuf {
    env::var_os("EINDR_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data"))
}

/// The main local run: the worker on workerd (`wrangler dev`) on 127.0.0.1 with local,
/// persisted state, a development secret in `.dev.vars`, and a ready-to-paste curl.
fn dev() -> Result<(), String> {
    build_worker()?;
    let root = root();
    let dev_vars = root.join(".dev.vars");
    let secret = match std::fs::read_to_string(&dev_vars) {
        Ok(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("JWT_HS256_SECRET="))
            .map(|v| v.trim_matches('"').to_owned())
            .ok_or(".dev.vars has no JWT_HS256_SECRET")?,
        Err(_) => {
            let mut raw = [0u8; 32];
            use std::io::Read;
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut raw))
                .map_err(|e| format!("/dev/urandom: {e}"))?;
            let secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(&dev_vars, format!("JWT_HS256_SECRET=\"{secret}\"\n"))
                .map_err(|e| e.to_string())?;
            secret
        }
    };
    let token = output(
        cargo()
            .args([
                "run",
                "--quiet",
                "-p",
                "edge-dev",
                "--",
                "--mint-token",
                "dev-user",
            ])
            .env("JWT_HS256_SECRET", &secret),
    )?;
    println!(
        "\ndevelopment token for `dev-user` (12 h):\n  curl -s http://127.0.0.1:8787/api/chat/respond \\\n    -H 'authorization: Bearer {}' -H 'content-type: application/json' \\\n    -d '{{\"message\":\"Remind me\",\"context\":{{\"intent\":\"create_reminder\",\"processing_result\":{{\"success\":true,\"data\":{{\"title\":\"meeting\",\"time\":\"14:00\"}}}}}}}}'\n",
        token.trim()
    );
    run(Command::new(root.join("node_modules/.bin/wrangler"))
        .current_dir(&root)
        .args([
            "dev",
            "--ip",
            "127.0.0.1",
            "--port",
            "8787",
            "--persist-to",
            ".wrangler/state",
        ]))
}

fn dev_native(extra: &[String]) -> Result<(), String> {
    run(cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "edge-dev",
            "--",
            "--dev",
        ])
        .args(extra))
}

fn test() -> Result<(), String> {
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
    build_worker()?;
    let data = test_data_dir();
    if !data.is_dir() {
        return Err(format!(
            "test data not found at {} (set EINDR_TEST_DATA)",
            data.display()
        ));
    }
    run_tests(
        cargo()
            .args(["test", "--workspace", "--no-fail-fast"])
            .env("EINDR_TEST_DATA", &data),
    )
}

/// Runs a test command, passing its output through, and closes with one summary line over
/// all its test binaries (cargo prints one `test result:` line per binary).
fn run_tests(cmd: &mut Command) -> Result<(), String> {
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
fn check_core_is_platform_free() -> Result<(), String> {
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

/// Versions of the Cloudflare build tools; wasm-bindgen-cli must equal the `wasm-bindgen`
/// pinned in edge/cloudflare/Cargo.toml.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
const WORKER_BUILD_VERSION: &str = "0.8.7";

fn cargo_bin(name: &str) -> PathBuf {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    home.join("bin").join(name)
}

/// `cargo install` a tool unless that exact version is already there.
fn ensure_cargo_tool(krate: &str, bin: &str, version: &str) -> Result<(), String> {
    let installed = Command::new(cargo_bin(bin))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if installed.split_whitespace().any(|w| w == version) {
        return Ok(());
    }
    // No --locked: wasm-bindgen-cli's lock file pins a crate the registry no longer serves.
    run(cargo().args(["install", krate, "--version", version]))
}

/// `npm ci` when node_modules does not match package-lock.json.
fn ensure_npm_tools() -> Result<(), String> {
    let root = root();
    let lock = root.join("package-lock.json");
    let installed = root.join("node_modules/.package-lock.json");
    let fresh = match (std::fs::read(&lock), std::fs::read(&installed)) {
        (Ok(_), Ok(_)) => {
            let want = std::fs::metadata(&lock).and_then(|m| m.modified()).ok();
            let have = std::fs::metadata(&installed)
                .and_then(|m| m.modified())
                .ok();
            want.is_some() && have >= want
        }
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    run(Command::new("npm")
        .current_dir(&root)
        .args(["ci", "--no-audit", "--no-fund"]))
}

/// Builds the Cloudflare worker with worker-build, taking wasm-bindgen, wasm-opt and esbuild
/// from registries (crates.io, npm) instead of its GitHub downloads; prints its size.
fn build_worker() -> Result<(), String> {
    ensure_wasm_targets()?;
    ensure_cargo_tool("wasm-bindgen-cli", "wasm-bindgen", WASM_BINDGEN_VERSION)?;
    ensure_cargo_tool("worker-build", "worker-build", WORKER_BUILD_VERSION)?;
    ensure_npm_tools()?;
    let root = root();
    let bin = root.join("node_modules/.bin");
    run(Command::new(cargo_bin("worker-build"))
        .current_dir(root.join("edge/cloudflare"))
        .arg("--release")
        .env("WASM_BINDGEN_BIN", cargo_bin("wasm-bindgen"))
        .env("WASM_OPT_BIN", bin.join("wasm-opt"))
        .env("ESBUILD_BIN", bin.join("esbuild")))?;
    let wasm = root.join("edge/cloudflare/build/index_bg.wasm");
    let bytes = std::fs::read(&wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    let gzip = output(
        Command::new("sh").args(["-c", &format!("gzip -9 -c '{}' | wc -c", wasm.display())]),
    )?;
    println!(
        "worker size: {} bytes raw, {} bytes gzip (Free plan limit 3 MB gzip, target 1 MB)",
        bytes.len(),
        gzip.trim()
    );
    Ok(())
}

fn bench() -> Result<(), String> {
    run(cargo().args(["bench", "-p", "edge-core", "--bench", "respond"]))
}

/// The load benchmark of a deployed build on its local runtime (wrk on loopback).
fn bench_edge(extra: &[String]) -> Result<(), String> {
    ensure_wrk()?;
    if extra.first().is_none_or(|r| r == "workerd") {
        build_worker()?;
    }
    run(cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "e2e",
            "--bin",
            "edge_load",
            "--",
        ])
        .args(extra))
}

/// wrk comes from Debian's packages; installed once.
fn ensure_wrk() -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    run(Command::new("apt-get").args(["install", "-y", "wrk"]))
}
