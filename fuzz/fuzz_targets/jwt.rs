//! Any bytes as a bearer token: the verifier answers Ok or a typed error, never panics, and
//! accepts nothing it did not sign.
#![no_main]

use std::sync::OnceLock;

use edge_core::auth::{Authenticator, KeySet, TokenPolicy};
use libfuzzer_sys::fuzz_target;

fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let mut keys = KeySet::default();
        let _ = keys.add_hs256_secret(b"fuzz-secret-0123456789abcdef0123456789", None);
        let policy = TokenPolicy {
            issuer: "eindr".into(),
            audience: "eindr-chat".into(),
            leeway_s: 30,
            max_token_bytes: 8 * 1024,
            cache_size: 0,
        };
        match Authenticator::new(keys, policy) {
            Ok(auth) => auth,
            Err(e) => panic!("fuzz setup: {e}"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    // Without the secret no input can be a valid token: acceptance would be a finding.
    assert!(
        authenticator()
            .verify_uncached(&token, 4_000_000_000_000)
            .is_err()
    );
    let header = format!("Bearer {token}");
    let _ = authenticator().authenticate(Some(&header), 4_000_000_000_000);
});
