//! Cross-origin access for browser clients served from another origin (`CORS_ALLOWED_ORIGINS`),
//! and the headers every response carries.
//!
//! By default no origin is allowed: a browser page elsewhere can't read an answer or send a
//! preflighted request. Listed origins (exact `scheme://host[:port]`) get their own origin
//! echoed with `Vary: Origin`; `*` allows any origin and is sent as `*`. Credentials are never
//! allowed (`Access-Control-Allow-Credentials` is never sent): the API authenticates with a
//! bearer token the page holds, not with cookies, so a wildcard can't lend a user's session
//! to another site.

use crate::config::ConfigError;
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};

/// The methods and request headers a preflight may ask for.
const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
const ALLOW_HEADERS: [&str; 5] = [
    "authorization",
    "content-type",
    "accept",
    "x-request-id",
    "cache-control",
];
/// Response headers a browser page may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: &str = "ratelimit-limit, ratelimit-remaining, ratelimit-reset, \
    x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, \
    retry-after, x-request-id, x-cache, x-cache-key";
/// How long a browser may cache a preflight's answer.
const MAX_AGE_S: &str = "600";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Any origin (`*`).
    any: bool,
    origins: Vec<String>,
}

impl CorsPolicy {
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins, or `*`; empty allows none.
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        let mut policy = Self::default();
        // A trailing slash is forgiven (a copied address); a path is not.
        for origin in list
            .split(',')
            .map(|o| o.trim().trim_end_matches('/'))
            .filter(|o| !o.is_empty())
        {
            if origin == "*" {
                policy.any = true;
                continue;
            }
            let valid = ["http://", "https://"].iter().any(|scheme| {
                origin.strip_prefix(scheme).is_some_and(|host| {
                    !host.is_empty() && !host.contains(['/', '?', '#', ' ', '*'])
                })
            });
            if !valid {
                return Err(ConfigError::Invalid {
                    var: "CORS_ALLOWED_ORIGINS",
                    value: origin.to_owned(),
                    reason: "expected origins like https://app.example.com (scheme and host, \
                             no path), comma-separated, or *"
                        .into(),
                });
            }
            policy.origins.push(origin.to_ascii_lowercase());
        }
        Ok(policy)
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    fn allow(&self, origin: &str) -> Option<String> {
        if self.any {
            Some("*".to_owned())
        } else {
            let origin = origin.to_ascii_lowercase();
            self.origins.contains(&origin).then_some(origin)
        }
    }

    /// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`): its
    /// answer, 204 for an allowed origin, method and headers, 403 otherwise. `None` when the
    /// request is not a preflight.
    pub fn preflight(&self, req: &HttpRequest) -> Option<HttpResponse> {
        if req.method != "OPTIONS" {
            return None;
        }
        let origin = req.header("origin")?;
        let method = req.header("access-control-request-method")?;
        let refuse = |why: &str| {
            let mut response =
                ApiError::Forbidden(format!("CORS preflight refused: {why}")).to_response();
            response.set_header("vary", "Origin".into());
            response
        };
        let Some(allowed) = self.allow(origin) else {
            return Some(refuse("this origin is not in CORS_ALLOWED_ORIGINS"));
        };
        if !ALLOW_METHODS.split(", ").any(|m| m == method) {
            return Some(refuse("method not allowed"));
        }
        let requested = req.header("access-control-request-headers").unwrap_or("");
        let unknown: Vec<&str> = requested
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .filter(|h| !ALLOW_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(h)))
            .collect();
        if !unknown.is_empty() {
            return Some(refuse(&format!(
                "headers not allowed: {}",
                unknown.join(", ")
            )));
        }
        let mut response = HttpResponse {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        };
        response.set_header("access-control-allow-origin", allowed);
        response.set_header("access-control-allow-methods", ALLOW_METHODS.into());
        response.set_header("access-control-allow-headers", ALLOW_HEADERS.join(", "));
        response.set_header("access-control-max-age", MAX_AGE_S.into());
        response.set_header(
            "vary",
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".into(),
        );
        Some(response)
    }

    /// CORS headers on an answer to a request from an allowed origin (a preflight's answer
    /// has its own).
    pub fn decorate(&self, req: &HttpRequest, response: &mut HttpResponse) {
        if req.method == "OPTIONS" {
            return;
        }
        if self.any || !self.origins.is_empty() {
            // Whether a cache may reuse this answer for another origin depends on it.
            response.set_header("vary", "Origin".into());
        }
        if let Some(allowed) = req.header("origin").and_then(|o| self.allow(o)) {
            response.set_header("access-control-allow-origin", allowed);
            response.set_header("access-control-expose-headers", EXPOSE_HEADERS.into());
        }
    }
}

