//! The JSON shapes of the public API.
//!
//! Unknown-field policy: the top level of a request is strict (an unknown field is a 422,
//! so a typo such as `mesage` is caught), while `context` is open (it comes from the
//! upstream NLU pipeline, which may add fields; unknown ones are ignored and `data` is
//! free-form).

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
    pub inference_engine: &'static str,
    /// Seconds.
    pub response_time: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RespondResponse {
    pub success: bool,
    pub response: String,
    pub context_used: bool,
    pub fallback_used: bool,
    pub model_info: ModelInfo,
}
