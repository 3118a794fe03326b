//! What a message asks for, as a trained intent classifier reads it: CLINC150's 150 intents
//! of a personal assistant, or `oos` (out of scope). The model (`models/intent/`, trained by
//! `models/train_intent.py` on CLINC150, Larson et al. 2019, CC BY 3.0) is embedded in the
//! binary and runs in pure Rust on every platform. An upstream NLU's intent, when it is sure
//! enough, wins over the model's. A message is read as typed text: a speech transcript's
//! address to the assistant, fillers and spoken numbers are taken care of first
//! ([`transcript`]).

pub mod evaluation;
pub mod features;
pub mod kinds;
pub mod model;
pub mod thresholds;
pub mod topics;
pub mod transcript;

use std::sync::OnceLock;

pub use kinds::{Control, SmallTalk, TurnKind};
pub use model::{IntentModel, ModelError, Prediction};
pub use thresholds::{THRESHOLDS, Thresholds};
pub use transcript::AssistantName;

use crate::api::ChatContext;

/// The committed weights.
static WEIGHTS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/intent/intent.bin"
));

static MODEL: OnceLock<Result<IntentModel<'static>, ModelError>> = OnceLock::new();

/// The lowest confidence at which the upstream NLU's `context.intent` decides the turn (an
/// intent sent without a confidence counts as sure).
pub const UPSTREAM_MIN_CONFIDENCE: f64 = 0.5;

/// The embedded model, parsed once per instance.
pub fn model() -> Result<&'static IntentModel<'static>, &'static ModelError> {
    MODEL.get_or_init(|| IntentModel::parse(WEIGHTS)).as_ref()
}

/// The model's reading of `message` (typed, or a transcript of speech addressed to
/// `assistant`); `None` only if the embedded weights do not parse (a build that shipped a
/// broken file), which the tests rule out.
pub fn understand(message: &str, assistant: &AssistantName) -> Option<Prediction<'static>> {
    let model = model().ok()?;
    Some(model.predict_words(&transcript::typed_words(message, assistant)))
}

/// How a turn was understood: the intent that decides the reply and how sure of it we are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading<'a> {
    pub intent: &'a str,
    pub confidence: f32,
    pub kind: TurnKind,
    /// Whether the intent came from the upstream NLU rather than the model.
    pub upstream: bool,
}

/// Reads a turn: the upstream intent when it comes with a task's result, or with enough
/// confidence and a name minimal mode has replies for; otherwise the model's, read with
/// [`THRESHOLDS`], for an assistant of the default name.
pub fn read<'a>(message: &str, context: Option<&'a ChatContext>) -> Reading<'a> {
    read_with(context, || understand(message, &AssistantName::default()))
}

/// [`read`] with the model's prediction supplied by the caller (run only when the upstream
/// intent does not decide), for a turn that needs its reading more than once.
pub fn read_with<'a>(
    context: Option<&'a ChatContext>,
    predict: impl FnOnce() -> Option<Prediction<'static>>,
) -> Reading<'a> {
    if let Some((context, intent)) =
        context.and_then(|c| c.intent.as_deref().map(|intent| (c, intent)))
    {
        let confidence = context.confidence.unwrap_or(1.0);
        let kind = TurnKind::of(intent);
        let decides = context.processing_result.is_some()
            || (kind.is_some() && confidence >= UPSTREAM_MIN_CONFIDENCE);
        if decides {
            return Reading {
                intent,
                confidence: confidence as f32,
                kind: kind.unwrap_or(TurnKind::OutOfScope),
                upstream: true,
            };
        }
    }
    match predict() {
        Some(prediction) => THRESHOLDS.read(&prediction),
        None => Reading {
            intent: "oos",
            confidence: 0.0,
            kind: TurnKind::OutOfScope,
            upstream: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(intent: &str, confidence: Option<f64>) -> ChatContext {
        ChatContext {
            intent: Some(intent.to_owned()),
            confidence,
            ..ChatContext::default()
        }
    }

    #[test]
    fn a_sure_upstream_intent_wins_and_an_unsure_one_does_not() {
        let sure = context("greeting", Some(0.9));
        let reading = read("what's the weather like in paris", Some(&sure));
        assert_eq!((reading.intent, reading.upstream), ("greeting", true));
        let unsure = context("greeting", Some(0.2));
        let reading = read("what's the weather like in paris", Some(&unsure));
        assert_eq!((reading.intent, reading.upstream), ("weather", false));
        let unknown = context("play_chess", None);
        assert!(!read("tell me a joke", Some(&unknown)).upstream);
        assert!(read("hi", Some(&context("thanks", None))).upstream);
    }

    #[test]
    fn the_model_reads_when_nobody_upstream_did() {
        let reading = read("tell me a joke", None);
        assert_eq!(reading.intent, "tell_joke");
        assert_eq!(reading.kind, TurnKind::SmallTalk(SmallTalk::Joke));
        assert!(reading.confidence > 0.5, "{reading:?}");
        let question = read("how many moons does jupiter have", None);
        assert_eq!(question.kind, TurnKind::OutOfScope);
    }
}
