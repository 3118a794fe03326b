//! Local runs: the worker on workerd, the Spin component, the native server, full mode.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use crate::builds::{build_spin, build_worker};
use crate::cmd::{cargo, cargo_run_release, output, root, run, target_dir, test_data_dir};
use crate::models::ensure_tiny_model;
use crate::tools::ensure_vllm;

/// The main local run: the worker on workerd (`wrangler dev`) on 127.0.0.1 with local,
/// persisted state, a development secret in `.dev.vars`, and a ready-to-paste curl.
pub(crate) fn dev() -> Result<(), String> {
    build_worker()?;
    let secret = dev_secret()?;
    let token = dev_token(&secret)?;
    print_dev_curl(8787, &token);
    run(&mut wrangler_dev())
}

/// `wrangler dev` on 127.0.0.1:8787 with state persisted under `.wrangler/state`.
pub(crate) fn wrangler_dev() -> Command {
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
pub(crate) fn dev_full() -> Result<(), String> {
    build_worker()?;
    run(cargo().args(["build", "--release", "-p", "gpu-backend"]))?;
    let python = ensure_vllm()?;
    // The CPU engine answers while vLLM boots, and whenever it is down, from the same
    // checkpoint (or CPU_MODEL_PATH's), at its default precision (q4).
    let (model, cpu_model, max_model_len, temperature) = match env::var_os("VLLM_MODEL_PATH") {
        Some(path) => (
            PathBuf::from(&path),
            Some(env::var_os("CPU_MODEL_PATH").map_or_else(|| PathBuf::from(&path), PathBuf::from)),
            "2048",
            "0.7",
        ),
        // The random weights say words only when sampled hot.
        None => {
            let tiny = ensure_tiny_model(&python, &test_data_dir())?;
            (tiny.clone(), Some(tiny), "512", "2.0")
        }
    };
    let secret = dev_secret()?;
    let backend_key = format!("dev-backend-{}", secret.get(..16).unwrap_or(&secret));
    let token = dev_token(&secret)?;
    let mut backend = Command::new(target_dir().join("release/gpu-backend"));
    if let Some(cpu_model) = &cpu_model {
        backend.env("CPU_MODEL_PATH", cpu_model);
    }
    backend
        .env("BACKEND_LISTEN", "127.0.0.1:8000")
        .env("BACKEND_API_KEY", &backend_key)
        .env("VLLM_AUTOSTART", "true")
        .env("VLLM_SERVER_PORT", "8001")
        .env("VLLM_SERVER_URL", "http://127.0.0.1:8001")
        .env("VLLM_MODEL_PATH", &model)
        .env("VLLM_PYTHON", &python)
        .env("VLLM_MAX_MODEL_LEN", max_model_len)
        .env("CHAT_TEMPERATURE", temperature)
        .env("HF_HUB_OFFLINE", "1");
    if !has_nvidia_gpu() {
        // vLLM's CPU build reads the utilisation as the share of RAM to reserve and refuses to
        // start when less is free, unless VLLM_CPU_KVCACHE_SPACE (GiB) sizes its KV cache.
        for (name, value) in cpu_vllm_settings() {
            if env::var_os(name).is_none() {
                println!("xtask: no GPU: {name}={value}");
                backend.env(name, value);
            }
        }
    }
    let mut backend = backend.spawn().map_err(|e| format!("gpu-backend: {e}"))?;
    println!(
        "
full mode: edge :8787 → gpu-backend :8000 → vLLM :8001 (vLLM takes a minute or two to start;
until then the CPU engine answers, or without one, turns fall back to minimal mode). Streaming:
  curl -N http://127.0.0.1:8787/api/chat/respond \\
    -H 'authorization: Bearer {token}' -H 'content-type: application/json' \\
    -H 'accept: text/event-stream' -d '{{\"message\":\"Tell me about the weather\"}}'
"
    );
    print_page_link(8787, &token);
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

fn has_nvidia_gpu() -> bool {
    Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// vLLM settings for a machine without a GPU: eager mode (no graph compilation), a 1 GiB KV
/// cache, and a memory share that fits what is free now (at most half, 10 points under the
/// free share), since vLLM's CPU build refuses to start otherwise.
fn cpu_vllm_settings() -> Vec<(&'static str, String)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |field: &str| -> Option<f64> {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    let share = match (kib("MemAvailable:"), kib("MemTotal:")) {
        (Some(free), Some(total)) if total > 0.0 => (free / total - 0.1).clamp(0.05, 0.5),
        _ => 0.5,
    };
    vec![
        ("VLLM_GPU_MEMORY_UTILIZATION", format!("{share:.2}")),
        ("VLLM_CPU_KVCACHE_SPACE", "1".to_owned()),
        ("VLLM_EXTRA_ARGS", "--enforce-eager".to_owned()),
    ]
}

/// The development HS256 secret in `.dev.vars` (wrangler reads it there), made on first use.
pub(crate) fn dev_secret() -> Result<String, String> {
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

/// A 12-hour token for `dev-user`, signed by eindr-edge with the development secret.
pub(crate) fn dev_token(secret: &str) -> Result<String, String> {
    mint_dev_token(secret, "dev-user", "chat")
}

fn mint_dev_token(secret: &str, user: &str, scope: &str) -> Result<String, String> {
    output(
        cargo()
            .args(["run", "--quiet", "-p", "edge-server", "--", "--mint-token"])
            .args([user, "--mint-scope", scope])
            .env("JWT_HS256_SECRET", secret),
    )
    .map(|t| t.trim().to_owned())
}

/// Fills the cache pools of a running edge from a file of questions
/// (`deploy/cache-warm-questions.txt` by default): `cargo xtask warm-cache [URL] [FILE]`. The
/// admin token is `EINDR_ADMIN_TOKEN`, else one minted with the development secret (for the
/// edge `cargo xtask dev-full` runs on 127.0.0.1:8787, the default URL).
pub(crate) fn warm_cache(extra: &[String]) -> Result<(), String> {
    let url = extra
        .first()
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8787".into());
    let file = extra.get(1).map_or_else(
        || root().join("deploy/cache-warm-questions.txt"),
        PathBuf::from,
    );
    let token = match env::var("EINDR_ADMIN_TOKEN") {
        Ok(token) => token,
        Err(_) => mint_dev_token(&dev_secret()?, "dev-admin", "chat chat:admin")?,
    };
    run(cargo_run_release("eindr-bench", &["--bin", "warm_cache"])
        .arg(&url)
        .arg(&file)
        .env("EINDR_ADMIN_TOKEN", token))
}

pub(crate) fn print_dev_curl(port: u16, token: &str) {
    println!(
        "\ndevelopment token for `dev-user` (12 h):\n  curl -s http://127.0.0.1:{port}/api/chat/respond \\\n    -H 'authorization: Bearer {token}' -H 'content-type: application/json' \\\n    -d '{{\"message\":\"Remind me\",\"context\":{{\"intent\":\"create_reminder\",\"processing_result\":{{\"success\":true,\"data\":{{\"title\":\"meeting\",\"time\":\"14:00\"}}}}}}}}'\n"
    );
    print_page_link(port, token);
}

/// The chat page, signed in. The token rides in the fragment, which browsers never send to a
/// server; the page moves it to the tab's sessionStorage and wipes it from the address bar.
pub(crate) fn print_page_link(port: u16, token: &str) {
    println!("chat page, signed in as `dev-user`:\n  http://127.0.0.1:{port}/#token={token}\n");
}

pub(crate) fn dev_native(extra: &[String]) -> Result<(), String> {
    run(cargo_run_release("edge-server", &[])
        .arg("--dev")
        .args(extra))
}

/// Runs the Spin component locally on the test host (Spin's interfaces emulated on
/// wasmtime), with the development secret of `.dev.vars`. The curl and the page link are
/// printed once the host answers `/health`: building the host takes minutes on a fresh
/// machine, and a curl pasted before then is refused.
pub(crate) fn dev_spin() -> Result<(), String> {
    build_spin()?;
    run(cargo().args(["build", "--quiet", "-p", "spin-test-host"]))?;
    let secret = dev_secret()?;
    let token = dev_token(&secret)?;
    let mut host = Command::new(target_dir().join("debug/spin-test-host"))
        .current_dir(root())
        .args([
            "--listen",
            "127.0.0.1:3000",
            "--kv-file",
            ".spin/sqlite_key_value.db",
        ])
        .arg("--variable")
        .arg(format!("jwt_hs256_secret={secret}"))
        .spawn()
        .map_err(|e| format!("spin-test-host: {e}"))?;
    if let Err(message) = wait_until_healthy(3000, std::time::Duration::from_secs(60)) {
        let _ = host.kill();
        return Err(message);
    }
    print_dev_curl(3000, &token);
    let status = host.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("spin-test-host: {status}"))
    }
}

/// Waits until `GET /health` on 127.0.0.1:`port` answers 200.
fn wait_until_healthy(port: u16, limit: std::time::Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let mut answer = String::new();
            let asked = stream
                .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .and_then(|()| stream.read_to_string(&mut answer));
            if asked.is_ok()
                && (answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"))
            {
                return Ok(());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Err(format!(
        "nothing answered GET /health on :{port} within {limit:?}"
    ))
}
