//! A small HTTP client for the checks: status, headers and JSON of every answer.

use edge_core::auth::{EdgeClaims, Scope};
use jwt_simple::prelude::*;
use serde_json::Value;

pub const ISSUER: &str = "eindr-e2e";
pub const AUDIENCE: &str = "eindr-chat";

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    secret: String,
    agent: ureq::Agent,
}

impl Client {
    /// The base URL requests go to.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn new(base: &str, secret: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
            agent,
        }
    }

    pub fn token(&self, user: &str) -> String {
        self.token_with(user, None, 3600)
    }

    pub fn admin_token(&self, user: &str) -> String {
        self.token_with(user, Some("chat:admin"), 3600)
    }

    pub fn token_with(&self, user: &str, scope: Option<&str>, valid_for_s: u64) -> String {
        let claims = Claims::with_custom_claims(
            EdgeClaims {
                scope: scope.map(|s| Scope::Text(s.to_owned())),
            },
            jwt_simple::prelude::Duration::from_secs(valid_for_s),
        )
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
        .with_subject(user);
        HS256Key::from_bytes(self.secret.as_bytes())
            .authenticate(claims)
            .unwrap()
    }

    /// Sends a request; `token` None sends no Authorization header.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let authorization = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(a) = &authorization {
            headers.push(("authorization", a.as_str()));
        }
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        self.send_with(method, path, &headers, body)
    }

    /// Sends a request with exactly these headers.
    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body.unwrap_or_default()).unwrap();
        let mut response = self.agent.run(request).unwrap();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str, token: &str) -> Answer {
        self.send("GET", path, Some(token), None, None)
    }

    /// One unlabelled series of the server's `/metrics` (`name value`), if it is there.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let metrics = self.send("GET", "/metrics", None, None, None);
        metrics.body.as_str()?.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    pub fn delete(&self, path: &str, token: &str) -> Answer {
        self.send("DELETE", path, Some(token), None, None)
    }

    pub fn respond(&self, user: &str, body: Value) -> Answer {
        let token = self.token(user);
        self.send(
            "POST",
            "/api/chat/respond",
            Some(&token),
            Some("application/json"),
            Some(body.to_string().into_bytes()),
        )
    }
}
