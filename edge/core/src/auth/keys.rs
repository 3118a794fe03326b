//! Verification keys and the algorithm each one may verify. A key verifies exactly one
//! algorithm, chosen by its kind (or its JWK `alg`), never by the token's header: that is
//! what defeats algorithm-confusion attacks (an RSA public key used as an HMAC secret).

use jwt_simple::prelude::*;
use thiserror::Error;

use super::claims::EdgeClaims;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("HS256 secret must be at least 32 bytes")]
    WeakSecret,
    #[error("JWKS is not valid JSON with a `keys` array: {0}")]
    BadJwks(String),
    #[error("JWK #{index} ({kid}): {reason}")]
    BadJwk {
        index: usize,
        kid: String,
        reason: String,
    },
    #[error("PEM block #{index} is not an RSA, P-256, P-384 or Ed25519 public key")]
    BadPem { index: usize },
    #[error("no verification key configured")]
    NoKeys,
}

/// One configured key. Boxed variants keep the enum small; keys are built once at start.
pub enum VerifyingKey {
    Hs256(Box<HS256Key>),
    Rs256(Box<RS256PublicKey>),
    Rs384(Box<RS384PublicKey>),
    Rs512(Box<RS512PublicKey>),
    Ps256(Box<PS256PublicKey>),
    Ps384(Box<PS384PublicKey>),
    Ps512(Box<PS512PublicKey>),
    Es256(Box<ES256PublicKey>),
    Es384(Box<ES384PublicKey>),
    EdDsa(Box<Ed25519PublicKey>),
}

impl VerifyingKey {
    /// The one JWS `alg` this key verifies.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Hs256(_) => "HS256",
            Self::Rs256(_) => "RS256",
            Self::Rs384(_) => "RS384",
            Self::Rs512(_) => "RS512",
            Self::Ps256(_) => "PS256",
            Self::Ps384(_) => "PS384",
            Self::Ps512(_) => "PS512",
            Self::Es256(_) => "ES256",
            Self::Es384(_) => "ES384",
            Self::EdDsa(_) => "EdDSA",
        }
    }

    pub(super) fn verify(
        &self,
        token: &str,
        options: VerificationOptions,
    ) -> Result<JWTClaims<EdgeClaims>, jwt_simple::Error> {
        let o = Some(options);
        match self {
            Self::Hs256(k) => k.verify_token(token, o),
            Self::Rs256(k) => k.verify_token(token, o),
            Self::Rs384(k) => k.verify_token(token, o),
            Self::Rs512(k) => k.verify_token(token, o),
            Self::Ps256(k) => k.verify_token(token, o),
            Self::Ps384(k) => k.verify_token(token, o),
            Self::Ps512(k) => k.verify_token(token, o),
            Self::Es256(k) => k.verify_token(token, o),
            Self::Es384(k) => k.verify_token(token, o),
            Self::EdDsa(k) => k.verify_token(token, o),
        }
    }
}

/// A key and its optional key id.
pub struct KeyEntry {
    pub kid: Option<String>,
    pub key: VerifyingKey,
}

/// The configured keys, looked up by (alg, kid).
#[derive(Default)]
pub struct KeySet {
    entries: Vec<KeyEntry>,
}

impl KeySet {
    pub fn push(&mut self, entry: KeyEntry) {
        self.entries.push(entry);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<_> = self.entries.iter().map(|e| e.key.algorithm()).collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }

    /// The key for a token's header. With a `kid`, only a key of that id and algorithm
    /// matches; without one, the single key of that algorithm (ambiguity is a refusal, so
    /// that key rotation never silently tries several keys).
    pub fn find(&self, alg: &str, kid: Option<&str>) -> Option<&VerifyingKey> {
        let mut same_alg = self.entries.iter().filter(|e| e.key.algorithm() == alg);
        match kid {
            Some(kid) => same_alg
                .find(|e| e.kid.as_deref() == Some(kid))
                .map(|e| &e.key),
            None => {
                let first = same_alg.next()?;
                same_alg.next().is_none().then_some(&first.key)
            }
        }
    }

    /// Adds an HS256 shared secret.
    pub fn add_hs256_secret(&mut self, secret: &[u8], kid: Option<String>) -> Result<(), KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::WeakSecret);
        }
        self.push(KeyEntry {
            kid,
            key: VerifyingKey::Hs256(Box::new(HS256Key::from_bytes(secret))),
        });
        Ok(())
    }

    /// Adds keys from `JWT_PUBLIC_KEYS`: a JWKS document (`{"keys":[...]}`) or PEM blocks.
    pub fn add_public_keys(&mut self, text: &str) -> Result<(), KeyError> {
        if text.trim_start().starts_with('{') {
            self.add_jwks(text)
        } else {
            self.add_pem_blocks(text)
        }
    }

    pub fn add_jwks(&mut self, text: &str) -> Result<(), KeyError> {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| KeyError::BadJwks(e.to_string()))?;
        let keys = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| KeyError::BadJwks("missing `keys` array".into()))?;
        for (index, jwk) in keys.iter().enumerate() {
            let entry = key_from_jwk(jwk).map_err(|reason| KeyError::BadJwk {
                index,
                kid: jwk
                    .get("kid")
                    .and_then(|k| k.as_str())
                    .unwrap_or("-")
                    .to_owned(),
                reason,
            })?;
            self.push(entry);
        }
        Ok(())
    }

    fn add_pem_blocks(&mut self, text: &str) -> Result<(), KeyError> {
        let blocks = pem_blocks(text);
        for (index, pem) in blocks.iter().enumerate() {
            let key = key_from_pem(pem).ok_or(KeyError::BadPem { index })?;
            self.push(KeyEntry { kid: None, key });
        }
        Ok(())
    }
}

