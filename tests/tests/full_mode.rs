//! Full mode over the whole chain on real parts: the edge (the worker on workerd, and the
//! Spin component on the Spin test host) → gpu-backend → the real vLLM server (tiny random
//! BLOOM). Then every fault: a slow, garbled or cut-off backend, vLLM stopped, gpu-backend
//! stopped. Every turn must get a 200 with a reply, and history must hold what was sent. And
//! the cache of model answers on both: filled by the model, answering without it, never
//! keeping a personal or cut answer, and standing in when gpu-backend is gone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use e2e::Runtime;
use e2e::backend_api::{Api, sse_data};
use e2e::client::{Answer, Client};
use e2e::faulty::{CUT_PREFIX, Fault, FaultyBackend, PACED_ANSWER};
use e2e::local::{Launcher, LocalRuntime};
use e2e::openai_spec;
use e2e::vllm::{Backend, MAX_MODEL_LEN, MODEL, Vllm, wait_healthy};
use serde_json::json;

const LAUNCHERS: [Launcher; 2] = [Launcher::Miniflare, Launcher::SpinHost];

fn full_mode_vars(backend_url: &str, key: &str, first_token_ms: &str) -> Vec<(String, String)> {
    [
        ("MINIMAL_MODE", "false"),
        ("BACKEND_URL", backend_url),
        ("BACKEND_API_KEY", key),
        ("BACKEND_FIRST_TOKEN_TIMEOUT_MS", first_token_ms),
        // The breaker is tested in the core; here every turn should reach the backend.
        ("BACKEND_BREAKER_FAILURES", "1000"),
        // The random model says words only when sampled hot; the edge would lower it otherwise.
        ("CHAT_TEMPERATURE", "2.0"),
        ("CHAT_MAX_TOKENS", "16"),
        ("CHAT_MODEL_NAME", MODEL),
        ("VLLM_MAX_MODEL_LEN", &MAX_MODEL_LEN.to_string()),
        ("RATE_LIMIT_PER_MINUTE", "6000"),
        ("RATE_LIMIT_BURST", "1000"),
        // The load phase counts every turn in history.
        ("HISTORY_MAX_TURNS", "10000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn start_edge(launcher: Launcher, name: &str, vars: &[(String, String)]) -> (LocalRuntime, Client) {
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let edge = LocalRuntime::start(launcher, name, &refs);
    let client = Client::new(&edge.base_url(), edge.secret());
    (edge, client)
}

/// One turn; checks the envelope and that history's last reply is what the user got.
fn turn(client: &Client, user: &str, message: &str, what: &str) -> Answer {
    let answer = client.respond(user, json!({"message": message}));
    assert_eq!(answer.status, 200, "{what}: {}", answer.body);
    let text = answer.body["response"].as_str().unwrap_or("");
    assert!(
        !text.trim().is_empty(),
        "{what}: empty reply {}",
        answer.body
    );
    let last = last_message(client, user);
    assert_eq!(last["role"], "assistant", "{what}");
    assert_eq!(
        last["content"], answer.body["response"],
        "{what}: history differs"
    );
    answer
}

fn fell_back(answer: &Answer, what: &str) {
    assert_eq!(
        answer.body["fallback_used"], true,
        "{what}: {}",
        answer.body
    );
}

/// The newest message in `user`'s history.
fn last_message(client: &Client, user: &str) -> serde_json::Value {
    let history = client.get(&format!("/api/chat/history/{user}"), &client.token(user));
    let messages = history.body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{user}: history {} {}", history.status, history.body));
    messages.last().unwrap().clone()
}

/// Cached answers in `serve` mode with pools of `pool_size`.
fn with_cache(mut vars: Vec<(String, String)>, pool_size: &str) -> Vec<(String, String)> {
    vars.push(("CACHE_MODE".into(), "serve".into()));
    vars.push(("CACHE_POOL_SIZE".into(), pool_size.into()));
    vars
}

fn x_cache(answer: &Answer) -> &str {
    answer.header("x-cache").unwrap_or("none")
}

/// A turn with extra request headers (`Cache-Control`).
fn turn_with(client: &Client, user: &str, message: &str, headers: &[(&str, &str)]) -> Answer {
    let token = format!("Bearer {}", client.token(user));
    let mut all = vec![
        ("authorization", token.as_str()),
        ("content-type", "application/json"),
    ];
    all.extend_from_slice(headers);
    let body = json!({ "message": message }).to_string().into_bytes();
    let answer = client.send_with("POST", "/api/chat/respond", &all, Some(body));
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
}

/// The cache on the real chain (pools of 2): a history-free question's pool fills from the
/// tiny model, then answers without gpu-backend, another phrasing of it too (one pool per
/// small-talk intent); an out-of-scope question is not answered from it; a turn with history,
/// or with `no-cache`, goes to gpu-backend. Leaves one model answer cached for "tell me a joke", for the check
/// with gpu-backend stopped.
fn cached_answers_from_the_model(client: &Client, backend: &Backend, name: &str) {
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        format!("cache-{name}-{n}")
    };
    // The random model sometimes says nothing usable (then the edge answers itself and
    // nothing is kept), and a pool takes at most one answer a second.
    let mut filled = false;
    for _ in 0..20 {
        let answer = turn(client, &fresh(), "hello there", name);
        match x_cache(&answer) {
            "HIT" => {
                filled = true;
                break;
            }
            "MISS" => std::thread::sleep(Duration::from_millis(1_100)),
            other => panic!("{name}: x-cache {other} for a first turn: {}", answer.body),
        }
    }
    assert!(filled, "{name}: the pool never filled");
    let before = Api::new(backend).chat_requests();
    for _ in 0..3 {
        let answer = turn(client, &fresh(), "Hello there!", name);
        assert_eq!(x_cache(&answer), "HIT", "{name}: {}", answer.body);
        assert_eq!(answer.body["cached"], true, "{name}");
        assert_eq!(answer.body["fallback_used"], false, "{name}");
        assert_eq!(
            answer.body["model_info"]["inference_engine"], "vLLM",
            "{name}"
        );
    }
    // Another phrasing of the same small talk: its intent's pool.
    let paraphrase = turn(client, &fresh(), "hey, how's it going", name);
    assert_eq!(x_cache(&paraphrase), "HIT", "{name}: {}", paraphrase.body);
    assert_eq!(paraphrase.header("x-cache-key"), Some("intent"), "{name}");
    assert_eq!(
        Api::new(backend).chat_requests(),
        before,
        "{name}: a hit called gpu-backend"
    );
    // The same user again: the prompt holds history now.
    let user = fresh();
    assert_eq!(x_cache(&turn(client, &user, "hello there", name)), "HIT");
    let again = turn(client, &user, "hello there", name);
    assert_eq!(x_cache(&again), "BYPASS", "{name}");
    assert_eq!(again.body["cached"], false, "{name}");
    let no_cache = turn_with(
        client,
        &fresh(),
        "hello there",
        &[("cache-control", "no-cache")],
    );
    assert_eq!(x_cache(&no_cache), "BYPASS", "{name}");
    assert_eq!(
        Api::new(backend).chat_requests(),
        before + 2,
        "{name}: history and no-cache turns go to gpu-backend"
    );
    // Out of scope: its own words' pool, never the greetings'.
    let moons = turn(client, &fresh(), "how many moons does jupiter have", name);
    assert_eq!(x_cache(&moons), "MISS", "{name}: {}", moons.body);
    assert_eq!(moons.header("x-cache-key"), Some("exact"), "{name}");
    assert_ne!(moons.body["intent"], "greeting", "{name}");
    for _ in 0..10 {
        let answer = turn(client, &fresh(), "tell me a joke", name);
        assert_eq!(x_cache(&answer), "MISS", "{name}");
        if answer.body["fallback_used"] == false {
            return;
        }
    }
    panic!("{name}: the model never answered \"tell me a joke\"");
}

/// On a backend whose answers are known (pools of 1): a cut answer and a `no-store` one are
/// not kept, the next is, and then answers without the backend; `no-cache` goes to it.
fn cut_and_private_answers_are_not_kept(client: &Client, faulty: &FaultyBackend, name: &str) {
    let ask = |user: &str, headers: &[(&str, &str)]| {
        turn_with(
            client,
            &format!("{user}-{name}"),
            "how is the weather?",
            headers,
        )
    };
    faulty.set(Fault::CutAfterTokens);
    let cut = ask("cut", &[]);
    assert_eq!(cut.body["fallback_used"], true, "{name}: {}", cut.body);
    faulty.set(Fault::Paced(Duration::from_millis(1)));
    let private = ask("private", &[("cache-control", "no-store")]);
    assert_eq!(private.body["response"], PACED_ANSWER, "{name}");
    let kept = ask("kept", &[]);
    assert_eq!(
        x_cache(&kept),
        "MISS",
        "{name}: a cut or no-store answer was kept"
    );
    let before = faulty.requests();
    let hit = ask("hit", &[]);
    assert_eq!(x_cache(&hit), "HIT", "{name}: {}", hit.body);
    assert_eq!(hit.body["response"], PACED_ANSWER, "{name}");
    assert_eq!(
        faulty.requests(),
        before,
        "{name}: a hit called the backend"
    );
    assert_eq!(
        x_cache(&ask("fresh", &[("cache-control", "no-cache")])),
        "BYPASS"
    );
    assert_eq!(faulty.requests(), before + 1, "{name}");
}

/// A streamed turn: deltas, a summary, `[DONE]`; history holds the deltas.
fn streamed_turn(edge: &LocalRuntime, client: &Client, user: &str, name: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent
        .post(&format!("{}/api/chat/respond", edge.base_url()))
        .header("authorization", &format!("Bearer {}", client.token(user)))
        .header("accept", "text/event-stream")
        .send_json(json!({"message": "say something, streaming"}))
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{name}");
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{name}: {content_type}"
    );
    let body = response.body_mut().read_to_string().unwrap();
    let frames = sse_data(&body);
    assert_eq!(
        frames.last().map(String::as_str),
        Some("[DONE]"),
        "{name}: {body}"
    );
    let summary: serde_json::Value = serde_json::from_str(&frames[frames.len() - 2]).unwrap();
    let parsed: Vec<serde_json::Value> = frames[..frames.len() - 2]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    let text: String = parsed.iter().filter_map(|f| f["delta"].as_str()).collect();
    // The sentences for speech, each sent as it ended: the same text.
    let sentences: String = parsed
        .iter()
        .filter_map(|f| f["sentence"].as_str())
        .collect();
    assert_eq!(summary["done"], true, "{name}");
    assert_eq!(summary["response"].as_str().unwrap(), text.trim(), "{name}");
    assert_eq!(sentences.trim(), text.trim(), "{name}: {body}");
    let last = last_message(client, user);
    assert_eq!(last["content"], summary["response"], "{name}");
    if summary["fallback_used"] == false {
        assert!(
            parsed.iter().filter(|f| f["delta"].is_string()).count() >= 2,
            "{name}: the model's tokens come as several deltas: {body}"
        );
    }
}

