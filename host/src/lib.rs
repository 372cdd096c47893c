//! ferry: a WebAssembly-scripted, capability-scoped automation host.
//!
//! Guests are WebAssembly components built against the `ferry:host` WIT
//! package (`wit/`). The host links only the interfaces a policy grants,
//! checks every call against a deny-by-default Cedar policy before any I/O,
//! writes an audit record per call, and keeps bulk data (etcd snapshots) on
//! the host side.
//!
//! The pieces, in the order a run uses them:
//! - [`config`]: the run config (clusters by alias, AWS, etcd, workspace, limits);
//! - [`policy`]: the Cedar policy engine and its schema;
//! - [`runner`]: engine, linker, component loading (with [`cache`]), import
//!   checks and limits;
//! - [`caps`]: the host side of each WIT interface, over [`backends`];
//! - [`audit`]: the JSON-lines audit trail.

pub mod audit;
pub mod backends;
pub mod bindings;
pub mod cache;
pub mod caps;
pub mod config;
pub mod policy;
pub mod progress;
pub mod run;
pub mod runner;
pub mod state;

/// Paths of the guest components built by `build.rs` (tests use them).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
