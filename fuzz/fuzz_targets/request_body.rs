//! Any bytes as the body of both chat APIs, signed in: a JSON answer or a JSON error with a
//! 4xx status, never a panic or a 5xx.
#![no_main]

mod common;

use std::cell::RefCell;
use std::sync::OnceLock;

use edge_core::HttpRequest;
use libfuzzer_sys::fuzz_target;

// Built once; libFuzzer runs the target on one thread.
fn setup() -> &'static common::SignedIn {
    static SETUP: OnceLock<common::SignedIn> = OnceLock::new();
    SETUP.get_or_init(|| common::signed_in(&[]))
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    for path in ["/api/chat/respond", "/v1/chat/completions"] {
        let req = HttpRequest::new("POST", path)
            .with_header("authorization", &format!("Bearer {}", setup.token))
            .with_header("content-type", "application/json")
            .with_body(data.to_vec());
        let backend = common::Backend(RefCell::new(Vec::new()));
        let response = common::serve(&setup.app, &backend, &req);
        assert!(
            response.status < 500,
            "{path}: {} for {:?}",
            response.status,
            String::from_utf8_lossy(data)
        );
    }
});
