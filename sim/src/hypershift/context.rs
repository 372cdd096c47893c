//! What every controller of a management cluster shares during a pass: the options they run
//! with, the record of what they did ([`OperatorEvent`], for tests and the drill's checks),
//! the hosted etcds, and the context of one pass ([`Ctx`]). The controllers import it; the
//! task that runs them ([`super::controllers`]) does too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::etcd::HostedEtcd;
use super::hosted::HostedStores;
use super::scenario::Profile;
use super::workloads::WorkloadOptions;
use crate::clock::SimClock;
use crate::kube::portforward::PortForwards;
use crate::kube::store::Store;

/// How the controllers of a management cluster run.
#[derive(Debug, Clone)]
pub struct ControllersOptions {
    /// The management cluster's name (events, router hostnames).
    pub cluster: String,
    /// Run a real etcd per hosted control plane (needs the etcd binaries).
    pub hosted_etcd: bool,
    /// Where hosted etcd data lives (default: a fresh directory under the system temp dir,
    /// removed when the controllers are dropped).
    pub data_dir: Option<PathBuf>,
    /// Bound on a `restoreSnapshotURL` download.
    pub restore_download_timeout: Duration,
    /// Periodic re-reconciliation.
    pub resync: Duration,
    /// The least time between two passes: a burst of writes (twenty migrations at once) is
    /// reconciled in batches, as a rate-limited workqueue would, instead of pass after pass.
    pub min_pass_interval: Duration,
    /// The CA (PEM) `etcd-init` trusts for `https://` snapshot URLs, as a real cluster trusts
    /// the public CAs of S3 (the drill's and tests' S3 has its own).
    pub restore_trusted_ca: Option<String>,
    /// Pods and their termination.
    pub workloads: WorkloadOptions,
    /// The OpenShift version the release images stand for.
    pub release_version: String,
    /// The AWS region of the management cluster.
    pub region: String,
    /// How long the HO waits for the CPO's AWSEndpointService finalizer before it removes it
    /// itself (`deleteAWSEndpointServices`: 10 minutes).
    pub endpoint_service_grace: Duration,
    /// The clock upstream's timings (back-offs, grace periods, health checks) run on.
    pub clock: SimClock,
    /// The HyperShift this cluster runs (the pinned commit, or a profile with later fixes).
    pub profile: Profile,
    /// Whether the operator runs its CAPI storage migration when CAPI is stored as v1beta2.
    pub capi_migration: bool,
    /// `etcd-init` downloads that fail (transiently) before one succeeds.
    pub etcd_init_transient_failures: u32,
    /// The hosted clusters' APIs (Cluster API reads their Nodes).
    pub hosted: HostedStores,
    /// Whether the operator was installed with an OIDC bucket and credentials
    /// (`--oidc-storage-provider-s3-bucket-name` and friends).
    pub oidc_storage: bool,
}

impl ControllersOptions {
    /// Defaults for management cluster `cluster`.
    pub fn new(cluster: &str) -> Self {
        ControllersOptions {
            cluster: cluster.to_string(),
            hosted_etcd: true,
            data_dir: None,
            restore_download_timeout: Duration::from_secs(30),
            resync: Duration::from_millis(250),
            min_pass_interval: Duration::from_millis(50),
            restore_trusted_ca: None,
            workloads: WorkloadOptions::default(),
            release_version: "4.17.0".to_string(),
            region: "us-east-1".to_string(),
            endpoint_service_grace: Duration::from_secs(600),
            clock: SimClock::real_time(),
            profile: Profile::Pinned,
            capi_migration: true,
            etcd_init_transient_failures: 0,
            hosted: HostedStores::default(),
            oidc_storage: true,
        }
    }

    /// The hostname of this cluster's HCP router load balancer, the CNAME target of the
    /// control planes' routes (it names the management cluster, so DNS tells which one a
    /// hostname leads to).
    pub fn router_hostname(&self, cp_ns: &str, private: bool) -> String {
        let which = if private { "private-router" } else { "router" };
        format!("{which}-{cp_ns}.{}.elb.{}.amazonaws.com", self.cluster, self.region)
    }

    /// The hostname of a LoadBalancer Service of this cluster.
    pub fn load_balancer_hostname(&self, cp_ns: &str, service: &str) -> String {
        format!("{service}-{cp_ns}.{}.elb.{}.amazonaws.com", self.cluster, self.region)
    }
}

