//! ferry: a WebAssembly-scripted, capability-scoped automation host.
//!
//! Guests are WebAssembly components built against the `ferry:host` WIT
//! package (`wit/`). The host refuses, before instantiating it, a component
//! that imports an interface its policy does not grant; it checks every call
//! against a deny-by-default Cedar policy before any I/O, writes an audit
//! record per call, and keeps bulk data (etcd snapshots) on the host side.
//!
//! The house, from the ground up (no module imports one above it):
//! - [`config`], [`progress`], [`scrub`] (credentials out of outgoing text), [`policy`] (the Cedar engine and its schema), [`audit`] (the
//!   JSON-lines trail);
//! - [`capabilities`]: one folder per `ferry:host` interface, each with its handles, its
//!   host functions and its provider (the code that talks to S3, Route53, etcd, Kubernetes),
//!   the one list of them ([`capabilities::CAPABILITIES`]), the host bindings generated from
//!   `wit/` and what one run may reach ([`capabilities::env`]);
//! - [`killpoint`]: the deterministic crash points of the crash matrix (`FERRY_KILL_AT`);
//! - [`runtime`]: engine, linker, component cache, stores and limits, site hooks, and
//!   [`runtime::run::run`], the one way a guest runs;
//! - [`scaffold`]: `ferry new hook`.
//!
//! The disaster-recovery product is built on this crate, apart from it: `ferry-dr` (the stock
//! guest, site config and phases), `ferry-drill` (the rehearsal against the simulator) and
//! `ferry-cli` (the `ferry` command).

pub mod audit;
pub mod capabilities;
pub mod config;
pub mod killpoint;
pub mod plan;
pub mod policy;
pub mod progress;
pub mod runtime;
pub mod scaffold;
pub mod scrub;
pub mod task;
