//! What a message asks for, as a trained intent classifier reads it: CLINC150's 150 intents
//! of a personal assistant, or `oos` (out of scope). The model (`models/intent/`, trained by
//! `models/train_intent.py` on CLINC150, Larson et al. 2019, CC BY 3.0) is embedded in the
//! binary and runs in pure Rust on every platform. An upstream NLU's intent, when it is sure
//! enough, wins over the model's.

pub mod evaluation;
pub mod features;
pub mod kinds;
pub mod model;
pub mod topics;

use std::sync::OnceLock;

pub use kinds::{Control, SmallTalk, TurnKind};
pub use model::{IntentModel, ModelError, Prediction};

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

/// Small talk needs more confidence than the model's out-of-scope threshold: a wrong small-talk
/// reply ("I was made by the Eindr team" to a question about a president) misleads, while the
/// general reply to real small talk only disappoints. Chosen on `val`: the most small talk
/// with its own reply (283 of 300 from 0.09 to 0.25) and the fewest other utterances answered
/// as small talk below 0.5 % (0.10: 15 of 2,800; 0.15: 13; 0.20: 10).
pub const SMALL_TALK_MIN_CONFIDENCE: f32 = 0.2;

/// The embedded model, parsed once per instance.
pub fn model() -> Result<&'static IntentModel<'static>, &'static ModelError> {
    MODEL.get_or_init(|| IntentModel::parse(WEIGHTS)).as_ref()
}

/// The model's reading of `message`; `None` only if the embedded weights do not parse (a
/// build that shipped a broken file), which the tests rule out.
pub fn understand(message: &str) -> Option<Prediction<'static>> {
    model().ok().map(|m| m.predict(message))
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
/// confidence and a name minimal mode has replies for; otherwise the model's (out of scope
/// below its threshold, and small talk below [`SMALL_TALK_MIN_CONFIDENCE`]).
pub fn read<'a>(message: &str, context: Option<&'a ChatContext>) -> Reading<'a> {
    read_with(context, || understand(message))
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
        Some(prediction) => {
            let kind = TurnKind::of(prediction.intent).unwrap_or(TurnKind::OutOfScope);
            let unsure_small_talk =
                kind.is_small_talk() && prediction.confidence < SMALL_TALK_MIN_CONFIDENCE;
            Reading {
                intent: if unsure_small_talk {
                    "oos"
                } else {
                    prediction.intent
                },
                confidence: prediction.confidence,
                kind: if unsure_small_talk {
                    TurnKind::OutOfScope
                } else {
                    kind
                },
                upstream: false,
            }
        }
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
