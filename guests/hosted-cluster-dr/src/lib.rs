//! ferry's stock disaster-recovery guest: moves a HyperShift hosted cluster on
//! AWS from a source management cluster to a destination one.
//!
//! Phases (each `run(phase, args)`, each idempotent and resumable):
//! - `backup` (source): preflight, marker, pause, scale the etcd writers
//!   down, stream one etcd snapshot to S3, dump the objects to the backup
//!   directory and S3 (index last);
//! - `restore` (destination): verify the backup, then namespaces, secrets,
//!   configmaps, CAPI/AWS objects, the HostedCluster with one fresh presigned
//!   `restoreSnapshotURL` and the restored-from-backup annotation (the operator
//!   makes the HostedControlPlane from it), NodePools; move DNS while etcd
//!   restores; wait for it to be Available, its etcd one cluster, its API to
//!   take a write (the end of the downtime) and its nodes Ready;
//! - `teardown` (source): gated on a healthy destination; removes the old
//!   control plane with the HyperShift operator stopped, so its deletion flow
//!   never runs against the migrated cluster;
//! - `finish` (hosted cluster): OVN pods, ClusterVersion, nodes, report;
//! - `abort` (source): returns a source whose backup will not be restored to service
//!   (writers back, unpaused, DNS back), refused while the destination has the cluster;
//! - `status` (both, read-only): the first phase of a migration not done, so that
//!   `ferry migrate` run again carries on where it stopped.
//!
//! Progress and state live in the clusters (a marker ConfigMap, annotations)
//! and in the backup, never only in memory. See `README.md` for parameters.

mod abort;
mod backup;
mod ctx;
mod finish;
mod hold;
mod layout;
mod model;
mod publish;
mod restore;
mod status;
mod teardown;
mod workloads;

use ferry_sdk::Result;

/// Entry points for the fuzz targets in `fuzz/` (not part of the component's contract).
#[doc(hidden)]
pub mod fuzzing {
    /// Reads `data` as a backup index; one that reads must write and read back the same.
    pub fn index_round_trip(data: &[u8]) {
        let Ok(index) = serde_json::from_slice::<crate::layout::Index>(data) else {
            return;
        };
        let written = serde_json::to_vec(&index).expect("an index that was read can be written");
        let again: crate::layout::Index = serde_json::from_slice(&written).expect("a written index reads back");
        let rewritten = serde_json::to_vec(&again).expect("and is written again");
        assert_eq!(written, rewritten, "the index changed on a round trip");
    }
}

ferry_sdk::automation_world!("../../wit");

struct Component;

impl Guest for Component {
    fn run(phase: String, args: Vec<(String, String)>) -> Result<String> {
        let summary = match phase.as_str() {
            "backup" => ctx::finish(backup::run(&args))?,
            "restore" => ctx::finish(restore::run(&args))?,
            "teardown" => ctx::finish(teardown::run(&args))?,
            "finish" => ctx::finish(finish::run(&args))?,
            "abort" => ctx::finish(abort::run(&args))?,
            "status" => ctx::finish(status::run(&args))?,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown phase `{other}`: the phases are backup, restore, teardown, finish, abort and status"
                )));
            }
        };
        Ok(summary.to_string())
    }
}

export!(Component);
