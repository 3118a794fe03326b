//! docs/configuration.md against the code: every variable the product's code reads is in the
//! table, and every variable in the table is read by some code. The code is read as text:
//! a string literal in UPPER_SNAKE case right after one of the ways our code reads a
//! variable (clap's `env = `, the edge's `raw(`, `parse(`, `flag(`, `required(`, the
//! platforms' `var(`, `var_os(`, `lookup(`), plus `RUST_LOG` where tracing's env filter reads it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

/// The product's sources (tests, benchmarks and tools read their own variables).
const SOURCES: [&str; 7] = [
    "contract/src",
    "edge/core/src",
    "edge/cloudflare/src",
    "edge/spin/src",
    "edge/server/src",
    "gpu-backend/src",
    "gpu-backend/kernels/src",
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

/// Every variable the product's code reads.
fn read_by_code() -> BTreeSet<String> {
    let root = e2e::repo_root();
    let mut files = Vec::new();
    for dir in SOURCES {
        rust_files(&root.join(dir), &mut files);
    }
    let mut read = BTreeSet::new();
    for file in &files {
        read.extend(read_in(&std::fs::read_to_string(file).unwrap()));
    }
    read
}

#[test]
fn the_configuration_table_lists_exactly_what_the_code_reads() {
    let root = e2e::repo_root();
    let read = read_by_code();
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

/// What a YAML document sets as variables: `environment` maps and lists (compose), `env`
/// entries (Kubernetes containers), ConfigMap and Secret keys, SpinApp variables (Spin's
/// lower-case names, upper-cased to the operators' names).
fn variables_set_in(yaml: &yaml_rust2::Yaml, out: &mut BTreeSet<String>) {
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Hash(map) => {
            let kind = map.get(&Yaml::from_str("kind")).and_then(Yaml::as_str);
            for (key, value) in map {
                let key = key.as_str().unwrap_or("");
                match (key, value) {
                    ("environment", Yaml::Hash(vars)) => {
                        out.extend(vars.keys().filter_map(Yaml::as_str).map(str::to_owned));
                    }
                    ("environment", Yaml::Array(vars)) => out.extend(
                        vars.iter()
                            .filter_map(Yaml::as_str)
                            .map(|v| v.split('=').next().unwrap_or(v).to_owned()),
                    ),
                    ("env", Yaml::Array(vars)) => out.extend(
                        vars.iter()
                            .filter_map(|v| v["name"].as_str())
                            .map(str::to_owned),
                    ),
                    ("data" | "stringData", Yaml::Hash(vars))
                        if matches!(kind, Some("ConfigMap" | "Secret")) =>
                    {
                        out.extend(vars.keys().filter_map(Yaml::as_str).map(str::to_owned));
                    }
                    ("variables", Yaml::Array(vars)) => out.extend(
                        vars.iter()
                            .filter_map(|v| v["name"].as_str())
                            .map(str::to_ascii_uppercase),
                    ),
                    _ => {}
                }
                variables_set_in(value, out);
            }
        }
        Yaml::Array(items) => items.iter().for_each(|item| variables_set_in(item, out)),
        _ => {}
    }
}

/// `${NAME}`, `${NAME:-default}`, `$(NAME)`: variables a file reads from its surroundings.
fn interpolated(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for opener in ["${", "$("] {
        for piece in text.split(opener).skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if is_variable_name(&name) {
                names.insert(name);
            }
        }
    }
    names
}

/// Names a Dockerfile's `ENV` lines set (with their continuation lines).
fn dockerfile_env(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_env = false;
    for line in text.lines() {
        let line = line.trim();
        let rest = match line.strip_prefix("ENV ") {
            Some(rest) => rest,
            None if in_env => line,
            None => continue,
        };
        in_env = line.ends_with('\\');
        names.extend(
            rest.split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(name, _)| name.to_owned()),
        );
    }
    names
}

/// Read by vLLM's own image, which compose and Kubernetes configure too.
const READ_BY_VLLM: [&str; 3] = ["VLLM_CPU_KVCACHE_SPACE", "HF_HUB_OFFLINE", "HF_HOME"];

