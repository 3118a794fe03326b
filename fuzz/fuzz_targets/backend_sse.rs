//! Any bytes, cut anywhere, as gpu-backend's event stream in a full-mode turn: the user gets
//! an answer (the model's or the fallback), never a panic or a 5xx.
#![no_main]

mod common;

use std::cell::RefCell;
use std::sync::OnceLock;

use edge_core::HttpRequest;
use libfuzzer_sys::fuzz_target;

fn setup() -> &'static common::SignedIn {
    static SETUP: OnceLock<common::SignedIn> = OnceLock::new();
    SETUP.get_or_init(|| {
        common::signed_in(&[
            ("MINIMAL_MODE", "false"),
            ("BACKEND_URL", "http://gpu.fuzz:8000"),
            ("BACKEND_API_KEY", "fuzz"),
        ])
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    // The first byte says where to cut the rest into chunks.
    let Some((&step, bytes)) = data.split_first() else {
        return;
    };
    let step = usize::from(step.max(1));
    let chunks: Vec<Vec<u8>> = bytes.chunks(step).map(<[u8]>::to_vec).collect();
    let backend = common::Backend(RefCell::new(chunks));
    let req = HttpRequest::new("POST", "/api/chat/respond")
        .with_header("authorization", &format!("Bearer {}", setup.token))
        .with_header("content-type", "application/json")
        .with_body(br#"{"message":"hello","mode":"full"}"#.to_vec());
    let response = common::serve(&setup.app, &backend, &req);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
});
