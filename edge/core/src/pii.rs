//! Masks personal data in model output before it leaves the edge: e-mail addresses, phone
//! numbers, and card numbers (Luhn-checked, so ordinary long numbers stay).
//!
//! A small scanner instead of a regex engine: three shapes, and the regex crate would add
//! several hundred kilobytes to both wasm builds. [`PiiStream`] applies the same masking to
//! text that arrives in pieces, holding back only what a later piece could still extend.

pub const EMAIL_MASK: &str = "[email]";
pub const PHONE_MASK: &str = "[phone]";
pub const CARD_MASK: &str = "[card number]";

/// Characters that may separate the digits of one phone or card number.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')' | '/')
}

fn is_numberish(c: char) -> bool {
    c.is_ascii_digit() || c == '+' || is_separator(c)
}

/// Characters that may stand right before or after a number or address in prose.
fn is_boundary(c: Option<char>) -> bool {
    c.is_none_or(|c| {
        c.is_whitespace()
            || matches!(
                c,
                '(' | ')' | '"' | '\'' | ':' | ',' | ';' | '.' | '!' | '?' | '<' | '>' | '[' | ']'
            )
    })
}

fn luhn_valid(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// What a run of digits and separators is, if anything to mask.
fn classify_number(run: &str) -> Option<&'static str> {
    let digits: Vec<u32> = run.chars().filter_map(|c| c.to_digit(10)).collect();
    let n = digits.len();
    if (13..=19).contains(&n) && luhn_valid(&digits) {
        return Some(CARD_MASK);
    }
    // Dates (8 digits) and times stay; national numbers have 10+, international ones 8+
    // behind a `+`.
    if (10..=15).contains(&n) || (run.starts_with('+') && (8..=15).contains(&n)) {
        return Some(PHONE_MASK);
    }
    None
}

