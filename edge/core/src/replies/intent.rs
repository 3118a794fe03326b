//! Which chit-chat family a message belongs to: the context's intent when the upstream NLU
//! named one, else rules on the words of the message.

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

/// Lower-case words of the message, punctuation removed, apostrophes kept.
fn words(message: &str) -> Vec<String> {
    message
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().replace('\u{2019}', "'"))
        .collect()
}

fn has_phrase(words: &[String], phrase: &str) -> bool {
    let needle: Vec<&str> = phrase.split(' ').collect();
    words
        .windows(needle.len())
        .any(|w| w.iter().zip(&needle).all(|(a, b)| a == b))
}

fn any_phrase(words: &[String], phrases: &[&str]) -> bool {
    phrases.iter().any(|p| has_phrase(words, p))
}

const QUESTION_STARTS: &[&str] = &[
    "what", "who", "whom", "whose", "when", "where", "why", "how", "which", "is", "are", "can",
    "could", "do", "does", "did", "will", "would", "should", "tell", "explain", "define",
];

/// Rules, most specific first.
pub fn classify(message: &str) -> SmallTalk {
    let w = words(message);
    if w.is_empty() {
        return SmallTalk::Unknown;
    }
    let first = w[0].as_str();
    if any_phrase(
        &w,
        &[
            "what can you do",
            "what can i ask",
            "what do you do",
            "what are you capable",
            "what are your abilities",
            "what are your features",
            "what can you help",
            "what are you able",
            "what things can you",
            "what kind of things can",
            "what sort of things can",
            "what questions can",
            "what can i say",
        ],
    ) {
        return SmallTalk::WhatCanYouDo;
    }
    if any_phrase(
        &w,
        &[
            "who are you",
            "what are you",
            "your name",
            "who made you",
            "who created you",
            "who built you",
            "are you a robot",
            "are you a bot",
            "are you human",
            "are you a human",
            "are you real",
            "are you an ai",
            "are you a computer",
            "what should i call you",
            "what do i call you",
            "what do you go by",
            "introduce yourself",
        ],
    ) {
        return SmallTalk::WhoAreYou;
    }
    if any_phrase(
        &w,
        &[
            "how are you",
            "how are things",
            "how's it going",
            "how is it going",
            "how do you do",
            "how have you been",
            "how you doing",
            "how's your day",
            "what's up",
            "whats up",
        ],
    ) {
        return SmallTalk::HowAreYou;
    }
    if any_phrase(
        &w,
        &[
            "joke",
            "jokes",
            "make me laugh",
            "something funny",
            "funny story",
        ],
    ) {
        return SmallTalk::Joke;
    }
    if any_phrase(
        &w,
        &[
            "thank",
            "thanks",
            "thank you",
            "thankyou",
            "thx",
            "appreciate",
            "appreciated",
            "cheers",
            "grateful",
        ],
    ) {
        return SmallTalk::Thanks;
    }
    if any_phrase(
        &w,
        &[
            "bye",
            "goodbye",
            "bye bye",
            "see you",
            "see ya",
            "good night",
            "goodnight",
            "talk later",
            "talk to you later",
            "catch you later",
            "farewell",
            "i'm leaving",
            "i have to go",
            "i gotta go",
            "gotta go",
            "later",
            "adios",
            "ciao",
        ],
    ) {
        return SmallTalk::Goodbye;
    }
    if any_phrase(
        &w,
        &[
            "you're great",
            "you are great",
            "you're awesome",
            "you are awesome",
            "you're amazing",
            "you are amazing",
            "you're the best",
            "you are the best",
            "you're smart",
            "you are smart",
            "you're helpful",
            "you are helpful",
            "good job",
            "well done",
            "nice job",
            "great job",
            "love you",
            "you rock",
        ],
    ) {
        return SmallTalk::Compliment;
    }
    if any_phrase(
        &w,
        &[
            "help",
            "help me",
            "how does this work",
            "how do i use",
            "i'm stuck",
            "i am stuck",
            "i need assistance",
        ],
    ) {
        return SmallTalk::Help;
    }
    if any_phrase(
        &w,
        &[
            "hi",
            "hello",
            "hey",
            "hiya",
            "howdy",
            "greetings",
            "good morning",
            "good afternoon",
            "good evening",
            "yo",
            "hola",
            "sup",
        ],
    ) && w.len() <= 6
    {
        return SmallTalk::Greeting;
    }
    if message.trim_end().ends_with('?') || QUESTION_STARTS.contains(&first) {
        return SmallTalk::GeneralQuestion;
    }
    SmallTalk::Unknown
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
