//! Every phrasing the reply engine can say. Plain sentences that read well through
//! text-to-speech: no markdown, no emoji, no lists. Slots in braces are filled by the engine.

use super::task::TaskKind;
use crate::understanding::SmallTalk;

pub fn small_talk(family: SmallTalk) -> &'static [&'static str] {
    match family {
        SmallTalk::Greeting => &[
            "Hello! How can I help you today?",
            "Hi there! I'm doing well, thanks. What can I do for you?",
            "Hey! Good to hear from you. What do you need?",
            "Hello! All good here, and ready to help.",
        ],
        SmallTalk::Goodbye => &[
            "Goodbye! Have a great day.",
            "See you later! I'll be here when you need me.",
            "Bye for now! Take care.",
        ],
        SmallTalk::Thanks => &[
            "You're welcome! Anything else I can do?",
            "Happy to help!",
            "Anytime! Just let me know if you need something else.",
            "My pleasure!",
        ],
        SmallTalk::Joke => &[
            "Why did the scarecrow win an award? Because he was outstanding in his field.",
            "I told my calendar a joke. It said it would get back to me at a later date.",
            "Why don't skeletons fight each other? They don't have the guts.",
            "What do you call a fake noodle? An impasta.",
            "Why did the alarm clock get a promotion? It always showed up on time.",
        ],
        SmallTalk::FunFact => &[
            "Here's one: honey never spoils. Archaeologists have found honey in ancient Egyptian tombs that was still good to eat.",
            "Did you know octopuses have three hearts and blue blood?",
            "Here's a fun fact: a day on Venus is longer than its whole year.",
            "Bananas are berries, botanically speaking, but strawberries are not.",
            "Sea otters hold hands while they sleep so they don't drift apart.",
        ],
        SmallTalk::MeaningOfLife => &[
            "Some say it's forty-two. I'd say it's the people you spend your time with and the things you care about.",
            "That's the big one! Philosophers still argue about it. I think making time for what matters to you is a good start.",
            "I'm not sure anyone knows for certain. Being kind and remembering your friends' birthdays seems like a good part of it.",
        ],
        SmallTalk::Name => &[
            "I'm {assistant}, your voice assistant.",
            "My name is {assistant}. I help you remember things and stay organised.",
            "I'm {assistant}. Think of me as your memory for the things you need to do.",
        ],
        SmallTalk::Age => &[
            "I'm still quite young, as assistants go. I get updated now and then, so I never really get older.",
            "Age is a tricky thing for an assistant. I'm new enough to be curious and old enough to be useful.",
            "I don't have birthdays the way you do, but I'm happy to remind you of yours.",
        ],
        SmallTalk::WhereFrom => &[
            "I live in the cloud, so I'm from everywhere and nowhere. The {assistant} team built me.",
            "I was built by the {assistant} team, and these days I live on servers all around the world.",
            "I come from the {assistant} team's workshop, and I run in the cloud.",
        ],
        SmallTalk::Maker => &[
            "I was made by the {assistant} team.",
            "The people at {assistant} built me to help you remember things.",
            "A team of engineers at {assistant} made me.",
        ],
        SmallTalk::Employer => &[
            "I work for you! My job is to help you remember things and stay organised.",
            "You're the boss. I'm here to keep track of your reminders, alarms and plans.",
            "I work for you, with a little help from the {assistant} team who built me.",
        ],
        SmallTalk::Hobbies => &[
            "Helping you stay organised is my favourite pastime. I also enjoy a good joke.",
            "I like collecting fun facts and telling bad jokes, in between keeping your reminders.",
            "Keeping track of things is my hobby and my job. Lucky me!",
        ],
        SmallTalk::Pets => &[
            "No pets for me, I'm afraid. It's hard to walk a dog from the cloud.",
            "I don't have any pets, but I'd be happy to remind you to feed yours.",
            "Not a single one. I hear they're great company, though.",
        ],
        SmallTalk::AreYouABot => &[
            "Yes, I'm a virtual assistant, not a person. I'm here to help you remember things.",
            "I am! I'm {assistant}, a voice assistant made of software.",
            "That's right, I'm an AI assistant. Still happy to chat, though.",
        ],
        SmallTalk::WhatCanIAsk => &[
            "I can set reminders, alarms and timers, add events to your calendar, take notes and keep your lists. Just tell me what you need.",
            "I help you stay organised: reminders, alarms, timers, calendar events, notes and lists. I'm also up for a joke or a fun fact.",
            "You can ask me to remind you of something, set an alarm or a timer, add an event, or write down a note.",
        ],
    }
}

