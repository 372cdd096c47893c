//! A Kubernetes API server that kube-rs and kubectl both accept.
//!
//! It speaks the real wire protocol over plain HTTP on 127.0.0.1: discovery and OpenAPI v3,
//! CRUD, the four patch types, watches with bookmarks and 410 relists, finalizers, namespace
//! termination, owner-reference GC, the `status`/`scale` subresources, dry runs, tables for
//! `kubectl get`, pod port-forwarding to real TCP endpoints, and CustomResourceDefinitions
//! with kube-apiserver's pruning, defaulting, schema validation and CEL rules.
//!
//! The pieces, bottom up:
//! - [`field`], [`names`]: field paths, field errors and name syntax, worded as upstream;
//! - [`registry`]: the kinds served (built-in rows and CRD-defined ones);
//! - [`admission`]: admission and conversion webhooks, called as kube-apiserver calls them;
//! - [`crd`]: CRDs, structural schemas, CEL, and admission of custom resources;
//! - [`store`]: the objects, resourceVersions, cascades and the event history ([`Store`]);
//! - [`selector`], [`patch`], [`meta`]: label/field selectors, patch semantics, metadata;
//! - [`api`], [`watch`], [`table`], [`discovery`], [`openapi`], [`portforward`], [`proto`]:
//!   the HTTP layer, with [`faults`] for injected failures;
//! - [`server`]: [`Sim`], a running server with its kubeconfig.

pub mod admission;
pub mod api;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod field;
pub mod meta;
pub mod names;
pub mod openapi;
pub mod patch;
pub mod portforward;
pub mod proto;
pub mod registry;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub mod watch;

pub use error::{ApiError, Reason, SimError};
pub use patch::Patch;
pub use registry::{Kind, KindInfo, Registry};
pub use server::{Sim, SimOptions};
pub use store::{
    DeleteOptions, EventType, ListOptions, ObjectList, PatchOutcome, PropagationPolicy, Store, Subresource, WatchEvent,
    WatchFilter, WatchFrom, Watcher, WriteOptions, Written,
};
