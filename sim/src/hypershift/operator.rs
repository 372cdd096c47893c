//! The HyperShift operator (HO) of one management cluster, as an in-process task.
//!
//! Behaviour modelled on the real controller (see the DR procedure's pitfalls):
//! - it adds [`FINALIZER`] to every HostedCluster **before** looking at `spec.pausedUntil`;
//! - a paused HostedCluster gets only its CAPI `Cluster.spec.paused=true` (and `pausedUntil`
//!   copied to its HostedControlPlane): deleted routes stay deleted;
//! - an unpaused one gets its HCP namespace, HostedControlPlane and routes (recreated when
//!   deleted), its etcd ([`super::etcd`]: one member per `etcd-N` pod, restored from
//!   `restoreSnapshotURL` when set, client TLS whose material is published as the Secret
//!   `etcd-client-tls` and the ConfigMap `etcd-ca`) and `Available=True`;
//! - a HostedCluster with a deletionTimestamp and the finalizer gets the deletion flow **even
//!   when paused**: NodePools and the CAPI Cluster are deleted, then the finalizer removed;
//! - when the Deployment `hypershift/operator` exists with `spec.replicas: 0` the operator does
//!   nothing (the migration script scales it down around the teardown).
//!
//! Every reconciliation is level-triggered: any store event (and a periodic resync, for
//! `pausedUntil` dates that expire) re-runs it over all HostedClusters and NodePools.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::etcd::{ETCD_CLIENT_PORT, EtcdKvClient, EtcdPki, HostedEtcd, member_pods};
use super::pki::{
    ETCD_CA_CONFIGMAP, ETCD_CA_KEY, ETCD_CLIENT_CA_KEY, ETCD_CLIENT_CERT_KEY, ETCD_CLIENT_KEY_KEY, ETCD_CLIENT_SECRET,
};
use super::restore::{self, RestoreUrlPolicy};
use super::{
    Condition, EXTERNAL_DNS_DOMAIN_ANNOTATION, FINALIZER, HCP_LABEL, finalizers_of, hcp_namespace, is_deleting,
    name_of, namespace_of, object_paused, set_condition, set_finalizers,
};
use crate::Sim;
use crate::error::{ApiError, Reason};
use crate::patch::Patch;
use crate::portforward::PortForwards;
use crate::registry::{self, KindInfo};
use crate::store::{DeleteOptions, ListOptions, Store, WatchFilter, WatchFrom, WriteOptions};

/// How to run a [`HyperShiftOperator`].
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// The management cluster's name (used in [`OperatorEvent`]s and Event sources).
    pub cluster: String,
    /// Domain of route hosts when the HostedCluster names none (spec.services route hostnames
    /// or the [`EXTERNAL_DNS_DOMAIN_ANNOTATION`] annotation).
    pub default_external_dns_domain: String,
    /// Run a real etcd per hosted control plane (needs the etcd binaries).
    pub hosted_etcd: bool,
    /// Where hosted etcd data lives (default: a fresh directory under the system temp dir,
    /// removed when the operator is dropped).
    pub data_dir: Option<PathBuf>,
    /// Bound on a `restoreSnapshotURL` download.
    pub restore_download_timeout: Duration,
    /// Which restore URL schemes are valid (checked again by the operator for objects created
    /// in-process, which bypass admission).
    pub restore_policy: RestoreUrlPolicy,
    /// Periodic re-reconciliation, for `pausedUntil` dates that expire.
    pub resync: Duration,
    /// Wait between retries of a failed snapshot restore.
    pub restore_retry: Duration,
    /// The CA (PEM) restores trust for `https://` snapshot URLs, as a real cluster trusts
    /// the public CAs of S3 (the drill's and tests' S3 has its own CA).
    pub restore_trusted_ca: Option<String>,
}

impl OperatorOptions {
    /// Defaults for management cluster `cluster`.
    pub fn new(cluster: &str) -> Self {
        OperatorOptions {
            cluster: cluster.to_string(),
            default_external_dns_domain: "hypershift.local".to_string(),
            hosted_etcd: true,
            data_dir: None,
            restore_download_timeout: Duration::from_secs(30),
            restore_policy: RestoreUrlPolicy::default(),
            resync: Duration::from_millis(500),
            restore_retry: Duration::from_secs(5),
            restore_trusted_ca: None,
        }
    }
}

