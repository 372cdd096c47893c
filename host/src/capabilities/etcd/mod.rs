//! `ferry:host/etcd`: etcd snapshots streamed host-side into S3. `host.rs` holds the WIT
//! function, `provider.rs` the etcd stream and multipart upload, `portforward.rs` the way to a
//! member pod.
//!
//! The guest names the member (a pod behind a port-forward, or an endpoint
//! alias from the run config) and the target object; the host opens the
//! stream, uploads it as a multipart upload while hashing it, verifies etcd's
//! integrity trailer and only then completes the upload. Snapshot bytes never
//! enter guest memory.

mod host;
pub mod portforward;
pub mod provider;

use super::Capability;
use crate::policy::Action;

/// The etcd capability.
pub const CAPABILITY: Capability = Capability {
    interface: "ferry:host/etcd",
    wit: ("etcd.wit", include_str!("../../../../wit/etcd.wit")),
    actions: &[Action::EtcdSnapshot, Action::ObjectsSnapshotUpload],
    needs_grant: true,
};
