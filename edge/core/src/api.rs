//! The JSON shapes of the public API.
//!
//! Unknown-field policy: the top level of a request is strict (an unknown field is a 422,
//! so a typo such as `mesage` is caught), while `context` is open (it comes from the
//! upstream NLU pipeline, which may add fields; unknown ones are ignored and `data` is
//! free-form).

use eindr_contract::InferenceEngine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Auto,
    Minimal,
    Full,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondRequest {
    pub message: String,
    #[serde(default)]
    pub context: Option<ChatContext>,
    #[serde(default)]
    pub mode: Mode,
    /// Answer as server-sent events (as does `Accept: text/event-stream`).
    #[serde(default)]
    pub stream: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChatContext {
    #[serde(default)]
    pub intent: Option<String>,
    #[serde(default)]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub original_transcription: Option<String>,
    #[serde(default)]
    pub processing_result: Option<ProcessingResult>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ProcessingResult {
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub data: Option<Map<String, Value>>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub model_name: String,
    pub inference_engine: InferenceEngine,
    /// Seconds.
    pub response_time: f64,
}

/// The answer of a turn (`POST /api/chat/respond`; the closing frame of a streamed one).
#[derive(Debug, Clone, Serialize)]
pub struct RespondResponse {
    pub success: bool,
    pub response: String,
    pub context_used: bool,
    pub fallback_used: bool,
    pub model_info: ModelInfo,
    /// The intent the turn was read as: the upstream NLU's when it was sure, else the edge's
    /// model's (CLINC150's names, `oos` for out of scope).
    pub intent: String,
    /// How sure that reading is, from 0 to 1.
    pub confidence: f64,
    /// The answer is a model's answer to the same question kept by the edge (`CACHE_MODE`);
    /// `model_info.inference_engine` names the engine that made it.
    pub cached: bool,
}

/// How a turn's answer is shaped: the Eindr API's, or OpenAI's chat completion.
#[derive(Debug, Clone, PartialEq)]
pub enum Flavour {
    Eindr,
    OpenAi(OpenAiTurn),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiTurn {
    pub id: String,
    pub created_s: u64,
    pub model: String,
    /// `stream_options.include_usage`: every chunk carries `usage: null`, and a last one
    /// (no choices) the counts.
    pub include_usage: bool,
}

/// OpenAI's chat request, as far as the edge reads it. The sampling parameters are checked
/// as OpenAI checks them, but the operator's settings generate (`CHAT_*`); what the edge
/// cannot do (`n` > 1, tools, structured output, log probabilities) is refused by name.
/// Other fields are ignored: SDKs send many, and new ones.
#[derive(Debug, Clone, Deserialize)]
pub struct OpenAiChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<OpenAiMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<OpenAiStreamOptions>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub n: Option<i64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub stop: Option<serde_json::Value>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// Fields whose presence alone is refused: kept as raw JSON.
    #[serde(default)]
    pub tools: Option<serde_json::Value>,
    #[serde(default)]
    pub tool_choice: Option<serde_json::Value>,
    #[serde(default)]
    pub functions: Option<serde_json::Value>,
    #[serde(default)]
    pub function_call: Option<serde_json::Value>,
    #[serde(default)]
    pub response_format: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct OpenAiStreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OpenAiMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<OpenAiContent>,
}

/// A message's content: a string, or a list of parts of which the text ones count.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OpenAiContent {
    Text(String),
    Parts(Vec<OpenAiPart>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct OpenAiPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

impl OpenAiContent {
    pub fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Parts(parts) => parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}
