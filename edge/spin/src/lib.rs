//! Fermyon Spin adapter of the eindr-chat edge: one HTTP component over the core. Spin
//! variables configure it, the Spin key-value store (through `wasi:keyvalue` with its
//! compare-and-swap atomics) holds history and rate-limit state. Nothing here decides anything
//! about the API.

mod config;
mod entry;
mod outbound;
mod store;

pub use store::KeyValueStore;
