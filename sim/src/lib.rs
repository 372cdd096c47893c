//! ferry-sim: a Kubernetes-API-compatible server for ferry's tests and `ferry drill`.
//!
//! It speaks the real wire protocol over plain HTTP on 127.0.0.1, so kube-rs clients and the
//! machine's `kubectl` talk to it unchanged: discovery, CRUD, the four patch types, watches with
//! bookmarks and 410 relists, finalizers, namespace termination, owner-reference GC, the
//! `status`/`scale` subresources, dry runs, tables for `kubectl get`, and pod port-forwarding
//! to real TCP endpoints.
//!
//! The pieces, bottom up:
//! - [`registry`]: the static table of kinds (one row per kind);
//! - [`store`]: the objects, resourceVersions, cascades and the event history ([`Store`]);
//! - [`selector`], [`patch`]: label/field selectors and patch semantics;
//! - [`api`], [`watch`], [`table`], [`discovery`], [`portforward`]: the HTTP layer;
//! - [`server`]: [`Sim`], a running server with its kubeconfig.
//!
//! In-process controllers (HyperShift operator behaviour, external-dns...) build on
//! [`Store`]: typed get/list/create/update/patch/delete plus [`Store::watch`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferry_sim::{Sim, registry};
//! let sim = Sim::start("mgmt1").await?;
//! sim.write_kubeconfig("/tmp/mgmt1.kubeconfig", "mgmt1")?;
//! let ns = sim.store().get(&registry::NAMESPACE, None, "default")?;
//! assert_eq!(ns["status"]["phase"], "Active");
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod api;
pub mod discovery;
pub mod environment;
pub mod error;
pub mod external_dns;
pub mod faults;
pub mod hypershift;
pub mod meta;
pub mod patch;
pub mod portforward;
pub mod proto;
pub mod registry;
pub mod s3;
pub mod scenario;
pub mod selector;
pub mod server;
pub mod services;
pub mod store;
pub mod table;
pub mod watch;

pub use error::{ApiError, Reason, SimError};
pub use patch::Patch;
pub use registry::{KindInfo, Registry};
pub use server::{Sim, SimOptions};
pub use store::{
    DeleteOptions, EventType, ListOptions, ObjectList, PatchOutcome, PropagationPolicy, Store, Subresource, WatchEvent,
    WatchFilter, WatchFrom, Watcher, WriteOptions,
};
