//! Any text, cut anywhere: the streaming PII filter gives exactly what masking the whole text
//! gives (a difference is a finding), and never panics.
#![no_main]

use edge_core::pii::{PiiStream, mask};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let step = usize::from(step % 16).max(1);
    let chars: Vec<char> = text.chars().collect();
    let mut stream = PiiStream::default();
    let mut streamed = String::new();
    for piece in chars.chunks(step) {
        streamed.push_str(&stream.push(&piece.iter().collect::<String>()));
    }
    streamed.push_str(&stream.finish());
    assert_eq!(streamed, mask(&text));
});
