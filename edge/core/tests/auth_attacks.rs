//! Our own hostile and broken tokens, through the production `Authenticator`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use edge_core::auth::b64url;
use edge_core::auth::{AuthError, Authenticator, EdgeClaims, KeySet, TokenPolicy};
use jwt_simple::prelude::*;

fn policy() -> TokenPolicy {
    TokenPolicy {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        leeway_s: 30,
        max_token_bytes: 4096,
        cache_size: 64,
    }
}

fn hs256_auth() -> Authenticator {
    let mut keys = KeySet::default();
    keys.add_hs256_secret(SECRET.as_bytes(), None).unwrap();
    Authenticator::new(keys, policy()).unwrap()
}

fn hs(claims: JWTClaims<EdgeClaims>) -> String {
    HS256Key::from_bytes(SECRET.as_bytes())
        .authenticate(claims)
        .unwrap()
}

fn forge(header: &str, claims: &JWTClaims<EdgeClaims>, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url::encode(header.as_bytes()),
        b64url::encode(serde_json::to_string(claims).unwrap().as_bytes()),
        b64url::encode(signature)
    )
}

#[test]
fn valid_token_and_admin_scope() {
    let auth = hs256_auth();
    let p = auth
        .verify_token(&mint("alice", None, T0_MS), T0_MS)
        .unwrap();
    assert_eq!(p.user_id, "alice");
    assert!(!p.admin);
    let p = auth
        .verify_token(&mint("ops", Some("chat:admin"), T0_MS), T0_MS)
        .unwrap();
    assert!(p.admin);
    // scope as a list works too; a look-alike scope does not grant admin.
    let mut c = claims_at("ops", None, T0_MS);
    c.custom.scope = Some(edge_core::auth::Scope::List(vec!["chat:admin".into()]));
    assert!(auth.verify_token(&hs(c), T0_MS).unwrap().admin);
    let p = auth
        .verify_token(&mint("ops", Some("chat:administrator"), T0_MS), T0_MS)
        .unwrap();
    assert!(!p.admin);
}

