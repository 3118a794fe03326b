//! The edge's container image, built by `cargo xtask test` when Debian's podman is installed:
//! a static musl `eindr-edge` in `deploy/edge.Dockerfile` (`FROM scratch`), then the image's
//! filesystem exported and its configuration saved, for `tests/tests/image.rs` to run its
//! entrypoint from there (`podman run` is refused in this sandbox; see DESIGN.md).

use std::path::PathBuf;
use std::process::Command;

use crate::cmd::{cargo, output, root, run, target_dir};
use crate::tools::ensure_rust_targets;

const MUSL: &str = "x86_64-unknown-linux-musl";
const TAG: &str = "localhost/eindr-chat/eindr-edge:e2e";

/// Builds the image and exports it; the folder holding `rootfs/` and `image.json`, or `None`
/// (saying so) without podman.
pub(crate) fn build_edge_image() -> Result<Option<PathBuf>, String> {
    if Command::new("podman").arg("--version").output().is_err() {
        println!("xtask: podman is not installed: the image test is skipped");
        return Ok(None);
    }
    ensure_rust_targets(&[MUSL])?;
    // ring's C code needs a musl C compiler.
    if Command::new("musl-gcc").arg("--version").output().is_err() {
        run(Command::new("apt-get").args(["install", "-y", "-qq", "musl-tools"]))?;
    }
    // The `image` profile: a release build without fat LTO (Cargo.toml says why).
    run(cargo().args([
        "build",
        "--profile",
        "image",
        "--target",
        MUSL,
        "-p",
        "edge-server",
    ]))?;
    let out = target_dir().join("e2e-image");
    let context = out.join("context");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&context).map_err(|e| e.to_string())?;
    let binary = target_dir().join(MUSL).join("image/eindr-edge");
    std::fs::copy(&binary, context.join("eindr-edge"))
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    // `--format docker`: podman's default OCI format drops HEALTHCHECK.
    run(Command::new("podman")
        .args(["build", "--quiet", "--format", "docker", "--build-arg"])
        .arg("BINARY=eindr-edge")
        .arg("-f")
        .arg(root().join("deploy/edge.Dockerfile"))
        .args(["-t", TAG])
        .arg(&context))?;
    let size =
        output(Command::new("podman").args(["image", "inspect", "--format", "{{.Size}}", TAG]))?;
    println!("edge image size: {} bytes (target 20 MB)", size.trim());
    let inspect = output(Command::new("podman").args(["image", "inspect", TAG]))?;
    std::fs::write(out.join("image.json"), inspect).map_err(|e| e.to_string())?;
    let container = output(Command::new("podman").args(["create", TAG]))?;
    let container = container.trim();
    let tar = out.join("rootfs.tar");
    let exported = run(Command::new("podman")
        .args(["export", "-o"])
        .arg(&tar)
        .arg(container));
    run(Command::new("podman").args(["rm", container]))?;
    exported?;
    let rootfs = out.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| e.to_string())?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&rootfs))?;
    Ok(Some(out))
}