/// Splits text into `-----BEGIN ...-----` ... `-----END ...-----` blocks.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END ") {
                blocks.extend(current.take());
            }
        }
    }
    blocks
}

/// A PEM public key's kind decides its algorithm: RSA → RS256, P-256 → ES256,
/// P-384 → ES384, Ed25519 → EdDSA. (PS* needs a JWK with `alg`.)
fn key_from_pem(pem: &str) -> Option<VerifyingKey> {
    if let Ok(k) = RS256PublicKey::from_pem(pem) {
        return Some(VerifyingKey::Rs256(Box::new(k)));
    }
    if let Ok(k) = ES256PublicKey::from_pem(pem) {
        return Some(VerifyingKey::Es256(Box::new(k)));
    }
    if let Ok(k) = ES384PublicKey::from_pem(pem) {
        return Some(VerifyingKey::Es384(Box::new(k)));
    }
    Ed25519PublicKey::from_pem(pem)
        .ok()
        .map(|k| VerifyingKey::EdDsa(Box::new(k)))
}

/// One JWK. The algorithm comes from the JWK's `alg` where present (and must fit its
/// `kty`), else from its kind as for PEM. jwt-simple checks `use`/`key_ops` so a key
/// marked for encryption is refused.
pub fn key_from_jwk(jwk: &serde_json::Value) -> Result<KeyEntry, String> {
    let text = jwk.to_string();
    let field = |name: &str| jwk.get(name).and_then(|v| v.as_str());
    let kid = field("kid").map(str::to_owned);
    let kty = field("kty").ok_or("missing kty")?;
    let alg = field("alg");
    let e = |err: jwt_simple::Error| err.to_string();
    let key = match (kty, alg) {
        ("oct", None | Some("HS256")) => {
            check_use_for_signing(jwk)?;
            let k = field("k").ok_or("oct key without k")?;
            let secret = super::b64url::decode_strict(k).map_err(|_| "k is not base64url")?;
            if secret.len() < 32 {
                return Err("HS256 secret shorter than 32 bytes".into());
            }
            VerifyingKey::Hs256(Box::new(HS256Key::from_bytes(&secret)))
        }
        ("RSA", None | Some("RS256")) => {
            VerifyingKey::Rs256(Box::new(RS256PublicKey::from_jwk(&text).map_err(e)?))
        }
        ("RSA", Some("RS384")) => {
            VerifyingKey::Rs384(Box::new(RS384PublicKey::from_jwk(&text).map_err(e)?))
        }
        ("RSA", Some("RS512")) => {
            VerifyingKey::Rs512(Box::new(RS512PublicKey::from_jwk(&text).map_err(e)?))
        }
        ("RSA", Some("PS256")) => {
            VerifyingKey::Ps256(Box::new(PS256PublicKey::from_jwk(&text).map_err(e)?))
        }
        ("RSA", Some("PS384")) => {
            VerifyingKey::Ps384(Box::new(PS384PublicKey::from_jwk(&text).map_err(e)?))
        }
        ("RSA", Some("PS512")) => {
            VerifyingKey::Ps512(Box::new(PS512PublicKey::from_jwk(&text).map_err(e)?))
        }
        ("EC", None | Some("ES256")) if field("crv") == Some("P-256") => {
            VerifyingKey::Es256(Box::new(ES256PublicKey::from_jwk(&text).map_err(e)?))
        }
        ("EC", None | Some("ES384")) if field("crv") == Some("P-384") => {
            VerifyingKey::Es384(Box::new(ES384PublicKey::from_jwk(&text).map_err(e)?))
        }
        ("OKP", None | Some("EdDSA" | "Ed25519")) if field("crv") == Some("Ed25519") => {
            VerifyingKey::EdDsa(Box::new(Ed25519PublicKey::from_jwk(&text).map_err(e)?))
        }
        (kty, alg) => {
            return Err(format!(
                "unsupported key: kty {kty}, alg {}, crv {}",
                alg.unwrap_or("-"),
                field("crv").unwrap_or("-")
            ));
        }
    };
    Ok(KeyEntry { kid, key })
}

/// jwt-simple's JWK import covers asymmetric keys only; the same `use`/`key_ops` rule
/// applies to shared secrets.
fn check_use_for_signing(jwk: &serde_json::Value) -> Result<(), String> {
    if let Some(key_use) = jwk.get("use").and_then(|u| u.as_str())
        && key_use != "sig"
    {
        return Err(format!("key use is {key_use}, not sig"));
    }
    if let Some(ops) = jwk.get("key_ops").and_then(|o| o.as_array())
        && !ops.iter().any(|op| op.as_str() == Some("verify"))
    {
        return Err("key_ops does not allow verify".into());
    }
    Ok(())
}
