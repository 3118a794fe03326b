//! A model's answer as plain text for speech: every answer is spoken, so markdown, emoji and
//! code have no place in it. Applied to the backend's text as it streams (after the PII
//! filter, before the client and history see it):
//! - code fences and what they hold are dropped; inline backticks go;
//! - a line's heading marks (`#`), list markers (`-`, `*`, `+`, `1.`, `1)`) and quote marks
//!   (`>`) go;
//! - emphasis marks (`**`, `__`, `*`, `~~`, and `_` at a word's edge) go, the words stay;
//! - a link `[words](url)` becomes its words;
//! - emoji (and their joiners and variation selectors) go.
//!
//! Pieces may split a mark anywhere, so the text after the last space waits for the next
//! piece (a link until it closes): the same answer comes out however it is cut.

/// Turns streamed pieces of an answer into plain text for speech.
#[derive(Debug, Clone)]
pub struct SpokenText {
    /// Text not yet safe to clean: the current word, or an unclosed link.
    held: String,
    /// The next character starts a line.
    line_start: bool,
    /// Inside a code fence.
    in_fence: bool,
    /// The last character given out was whitespace (or nothing was).
    after_space: bool,
}

impl Default for SpokenText {
    fn default() -> Self {
        Self {
            held: String::new(),
            line_start: true,
            in_fence: false,
            after_space: true,
        }
    }
}

impl SpokenText {
    /// The next piece of the answer; the plain text that may go out now.
    pub fn push(&mut self, text: &str) -> String {
        self.held.push_str(text);
        let ready = ready_len(&self.held);
        let rest = self.held.split_off(ready);
        let ready = std::mem::replace(&mut self.held, rest);
        self.clean(&ready)
    }

    /// The answer is complete: whatever was held, cleaned.
    pub fn finish(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        self.clean(&held)
    }

    fn clean(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let (body, newline) = match line.strip_suffix('\n') {
                Some(body) => (body, true),
                None => (line, false),
            };
            let mut body = body;
            let was_line_start = self.line_start;
            if self.line_start {
                let trimmed = body.trim_start();
                if trimmed.starts_with("```") {
                    self.in_fence = !self.in_fence;
                    // The fence line goes whole.
                    self.line_start = newline;
                    continue;
                }
                if !self.in_fence {
                    body = strip_line_marks(trimmed);
                }
            }
            if !self.in_fence {
                self.inline(body, &mut out);
                if newline {
                    out.push('\n');
                    self.after_space = true;
                }
            }
            // A line's start is still ahead while only its indentation has come.
            self.line_start = newline || (was_line_start && body.trim().is_empty());
        }
        out
    }

    /// Copies one line's text without emphasis, backticks, link targets or emoji.
    fn inline(&mut self, text: &str, out: &mut String) {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let prev_word = i > 0 && chars[i - 1].is_alphanumeric();
            let next_word = next.is_some_and(char::is_alphanumeric);
            let skip = match c {
                '*' | '`' => true,
                '~' if next == Some('~') => {
                    i += 1;
                    true
                }
                // snake_case stays; `_word_` loses its marks.
                '_' => !(prev_word && next_word),
                '[' => match link_end(&chars[i..]) {
                    Some((words, len)) => {
                        self.inline(&words, out);
                        i += len;
                        continue;
                    }
                    None => false,
                },
                c if is_emoji(c) => {
                    // "Great 🎉 news": one space stays, not two.
                    if next == Some(' ') && self.after_space {
                        i += 1;
                    }
                    true
                }
                _ => false,
            };
            if !skip {
                // Marks removed at a word's edge may leave two spaces: keep one.
                if !(c == ' ' && self.after_space) {
                    out.push(c);
                }
                self.after_space = c.is_whitespace();
            }
            i += 1;
        }
    }
}

/// How much of `held` can be cleaned now: up to its last whitespace, and not past an unclosed
/// `[` (a link's words may hold spaces).
fn ready_len(held: &str) -> usize {
    let mut ready = held.rfind(char::is_whitespace).map_or(0, |i| {
        i + held[i..].chars().next().map_or(0, char::len_utf8)
    });
    if let Some(open) = held[..ready].rfind('[') {
        let close = held[open..]
            .find(')')
            .filter(|&c| held[open..open + c].contains("]("));
        let gave_up = held[open..ready].contains('\n') || ready - open > 512;
        match close {
            // The whole link goes together, however its words are spaced.
            Some(c) => ready = ready.max(open + c + 1),
            None if !gave_up => ready = open,
            None => {}
        }
    }
    ready
}

