//! Pools that paraphrases share. A history-free turn that the edge read as one of the
//! shareable intents (`CACHE_SHARED_INTENTS`: CLINC150's 15 small-talk intents by default),
//! sure enough (`CACHE_INTENT_MIN_CONFIDENCE`), uses one pool per intent: "tell me a joke"
//! and "make me laugh" are answered from the same answers. Any other turn keeps the exact key
//! (its normalised words), so a question whose answer depends on its words is never shared.

use crate::understanding::{Reading, SmallTalk, TurnKind};

/// Which key a pool has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// One pool per shareable intent.
    Intent,
    /// One pool per normalised message (and intent).
    Exact,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Intent => "intent",
            Self::Exact => "exact",
        }
    }
}

/// What a pool's key is made of, besides the model and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question<'a> {
    /// A shareable intent's CLINC150 name.
    Intent(&'static str),
    Exact {
        message: &'a str,
        intent: &'a str,
    },
}

impl Question<'_> {
    pub fn kind(&self) -> KeyKind {
        match self {
            Self::Intent(_) => KeyKind::Intent,
            Self::Exact { .. } => KeyKind::Exact,
        }
    }
}

/// The least confidence of a reading for its turn to use an intent's pool. Chosen on CLINC150
/// `val` (docs/caching.md): at 0.5, 275 of the 300 small-talk utterances reach a pool (5 of
/// them, read as another small-talk intent, a wrong one) and 1 of the 2,800 others does; at
/// 0.2 (the small-talk reply's own threshold) 10 others would.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.5;

/// `CACHE_SHARED_INTENTS`: CLINC150 intent names (or any alias the edge knows, such as
/// `hello`), comma-separated; `none` for no shared pools. Only small talk may be shared: every
/// other kind's answer depends on the words (a weather question's city, a definition's word),
/// on the user (their name, their tasks) or is out of scope.
pub fn parse_shared_intents(value: &str) -> Result<Vec<&'static str>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match TurnKind::of(name) {
            Some(TurnKind::SmallTalk(family)) => {
                if !names.contains(&family.intent_name()) {
                    names.push(family.intent_name());
                }
            }
            Some(_) => {
                return Err(format!(
                    "{name} is not small talk: only small-talk intents may share answers"
                ));
            }
            None => return Err(format!("{name} is not an intent the edge knows")),
        }
    }
    Ok(names)
}

/// Every small-talk intent: the default list.
pub fn all_small_talk() -> Vec<&'static str> {
    SmallTalk::ALL.iter().map(|f| f.intent_name()).collect()
}

/// The shared pool a turn uses, if any: its reading is a listed intent at `min_confidence` or
/// more. An upstream intent counts only with the confidence it was sent with (one sent
/// without is the client's say-so, not a measured reading).
pub fn shared_intent(
    reading: &Reading<'_>,
    upstream_confidence: Option<f64>,
    shared: &[&'static str],
    min_confidence: f32,
) -> Option<&'static str> {
    let TurnKind::SmallTalk(family) = reading.kind else {
        return None;
    };
    let name = family.intent_name();
    let confidence = if reading.upstream {
        upstream_confidence? as f32
    } else {
        reading.confidence
    };
    (shared.contains(&name) && confidence >= min_confidence).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::understanding::read;

    #[test]
    fn the_list_takes_small_talk_by_any_name_and_refuses_the_rest() {
        assert_eq!(
            parse_shared_intents("hello, tell_joke ,greeting").unwrap(),
            vec!["greeting", "tell_joke"]
        );
        assert_eq!(parse_shared_intents("none").unwrap(), Vec::<&str>::new());
        for refused in ["oos", "reminder", "weather", "user_name", "play_chess"] {
            let err = parse_shared_intents(&format!("greeting,{refused}")).unwrap_err();
            assert!(err.contains(refused), "{err}");
        }
        assert_eq!(all_small_talk().len(), 15);
    }

    #[test]
    fn a_sure_small_talk_reading_shares_and_an_unsure_or_other_one_does_not() {
        let all = all_small_talk();
        let joke = read("tell me a joke", None);
        assert_eq!(shared_intent(&joke, None, &all, 0.5), Some("tell_joke"));
        assert_eq!(shared_intent(&joke, None, &all, 1.01), None);
        assert_eq!(shared_intent(&joke, None, &["greeting"], 0.5), None);
        let question = read("how many moons does jupiter have", None);
        assert_eq!(shared_intent(&question, None, &all, 0.0), None);
    }

    #[test]
    fn an_upstream_intent_shares_only_with_its_confidence() {
        let all = all_small_talk();
        let context = |confidence| crate::api::ChatContext {
            intent: Some("hello".into()),
            confidence,
            ..Default::default()
        };
        let sure = context(Some(0.9));
        let reading = read("wassup", Some(&sure));
        assert!(reading.upstream);
        assert_eq!(
            shared_intent(&reading, Some(0.9), &all, 0.5),
            Some("greeting")
        );
        let unsaid = context(None);
        let reading = read("wassup", Some(&unsaid));
        assert!(reading.upstream);
        assert_eq!(shared_intent(&reading, None, &all, 0.5), None);
    }
}
