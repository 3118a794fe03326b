//! Cached model answers over the core with a scripted backend: what may be cached, the pool
//! filling and then answering without the backend (`serve`), the cache as the fallback when
//! the backend fails, `Cache-Control`, and what is never stored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use edge_core::{HttpRequest, HttpResponse};
use serde_json::{Value, json};

fn harness(mode: &str, pool_size: &str) -> Harness {
    Harness::new(&[
        ("MINIMAL_MODE", "false"),
        ("BACKEND_URL", "http://gpu.test:8000"),
        ("RATE_LIMIT_BURST", "1000"),
        ("CACHE_MODE", mode),
        ("CACHE_POOL_SIZE", pool_size),
        // Every failure here is the test's; the breaker stays out of the way.
        ("BACKEND_BREAKER_FAILURES", "1000"),
    ])
}

/// A first turn of a new user (no history): the only kind that may use the cache.
fn first_turn(h: &Harness, user: &str, message: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut req = HttpRequest::new("POST", "/api/chat/respond")
        .with_header("authorization", &format!("Bearer {}", h.token(user)))
        .with_header("content-type", "application/json")
        .with_body(json!({ "message": message }).to_string());
    for (name, value) in headers {
        req = req.with_header(name, value);
    }
    let resp = h.send(req);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp
}

fn x_cache(resp: &HttpResponse) -> &str {
    resp.header("x-cache").unwrap_or("none")
}

fn calls(h: &Harness) -> usize {
    h.backend.requests.borrow().len()
}

/// The clock moves past the pool's one-write-a-second bound between turns.
fn fill(h: &Harness, message: &str, answers: &[&str]) {
    for (i, answer) in answers.iter().enumerate() {
        play(h, Script::tokens(&[answer]));
        let user = format!("filler-{}-{i}", message.replace(' ', "-"));
        let resp = first_turn(h, &user, message, &[]);
        assert_eq!(json(&resp)["response"], *answer);
        assert_eq!(json(&resp)["cached"], false);
        h.advance_ms(1_000);
    }
}

