//! The CPU engine on the tiny BLOOM's checkpoint: at fp32 against transformers' own logits and
//! greedy generation (goldens written by `models/bloom_goldens.py`), every precision close to
//! fp32, a batch the same as its sequences one by one, and gpu-backend switching between the
//! real vLLM server and the CPU engine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::backend_api::{Answer, Api, user};
use e2e::vllm::{Backend, Vllm, tiny_model};
use gpu_backend::cpu::{
    CpuEngine, EngineSettings, GenerationSpec, Logits, Precision, SequenceStep,
};
use gpu_backend::sse::Piece;
use serde_json::{Value, json};

fn goldens() -> Value {
    let text = std::fs::read_to_string(tiny_model().join("goldens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// Largest difference relative to the largest golden logit at that position.
fn relative_error(got: &[f32], want: &Value) -> f64 {
    let want: Vec<f64> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len(), "vocabulary size");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    let diff = got
        .iter()
        .zip(&want)
        .fold(0.0f64, |m, (g, w)| m.max((f64::from(*g) - w).abs()));
    diff / scale
}

fn engine(precision: Precision) -> CpuEngine {
    let settings = EngineSettings {
        precision,
        threads: 2,
        max_len: 512,
    };
    CpuEngine::load(&tiny_model(), settings).unwrap()
}

#[test]
fn logits_match_transformers_through_the_cache() {
    let engine = engine(Precision::F32);
    let goldens = goldens();
    let ids = ids(&goldens["logits_ids"]);
    let want = goldens["logits"].as_array().unwrap();
    // The prompt in one step, then one token at a time through the key/value cache:
    // every position from the prompt's last on is compared.
    let prompt = 6;
    let model = engine.model();
    let (logits, mut cache) = model.step(&ids[..prompt], model.empty_cache()).unwrap();
    let mut errors = vec![relative_error(&logits, &want[prompt - 1])];
    for (pos, &id) in ids.iter().enumerate().skip(prompt) {
        let (logits, grown) = model.step(&[id], cache).unwrap();
        cache = grown;
        errors.push(relative_error(&logits, &want[pos]));
    }
    assert_eq!(cache.len(), ids.len());
    eprintln!("relative errors by position: {errors:?}");
    assert!(errors.iter().all(|&e| e < 1e-4), "{errors:?}");
}

/// Every precision against fp32 on the same ids: logits close (relative to the largest), and
/// the prompt's next token the same.
#[test]
fn every_precision_stays_close_to_fp32() {
    let ids = ids(&goldens()["logits_ids"]);
    let reference = engine(Precision::F32)
        .model()
        .step(&ids, engine(Precision::F32).model().empty_cache())
        .unwrap()
        .0;
    for (precision, bound) in [
        (Precision::Bf16, 0.02),
        (Precision::Int8, 0.03),
        (Precision::Q4, 0.15),
    ] {
        let engine = engine(precision);
        let (logits, _) = engine
            .model()
            .step(&ids, engine.model().empty_cache())
            .unwrap();
        let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let diff = logits
            .iter()
            .zip(&reference)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("{precision}: largest difference {:.4} of {scale:.3}", diff);
        assert!(diff / scale < bound, "{precision}: {diff} of {scale}");
    }
}

/// Sequences stepped together (a prompt beside decoding ones) get the logits each would get
/// alone.
#[test]
fn a_batch_gives_each_sequence_its_own_logits() {
    let engine = engine(Precision::Int8);
    let model = engine.model();
    let a: Vec<u32> = (0..9).map(|i| (13 * i + 2) % 4000).collect();
    let b: Vec<u32> = (0..5).map(|i| (29 * i + 7) % 4000).collect();
    let alone_a = model.step(&a, model.empty_cache()).unwrap().0;
    let (_, cache_b) = model.step(&b[..4], model.empty_cache()).unwrap();
    let alone_b = model.step(&b[4..], cache_b).unwrap().0;

    let (mut cache_a, mut cache_b) = (model.empty_cache(), model.empty_cache());
    model
        .forward(&mut [SequenceStep {
            ids: &b[..4],
            cache: &mut cache_b,
            logits: Logits::Last,
        }])
        .unwrap();
    let together = model
        .forward(&mut [
            SequenceStep {
                ids: &a,
                cache: &mut cache_a,
                logits: Logits::Last,
            },
            SequenceStep {
                ids: &b[4..],
                cache: &mut cache_b,
                logits: Logits::Last,
            },
        ])
        .unwrap();
    assert_eq!(cache_a.len(), 9);
    assert_eq!(cache_b.len(), 5);
    for (got, want) in together.iter().zip([&alone_a, &alone_b]) {
        let diff = got
            .iter()
            .zip(want.iter())
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff < 1e-4, "batched logits differ by {diff}");
    }
}

#[test]
fn greedy_generation_matches_transformers_token_for_token() {
    let engine = engine(Precision::F32);
    let goldens = goldens();
    let prompt = ids(&goldens["greedy_prompt_ids"]);
    let want = ids(&goldens["greedy_ids"]);
    assert_eq!(want.len(), 20);
    // The goldens are decoded with the tokenizer too: the prompt is the same text.
    assert_eq!(
        engine
            .encode("User: hello, what can you do?\nAssistant:")
            .unwrap(),
        prompt
    );
    let spec = GenerationSpec::greedy(prompt, 20);
    let mut text = String::new();
    let mut finish = None;
    let mut usage = None;
    engine
        .generate(&spec, |piece| {
            match piece {
                Piece::Text {
                    text: t,
                    finish_reason,
                } => {
                    text.push_str(&t);
                    finish = finish_reason.or(finish.take());
                }
                Piece::Usage(u) => usage = Some(u),
            }
            true
        })
        .unwrap();
    let want_text = engine.tokenizer().decode(&want, true).unwrap();
    assert_eq!(text, want_text);
    assert_eq!(finish.as_deref(), Some("length"));
    assert_eq!(usage.unwrap().completion_tokens, 20);
}

fn cpu_model_path() -> String {
    tiny_model().to_string_lossy().into_owned()
}

/// Chats until `engine` answers (health checks run every 500 ms), or panics after `limit`.
fn answered_by(api: &Api, engine: &str, limit: Duration) -> Answer {
    let deadline = Instant::now() + limit;
    loop {
        let answer = api.chat_answer(json!({"messages": user("hi"), "max_tokens": 4, "seed": 1}));
        assert_eq!(answer.status, 200, "{}", answer.body);
        if answer.engine.as_deref() == Some(engine) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{engine} did not take over: {:?}",
            answer.engine
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn gpu_backend_switches_between_vllm_and_the_cpu_engine() {
    // vLLM boots for a minute or two; meanwhile the CPU engine answers.
    let mut vllm = Vllm::start();
    let backend = Backend::start(&[vllm.url()], &[("CPU_MODEL_PATH", &cpu_model_path())]);
    let api = Api::new(&backend);

    eprintln!("check: vLLM booting, the CPU engine answers");
    let answer = answered_by(&api, "cpu", Duration::from_secs(10));
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    let usage = &body["usage"];
    assert!(
        (1..=4).contains(&usage["completion_tokens"].as_u64().unwrap()),
        "{usage}"
    );
    let health = api.health();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["inference_engine"], "cpu", "{health}");
    assert_eq!(health["engines"][1]["engine"], "cpu", "{health}");

    eprintln!("check: streaming on the CPU engine, greedy to the token limit");
    let chunks = api.chat_stream(json!({
        "messages": user("hello"), "temperature": 0, "max_tokens": 8, "stream": true,
        "stream_options": {"include_usage": true}
    }));
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 8, "{chunks:?}");

    eprintln!("check: vLLM up, vLLM takes over");
    vllm.wait();
    answered_by(&api, "vLLM", Duration::from_secs(10));
    assert_eq!(api.health()["inference_engine"], "vLLM");

    eprintln!("check: vLLM killed, the next request is answered by the CPU engine");
    vllm.process.kill();
    let answer = api.chat_answer(json!({"messages": user("still there?"), "max_tokens": 4}));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.engine.as_deref(), Some("cpu"));
    assert_eq!(api.health()["inference_engine"], "cpu");

    let (_, metrics) = api.get("/metrics");
    for series in [
        "gpu_backend_generations_total{inference_engine=\"cpu\"}",
        "gpu_backend_generations_total{inference_engine=\"vLLM\"}",
        "gpu_backend_engine_available{engine=\"cpu\",server=\"local\"} 1",
        "gpu_backend_failovers_total",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
}

#[test]
fn engine_cpu_serves_without_vllm_and_refuses_a_missing_model() {
    let backend = Backend::start(
        &[],
        &[("ENGINE", "cpu"), ("CPU_MODEL_PATH", &cpu_model_path())],
    );
    let api = Api::new(&backend);
    let answer = answered_by(&api, "cpu", Duration::from_secs(10));
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    e2e::openai_spec::completion(&body, "the CPU engine's whole answer");
    assert!(
        body["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );
    let streamed = api.chat(json!({"messages": user("hi"), "max_tokens": 4, "seed": 1,
        "stream": true, "stream_options": {"include_usage": true}}));
    assert_eq!(streamed.0, 200, "{}", streamed.1);
    let chunks = e2e::openai_spec::stream(&e2e::backend_api::sse_data(&streamed.1), "CPU stream");
    assert!(
        chunks.last().unwrap()["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let health = api.health();
    assert_eq!(health["engines"].as_array().unwrap().len(), 1, "{health}");

    // A directory without the weights: a clear message, and no server.
    let empty = std::env::temp_dir().join(format!("no-weights-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    for name in ["tokenizer.json", "config.json"] {
        std::fs::copy(tiny_model().join(name), empty.join(name)).unwrap();
    }
    let stderr = refused_start(&empty);
    assert!(
        stderr.contains("model.safetensors not found") && stderr.contains("CPU_MODEL_PATH"),
        "{stderr}"
    );
    // A file that is not safetensors: refused as malformed.
    std::fs::write(empty.join("model.safetensors"), b"not a model at all").unwrap();
    let stderr = refused_start(&empty);
    assert!(
        stderr.contains("is not a usable BLOOM checkpoint"),
        "{stderr}"
    );
    // A checkpoint cut short (an interrupted copy): refused, saying so.
    let whole = std::fs::read(tiny_model().join("model.safetensors")).unwrap();
    std::fs::write(empty.join("model.safetensors"), &whole[..whole.len() / 2]).unwrap();
    let stderr = refused_start(&empty);
    assert!(stderr.contains("truncated"), "{stderr}");
    let _ = std::fs::remove_dir_all(&empty);
}

/// Starts gpu-backend with `ENGINE=cpu` on `model_dir`, which must make it exit: its stderr.
fn refused_start(model_dir: &std::path::Path) -> String {
    let out = Command::new(Backend::debug_binary())
        .env("ENGINE", "cpu")
        .env("CPU_MODEL_PATH", model_dir)
        .env("BACKEND_DEV", "true")
        .env("BACKEND_LISTEN", format!("127.0.0.1:{}", e2e::free_port()))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "gpu-backend started on {model_dir:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