/// The `openai` Python SDK streaming a chat through the edge, the JWT as its API key.
/// Full-mode `/v1` answers against OpenAI's document: whole (with vLLM's token counts) and
/// streamed with `include_usage`.
fn openai_spec_full_mode(client: &Client, user: &str, name: &str) {
    let post = |body: serde_json::Value| {
        client.send(
            "POST",
            "/v1/chat/completions",
            Some(&client.token(user)),
            Some("application/json"),
            Some(body.to_string().into_bytes()),
        )
    };
    let messages = json!([{"role": "user", "content": "hello there"}]);
    let whole = post(json!({"model": MODEL, "messages": messages}));
    assert_eq!(whole.status, 200, "{name}: {}", whole.body);
    openai_spec::completion(&whole.body, name);
    if whole.body["fallback_used"] == false {
        assert!(
            whole.body["usage"]["completion_tokens"].as_u64().unwrap() > 0,
            "{name}: the model's counts: {}",
            whole.body
        );
    }
    let streamed = post(json!({"model": MODEL, "messages": messages, "stream": true,
        "stream_options": {"include_usage": true}}));
    assert_eq!(streamed.status, 200, "{name}");
    let frames = sse_data(streamed.body.as_str().unwrap_or(""));
    let chunks = openai_spec::stream(&frames, name);
    assert_eq!(chunks.last().unwrap()["choices"], json!([]), "{name}");
}