#[test]
fn a_full_pool_answers_without_the_backend_in_serve_mode() {
    let h = harness("serve", "2");
    play(&h, Script::tokens(&["Hi there!"]));
    let first = first_turn(&h, "u1", "Hello!", &[]);
    assert_eq!(x_cache(&first), "MISS");
    h.advance_ms(1_000);
    play(&h, Script::tokens(&["Hello, friend."]));
    // Same question, other spelling: one key.
    let second = first_turn(&h, "u2", "  hello ", &[]);
    assert_eq!(x_cache(&second), "MISS");
    assert_eq!(calls(&h), 2);

    let mut seen = std::collections::HashSet::new();
    for i in 0..8 {
        let resp = first_turn(&h, &format!("u-hit-{i}"), "hello", &[]);
        assert_eq!(x_cache(&resp), "HIT");
        let body = json(&resp);
        assert_eq!(body["cached"], true);
        assert_eq!(body["fallback_used"], false);
        assert_eq!(body["model_info"]["inference_engine"], "vLLM");
        let text = body["response"].as_str().unwrap().to_owned();
        assert!(["Hi there!", "Hello, friend."].contains(&text.as_str()));
        // History keeps what the user got.
        let stored = h.get(
            &format!("/api/chat/history/u-hit-{i}"),
            &h.token(&format!("u-hit-{i}")),
        );
        assert_eq!(json(&stored)["messages"][1]["content"], text);
        seen.insert(text);
    }
    assert_eq!(calls(&h), 2, "hits never call the backend");
    assert_eq!(seen.len(), 2, "draws keep the pool's variety");

    // A streamed hit: the head says so, the answer comes as events.
    let resp = h.send(
        HttpRequest::new("POST", "/api/chat/respond")
            .with_header("authorization", &format!("Bearer {}", h.token("u-stream")))
            .with_header("content-type", "application/json")
            .with_header("accept", "text/event-stream")
            .with_body(json!({"message": "hello"}).to_string()),
    );
    assert_eq!(x_cache(&resp), "HIT");
    let body = String::from_utf8(resp.body).unwrap();
    assert!(body.contains(r#""delta":"#), "{body}");
    assert!(body.contains(r#""cached":true"#), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert_eq!(calls(&h), 2);

    let health = json(&h.get("/api/chat/health", &h.token("u1")));
    assert_eq!(health["cache"]["mode"], "serve");
    assert_eq!(health["cache"]["pool_size"], 2);
    assert_eq!(health["cache"]["store"], "memory");
}

#[test]
fn a_turn_with_history_or_task_data_is_never_cached() {
    let h = harness("serve", "1");
    play(&h, Script::tokens(&["Hello!"]));
    first_turn(&h, "talker", "hi", &[]);
    h.advance_ms(1_000);
    // The same user again: the prompt now holds history.
    play(&h, Script::tokens(&["Something personal."]));
    let again = first_turn(&h, "talker", "hi", &[]);
    assert_eq!(x_cache(&again), "BYPASS");
    assert_eq!(json(&again)["response"], "Something personal.");
    assert_eq!(calls(&h), 2);
    // A new user gets the history-free answer, not the one made with history.
    let fresh = first_turn(&h, "newcomer", "hi", &[]);
    assert_eq!(x_cache(&fresh), "HIT");
    assert_eq!(json(&fresh)["response"], "Hello!");

    // Task data in the context: the user's, never shared.
    play(&h, Script::tokens(&["Your meeting is set."]));
    let resp = h.respond(
        "tasker",
        json!({"message": "thanks", "context": {"intent": "create_reminder",
            "processing_result": {"success": true, "data": {"title": "meeting"}}}}),
    );
    assert_eq!(x_cache(&resp), "BYPASS");
    h.advance_ms(1_000);
    play(&h, Script::tokens(&["Anytime."]));
    let plain = first_turn(&h, "thanker", "thanks", &[]);
    assert_eq!(x_cache(&plain), "MISS", "the task turn left nothing behind");
    assert_eq!(json(&plain)["response"], "Anytime.");
}

#[test]
fn a_failing_backend_falls_back_to_a_cached_answer_before_the_rule_reply() {
    let h = harness("fallback", "8");
    fill(
        &h,
        "tell me a joke",
        &["Why did the chicken cross the road?"],
    );
    // Fallback mode never answers from the pool while the backend answers.
    play(&h, Script::tokens(&["A second joke."]));
    let resp = first_turn(&h, "reader", "tell me a joke", &[]);
    assert_eq!(x_cache(&resp), "MISS");
    assert_eq!(json(&resp)["response"], "A second joke.");

    // The backend is down: the cached key gets a model answer, marked as a fallback.
    for script in [Script::Unreachable, Script::Hang] {
        play(&h, script);
        let resp = first_turn(&h, &format!("down-{}", calls(&h)), "Tell me a joke!", &[]);
        let body = json(&resp);
        assert_eq!(body["cached"], true, "{body}");
        assert_eq!(body["fallback_used"], true);
        assert_eq!(body["model_info"]["inference_engine"], "vLLM");
        assert!(
            ["Why did the chicken cross the road?", "A second joke."]
                .contains(&body["response"].as_str().unwrap())
        );
    }
    // An uncached question gets the rule reply.
    play(&h, Script::Unreachable);
    let body = json(&first_turn(&h, "down-other", "what is your name", &[]));
    assert_eq!(body["cached"], false);
    assert_eq!(body["fallback_used"], true);
    assert_eq!(body["model_info"]["inference_engine"], "minimal");
}

#[test]
fn cache_control_no_cache_and_no_store_are_honoured() {
    let h = harness("serve", "2");
    fill(&h, "good morning", &["Morning!"]);
    // no-store: the answer is not kept, so the pool stays one short of full.
    play(&h, Script::tokens(&["Top of the morning."]));
    let resp = first_turn(
        &h,
        "private",
        "good morning",
        &[("cache-control", "no-store")],
    );
    assert_eq!(x_cache(&resp), "MISS");
    h.advance_ms(1_000);
    play(&h, Script::tokens(&["Good morning to you."]));
    assert_eq!(
        x_cache(&first_turn(&h, "next", "good morning", &[])),
        "MISS"
    );
    h.advance_ms(1_000);
    // Now full: a plain turn hits, a no-cache one goes to the backend (and its answer may
    // still be kept: the pool is full, so it is not).
    assert_eq!(
        x_cache(&first_turn(&h, "hitter", "good morning", &[])),
        "HIT"
    );
    let before = calls(&h);
    play(&h, Script::tokens(&["Fresh from the model."]));
    let resp = first_turn(
        &h,
        "fresh",
        "good morning",
        &[("Cache-Control", "No-Cache")],
    );
    assert_eq!(x_cache(&resp), "BYPASS");
    assert_eq!(json(&resp)["response"], "Fresh from the model.");
    assert_eq!(calls(&h), before + 1);
    for i in 0..6 {
        let body = json(&first_turn(&h, &format!("after-{i}"), "good morning", &[]));
        assert!(
            ["Morning!", "Good morning to you."].contains(&body["response"].as_str().unwrap()),
            "{body}"
        );
    }
}

#[test]
fn cut_masked_or_off_answers_are_never_stored() {
    let h = harness("serve", "1");
    // Cut after some text: the user gets it closed by the edge; the pool stays empty.
    play(
        &h,
        Script::Respond {
            status: 200,
            headers: Vec::new(),
            steps: vec![
                Step::Bytes(sse_piece("The weather is").into_bytes()),
                Step::Break,
            ],
        },
    );
    let cut = json(&first_turn(&h, "c1", "how is the weather", &[]));
    assert_eq!(cut["fallback_used"], true);
    h.advance_ms(1_000);
    // Masked by the PII filter: kept from others.
    play(&h, Script::tokens(&["Mail me at bob@example.org."]));
    let masked = json(&first_turn(&h, "c2", "how is the weather", &[]));
    assert_eq!(masked["response"], "Mail me at [email].");
    h.advance_ms(1_000);
    play(&h, Script::tokens(&["Sunny."]));
    assert_eq!(
        x_cache(&first_turn(&h, "c3", "how is the weather", &[])),
        "MISS"
    );
    assert_eq!(calls(&h), 3);
    assert_eq!(
        x_cache(&first_turn(&h, "c4", "how is the weather", &[])),
        "HIT"
    );

    // Off: neither read nor written, and every turn says so.
    let off = harness("off", "1");
    fill(&off, "hello", &["Hi!"]);
    play(&off, Script::Unreachable);
    let resp = first_turn(&off, "off-user", "hello", &[]);
    assert_eq!(x_cache(&resp), "BYPASS");
    assert_eq!(json(&resp)["model_info"]["inference_engine"], "minimal");
}

#[test]
fn minimal_turns_and_openai_turns_say_how_the_cache_took_part() {
    let h = Harness::new(&[]);
    let resp = h.respond("m", json!({"message": "hello"}));
    assert_eq!(x_cache(&resp), "BYPASS");
    assert_eq!(json(&resp)["cached"], false);

    let h = harness("serve", "1");
    fill(&h, "hello", &["Hi!"]);
    let resp = h.send(
        HttpRequest::new("POST", "/v1/chat/completions")
            .with_header("authorization", &format!("Bearer {}", h.token("sdk")))
            .with_header("content-type", "application/json")
            .with_body(json!({"messages": [{"role": "user", "content": "Hello"}]}).to_string()),
    );
    assert_eq!(x_cache(&resp), "HIT");
    let body: Value = json(&resp);
    assert_eq!(body["choices"][0]["message"]["content"], "Hi!");
    assert_eq!(body["cached"], true);
}

fn x_cache_key(resp: &HttpResponse) -> &str {
    resp.header("x-cache-key").unwrap_or("none")
}

#[test]
fn paraphrases_of_small_talk_share_their_intents_pool() {
    let h = harness("serve", "2");
    fill(
        &h,
        "tell me a joke",
        &["Why did the bot cross the road?", "Knock knock."],
    );
    let before = calls(&h);
    for (i, paraphrase) in [
        "make me laugh",
        "do you know any good jokes",
        "Tell me a JOKE!",
    ]
    .into_iter()
    .enumerate()
    {
        let resp = first_turn(&h, &format!("paraphrase-{i}"), paraphrase, &[]);
        assert_eq!(x_cache(&resp), "HIT", "{paraphrase}");
        assert_eq!(x_cache_key(&resp), "intent", "{paraphrase}");
        assert_eq!(json(&resp)["cached"], true);
        assert_eq!(json(&resp)["intent"], "tell_joke");
    }
    assert_eq!(calls(&h), before, "a hit called the backend");

    // Out of scope, and another small-talk intent: neither is answered from the jokes.
    play(&h, Script::tokens(&["Four large ones."]));
    let moons = first_turn(&h, "moons", "how many moons does jupiter have", &[]);
    assert_eq!((x_cache(&moons), x_cache_key(&moons)), ("MISS", "exact"));
    play(&h, Script::tokens(&["I am an assistant."]));
    let bot = first_turn(&h, "bot", "are you a robot", &[]);
    assert_eq!((x_cache(&bot), x_cache_key(&bot)), ("MISS", "intent"));
    assert_eq!(calls(&h), before + 2);

    let health = json(&h.get("/api/chat/health", &h.token("ops")));
    assert_eq!(health["cache"]["hits"]["intent"], 3, "{health}");
    assert_eq!(health["cache"]["hits"]["exact"], 0);
    assert_eq!(health["cache"]["intent_min_confidence"], 0.5);
}

#[test]
fn unsure_readings_unlisted_intents_and_bare_upstream_intents_keep_the_exact_key() {
    let turn_with_context = |h: &Harness, user: &str, context: Value| {
        play(h, Script::tokens(&["Hi."]));
        let resp = h.send(
            HttpRequest::new("POST", "/api/chat/respond")
                .with_header("authorization", &format!("Bearer {}", h.token(user)))
                .with_header("content-type", "application/json")
                .with_body(json!({"message": "wassup", "context": context}).to_string()),
        );
        assert_eq!(resp.status, 200);
        x_cache_key(&resp).to_owned()
    };
    let h = harness("serve", "2");
    assert_eq!(
        turn_with_context(&h, "a", json!({"intent": "greeting"})),
        "exact"
    );
    assert_eq!(
        turn_with_context(&h, "b", json!({"intent": "greeting", "confidence": 0.3})),
        "exact"
    );
    assert_eq!(
        turn_with_context(&h, "c", json!({"intent": "greeting", "confidence": 0.9})),
        "intent"
    );

    let mut vars = vec![
        ("MINIMAL_MODE", "false"),
        ("BACKEND_URL", "http://gpu.test:8000"),
        ("CACHE_MODE", "serve"),
        ("CACHE_SHARED_INTENTS", "greeting"),
    ];
    let h = Harness::new(&vars);
    play(&h, Script::tokens(&["Ha."]));
    assert_eq!(
        x_cache_key(&first_turn(&h, "j", "tell me a joke", &[])),
        "exact"
    );
    vars[3] = ("CACHE_INTENT_MIN_CONFIDENCE", "1");
    let h = Harness::new(&vars);
    play(&h, Script::tokens(&["Hello."]));
    assert_eq!(
        x_cache_key(&first_turn(&h, "g", "hello there", &[])),
        "exact"
    );
}

fn warm(h: &Harness, token: &str, body: Value) -> HttpResponse {
    h.send(
        HttpRequest::new("POST", "/api/chat/cache/warm")
            .with_header("authorization", &format!("Bearer {token}"))
            .with_header("content-type", "application/json")
            .with_body(body.to_string()),
    )
}

#[test]
fn an_admin_warms_pools_ahead_of_traffic() {
    let h = harness("serve", "2");
    let user = warm(&h, &h.token("u"), json!({"questions": ["tell me a joke"]}));
    assert_eq!(user.status, 403);
    assert_eq!(json(&user)["error"]["code"], "forbidden");
    let admin = h.admin_token("ops");
    for (body, code) in [
        (json!({"questions": []}), "invalid_questions"),
        (json!({"questions": vec!["x"; 17]}), "invalid_questions"),
        (json!({"questions": ["  "]}), "empty_message"),
        (json!({"questions": ["hi"], "extra": 1}), "invalid_request"),
    ] {
        let resp = warm(&h, &admin, body.clone());
        assert_eq!(resp.status, 422, "{body}");
        assert_eq!(json(&resp)["error"]["code"], code, "{body}");
    }

    // Two phrasings of one intent: one pool, written at most once a second.
    play(&h, Script::tokens(&["A joke."]));
    play(&h, Script::tokens(&["Another joke."]));
    let first = json(&warm(
        &h,
        &admin,
        json!({"questions": ["tell me a joke", "make me laugh"]}),
    ));
    let warmed = first["warmed"].as_array().unwrap();
    assert_eq!(warmed[0]["key"], "intent");
    assert_eq!(warmed[0]["intent"], "tell_joke");
    assert_eq!(
        (warmed[0]["added"].clone(), warmed[0]["pool_size"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(warmed[1]["added"], false);
    assert!(
        warmed[1]["skipped"].as_str().unwrap().contains("second"),
        "{first}"
    );
    h.advance_ms(1_000);
    play(&h, Script::tokens(&["A third joke."]));
    let second = json(&warm(
        &h,
        &admin,
        json!({"questions": ["make me laugh", "tell me a joke"]}),
    ));
    assert_eq!(second["warmed"][0]["full"], true, "{second}");
    assert_eq!(second["warmed"][1]["full"], true);
    assert_eq!(second["warmed"][1]["added"], false);
    let before = calls(&h);
    let hit = first_turn(&h, "first-user", "do you know any good jokes", &[]);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(calls(&h), before);

    let minimal = Harness::new(&[("CACHE_MODE", "serve")]);
    let resp = warm(
        &minimal,
        &minimal.admin_token("ops"),
        json!({"questions": ["hi"]}),
    );
    assert_eq!(json(&resp)["error"]["code"], "no_backend");
}

#[test]
fn a_filling_pool_answers_turns_its_next_write_could_not_take() {
    let h = harness("serve", "4");
    play(&h, Script::tokens(&["One."]));
    assert_eq!(x_cache(&first_turn(&h, "a", "tell me a joke", &[])), "MISS");
    // Under a second later the pool could not take another answer: it gives the one it has.
    h.advance_ms(500);
    let soon = first_turn(&h, "b", "make me laugh", &[]);
    assert_eq!(x_cache(&soon), "HIT");
    assert_eq!(json(&soon)["response"], "One.");
    assert_eq!(calls(&h), 1);
    // A second after its last write it grows again.
    h.advance_ms(500);
    play(&h, Script::tokens(&["Two."]));
    assert_eq!(x_cache(&first_turn(&h, "c", "tell me a joke", &[])), "MISS");
    assert_eq!(calls(&h), 2);
}
