//! History at rest: AES-256-GCM with a random 96-bit nonce per write and the store key as
//! associated data. Record layout: `0x01 'E' 'S' nonce(12) ciphertext+tag(16)`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use thiserror::Error;

const MAGIC: [u8; 3] = [0x01, b'E', b'S'];
const NONCE_LEN: usize = 12;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SealError {
    #[error("HISTORY_ENCRYPTION_KEY must be 32 bytes as 64 hex digits or base64")]
    BadKey,
    #[error("stored history is sealed but no HISTORY_ENCRYPTION_KEY is configured")]
    KeyMissing,
    #[error("stored history failed authentication (wrong key or tampered record)")]
    Unauthentic,
    #[error("sealing failed")]
    SealFailed,
}

pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    /// A 32-byte key given as 64 hex digits or as standard/url-safe base64.
    pub fn from_config(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let key = decode_hex(text)
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .or_else(|| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text)
                    .ok()
            })
            .filter(|k| k.len() == 32)
            .ok_or(SealError::BadKey)?;
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| SealError::BadKey)?;
        Ok(Self { cipher })
    }

    pub fn is_sealed_record(bytes: &[u8]) -> bool {
        bytes.starts_with(&MAGIC)
    }

    pub fn seal(
        &self,
        plain: &[u8],
        aad: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>, SealError> {
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| SealError::SealFailed)?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub fn open(&self, record: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let body = record
            .strip_prefix(&MAGIC)
            .filter(|b| b.len() >= NONCE_LEN + 16)
            .ok_or(SealError::Unauthentic)?;
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| SealError::Unauthentic)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn seal_open_round_trip_and_binding() {
        let s = Sealer::from_config(KEY).unwrap();
        let rec = s.seal(b"hello history", b"history:alice", [7; 12]).unwrap();
        assert!(Sealer::is_sealed_record(&rec));
        assert!(!rec.windows(5).any(|w| w == b"hello"));
        assert_eq!(s.open(&rec, b"history:alice").unwrap(), b"hello history");
        assert_eq!(s.open(&rec, b"history:bob"), Err(SealError::Unauthentic));
        let mut tampered = rec.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            s.open(&tampered, b"history:alice"),
            Err(SealError::Unauthentic)
        );
    }

    #[test]
    fn keys_in_hex_or_base64_and_bad_keys() {
        assert!(Sealer::from_config(KEY).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        assert!(Sealer::from_config(&b64).is_ok());
        assert!(Sealer::from_config("short").is_err());
        assert!(Sealer::from_config(&KEY[..62]).is_err());
    }
}
