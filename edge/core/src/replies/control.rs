//! Conversation control (CLINC150's `meta` domain): yes, no, maybe and cancel answered in the
//! light of what the assistant said last, "repeat" saying it again, and names and settings
//! answered honestly.

use super::{choose, fill};
use crate::understanding::topics::Topic;
use crate::understanding::{Control, TurnKind};

/// The assistant's previous turn, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Previous<'a> {
    pub text: &'a str,
    pub intent: Option<&'a str>,
}

/// What the previous assistant turn left open.
enum Open {
    /// It offered a reminder for a topic it couldn't handle.
    ReminderOffer(&'static Topic),
    Question,
    Nothing,
}

fn open_in(previous: Option<Previous<'_>>) -> Open {
    let Some(previous) = previous else {
        return Open::Nothing;
    };
    match previous.intent.and_then(TurnKind::of) {
        Some(TurnKind::Topic(topic)) if topic.remindable => Open::ReminderOffer(topic),
        _ if previous.text.trim_end().ends_with('?') => Open::Question,
        _ => Open::Nothing,
    }
}

fn templates(control: Control, open: &Open, has_previous: bool) -> &'static [&'static str] {
    use Control::*;
    match (control, open) {
        (Yes, Open::ReminderOffer(_)) => &[
            "Great. Just say: remind me to {action}, and add when, for example tomorrow at 9 AM.",
            "Okay! Say: remind me to {action} at a time that suits you, and it's set.",
        ],
        (Yes, Open::Question) => &[
            "Great! Go ahead, I'm listening.",
            "Sure, what would you like?",
            "Okay! Tell me what you need.",
        ],
        (Yes, Open::Nothing) => &[
            "Okay! What can I do for you?",
            "Alright. How can I help?",
            "Sure thing. What would you like to do?",
        ],
        (No, Open::ReminderOffer(_)) => &[
            "No problem, no reminder then. Anything else?",
            "Alright, I won't set one. What else can I do for you?",
        ],
        (No, _) => &[
            "Alright. I'm here if you need me.",
            "Okay, no problem.",
            "Got it. Let me know if there's anything I can do.",
        ],
        (Maybe, Open::ReminderOffer(_)) => &[
            "Take your time. Whenever you want it, just say: remind me to {action}.",
            "No rush. If you decide you want it, say: remind me to {action}.",
        ],
        (Maybe, _) => &[
            "No rush. Take your time, I'll be here.",
            "That's fine. Just tell me when you've decided.",
            "Okay, have a think about it. I'm here when you need me.",
        ],
        (Cancel, Open::ReminderOffer(_)) => &[
            "Okay, cancelled. No reminder.",
            "Alright, forget it. No reminder then.",
        ],
        (Cancel, _) => &[
            "Okay, cancelled. What would you like to do instead?",
            "Alright, never mind. I'm here if you need anything.",
            "Done, I've dropped that. Anything else?",
        ],
        (Repeat, _) if has_previous => &[
            "Sure. I said: {previous}",
            "Of course. {previous}",
            "Here it is again: {previous}",
        ],
        (Repeat, _) => &[
            "I haven't said anything yet. What can I do for you?",
            "There's nothing to repeat yet. How can I help?",
        ],
        (UserName, _) => &[
            "I don't know your name from our chat, I'm afraid, and I can't see your profile from here.",
            "Sorry, I don't know your name. Nobody has told me in this chat.",
        ],
        (ChangeUserName, _) => &[
            "I can't change what I call you from our chat, sorry.",
            "Changing your name isn't something I can do from here, I'm afraid.",
        ],
        (ChangeAiName, _) => &[
            "My name stays {assistant}, I'm afraid, but you can call me whatever you like. I'll still answer!",
            "I can't change my name, but feel free to call me anything you want.",
        ],
        (Settings, _) => &[
            "I can't change settings like that from our chat, sorry.",
            "Changing my settings isn't something I can do from here, I'm afraid.",
        ],
    }
}

/// The reply to a conversation-control turn.
pub fn control_reply(
    control: Control,
    previous: Option<Previous<'_>>,
    roll: u64,
    assistant: &str,
) -> String {
    let open = open_in(previous);
    let action = match &open {
        Open::ReminderOffer(topic) => topic.action,
        _ => "",
    };
    let previous_text = previous.map_or("", |p| p.text.trim());
    let slots = [
        ("{action}", action.to_owned()),
        ("{previous}", previous_text.to_owned()),
    ];
    choose(
        templates(control, &open, !previous_text.is_empty()),
        |t| fill(t, &slots),
        previous.map(|p| p.text),
        roll,
        assistant,
    )
}
