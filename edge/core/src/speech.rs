//! Sentences ready for speech: an answer streamed in arbitrary pieces comes out sentence by
//! sentence as soon as each has ended, so a text-to-speech engine can start on the first
//! sentence while the model is still writing the rest.
//!
//! A sentence ends at `.`, `!`, `?` or `…` (with any closing quotes or brackets) followed by a
//! space or the end of the answer; not after a title or a Latin abbreviation ("Dr.", "e.g."),
//! an initial ("J."), or "a.m."/"p.m." unless a capital follows. Decimals ("3.5"), times
//! ("10:30"), e-mail addresses and URLs carry no space after their dots, so they never end one.
//! Each sentence is an exact slice of the text, its ending space included: the sentences
//! joined are the text.

/// Words after which a period never ends a sentence (lower case, without the period).
const NEVER_ENDS: [&str; 14] = [
    "dr", "mr", "mrs", "ms", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "cf", "approx", "mt",
];

/// Words after which a period ends a sentence only if a capital letter follows.
const ENDS_BEFORE_CAPITAL: [&str; 5] = ["a.m", "p.m", "etc", "u.s", "u.s.a"];

const CLOSERS: [char; 7] = ['"', '\'', '”', '’', ')', ']', '»'];

/// Collects an answer's text and gives back each sentence once it has ended.
#[derive(Debug, Default, Clone)]
pub struct SentenceSplitter {
    pending: String,
}

impl SentenceSplitter {
    /// Adds the next piece of the answer; the sentences it completed, in order.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.pending.push_str(text);
        let mut sentences = Vec::new();
        while let Some(end) = sentence_end(&self.pending) {
            let rest = self.pending.split_off(end);
            sentences.push(std::mem::replace(&mut self.pending, rest));
        }
        sentences
    }

    /// The answer is complete: its last sentences (the text after the last ending, when it
    /// holds more than whitespace).
    pub fn finish(&mut self) -> Vec<String> {
        let mut sentences = Vec::new();
        while let Some(end) = sentence_end(&self.pending) {
            let rest = self.pending.split_off(end);
            sentences.push(std::mem::replace(&mut self.pending, rest));
        }
        let rest = std::mem::take(&mut self.pending);
        if !rest.trim().is_empty() {
            sentences.push(rest);
        }
        sentences
    }
}

/// The byte index just past the first sentence of `text` (its ending space included), if one
/// has ended. A terminator at the very end waits: the next piece may continue it ("3." then
/// "5"); at the answer's end, [`SentenceSplitter::finish`] takes the rest.
fn sentence_end(text: &str) -> Option<usize> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if !matches!(c, '.' | '!' | '?' | '…') {
            i += 1;
            continue;
        }
        // The whole run of terminators and closers: "?!", "...", `."`.
        let mut j = i + 1;
        while j < chars.len()
            && (matches!(chars[j].1, '.' | '!' | '?' | '…') || CLOSERS.contains(&chars[j].1))
        {
            j += 1;
        }
        match chars.get(j) {
            None => return None,
            Some(&(at, next)) if next.is_whitespace() => {
                if c == '.' && j == i + 1 && !ends_here(text, chars[i].0, &chars[j + 1..]) {
                    i = j + 1;
                    continue;
                }
                return Some(at + next.len_utf8());
            }
            // "3.5", "example.com", "a.m" so far: not an ending.
            Some(_) => i = j,
        }
    }
    None
}

/// Whether the period at byte `dot` ends a sentence, given the word before it and the text
/// after its space.
fn ends_here(text: &str, dot: usize, after: &[(usize, char)]) -> bool {
    let word_start = text[..dot]
        .rfind(|c: char| c.is_whitespace() || c == '(' || c == '"')
        .map_or(0, |p| p + 1);
    let word = text[word_start..dot].to_lowercase();
    if word.is_empty() {
        return true;
    }
    if NEVER_ENDS.contains(&word.as_str()) {
        return false;
    }
    // An initial: "J. R. R. Tolkien" (not the pronoun: "so did I.").
    let original = &text[word_start..dot];
    let mut letters = original.chars();
    if let (Some(first), None) = (letters.next(), letters.next())
        && first.is_uppercase()
        && first != 'I'
    {
        return false;
    }
    if ENDS_BEFORE_CAPITAL.contains(&word.as_str()) {
        return after
            .iter()
            .map(|&(_, c)| c)
            .find(|c| !c.is_whitespace())
            .is_some_and(char::is_uppercase);
    }
    true
}