fn openai_sdk_turn(edge: &LocalRuntime, client: &Client, user: &str, name: &str) {
    let output = std::process::Command::new(e2e::vllm::python())
        .arg(e2e::repo_root().join("tests/scripts/openai_stream.py"))
        .arg(format!("{}/v1", edge.base_url()))
        .arg(client.token(user))
        .arg("hello from the SDK")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["model"], MODEL, "{name}");
    assert_eq!(result["finish_reason"], "stop", "{name}: {result}");
    assert!(
        !result["text"].as_str().unwrap().trim().is_empty(),
        "{name}: {result}"
    );
    let last = last_message(client, user);
    assert_eq!(
        last["content"].as_str().unwrap(),
        result["text"].as_str().unwrap().trim(),
        "{name}"
    );
}

/// Full-mode turns on every edge for over two minutes while gpu-backend is killed (at 40 s)
/// and started again (at 70 s): no 5xx, no lost turn, and vLLM answers again afterwards.
fn load_through_a_backend_restart(edges: &[(String, LocalRuntime, Client)], backend: &mut Backend) {
    const RUN: Duration = Duration::from_secs(125);
    const THREADS_PER_EDGE: usize = 3;
    const USERS_PER_THREAD: usize = 4;
    let started = Instant::now();
    let restarted_at = Duration::from_secs(70);
    let mut workers = Vec::new();
    for (name, _, client) in edges {
        for t in 0..THREADS_PER_EDGE {
            let client = client.clone();
            let users: Vec<String> = (0..USERS_PER_THREAD)
                .map(|u| format!("load-{name}-{t}-{u}"))
                .collect();
            workers.push(std::thread::spawn(move || {
                let mut ok = vec![0usize; users.len()];
                let mut failures = Vec::new();
                let mut by_vllm_after_restart = 0usize;
                let mut i = 0usize;
                while started.elapsed() < RUN {
                    let u = i % users.len();
                    i += 1;
                    let answer = client.respond(&users[u], json!({"message": format!("turn {i}")}));
                    if answer.status == 200 {
                        ok[u] += 1;
                        if started.elapsed() > restarted_at + Duration::from_secs(15)
                            && answer.body["model_info"]["inference_engine"] == "vLLM"
                        {
                            by_vllm_after_restart += 1;
                        }
                    } else {
                        failures.push(format!("{}: {}", answer.status, answer.body));
                    }
                }
                (client, users, ok, failures, by_vllm_after_restart)
            }));
        }
    }
    std::thread::sleep(Duration::from_secs(40));
    backend.process.kill();
    std::thread::sleep(restarted_at.saturating_sub(started.elapsed()));
    backend.restart();
    let mut turns = 0;
    let mut by_vllm_after_restart = 0;
    for worker in workers {
        let (client, users, ok, failures, after) = worker.join().unwrap();
        assert!(
            failures.is_empty(),
            "{} failed turns, e.g. {}",
            failures.len(),
            failures[0]
        );
        for (user, ok) in users.iter().zip(ok) {
            let history = client.get(&format!("/api/chat/history/{user}"), &client.token(user));
            assert_eq!(history.body["count"], 2 * ok, "{user}: turns lost");
            turns += ok;
        }
        by_vllm_after_restart += after;
    }
    println!(
        "load: {turns} turns in {:?} on {} edges, 0 failed, 0 lost; {by_vllm_after_restart} answered by vLLM after the restart",
        started.elapsed(),
        edges.len()
    );
    assert!(
        by_vllm_after_restart > 0,
        "vLLM never answered after gpu-backend came back"
    );
}