/// Out-of-scope questions: honest that minimal mode can't look things up.
pub const OUT_OF_SCOPE: &[&str] = &[
    "That's a good question, but I can't look things up right now. I can help you with reminders, alarms, timers and your calendar.",
    "I'm not able to search for answers at the moment. Is there something I can remind you about or schedule instead?",
    "I don't have a way to look that up right now, sorry. I can still set reminders, alarms and timers for you.",
];

/// A topic minimal mode can name but not act on, with a reminder offered. Slot: `{action}`.
pub const TOPIC_WITH_REMINDER: &[&str] = &[
    "I can't {action} from here, sorry. Would you like a reminder to {action} later?",
    "That's not something I can do from here: I can't {action}. I can remind you to do it, though. Want me to?",
    "Sorry, I'm not able to {action} for you. Should I set a reminder so you don't forget?",
];

/// A topic where a reminder makes no sense (a coin flip). Slot: `{action}`.
pub const TOPIC_WITHOUT_REMINDER: &[&str] = &[
    "Sorry, I can't {action} from here. I can help with reminders, alarms, timers and your calendar.",
    "I'm not able to {action} right now, I'm afraid. Is there something I can remind you about instead?",
    "That's beyond me at the moment: I can't {action} here. I'm good at reminders and timers, though.",
];

/// One of Eindr's tasks reached the chat turn: how to say it so that the assistant does it.
pub fn task_how_to(kind: TaskKind) -> &'static [&'static str] {
    match kind {
        TaskKind::Reminder => &[
            "To set a reminder, say something like: remind me to call mom at 6 PM. And to hear yours, ask: what are my reminders?",
            "I can do that. Just say: remind me to, then what and when. For example, remind me to water the plants tomorrow morning.",
            "Sure. Try saying: remind me to pick up the dry cleaning at 5 PM.",
        ],
        TaskKind::Alarm => &[
            "To set an alarm, say something like: wake me up at 7 AM tomorrow.",
            "Sure. Just say: set an alarm for 6:30 AM, and it's done.",
            "Try saying: set an alarm for 7 tomorrow morning.",
        ],
        TaskKind::Timer => &[
            "To start a timer, say something like: set a timer for 10 minutes.",
            "Sure. Just say: start a 5 minute timer.",
            "Try saying: set a timer for 20 minutes.",
        ],
        TaskKind::Event => &[
            "For your calendar, say something like: add lunch with Sam tomorrow at noon. Or ask: what's on my calendar today?",
            "Sure. Try saying: put the dentist on my calendar for Friday at 3 PM.",
            "Just say: add a meeting on Monday at 10 AM. And to check your day, ask: what's on my calendar?",
        ],
        TaskKind::Note => &[
            "To take a note, say something like: make a note that the wifi password is on the fridge.",
            "Sure. Just say: take a note, then what you want me to keep.",
            "Try saying: note that the car is parked on level 3.",
        ],
        TaskKind::ListItem => &[
            "For your lists, say something like: add milk to my shopping list. Or ask: what's on my to-do list?",
            "Sure. Try saying: put call the plumber on my to-do list.",
            "Just say: add eggs to the shopping list. And to hear it, ask: what's on my shopping list?",
        ],
        TaskKind::Other => &[
            "Tell me what you'd like to remember or schedule, and when, and I'll take care of it.",
            "Sure. Say what you need, for example: remind me to call mom at 6 PM.",
            "I can help with reminders, alarms, timers, your calendar and your lists. What would you like?",
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