/// Headers on every response: no MIME sniffing, no referrer, and (unless the route says how
/// it may be cached, as the page does) no storing of answers that may hold a conversation.
pub fn secure(response: &mut HttpResponse) {
    response.set_header("x-content-type-options", "nosniff".into());
    response.set_header("referrer-policy", "no-referrer".into());
    if response.header("cache-control").is_none() {
        response.set_header("cache-control", "no-store".into());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path: "/api/chat/respond".into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Vec::new(),
            client_addr: None,
        }
    }

    fn header<'a>(response: &'a HttpResponse, name: &str) -> Option<&'a str> {
        response.header(name)
    }

    #[test]
    fn origins_are_exact_and_checked() {
        let policy =
            CorsPolicy::parse(" https://app.example.com , http://localhost:5173/").unwrap();
        assert_eq!(
            policy.allow("https://APP.example.com").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            policy.allow("http://localhost:5173").as_deref(),
            Some("http://localhost:5173")
        );
        assert_eq!(policy.allow("https://app.example.com.evil.test"), None);
        assert_eq!(policy.allow("null"), None);
        assert_eq!(CorsPolicy::parse("").unwrap(), CorsPolicy::default());
        for bad in [
            "app.example.com",
            "https://x.test/path",
            "https://*.x.test",
            "ftp://x",
        ] {
            assert!(CorsPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn preflight_for_a_listed_origin_only() {
        let policy = CorsPolicy::parse("https://app.example.com").unwrap();
        let ok = policy
            .preflight(&request(
                "OPTIONS",
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "Authorization, Content-Type",
                    ),
                ],
            ))
            .unwrap();
        assert_eq!(ok.status, 204);
        assert_eq!(
            header(&ok, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert!(header(&ok, "access-control-allow-credentials").is_none());
        let other = policy
            .preflight(&request(
                "OPTIONS",
                &[
                    ("origin", "https://evil.test"),
                    ("access-control-request-method", "POST"),
                ],
            ))
            .unwrap();
        assert_eq!(other.status, 403);
        assert!(header(&other, "access-control-allow-origin").is_none());
        let odd_header = policy
            .preflight(&request(
                "OPTIONS",
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "x-forwarded-user"),
                ],
            ))
            .unwrap();
        assert_eq!(odd_header.status, 403);
        // Not a preflight: routing answers it.
        assert!(policy.preflight(&request("OPTIONS", &[])).is_none());
        assert!(
            policy
                .preflight(&request("POST", &[("origin", "https://app.example.com")]))
                .is_none()
        );
    }

    #[test]
    fn a_wildcard_never_lends_credentials() {
        let policy = CorsPolicy::parse("*").unwrap();
        let mut response = HttpResponse::json(200, &serde_json::json!({}));
        policy.decorate(
            &request("GET", &[("origin", "https://any.test")]),
            &mut response,
        );
        assert_eq!(header(&response, "access-control-allow-origin"), Some("*"));
        assert!(header(&response, "access-control-allow-credentials").is_none());
    }

    #[test]
    fn no_policy_adds_no_cors_headers() {
        let mut response = HttpResponse::json(200, &serde_json::json!({}));
        CorsPolicy::default().decorate(
            &request("GET", &[("origin", "https://any.test")]),
            &mut response,
        );
        assert!(header(&response, "access-control-allow-origin").is_none());
        secure(&mut response);
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&response, "cache-control"), Some("no-store"));
    }
}
