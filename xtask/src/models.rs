//! The models the tests and benchmarks use, made by the project's own scripts (weights can't
//! be downloaded here), rebuilt when a script or its input changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{root, run, stale};

/// The tiny random BLOOM for the vLLM tests (deterministic; rebuilt when the script changes).
pub(crate) fn ensure_tiny_model(python: &Path, data: &Path) -> Result<PathBuf, String> {
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

/// The tiny model's ONNX export for the CPU engine, with transformers' goldens
/// (rebuilt when the export script or the model changes).
pub(crate) fn ensure_tiny_onnx(python: &Path, model: &Path) -> Result<PathBuf, String> {
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
