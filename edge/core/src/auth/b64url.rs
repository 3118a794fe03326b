//! Strict base64url (RFC 7515 §2): no padding, no whitespace, canonical trailing bits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn decode_strict(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    // The default engine already rejects padding and non-canonical trailing bits.
    URL_SAFE_NO_PAD.decode(text)
}

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Whether `text` is what `decode_strict` accepts, without decoding it (no allocation).
pub fn is_canonical(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut last = None;
    for &c in bytes {
        match sextet(c) {
            Some(v) => last = Some(v),
            None => return false,
        }
    }
    // The unused low bits of the last character must be zero.
    match (bytes.len() % 4, last) {
        (1, _) => false,
        (2, Some(last)) => last & 0x0F == 0,
        (3, Some(last)) => last & 0x03 == 0,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_matches_strict_decoding() {
        for text in [
            "",
            "A",
            "AA",
            "AB",
            "AAA",
            "AAE",
            "AAB",
            "AAAA",
            "VGVzdA",
            "VGVzdB",
            "VGVzdA=",
            "VGV zdA",
            "VG+zdA",
            "VG/zdA",
            "VG-_dA",
            "eyJhbGciOiJIUzI1NiJ?9",
        ] {
            assert_eq!(is_canonical(text), decode_strict(text).is_ok(), "{text:?}");
        }
    }
}
