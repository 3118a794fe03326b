//! Running commands and finding the checkout's folders.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Cargo's output folder: `CARGO_TARGET_DIR` (CI keeps dependency builds there between
/// clones), else the checkout's `target/`.
pub(crate) fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// `cargo run --release --quiet -p PACKAGE [TARGET...] --`: arguments follow.
pub(crate) fn cargo_run_release(package: &str, target: &[&str]) -> Command {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--quiet", "-p", package])
        .args(target)
        .arg("--");
    cmd
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    println!("xtask: {shown}");
    let status = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

pub(crate) fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Shared test data (CLINC150, Wycheproof) lives beside the checkout, as in CI.
pub(crate) fn test_data_dir() -> PathBuf {
    env::var_os("EINDR_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data"))
}

pub(crate) fn cache_dir() -> PathBuf {
    env::var_os("EINDR_CACHE")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/eindr-chat")))
        .unwrap_or_else(|| root().join("target/cache"))
}

/// True when `out` is missing or older than any of `inputs`.
pub(crate) fn stale(out: &Path, inputs: &[&Path]) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(out) else {
        return true;
    };
    inputs
        .iter()
        .any(|input| modified(input).is_none_or(|m| m > built))
}