#[test]
fn compose_kubernetes_and_images_set_only_variables_the_code_reads() {
    let root = e2e::repo_root();
    let mut allowed = read_by_code();
    allowed.extend(READ_BY_VLLM.iter().map(|s| (*s).to_owned()));
    let mut files: Vec<std::path::PathBuf> = vec![root.join("compose.yaml")];
    let mut manifests: Vec<_> = std::fs::read_dir(root.join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 4, "{manifests:?}");
    files.extend(manifests);
    let mut documents = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let docs = yaml_rust2::YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut set = BTreeSet::new();
        for doc in &docs {
            variables_set_in(doc, &mut set);
        }
        set.extend(interpolated(&text));
        let unknown: Vec<_> = set.difference(&allowed).collect();
        assert!(
            unknown.is_empty(),
            "{} sets variables no code reads: {unknown:?}",
            file.display()
        );
        documents.push((file.clone(), text, docs));
    }
    for dockerfile in ["deploy/edge.Dockerfile", "deploy/gpu-backend.Dockerfile"] {
        let text = std::fs::read_to_string(root.join(dockerfile)).unwrap();
        let set = dockerfile_env(&text);
        assert!(!set.is_empty(), "{dockerfile}: no ENV read");
        let unknown: Vec<_> = set.difference(&allowed).collect();
        assert!(unknown.is_empty(), "{dockerfile}: {unknown:?}");
        assert!(
            text.contains("USER 65534") && text.contains("HEALTHCHECK"),
            "{dockerfile}"
        );
    }

    // compose: the seed's vLLM settings by their names, a GPU reservation, a cpu profile,
    // a healthcheck on every service, and the edge waiting on healthy dependencies.
    let (_, compose_text, compose) = &documents[0];
    for name in [
        "VLLM_MAX_MODEL_LEN",
        "VLLM_GPU_MEMORY_UTILIZATION",
        "VLLM_TENSOR_PARALLEL_SIZE",
    ] {
        assert!(
            compose_text.contains(name),
            "compose.yaml does not pass {name}"
        );
    }
    let services = &compose[0]["services"];
    let device = &services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0];
    assert_eq!(device["driver"].as_str(), Some("nvidia"));
    assert_eq!(device["capabilities"][0].as_str(), Some("gpu"));
    assert_eq!(
        services["gpu-backend-cpu"]["profiles"][0].as_str(),
        Some("cpu")
    );
    for (name, service) in services.as_hash().unwrap() {
        let name = name.as_str().unwrap();
        let has_check = !service["healthcheck"]["test"].is_badvalue()
            || !compose[0]["x-backend"]["healthcheck"]["test"].is_badvalue();
        assert!(has_check, "compose service {name} has no healthcheck");
    }
    assert_eq!(
        services["edge"]["depends_on"]["redis"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert_eq!(
        services["edge"]["environment"]["STORE_URL"].as_str(),
        Some("redis://redis:6379")
    );

    // Kubernetes: two edge replicas at least, ready on /ready, autoscaled; a GPU for vLLM.
    let all: Vec<&yaml_rust2::Yaml> = documents[1..]
        .iter()
        .flat_map(|(_, _, docs)| docs.iter())
        .collect();
    let find = |kind: &str, name: &str| {
        *all.iter()
            .find(|d| {
                d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let edge = find("Deployment", "eindr-edge");
    assert!(edge["spec"]["replicas"].as_i64().unwrap() >= 2);
    let container = &edge["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/ready")
    );
    assert!(
        find("HorizontalPodAutoscaler", "eindr-edge")["spec"]["minReplicas"]
            .as_i64()
            .unwrap()
            >= 2
    );
    let backend = find("Deployment", "gpu-backend");
    let vllm = &backend["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        vllm["resources"]["limits"]["nvidia.com/gpu"].as_i64(),
        Some(1)
    );
    assert_eq!(
        find("SpinApp", "eindr-edge-spin")["spec"]["executor"].as_str(),
        Some("containerd-shim-spin")
    );
}
