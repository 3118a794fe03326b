//! docs/configuration.md against the code: every variable the product's code reads is in the
//! table, and every variable in the table is read by some code. The code is read as text:
//! a string literal in UPPER_SNAKE case right after one of the ways our code reads a
//! variable (clap's `env = `, the edge's `raw(`, `parse(`, `flag(`, `required(`, the
//! platforms' `var(`, `var_os(`, `lookup(`), plus `RUST_LOG` where tracing's env filter reads it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

/// The product's sources (tests, benchmarks and tools read their own variables).
const SOURCES: [&str; 6] = [
    "contract/src",
    "edge/core/src",
    "edge/cloudflare/src",
    "edge/spin/src",
    "edge/server/src",
    "gpu-backend/src",
];

/// What stands right before a variable's name where our code reads one.
const READERS: [&str; 9] = [
    "env=",
    "raw(",
    "required(",
    "flag(",
    "parse(",
    "parse::<f64>(",
    "var(",
    "var_os(",
    "lookup(",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // gpu-backend's benchmark binaries are not the product.
            if path.file_name().is_some_and(|n| n == "bin") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_variable_name(text: &str) -> bool {
    text.len() >= 3
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The variables one source file reads.
fn read_in(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    if source.contains("from_default_env") {
        found.insert("RUST_LOG".to_owned());
    }
    let mut rest = source;
    let mut before = String::new();
    while let Some(start) = rest.find('"') {
        before.extend(rest[..start].chars().filter(|c| !c.is_whitespace()));
        let after = &rest[start + 1..];
        let Some(end) = after.find('"') else { break };
        let literal = &after[..end];
        if is_variable_name(literal) && READERS.iter().any(|r| before.ends_with(r)) {
            found.insert(literal.to_owned());
        }
        before.push('"');
        before.push_str(literal);
        before.push('"');
        // Only the last few characters matter; keep the buffer small.
        if before.len() > 64 {
            let keep = before.char_indices().rev().nth(31).map_or(0, |(i, _)| i);
            before = before[keep..].to_owned();
        }
        rest = &after[end + 1..];
    }
    found
}

fn documented(table: &str) -> BTreeSet<String> {
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_configuration_table_lists_exactly_what_the_code_reads() {
    let root = e2e::repo_root();
    let mut files = Vec::new();
    for dir in SOURCES {
        rust_files(&root.join(dir), &mut files);
    }
    let mut read = BTreeSet::new();
    for file in &files {
        read.extend(read_in(&std::fs::read_to_string(file).unwrap()));
    }
    let table = documented(&std::fs::read_to_string(root.join("docs/configuration.md")).unwrap());
    // The scan itself must see the variables everyone knows are read.
    for known in [
        "MINIMAL_MODE",
        "VLLM_SERVER_URL",
        "CHAT_TOP_K",
        "EDGE_BENCH_ROUTES",
    ] {
        assert!(read.contains(known), "the scan missed {known}: {read:?}");
    }
    let missing: Vec<_> = read.difference(&table).collect();
    let unread: Vec<_> = table.difference(&read).collect();
    assert!(
        missing.is_empty(),
        "read by the code but not in docs/configuration.md: {missing:?}"
    );
    assert!(
        unread.is_empty(),
        "in docs/configuration.md but read by no code: {unread:?}"
    );
}

#[test]
fn the_scan_finds_each_way_of_reading_a_variable() {
    let source = r#"
        #[arg(long, env = "A_FLAG", default_value_t = 1)]
        let x = v.parse(
            "PARSED_ONE",
            3,
        );
        let y = v.parse::<f64>("FRACTION", 1.0);
        let z = std::env::var_os("FROM_ENV");
        env.var("ON_WORKERS");
        lookup("ON_SPIN");
        let not_read = ("NOT_A_READ", "value");
        tracing_subscriber::EnvFilter::try_from_default_env();
    "#;
    let found: Vec<String> = read_in(source).into_iter().collect();
    assert_eq!(
        found,
        [
            "A_FLAG",
            "FRACTION",
            "FROM_ENV",
            "ON_SPIN",
            "ON_WORKERS",
            "PARSED_ONE",
            "RUST_LOG"
        ]
    );
}
