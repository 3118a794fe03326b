//! The word rules behind [`super::intent::classify`]: what counts as a greeting, thanks,
//! a goodbye, a question about the assistant, and so on, on the lower-cased words of a message.
//! Shaped on CLINC150's train split only (`edge/core/tests/clinc150.rs` measures them on val).

/// Lower-case words of the message, punctuation removed, apostrophes kept.
pub(super) fn words(message: &str) -> Vec<String> {
    message
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().replace('\u{2019}', "'"))
        .collect()
}

pub(super) fn has_phrase(words: &[String], phrase: &str) -> bool {
    let needle: Vec<&str> = phrase.split(' ').collect();
    words
        .windows(needle.len())
        .any(|w| w.iter().zip(&needle).all(|(a, b)| a == b))
}

pub(super) fn any_phrase(words: &[String], phrases: &[&str]) -> bool {
    phrases.iter().any(|p| has_phrase(words, p))
}

pub(super) const QUESTION_STARTS: &[&str] = &[
    "what", "who", "whom", "whose", "when", "where", "why", "how", "which", "is", "are", "can",
    "could", "do", "does", "did", "will", "would", "should", "tell", "explain", "define",
];

/// Whether any word starts with one of `stems` ("thank" matches "thanks", "thankful").
pub(super) fn has_stem(words: &[String], stems: &[&str]) -> bool {
    words.iter().any(|w| stems.iter().any(|s| w.starts_with(s)))
}

pub(super) fn has_word(words: &[String], wanted: &[&str]) -> bool {
    words.iter().any(|w| wanted.contains(&w.as_str()))
}

/// Words that point the message at the assistant itself.
pub(super) const YOU: &[&str] = &[
    "you",
    "you're",
    "your",
    "yourself",
    "ai",
    "u",
    "ya",
    "assistant",
];

pub(super) fn asks_what_it_can_do(w: &[String]) -> bool {
    let topic = has_stem(
        w,
        &[
            "ask",
            "question",
            "quer",
            "subject",
            "topic",
            "capab",
            "skill",
            "abilit",
            "feature",
            "knowledg",
            "help",
            "assist",
            "accomplish",
            "able",
            "function",
        ],
    );
    let wh = matches!(w[0].as_str(), "what" | "which" | "tell" | "what's")
        || any_phrase(w, &["how can you help", "how can you assist"]);
    (topic && wh && has_word(w, YOU))
        || any_phrase(
            w,
            &[
                "what can you do",
                "what do you do",
                "what can i say",
                "what do you know",
                "what things do you know",
                "what subjects do you know",
                "what do you have answers",
            ],
        )
}

pub(super) fn asks_who_it_is(w: &[String]) -> bool {
    let made = has_stem(
        w,
        &[
            "made",
            "creat",
            "built",
            "program",
            "design",
            "develop",
            "invent",
            "construct",
            "coded",
            "sponsor",
            "responsible",
            "form",
            "fabricat",
            "manufactur",
            "engineer",
            "craft",
            "compil",
            "originat",
            "brand",
            "organization",
        ],
    ) || any_phrase(
        w,
        &["makes you", "make you", "makes the ai", "gave you life"],
    );
    let maker = has_word(w, &["who", "whom", "company", "by", "brand"]);
    let being = has_stem(w, &["bot", "robot", "human", "computer", "machine"])
        || any_phrase(
            w,
            &[
                "are you real",
                "you real",
                "real person",
                "actual person",
                "live person",
                "are you a person",
                "real about you",
                "how real are you",
            ],
        );
    let renaming = has_word(w, &["change", "set", "update", "my", "me", "rename"]);
    let name = !renaming
        && any_phrase(
            w,
            &[
                "your name",
                "you called",
                "call you",
                "refer to you",
                "address you",
                "ai's name",
                "a name",
                "name i should",
                "name should i",
                "name would you",
            ],
        );
    let who = any_phrase(
        w,
        &[
            "who are you",
            "what are you",
            "introduce yourself",
            "tell me about yourself",
        ],
    );
    // "who formed you", "who engineered you": short who-questions about the assistant.
    let short_who = w[0] == "who" && w.len() <= 6 && has_word(w, YOU);
    (made && (maker || short_who) && has_word(w, YOU))
        || (being && has_word(w, YOU))
        || name
        || who
        || short_who
}

