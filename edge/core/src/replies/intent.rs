//! Which chit-chat family a message belongs to: the context's intent when the upstream NLU
//! named one, else rules on the words of the message.

use super::rules::{
    QUESTION_STARTS, asks_for_help, asks_how_it_is, asks_what_it_can_do, asks_who_it_is,
    compliments, greets, is_task_or_lookup, says_goodbye, says_thanks, tells_joke, words,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmallTalk {
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
}

impl SmallTalk {
    pub fn name(self) -> &'static str {
        match self {
            Self::Greeting => "greeting",
            Self::HowAreYou => "how_are_you",
            Self::Thanks => "thanks",
            Self::Goodbye => "goodbye",
            Self::WhoAreYou => "who_are_you",
            Self::WhatCanYouDo => "what_can_you_do",
            Self::Joke => "joke",
            Self::Compliment => "compliment",
            Self::Help => "help",
            Self::GeneralQuestion => "general_question",
            Self::Unknown => "unknown",
        }
    }

    /// An intent name from the upstream NLU (the seed's names, CLINC150's small-talk
    /// names, or ours).
    pub fn from_intent(intent: &str) -> Option<Self> {
        Some(match intent.to_ascii_lowercase().as_str() {
            "greeting" | "greet" | "hello" => Self::Greeting,
            "how_are_you" => Self::HowAreYou,
            "thanks" | "thank_you" | "gratitude" => Self::Thanks,
            "goodbye" | "bye" | "farewell" => Self::Goodbye,
            "who_are_you" | "what_is_your_name" | "who_made_you" | "are_you_a_bot" => {
                Self::WhoAreYou
            }
            "what_can_you_do" | "what_can_i_ask_you" | "capabilities" => Self::WhatCanYouDo,
            "joke" | "tell_joke" => Self::Joke,
            "compliment" => Self::Compliment,
            "help" => Self::Help,
            "general_question" | "question" | "oos" | "out_of_scope" => Self::GeneralQuestion,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }
}

/// Rules, most specific first.
pub fn classify(message: &str) -> SmallTalk {
    let w = words(message);
    if w.is_empty() {
        return SmallTalk::Unknown;
    }
    if is_task_or_lookup(&w) {
        return if message.trim_end().ends_with('?') || QUESTION_STARTS.contains(&w[0].as_str()) {
            SmallTalk::GeneralQuestion
        } else {
            SmallTalk::Unknown
        };
    }
    if asks_what_it_can_do(&w) {
        SmallTalk::WhatCanYouDo
    } else if asks_who_it_is(&w) {
        SmallTalk::WhoAreYou
    } else if asks_how_it_is(&w) {
        SmallTalk::HowAreYou
    } else if tells_joke(&w) {
        SmallTalk::Joke
    } else if says_thanks(&w) {
        SmallTalk::Thanks
    } else if says_goodbye(&w) {
        SmallTalk::Goodbye
    } else if compliments(&w) {
        SmallTalk::Compliment
    } else if asks_for_help(&w) {
        SmallTalk::Help
    } else if greets(&w) {
        SmallTalk::Greeting
    } else if message.trim_end().ends_with('?') || QUESTION_STARTS.contains(&w[0].as_str()) {
        SmallTalk::GeneralQuestion
    } else {
        SmallTalk::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_by_words() {
        let cases = [
            ("Hello there", SmallTalk::Greeting),
            ("good morning!", SmallTalk::Greeting),
            ("How are you doing today?", SmallTalk::HowAreYou),
            ("thanks a lot", SmallTalk::Thanks),
            ("ok bye", SmallTalk::Goodbye),
            ("who are you?", SmallTalk::WhoAreYou),
            ("what's your name", SmallTalk::WhoAreYou),
            ("What can you do?", SmallTalk::WhatCanYouDo),
            ("tell me a joke", SmallTalk::Joke),
            ("you're awesome", SmallTalk::Compliment),
            ("I need help", SmallTalk::Help),
            ("What is the capital of France?", SmallTalk::GeneralQuestion),
            ("purple elephant dishwasher", SmallTalk::Unknown),
            ("", SmallTalk::Unknown),
        ];
        for (message, want) in cases {
            assert_eq!(classify(message), want, "{message}");
        }
    }

    #[test]
    fn upstream_intents_map_to_families() {
        assert_eq!(SmallTalk::from_intent("tell_joke"), Some(SmallTalk::Joke));
        assert_eq!(
            SmallTalk::from_intent("GREETING"),
            Some(SmallTalk::Greeting)
        );
        assert_eq!(SmallTalk::from_intent("create_reminder"), None);
    }
}
