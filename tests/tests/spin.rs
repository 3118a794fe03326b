//! The same end-to-end suite on the Spin component (the shipped `.wasm`), served by
//! `spin-test-host`, the emulation of Spin's host interfaces on wasmtime: on Spin's key-value
//! store, and on a real Redis (Debian's `redis-server`) through Spin's outbound Redis
//! interface, where two hosts on one Redis must stay exact as SpinKube replicas would.

use e2e::local::Launcher;
use e2e::{scale_out, suite};

#[test]
fn spin_api_authorization_persistence_and_concurrent_turns() {
    suite::run_main(Launcher::SpinHost);
}

#[test]
fn spin_exact_rate_limit_under_concurrency_and_retention() {
    suite::run_strict(Launcher::SpinHost);
}

#[test]
fn spin_redis_api_authorization_persistence_and_concurrent_turns() {
    suite::run_main(Launcher::SpinRedis);
}

#[test]
fn spin_redis_exact_rate_limit_and_retention() {
    suite::run_strict(Launcher::SpinRedis);
}

#[test]
fn two_spin_hosts_on_one_redis_are_exact() {
    scale_out::two_instances_are_exact(Launcher::SpinRedis, Launcher::SpinRedis);
}

#[test]
fn a_spin_host_and_a_native_server_on_one_redis_are_exact() {
    scale_out::two_instances_are_exact(Launcher::SpinRedis, Launcher::NativeRedis);
}

#[test]
fn spin_redis_outage_under_load_gives_503s_and_loses_no_acknowledged_turn() {
    scale_out::outage_under_load(Launcher::SpinRedis);
}
