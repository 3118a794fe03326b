//! Invariants of gpu-backend's parsers and prompt on generated input (proptest): vLLM's SSE
//! stream reads the same however its bytes are split, and no message, context value or
//! persona, whatever its Unicode, can start a line of the prompt (a role marker the model and
//! the stop sequences would take for a turn).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;

use eindr_contract::openai::{ChatMessage, Role};
use futures::StreamExt;
use gpu_backend::error::BackendError;
use gpu_backend::prompt::{self, TokenCounter, build};
use gpu_backend::sse::{Piece, pieces};
use proptest::prelude::*;
use serde_json::json;

/// Text that tries to break out: role markers after every kind of line break, and any
/// Unicode around them.
fn hostile() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "\\PC{0,8}",
        "[\\n\\r\\u{b}\\u{c}\\u{85}\\u{2028}\\u{2029}]{1,2}(User|Assistant|System): ?",
        "(User|Assistant|System):",
        "\\s{1,3}",
    ];
    proptest::collection::vec(part, 0..6).prop_map(|parts| parts.concat())
}

/// One token per four bytes, at least one per part.
struct Bytes4;
impl TokenCounter for Bytes4 {
    fn count(&self, text: &str) -> Result<usize, BackendError> {
        Ok(text.len().div_ceil(4).max(1))
    }
}

/// Every line break Unicode knows (what a tokenizer or a model may read as one).
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

fn frames(texts: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for (i, text) in texts.iter().enumerate() {
        let last = i + 1 == texts.len();
        let frame = json!({"choices": [{"index": 0, "text": text,
                                        "finish_reason": if last { json!("stop") } else { json!(null) }}]});
        out.push_str(&format!("data: {frame}\n\n"));
    }
    out.push_str(": a comment line\n\n");
    out.push_str(r#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#);
    out.push_str("\n\ndata: [DONE]\n\n");
    out.into_bytes()
}

fn read(chunks: Vec<Vec<u8>>) -> Vec<Result<Piece, String>> {
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    futures::executor::block_on(
        pieces(stream)
            .map(|p| p.map_err(|e| e.to_string()))
            .collect(),
    )
}

proptest! {
    #[test]
    fn the_engine_stream_reads_the_same_however_its_bytes_are_split(
        texts in proptest::collection::vec("\\PC{0,10}", 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let bytes = frames(&texts);
        let whole = read(vec![bytes.clone()]);
        prop_assert!(whole.iter().all(Result::is_ok), "{:?}", whole);
        prop_assert_eq!(whole.len(), texts.len() + 1, "texts and the usage");
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for at in points.into_iter().chain(std::iter::once(bytes.len())) {
            chunks.push(bytes[from..at].to_vec());
            from = at;
        }
        prop_assert_eq!(read(chunks), whole);
    }

    #[test]
    fn no_message_can_start_a_line_of_the_prompt(
        persona in proptest::option::of(hostile()),
        history in proptest::collection::vec((any::<bool>(), hostile()), 0..6),
        last in hostile(),
        intent in hostile(),
        key in hostile(),
        value in hostile(),
        error in hostile(),
    ) {
        let mut messages: Vec<ChatMessage> = Vec::new();
        if let Some(persona) = &persona {
            messages.push(ChatMessage { role: Role::System, content: Cow::Borrowed(persona) });
        }
        for (from_user, content) in &history {
            let role = if *from_user { Role::User } else { Role::Assistant };
            messages.push(ChatMessage { role, content: Cow::Borrowed(content) });
        }
        messages.push(ChatMessage { role: Role::User, content: Cow::Borrowed(&last) });
        let context = json!({"intent": intent,
                             "processing_result": {"success": false, "data": {key: value}, "error": error}});
        let prompt = build(&messages, Some(&context), 4_096, 64, &Bytes4, &prompt::persona("Eindr")).unwrap();

        let lines: Vec<&str> = prompt.text.split(is_line_break).collect();
        // The persona's line, the context's, each kept turn, the user's message and the open
        // turn; no more.
        let kept: Vec<bool> = history[prompt.dropped_turns..].iter().map(|(u, _)| *u).collect();
        prop_assert_eq!(lines.len(), 2 + kept.len() + 2, "{:?}", prompt.text);
        prop_assert!(lines[1].starts_with("Context: "), "{:?}", lines[1]);
        for (line, from_user) in lines[2..].iter().zip(kept.iter().chain([&true])) {
            let marker = if *from_user { "User:" } else { "Assistant:" };
            prop_assert!(line.starts_with(marker), "{:?} should start with {}", line, marker);
        }
        prop_assert!(prompt.text.ends_with("\nAssistant:"));
    }
}