/// `text` cut at the byte offsets `cuts` (taken modulo its length, off-boundary ones dropped):
/// how the streaming property tests feed a text in pieces.
#[cfg(test)]
pub(crate) fn cut_into_pieces(text: &str, cuts: Vec<usize>) -> Vec<&str> {
    let mut bounds: Vec<usize> = cuts
        .into_iter()
        .map(|c| c % (text.len() + 1))
        .filter(|c| text.is_char_boundary(*c))
        .collect();
    bounds.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for b in bounds.into_iter().chain([text.len()]) {
        pieces.push(&text[start..b]);
        start = b;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(text: &str) -> Vec<String> {
        let mut splitter = SentenceSplitter::default();
        let mut sentences = splitter.push(text);
        sentences.extend(splitter.finish());
        sentences
    }

    #[test]
    fn sentences_end_at_punctuation_and_a_space() {
        assert_eq!(
            split("Hello there! How are you? I'm fine."),
            ["Hello there! ", "How are you? ", "I'm fine."]
        );
        assert_eq!(
            split("Wait... really?! Yes."),
            ["Wait... ", "really?! ", "Yes."]
        );
        assert_eq!(
            split("He said \"no.\" Then he left."),
            ["He said \"no.\" ", "Then he left."]
        );
        assert_eq!(split("No ending"), ["No ending"]);
    }

    #[test]
    fn abbreviations_numbers_times_addresses_do_not_end_one() {
        assert_eq!(
            split("Dr. Smith arrives at 10:30 a.m. tomorrow, e.g. before lunch. Pi is 3.14 today."),
            [
                "Dr. Smith arrives at 10:30 a.m. tomorrow, e.g. before lunch. ",
                "Pi is 3.14 today."
            ]
        );
        assert_eq!(
            split(
                "Meet at 9 a.m. Then we go. Mail bob@example.com or see https://eindr.app/help. Thanks!"
            ),
            [
                "Meet at 9 a.m. ",
                "Then we go. ",
                "Mail bob@example.com or see https://eindr.app/help. ",
                "Thanks!"
            ]
        );
        assert_eq!(
            split("J. R. R. Tolkien wrote it. Read it."),
            ["J. R. R. Tolkien wrote it. ", "Read it."]
        );
    }

    #[test]
    fn a_sentence_waits_for_the_space_after_its_period() {
        let mut splitter = SentenceSplitter::default();
        assert!(splitter.push("It is 3.").is_empty());
        assert!(splitter.push("5 degrees").is_empty());
        assert_eq!(splitter.push(". Cold"), ["It is 3.5 degrees. "]);
        assert_eq!(splitter.finish(), ["Cold"]);
    }

    proptest! {
        /// However the answer is cut into pieces, the sentences joined are the answer (its
        /// trailing whitespace aside), and the same sentences come out.
        #[test]
        fn sentences_joined_are_the_text_however_it_is_split(
            words in proptest::collection::vec(
                prop_oneof![
                    Just("Dr."), Just("Hello."), Just("world!"), Just("3.5"), Just("a.m."),
                    Just("Then"), Just("e.g."), Just("why?"), Just("bob@x.io."), Just("“quoted.”"),
                    Just("J."), Just("ok"), Just("…"), Just("\n"),
                ],
                0..30,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..12),
        ) {
            let text = words.join(" ");
            let whole = split(&text);
            let mut splitter = SentenceSplitter::default();
            let mut pieces = Vec::new();
            for piece in cut_into_pieces(&text, cuts) {
                pieces.extend(splitter.push(piece));
            }
            pieces.extend(splitter.finish());
            let joined = pieces.concat();
            prop_assert!(text.starts_with(&joined), "{joined:?} is not the start of {text:?}");
            prop_assert_eq!(joined.trim_end(), text.trim_end());
            prop_assert_eq!(&pieces, &whole);
        }
    }
}