#[test]
fn alg_none_is_refused() {
    let auth = hs256_auth();
    let claims = claims_at("alice", None, T0_MS);
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE","typ":"JWT"}"#,
    ] {
        let unsigned = forge(header, &claims, b"");
        assert!(auth.verify_token(&unsigned, T0_MS).is_err(), "{header}");
        let with_sig = forge(header, &claims, b"sig");
        assert!(matches!(
            auth.verify_token(&with_sig, T0_MS),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let pair = RS256KeyPair::generate(2048).unwrap();
    let public_pem = pair.public_key().to_pem().unwrap();
    // The classic confusion: the attacker uses the public PEM as an HMAC secret.
    let forged = HS256Key::from_bytes(public_pem.as_bytes())
        .authenticate(claims_at("alice", None, T0_MS))
        .unwrap();

    let mut keys = KeySet::default();
    keys.add_public_keys(&public_pem).unwrap();
    let rsa_only = Authenticator::new(keys, policy()).unwrap();
    assert_eq!(
        rsa_only.verify_token(&forged, T0_MS),
        Err(AuthError::UnsupportedAlgorithm("HS256".into()))
    );
    // The genuine RS256 token passes.
    let genuine = pair.sign(claims_at("alice", None, T0_MS)).unwrap();
    assert_eq!(
        rsa_only.verify_token(&genuine, T0_MS).unwrap().user_id,
        "alice"
    );

    // With an HS256 secret configured too, the forgery fails on its signature.
    let mut keys = KeySet::default();
    keys.add_public_keys(&public_pem).unwrap();
    keys.add_hs256_secret(SECRET.as_bytes(), None).unwrap();
    let both = Authenticator::new(keys, policy()).unwrap();
    assert_eq!(
        both.verify_token(&forged, T0_MS),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn time_claims_with_leeway() {
    let auth = hs256_auth();
    let token = mint("alice", None, T0_MS);
    let hour = 3_600_000;
    // Expired, but within the 30 s leeway: accepted. Beyond it: refused.
    assert!(auth.verify_token(&token, T0_MS + hour + 29_000).is_ok());
    assert_eq!(
        auth.verify_token(&token, T0_MS + hour + 31_000),
        Err(AuthError::Expired)
    );
    // Not valid yet (nbf and iat in the future) beyond the leeway.
    let future = mint("alice", None, T0_MS + 60_000);
    assert_eq!(
        auth.verify_token(&future, T0_MS),
        Err(AuthError::NotYetValid)
    );
    assert!(auth.verify_token(&future, T0_MS + 31_000).is_ok());
}

#[test]
fn required_claims() {
    let auth = hs256_auth();
    let mut c = claims_at("alice", None, T0_MS);
    c.expires_at = None;
    assert_eq!(
        auth.verify_token(&hs(c), T0_MS),
        Err(AuthError::MissingClaim("exp"))
    );
    let mut c = claims_at("alice", None, T0_MS);
    c.subject = None;
    assert_eq!(
        auth.verify_token(&hs(c), T0_MS),
        Err(AuthError::MissingClaim("sub"))
    );
    let mut c = claims_at("alice", None, T0_MS);
    c.issuer = None;
    assert_eq!(
        auth.verify_token(&hs(c), T0_MS),
        Err(AuthError::WrongIssuer)
    );
    let mut c = claims_at("alice", None, T0_MS);
    c.issuer = Some("https://evil.test".into());
    assert_eq!(
        auth.verify_token(&hs(c), T0_MS),
        Err(AuthError::WrongIssuer)
    );
    let mut c = claims_at("alice", None, T0_MS);
    c.audiences = None;
    assert_eq!(
        auth.verify_token(&hs(c), T0_MS),
        Err(AuthError::WrongAudience)
    );
    let mut c = claims_at("alice", None, T0_MS);
    c.audiences = Some(Audiences::AsString("another-service".into()));
    assert_eq!(
        auth.verify_token(&hs(c), T0_MS),
        Err(AuthError::WrongAudience)
    );
    let c = claims_at("a/b", None, T0_MS);
    assert_eq!(
        auth.verify_token(&hs(c), T0_MS),
        Err(AuthError::InvalidSubject)
    );
}

#[test]
fn tampered_payload_is_refused() {
    let auth = hs256_auth();
    let token = mint("alice", None, T0_MS);
    let parts: Vec<&str> = token.split('.').collect();
    let admin = claims_at("alice", Some("chat:admin"), T0_MS);
    let payload = b64url::encode(serde_json::to_string(&admin).unwrap().as_bytes());
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    assert_eq!(
        auth.verify_token(&tampered, T0_MS),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn oversized_and_malformed_tokens() {
    let auth = hs256_auth();
    let mut c = claims_at("alice", None, T0_MS);
    c.jwt_id = Some("x".repeat(5000));
    assert_eq!(
        auth.verify_token(&hs(c), T0_MS),
        Err(AuthError::TooLong(4096))
    );
    for bad in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "....",
        "e30.e30.",
        "e30=.e30.c2ln",
    ] {
        assert!(
            matches!(auth.verify_token(bad, T0_MS), Err(AuthError::Malformed(_))),
            "{bad:?}"
        );
    }
    assert_eq!(auth.authenticate(None, T0_MS), Err(AuthError::MissingToken));
    assert_eq!(
        auth.authenticate(Some("Basic abc"), T0_MS),
        Err(AuthError::NotBearer)
    );
    assert_eq!(
        auth.authenticate(Some("Bearer"), T0_MS),
        Err(AuthError::NotBearer)
    );
}

#[test]
fn embedded_keys_in_the_header_are_refused() {
    let auth = hs256_auth();
    let claims = claims_at("alice", None, T0_MS);
    let header = r#"{"alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}"#;
    assert_eq!(
        auth.verify_token(&forge(header, &claims, b"x"), T0_MS),
        Err(AuthError::Malformed("header carries key material"))
    );
    let header = r#"{"alg":"HS256","jku":"https://evil.test/jwks"}"#;
    assert!(
        auth.verify_token(&forge(header, &claims, b"x"), T0_MS)
            .is_err()
    );
}

#[test]
fn eddsa_es256_and_jwks_keys_with_kid() {
    let ed = Ed25519KeyPair::generate();
    let es = ES256KeyPair::generate().with_key_id("es-1");
    let ed_pem = ed.public_key().to_pem();
    let mut keys = KeySet::default();
    keys.add_public_keys(&ed_pem).unwrap();
    let jwks = format!(r#"{{"keys":[{}]}}"#, es.public_key().to_jwk());
    keys.add_public_keys(&jwks).unwrap();
    let auth = Authenticator::new(keys, policy()).unwrap();
    assert_eq!(auth.algorithms(), ["ES256", "EdDSA"]);
    let t = ed.sign(claims_at("alice", None, T0_MS)).unwrap();
    assert_eq!(auth.verify_token(&t, T0_MS).unwrap().user_id, "alice");
    let t = es.sign(claims_at("bob", None, T0_MS)).unwrap();
    assert_eq!(auth.verify_token(&t, T0_MS).unwrap().user_id, "bob");
    // Signed by another ES256 key that claims the same kid: refused.
    let other = ES256KeyPair::generate().with_key_id("es-1");
    let t = other.sign(claims_at("bob", None, T0_MS)).unwrap();
    assert_eq!(auth.verify_token(&t, T0_MS), Err(AuthError::BadSignature));
    // An unknown kid: no key.
    let unknown = ES256KeyPair::generate().with_key_id("es-2");
    let t = unknown.sign(claims_at("bob", None, T0_MS)).unwrap();
    assert_eq!(auth.verify_token(&t, T0_MS), Err(AuthError::UnknownKey));
}

#[test]
fn weak_or_bad_keys_fail_at_start() {
    let mut keys = KeySet::default();
    assert!(keys.add_hs256_secret(b"short", None).is_err());
    assert!(
        keys.add_public_keys("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
            .is_err()
    );
    assert!(
        keys.add_public_keys(r#"{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]}"#)
            .is_err()
    );
    assert!(keys.add_public_keys("{not json").is_err());
    assert!(Authenticator::new(KeySet::default(), policy()).is_err());
}

#[test]
fn cached_tokens_still_expire_and_tampering_still_fails() {
    let auth = hs256_auth();
    let token = mint("alice", None, T0_MS);
    assert!(auth.verify_token(&token, T0_MS).is_ok());
    assert!(auth.verify_token(&token, T0_MS + 1000).is_ok(), "cache hit");
    assert_eq!(
        auth.verify_token(&token, T0_MS + 3_600_000 + 31_000),
        Err(AuthError::Expired)
    );
    // A hit needs the exact bytes: one changed signature character is a full (failing) check.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'Q' } else { 'A' });
    assert!(auth.verify_token(&forged, T0_MS + 2000).is_err());
}
