//! Bearer-token authentication: strict JWT verification with jwt-simple.
//!
//! The token is checked in layers: framing and header (ours, strict), then the signature
//! (jwt-simple, with the one key the configuration binds to that algorithm and key id), then
//! the claims (expiry, issuer, audience, subject). `AuthError::layer` tells which layer
//! refused, which the Wycheproof conformance test relies on.

pub mod b64url;
pub mod cache;
pub mod claims;
pub mod keys;

use std::collections::HashSet;

use jwt_simple::JWTError;
use jwt_simple::prelude::{Duration, VerificationOptions};
use serde::Deserialize;
use thiserror::Error;

use cache::{TokenCache, VerifiedToken};
pub use claims::{EdgeClaims, Scope};
pub use keys::{KeyError, KeySet, VerifyingKey};

/// The scope that lets a token read and delete any user's history.
pub const ADMIN_SCOPE: &str = "chat:admin";

/// Longest accepted user id (the `sub` claim and the id in history paths).
pub const MAX_USER_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("missing Authorization header")]
    MissingToken,
    #[error("Authorization header must be `Bearer <token>`")]
    NotBearer,
    #[error("token is longer than {0} bytes")]
    TooLong(usize),
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token algorithm `{0}` is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("no configured key matches the token's algorithm and key id")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token claims are not a valid JWT claims set")]
    MalformedClaims,
    #[error("token is missing the `{0}` claim")]
    MissingClaim(&'static str),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    WrongIssuer,
    #[error("token audience is not accepted")]
    WrongAudience,
    #[error("token subject is not a valid user id")]
    InvalidSubject,
}

/// Where in the verification a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthLayer {
    /// Before the signature was checked: framing, header, algorithm, key lookup.
    Framing,
    Signature,
    /// After a valid signature: the claims set or the policy on it.
    Claims,
}

impl AuthError {
    pub fn layer(&self) -> AuthLayer {
        match self {
            Self::MissingToken
            | Self::NotBearer
            | Self::TooLong(_)
            | Self::Malformed(_)
            | Self::UnsupportedAlgorithm(_)
            | Self::UnknownKey => AuthLayer::Framing,
            Self::BadSignature => AuthLayer::Signature,
            Self::MalformedClaims
            | Self::MissingClaim(_)
            | Self::Expired
            | Self::NotYetValid
            | Self::WrongIssuer
            | Self::WrongAudience
            | Self::InvalidSubject => AuthLayer::Claims,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::NotBearer => "not_bearer",
            Self::TooLong(_) => "token_too_long",
            Self::Malformed(_) => "malformed_token",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "invalid_signature",
            Self::MalformedClaims => "malformed_claims",
            Self::MissingClaim(_) => "missing_claim",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::InvalidSubject => "invalid_subject",
        }
    }
}

/// Who made the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub admin: bool,
}

impl Principal {
    /// Users may touch only their own history; admins anyone's.
    pub fn may_access(&self, user_id: &str) -> bool {
        self.admin || self.user_id == user_id
    }
}

/// Token policy, from configuration.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub issuer: String,
    pub audience: String,
    pub leeway_s: u64,
    pub max_token_bytes: usize,
    /// Verified tokens kept per instance (0 turns the cache off).
    pub cache_size: usize,
}

/// The JOSE header fields we accept. Header-carried keys and key URLs are refused outright:
/// keys come from configuration only.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // checked by jwt-simple; typed here so its parse cannot fail later
    typ: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    cty: Option<String>,
    #[serde(default)]
    crit: Option<Vec<String>>,
    #[serde(default)]
    jwk: Option<serde_json::Value>,
    #[serde(default)]
    jku: Option<serde_json::Value>,
    #[serde(default)]
    x5u: Option<serde_json::Value>,
    #[serde(default)]
    x5c: Option<serde_json::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    x5t: Option<String>,
    #[serde(default, rename = "x5t#S256")]
    #[allow(dead_code)]
    x5t_s256: Option<String>,
    #[serde(default)]
    salt: Option<serde_json::Value>,
}

pub struct Authenticator {
    keys: KeySet,
    algorithms: Vec<&'static str>,
    policy: TokenPolicy,
    issuers: HashSet<String>,
    audiences: HashSet<String>,
    cache: TokenCache,
}

