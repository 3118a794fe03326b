//! Minimal mode: contextual replies from rules, chosen with the platform's randomness.
//! A reply never repeats the user's previous assistant turn word for word.

pub mod intent;
pub mod phrasebook;
mod rules;
pub mod task;

use crate::api::ChatContext;
use intent::SmallTalk;
use task::{TaskKind, TaskSlots, speakable};

/// A reply and what it was based on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    /// The intent recorded with the turn.
    pub intent: String,
    pub context_used: bool,
}

/// Picks and renders one of `templates`, avoiding the text `previous`. `roll` is a random
/// number. Renders at most two templates (the hot path never renders them all).
fn choose(
    templates: &[&str],
    render: impl Fn(&str) -> String,
    previous: Option<&str>,
    roll: u64,
) -> String {
    let n = templates.len() as u64;
    if n == 0 {
        return String::new();
    }
    let first = (roll % n) as usize;
    let text = render(templates[first]);
    if n > 1 && previous == Some(text.as_str()) {
        // Any of the others, still at random.
        let step = 1 + ((roll / n) % (n - 1)) as usize;
        return render(templates[(first + step) % n as usize]);
    }
    text
}

fn fill(template: &str, slots: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in slots {
        if out.contains(name) {
            out = out.replace(name, value);
        }
    }
    out
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Slot values of a successful task.
fn task_done_slots(slots: &TaskSlots) -> Vec<(&'static str, String)> {
    let quoted = slots.title.as_ref().map(|t| format!("'{t}'"));
    let for_title = quoted
        .as_ref()
        .map(|q| format!(" for {q}"))
        .unwrap_or_default();
    let about_title = quoted
        .as_ref()
        .map(|q| format!(" about {q}"))
        .unwrap_or_default();
    let title_or_it = quoted.clone().unwrap_or_else(|| "it".to_owned());
    let title_or_it_cap = capitalise(&title_or_it);
    vec![
        ("{for_title}", for_title),
        ("{about_title}", about_title),
        ("{title_or_it_cap}", title_or_it_cap),
        ("{title_or_it}", title_or_it),
        ("{when}", slots.when.clone()),
        ("{duration}", slots.duration.clone()),
    ]
}

/// Slot values of a failed task.
fn task_failed_slots(
    kind: TaskKind,
    slots: &TaskSlots,
    error: Option<&str>,
) -> Vec<(&'static str, String)> {
    let for_title = slots
        .title
        .as_ref()
        .map(|t| format!(" for '{t}'"))
        .unwrap_or_default();
    let reason = error
        .map(speakable)
        .map(|r| r.trim_end_matches(['.', '!', '?']).to_owned())
        .filter(|r| !r.is_empty())
        .map(|r| {
            // Mid-sentence after a colon: lower-case the first letter unless it's an acronym.
            let mut chars = r.chars();
            match (chars.next(), chars.next()) {
                (Some(a), Some(b)) if a.is_uppercase() && !b.is_uppercase() => {
                    a.to_lowercase().chain(r.chars().skip(1)).collect()
                }
                _ => r,
            }
        })
        .unwrap_or_else(|| phrasebook::NO_REASON.to_owned());
    vec![
        ("{noun}", kind.noun().to_owned()),
        ("{for_title}", for_title),
        ("{reason}", reason),
    ]
}

/// The sentence that ends a model answer which broke off: the user hears a proper end, not
/// a half sentence followed by silence.
pub fn closing_sentence(roll: u64) -> &'static str {
    let options = phrasebook::CUT_SHORT;
    options
        .get((roll % options.len().max(1) as u64) as usize)
        .copied()
        .unwrap_or("")
}

