//! OpenAI's published OpenAPI document (`$EINDR_TEST_DATA/openai-openapi/openapi.json`, MIT)
//! as the judge of every `/v1` answer: whole answers, stream chunks, the model list and
//! errors are validated against its `components.schemas` (JSON Schema 2020-12, every `$ref`
//! resolved inside the document).
//!
//! Where the document is stricter than OpenAI's live API, the live API wins, and each such
//! place is named here ([`LIVE_API`]) and in docs/api.md, never skipped silently:
//! - it keeps OpenAPI 3.0's `nullable: true` on some schemas, a keyword JSON Schema 2020-12
//!   ignores, while the API sends `null` there (a stream chunk's `usage` and `logprobs`): such a
//!   schema is read as `anyOf: [itself, null]`;
//! - it types a stream chunk's `finish_reason` as a string, while the API sends `null` on every
//!   chunk but the last: read as `anyOf: [string, null]`.

use std::sync::OnceLock;

use serde_json::{Value, json};

/// The places where the document is read as the live API behaves.
pub const LIVE_API: [&str; 2] = [
    "`nullable: true` (OpenAPI 3.0) read as `anyOf: [schema, null]`",
    "CreateChatCompletionStreamResponse.choices[].finish_reason may be null",
];

/// The document, with the live API's readings applied.
fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let dir = std::env::var("EINDR_TEST_DATA")
            .expect("EINDR_TEST_DATA is not set: run the suite through `cargo xtask test`");
        let path = std::path::Path::new(&dir).join("openai-openapi/openapi.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        nullable_as_any_of(&mut doc);
        let finish = &mut doc["components"]["schemas"]["CreateChatCompletionStreamResponse"]
            ["properties"]["choices"]["items"]["properties"]["finish_reason"];
        assert!(finish.is_object(), "the document moved finish_reason");
        let strict = finish.take();
        *finish = json!({"anyOf": [strict, {"type": "null"}]});
        doc
    })
}

/// Rewrites every schema object carrying `nullable: true` into `anyOf: [it, null]`.
fn nullable_as_any_of(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                nullable_as_any_of(child);
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                let inner = Value::Object(std::mem::take(map));
                map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_as_any_of),
        _ => {}
    }
}

/// A validator for one of the document's schemas.
fn validator(schema: &str) -> jsonschema::Validator {
    let mut root = document().clone();
    root["$ref"] = json!(format!("#/components/schemas/{schema}"));
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    jsonschema::draft202012::options()
        .build(&root)
        .unwrap_or_else(|e| panic!("{schema}: {e}"))
}

/// The validators the tests use, built once.
struct Validators {
    completion: jsonschema::Validator,
    chunk: jsonschema::Validator,
    models: jsonschema::Validator,
    error: jsonschema::Validator,
}

fn validators() -> &'static Validators {
    static VALIDATORS: OnceLock<Validators> = OnceLock::new();
    VALIDATORS.get_or_init(|| Validators {
        completion: validator("CreateChatCompletionResponse"),
        chunk: validator("CreateChatCompletionStreamResponse"),
        models: validator("ListModelsResponse"),
        error: validator("ErrorResponse"),
    })
}

fn check(validator: &jsonschema::Validator, schema: &str, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: not a valid {schema}: {errors:?}\n{instance}"
    );
}

pub fn completion(body: &Value, what: &str) {
    check(
        &validators().completion,
        "CreateChatCompletionResponse",
        body,
        what,
    );
}

pub fn chunk(body: &Value, what: &str) {
    check(
        &validators().chunk,
        "CreateChatCompletionStreamResponse",
        body,
        what,
    );
}

pub fn models(body: &Value, what: &str) {
    check(&validators().models, "ListModelsResponse", body, what);
}

pub fn error(body: &Value, what: &str) {
    check(&validators().error, "ErrorResponse", body, what);
}

/// Every frame of a `/v1` stream: each chunk valid, an error frame a valid error, `[DONE]`
/// last. Returns the chunks.
pub fn stream(frames: &[String], what: &str) -> Vec<Value> {
    assert_eq!(
        frames.last().map(String::as_str),
        Some("[DONE]"),
        "{what}: {frames:?}"
    );
    let mut chunks = Vec::new();
    for frame in &frames[..frames.len() - 1] {
        let value: Value = serde_json::from_str(frame)
            .unwrap_or_else(|e| panic!("{what}: frame {frame:?} is not JSON: {e}"));
        if value.get("error").is_some() {
            error(&value, what);
        } else {
            chunk(&value, what);
            chunks.push(value);
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_refuses_what_openai_would_not_send() {
        let v = validators();
        let good = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                "message": {"role": "assistant", "content": "hi", "refusal": null}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
        assert!(v.completion.is_valid(&good));
        let mut no_refusal = good.clone();
        no_refusal["choices"][0]["message"]
            .as_object_mut()
            .unwrap()
            .remove("refusal");
        assert!(!v.completion.is_valid(&no_refusal));
        let mut no_choices = good.clone();
        no_choices.as_object_mut().unwrap().remove("choices");
        assert!(!v.completion.is_valid(&no_choices));
        // The live API's readings: null finish_reason, usage and logprobs in a chunk.
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": null, "finish_reason": null}],
            "usage": null});
        assert!(v.chunk.is_valid(&chunk));
        let mut bad_reason = chunk.clone();
        bad_reason["choices"][0]["finish_reason"] = json!("tired");
        assert!(!v.chunk.is_valid(&bad_reason));
        assert!(
            !v.error
                .is_valid(&json!({"error": {"message": "m", "type": "t", "code": null}}))
        );
        assert!(v.error.is_valid(
            &json!({"error": {"message": "m", "type": "t", "code": null, "param": null}})
        ));
    }

    #[test]
    fn nullable_becomes_any_of_null() {
        let mut schema = json!({"properties": {"a": {"type": "object", "nullable": true}}});
        nullable_as_any_of(&mut schema);
        assert_eq!(
            schema["properties"]["a"],
            json!({"anyOf": [{"type": "object"}, {"type": "null"}]})
        );
    }
}
