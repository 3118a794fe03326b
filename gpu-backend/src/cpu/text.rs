//! From token ids to streamed text with vLLM's stop semantics: the text is decoded from all
//! ids so far (byte-level BPE splits characters across tokens), a stop sequence ends the
//! answer and is not part of it, and text that may be the start of a stop sequence is held
//! back until the next token tells.

/// What the assembler says after a token.
#[derive(Debug, PartialEq, Eq)]
pub struct Emit {
    /// New text for the client (may be empty).
    pub text: String,
    /// A stop sequence was found: the answer ends here.
    pub stopped: bool,
}

pub struct TextAssembler {
    stops: Vec<String>,
    /// Bytes of the decoded text already sent.
    sent: usize,
}

impl TextAssembler {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            sent: 0,
        }
    }

    /// Takes the whole text decoded so far; `last` when no token follows.
    pub fn push(&mut self, decoded: &str, last: bool) -> Emit {
        let from = self.sent.min(decoded.len());
        // A stop may begin in text held back earlier, never in text already sent.
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|stop| decoded[from..].find(stop.as_str()).map(|i| from + i))
            .min()
        {
            return self.emit_to(decoded, at, true);
        }
        // An incomplete UTF-8 sequence decodes as U+FFFD: wait for the rest of it.
        let complete = decoded.trim_end_matches('\u{FFFD}');
        let safe = if last {
            decoded.len()
        } else {
            complete.len() - self.held_back(complete)
        };
        self.emit_to(decoded, safe.max(from), false)
    }

    fn emit_to(&mut self, decoded: &str, end: usize, stopped: bool) -> Emit {
        let end = floor_char_boundary(decoded, end);
        let text = decoded
            .get(self.sent.min(end)..end)
            .unwrap_or("")
            .to_owned();
        self.sent = self.sent.max(end);
        Emit { text, stopped }
    }

    /// Length of the longest end of `text` that a stop sequence starts with.
    fn held_back(&self, text: &str) -> usize {
        self.stops
            .iter()
            .flat_map(|stop| {
                (1..stop.len())
                    .filter(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n]))
                    .max()
            })
            .max()
            .unwrap_or(0)
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], growing: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| (*s).to_owned()).collect();
        let mut assembler = TextAssembler::new(&stops);
        let mut out = String::new();
        for (i, decoded) in growing.iter().enumerate() {
            let emit = assembler.push(decoded, i + 1 == growing.len());
            out.push_str(&emit.text);
            if emit.stopped {
                return (out, true);
            }
        }
        (out, false)
    }

    #[test]
    fn text_passes_through_without_stops() {
        assert_eq!(
            run(&[], &["Hel", "Hello", "Hello there"]),
            ("Hello there".into(), false)
        );
    }

    #[test]
    fn a_stop_ends_the_text_and_is_left_out() {
        let (text, stopped) = run(
            &["\nUser:"],
            &[
                "Sure",
                "Sure.\n",
                "Sure.\nUs",
                "Sure.\nUser:",
                "Sure.\nUser: hi",
            ],
        );
        assert_eq!((text.as_str(), stopped), ("Sure.", true));
    }

    #[test]
    fn a_possible_stop_start_is_held_back_then_released() {
        let stops = vec!["\nUser:".to_owned()];
        let mut assembler = TextAssembler::new(&stops);
        assert_eq!(assembler.push("Ok\nUs", false).text, "Ok");
        assert_eq!(assembler.push("Ok\nUsually", false).text, "\nUsually");
    }

    #[test]
    fn a_split_character_waits_for_its_last_byte() {
        let stops = Vec::new();
        let mut assembler = TextAssembler::new(&stops);
        assert_eq!(assembler.push("caf\u{FFFD}", false).text, "caf");
        assert_eq!(assembler.push("café", false).text, "é");
    }

    #[test]
    fn the_last_token_releases_held_text() {
        assert_eq!(run(&["\nUser:"], &["Bye\nU"]), ("Bye\nU".into(), false));
    }
}
