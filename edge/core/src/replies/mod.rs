//! Minimal mode: a reply for every kind of turn the understanding tells apart, chosen with the
//! platform's randomness. A reply never repeats the user's previous assistant turn word for
//! word (except when asked to repeat it).

pub mod control;
pub mod phrasebook;
pub mod task;

use crate::api::ChatContext;
use crate::understanding::{Reading, TurnKind};
pub use control::Previous;
use control::control_reply;
use task::{TaskKind, TaskSlots, speakable};

/// A reply and what it was based on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    /// The intent recorded with the turn.
    pub intent: String,
    pub context_used: bool,
}

/// Picks and renders one of `templates`, avoiding the text `previous`, with the assistant's
/// name for `{assistant}`. `roll` is a random number. Renders at most two templates (the hot
/// path never renders them all).
fn choose(
    templates: &[&str],
    render: impl Fn(&str) -> String,
    previous: Option<&str>,
    roll: u64,
    assistant: &str,
) -> String {
    let n = templates.len() as u64;
    if n == 0 {
        return String::new();
    }
    let render = |template: &str| {
        let text = render(template);
        if text.contains("{assistant}") {
            text.replace("{assistant}", assistant)
        } else {
            text
        }
    };
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

/// The reply to a turn as `reading` understood it, with its optional context (a task's
/// result is acknowledged). `previous` is the user's last assistant turn; `roll` is a random
/// number from the platform; `assistant` is the name the replies give the assistant
/// (`ASSISTANT_NAME`).
pub fn minimal_reply(
    reading: &Reading<'_>,
    context: Option<&ChatContext>,
    previous: Option<Previous<'_>>,
    roll: u64,
    assistant: &str,
) -> Reply {
    let previous_text = previous.map(|p| p.text);
    if let Some(result) = context.and_then(|c| c.processing_result.as_ref()) {
        let intent = context.and_then(|c| c.intent.as_deref());
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
            text: choose(
                templates,
                |t| fill(t, &values),
                previous_text,
                roll,
                assistant,
            ),
            intent: intent.unwrap_or(kind.noun()).to_owned(),
            context_used: true,
        };
    }
    let plain =
        |templates: &[&str]| choose(templates, str::to_owned, previous_text, roll, assistant);
    let text = match reading.kind {
        TurnKind::SmallTalk(family) => plain(phrasebook::small_talk(family)),
        TurnKind::Control(control) => control_reply(control, previous, roll, assistant),
        TurnKind::Task(kind) => plain(phrasebook::task_how_to(kind)),
        TurnKind::Topic(topic) => {
            let slots = [("{action}", topic.action.to_owned())];
            choose(
                if topic.remindable {
                    phrasebook::TOPIC_WITH_REMINDER
                } else {
                    phrasebook::TOPIC_WITHOUT_REMINDER
                },
                |t| fill(t, &slots),
                previous_text,
                roll,
                assistant,
            )
        }
        TurnKind::OutOfScope => plain(phrasebook::OUT_OF_SCOPE),
    };
    Reply {
        text,
        intent: reading.intent.to_owned(),
        context_used: reading.upstream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ProcessingResult;
    use crate::understanding::transcript::DEFAULT_ASSISTANT_NAME;
    use crate::understanding::{SmallTalk, read, topics::TOPICS};
    use serde_json::json;

    /// The reply the pipeline gives: the turn read, then answered.
    fn reply_to(
        message: &str,
        context: Option<&ChatContext>,
        previous: Option<Previous<'_>>,
        roll: u64,
    ) -> Reply {
        minimal_reply(
            &read(message, context),
            context,
            previous,
            roll,
            DEFAULT_ASSISTANT_NAME,
        )
    }

    fn said<'a>(text: &'a str, intent: &'a str) -> Option<Previous<'a>> {
        Some(Previous {
            text,
            intent: Some(intent),
        })
    }

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
        let reply = reply_to("remind me", Some(&ctx), None, 0);
        assert_eq!(
            reply.text,
            "Perfect! I've created your reminder for 'meeting' at 2 PM. Is there anything else you need?"
        );
        assert!(reply.context_used);
        assert_eq!(reply.intent, "create_reminder");
        for roll in 0..16 {
            let r = reply_to("remind me", Some(&ctx), None, roll);
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
                        let r = reply_to("", Some(&ctx), None, roll);
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
            let r = reply_to("", Some(&ctx), None, roll);
            assert!(r.text.contains("the time is in the past"), "{}", r.text);
            assert!(r.text.contains("'dentist'"), "{}", r.text);
            assert!(!r.text.contains("past.."), "{}", r.text);
        }
        let ctx = context("set_alarm", false, json!({}), None);
        let r = reply_to("", Some(&ctx), None, 1);
        assert!(r.text.contains(phrasebook::NO_REASON), "{}", r.text);
    }

    #[test]
    fn never_the_same_reply_twice_in_a_row() {
        let mut previous: Option<String> = None;
        for roll in 0..200u64 {
            let r = reply_to(
                "hello",
                None,
                previous
                    .as_deref()
                    .map(|text| Previous { text, intent: None }),
                roll.wrapping_mul(2654435761),
            );
            assert_ne!(Some(&r.text), previous.as_ref());
            previous = Some(r.text);
        }
    }

    #[test]
    fn every_phrasing_is_plain_speech_with_its_slots_filled() {
        let plain = |p: &str| {
            assert!(p.is_ascii(), "TTS-unfriendly character in {p}");
            assert!(!p.contains(['*', '#', '_', '`']), "markdown in {p}");
        };
        for family in SmallTalk::ALL {
            let phrases = phrasebook::small_talk(family);
            assert!(phrases.len() >= 3, "{family:?}");
            phrases.iter().for_each(|p| plain(p));
        }
        for kind in [
            TaskKind::Reminder,
            TaskKind::Alarm,
            TaskKind::Timer,
            TaskKind::Event,
            TaskKind::Note,
            TaskKind::ListItem,
            TaskKind::Other,
        ] {
            phrasebook::task_how_to(kind).iter().for_each(|p| plain(p));
        }
        for topic in TOPICS {
            let reading = Reading {
                intent: topic.intent,
                confidence: 1.0,
                kind: TurnKind::Topic(topic),
                upstream: false,
            };
            for roll in 0..3 {
                let text = minimal_reply(&reading, None, None, roll, DEFAULT_ASSISTANT_NAME).text;
                plain(&text);
                assert!(text.contains(topic.action) && !text.contains('{'), "{text}");
            }
        }
    }

    #[test]
    fn each_kind_of_turn_gets_its_reply() {
        let joke = reply_to("tell me a joke", None, None, 0);
        assert_eq!(joke.intent, "tell_joke");
        assert!(joke.text.contains('?'), "{}", joke.text);
        assert!(!joke.context_used);
        let weather = reply_to("what's the weather like tomorrow in paris", None, None, 0);
        assert_eq!(weather.intent, "weather");
        assert!(
            weather.text.contains("check the weather"),
            "{}",
            weather.text
        );
        let reminder = reply_to(
            "could you remind me to call my sister tonight",
            None,
            None,
            0,
        );
        assert_eq!(reminder.intent, "reminder_update");
        assert!(reminder.text.contains("remind me to"), "{}", reminder.text);
        let question = reply_to("what is the capital of france", None, None, 0);
        assert_eq!(question.intent, "oos");
        assert!(question.text.contains("look"), "{}", question.text);
        let ctx = ChatContext {
            intent: Some("greeting".into()),
            ..ChatContext::default()
        };
        let r = reply_to("yo", Some(&ctx), None, 0);
        assert_eq!(r.intent, "greeting");
        assert!(r.context_used);
    }

    #[test]
    fn control_turns_answer_in_the_light_of_the_previous_one() {
        let offer = "I can't check the weather from here, sorry. Would you like a reminder to check the weather later?";
        let yes = reply_to("yes please", None, said(offer, "weather"), 0);
        assert_eq!(yes.intent, "yes");
        assert!(
            yes.text.contains("remind me to check the weather"),
            "{}",
            yes.text
        );
        let no = reply_to("no thanks", None, said(offer, "weather"), 0);
        assert!(
            no.text.contains("no reminder") || no.text.contains("won't set"),
            "{}",
            no.text
        );
        let again = reply_to("can you repeat that", None, said(offer, "weather"), 0);
        assert_eq!(again.intent, "repeat");
        assert!(again.text.ends_with(offer), "{}", again.text);
        let nothing = reply_to("can you repeat that", None, None, 0);
        assert!(nothing.text.contains("yet"), "{}", nothing.text);
    }
}
