//! The checks every deployment must pass, written against a base URL.

use std::sync::{Arc, Barrier};
use std::thread;

use serde_json::json;

use crate::Runtime;
use crate::client::Client;
use crate::openai_spec;

fn client(rt: &dyn Runtime) -> Client {
    Client::new(&rt.base_url(), rt.secret())
}

/// Every endpoint answers with its documented shape.
pub fn endpoints(rt: &dyn Runtime) {
    eprintln!("suite: endpoints");
    let c = client(rt);
    let health = c.send("GET", "/health", None, None, None);
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");

    let user = "e2e-alice";
    let t = c.token(user);
    let r = c.respond(
        user,
        json!({"message": "remind me about the meeting",
               "context": {"intent": "create_reminder",
                           "processing_result": {"success": true, "data": {"title": "meeting", "time": "14:00"}}}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["context_used"], true);
    assert_eq!(r.body["fallback_used"], false);
    let text = r.body["response"].as_str().unwrap();
    assert!(
        text.contains("'meeting'") && text.contains("2 PM"),
        "{text}"
    );
    assert_eq!(r.body["model_info"]["inference_engine"], "minimal");
    assert!(r.header("ratelimit-limit").is_some());
    assert!(r.header("ratelimit-remaining").is_some());
    assert!(r.header("ratelimit-reset").is_some());
    assert!(r.header("x-request-id").is_some());

    let r = c.respond(user, json!({"message": "hello", "mode": "full"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["fallback_used"], true);

    let h = c.get(&format!("/api/chat/history/{user}"), &t);
    assert_eq!(h.status, 200);
    assert_eq!(h.body["count"], 4);
    assert_eq!(h.body["messages"][0]["role"], "user");
    assert_eq!(h.body["messages"][0]["intent"], "create_reminder");
    assert!(
        h.body["messages"][0]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let h = c.get(&format!("/api/chat/history/{user}?limit=1"), &t);
    assert_eq!(h.body["count"], 1);
    assert_eq!(h.body["messages"][0]["role"], "assistant");

    let s = c.get(&format!("/api/chat/summary/{user}"), &t);
    assert_eq!(s.status, 200);
    assert_eq!(s.body["message_count"], 4);
    assert_eq!(s.body["last_user_message"], "hello");

    let m = c.get("/api/chat/model-info", &t);
    assert_eq!(m.status, 200);
    assert_eq!(m.body["model_name"], "bigscience/bloom-560m");
    assert!(m.body["generation"]["temperature"].is_number());
    let ch = c.get("/api/chat/health", &t);
    assert_eq!(ch.status, 200);
    assert_eq!(ch.body["status"], "healthy");

    let d = c.delete(&format!("/api/chat/history/{user}"), &t);
    assert_eq!(d.status, 200);
    assert_eq!(d.body["deleted"], 4);
    assert_eq!(
        c.get(&format!("/api/chat/history/{user}"), &t).body["count"],
        0
    );
}

/// `/v1` as OpenAI's document describes it (minimal mode here; full mode in
/// tests/tests/full_mode.rs): a whole answer, a stream with `include_usage`, the model list and
/// each kind of error, every body valid against the document's schema.
pub fn openai_api(rt: &dyn Runtime) {
    eprintln!("suite: openai_api");
    let c = client(rt);
    let user = "e2e-openai";
    let token = c.token(user);
    let post = |body: serde_json::Value, token: &str| {
        c.send(
            "POST",
            "/v1/chat/completions",
            Some(token),
            Some("application/json"),
            Some(body.to_string().into_bytes()),
        )
    };
    let messages =
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]);
    let whole = post(
        json!({"model": "bigscience/bloom-560m", "messages": messages}),
        &token,
    );
    assert_eq!(whole.status, 200, "{}", whole.body);
    openai_spec::completion(&whole.body, "whole answer");
    assert_eq!(whole.body["usage"]["total_tokens"], 0, "no model ran");

    let streamed = post(
        json!({"model": "bigscience/bloom-560m", "messages": messages, "stream": true,
               "stream_options": {"include_usage": true}}),
        &token,
    );
    assert_eq!(streamed.status, 200);
    let frames = crate::backend_api::sse_data(streamed.body.as_str().unwrap_or(""));
    let chunks = openai_spec::stream(&frames, "stream");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"].is_object(), "{last}");

    let models = c.get("/v1/models", &token);
    openai_spec::models(&models.body, "model list");

    for (body, status, param) in [
        (
            json!({"model": "bigscience/bloom-560m", "messages": messages, "temperature": 3}),
            400,
            "temperature",
        ),
        (
            json!({"model": "gpt-5", "messages": messages}),
            404,
            "model",
        ),
        (
            json!({"model": "bigscience/bloom-560m", "messages": messages, "n": 3}),
            400,
            "n",
        ),
    ] {
        let refused = post(body.clone(), &token);
        assert_eq!(refused.status, status, "{body}: {}", refused.body);
        assert_eq!(refused.body["error"]["param"], param);
        openai_spec::error(&refused.body, &format!("{body}"));
    }
    let unauthenticated = post(json!({"messages": messages}), "not-a-token");
    assert_eq!(unauthenticated.status, 401);
    openai_spec::error(&unauthenticated.body, "401");
}

/// Minimal mode understands the turn (the embedded intent model, in this runtime's build): a
/// joke, a question about the weather with a reminder offered, "yes" to that offer, "repeat"
/// saying the previous turn again, and a reminder phrased as chat answered with how to say it.
/// Each reply names its intent and confidence, and history keeps the intents.
pub fn understanding(rt: &dyn Runtime) {
    eprintln!("suite: understanding");
    let c = client(rt);
    let user = "e2e-understanding";
    let t = c.token(user);
    let turn = |message: &str| {
        let r = c.respond(user, json!({ "message": message }));
        assert_eq!(r.status, 200, "{}", r.body);
        let confidence = r.body["confidence"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&confidence), "{}", r.body);
        assert_eq!(r.body["model_info"]["inference_engine"], "minimal");
        let intent = r.body["intent"].as_str().unwrap_or_default().to_owned();
        let text = r.body["response"].as_str().unwrap_or_default().to_owned();
        (intent, text)
    };
    let (intent, joke) = turn("tell me a joke");
    assert_eq!(intent, "tell_joke");
    // A joke, not the out-of-scope or topic reply (both say what the assistant can't do).
    assert!(!joke.is_empty() && !joke.contains("can't"), "{joke}");
    let (intent, weather) = turn("what's the weather going to be like tomorrow");
    assert_eq!(intent, "weather");
    assert!(weather.contains("check the weather"), "{weather}");
    let (intent, yes) = turn("yes please");
    assert_eq!(intent, "yes");
    assert!(yes.contains("remind me to check the weather"), "{yes}");
    let (intent, again) = turn("can you repeat that");
    assert_eq!(intent, "repeat");
    assert!(again.ends_with(&yes), "{again} / {yes}");
    let (intent, how) = turn("could you remind me to call my sister tonight");
    assert_eq!(intent, "reminder_update");
    assert!(how.contains("remind me to"), "{how}");
    let h = c.get(&format!("/api/chat/history/{user}"), &t);
    let intents: Vec<&str> = h.body["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["intent"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        intents,
        [
            "tell_joke",
            "tell_joke",
            "weather",
            "weather",
            "yes",
            "yes",
            "repeat",
            "repeat",
            "reminder_update",
            "reminder_update"
        ],
        "{}",
        h.body
    );
    // A sure upstream intent still decides the turn.
    let r = c.respond(
        user,
        json!({"message": "what's the weather", "context": {"intent": "greeting", "confidence": 0.9}}),
    );
    assert_eq!(r.body["intent"], "greeting", "{}", r.body);
    assert_eq!(r.body["context_used"], true);
}

/// The documented error statuses, each with the JSON error shape.
pub fn errors(rt: &dyn Runtime) {
    eprintln!("suite: errors");
    let c = client(rt);
    let t = c.token("e2e-errors");
    let json_ct = Some("application/json");
    let cases: Vec<(crate::client::Answer, u16, &str)> = vec![
        (
            c.send("GET", "/api/chat/model-info", None, None, None),
            401,
            "missing_token",
        ),
        (
            c.send("GET", "/api/chat/model-info", Some("x.y.z"), None, None),
            401,
            "malformed_token",
        ),
        (
            c.send("GET", "/nope", Some(&t), None, None),
            404,
            "route_not_found",
        ),
        (
            c.send("GET", "/api/chat/respond", Some(&t), None, None),
            405,
            "method_not_allowed",
        ),
        (
            c.send(
                "POST",
                "/api/chat/respond",
                Some(&t),
                Some("text/plain"),
                Some(b"{}".to_vec()),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            c.send(
                "POST",
                "/api/chat/respond",
                Some(&t),
                json_ct,
                Some(vec![b' '; 20_000]),
            ),
            413,
            "payload_too_large",
        ),
        (
            c.send(
                "POST",
                "/api/chat/respond",
                Some(&t),
                json_ct,
                Some(b"{oops".to_vec()),
            ),
            400,
            "invalid_json",
        ),
        (
            c.send(
                "POST",
                "/api/chat/respond",
                Some(&t),
                json_ct,
                Some(b"{\"message\":1}".to_vec()),
            ),
            422,
            "invalid_request",
        ),
        (
            c.send(
                "POST",
                "/api/chat/respond",
                Some(&t),
                json_ct,
                Some(b"{\"message\":\"  \"}".to_vec()),
            ),
            422,
            "empty_message",
        ),
        (
            c.send(
                "GET",
                "/api/chat/history/e2e-errors?limit=0",
                Some(&t),
                None,
                None,
            ),
            422,
            "invalid_limit",
        ),
    ];
    for (answer, status, code) in cases {
        assert_eq!(answer.status, status, "{code}: {}", answer.body);
        assert_eq!(answer.code(), code, "{}", answer.body);
        assert_eq!(answer.body["success"], false);
        assert!(answer.body["error"]["message"].is_string());
        assert!(answer.body["error"]["type"].is_string());
    }
    let a = c.send("GET", "/api/chat/respond", Some(&t), None, None);
    assert_eq!(a.header("allow"), Some("POST"));
}

/// User A can't read or delete B's history; an admin can.
pub fn authorization(rt: &dyn Runtime) {
    eprintln!("suite: authorization");
    let c = client(rt);
    assert_eq!(c.respond("e2e-owner", json!({"message": "hi"})).status, 200);
    let intruder = c.token("e2e-intruder");
    for path in ["/api/chat/history/e2e-owner", "/api/chat/summary/e2e-owner"] {
        let a = c.get(path, &intruder);
        assert_eq!(a.status, 403, "{path}");
        assert_eq!(a.code(), "forbidden");
    }
    assert_eq!(
        c.delete("/api/chat/history/e2e-owner", &intruder).status,
        403
    );
    let admin = c.admin_token("e2e-admin");
    let a = c.get("/api/chat/history/e2e-owner", &admin);
    assert_eq!(a.status, 200);
    assert_eq!(a.body["count"], 2);
    let d = c.delete("/api/chat/history/e2e-owner", &admin);
    assert_eq!(d.body["deleted"], 2);
    let owner = c.token("e2e-owner");
    assert_eq!(
        c.get("/api/chat/history/e2e-owner", &owner).body["count"],
        0
    );
}

/// History written before a restart of the runtime is there after it.
pub fn persistence(rt: &mut dyn Runtime) {
    eprintln!("suite: persistence");
    let user = "e2e-persist";
    {
        let c = client(rt);
        for m in ["one", "two"] {
            assert_eq!(c.respond(user, json!({"message": m})).status, 200);
        }
    }
    rt.restart();
    let c = client(rt);
    let h = c.get(&format!("/api/chat/history/{user}"), &c.token(user));
    assert_eq!(h.status, 200);
    assert_eq!(h.body["count"], 4);
    assert_eq!(h.body["messages"][2]["content"], "two");
}

/// Turns older than the retention period are gone (runtime configured with a short one).
pub fn retention(rt: &dyn Runtime, retention: std::time::Duration) {
    eprintln!("suite: retention");
    let c = client(rt);
    let user = "e2e-retention";
    assert_eq!(
        c.respond(user, json!({"message": "soon forgotten"})).status,
        200
    );
    let t = c.token(user);
    assert_eq!(
        c.get(&format!("/api/chat/history/{user}"), &t).body["count"],
        2
    );
    thread::sleep(retention + std::time::Duration::from_millis(500));
    assert_eq!(
        c.get(&format!("/api/chat/history/{user}"), &t).body["count"],
        0
    );
}

/// `n` requests of one user at once, spread over `rts` (instances of one deployment); returns
/// how many were admitted. With no refill during the burst, exactly `burst` must be.
pub fn concurrent_admissions(rts: &[&dyn Runtime], user: &str, n: usize) -> usize {
    eprintln!("suite: concurrent_admissions");
    let clients: Vec<Client> = rts.iter().map(|rt| client(*rt)).collect();
    let token = clients[0].token(user);
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (c, token, barrier) = (
                clients[i % clients.len()].clone(),
                token.clone(),
                barrier.clone(),
            );
            thread::spawn(move || {
                barrier.wait();
                c.get("/api/chat/model-info", &token).status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    statuses.iter().filter(|s| **s == 200).count()
}

/// `n` concurrent respond calls of one user, spread over `rts`: every turn is stored, none
/// lost, and the history reads the same through each instance.
pub fn concurrent_turns(rts: &[&dyn Runtime], user: &str, n: usize) {
    eprintln!("suite: concurrent_turns");
    let clients: Vec<Client> = rts.iter().map(|rt| client(*rt)).collect();
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (c, barrier, user) = (
                clients[i % clients.len()].clone(),
                barrier.clone(),
                user.to_owned(),
            );
            thread::spawn(move || {
                barrier.wait();
                c.respond(&user, json!({"message": format!("message {i}")}))
                    .status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    for c in &clients {
        let h = c.get(&format!("/api/chat/history/{user}"), &c.token(user));
        assert_eq!(h.body["count"], 2 * n, "{}", h.body);
    }
}

/// The whole suite on one deployment, in two runtimes (one configuration each): the API,
/// authorization, concurrent turns and persistence across a restart ...
pub fn run_main(launcher: crate::local::Launcher) {
    let mut rt = crate::local::LocalRuntime::start(
        launcher,
        "main",
        &[
            ("RATE_LIMIT_PER_MINUTE", "6000"),
            ("RATE_LIMIT_BURST", "1000"),
            ("CORS_ALLOWED_ORIGINS", APP_ORIGIN),
        ],
    );
    endpoints(&rt);
    openai_api(&rt);
    understanding(&rt);
    errors(&rt);
    authorization(&rt);
    browser_facing(&rt);
    logs_keep_secrets(&rt);
    facts_in_logs(&rt);
    concurrent_turns(&[&rt], "e2e-concurrent", 20);
    // The native memory store keeps nothing across a restart, by design.
    if launcher.persists() {
        persistence(&mut rt);
    }
}

/// The one origin `run_main` lets browser pages call from.
const APP_ORIGIN: &str = "https://app.eindr.test";

/// CORS for the listed origin only, never with credentials, and the headers every response
/// carries, whatever it is.
pub fn browser_facing(rt: &dyn Runtime) {
    eprintln!("suite: browser_facing");
    let c = client(rt);
    let preflight = |origin: &str, method: &str, headers: &str| {
        c.send_with(
            "OPTIONS",
            "/api/chat/respond",
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                ("access-control-request-headers", headers),
            ],
            None,
        )
    };
    let allowed = preflight(APP_ORIGIN, "POST", "authorization, content-type");
    assert_eq!(allowed.status, 204, "{}", allowed.body);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some(APP_ORIGIN)
    );
    let methods = allowed.header("access-control-allow-methods").unwrap_or("");
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = allowed.header("access-control-allow-headers").unwrap_or("");
    assert!(headers.contains("authorization"), "{headers}");
    assert!(allowed.header("access-control-allow-credentials").is_none());
    for (origin, method, headers) in [
        ("https://evil.test", "POST", "authorization"),
        ("https://app.eindr.test.evil.test", "POST", ""),
        (APP_ORIGIN, "PUT", ""),
        (APP_ORIGIN, "POST", "x-user-override"),
    ] {
        let refused = preflight(origin, method, headers);
        assert_eq!(
            refused.status, 403,
            "{origin} {method} {headers}: {}",
            refused.body
        );
        assert_eq!(refused.code(), "forbidden");
        assert!(refused.header("access-control-allow-origin").is_none());
    }

    // A real request from the listed origin can be read by its page; from another, not.
    let token = c.token("e2e-cors");
    let auth = format!("Bearer {token}");
    let from = |origin: &str| {
        c.send_with(
            "GET",
            "/api/chat/model-info",
            &[("authorization", auth.as_str()), ("origin", origin)],
            None,
        )
    };
    let listed = from(APP_ORIGIN);
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some(APP_ORIGIN)
    );
    let exposed = listed.header("access-control-expose-headers").unwrap_or("");
    assert!(exposed.contains("ratelimit-remaining"), "{exposed}");
    assert!(listed.header("vary").unwrap_or("").contains("Origin"));
    let other = from("https://evil.test");
    assert_eq!(other.status, 200);
    assert!(other.header("access-control-allow-origin").is_none());

    // Security headers on every kind of answer: success, page, errors, unauthenticated.
    let answers = [
        c.send("GET", "/health", None, None, None),
        c.send("GET", "/", None, None, None),
        c.send("GET", "/nowhere", None, None, None),
        c.send("GET", "/api/chat/model-info", None, None, None),
        c.respond("e2e-cors", json!({"message": "hello"})),
        listed,
    ];
    for answer in &answers {
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{} {:?}",
            answer.status,
            answer.headers
        );
        assert_eq!(answer.header("referrer-policy"), Some("no-referrer"));
        assert!(
            answer.header("cache-control").is_some(),
            "{:?}",
            answer.headers
        );
    }
    assert_eq!(answers[4].header("cache-control"), Some("no-store"));
}

/// The runtime's logs (at their default level, `info`) say what happened without the token,
/// the secret or what the user said.
pub fn logs_keep_secrets(rt: &crate::local::LocalRuntime) {
    eprintln!("suite: logs_keep_secrets");
    if std::env::var_os("E2E_RUNTIME_LOGS").is_some() {
        return eprintln!("suite: logs shown, not captured: logs_keep_secrets not checked");
    }
    let c = client(rt);
    let user = "e2e-logs";
    let token = c.token(user);
    let message = "my locker code is zebra-quartz-8841, keep it safe";
    let answer = c.send(
        "POST",
        "/api/chat/respond",
        Some(&token),
        Some("application/json"),
        Some(
            json!({"message": message, "stream": true})
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(answer.status, 200);
    let request_id = answer.header("x-request-id").unwrap().to_owned();
    let forged = Client::new(
        &rt.base_url(),
        "some-other-secret-0123456789abcdef0123456789",
    )
    .token(user);
    assert_eq!(
        c.get(&format!("/api/chat/history/{user}"), &forged).status,
        401
    );
    // Log lines are written as requests finish; give the runtime a moment to flush.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut logs = rt.logs();
    while !logs.contains(&request_id) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        logs = rt.logs();
    }
    assert!(
        logs.contains(&request_id),
        "the turn's request id is not in the runtime's logs:\n{logs}"
    );
    let signature = token.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("the token", token.as_str()),
        ("the token's signature", signature),
        ("the JWT secret", rt.secret()),
        ("the user's message", "zebra-quartz-8841"),
    ] {
        assert!(!logs.contains(secret), "{what} is in the logs");
    }
}

/// ... and the exact rate limit under concurrency, then retention.
pub fn run_strict(launcher: crate::local::Launcher) {
    // One request a minute after a burst of 10: nothing refills during the test.
    let retention_days = "0.00006"; // 5.2 s
    let rt = crate::local::LocalRuntime::start(
        launcher,
        "strict",
        &[
            ("RATE_LIMIT_PER_MINUTE", "1"),
            ("RATE_LIMIT_BURST", "10"),
            ("HISTORY_RETENTION_DAYS", retention_days),
        ],
    );
    assert_eq!(concurrent_admissions(&[&rt], "e2e-burst", 50), 10);
    retention(&rt, std::time::Duration::from_millis(5184));
}

/// The core's facts reach this runtime's log as one structured line each (what Workers Logs
/// and an OpenTelemetry collector read on Spin): a whole minimal turn, a streamed one and a 404
/// give exactly the expected turn and request facts (durations aside), under their request id.
pub fn facts_in_logs(rt: &crate::local::LocalRuntime) {
    eprintln!("suite: facts_in_logs");
    if std::env::var_os("E2E_RUNTIME_LOGS").is_some() {
        return eprintln!("suite: logs shown, not captured: facts_in_logs not checked");
    }
    let c = client(rt);
    let token = c.token("e2e-facts");
    let authorization = format!("Bearer {token}");
    let send = |id: &str, method: &str, path: &str, body: Option<serde_json::Value>| {
        let mut headers = vec![
            ("authorization", authorization.as_str()),
            ("x-request-id", id),
        ];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        c.send_with(
            method,
            path,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
    };
    let run = std::process::id();
    let (whole, streamed, missing) = (
        format!("facts-whole-{run}"),
        format!("facts-stream-{run}"),
        format!("facts-404-{run}"),
    );
    let joke = json!({"message": "tell me a joke"});
    assert_eq!(
        send(&whole, "POST", "/api/chat/respond", Some(joke)).status,
        200
    );
    let stream = json!({"message": "tell me a joke", "stream": true});
    assert_eq!(
        send(&streamed, "POST", "/api/chat/respond", Some(stream)).status,
        200
    );
    assert_eq!(send(&missing, "GET", "/nowhere", None).status, 404);

    // Each id's facts lines: (kind, facts), durations removed.
    let facts_of = |logs: &str, id: &str| -> Vec<(String, serde_json::Value)> {
        logs.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
            .filter(|l| l["target"] == "facts" && l["span"]["request_id"] == id)
            .map(|l| {
                let mut facts: serde_json::Value =
                    serde_json::from_str(l["fields"]["facts"].as_str().unwrap_or("null")).unwrap();
                facts.as_object_mut().map(|f| f.remove("duration_ms"));
                (l["fields"]["kind"].as_str().unwrap_or("").to_owned(), facts)
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut logs = rt.logs();
    // Each request's lines are written as it finishes, in any order: wait for all of them.
    let complete = |logs: &str| {
        facts_of(logs, &whole).len() == 2
            && facts_of(logs, &streamed).len() == 2
            && facts_of(logs, &missing).len() == 1
    };
    while !complete(&logs) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        logs = rt.logs();
    }
    let turn = |streamed: bool| {
        json!({"api": "eindr", "streamed": streamed, "engine": "minimal", "fallback": false,
               "fallback_reason": null, "cache": "bypass", "cache_key": null,
               "intent_family": "small_talk"})
    };
    let respond = json!({"route": "/api/chat/respond", "status": 200, "error_code": null, "rate_limited": false});
    let mut whole_turn = turn(false);
    whole_turn["first_delta_ms"] = json!(null);
    assert_eq!(
        facts_of(&logs, &whole),
        vec![
            ("turn".to_owned(), whole_turn),
            ("request".to_owned(), respond.clone())
        ],
        "{logs}"
    );
    let got = facts_of(&logs, &streamed);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].1["first_delta_ms"].is_u64(),
        "a streamed turn's first delta: {got:?}"
    );
    let mut streamed_turn = got[0].1.clone();
    streamed_turn
        .as_object_mut()
        .unwrap()
        .remove("first_delta_ms");
    let mut want = turn(true);
    want.as_object_mut().unwrap().remove("first_delta_ms");
    assert_eq!(streamed_turn, want);
    assert_eq!(got[1], ("request".to_owned(), respond));
    assert_eq!(
        facts_of(&logs, &missing),
        vec![(
            "request".to_owned(),
            json!({"route": "other", "status": 404, "error_code": "route_not_found", "rate_limited": false})
        )]
    );
}
