//! The deployable builds: the Cloudflare worker and the Spin component, with their sizes.

use std::path::Path;
use std::process::Command;

use crate::cmd::{cargo, output, root, run, target_dir};
use crate::tools::{
    WASM_BINDGEN_VERSION, WORKER_BUILD_VERSION, cargo_bin, ensure_cargo_tool, ensure_npm_tools,
    ensure_wasm_targets,
};

/// Builds the Cloudflare worker with worker-build, taking wasm-bindgen, wasm-opt and esbuild
/// from registries (crates.io, npm) instead of its GitHub downloads; prints its size.
pub(crate) fn build_worker() -> Result<(), String> {
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
        "Free plan limit 3 MB gzip, target 2 MB with the intent model",
    )
}

/// Prints a build artifact's size, raw and gzip -9.
pub(crate) fn print_size(what: &str, path: &Path, limits: &str) -> Result<(), String> {
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
pub(crate) const WASM_TOOLS_VERSION: &str = "1.243.0";

/// Where spin.toml's `source` expects the component (cargo's default output path).
pub(crate) const SPIN_COMPONENT: &str = "target/wasm32-wasip2/release/edge_spin.wasm";

/// The imports a Spin 3.x/4.x host provides, in the vendored `wit/`.
pub(crate) const SPIN_WORLD: &str = "spin:up/platform@3.6.0";

/// Builds the Spin component (as `spin build` does), proves it imports only what Spin
/// provides, and prints its size.
pub(crate) fn build_spin() -> Result<(), String> {
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
        "no platform limit; target 2 MB with the intent model",
    )
}
