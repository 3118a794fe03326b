//! Fermyon Spin adapter of the eindr-chat edge: one HTTP component over the core. Spin
//! variables configure it, the Spin key-value store (through `wasi:keyvalue` with its
//! compare-and-swap atomics) or, with `store_url`, a Redis (through Spin's outbound Redis
//! interface) holds history and rate-limit state. Nothing here decides anything
//! about the API.

mod config;
mod entry;
mod key_value;
mod outbound;
mod redis_store;
mod store;

pub use key_value::KeyValueStore;
