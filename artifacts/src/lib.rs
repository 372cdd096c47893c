//! The guest components of this repository, built for `wasm32-wasip2` by `build.rs` from the
//! `guests/` workspace, with no manual step (as wasmtime's `test-programs/artifacts`): a path
//! constant per component, and the stock DR guest's bytes for embedding.
//!
//! Only the DR product (`ferry-dr`, which embeds the stock guest) depends on this crate
//! normally; the generic host and the tests use it as a dev-dependency.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