impl Authenticator {
    pub fn new(keys: KeySet, policy: TokenPolicy) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Self {
            algorithms: keys.algorithms(),
            keys,
            issuers: HashSet::from([policy.issuer.clone()]),
            audiences: HashSet::from([policy.audience.clone()]),
            cache: TokenCache::new(policy.cache_size),
            policy,
        })
    }

    pub fn algorithms(&self) -> &[&'static str] {
        &self.algorithms
    }

    /// Authenticates an `Authorization` header value at `now_ms`.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        now_ms: u64,
    ) -> Result<Principal, AuthError> {
        let value = authorization.ok_or(AuthError::MissingToken)?.trim();
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotBearer);
        }
        self.verify_token(token.trim(), now_ms)
    }

    /// Verifies a compact JWS carrying a JWT, or finds it already verified.
    pub fn verify_token(&self, token: &str, now_ms: u64) -> Result<Principal, AuthError> {
        let now_s = now_ms / 1000;
        let leeway = self.policy.leeway_s;
        if let Some(principal) = self.cache.get(token, now_s, leeway) {
            return Ok(principal);
        }
        let verified = self.verify_uncached(token, now_ms)?;
        let principal = verified.principal.clone();
        self.cache.insert(token, verified, now_s, leeway);
        Ok(principal)
    }

    /// Full verification: framing, header, key, signature, claims.
    pub fn verify_uncached(&self, token: &str, now_ms: u64) -> Result<VerifiedToken, AuthError> {
        if token.len() > self.policy.max_token_bytes {
            return Err(AuthError::TooLong(self.policy.max_token_bytes));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("a JWS has exactly three parts"));
        };
        let header_bytes = b64url::decode_strict(header_b64)
            .map_err(|_| AuthError::Malformed("header is not base64url"))?;
        if !b64url::is_canonical(payload_b64) {
            return Err(AuthError::Malformed("payload is not base64url"));
        }
        if !b64url::is_canonical(signature_b64) {
            return Err(AuthError::Malformed("signature is not base64url"));
        }
        if signature_b64.is_empty() {
            return Err(AuthError::Malformed("signature is empty"));
        }
        let header: JoseHeader = serde_json::from_slice(&header_bytes)
            .map_err(|_| AuthError::Malformed("header is not a JOSE header"))?;
        if header.jwk.is_some()
            || header.jku.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
        {
            return Err(AuthError::Malformed("header carries key material"));
        }
        if header.salt.is_some() {
            return Err(AuthError::Malformed("header carries a salt"));
        }
        if header.crit.is_some_and(|c| !c.is_empty()) {
            return Err(AuthError::Malformed("unsupported critical header"));
        }
        if !self.algorithms.contains(&header.alg.as_str()) {
            return Err(AuthError::UnsupportedAlgorithm(header.alg));
        }
        let key = self
            .keys
            .find(&header.alg, header.kid.as_deref())
            .ok_or(AuthError::UnknownKey)?;

        let options = VerificationOptions {
            allowed_issuers: Some(self.issuers.clone()),
            allowed_audiences: Some(self.audiences.clone()),
            time_tolerance: Some(Duration::from_secs(self.policy.leeway_s)),
            artificial_time: Some(Duration::from_millis(now_ms)),
            max_token_length: Some(self.policy.max_token_bytes),
            ..VerificationOptions::default()
        };
        let claims = key.verify(token, options).map_err(classify)?;
        let expires_at_s = claims
            .expires_at
            .ok_or(AuthError::MissingClaim("exp"))?
            .as_secs();
        let user_id = claims.subject.ok_or(AuthError::MissingClaim("sub"))?;
        if !is_valid_user_id(&user_id) {
            return Err(AuthError::InvalidSubject);
        }
        let admin = claims
            .custom
            .scope
            .as_ref()
            .is_some_and(|s| s.contains(ADMIN_SCOPE));
        // iat in the future is refused like nbf (jwt-simple's rule), so both bound a hit.
        let not_before_s = match (claims.invalid_before, claims.issued_at) {
            (Some(nbf), Some(iat)) => Some(nbf.as_secs().max(iat.as_secs())),
            (nbf, iat) => nbf.or(iat).map(|t| t.as_secs()),
        };
        Ok(VerifiedToken {
            principal: Principal { user_id, admin },
            expires_at_s,
            not_before_s,
        })
    }
}

/// Maps jwt-simple's errors to ours. Framing and header were checked before jwt-simple ran,
/// so a JSON or encoding error from it can only come from the claims set.
fn classify(error: jwt_simple::Error) -> AuthError {
    match error.downcast_ref::<JWTError>() {
        Some(JWTError::InvalidSignature | JWTError::InvalidAuthenticationTag) => {
            AuthError::BadSignature
        }
        Some(JWTError::TokenHasExpired) => AuthError::Expired,
        Some(JWTError::TokenNotValidYet | JWTError::ClockDrift) => AuthError::NotYetValid,
        Some(JWTError::RequiredIssuerMismatch | JWTError::RequiredIssuerMissing) => {
            AuthError::WrongIssuer
        }
        Some(JWTError::RequiredAudienceMismatch | JWTError::RequiredAudienceMissing) => {
            AuthError::WrongAudience
        }
        Some(JWTError::TokenTooLong) => AuthError::TooLong(0),
        Some(JWTError::NotJWT) => AuthError::Malformed("typ is not JWT"),
        Some(_) => AuthError::Malformed("token refused by the verifier"),
        None if error.downcast_ref::<serde_json::Error>().is_some() => AuthError::MalformedClaims,
        // Signature back-ends (RSA, ECDSA, Ed25519) report a malformed signature as their own
        // error type; it is a refusal of the signature.
        None => AuthError::BadSignature,
    }
}

/// User ids are printable, without whitespace or path separators, at most 128 bytes.
pub fn is_valid_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_USER_ID_LEN
        && id
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != '/' && c != '?' && c != '#')
}
