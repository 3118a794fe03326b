//! The end-to-end suite on workerd (`wrangler dev`), the worker as built for Cloudflare.

use e2e::local::Launcher;
use e2e::suite;

#[test]
fn workerd_api_authorization_persistence_and_concurrent_turns() {
    suite::run_main(Launcher::WranglerDev);
}

#[test]
fn workerd_exact_rate_limit_under_concurrency_and_retention() {
    suite::run_strict(Launcher::WranglerDev);
}
