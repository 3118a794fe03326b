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