fn is_email(word: &str) -> bool {
    let Some((local, domain)) = word.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// Masks every e-mail address, phone number and card number in `text`.
pub fn mask(text: &str) -> String {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let prev = i.checked_sub(1).map(|p| chars[p].1);
        // An e-mail address: the word from here, without trailing punctuation.
        if c.is_ascii_alphanumeric() && is_boundary(prev) {
            let end = (i..chars.len())
                .find(|&j| {
                    chars[j].1.is_whitespace()
                        || matches!(chars[j].1, '<' | '>' | '(' | ')' | '"' | ',' | ';')
                })
                .unwrap_or(chars.len());
            let word_end = chars.get(end).map_or(text.len(), |&(b, _)| b);
            let word = text[start..word_end].trim_end_matches(['.', '!', '?', ':']);
            if word.contains('@') && is_email(word) {
                out.push_str(EMAIL_MASK);
                let masked_end = start + word.len();
                i = chars.partition_point(|&(b, _)| b < masked_end);
                continue;
            }
        }
        // A phone or card number: a run of digits and separators starting at a boundary.
        if (c.is_ascii_digit() || c == '+' || c == '(') && is_boundary(prev) {
            let mut end = i;
            while end < chars.len()
                && is_numberish(chars[end].1)
                && (end == i || chars[end].1 != '+')
            {
                end += 1;
            }
            // Trailing separators belong to the prose (`call 555 123 4567.`).
            while end > i && !chars[end - 1].1.is_ascii_digit() && chars[end - 1].1 != ')' {
                end -= 1;
            }
            let run_end = chars.get(end).map_or(text.len(), |&(b, _)| b);
            let next = chars.get(end).map(|&(_, c)| c);
            let run = &text[start..run_end];
            if end > i {
                // The run is judged as a whole: a part of an unmasked number is not a
                // number of its own.
                match classify_number(run) {
                    Some(label) if is_boundary(next) => out.push_str(label),
                    _ => out.push_str(run),
                }
                i = end;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Masks text that arrives in pieces: every piece yields the text that is final, the rest
/// waits for the next piece or [`PiiStream::finish`].
#[derive(Debug, Default)]
pub struct PiiStream {
    pending: String,
    masked: bool,
}

impl PiiStream {
    pub fn push(&mut self, piece: &str) -> String {
        self.pending.push_str(piece);
        let hold = hold_from(&self.pending);
        let ready: String = self.pending.drain(..hold).collect();
        self.masked_or_same(ready)
    }

    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.masked_or_same(rest)
    }

    /// Whether anything was masked so far (such an answer is never cached for others).
    pub fn masked_anything(&self) -> bool {
        self.masked
    }

    fn masked_or_same(&mut self, text: String) -> String {
        let out = mask(&text);
        self.masked |= out != text;
        out
    }
}

/// Where the part that a later piece could still change begins: the last word (it may go
/// on) and, before it, every word made only of digits and separators (a number with spaces
/// in it may go on across them), and the word before those when it ends in digits or
/// separators (a number may start inside a word, after a bracket: `A0(555 123 4567`), and so
/// on back while such words also begin with them.
fn hold_from(text: &str) -> usize {
    let mut hold = text.len();
    let mut last_word = true;
    loop {
        let before = &text[..hold];
        let trimmed = before.trim_end();
        let word_start = trimmed.rfind(char::is_whitespace).map_or(0, |p| {
            p + trimmed[p..].chars().next().map_or(1, char::len_utf8)
        });
        let word = &trimmed[word_start..];
        if word.is_empty() {
            return if last_word { hold } else { word_start };
        }
        if last_word || word.chars().all(is_numberish) {
            hold = word_start;
            last_word = false;
        } else if word.ends_with(is_numberish) {
            hold = word_start;
            // A number may also end inside it, having begun in the words before.
            if !word.starts_with(is_numberish) {
                return hold;
            }
        } else {
            // `hold` stays after this word's trailing whitespace.
            return hold;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_three_shapes_and_keeps_prose() {
        assert_eq!(
            mask("Write to jane.doe+x@mail.example.com, or call +1 (555) 123-4567."),
            "Write to [email], or call [phone]."
        );
        assert_eq!(
            mask("Card 4111 1111 1111 1111 charged; 4111 1111 1111 1112 is not one."),
            "Card [card number] charged; 4111 1111 1111 1112 is not one."
        );
        assert_eq!(mask("Call 0612345678!"), "Call [phone]!");
        for kept in [
            "I've set your reminder for 2 PM on 2026-11-24.",
            "It is 14:30 and 21 degrees.",
            "The population is 8,000,000,000.",
            "user@localhost says hi",
            "abc5551234567 is a code",
        ] {
            assert_eq!(mask(kept), kept);
        }
    }

    #[test]
    fn streaming_gives_the_same_result_wherever_the_text_is_cut() {
        let text = "Reach me at bob@example.org or 555 123 4567, card 4111-1111-1111-1111 ok. Bye";
        let whole = mask(text);
        let chars: Vec<char> = text.chars().collect();
        for size in 1..8 {
            let mut stream = PiiStream::default();
            let mut out = String::new();
            for piece in chars.chunks(size) {
                out.push_str(&stream.push(&piece.iter().collect::<String>()));
            }
            out.push_str(&stream.finish());
            assert_eq!(out, whole, "pieces of {size}");
        }
        assert!(!whole.contains("bob@") && !whole.contains("4567") && !whole.contains("4111"));
    }

    /// Found by the property test (tests/properties.rs): a number that begins inside a word,
    /// and one that ends inside a word, were masked differently in pieces than whole.
    #[test]
    fn numbers_that_begin_or_end_inside_a_word_stream_as_they_mask() {
        for text in ["A0(000000 0000", "0000 0000 0000 0000a0000 0000 0000 0000"] {
            let mut stream = PiiStream::default();
            let out = stream.push(text) + &stream.finish();
            assert_eq!(out, mask(text), "{text:?}");
        }
    }

    #[test]
    fn streaming_releases_finished_words_promptly() {
        let mut stream = PiiStream::default();
        assert_eq!(stream.push("Hello there, my frie"), "Hello there, my ");
        assert_eq!(stream.push("nd. Call 555 "), "friend. Call ");
        assert_eq!(stream.push("123 4567 now"), "");
        assert_eq!(stream.finish(), "[phone] now");
    }
}