/// The reply for a message with its optional context. `previous` is the user's last
/// assistant turn; `roll` is a random number from the platform.
pub fn minimal_reply(
    message: &str,
    context: Option<&ChatContext>,
    previous: Option<&str>,
    roll: u64,
) -> Reply {
    let intent = context.and_then(|c| c.intent.as_deref());
    if let Some(result) = context.and_then(|c| c.processing_result.as_ref()) {
        let kind = intent
            .and_then(TaskKind::from_intent)
            .unwrap_or(TaskKind::Other);
        let slots = TaskSlots::from_data(result.data.as_ref());
        let (templates, values) = if result.success {
            (phrasebook::task_done(kind), task_done_slots(&slots))
        } else {
            (
                phrasebook::TASK_FAILED,
                task_failed_slots(kind, &slots, result.error.as_deref()),
            )
        };
        return Reply {
            text: choose(templates, |t| fill(t, &values), previous, roll),
            intent: intent.unwrap_or(kind.noun()).to_owned(),
            context_used: true,
        };
    }
    let from_context = intent.and_then(SmallTalk::from_intent);
    let family = from_context.unwrap_or_else(|| intent::classify(message));
    Reply {
        text: choose(
            phrasebook::small_talk(family),
            str::to_owned,
            previous,
            roll,
        ),
        intent: family.name().to_owned(),
        context_used: from_context.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ProcessingResult;
    use serde_json::json;

    fn context(
        intent: &str,
        success: bool,
        data: serde_json::Value,
        error: Option<&str>,
    ) -> ChatContext {
        ChatContext {
            intent: Some(intent.to_owned()),
            processing_result: Some(ProcessingResult {
                success,
                data: data.as_object().cloned(),
                error: error.map(str::to_owned),
            }),
            ..ChatContext::default()
        }
    }

    #[test]
    fn reminder_acknowledgment_fills_slots() {
        let ctx = context(
            "create_reminder",
            true,
            json!({"title": "meeting", "time": "14:00"}),
            None,
        );
        let reply = minimal_reply("remind me", Some(&ctx), None, 0);
        assert_eq!(
            reply.text,
            "Perfect! I've created your reminder for 'meeting' at 2 PM. Is there anything else you need?"
        );
        assert!(reply.context_used);
        assert_eq!(reply.intent, "create_reminder");
        for roll in 0..16 {
            let r = minimal_reply("remind me", Some(&ctx), None, roll);
            assert!(r.text.contains("'meeting'"), "{}", r.text);
            assert!(r.text.contains("2 PM"), "{}", r.text);
            assert!(!r.text.contains('{'), "unfilled slot: {}", r.text);
        }
    }

    #[test]
    fn every_task_phrasing_is_fully_filled() {
        for intent in [
            "reminder",
            "alarm",
            "timer",
            "add_event",
            "note",
            "todo",
            "other",
        ] {
            for data in [
                json!({}),
                json!({"title": "x", "time": "7:00", "duration": "5 minutes"}),
            ] {
                for success in [true, false] {
                    let ctx = context(intent, success, data.clone(), Some("Calendar is full"));
                    for roll in 0..8 {
                        let r = minimal_reply("", Some(&ctx), None, roll);
                        assert!(!r.text.contains('{') && !r.text.contains('}'), "{}", r.text);
                        assert!(!r.text.contains("  "), "{}", r.text);
                    }
                }
            }
        }
    }

    #[test]
    fn failure_reply_is_honest_and_uses_the_error() {
        let ctx = context(
            "create_reminder",
            false,
            json!({"title": "dentist"}),
            Some("The time is in the past."),
        );
        for roll in 0..6 {
            let r = minimal_reply("", Some(&ctx), None, roll);
            assert!(r.text.contains("the time is in the past"), "{}", r.text);
            assert!(r.text.contains("'dentist'"), "{}", r.text);
            assert!(!r.text.contains("past.."), "{}", r.text);
        }
        let ctx = context("set_alarm", false, json!({}), None);
        let r = minimal_reply("", Some(&ctx), None, 1);
        assert!(r.text.contains(phrasebook::NO_REASON), "{}", r.text);
    }

    #[test]
    fn never_the_same_reply_twice_in_a_row() {
        let mut previous: Option<String> = None;
        for roll in 0..200u64 {
            let r = minimal_reply(
                "hello",
                None,
                previous.as_deref(),
                roll.wrapping_mul(2654435761),
            );
            assert_ne!(Some(&r.text), previous.as_ref());
            previous = Some(r.text);
        }
    }

    #[test]
    fn every_family_has_three_plain_phrasings() {
        use intent::SmallTalk::*;
        for family in [
            Greeting,
            HowAreYou,
            Thanks,
            Goodbye,
            WhoAreYou,
            WhatCanYouDo,
            Joke,
            Compliment,
            Help,
            GeneralQuestion,
            Unknown,
        ] {
            let phrases = phrasebook::small_talk(family);
            assert!(phrases.len() >= 3, "{family:?}");
            for p in phrases {
                assert!(p.is_ascii(), "TTS-unfriendly character in {p}");
                assert!(!p.contains(['*', '#', '_', '`']), "markdown in {p}");
            }
        }
    }

    #[test]
    fn chit_chat_and_questions() {
        let r = minimal_reply("What is the capital of France?", None, None, 0);
        assert_eq!(r.intent, "general_question");
        assert!(r.text.contains("look"), "{}", r.text);
        let ctx = ChatContext {
            intent: Some("greeting".into()),
            ..ChatContext::default()
        };
        let r = minimal_reply("yo", Some(&ctx), None, 0);
        assert_eq!(r.intent, "greeting");
        assert!(r.context_used);
    }
}