/// Something the controllers did, or saw a client do, in order, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorEvent {
    /// An object was created (namespace, HCP, route...).
    Created {
        /// Management cluster.
        cluster: String,
        /// Kind.
        kind: String,
        /// Namespace (empty for cluster-scoped objects).
        namespace: String,
        /// Name.
        name: String,
    },
    /// A hosted etcd started.
    EtcdStarted {
        /// Management cluster.
        cluster: String,
        /// Control-plane namespace.
        hcp_namespace: String,
        /// Pod names served.
        members: Vec<String>,
        /// Started from a `restoreSnapshotURL` snapshot.
        restored: bool,
        /// How long `etcd-init` took to download and restore the snapshot (upstream time),
        /// when it did.
        restore_took: Option<Duration>,
    },
    /// `etcd-init` failed (the pods stay not ready and it is retried).
    EtcdRestoreFailed {
        /// Management cluster.
        cluster: String,
        /// Control-plane namespace.
        hcp_namespace: String,
        /// The container's termination reason.
        reason: String,
        /// What failed.
        message: String,
    },
    /// A hosted etcd stopped because its namespace went away.
    EtcdStopped {
        /// Management cluster.
        cluster: String,
        /// Control-plane namespace.
        hcp_namespace: String,
    },
    /// The HostedCluster deletion flow completed and the finalizer went.
    DeletionFlowRan {
        /// Management cluster.
        cluster: String,
        /// HostedCluster namespace.
        hc_namespace: String,
        /// HostedCluster name.
        hc_name: String,
    },
    /// A client opened a connection to an etcd pod while pods of the etcd writers
    /// (kube-apiserver, openshift-apiserver, openshift-oauth-apiserver) still existed: a
    /// snapshot taken then is not consistent.
    SnapshotWithWritersRunning {
        /// Management cluster.
        cluster: String,
        /// Control-plane namespace.
        hcp_namespace: String,
        /// The writer pods still there.
        pods: Vec<String>,
    },
    /// Machines or AWSMachines were being deleted while the CAPI controllers of their namespace
    /// still ran: they may terminate instances.
    MachinesDeletedWithControllersRunning {
        /// Management cluster.
        cluster: String,
        /// Control-plane namespace.
        hcp_namespace: String,
        /// The objects.
        objects: Vec<String>,
    },
    /// Cluster API terminated an EC2 instance.
    InstanceTerminated {
        /// Management cluster.
        cluster: String,
        /// The instance's provider ID.
        provider_id: String,
    },
}

/// The shared, queryable record of [`OperatorEvent`]s.
#[derive(Debug, Clone, Default)]
pub struct OperatorLog(Arc<Mutex<Vec<OperatorEvent>>>);

impl OperatorLog {
    fn lock(&self) -> MutexGuard<'_, Vec<OperatorEvent>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Append an entry.
    pub fn push(&self, ev: OperatorEvent) {
        tracing::info!(event = ?ev, "management cluster controllers");
        self.lock().push(ev);
    }

    /// Record a creation.
    pub fn created(&self, cluster: &str, kind: &str, namespace: &str, name: &str) {
        self.push(OperatorEvent::Created {
            cluster: cluster.to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }

    /// All entries so far.
    pub fn entries(&self) -> Vec<OperatorEvent> {
        self.lock().clone()
    }

    /// True when some entry matches.
    pub fn any(&self, pred: impl Fn(&OperatorEvent) -> bool) -> bool {
        self.lock().iter().any(pred)
    }

    /// Poll (every 20 ms, at most `timeout`) until an entry matches; returns it.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&OperatorEvent) -> bool) -> Option<OperatorEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.lock().iter().find(|e| pred(e)).cloned() {
                return Some(ev);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The hosted etcds of a management cluster.
#[derive(Default)]
pub(crate) struct Etcds {
    pub running: Mutex<HashMap<String, HostedEtcd>>,
    /// `etcd-init` runs in progress, by control-plane namespace: the kubelet runs them in
    /// their pods while the operators go on reconciling. Each yields the restored etcd (or the
    /// run's exit code and message) and how long it took, upstream time.
    pub restoring: Mutex<HashMap<String, tokio::task::JoinHandle<InitOutcome>>>,
    /// The `etcd-init` containers of each control-plane namespace, as the kubelet tracks them.
    pub init: Mutex<HashMap<String, InitRecord>>,
    pub counter: std::sync::atomic::AtomicU64,
}

/// What one `etcd-init` run gave: the restored etcd, or its exit code and message; and how long
/// it ran (upstream time).
pub(crate) type InitOutcome = (Result<HostedEtcd, (i64, String)>, Duration);

/// What the kubelet keeps of a control plane's `etcd-init` containers: how often they failed
/// (`restartCount`), the last failure (`lastState.terminated`, kept after a later success), and
/// how many downloads were made.
#[derive(Debug, Clone, Default)]
pub(crate) struct InitRecord {
    /// Failed runs so far.
    pub restarts: u32,
    /// When the last run failed, its exit code, reason and message.
    pub last_failure: Option<(Instant, i64, String)>,
    /// Downloads attempted so far.
    pub attempts: u32,
}

impl InitRecord {
    /// The kubelet's back-off before the next run: 10 s doubling to 300 s, upstream time
    /// (`pkg/kubelet/kuberuntime` `backOff`).
    pub fn back_off(&self) -> Duration {
        let exp = self.restarts.saturating_sub(1).min(5);
        Duration::from_secs((10u64 << exp).min(300))
    }
}

/// What every controller of a pass gets.
pub(crate) struct Ctx<'a> {
    pub store: &'a Store,
    pub opts: &'a ControllersOptions,
    pub log: &'a OperatorLog,
    pub forwards: &'a PortForwards,
    pub etcds: &'a Etcds,
    pub data_root: &'a PathBuf,
}

impl Ctx<'_> {
    /// The management cluster's name.
    pub fn cluster(&self) -> &str {
        &self.opts.cluster
    }
}
