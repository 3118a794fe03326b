//! OpenAI's chat shapes as they cross between the edge and gpu-backend: the request the edge
//! sends (`POST /v1/chat/completions`, with Eindr's `context` extension), the whole answer,
//! the streamed chunks, and the error body. gpu-backend serves them; the edge builds the
//! request and reads the stream with the same types.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage<'a> {
    pub role: Role,
    pub content: Cow<'a, str>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// A chat request. Unknown OpenAI fields are accepted and ignored, as OpenAI servers do;
/// fields left out are not sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage<'a>>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Extra stop sequences (OpenAI's `stop`: a string or up to 4), on top of the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// The edge's context for this turn (intent, processing result): an Eindr extension,
    /// free-form JSON that gpu-backend turns into a prompt line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

/// A whole answer's message: OpenAI always sends `refusal` (null when the model did not
/// refuse), and its specification requires it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerMessage {
    pub role: Role,
    pub content: String,
    #[serde(default)]
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: AnswerMessage,
    /// Always null: no log probabilities are returned (OpenAI sends the field regardless).
    #[serde(default)]
    pub logprobs: Option<Value>,
    pub finish_reason: String,
}

/// A whole answer (`"stream": false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: Cow<'static, str>,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// One `data:` frame of a streamed answer: a chunk of text, the closing usage (`choices`
/// empty), or the error that ends a stream cut after it began (`error` set, nothing else).
/// Every field has a default, so a reader accepts each of the three.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub object: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub created: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<ChunkChoice>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// OpenAI's error body: `{"error": {"message", "type", "code", "param"}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A string from gpu-backend and vLLM; other servers send numbers or null.
    #[serde(default)]
    pub code: Value,
    #[serde(default)]
    pub param: Value,
}

impl ErrorDetail {
    /// The code as text (`unknown` when there is none).
    pub fn code_text(&self) -> String {
        match &self.code {
            Value::String(code) => code.clone(),
            Value::Null => "unknown".to_owned(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_takes_text_usage_and_error_frames() {
        let text: ChatCompletionChunk = serde_json::from_str(
            r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
        )
        .unwrap_or_default();
        let choices = text.choices.unwrap_or_default();
        assert_eq!(choices[0].delta.content.as_deref(), Some("Hi"));
        let usage: ChatCompletionChunk = serde_json::from_str(
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        )
        .unwrap_or_default();
        assert_eq!(usage.usage.map(|u| u.total_tokens), Some(5));
        let error: ChatCompletionChunk = serde_json::from_str(
            r#"{"error":{"message":"boom","type":"server_error","code":"engine_error","param":null}}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            error.error.map(|e| e.code_text()).as_deref(),
            Some("engine_error")
        );
    }

    #[test]
    fn a_request_sends_only_what_is_set() {
        let request = ChatRequest {
            messages: vec![ChatMessage {
                role: Role::User,
                content: "hello".into(),
            }],
            stream: true,
            temperature: Some(0.5),
            ..ChatRequest::default()
        };
        let json = serde_json::to_value(&request).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"messages":[{"role":"user","content":"hello"}],"stream":true,"temperature":0.5})
        );
    }
}
