//! Everything that runs on one simulated HyperShift management cluster, as one task:
//! the kube-controller-manager and kubelets ([`super::workloads`]), the HyperShift operator
//! ([`super::hostedcluster`], [`super::nodepool`]) while its Deployment `hypershift/operator`
//! has a running pod, each control plane's operator ([`super::control_plane`]) while its
//! `control-plane-operator` does, and Cluster API ([`super::capi`]) while `cluster-api` and
//! `capi-provider` do. Scaling a Deployment to zero stops its controller once its pods are
//! gone, as on a real cluster.
//!
//! Every pass is level-triggered: any store event (and a periodic resync, for `pausedUntil`
//! dates that expire and pods that finish terminating) re-runs them all.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::aws::Ec2;
use super::context::{ControllersOptions, Ctx, Etcds, OperatorEvent, OperatorLog};
use super::etcd::{EtcdKvClient, HostedEtcd};
use super::workloads;
use super::{capi, control_plane, hostedcluster, list, name_of, namespace_of, nodepool};
use crate::kube::Sim;
use crate::kube::error::{ApiError, Reason};
use crate::kube::portforward::PortForwards;
use crate::kube::registry;
use crate::kube::store::{Store, WatchFilter, WatchFrom};

/// Errors of starting the controllers.
#[derive(Debug, thiserror::Error)]
pub enum ControllersError {
    /// The store refused the watch.
    #[error("cannot watch the store: {0}")]
    Watch(#[from] ApiError),
    /// The data directory could not be created.
    #[error("cannot create {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

struct Inner {
    opts: ControllersOptions,
    store: Store,
    forwards: PortForwards,
    log: OperatorLog,
    ec2: Ec2,
    data_root: PathBuf,
    owns_data_root: bool,
    etcds: Etcds,
    /// Completed passes, for tests that must show nothing happened.
    passes: std::sync::atomic::AtomicU64,
}

impl Inner {
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            store: &self.store,
            opts: &self.opts,
            log: &self.log,
            forwards: &self.forwards,
            etcds: &self.etcds,
            data_root: &self.data_root,
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.owns_data_root {
            // The etcd handles (dropped with the map) kill their processes.
            let _ = std::fs::remove_dir_all(&self.data_root);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The controllers of one management cluster. Dropping them stops the task and its etcds.
pub struct Controllers {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Controllers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controllers")
            .field("cluster", &self.inner.opts.cluster)
            .finish_non_exhaustive()
    }
}

/// The Deployments whose pods write to etcd (the ones a consistent snapshot needs stopped).
pub const ETCD_WRITERS: &[&str] = &["kube-apiserver", "openshift-apiserver", "openshift-oauth-apiserver"];

impl Controllers {
    /// Start the controllers against `sim`, with the account's EC2 instances `ec2`.
    pub fn start(sim: &Sim, opts: ControllersOptions, ec2: Ec2) -> Result<Controllers, ControllersError> {
        let store = sim.store().clone();
        let forwards = sim.port_forwards().clone();
        let (data_root, owns_data_root) = match &opts.data_dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!("ferry-sim-cp-{}-{}", std::process::id(), uuid::Uuid::new_v4())),
                true,
            ),
        };
        std::fs::create_dir_all(&data_root).map_err(|source| ControllersError::DataDir {
            path: data_root.clone(),
            source,
        })?;
        let watcher = store.watch(WatchFilter::default(), WatchFrom::Now)?;
        let inner = Arc::new(Inner {
            opts,
            store,
            forwards,
            log: OperatorLog::default(),
            ec2,
            data_root,
            owns_data_root,
            etcds: Etcds::default(),
            passes: std::sync::atomic::AtomicU64::new(0),
        });
        // A client reaching an etcd pod while the writers still run: the snapshot it takes
        // is not consistent.
        let observed = Arc::downgrade(&inner);
        inner.forwards.observe(Arc::new(move |ns: &str, pod: &str, _port: u16| {
            let Some(inner) = observed.upgrade() else { return };
            if !pod.starts_with("etcd-") {
                return;
            }
            let pods: Vec<String> = list(&inner.store, &registry::POD, Some(ns))
                .iter()
                .filter(|p| {
                    let app = p.pointer("/metadata/labels/app").and_then(serde_json::Value::as_str);
                    app.is_some_and(|a| ETCD_WRITERS.contains(&a))
                })
                .map(|p| name_of(p).to_string())
                .collect();
            if !pods.is_empty() {
                inner.log.push(OperatorEvent::SnapshotWithWritersRunning {
                    cluster: inner.opts.cluster.clone(),
                    hcp_namespace: ns.to_string(),
                    pods,
                });
            }
        }));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(inner.clone(), watcher, stop_rx));
        Ok(Controllers {
            inner,
            stop,
            task: Some(task),
        })
    }

    /// The record of what the controllers did.
    pub fn log(&self) -> &OperatorLog {
        &self.inner.log
    }

    /// The management cluster's name.
    pub fn cluster(&self) -> &str {
        &self.inner.opts.cluster
    }

    /// The options the controllers run with.
    pub fn options(&self) -> &ControllersOptions {
        &self.inner.opts
    }

    /// The client URL of the etcd of control-plane namespace `ns`, if running.
    pub fn etcd_client_url(&self, ns: &str) -> Option<String> {
        lock(&self.inner.etcds.running).get(ns).map(HostedEtcd::client_url)
    }

    /// A client for each member of the etcd of `ns` (pod order; empty unless it runs).
    pub fn etcd_members(&self, ns: &str) -> Vec<(String, EtcdKvClient)> {
        lock(&self.inner.etcds.running)
            .get(ns)
            .map(HostedEtcd::member_clients)
            .unwrap_or_default()
    }

    /// [`Controllers::etcd_members`] for a hosted cluster's API, which must not keep the
    /// controllers alive.
    pub fn etcd_access(&self) -> super::hosted::EtcdAccess {
        let weak = Arc::downgrade(&self.inner);
        Arc::new(move |ns: &str| {
            weak.upgrade()
                .map(|inner| {
                    lock(&inner.etcds.running)
                        .get(ns)
                        .map(HostedEtcd::member_clients)
                        .unwrap_or_default()
                })
                .unwrap_or_default()
        })
    }

    /// A key-value client for the etcd of `ns`, if running.
    pub fn etcd_client(&self, ns: &str) -> Option<EtcdKvClient> {
        lock(&self.inner.etcds.running).get(ns).map(HostedEtcd::client)
    }

    /// Poll (at most `timeout`) until the etcd of `ns` runs.
    pub async fn wait_for_etcd(&self, ns: &str, timeout: Duration) -> Option<EtcdKvClient> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.etcd_client(ns) {
                return Some(c);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait (at most `timeout`) until two full passes have run after this call, so every
    /// controller has seen the state as it was when called: how a test shows that something
    /// did *not* happen without sleeping. False on timeout.
    pub async fn settle(&self, timeout: Duration) -> bool {
        use std::sync::atomic::Ordering;
        let target = self.inner.passes.load(Ordering::SeqCst) + 2;
        let deadline = Instant::now() + timeout;
        while self.inner.passes.load(Ordering::SeqCst) < target {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Stop the task and every hosted etcd.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        let etcds: Vec<HostedEtcd> = lock(&self.inner.etcds.running).drain().map(|(_, e)| e).collect();
        for e in etcds {
            e.stop().await;
        }
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(inner: Arc<Inner>, mut watcher: crate::kube::store::Watcher, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        pass(&inner).await;
        inner.passes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::select! {
            _ = tokio::time::sleep(inner.opts.min_pass_interval) => {}
            _ = stop.changed() => return,
        }
        tokio::select! {
            ev = watcher.next() => {
                if ev.is_err() {
                    // 410: events were compacted away; a level-triggered loop only needs a new
                    // cursor.
                    match inner.store.watch(WatchFilter::default(), WatchFrom::Now) {
                        Ok(w) => watcher = w,
                        Err(e) => tracing::warn!(error = %e, "controllers cannot re-watch"),
                    }
                }
            }
            _ = tokio::time::sleep(inner.opts.resync) => {}
            _ = stop.changed() => return,
        }
        // Coalesce a burst of events into one pass.
        while let Some(Ok(_)) = watcher.try_next() {}
    }
}

fn report(what: &str, obj: &serde_json::Value, r: Result<(), ApiError>) {
    if let Err(e) = r
        && e.reason != Reason::Conflict
        && e.reason != Reason::NotFound
    {
        tracing::debug!(controller = what, object = %format!("{}/{}", namespace_of(obj), name_of(obj)), error = %e, "reconcile failed");
    }
}

/// Whether the HyperShift operator runs (its Deployment has a running pod).
pub fn operator_running(store: &Store) -> bool {
    workloads::deployment_running(store, "hypershift", "operator")
}

async fn pass(inner: &Inner) {
    let ctx = inner.ctx();
    let store = &inner.store;
    if let Err(e) = workloads::reconcile(store, &inner.opts.workloads) {
        tracing::debug!(error = %e, "workloads reconcile failed");
    }
    if operator_running(store) {
        for hc in list(store, &registry::HOSTED_CLUSTER, None) {
            report("hostedcluster", &hc, hostedcluster::reconcile(&ctx, &hc));
        }
        for np in list(store, &registry::NODE_POOL, None) {
            report("nodepool", &np, nodepool::reconcile(&ctx, &np));
        }
        if let Err(e) = hostedcluster::reconcile_endpoint_services(&ctx) {
            tracing::debug!(error = %e, "endpoint services reconcile failed");
        }
        if let Err(e) = super::capi_migration::reconcile(&ctx) {
            tracing::debug!(error = %e, "CAPI storage migration failed");
        }
    }
    for hcp in list(store, &registry::HOSTED_CONTROL_PLANE, None) {
        report("hostedcontrolplane", &hcp, control_plane::reconcile(&ctx, &hcp).await);
    }
    let cp_namespaces: Vec<String> = list(store, &registry::NAMESPACE, None)
        .iter()
        .filter(|n| {
            n.pointer("/metadata/labels/hypershift.openshift.io~1hosted-control-plane")
                .is_some()
        })
        .map(|n| name_of(n).to_string())
        .collect();
    for ns in &cp_namespaces {
        let deleting = capi::deleting_machines(store, ns);
        if !deleting.is_empty() && capi::controllers_running(store, ns) {
            let seen = inner.log.any(|e| {
                matches!(e, OperatorEvent::MachinesDeletedWithControllersRunning { hcp_namespace, objects, .. }
                    if hcp_namespace == ns && *objects == deleting)
            });
            if !seen {
                inner.log.push(OperatorEvent::MachinesDeletedWithControllersRunning {
                    cluster: inner.opts.cluster.clone(),
                    hcp_namespace: ns.clone(),
                    objects: deleting,
                });
            }
        }
        let env = capi::CapiEnv {
            ec2: &inner.ec2,
            hosted: &inner.opts.hosted,
            clock: inner.opts.clock,
            region: &inner.opts.region,
        };
        match capi::reconcile(store, &env, ns) {
            Ok(p) => {
                for id in p.terminated {
                    inner.log.push(OperatorEvent::InstanceTerminated {
                        cluster: inner.opts.cluster.clone(),
                        provider_id: id,
                    });
                }
            }
            Err(e) => tracing::debug!(namespace = %ns, error = %e, "cluster api reconcile failed"),
        }
    }
    control_plane::stop_orphaned_etcds(&ctx).await;
}
