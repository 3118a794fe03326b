//! A speech transcript read as the typed text the intent model learned from. Recognisers hand
//! over lower-case words without punctuation, which the model's features ignore anyway; what
//! they add is the assistant addressed by name ("hey eindr ..."), fillers ("um", "uh", "like"
//! where people hesitate), restarts ("i i want") and numbers as words. Those are taken out
//! here, and codes and years said aloud written as a typist would ("d l one two three" is
//! "dl123", "twenty nineteen" "2019"), before the model reads the message; a typed message
//! passes through with the same words. Other numbers stay words: the model learned them as
//! words too (its teacher labelled every word of its vocabulary), and written as digits they
//! read worse (measured on spoken `val`: in-scope accuracy 94.10 % with every number as
//! digits, 94.27 % without).
//!
//! Measured on CLINC150 `val` in spoken form (`models/spoken_clinc.py`), see
//! `models/intent/README.md`.

use super::features::words;

/// What the assistant is called when `ASSISTANT_NAME` is not set.
pub const DEFAULT_ASSISTANT_NAME: &str = "Eindr";

/// Words that open an address to the assistant by name.
const WAKE_WORDS: [&str; 6] = ["hey", "hi", "ok", "okay", "hello", "yo"];

/// Hesitations, dropped wherever they are.
const FILLERS: [&str; 10] = [
    "um", "umm", "uh", "uhh", "uhm", "er", "erm", "hmm", "hm", "mm",
];

/// Discourse words, dropped only where they carry nothing: first, or right after a filler
/// ("um like", "uh you know"). Elsewhere they are words ("i like jazz", "you know what").
const DISCOURSE: [&[&str]; 3] = [&["like"], &["you", "know"], &["so"]];

/// A name a recogniser spells a letter differently ("einder" for "Eindr") is still the name
/// when it is this long; a shorter one must match exactly ("Max" is not "may").
const FUZZY_NAME_LETTERS: usize = 5;

/// The assistant's name (`ASSISTANT_NAME`): as replies write it, and as the transcript reader
/// matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantName {
    display: String,
    /// The first word, lower-case, as the model's features split it.
    word: String,
}

impl AssistantName {
    /// `name` trimmed; the default name when it has no word.
    pub fn new(name: &str) -> Self {
        match words(name).into_iter().next() {
            Some(word) => Self {
                display: name.trim().to_owned(),
                word,
            },
            None => Self::default(),
        }
    }

    /// The name as replies write it.
    pub fn display(&self) -> &str {
        &self.display
    }

    fn is(&self, word: &str) -> bool {
        word == self.word
            || (self.word.chars().count() >= FUZZY_NAME_LETTERS
                && strsim::levenshtein(word, &self.word) <= 1)
    }
}

impl Default for AssistantName {
    fn default() -> Self {
        Self {
            display: DEFAULT_ASSISTANT_NAME.to_owned(),
            word: DEFAULT_ASSISTANT_NAME.to_lowercase(),
        }
    }
}

/// `message` as the model should read it: its words, without the address to the assistant,
/// fillers and restarts, with codes and years said aloud written as typed.
pub fn as_typed(message: &str, name: &AssistantName) -> String {
    typed_words(message, name).join(" ")
}

/// [`as_typed`]'s words, as the model takes them (not joined only to be split again).
pub fn typed_words(message: &str, name: &AssistantName) -> Vec<String> {
    let mut words = words(message);
    without_address(&mut words, name);
    without_fillers(&mut words);
    without_restarts(&mut words);
    codes_and_years_written(&mut words);
    words
}

/// Takes off "hey NAME" or "NAME" in front and a vocative "NAME" at the end. A message that
/// is nothing but the address keeps its greeting ("hey eindr" is "hey"), or stays as it is.
fn without_address(words: &mut Vec<String>, name: &AssistantName) {
    let wake = words
        .first()
        .filter(|w| WAKE_WORDS.contains(&w.as_str()))
        .cloned();
    let named_at = usize::from(wake.is_some());
    if words.get(named_at).is_some_and(|w| name.is(w)) {
        let rest = words.split_off(named_at + 1);
        *words = match (rest.is_empty(), wake) {
            (false, _) => rest,
            (true, Some(greeting)) => vec![greeting],
            (true, None) => std::mem::take(words),
        };
    }
    if words.len() > 1 && words.last().is_some_and(|w| name.is(w)) {
        words.pop();
    }
}

fn without_fillers(words: &mut Vec<String>) {
    let mut kept: Vec<String> = Vec::with_capacity(words.len());
    let mut after_filler = true; // the start counts as one
    let mut i = 0;
    while i < words.len() {
        if FILLERS.contains(&words[i].as_str()) {
            after_filler = true;
            i += 1;
            continue;
        }
        if after_filler
            && let Some(discourse) = DISCOURSE
                .iter()
                .find(|d| words[i..].len() > d.len() && words[i..i + d.len()].iter().eq(d.iter()))
        {
            i += discourse.len();
            continue;
        }
        after_filler = false;
        kept.push(std::mem::take(&mut words[i]));
        i += 1;
    }
    *words = kept;
}

