//! The same end-to-end suite on the Spin component (the shipped `.wasm`), served by
//! `spin-test-host`, the emulation of Spin's host interfaces on wasmtime.

use e2e::local::Launcher;
use e2e::suite;

#[test]
fn spin_api_authorization_persistence_and_concurrent_turns() {
    suite::run_main(Launcher::SpinHost);
}

#[test]
fn spin_exact_rate_limit_under_concurrency_and_retention() {
    suite::run_strict(Launcher::SpinHost);
}