/// Something the operator did, in order, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorEvent {
    /// The finalizer was added to a HostedCluster.
    FinalizerAdded {
        /// Management cluster.
        cluster: String,
        /// HostedCluster namespace.
        hc_namespace: String,
        /// HostedCluster name.
        hc_name: String,
    },
    /// An object of the control plane was created (namespace, HCP, route...).
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
    /// The hosted etcd started.
    EtcdStarted {
        /// Management cluster.
        cluster: String,
        /// HCP namespace.
        hcp_namespace: String,
        /// Pod names served.
        members: Vec<String>,
        /// Started from a `restoreSnapshotURL` snapshot.
        restored: bool,
    },
    /// Restoring the snapshot failed (condition `EtcdSnapshotRestored=False`).
    EtcdRestoreFailed {
        /// Management cluster.
        cluster: String,
        /// HCP namespace.
        hcp_namespace: String,
        /// Condition reason.
        reason: String,
        /// Condition message.
        message: String,
    },
    /// The hosted etcd stopped because its HCP namespace went away.
    EtcdStopped {
        /// Management cluster.
        cluster: String,
        /// HCP namespace.
        hcp_namespace: String,
    },
    /// The HostedCluster deletion flow ran (NodePools and CAPI Cluster deleted).
    DeletionFlowRan {
        /// Management cluster.
        cluster: String,
        /// HostedCluster namespace.
        hc_namespace: String,
        /// HostedCluster name.
        hc_name: String,
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
        tracing::info!(event = ?ev, "hypershift operator");
        self.lock().push(ev);
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

/// Errors of starting the operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
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
    opts: OperatorOptions,
    store: Store,
    forwards: PortForwards,
    log: OperatorLog,
    data_root: PathBuf,
    owns_data_root: bool,
    etcds: Mutex<HashMap<String, HostedEtcd>>,
    /// Last accepted restoreSnapshotURL per HostedCluster uid (immutability).
    first_urls: Mutex<HashMap<String, Vec<String>>>,
    /// Last failed restore per HCP namespace (retry pacing).
    failed_restores: Mutex<HashMap<String, Instant>>,
    counter: std::sync::atomic::AtomicU64,
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

/// A running HyperShift operator. Dropping it stops the task and its etcds.
pub struct HyperShiftOperator {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HyperShiftOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperShiftOperator")
            .field("cluster", &self.inner.opts.cluster)
            .finish_non_exhaustive()
    }
}

impl HyperShiftOperator {
    /// Start the operator against `sim` (its store and port-forward table).
    pub fn start(sim: &Sim, opts: OperatorOptions) -> Result<HyperShiftOperator, OperatorError> {
        Self::start_on(sim.store().clone(), sim.port_forwards().clone(), opts)
    }

    /// Start the operator against a store and port-forward table.
    pub fn start_on(
        store: Store,
        forwards: PortForwards,
        opts: OperatorOptions,
    ) -> Result<HyperShiftOperator, OperatorError> {
        let (data_root, owns_data_root) = match &opts.data_dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!("ferry-sim-ho-{}-{}", std::process::id(), uuid::Uuid::new_v4())),
                true,
            ),
        };
        std::fs::create_dir_all(&data_root).map_err(|source| OperatorError::DataDir {
            path: data_root.clone(),
            source,
        })?;
        let watcher = store.watch(WatchFilter::default(), WatchFrom::Now)?;
        let inner = Arc::new(Inner {
            opts,
            store,
            forwards,
            log: OperatorLog::default(),
            data_root,
            owns_data_root,
            etcds: Mutex::new(HashMap::new()),
            first_urls: Mutex::new(HashMap::new()),
            failed_restores: Mutex::new(HashMap::new()),
            counter: std::sync::atomic::AtomicU64::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(inner.clone(), watcher, stop_rx));
        Ok(HyperShiftOperator {
            inner,
            stop,
            task: Some(task),
        })
    }

    /// The record of what the operator did.
    pub fn log(&self) -> &OperatorLog {
        &self.inner.log
    }

    /// The management cluster's name.
    pub fn cluster(&self) -> &str {
        &self.inner.opts.cluster
    }

    /// The client URL of the etcd of HCP namespace `hcp_namespace`, if running.
    pub fn etcd_client_url(&self, hcp_namespace: &str) -> Option<String> {
        lock(&self.inner.etcds).get(hcp_namespace).map(HostedEtcd::client_url)
    }

    /// A key-value client for the etcd of `hcp_namespace`, if running.
    pub fn etcd_client(&self, hcp_namespace: &str) -> Option<EtcdKvClient> {
        lock(&self.inner.etcds).get(hcp_namespace).map(HostedEtcd::client)
    }

    /// Poll (at most `timeout`) until the etcd of `hcp_namespace` runs.
    pub async fn wait_for_etcd(&self, hcp_namespace: &str, timeout: Duration) -> Option<EtcdKvClient> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.etcd_client(hcp_namespace) {
                return Some(c);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop the task and every hosted etcd.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        let etcds: Vec<HostedEtcd> = lock(&self.inner.etcds).drain().map(|(_, e)| e).collect();
        for e in etcds {
            e.stop().await;
        }
    }
}

