//! The contract between the edge and gpu-backend, written once and used by both sides:
//! the OpenAI-shaped chat request and answers that cross the wire, the engine names and the
//! header that carries them, and the bounds of the generation settings.
//!
//! Only `serde`: the edge builds it for WebAssembly, gpu-backend natively.

pub mod engine;
pub mod openai;
pub mod sampling;

pub use engine::{ENGINE_HEADER, InferenceEngine};
