//! Which engine made an answer: gpu-backend names it in a response header, the edge reports
//! it in `model_info.inference_engine`, keeps it in history, and counts it in metrics.

use serde::{Deserialize, Serialize};

/// gpu-backend's response header naming the engine that answered.
pub const ENGINE_HEADER: &str = "x-inference-engine";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InferenceEngine {
    /// A vLLM server (on a GPU in production).
    #[serde(rename = "vLLM")]
    Vllm,
    /// gpu-backend's own CPU engine (tract-onnx).
    #[serde(rename = "cpu")]
    Cpu,
    /// The edge's minimal mode: the intent model and written replies, no language model.
    #[serde(rename = "minimal")]
    Minimal,
}

impl InferenceEngine {
    /// The name on the wire, in history, and in metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Vllm => "vLLM",
            Self::Cpu => "cpu",
            Self::Minimal => "minimal",
        }
    }

    /// The engine a gpu-backend answer names in [`ENGINE_HEADER`]; vLLM when it says nothing
    /// (gpu-backend before the header existed, or vLLM itself).
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.eq_ignore_ascii_case(Self::Cpu.as_str()) => Self::Cpu,
            _ => Self::Vllm,
        }
    }
}

impl std::fmt::Display for InferenceEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::InferenceEngine;

    #[test]
    fn names_on_the_wire_and_in_the_header() {
        for engine in [
            InferenceEngine::Vllm,
            InferenceEngine::Cpu,
            InferenceEngine::Minimal,
        ] {
            let json = serde_json::to_string(&engine).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", engine.as_str()));
        }
        assert_eq!(
            InferenceEngine::from_header(Some("CPU")),
            InferenceEngine::Cpu
        );
        assert_eq!(
            InferenceEngine::from_header(Some("vLLM")),
            InferenceEngine::Vllm
        );
        assert_eq!(InferenceEngine::from_header(None), InferenceEngine::Vllm);
    }
}
