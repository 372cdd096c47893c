//! ferry-sim: the Kubernetes and HyperShift of ferry's tests and `ferry drill`.
//!
//! Three products, one folder each:
//! - [`kube`]: a Kubernetes API server that kube-rs and kubectl both accept over plain HTTP
//!   on 127.0.0.1, serving CustomResourceDefinitions with kube-apiserver's validation
//!   (structural schemas, defaults, pruning, CEL rules, ratcheting);
//! - [`hypershift`]: a HyperShift world on top of it: the HyperShift operator, the control
//!   plane operator, Cluster API, hosted etcd, external-dns, hosted clusters' own APIs,
//!   scenarios and the environment of a drill. Every modelled behaviour cites the upstream
//!   file and function it follows;
//! - [`services`]: launchers for the real services tests need: moto, etcd, a SigV4-checking S3.
//!
//! [`chaos`] injects seeded random faults into all three (`ferry drill --faults`); [`clock`]
//! runs upstream's timings faster for drills and tests.
//!
//! [`crd_tests`] runs HyperShift's own CRD validation suites against the API server, as a
//! client would.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferry_sim::{Sim, kube::registry};
//! let sim = Sim::start("mgmt1").await?;
//! sim.write_kubeconfig("/tmp/mgmt1.kubeconfig", "mgmt1")?;
//! let ns = sim.store().get(&registry::NAMESPACE, None, "default")?;
//! assert_eq!(ns["status"]["phase"], "Active");
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod chaos;
pub mod clock;
pub mod crd_tests;
pub mod hypershift;
pub mod kube;
pub mod services;

pub use kube::{
    ApiError, DeleteOptions, EventType, Kind, KindInfo, ListOptions, ObjectList, Patch, PatchOutcome,
    PropagationPolicy, Reason, Registry, Sim, SimError, SimOptions, Store, Subresource, WatchEvent, WatchFilter,
    WatchFrom, Watcher, WriteOptions, Written,
};