/// "i i want", "what is what is": a run of one to three words said again at once is said once.
fn without_restarts(words: &mut Vec<String>) {
    let mut i = 0;
    while i < words.len() {
        let repeated = (1..=3)
            .rev()
            .find(|&n| i + 2 * n <= words.len() && words[i..i + n] == words[i + n..i + 2 * n]);
        match repeated {
            Some(n) => {
                words.drain(i + n..i + 2 * n);
            }
            None => i += 1,
        }
    }
}

/// The digit a word says, in a code ("oh" is the zero of "four oh one k").
fn digit(word: &str) -> Option<char> {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    if word == "oh" {
        return Some('0');
    }
    let position = DIGITS.iter().position(|d| *d == word)?;
    char::from_digit(u32::try_from(position).ok()?, 10)
}

/// A letter said on its own in a code ("w two"); "a" and "i" are words.
fn spelled_letter(word: &str) -> bool {
    let mut chars = word.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if c.is_ascii_lowercase() && c != 'a' && c != 'i')
}

/// The last two digits of a year said in pairs ("ten" to "ninety nine"), and how many words
/// say them.
fn year_pair(words: &[String]) -> Option<(u32, usize)> {
    const TEENS: [&str; 10] = [
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let first = words.first()?.as_str();
    if let Some(i) = TEENS.iter().position(|w| *w == first) {
        return Some((10 + i as u32, 1));
    }
    let tens = 20 + 10 * TENS.iter().position(|w| *w == first)? as u32;
    match words.get(1).and_then(|w| digit(w)).filter(|d| *d != '0') {
        Some(unit) => Some((tens + unit.to_digit(10)?, 2)),
        None => Some((tens, 1)),
    }
}

/// "d l one two three" -> "dl123", "four oh one k" -> "401k", "w two" -> "w2" (letters and
/// digits said one by one, at least one of each); "nineteen eighty five" -> "1985",
/// "twenty nineteen" -> "2019".
fn codes_and_years_written(words: &mut Vec<String>) {
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let code = words[i..]
            .iter()
            .take_while(|w| spelled_letter(w) || digit(w).is_some())
            .count();
        let letters = words[i..i + code]
            .iter()
            .filter(|w| spelled_letter(w))
            .count();
        if code >= 2 && letters > 0 && letters < code {
            out.push(
                words[i..i + code]
                    .iter()
                    .map(|w| digit(w).map_or_else(|| w.clone(), String::from))
                    .collect(),
            );
            i += code;
            continue;
        }
        let century = match words[i].as_str() {
            "nineteen" => Some(19),
            "twenty" => Some(20),
            _ => None,
        };
        if let Some((century, (year, said))) = century.zip(year_pair(&words[i + 1..])) {
            out.push((century * 100 + year).to_string());
            i += 1 + said;
            continue;
        }
        out.push(std::mem::take(&mut words[i]));
        i += 1;
    }
    *words = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(message: &str) -> String {
        as_typed(message, &AssistantName::default())
    }

    #[test]
    fn the_address_to_the_assistant_is_not_part_of_the_request() {
        assert_eq!(typed("hey eindr what's the weather"), "what's the weather");
        assert_eq!(typed("ok einder set a timer"), "set a timer");
        assert_eq!(typed("Eindr, tell me a joke"), "tell me a joke");
        assert_eq!(typed("thanks eindr"), "thanks");
        assert_eq!(typed("hey eindr"), "hey");
        assert_eq!(typed("eindr"), "eindr");
        // Not the name: a word that only looks a little like it, or a name too short to guess.
        assert_eq!(typed("hey there"), "hey there");
        let max = AssistantName::new("Max");
        assert_eq!(as_typed("hey max play jazz", &max), "play jazz");
        assert_eq!(as_typed("may i ask", &max), "may i ask");
    }

    #[test]
    fn fillers_and_restarts_go_and_words_that_mean_something_stay() {
        assert_eq!(
            typed("um so i i want to uh like book a flight"),
            "i want to book a flight"
        );
        assert_eq!(typed("what is what is my balance"), "what is my balance");
        assert_eq!(typed("i like jazz you know"), "i like jazz you know");
        assert_eq!(typed("So, how are you?"), "how are you");
    }

    #[test]
    fn codes_and_years_said_aloud_are_written_and_other_numbers_stay_words() {
        assert_eq!(
            typed("is flight d l one two three on time"),
            "is flight dl123 on time"
        );
        assert_eq!(typed("roll over my four oh one k"), "roll over my 401k");
        assert_eq!(typed("where is my w two"), "where is my w2");
        assert_eq!(typed("shows of twenty nineteen"), "shows of 2019");
        assert_eq!(typed("born in nineteen eighty five"), "born in 1985");
        assert_eq!(typed("a nineteen"), "a nineteen");
        assert_eq!(typed("twenty five dollars"), "twenty five dollars");
        assert_eq!(typed("i want four stars"), "i want four stars");
        assert_eq!(typed("plan a trip for two"), "plan a trip for two");
    }
}
