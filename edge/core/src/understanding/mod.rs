//! What a message asks for, as a trained intent classifier reads it: CLINC150's 150 intents
//! of a personal assistant, or `oos` (out of scope). The model (`models/intent/`, trained by
//! `models/train_intent.py` on CLINC150, Larson et al. 2019, CC BY 3.0) is embedded in the
//! binary and runs in pure Rust on every platform.

pub mod features;
pub mod model;

use std::sync::OnceLock;

pub use model::{IntentModel, ModelError, Prediction};

/// The committed weights.
static WEIGHTS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/intent/intent.bin"
));

static MODEL: OnceLock<Result<IntentModel<'static>, ModelError>> = OnceLock::new();

/// The embedded model, parsed once per instance.
pub fn model() -> Result<&'static IntentModel<'static>, &'static ModelError> {
    MODEL.get_or_init(|| IntentModel::parse(WEIGHTS)).as_ref()
}

/// The model's reading of `message`; `None` only if the embedded weights do not parse (a
/// build that shipped a broken file), which the tests rule out.
pub fn understand(message: &str) -> Option<Prediction<'static>> {
    model().ok().map(|m| m.predict(message))
}
