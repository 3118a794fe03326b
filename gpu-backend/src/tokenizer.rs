//! Token counts for prompt truncation, with the served model's own tokenizer.

use std::path::Path;

use crate::error::BackendError;
use crate::prompt::TokenCounter;

/// The model's `tokenizer.json` (what vLLM loads from the model directory).
pub struct ModelTokenizer(tokenizers::Tokenizer);

impl ModelTokenizer {
    pub fn load(path: &Path) -> Result<Self, BackendError> {
        tokenizers::Tokenizer::from_file(path)
            .map(Self)
            .map_err(|e| BackendError::Tokenizer(format!("{}: {e}", path.display())))
    }
}

impl TokenCounter for ModelTokenizer {
    fn count(&self, text: &str) -> Result<usize, BackendError> {
        // Ids only: the offsets `encode` also computes are not needed for a count.
        self.0
            .encode_fast(text, false)
            .map(|encoding| encoding.len())
            .map_err(|e| BackendError::Tokenizer(e.to_string()))
    }
}

/// Without the tokenizer file: the UTF-8 length, an upper bound for byte-level BPE (BLOOM's),
/// so truncation errs on the side of a prompt that fits.
pub struct ByteBound;

impl TokenCounter for ByteBound {
    fn count(&self, text: &str) -> Result<usize, BackendError> {
        Ok(text.len())
    }
}
