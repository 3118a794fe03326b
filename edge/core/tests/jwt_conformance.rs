//! JWS conformance on Project Wycheproof's vectors (Apache-2.0), read from the shared data
//! folder the test command passes in `EINDR_TEST_DATA`.
//!
//! Each group's key is configured as an operator would (its JWK), then every vector goes
//! through the production `Authenticator`. A vector counts as accepted when the signature
//! verified: Wycheproof payloads such as `foo` are not JWT claims sets, so for them the
//! claims layer refuses afterwards (`AuthLayer::Claims`), which still means the signature
//! was accepted.

// A failure here is a failed test, not a crashed request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use edge_core::auth::keys::key_from_jwk;
use edge_core::auth::{AuthLayer, Authenticator, KeySet, TokenPolicy};
use serde_json::Value;

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("EINDR_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(
        dir.join("jwt/wycheproof").is_dir(),
        "Wycheproof vectors not found under {} (set EINDR_TEST_DATA to the shared data folder)",
        dir.display()
    );
    dir
}

/// Vectors whose verdict differs from the file's label, each with the reason.
const DOCUMENTED: &[(u64, &str)] = &[
    (
        346,
        "label inconsistent: a PS384 token under a JWK whose `alg` is PS256. RFC 7517 §4.4 binds \
         the key to PS256, and our keys verify only their own algorithm, so we refuse",
    ),
    (
        350,
        "same as 346 with key_ops: a PS384 token under a PS256 key; refused",
    ),
    (
        347,
        "label inconsistent: the key's `alg` is `ES521`, not a registered algorithm (ES512 is); \
         we also don't accept P-521/ES512 (jwt-simple has no P-521), so we refuse",
    ),
    (
        351,
        "as 347 with key_ops: ES512/P-521 is not accepted; refused",
    ),
    (
        367,
        "label inconsistent: the token is byte-for-byte the valid tcId 357 (no padding is \
         present), so it verifies",
    ),
    (
        370,
        "label inconsistent: byte-for-byte the valid tcId 357, so it verifies",
    ),
    (
        372,
        "label inconsistent: `?` is not in the base64url alphabet (RFC 7515 §2); our strict \
         decoding refuses the header",
    ),
    (
        373,
        "label inconsistent: `?` in the payload is not base64url; refused",
    ),
];

fn authenticator_for(group: &Value) -> Option<Authenticator> {
    let jwk = group.get("public").or_else(|| group.get("private"))?;
    let mut keys = KeySet::default();
    keys.push(key_from_jwk(jwk).ok()?);
    let policy = TokenPolicy {
        issuer: "wycheproof".into(),
        audience: "wycheproof".into(),
        leeway_s: 30,
        max_token_bytes: 16 * 1024,
        cache_size: 0,
    };
    Authenticator::new(keys, policy).ok()
}

#[test]
fn wycheproof_jws_vectors() {
    let path = data_dir().join("jwt/wycheproof/json_web_signature_test.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut checked = 0;
    let mut accepted = 0;
    let mut mismatches = Vec::new();
    for group in doc["testGroups"].as_array().unwrap() {
        let auth = authenticator_for(group);
        for test in group["tests"].as_array().unwrap() {
            let id = test["tcId"].as_u64().unwrap();
            let expected_valid = test["result"] == "valid";
            // Only the compact serialization travels in a Bearer header.
            let verdict = match (&auth, test["jws"].as_str()) {
                (Some(auth), Some(jws)) => match auth.verify_token(jws, 0) {
                    Ok(_) => true,
                    Err(e) => e.layer() == AuthLayer::Claims,
                },
                _ => false,
            };
            checked += 1;
            accepted += usize::from(verdict);
            if verdict != expected_valid {
                mismatches.push(id);
            }
        }
    }
    assert_eq!(checked, 401, "every vector was checked");
    let documented: Vec<u64> = DOCUMENTED.iter().map(|(id, _)| *id).collect();
    let undocumented: Vec<_> = mismatches
        .iter()
        .filter(|id| !documented.contains(id))
        .collect();
    assert!(
        undocumented.is_empty(),
        "verdicts differ without a reason: {undocumented:?}"
    );
    // The table must stay honest: every documented case really differs.
    let stale: Vec<_> = documented
        .iter()
        .filter(|id| !mismatches.contains(id))
        .collect();
    assert!(stale.is_empty(), "documented but agreeing: {stale:?}");
    println!(
        "wycheproof: {checked} vectors, {accepted} accepted, {} documented differences",
        mismatches.len()
    );
}
