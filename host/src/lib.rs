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
//! - [`audit`]: the JSON-lines audit trail;
//! - [`hooks`]: site hooks a full guest calls through `hook-dispatch`.
//!
//! The disaster-recovery product is built on this crate, apart from it: `ferry-dr` (the stock
//! guest, site config and phases), `ferry-drill` (the rehearsal against the simulator) and
//! `ferry-cli` (the `ferry` command).

pub mod audit;
pub mod backends;
pub mod bindings;
pub mod cache;
pub mod caps;
pub mod config;
pub mod hooks;
pub mod policy;
pub mod progress;
pub mod run;
pub mod runner;
pub mod scaffold;
pub mod state;