impl Drop for HyperShiftOperator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(inner: Arc<Inner>, mut watcher: crate::store::Watcher, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        reconcile_all(&inner).await;
        tokio::select! {
            ev = watcher.next() => {
                if ev.is_err() {
                    // 410: events were compacted away; a level-triggered loop only needs a new
                    // cursor.
                    match inner.store.watch(WatchFilter::default(), WatchFrom::Now) {
                        Ok(w) => watcher = w,
                        Err(e) => tracing::warn!(error = %e, "hypershift operator cannot re-watch"),
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

/// Scaled to zero like `oc scale deployment -n hypershift operator --replicas 0`.
fn scaled_down(store: &Store) -> bool {
    store
        .get(&registry::DEPLOYMENT, Some("hypershift"), "operator")
        .ok()
        .and_then(|d| d.pointer("/spec/replicas").and_then(Value::as_i64))
        == Some(0)
}

fn list(store: &Store, kind: &'static KindInfo, namespace: Option<&str>) -> Vec<Value> {
    store
        .list(kind, namespace, &ListOptions::default())
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn reconcile_all(inner: &Inner) {
    if scaled_down(&inner.store) {
        return;
    }
    for hc in list(&inner.store, &registry::HOSTED_CLUSTER, None) {
        if let Err(e) = reconcile_hc(inner, &hc).await
            && e.reason != Reason::Conflict
            && e.reason != Reason::NotFound
        {
            tracing::warn!(hc = %name_of(&hc), error = %e, "hypershift operator: reconcile failed");
        }
    }
    for np in list(&inner.store, &registry::NODE_POOL, None) {
        if let Err(e) = reconcile_nodepool(inner, &np)
            && e.reason != Reason::Conflict
            && e.reason != Reason::NotFound
        {
            tracing::warn!(np = %name_of(&np), error = %e, "hypershift operator: nodepool reconcile failed");
        }
    }
    stop_orphaned_etcds(inner).await;
}

fn ns_opt(ns: &str) -> Option<&str> {
    (!ns.is_empty()).then_some(ns)
}

async fn reconcile_hc(inner: &Inner, hc: &Value) -> Result<(), ApiError> {
    let store = &inner.store;
    let ns = namespace_of(hc).to_string();
    let name = name_of(hc).to_string();
    let hcp_ns = hcp_namespace(&ns, &name);
    let mut fins = finalizers_of(hc);
    if is_deleting(hc) {
        if fins.iter().any(|f| f == FINALIZER) {
            deletion_flow(inner, hc, &hcp_ns)?;
        }
        return Ok(());
    }
    // The real HO adds its finalizer before it looks at pausedUntil.
    let hc = if fins.iter().any(|f| f == FINALIZER) {
        hc.clone()
    } else {
        fins.push(FINALIZER.to_string());
        let updated = set_finalizers(store, &registry::HOSTED_CLUSTER, hc, fins)?;
        inner.log.push(OperatorEvent::FinalizerAdded {
            cluster: inner.opts.cluster.clone(),
            hc_namespace: ns.clone(),
            hc_name: name.clone(),
        });
        updated
    };
    let paused = object_paused(&hc);
    sync_capi_pause(store, &hcp_ns, paused)?;
    sync_hcp_pause(store, &hc, &hcp_ns)?;
    if paused {
        return Ok(());
    }
    if !check_restore_urls(inner, &hc)? {
        return Ok(());
    }
    if !ensure_namespace(inner, &hcp_ns)? {
        return Ok(());
    }
    ensure_hcp(inner, &hc, &hcp_ns)?;
    ensure_routes(inner, &hc, &hcp_ns)?;
    ensure_control_plane_deployments(inner, &hc, &hcp_ns)?;
    let available = if inner.opts.hosted_etcd {
        ensure_etcd(inner, &hc, &hcp_ns).await?
    } else {
        true
    };
    if available {
        set_condition(
            store,
            &registry::HOSTED_CLUSTER,
            &ns,
            &name,
            Condition {
                type_: "Available",
                status: true,
                reason: "AsExpected",
                message: "The hosted control plane is available",
            },
        )?;
    }
    Ok(())
}

/// `Cluster.spec.paused` of every CAPI Cluster in the HCP namespace follows the HC's pause.
fn sync_capi_pause(store: &Store, hcp_ns: &str, paused: bool) -> Result<(), ApiError> {
    for cl in list(store, &registry::CAPI_CLUSTER, Some(hcp_ns)) {
        if is_deleting(&cl) {
            continue;
        }
        let cur = cl.pointer("/spec/paused").and_then(Value::as_bool).unwrap_or(false);
        if cur != paused {
            store.patch(
                &registry::CAPI_CLUSTER,
                Some(hcp_ns),
                name_of(&cl),
                &Patch::Merge(json!({"spec": {"paused": paused}})),
                &WriteOptions::default(),
            )?;
        }
    }
    Ok(())
}

/// The HO copies `pausedUntil` to the HostedControlPlane.
fn sync_hcp_pause(store: &Store, hc: &Value, hcp_ns: &str) -> Result<(), ApiError> {
    let want = hc.pointer("/spec/pausedUntil").cloned().unwrap_or(Value::Null);
    let Ok(hcp) = store.get(&registry::HOSTED_CONTROL_PLANE, Some(hcp_ns), name_of(hc)) else {
        return Ok(());
    };
    if is_deleting(&hcp) {
        return Ok(());
    }
    let cur = hcp.pointer("/spec/pausedUntil").cloned().unwrap_or(Value::Null);
    if cur != want {
        store.patch(
            &registry::HOSTED_CONTROL_PLANE,
            Some(hcp_ns),
            name_of(hc),
            &Patch::Merge(json!({"spec": {"pausedUntil": want}})),
            &WriteOptions::default(),
        )?;
    }
    Ok(())
}

/// Validate `restoreSnapshotURL` (schema rules and immutability). False: invalid, stop here.
fn check_restore_urls(inner: &Inner, hc: &Value) -> Result<bool, ApiError> {
    let urls = restore::restore_urls(hc);
    let ns = namespace_of(hc);
    let name = name_of(hc);
    let uid = hc
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut problem = match restore::validate_restore_urls(hc, inner.opts.restore_policy) {
        Ok(()) => None,
        Err(causes) => Some(causes.into_iter().map(|c| c.message).collect::<Vec<_>>().join("; ")),
    };
    if problem.is_none() {
        // CEL `self == oldSelf` is a transition rule: it applies only when both the old and the
        // new object have the field, so setting or removing it is allowed, changing it is not.
        let mut seen = lock(&inner.first_urls);
        let last = seen.entry(uid).or_insert_with(|| urls.clone());
        if !last.is_empty() && !urls.is_empty() && *last != urls {
            problem = Some("Invalid value: \"array\": restoreSnapshotURL is immutable".to_string());
        } else {
            *last = urls.clone();
        }
    }
    match problem {
        Some(message) => {
            set_condition(
                &inner.store,
                &registry::HOSTED_CLUSTER,
                ns,
                name,
                Condition {
                    type_: "RestoreSnapshotURLValid",
                    status: false,
                    reason: "InvalidRestoreSnapshotURL",
                    message: &message,
                },
            )?;
            Ok(false)
        }
        None => {
            if !urls.is_empty() {
                set_condition(
                    &inner.store,
                    &registry::HOSTED_CLUSTER,
                    ns,
                    name,
                    Condition {
                        type_: "RestoreSnapshotURLValid",
                        status: true,
                        reason: "AsExpected",
                        message: "",
                    },
                )?;
            }
            Ok(true)
        }
    }
}

fn created(inner: &Inner, kind: &KindInfo, namespace: &str, name: &str) {
    inner.log.push(OperatorEvent::Created {
        cluster: inner.opts.cluster.clone(),
        kind: kind.kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    });
}

/// Create `obj` unless it exists; AlreadyExists is fine.
fn ensure(inner: &Inner, kind: &'static KindInfo, namespace: &str, obj: Value) -> Result<(), ApiError> {
    let name = name_of(&obj).to_string();
    if inner.store.get(kind, ns_opt(namespace), &name).is_ok() {
        return Ok(());
    }
    match inner.store.create_with_status(kind, ns_opt(namespace), obj) {
        Ok(_) => {
            created(inner, kind, namespace, &name);
            Ok(())
        }
        Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Ensure the HCP namespace; false while it is terminating.
fn ensure_namespace(inner: &Inner, hcp_ns: &str) -> Result<bool, ApiError> {
    if let Ok(ns) = inner.store.get(&registry::NAMESPACE, None, hcp_ns) {
        return Ok(!is_deleting(&ns));
    }
    ensure(
        inner,
        &registry::NAMESPACE,
        "",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": hcp_ns,
            "labels": {"hypershift.openshift.io/hosted-control-plane": "true"}}}),
    )?;
    Ok(true)
}

fn infra_id(hc: &Value) -> String {
    hc.pointer("/spec/infraID")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| name_of(hc))
        .to_string()
}

fn ensure_hcp(inner: &Inner, hc: &Value, hcp_ns: &str) -> Result<(), ApiError> {
    let name = name_of(hc);
    let spec = hc.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut hcp_spec = json!({});
    if let Some(image) = spec.pointer("/release/image") {
        hcp_spec["releaseImage"] = image.clone();
    }
    for field in [
        "controllerAvailabilityPolicy",
        "infrastructureAvailabilityPolicy",
        "etcd",
        "platform",
        "infraID",
        "networking",
        "services",
        "dns",
        "secretEncryption",
        "pullSecret",
        "sshKey",
        "issuerURL",
    ] {
        if let Some(v) = spec.get(field) {
            hcp_spec[field] = v.clone();
        }
    }
    ensure(
        inner,
        &registry::HOSTED_CONTROL_PLANE,
        hcp_ns,
        json!({
            "apiVersion": "hypershift.openshift.io/v1beta1",
            "kind": "HostedControlPlane",
            "metadata": {
                "name": name,
                "namespace": hcp_ns,
                "labels": {"cluster.x-k8s.io/cluster-name": infra_id(hc)},
                "annotations": {"hypershift.openshift.io/cluster": format!("{}/{}", namespace_of(hc), name)},
                "finalizers": ["hypershift.openshift.io/finalizer"],
            },
            "spec": hcp_spec,
        }),
    )
}

/// Route name, Service it points to, hostname prefix, `spec.services[].service` name.
const ROUTES: &[(&str, &str, &str, &str)] = &[
    ("kube-apiserver", "kube-apiserver", "api", "APIServer"),
    ("oauth", "oauth-openshift", "oauth", "OAuthServer"),
    ("konnectivity", "konnectivity-server", "konnectivity", "Konnectivity"),
    ("ignition", "ignition-server", "ignition-server", "Ignition"),
];

/// The route host of `service`: `spec.services[].servicePublishingStrategy.route.hostname`, else
/// `<prefix>-<name>.<domain>`.
pub fn route_host(hc: &Value, service: &str, prefix: &str, default_domain: &str) -> String {
    let explicit = hc
        .pointer("/spec/services")
        .and_then(Value::as_array)
        .and_then(|svcs| {
            svcs.iter()
                .find(|s| s.get("service").and_then(Value::as_str) == Some(service))
        })
        .and_then(|s| s.pointer("/servicePublishingStrategy/route/hostname"))
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty());
    if let Some(h) = explicit {
        return h.to_string();
    }
    let domain = hc
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(EXTERNAL_DNS_DOMAIN_ANNOTATION))
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .unwrap_or(default_domain);
    format!("{prefix}-{}.{domain}", name_of(hc))
}

fn ensure_routes(inner: &Inner, hc: &Value, hcp_ns: &str) -> Result<(), ApiError> {
    for (route, svc, prefix, service) in ROUTES {
        let host = route_host(hc, service, prefix, &inner.opts.default_external_dns_domain);
        ensure(
            inner,
            &registry::ROUTE,
            hcp_ns,
            json!({
                "apiVersion": "route.openshift.io/v1",
                "kind": "Route",
                "metadata": {
                    "name": route,
                    "namespace": hcp_ns,
                    "labels": {HCP_LABEL: hcp_ns},
                    "annotations": {"external-dns.alpha.kubernetes.io/hostname": host},
                },
                "spec": {
                    "host": host,
                    "to": {"kind": "Service", "name": svc},
                    "tls": {"termination": "passthrough", "insecureEdgeTerminationPolicy": "None"},
                },
            }),
        )?;
    }
    Ok(())
}

/// The control plane's Deployments (the etcd writers a backup scales to zero) and their
/// replicas for an availability policy: three API servers for `HighlyAvailable`, one
/// otherwise; one control-plane-operator.
pub fn control_plane_deployments(availability_policy: Option<&str>) -> Vec<(&'static str, u64)> {
    let api = if availability_policy == Some("HighlyAvailable") {
        3
    } else {
        1
    };
    vec![
        ("kube-apiserver", api),
        ("openshift-apiserver", api),
        ("openshift-oauth-apiserver", api),
        ("control-plane-operator", 1),
    ]
}

/// Create the control plane Deployments, and (as the control-plane-operator does while
/// the cluster is not paused) put their replicas back when someone scaled them.
fn ensure_control_plane_deployments(inner: &Inner, hc: &Value, hcp_ns: &str) -> Result<(), ApiError> {
    let policy = hc.pointer("/spec/controllerAvailabilityPolicy").and_then(Value::as_str);
    for (name, replicas) in control_plane_deployments(policy) {
        if let Ok(d) = inner.store.get(&registry::DEPLOYMENT, Some(hcp_ns), name) {
            if d.pointer("/spec/replicas").and_then(Value::as_u64) != Some(replicas) {
                inner.store.patch(
                    &registry::DEPLOYMENT,
                    Some(hcp_ns),
                    name,
                    &Patch::Merge(json!({"spec": {"replicas": replicas}})),
                    &WriteOptions::default(),
                )?;
            }
            continue;
        }
        ensure(
            inner,
            &registry::DEPLOYMENT,
            hcp_ns,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": hcp_ns, "labels": {"app": name, HCP_LABEL: hcp_ns}},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": name, "image": format!("quay.io/openshift/{name}:sim")}]}},
                },
                "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
            }),
        )?;
    }
    Ok(())
}

