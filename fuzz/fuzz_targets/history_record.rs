//! Any bytes as a stored history record, plain or sealed: decoded or refused with a typed
//! error, never a panic; whatever decodes encodes and decodes to the same conversation.
#![no_main]

use std::sync::OnceLock;

use edge_core::history::HistoryCodec;
use edge_core::seal::Sealer;
use libfuzzer_sys::fuzz_target;

fn codecs() -> &'static [HistoryCodec; 2] {
    static CODECS: OnceLock<[HistoryCodec; 2]> = OnceLock::new();
    CODECS.get_or_init(|| {
        let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        [
            HistoryCodec::new(None),
            HistoryCodec::new(Sealer::from_config(key).ok()),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    for codec in codecs() {
        if let Ok(conversation) = codec.decode(Some(data), b"history:fuzz") {
            let again = codec.encode(&conversation, b"history:fuzz", [7; 12]);
            let again = again.and_then(|bytes| codec.decode(Some(&bytes), b"history:fuzz"));
            assert_eq!(again.ok(), Some(conversation));
        }
    }
});