/// A line's leading heading, list or quote marks, removed.
fn strip_line_marks(line: &str) -> &str {
    let mut line = line;
    loop {
        let before = line;
        if let Some(rest) = line.strip_prefix('#') {
            line = rest.trim_start_matches('#').trim_start();
        } else if let Some(rest) = line
            .strip_prefix("- ")
            .or_else(|| line.strip_prefix("* "))
            .or_else(|| line.strip_prefix("+ "))
            .or_else(|| line.strip_prefix("> "))
        {
            line = rest.trim_start();
        } else {
            let digits = line.chars().take_while(char::is_ascii_digit).count();
            let marker = line[digits..]
                .strip_prefix(". ")
                .or_else(|| line[digits..].strip_prefix(") "));
            match marker {
                Some(rest) if digits > 0 && digits <= 3 => line = rest.trim_start(),
                _ => {}
            }
        }
        if line.len() == before.len() {
            return line;
        }
    }
}

/// `[words](url)` at the start of `chars`: the words and how many characters it spans.
fn link_end(chars: &[char]) -> Option<(String, usize)> {
    let close = chars.iter().position(|&c| c == ']')?;
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = chars[close + 2..].iter().position(|&c| c == ')')? + close + 2;
    Some((chars[1..close].iter().collect(), end + 1))
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF   // pictographs, emoticons, transport, flags, symbols
        | 0x2600..=0x27BF   // miscellaneous symbols, dingbats
        | 0x2B50..=0x2B55   // stars and circles
        | 0xFE0F | 0x200D   // variation selector, zero-width joiner
        | 0xE0020..=0xE007F // tag sequences
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spoken(text: &str) -> String {
        let mut cleaner = SpokenText::default();
        let mut out = cleaner.push(text);
        out.push_str(&cleaner.finish());
        out
    }

    #[test]
    fn markdown_goes_and_the_words_stay() {
        assert_eq!(
            spoken("**Sure!** Here is *one*: a __fun__ fact."),
            "Sure! Here is one: a fun fact."
        );
        assert_eq!(
            spoken("# Title\n## Steps\n- first\n* second\n1. third\n> quoted"),
            "Title\nSteps\nfirst\nsecond\nthird\nquoted"
        );
        assert_eq!(
            spoken("See [the guide](https://eindr.app/help) now."),
            "See the guide now."
        );
        assert_eq!(
            spoken("Use `snake_case` and ~~not~~ this."),
            "Use snake_case and not this."
        );
        assert_eq!(
            spoken("Code:\n```rust\nfn main() {}\n```\nDone."),
            "Code:\nDone."
        );
    }

    #[test]
    fn emoji_go_with_their_space() {
        assert_eq!(spoken("Great news 🎉 for you! 👍🏽"), "Great news for you! ");
        assert_eq!(spoken("❤️ Love it"), "Love it");
        assert_eq!(spoken("Plain text, 3.5 * 2 = 7."), "Plain text, 3.5 2 = 7.");
    }

    proptest! {
        /// However the answer is cut into pieces, the same plain text comes out.
        #[test]
        fn the_same_text_comes_out_however_it_is_cut(
            words in proptest::collection::vec(
                prop_oneof![
                    Just("**bold**"), Just("*it*"), Just("_under_"), Just("snake_case"),
                    Just("[a link](http://x.io/a)"), Just("`code`"), Just("🎉"), Just("\n- item"),
                    Just("\n```\nfn x() {}\n```\n"), Just("# head"), Just("plain"), Just("3.5"),
                    Just("~~gone~~"), Just("[not a link]"), Just("\n1. one"),
                ],
                0..25,
            ),
            cuts in proptest::collection::vec(0usize..300, 0..10),
        ) {
            let text = words.join(" ");
            let whole = spoken(&text);
            let mut cleaner = SpokenText::default();
            let mut out = String::new();
            for piece in crate::speech::cut_into_pieces(&text, cuts) {
                out.push_str(&cleaner.push(piece));
            }
            out.push_str(&cleaner.finish());
            prop_assert_eq!(&out, &whole);
            for mark in ["**", "`", "🎉", "](", "~~"] {
                prop_assert!(!out.contains(mark), "{mark} in {out:?}");
            }
        }
    }
}
