//! eindr-chat GPU backend: an OpenAI-compatible chat service in front of vLLM serving BLOOM.
//! It owns BLOOM's prompt template (bloom-560m has no chat template), fits the history into
//! the context window with the model's own tokenizer, streams tokens back, spreads requests
//! over healthy vLLM servers, and can supervise vLLM itself.

pub mod config;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod postprocess;
pub mod process;
pub mod prompt;
pub mod service;
pub mod sse;
pub mod supervisor;
pub mod tokenizer;
