//! What kind of turn an intent is, which decides how minimal mode answers it: small talk,
//! conversation control, one of Eindr's own tasks, a topic it can name but not act on, or a
//! question out of its scope. Intent names are CLINC150's (what the model predicts), the
//! seed's and those of Eindr's upstream NLU.

use super::topics::{Topic, topic_of};
use crate::replies::task::TaskKind;

/// CLINC150's 15 small-talk intents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmallTalk {
    Greeting,
    Goodbye,
    Thanks,
    Joke,
    FunFact,
    MeaningOfLife,
    Name,
    Age,
    WhereFrom,
    Maker,
    Employer,
    Hobbies,
    Pets,
    AreYouABot,
    WhatCanIAsk,
}

impl SmallTalk {
    pub const ALL: [Self; 15] = [
        Self::Greeting,
        Self::Goodbye,
        Self::Thanks,
        Self::Joke,
        Self::FunFact,
        Self::MeaningOfLife,
        Self::Name,
        Self::Age,
        Self::WhereFrom,
        Self::Maker,
        Self::Employer,
        Self::Hobbies,
        Self::Pets,
        Self::AreYouABot,
        Self::WhatCanIAsk,
    ];

    /// CLINC150's name of the intent: what the model predicts, and the one name every alias
    /// (`hello`, `greet`, …) of the family stands for.
    pub fn intent_name(self) -> &'static str {
        match self {
            Self::Greeting => "greeting",
            Self::Goodbye => "goodbye",
            Self::Thanks => "thank_you",
            Self::Joke => "tell_joke",
            Self::FunFact => "fun_fact",
            Self::MeaningOfLife => "meaning_of_life",
            Self::Name => "what_is_your_name",
            Self::Age => "how_old_are_you",
            Self::WhereFrom => "where_are_you_from",
            Self::Maker => "who_made_you",
            Self::Employer => "who_do_you_work_for",
            Self::Hobbies => "what_are_your_hobbies",
            Self::Pets => "do_you_have_pets",
            Self::AreYouABot => "are_you_a_bot",
            Self::WhatCanIAsk => "what_can_i_ask_you",
        }
    }
}

/// Conversation control: CLINC150's `meta` domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Yes,
    No,
    Maybe,
    Cancel,
    /// Say the previous assistant turn again.
    Repeat,
    UserName,
    ChangeUserName,
    ChangeAiName,
    /// Speed, volume, language, accent, whisper mode, device sync, reset.
    Settings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnKind {
    SmallTalk(SmallTalk),
    Control(Control),
    /// One of Eindr's tasks that reached the chat turn instead of the task pipeline.
    Task(TaskKind),
    Topic(&'static Topic),
    OutOfScope,
}

impl TurnKind {
    /// The kind of an intent name (any case); `None` for a name minimal mode has no replies
    /// for.
    pub fn of(intent: &str) -> Option<Self> {
        let lower;
        let name = if intent.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = intent.to_ascii_lowercase();
            lower.as_str()
        } else {
            intent
        };
        if let Some(small_talk) = small_talk(name) {
            return Some(Self::SmallTalk(small_talk));
        }
        if let Some(control) = control(name) {
            return Some(Self::Control(control));
        }
        Some(match name {
            "reminder" | "reminder_update" => Self::Task(TaskKind::Reminder),
            "alarm" => Self::Task(TaskKind::Alarm),
            "timer" => Self::Task(TaskKind::Timer),
            "calendar" | "calendar_update" | "meeting_schedule" => Self::Task(TaskKind::Event),
            "todo_list" | "todo_list_update" | "shopping_list" | "shopping_list_update" => {
                Self::Task(TaskKind::ListItem)
            }
            "oos" | "out_of_scope" | "general_question" | "question" | "unknown" => {
                Self::OutOfScope
            }
            _ => match topic_of(name) {
                Some(topic) => Self::Topic(topic),
                None => Self::Task(TaskKind::from_intent(name)?),
            },
        })
    }

    pub fn is_small_talk(self) -> bool {
        matches!(self, Self::SmallTalk(_))
    }

    /// The kind's name, for metrics: a closed set, never the message.
    pub fn family(self) -> &'static str {
        match self {
            Self::SmallTalk(_) => "small_talk",
            Self::Control(_) => "control",
            Self::Task(_) => "task",
            Self::Topic(_) => "topic",
            Self::OutOfScope => "out_of_scope",
        }
    }
}

fn small_talk(name: &str) -> Option<SmallTalk> {
    use SmallTalk::*;
    Some(match name {
        "greeting" | "greet" | "hello" | "how_are_you" => Greeting,
        "goodbye" | "bye" | "farewell" => Goodbye,
        "thank_you" | "thanks" | "gratitude" => Thanks,
        "tell_joke" | "joke" => Joke,
        "fun_fact" => FunFact,
        "meaning_of_life" => MeaningOfLife,
        "what_is_your_name" | "who_are_you" => Name,
        "how_old_are_you" => Age,
        "where_are_you_from" => WhereFrom,
        "who_made_you" => Maker,
        "who_do_you_work_for" => Employer,
        "what_are_your_hobbies" => Hobbies,
        "do_you_have_pets" => Pets,
        "are_you_a_bot" => AreYouABot,
        "what_can_i_ask_you" | "what_can_you_do" | "capabilities" | "help" => WhatCanIAsk,
        _ => return None,
    })
}

fn control(name: &str) -> Option<Control> {
    use Control::*;
    Some(match name {
        "yes" | "affirm" => Yes,
        "no" | "deny" => No,
        "maybe" => Maybe,
        "cancel" => Cancel,
        "repeat" => Repeat,
        "user_name" => UserName,
        "change_user_name" => ChangeUserName,
        "change_ai_name" => ChangeAiName,
        "change_speed" | "whisper_mode" | "change_volume" | "change_language" | "change_accent"
        | "sync_device" | "reset_settings" => Settings,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_intent_the_model_knows_has_a_kind() {
        let model = crate::understanding::model().expect("the embedded model parses");
        let mut small_talk = 0;
        for label in model.labels() {
            let kind = TurnKind::of(label);
            assert!(kind.is_some(), "{label} has no replies");
            small_talk += usize::from(kind.is_some_and(TurnKind::is_small_talk));
        }
        assert_eq!(small_talk, 15);
        for family in SmallTalk::ALL {
            assert!(model.labels().contains(&family.intent_name()), "{family:?}");
            assert_eq!(
                TurnKind::of(family.intent_name()),
                Some(TurnKind::SmallTalk(family))
            );
        }
    }

    #[test]
    fn names_of_the_seed_and_the_upstream_nlu() {
        assert_eq!(
            TurnKind::of("GREETING"),
            Some(TurnKind::SmallTalk(SmallTalk::Greeting))
        );
        assert_eq!(
            TurnKind::of("create_reminder"),
            Some(TurnKind::Task(TaskKind::Reminder))
        );
        assert_eq!(TurnKind::of("general_question"), Some(TurnKind::OutOfScope));
        assert!(matches!(
            TurnKind::of("update_playlist"),
            Some(TurnKind::Topic(_))
        ));
        assert_eq!(TurnKind::of("play_chess"), None);
    }
}