pub(super) fn asks_how_it_is(w: &[String]) -> bool {
    any_phrase(
        w,
        &[
            "how are you",
            "how are things",
            "how goes it",
            "how's it going",
            "how is it going",
            "how's everything",
            "how is everything",
            "how do you do",
            "how have you been",
            "how you doing",
            "how you been",
            "how's your day",
            "how is your day",
            "how's life",
            "what's up",
            "whats up",
            "what's new",
            "what's going on",
            "what's happening",
            "are you well",
            "are you ok",
            "are you okay",
            "are you good",
            "are you doing",
            "is everything ok",
            "is everything okay",
            "tell me how you've been",
        ],
    )
}

pub(super) fn says_goodbye(w: &[String]) -> bool {
    let nice_talk = has_stem(
        w,
        &["nice", "pleasure", "glad", "fun", "enjoy", "good", "great"],
    ) && has_stem(w, &["talk", "chat", "speak", "convers", "catch"]);
    nice_talk
        || (w.len() <= 3 && has_word(w, &["later"]))
        || has_stem(w, &["bye", "goodbye", "buhbye", "farewell"])
        || any_phrase(
            w,
            &[
                "see you",
                "see ya",
                "good night",
                "goodnight",
                "catch you",
                "talk later",
                "talk to you later",
                "peace out",
                "have a good one",
                "have a nice day",
                "have a good day",
                "that's all",
                "i'm leaving",
                "i am leaving",
                "i have to go",
                "i gotta go",
                "gotta go",
                "adios",
                "ciao",
                "take care",
                "until next time",
            ],
        )
}

pub(super) fn says_thanks(w: &[String]) -> bool {
    has_stem(w, &["thank", "thx", "grateful", "gratitude"])
        || (has_stem(w, &["appreciat"]) && !has_word(w, &["if"]))
        || any_phrase(w, &["cheers", "great help", "big help", "much obliged"])
}

pub(super) fn tells_joke(w: &[String]) -> bool {
    has_stem(w, &["joke", "funny", "laugh", "hilarious", "pun"])
        && !has_stem(w, &["remind", "note", "list"])
}

pub(super) fn compliments(w: &[String]) -> bool {
    any_phrase(
        w,
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
            "you're so",
            "you are so",
            "good job",
            "well done",
            "nice job",
            "great job",
            "love you",
            "you rock",
        ],
    )
}

pub(super) fn asks_for_help(w: &[String]) -> bool {
    any_phrase(
        w,
        &[
            "help",
            "help me",
            "how does this work",
            "how do i use",
            "i'm stuck",
            "i am stuck",
            "i need assistance",
        ],
    )
}

pub(super) fn greets(w: &[String]) -> bool {
    w.len() <= 6
        && any_phrase(
            w,
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
                "good day",
                "yo",
                "hola",
                "sup",
            ],
        )
}

/// Words of a task or a lookup: a message with one is not small talk even if it also
/// says thanks or hello ("remind me later", "how do you say goodbye in Spanish").
pub(super) fn is_task_or_lookup(w: &[String]) -> bool {
    has_stem(
        w,
        &[
            "remind", "translat", "reserv", "account", "card", "flight", "balance", "order",
            "book", "luggage", "recipe", "calendar", "alarm", "timer", "list", "spell", "spanish",
            "french", "english", "italian", "japanese", "russian", "german", "chinese", "latin",
        ],
    ) || has_word(w, &["say", "401k", "oil", "transfer"])
}
