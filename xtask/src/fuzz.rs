//! `cargo xtask fuzz [seconds]`: every fuzz target in `fuzz/` (cargo-fuzz, libFuzzer with
//! AddressSanitizer, on a nightly toolchain installed here) for a bounded time each, seeded
//! with the committed corpus (`fuzz/corpus/<target>`; what a run adds stays in
//! `fuzz/target/corpus`). Prints executions and findings per target; a finding is saved under
//! `fuzz/artifacts/<target>/` and fails the command.

use std::process::Command;

use crate::cmd::{output, root, run};
use crate::tools::ensure_cargo_tool;

const TARGETS: [&str; 5] = [
    "jwt",
    "request_body",
    "backend_sse",
    "history_record",
    "pii",
];
const CARGO_FUZZ_VERSION: &str = "0.13.1";

pub(crate) fn fuzz(args: &[String]) -> Result<(), String> {
    let seconds: u64 = match args.first() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("seconds: {s:?} is not a number"))?,
        None => 60,
    };
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    ensure_cargo_tool("cargo-fuzz", "cargo-fuzz", CARGO_FUZZ_VERSION)?;
    let fuzz = root().join("fuzz");
    run(Command::new("cargo")
        .current_dir(root())
        .args(["+nightly", "fuzz", "build"]))?;
    let mut report = Vec::new();
    for target in TARGETS {
        let work = fuzz.join("target/corpus").join(target);
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("cargo");
        cmd.current_dir(root())
            .args(["+nightly", "fuzz", "run", target])
            .arg(&work)
            .arg(fuzz.join("corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1");
        println!("xtask: {cmd:?}");
        let out = cmd.output().map_err(|e| e.to_string())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let executions = text
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map_or_else(|| "?".to_owned(), |n| n.trim().to_owned());
        let findings = std::fs::read_dir(fuzz.join("artifacts").join(target))
            .map(|dir| dir.count())
            .unwrap_or(0);
        if !out.status.success() {
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            println!("{}", tail.join("\n"));
        }
        let line = format!(
            "fuzz {target}: {executions} executions in {seconds} s, {findings} finding(s){}",
            if out.status.success() {
                ""
            } else {
                " (the run failed: see above)"
            }
        );
        println!("{line}");
        report.push((line, out.status.success() && findings == 0));
    }
    println!("fuzz summary:");
    for (line, _) in &report {
        println!("  {line}");
    }
    if report.iter().all(|(_, clean)| *clean) {
        Ok(())
    } else {
        Err("fuzzing found something: see fuzz/artifacts/".into())
    }
}
