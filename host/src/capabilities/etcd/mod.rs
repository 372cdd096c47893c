//! `ferry:host/etcd`: etcd snapshots streamed host-side into S3, and what a member says of its
//! cluster. `host.rs` holds the WIT functions, `provider.rs` the etcd stream, multipart upload
//! and member list, `portforward.rs` the way to a member pod.
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

/// Part size of snapshot uploads: 8 MiB (aws-cli's default) allows snapshots up to 80 GiB
/// under S3's 10,000-part limit, ten times etcd's largest supported quota, and keeps the
/// [`PARTS_IN_FLIGHT`](crate::capabilities::objects::provider::PARTS_IN_FLIGHT) parts of a
/// stream, plus the one filling, at 40 MiB.
pub const SNAPSHOT_PART_SIZE: usize = 8 * 1024 * 1024;

/// The etcd capability.
pub const CAPABILITY: Capability = Capability {
    interface: "ferry:host/etcd",
    wit: ("etcd.wit", include_str!("../../../../wit/etcd.wit")),
    actions: &[
        Action::EtcdSnapshot,
        Action::EtcdMemberStatus,
        Action::ObjectsSnapshotUpload,
    ],
    needs_grant: true,
};