/// Start (or keep) the hosted etcd and its pods; true when it runs.
async fn ensure_etcd(inner: &Inner, hc: &Value, hcp_ns: &str) -> Result<bool, ApiError> {
    let running = lock(&inner.etcds)
        .get(hcp_ns)
        .map(|e| (e.member_addrs(), e.pki().clone()));
    if let Some((addrs, pki)) = running {
        ensure_etcd_objects(inner, hcp_ns, &addrs, &pki)?;
        return Ok(true);
    }
    if lock(&inner.failed_restores)
        .get(hcp_ns)
        .is_some_and(|t| t.elapsed() < inner.opts.restore_retry)
    {
        return Ok(false);
    }
    let members = member_pods(hc.pointer("/spec/controllerAvailabilityPolicy").and_then(Value::as_str));
    let n = inner.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = inner.data_root.join(format!("{hcp_ns}-{n}"));
    let urls = restore::restore_urls(hc);
    let ns = namespace_of(hc);
    let name = name_of(hc);
    let started = match urls.first() {
        None => HostedEtcd::start_in(&dir, hcp_ns, members.clone())
            .await
            .map_err(|e| ("EtcdStartFailed", e.to_string())),
        Some(url) => match restore::download_snapshot(
            url,
            inner.opts.restore_download_timeout,
            inner.opts.restore_trusted_ca.as_deref(),
        )
        .await
        {
            Err(e) => Err((e.reason(), e.to_string())),
            Ok(bytes) => HostedEtcd::restore_in(&dir, hcp_ns, members.clone(), &bytes)
                .await
                .map_err(|e| ("RestoreFailed", e.to_string())),
        },
    };
    let etcd = match started {
        Ok(e) => e,
        Err((reason, message)) => {
            let _ = std::fs::remove_dir_all(&dir);
            lock(&inner.failed_restores).insert(hcp_ns.to_string(), Instant::now());
            inner.log.push(OperatorEvent::EtcdRestoreFailed {
                cluster: inner.opts.cluster.clone(),
                hcp_namespace: hcp_ns.to_string(),
                reason: reason.to_string(),
                message: message.clone(),
            });
            if !urls.is_empty() {
                set_condition(
                    &inner.store,
                    &registry::HOSTED_CLUSTER,
                    ns,
                    name,
                    Condition {
                        type_: "EtcdSnapshotRestored",
                        status: false,
                        reason,
                        message: &message,
                    },
                )?;
            }
            set_condition(
                &inner.store,
                &registry::HOSTED_CLUSTER,
                ns,
                name,
                Condition {
                    type_: "Available",
                    status: false,
                    reason: "EtcdNotAvailable",
                    message: &message,
                },
            )?;
            return Ok(false);
        }
    };
    lock(&inner.failed_restores).remove(hcp_ns);
    let restored = etcd.restored();
    let addrs = etcd.member_addrs();
    let pki = etcd.pki().clone();
    lock(&inner.etcds).insert(hcp_ns.to_string(), etcd);
    inner.log.push(OperatorEvent::EtcdStarted {
        cluster: inner.opts.cluster.clone(),
        hcp_namespace: hcp_ns.to_string(),
        members: members.clone(),
        restored,
    });
    if restored {
        set_condition(
            &inner.store,
            &registry::HOSTED_CLUSTER,
            ns,
            name,
            Condition {
                type_: "EtcdSnapshotRestored",
                status: true,
                reason: "AsExpected",
                message: "",
            },
        )?;
    }
    ensure_etcd_objects(inner, hcp_ns, &addrs, &pki)?;
    Ok(true)
}

