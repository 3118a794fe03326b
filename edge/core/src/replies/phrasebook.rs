//! Every phrasing the reply engine can say. Plain sentences that read well through
//! text-to-speech: no markdown, no emoji, no lists. Slots in braces are filled by the engine.

use super::intent::SmallTalk;
use super::task::TaskKind;

pub fn small_talk(family: SmallTalk) -> &'static [&'static str] {
    match family {
        SmallTalk::Greeting => &[
            "Hello! How can I help you today?",
            "Hi there! What can I do for you?",
            "Hey! Good to hear from you. What do you need?",
            "Hello! I'm here and ready to help.",
        ],
        SmallTalk::HowAreYou => &[
            "I'm doing great, thanks for asking! How can I help you?",
            "All good here, and ready to help. How about you?",
            "I'm running smoothly, thank you! What can I do for you today?",
        ],
        SmallTalk::Thanks => &[
            "You're welcome! Anything else I can do?",
            "Happy to help!",
            "Anytime! Just let me know if you need something else.",
            "My pleasure!",
        ],
        SmallTalk::Goodbye => &[
            "Goodbye! Have a great day.",
            "See you later! I'll be here when you need me.",
            "Bye for now! Take care.",
        ],
        SmallTalk::WhoAreYou => &[
            "I'm Eindr, your voice assistant. I help you keep track of reminders, alarms, timers and your calendar.",
            "My name is Eindr. I'm an assistant that helps you remember things and stay organised.",
            "I'm Eindr, a voice assistant. Think of me as your memory for the things you need to do.",
        ],
        SmallTalk::WhatCanYouDo => &[
            "I can set reminders, alarms and timers, add events to your calendar, take notes and keep your lists. Just tell me what you need.",
            "I help you stay organised: reminders, alarms, timers, calendar events, notes and lists. What would you like to do?",
            "You can ask me to remind you of something, set an alarm or a timer, add an event, or write down a note.",
        ],
        SmallTalk::Joke => &[
            "Why did the scarecrow win an award? Because he was outstanding in his field.",
            "I told my calendar a joke. It said it would get back to me at a later date.",
            "Why don't skeletons fight each other? They don't have the guts.",
            "What do you call a fake noodle? An impasta.",
        ],
        SmallTalk::Compliment => &[
            "Thank you, that's very kind of you!",
            "That made my day, thank you!",
            "Thanks! I'm glad I can help.",
        ],
        SmallTalk::Help => &[
            "Sure, I can help. You can say things like remind me to call mom at 6 PM, set a timer for 10 minutes, or add a meeting tomorrow at 2 PM.",
            "Of course. Try asking me to set a reminder, an alarm, a timer, or to add something to your calendar.",
            "I'm here to help. Tell me what you'd like to remember or schedule, and when.",
        ],
        SmallTalk::GeneralQuestion => &[
            "That's a good question, but I can't look things up right now. I can help you with reminders, alarms, timers and your calendar.",
            "I'm not able to search for answers at the moment. Is there something I can remind you about or schedule instead?",
            "I don't have a way to look that up right now, sorry. I can still set reminders, alarms and timers for you.",
        ],
        SmallTalk::Unknown => &[
            "I'm not sure I understood that. You can ask me to set a reminder, an alarm, a timer, or to add an event.",
            "Sorry, I didn't quite get that. Could you say it another way?",
            "Hmm, I didn't catch that. I can help with reminders, alarms, timers and your calendar.",
        ],
    }
}

/// Successful task acknowledgments. Slots: `{for_title}` (" for 'meeting'" or ""),
/// `{title_or_it}` ("'meeting'" or "it"), `{when}` (" at 2 PM on November 25" or ""),
/// `{duration}` (" for 10 minutes" or "").
pub fn task_done(kind: TaskKind) -> &'static [&'static str] {
    match kind {
        TaskKind::Reminder => &[
            "Perfect! I've created your reminder{for_title}{when}. Is there anything else you need?",
            "Done! Your reminder{for_title} is set{when}.",
            "Got it. I'll remind you{about_title}{when}.",
            "All set! I've saved a reminder{for_title}{when}.",
        ],
        TaskKind::Alarm => &[
            "Your alarm{for_title} is set{when}.",
            "Done! I've set an alarm{when}.",
            "All set. Your alarm will go off{when}.",
        ],
        TaskKind::Timer => &[
            "Your timer is running{duration}.",
            "Done! I've started a timer{duration}.",
            "Timer set{duration}. I'll let you know when it's up.",
        ],
        TaskKind::Event => &[
            "Perfect! I've added {title_or_it} to your calendar{when}.",
            "Done! {title_or_it_cap} is on your calendar{when}.",
            "Got it. I've scheduled {title_or_it}{when}.",
        ],
        TaskKind::Note => &[
            "I've saved your note{for_title}.",
            "Done! Your note{for_title} is written down.",
            "Got it, I've made a note{for_title}.",
        ],
        TaskKind::ListItem => &[
            "I've added {title_or_it} to your list.",
            "Done! {title_or_it_cap} is on your list now.",
            "Got it. {title_or_it_cap} is on the list.",
        ],
        TaskKind::Other => &[
            "Done! I've taken care of that{for_title}{when}.",
            "All set{for_title}{when}.",
            "Got it, that's done{for_title}{when}.",
        ],
    }
}

/// Honest replies when the task failed. Slots: `{noun}`, `{for_title}`, `{reason}`
/// (a sentence without final punctuation).
pub const TASK_FAILED: &[&str] = &[
    "I'm sorry, I couldn't create your {noun}{for_title}: {reason}. Would you like to try again?",
    "Unfortunately the {noun}{for_title} wasn't saved: {reason}. Do you want me to try once more?",
    "Sorry, something went wrong with your {noun}{for_title}: {reason}. Could you say it again?",
];

/// Said when a failed task came without a reason.
pub const NO_REASON: &str = "something went wrong on my side";

/// Ends a model answer that broke off mid-stream.
pub const CUT_SHORT: &[&str] = &[
    "Sorry, I lost my train of thought there. Could you ask me again?",
    "I'm afraid I got cut off. Ask me again and I'll finish that thought.",
    "Hmm, that's all I can say right now. Try me again in a moment.",
];