#[test]
fn full_mode_through_the_chain_and_every_fault_ends_in_a_reply() {
    let vllm = Vllm::start();
    let faulty = FaultyBackend::start(Fault::Garbage);
    vllm.wait();
    let mut backend = Backend::start(&[vllm.url()], &[]);
    wait_healthy(
        &format!("{}/health", backend.url()),
        Duration::from_secs(60),
        "gpu-backend",
    );
    let mut vllm = vllm;

    let mut edges = Vec::new();
    let mut cache_edges = Vec::new();
    for launcher in LAUNCHERS {
        let name = format!("{launcher:?}");
        // A generous budget: the first call also warms vLLM on a shared 2-core machine.
        let vars = full_mode_vars(&backend.url(), &backend.key, "20000");
        let (edge, client) = start_edge(launcher, &format!("full-{name}"), &vars);

        // Answers from the model. The random weights may sample nothing usable (gpu-backend
        // then says so and the edge answers itself), so of a few turns most must be vLLM's.
        let user = format!("full-{name}");
        let mut by_vllm = 0;
        for i in 0..4 {
            let answer = turn(
                &client,
                &user,
                &format!("tell me something nice, take {i}"),
                &name,
            );
            let engine = answer.body["model_info"]["inference_engine"]
                .as_str()
                .unwrap()
                .to_owned();
            if answer.body["fallback_used"] == false {
                assert_eq!(engine, "vLLM", "{name}: {}", answer.body);
                by_vllm += 1;
            } else {
                assert_eq!(engine, "minimal", "{name}: {}", answer.body);
            }
        }
        assert!(
            by_vllm >= 2,
            "{name}: only {by_vllm} of 4 turns answered by vLLM"
        );
        let history = client.get(&format!("/api/chat/history/{user}"), &client.token(&user));
        assert_eq!(history.body["count"], 8, "{name}");

        streamed_turn(&edge, &client, &user, &name);
        openai_sdk_turn(&edge, &client, &user, &name);
        openai_spec_full_mode(&client, &format!("spec-{user}"), &name);
        let history = client.get(&format!("/api/chat/history/{user}"), &client.token(&user));
        assert_eq!(history.body["count"], 12, "{name}");

        let health = client.get("/api/chat/health", &client.token(&user));
        assert_eq!(
            health.body["backend"]["reachable"], true,
            "{name}: {}",
            health.body
        );
        assert_eq!(health.body["inference_engine"], "vLLM", "{name}");
        let info = client.get("/api/chat/model-info", &client.token(&user));
        assert_eq!(info.body["inference_engine"], "vLLM", "{name}");

        // A backend that misbehaves in ways gpu-backend itself never does.
        let vars = with_cache(full_mode_vars(&faulty.url(), "unused", "1000"), "1");
        let (faulty_edge, faulty_client) = start_edge(launcher, &format!("faulty-{name}"), &vars);
        let user = format!("faults-{name}");
        faulty.set(Fault::SlowFirstToken(Duration::from_secs(4)));
        let started = Instant::now();
        let answer = turn(&faulty_client, &user, "hello?", &format!("{name} slow"));
        fell_back(&answer, "slow");
        assert!(
            started.elapsed() < Duration::from_millis(3500),
            "{name}: slow took {:?}",
            started.elapsed()
        );
        faulty.set(Fault::Garbage);
        fell_back(
            &turn(&faulty_client, &user, "hello?", &format!("{name} garbage")),
            "garbage",
        );
        faulty.set(Fault::CutAfterTokens);
        let answer = turn(
            &faulty_client,
            &user,
            "how is the weather?",
            &format!("{name} cut"),
        );
        fell_back(&answer, "cut");
        let text = answer.body["response"].as_str().unwrap();
        assert!(
            text.starts_with(CUT_PREFIX) && text.len() > CUT_PREFIX.len() + 10,
            "{name} cut: {text}"
        );
        cut_and_private_answers_are_not_kept(&faulty_client, &faulty, &name);
        drop(faulty_edge);

        let vars = with_cache(full_mode_vars(&backend.url(), &backend.key, "20000"), "2");
        let (cache_edge, cache_client) = start_edge(launcher, &format!("cache-{name}"), &vars);
        cached_answers_from_the_model(&cache_client, &backend, &name);
        cache_edges.push((name.clone(), cache_edge, cache_client));
        edges.push((name, edge, client));
    }

    load_through_a_backend_restart(&edges, &mut backend);

    // vLLM stopped: gpu-backend has no engine and says so; the edge answers itself.
    vllm.process.kill();
    for (name, _, client) in &edges {
        let answer = turn(
            client,
            &format!("down-{name}"),
            "are you there?",
            &format!("{name} vLLM down"),
        );
        fell_back(&answer, "vLLM down");
        assert_eq!(answer.body["model_info"]["inference_engine"], "minimal");
    }
    // gpu-backend stopped: unreachable.
    backend.process.kill();
    for (name, _, client) in &edges {
        let started = Instant::now();
        let answer = turn(
            client,
            &format!("down-{name}"),
            "still there?",
            &format!("{name} backend down"),
        );
        fell_back(&answer, "backend down");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: {:?}",
            started.elapsed()
        );
        let health = client.get("/api/chat/health", &client.token("down"));
        assert_eq!(
            health.body["backend"]["reachable"], false,
            "{name}: {}",
            health.body
        );
        assert_eq!(health.body["inference_engine"], "minimal", "{name}");
    }
    // gpu-backend stopped: a cached question still gets a model's answer, as a fallback; an
    // uncached one the rule reply.
    for (name, _, client) in &cache_edges {
        let answer = turn(client, &format!("gone-{name}"), "Tell me a joke.", name);
        assert_eq!(answer.body["cached"], true, "{name}: {}", answer.body);
        assert_eq!(answer.body["fallback_used"], true, "{name}");
        assert_eq!(
            answer.body["model_info"]["inference_engine"], "vLLM",
            "{name}"
        );
        let answer = turn(
            client,
            &format!("gone-2-{name}"),
            "what is the capital of peru",
            name,
        );
        assert_eq!(answer.body["cached"], false, "{name}: {}", answer.body);
        assert_eq!(answer.body["fallback_used"], true, "{name}");
        assert_eq!(
            answer.body["model_info"]["inference_engine"], "minimal",
            "{name}"
        );
    }
}