/// The etcd StatefulSet, its pods (each port-forwarded to its own member) and the TLS material.
fn ensure_etcd_objects(
    inner: &Inner,
    hcp_ns: &str,
    members: &[(String, std::net::SocketAddr)],
    pki: &EtcdPki,
) -> Result<(), ApiError> {
    ensure_etcd_tls_objects(inner, hcp_ns, pki)?;
    let replicas = members.len();
    ensure(
        inner,
        &registry::STATEFUL_SET,
        hcp_ns,
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "etcd", "namespace": hcp_ns, "labels": {"app": "etcd"}},
            "spec": {
                "replicas": replicas,
                "serviceName": "etcd-discovery",
                "selector": {"matchLabels": {"app": "etcd"}},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {
                    "metadata": {"labels": {"app": "etcd"}},
                    "spec": {"containers": [{"name": "etcd", "image": "quay.io/openshift/etcd:sim",
                        "ports": [{"name": "client", "containerPort": ETCD_CLIENT_PORT}]}]},
                },
            },
            "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
        }),
    )?;
    for (pod, addr) in members {
        ensure(
            inner,
            &registry::POD,
            hcp_ns,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "namespace": hcp_ns, "labels": {"app": "etcd"}},
                "spec": {"containers": [{"name": "etcd", "image": "quay.io/openshift/etcd:sim",
                    "ports": [{"name": "client", "containerPort": ETCD_CLIENT_PORT}]}]},
                "status": {
                    "phase": "Running",
                    "podIP": "127.0.0.1",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [{"name": "etcd", "ready": true, "restartCount": 0,
                        "image": "quay.io/openshift/etcd:sim", "state": {"running": {}}}],
                },
            }),
        )?;
        inner.forwards.set(hcp_ns, pod, ETCD_CLIENT_PORT, *addr);
    }
    Ok(())
}

