//! Where a request's records live, for platforms that place state per owner (a Durable Object
//! per user). A hint only: it reads the token's `sub` without verifying it, and choosing a
//! place grants nothing, since the core verifies the token wherever the request lands.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::auth::is_valid_user_id;
use crate::http::HttpRequest;
use crate::platform::{RecordKind, StoreKey};

/// The place (e.g. Durable Object name) that holds a record: `user:<id>` for a user's
/// history and rate-limit state, `addr:<address>` for failed-authentication counts, and
/// `None` for records kept wherever the request is served (the backend's circuit breaker).
pub fn place_of(key: StoreKey<'_>) -> Option<String> {
    match key.kind {
        RecordKind::History | RecordKind::RateLimit => Some(format!("user:{}", key.owner)),
        RecordKind::AuthFailures => Some(format!("addr:{}", key.owner)),
        RecordKind::BackendBreaker => None,
    }
}

/// The place where most of this request's records live: the token subject's, else the
/// client address's (an unauthenticated request only touches its address's record).
pub fn place_for_request(req: &HttpRequest) -> String {
    match unverified_subject(req) {
        Some(sub) => format!("user:{sub}"),
        None => format!("addr:{}", req.client_addr.as_deref().unwrap_or("unknown")),
    }
}

fn unverified_subject(req: &HttpRequest) -> Option<String> {
    let auth = req.header("authorization")?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.len() > 16 * 1024 {
        return None;
    }
    let payload = token.trim().split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    #[derive(serde::Deserialize)]
    struct Sub {
        sub: Option<String>,
    }
    let sub = serde_json::from_slice::<Sub>(&bytes).ok()?.sub?;
    is_valid_user_id(&sub).then_some(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places() {
        let token = format!("h.{}.s", URL_SAFE_NO_PAD.encode(br#"{"sub":"alice"}"#));
        let req =
            HttpRequest::new("GET", "/x").with_header("Authorization", &format!("Bearer {token}"));
        assert_eq!(place_for_request(&req), "user:alice");
        let anon = HttpRequest::new("GET", "/x").with_client_addr("10.0.0.1");
        assert_eq!(place_for_request(&anon), "addr:10.0.0.1");
        let junk = anon.clone().with_header("authorization", "Bearer a.%%%.b");
        assert_eq!(place_for_request(&junk), "addr:10.0.0.1");
        let key = StoreKey {
            kind: RecordKind::AuthFailures,
            owner: "10.0.0.1",
        };
        assert_eq!(place_of(key).as_deref(), Some("addr:10.0.0.1"));
        let key = StoreKey {
            kind: RecordKind::History,
            owner: "alice",
        };
        assert_eq!(place_of(key).as_deref(), Some("user:alice"));
    }
}
