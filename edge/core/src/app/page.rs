//! The chat page (`GET /`, `GET /chat`) and its script and style sheet, embedded in the binary
//! so every platform serves the same bytes. It talks only to this origin's API, so its
//! Content-Security-Policy allows nothing else; a fingerprint of the bytes is its ETag.

use crate::http::{HttpRequest, HttpResponse};

/// One of the page's three files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAsset {
    Html,
    Script,
    Style,
}

/// The path the page loads its script from (the HTML names it too).
pub const SCRIPT_PATH: &str = "/chat.js";
pub const STYLE_PATH: &str = "/chat.css";

const HTML: &str = include_str!("../../page/index.html");
const SCRIPT: &str = include_str!("../../page/chat.js");
const STYLE: &str = include_str!("../../page/chat.css");

/// Only this origin, for everything the page loads or calls; no inline script or style, no
/// framing, no form posts elsewhere. `data:` images for the empty favicon.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

impl PageAsset {
    /// The asset a path names, if any (trailing slash already stripped by the router).
    pub fn at(path: &str) -> Option<Self> {
        match path {
            "/" | "/chat" => Some(Self::Html),
            SCRIPT_PATH => Some(Self::Script),
            STYLE_PATH => Some(Self::Style),
            _ => None,
        }
    }

    fn body(self) -> &'static str {
        match self {
            Self::Html => HTML,
            Self::Script => SCRIPT,
            Self::Style => STYLE,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Html => "text/html; charset=utf-8",
            Self::Script => "text/javascript; charset=utf-8",
            Self::Style => "text/css; charset=utf-8",
        }
    }

    /// A strong validator: FNV-1a over the bytes, computed at compile time. Any change to
    /// the page changes it, so `no-cache` revalidation fetches a new build at once.
    fn etag(self) -> String {
        const HTML_TAG: u64 = fnv1a(HTML.as_bytes());
        const SCRIPT_TAG: u64 = fnv1a(SCRIPT.as_bytes());
        const STYLE_TAG: u64 = fnv1a(STYLE.as_bytes());
        let tag = match self {
            Self::Html => HTML_TAG,
            Self::Script => SCRIPT_TAG,
            Self::Style => STYLE_TAG,
        };
        format!("\"{tag:016x}\"")
    }
}

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Whether `If-None-Match` names this ETag (a list, weak forms, or `*`).
fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.header("if-none-match").is_some_and(|value| {
        value.split(',').map(str::trim).any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        })
    })
}

/// The asset's response: 200 with the bytes, or 304 when the client holds this version.
/// HEAD gets the headers alone.
pub fn serve(asset: PageAsset, req: &HttpRequest) -> HttpResponse {
    let etag = asset.etag();
    let fresh = not_modified(req, &etag);
    let body = if fresh || req.method == "HEAD" {
        Vec::new()
    } else {
        asset.body().as_bytes().to_vec()
    };
    let mut response = HttpResponse {
        status: if fresh { 304 } else { 200 },
        headers: Vec::new(),
        body,
    };
    for (name, value) in [
        ("content-type", asset.content_type()),
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        // Revalidate every time: the ETag makes that a 304 without a body.
        ("cache-control", "no-cache"),
    ] {
        response.set_header(name, value.to_owned());
    }
    response.set_header("etag", etag);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_own_script_and_style_and_nothing_elsewhere() {
        assert!(HTML.contains(&format!("src=\"{SCRIPT_PATH}\"")));
        assert!(HTML.contains(&format!("href=\"{STYLE_PATH}\"")));
        for file in [HTML, SCRIPT, STYLE] {
            assert!(!file.contains("http://") && !file.contains("https://"));
        }
    }

    #[test]
    fn etag_revalidation_answers_304_without_a_body() {
        let first = serve(PageAsset::Html, &HttpRequest::new("GET", "/"));
        assert_eq!(first.status, 200);
        assert_eq!(
            first.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let etag = first.header("etag").unwrap_or_default().to_owned();
        let again = HttpRequest::new("GET", "/").with_header("If-None-Match", &format!("W/{etag}"));
        let second = serve(PageAsset::Html, &again);
        assert_eq!((second.status, second.body.len()), (304, 0));
        assert_eq!(second.header("etag"), Some(etag.as_str()));
        let other = HttpRequest::new("GET", "/").with_header("If-None-Match", "\"0\"");
        assert_eq!(serve(PageAsset::Html, &other).status, 200);
        let head = serve(PageAsset::Script, &HttpRequest::new("HEAD", "/chat.js"));
        assert!(head.body.is_empty() && head.status == 200);
        assert_ne!(PageAsset::Script.etag(), PageAsset::Style.etag());
    }
}