/// The Secret `etcd-client-tls` and the ConfigMap `etcd-ca` of the running etcd: created when
/// absent and, like HyperShift's PKI reconciliation, put back when their data differs (e.g. a
/// restore copied another cluster's certificates into the namespace).
fn ensure_etcd_tls_objects(inner: &Inner, hcp_ns: &str, pki: &EtcdPki) -> Result<(), ApiError> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    ensure_data(
        inner,
        &registry::SECRET,
        hcp_ns,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": ETCD_CLIENT_SECRET, "namespace": hcp_ns},
            "type": "Opaque",
            "data": {
                ETCD_CLIENT_CERT_KEY: b64(&pki.client_cert_pem),
                ETCD_CLIENT_KEY_KEY: b64(&pki.client_key_pem),
                ETCD_CLIENT_CA_KEY: b64(&pki.ca_pem),
            },
        }),
    )?;
    ensure_data(
        inner,
        &registry::CONFIG_MAP,
        hcp_ns,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ETCD_CA_CONFIGMAP, "namespace": hcp_ns},
            "data": {ETCD_CA_KEY: pki.ca_pem},
        }),
    )
}

/// [`ensure`], then merge `obj.data` back into the live object when any of its keys differs.
fn ensure_data(inner: &Inner, kind: &'static KindInfo, namespace: &str, obj: Value) -> Result<(), ApiError> {
    let name = name_of(&obj).to_string();
    let want = obj.get("data").cloned().unwrap_or_else(|| json!({}));
    let live = match inner.store.get(kind, ns_opt(namespace), &name) {
        Ok(live) => live,
        Err(e) if e.reason == Reason::NotFound => return ensure(inner, kind, namespace, obj),
        Err(e) => return Err(e),
    };
    let differs = want
        .as_object()
        .is_some_and(|w| w.iter().any(|(k, v)| live.pointer(&format!("/data/{k}")) != Some(v)));
    if differs {
        inner.store.patch(
            kind,
            ns_opt(namespace),
            &name,
            &Patch::Merge(json!({"data": want})),
            &WriteOptions::default(),
        )?;
    }
    Ok(())
}

async fn stop_orphaned_etcds(inner: &Inner) {
    let gone: Vec<String> = lock(&inner.etcds)
        .keys()
        .filter(|ns| match inner.store.get(&registry::NAMESPACE, None, ns) {
            Ok(obj) => is_deleting(&obj),
            Err(_) => true,
        })
        .cloned()
        .collect();
    for ns in gone {
        let Some(etcd) = lock(&inner.etcds).remove(&ns) else {
            continue;
        };
        for pod in etcd.members() {
            inner.forwards.remove(&ns, pod, ETCD_CLIENT_PORT);
        }
        etcd.stop().await;
        inner.log.push(OperatorEvent::EtcdStopped {
            cluster: inner.opts.cluster.clone(),
            hcp_namespace: ns,
        });
    }
}

/// The HO's delete branch: ignores `pausedUntil`, unpauses and deletes the CAPI Cluster,
/// deletes the NodePools, then drops its finalizer.
fn deletion_flow(inner: &Inner, hc: &Value, hcp_ns: &str) -> Result<(), ApiError> {
    let store = &inner.store;
    let ns = namespace_of(hc);
    let name = name_of(hc);
    inner.log.push(OperatorEvent::DeletionFlowRan {
        cluster: inner.opts.cluster.clone(),
        hc_namespace: ns.to_string(),
        hc_name: name.to_string(),
    });
    record_event(inner, hc);
    for np in list(store, &registry::NODE_POOL, Some(ns)) {
        if np.pointer("/spec/clusterName").and_then(Value::as_str) != Some(name) {
            continue;
        }
        delete_and_unfinalize(store, &registry::NODE_POOL, &np)?;
    }
    for cl in list(store, &registry::CAPI_CLUSTER, Some(hcp_ns)) {
        let _ = store.patch(
            &registry::CAPI_CLUSTER,
            Some(hcp_ns),
            name_of(&cl),
            &Patch::Merge(json!({"spec": {"paused": false}})),
            &WriteOptions::default(),
        );
        delete_and_unfinalize(store, &registry::CAPI_CLUSTER, &cl)?;
    }
    let cur = store.get(&registry::HOSTED_CLUSTER, Some(ns), name)?;
    let rest: Vec<String> = finalizers_of(&cur).into_iter().filter(|f| f != FINALIZER).collect();
    set_finalizers(store, &registry::HOSTED_CLUSTER, &cur, rest)?;
    Ok(())
}

/// Delete an object and finish the deletion (the owning controller removing its finalizers).
fn delete_and_unfinalize(store: &Store, kind: &'static KindInfo, obj: &Value) -> Result<(), ApiError> {
    let ns = namespace_of(obj);
    match store.delete(kind, ns_opt(ns), name_of(obj), &DeleteOptions::default()) {
        Ok(after) if is_deleting(&after) && !finalizers_of(&after).is_empty() => {
            match set_finalizers(store, kind, &after, Vec::new()) {
                Ok(_) => Ok(()),
                Err(e) if e.reason == Reason::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        }
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn record_event(inner: &Inner, hc: &Value) {
    let ns = namespace_of(hc);
    let name = name_of(hc);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ev = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{name}.{}", uuid::Uuid::new_v4().simple()), "namespace": ns},
        "involvedObject": {
            "apiVersion": "hypershift.openshift.io/v1beta1",
            "kind": "HostedCluster",
            "name": name,
            "namespace": ns,
            "uid": hc.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
        },
        "reason": "DeletionFlowRan",
        "message": format!(
            "hypershift operator on {} is deleting the NodePools and the CAPI Cluster of {ns}/{name}",
            inner.opts.cluster
        ),
        "type": "Warning",
        "source": {"component": "hypershift-operator", "host": inner.opts.cluster},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    if let Err(e) = inner
        .store
        .create(&registry::EVENT, Some(ns), ev, &WriteOptions::default())
    {
        tracing::warn!(error = %e, "hypershift operator: cannot record an Event");
    }
}

fn reconcile_nodepool(inner: &Inner, np: &Value) -> Result<(), ApiError> {
    let store = &inner.store;
    let fins = finalizers_of(np);
    let has = fins.iter().any(|f| f == FINALIZER);
    let paused = object_paused(np);
    if is_deleting(np) {
        if has && !paused {
            let rest = fins.into_iter().filter(|f| f != FINALIZER).collect();
            set_finalizers(store, &registry::NODE_POOL, np, rest)?;
        }
        return Ok(());
    }
    if paused {
        return Ok(());
    }
    let np = if has {
        np.clone()
    } else {
        let mut f = fins;
        f.push(FINALIZER.to_string());
        set_finalizers(store, &registry::NODE_POOL, np, f)?
    };
    let want = np.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    if np.pointer("/status/replicas") != Some(&want) {
        store.patch(
            &registry::NODE_POOL,
            ns_opt(namespace_of(&np)),
            name_of(&np),
            &Patch::Merge(json!({"status": {"replicas": want}})),
            &WriteOptions::status(),
        )?;
    }
    Ok(())
}
