//! A hosted cluster's own API: a second [`Sim`] per hosted cluster, shared by every management
//! cluster that may run its control plane (source and destination of a DR).
//!
//! **Served from its etcd.** The API answers only while its published name (the APIServer's
//! hostname, as Route53 has it) leads to a management cluster whose kube-apiserver for it runs;
//! otherwise every request answers 503 with the reason, as a client would find no API there.
//! What it serves is that control plane's etcd: when the name moves to another management
//! cluster (a restore), the API's objects are read again from that cluster's etcd
//! (`/kubernetes.io/...` keys, as kube-apiserver stores them; one member, as a kube-apiserver's
//! connection through the `etcd-client` Service reaches one), and every write is written
//! through to it. So what a node or a check reads after a migration is what was restored, and
//! the members of a split HighlyAvailable restore disagree.
//!
//! **Nodes** are the EC2 instances of the hosted cluster ([`super::aws::Ec2`]). Each kubelet
//! reaches the API through the published name, resolved by the VPC's caching resolver
//! ([`super::dns::Resolver`]: positive answers for their TTL, NXDOMAIN for the zone's negative
//! TTL); it registers its Node and posts a Ready status every `nodeStatusUpdateFrequency` (10 s)
//! while it reaches the control plane that serves the API. The node lifecycle controller of the
//! serving control plane (`--node-monitor-grace-period=50s`, `v2/kcm/deployment.go`) turns a
//! Node whose status stopped coming `Ready=Unknown` (`NodeStatusUnknown`), counting its grace
//! from its own start. A terminated instance's Node goes (the cloud node controller).
//!
//! **haproxy** (`nodepool/apiserver-haproxy/haproxy.go`): in-cluster clients reach the API
//! through each node's `kube-apiserver-proxy` static pod, which resolved the name when it
//! started and never again; its liveness probe (`/version` through itself: 120 s initial delay,
//! 120 s period, 3 failures) restarts it when that address stops serving, and only then does it
//! resolve the name again. Its mirror pod `kube-system/kube-apiserver-proxy-<node>` shows the
//! restarts (`restartCount`, `state.running.startedAt`).
//!
//! Besides: one `ovnkube-node-<suffix>` pod per Node in `openshift-ovn-kubernetes` (its
//! DaemonSet), and the ClusterVersion `version`, `Available` while the API is served.
//! Every timing is upstream's, on the environment's [`SimClock`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::aws::Ec2;
use super::dns::{Resolver, Zone, cluster_of};
use super::etcd::EtcdKvClient;
use super::workloads::{self, WorkloadOptions};
use super::{get, hcp_namespace, is_deleting, list, name_of, namespace_of};
use crate::clock::SimClock;
use crate::kube::error::SimError;
use crate::kube::patch::Patch;
use crate::kube::registry::{self, KindInfo};
use crate::kube::server::Sim;
use crate::kube::store::{DeleteOptions, EventType, Store, WatchFilter, WatchFrom, WriteOptions};

/// Namespace of the OVN pods.
pub const OVN_NAMESPACE: &str = "openshift-ovn-kubernetes";

/// `--node-monitor-grace-period` of a hosted cluster's kube-controller-manager.
pub const NODE_MONITOR_GRACE: Duration = Duration::from_secs(50);

/// The haproxy static pod's liveness probe (`generateHAProxyStaticPod`).
pub const HAPROXY_INITIAL_DELAY: Duration = Duration::from_secs(120);
/// See [`HAPROXY_INITIAL_DELAY`].
pub const HAPROXY_PERIOD: Duration = Duration::from_secs(120);
/// See [`HAPROXY_INITIAL_DELAY`].
pub const HAPROXY_FAILURES: u32 = 3;

/// The hosted clusters' APIs, by `namespace/name`, as the controllers of a management cluster
/// reach them (Cluster API's MachineHealthCheck and Machine controllers read Nodes through the
/// control plane's admin kubeconfig): a store, and whether its API is served now.
#[derive(Clone, Default)]
pub struct HostedStores(Arc<Mutex<HashMap<String, (Store, crate::kube::faults::FaultPlan)>>>);

impl std::fmt::Debug for HostedStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        f.debug_tuple("HostedStores").field(&keys).finish()
    }
}

impl HostedStores {
    /// Register the API of hosted cluster `key` (`namespace/name`).
    pub fn insert(&self, key: &str, api: &HostedClusterApi) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_string(), (api.sim().store().clone(), api.sim().faults().clone()));
    }

    /// The API of hosted cluster `key`, `None` when unknown or not served now (a client
    /// gets no answer).
    pub fn reachable(&self, key: &str) -> Option<Store> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (store, faults) = map.get(key)?;
        faults.down().is_none().then(|| store.clone())
    }
}

/// Each management cluster's etcd of a control-plane namespace: a client per member, in pod
/// order (empty while none runs).
pub type EtcdAccess = Arc<dyn Fn(&str) -> Vec<(String, EtcdKvClient)> + Send + Sync>;

/// DNS for the API hostname.
#[derive(Clone)]
pub struct HostedDns {
    /// The zone (authoritative: what an API client outside the VPC gets).
    pub zone: Arc<Zone>,
    /// The VPC's resolver (what kubelets and haproxy get).
    pub resolver: Arc<Resolver>,
    /// The management clusters, in order (their names are in their load balancers').
    pub clusters: Vec<String>,
    /// The published API hostname.
    pub api_host: String,
}

/// How to run a [`HostedClusterApi`].
#[derive(Clone)]
pub struct HostedApiOptions {
    /// Name of the hosted API server (kubeconfig cluster name).
    pub name: String,
    /// HostedCluster namespace on the management clusters.
    pub hc_namespace: String,
    /// HostedCluster name.
    pub hc_name: String,
    /// How often a kubelet posts its status (upstream `nodeStatusUpdateFrequency`, 10 s).
    pub node_ready_delay: Duration,
    /// Reconcile period (real time).
    pub resync: Duration,
    /// The instances of the account.
    pub ec2: Ec2,
    /// DNS (`None`: the name leads wherever the control plane runs).
    pub dns: Option<HostedDns>,
    /// Each management cluster's etcd, in the order of the stores given to
    /// [`HostedClusterApi::start`] (empty: the API keeps its own objects).
    pub etcds: Vec<EtcdAccess>,
    /// The clock upstream's timings run on.
    pub clock: SimClock,
    /// Whether the instances' kubelets run (`false` until the environment has published the
    /// API's name: the nodes of a cluster in service joined after it was, so none of their
    /// resolvers holds an NXDOMAIN from before).
    pub kubelets: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for HostedApiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedApiOptions")
            .field("name", &self.name)
            .field("hc", &format!("{}/{}", self.hc_namespace, self.hc_name))
            .finish_non_exhaustive()
    }
}

impl HostedApiOptions {
    /// Defaults for HostedCluster `namespace/name` with the instances of `ec2`.
    pub fn new(hc_namespace: &str, hc_name: &str, ec2: Ec2) -> Self {
        HostedApiOptions {
            name: format!("{}-hosted", hc_name.replace('.', "-")),
            hc_namespace: hc_namespace.to_string(),
            hc_name: hc_name.to_string(),
            node_ready_delay: Duration::from_secs(10),
            resync: Duration::from_millis(250),
            ec2,
            dns: None,
            etcds: Vec::new(),
            clock: SimClock::real_time(),
            kubelets: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    fn hosted_cluster(&self) -> String {
        format!("{}/{}", self.hc_namespace, self.hc_name)
    }

    fn cp_ns(&self) -> String {
        hcp_namespace(&self.hc_namespace, &self.hc_name)
    }
}

/// A running hosted cluster API. Dropping it stops the server and (through the closed stop
/// channel) the tasks.
pub struct HostedClusterApi {
    sim: Sim,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    serving: Arc<Mutex<Option<usize>>>,
}

impl std::fmt::Debug for HostedClusterApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedClusterApi")
            .field("sim", &self.sim)
            .finish_non_exhaustive()
    }
}

/// The kinds the hosted API keeps in etcd, with their key prefix (`/kubernetes.io/<resource>`;
/// Nodes are `minions`, as kube-apiserver stores them).
fn persisted() -> Vec<(&'static KindInfo, &'static str)> {
    vec![
        (&registry::NODE, "/kubernetes.io/minions/"),
        (&registry::POD, "/kubernetes.io/pods/"),
        (&registry::CONFIG_MAP, "/kubernetes.io/configmaps/"),
        (
            &registry::CLUSTER_VERSION,
            "/kubernetes.io/config.openshift.io/clusterversions/",
        ),
    ]
}

fn etcd_key(prefix: &str, obj: &Value) -> String {
    match namespace_of(obj) {
        "" => format!("{prefix}{}", name_of(obj)),
        ns => format!("{prefix}{ns}/{}", name_of(obj)),
    }
}

/// Which etcd member backs the API now, and from which resourceVersion on its changes are
/// written to it (a reload's own writes, and anything before, are not).
#[derive(Default)]
struct Backing {
    client: Option<EtcdKvClient>,
    from_rv: u64,
}

impl HostedClusterApi {
    /// Start the hosted API server and its tasks, watching `management` clusters' stores.
    pub async fn start(opts: HostedApiOptions, management: Vec<Store>) -> Result<HostedClusterApi, SimError> {
        let sim = Sim::start(&opts.name).await?;
        let hosted = sim.store().clone();
        for ns in [OVN_NAMESPACE, "kube-system"] {
            let _ = hosted.create(
                &registry::NAMESPACE,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                &WriteOptions::default(),
            );
        }
        let (stop, stop_rx) = watch::channel(false);
        let backing = Arc::new(tokio::sync::Mutex::new(Backing::default()));
        let serving = Arc::new(Mutex::new(None));
        let writer = tokio::spawn(write_through(hosted.clone(), backing.clone(), stop_rx.clone()));
        let faults = sim.faults().clone();
        let served = serving.clone();
        let reconciler = tokio::spawn(async move {
            let mut state = State::default();
            let mut stop_rx = stop_rx;
            loop {
                state.reconcile(&opts, &management, &hosted, &faults, &backing).await;
                *served.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = state.backing_cluster;
                tokio::select! {
                    _ = tokio::time::sleep(opts.resync) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        });
        Ok(HostedClusterApi {
            sim,
            stop,
            tasks: vec![reconciler, writer],
            serving,
        })
    }

    /// The hosted cluster's API server.
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// The management cluster (index) whose control plane serves the API now.
    pub fn serving(&self) -> Option<usize> {
        *self.serving.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stop the tasks and the server.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.sim.shutdown().await;
    }
}

/// Writes every change of a persisted kind through to the etcd that backs the API.
async fn write_through(store: Store, backing: Arc<tokio::sync::Mutex<Backing>>, mut stop: watch::Receiver<bool>) {
    let Ok(mut watcher) = store.watch(WatchFilter::default(), WatchFrom::Now) else {
        return;
    };
    let kinds = persisted();
    loop {
        let ev = tokio::select! {
            ev = watcher.next() => ev,
            _ = stop.changed() => return,
        };
        let Ok(ev) = ev else {
            match store.watch(WatchFilter::default(), WatchFrom::Now) {
                Ok(w) => watcher = w,
                Err(_) => return,
            }
            continue;
        };
        let Some((_, prefix)) = kinds.iter().find(|(k, _)| ev.kind.same_resource(k)) else {
            continue;
        };
        let client = {
            let b = backing.lock().await;
            b.client.clone().filter(|_| ev.resource_version > b.from_rv)
        };
        let Some(client) = client else { continue };
        let key = etcd_key(prefix, &ev.object);
        let result = match ev.event_type {
            EventType::Deleted => client.delete(&key).await,
            _ => {
                let mut obj = (*ev.object).clone();
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                client.put(&key, &obj.to_string()).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(key, error = %e, "hosted API: write-through failed");
        }
    }
}

/// What the serving control plane's kube-controller-manager knows of a Node's status: the
/// heartbeat it last saw and when (its own clock).
struct Probe {
    heartbeat: String,
    since: Instant,
}

/// One node's haproxy static pod.
struct Haproxy {
    target: Option<usize>,
    started: Instant,
    started_at: String,
    next_probe: Instant,
    failures: u32,
    restarts: u32,
}

#[derive(Default)]
struct State {
    /// The management cluster whose etcd backs the API.
    backing_cluster: Option<usize>,
    /// How many times the backing changed (which member a reconnecting kube-apiserver reaches).
    switches: usize,
    /// The serving kube-controller-manager's view of each Node (reset when it changes).
    probes: HashMap<String, Probe>,
    /// When each kubelet last posted its status.
    posted: HashMap<String, Instant>,
    haproxy: HashMap<String, Haproxy>,
    /// What the API and its kubelets last met, logged when it changes.
    seen: String,
}

/// Whether management cluster `m` runs the hosted cluster's control plane: the HostedCluster
/// is there and not being deleted, its kube-apiserver has a running pod, its HCP exists.
fn runs_control_plane(opts: &HostedApiOptions, m: &Store) -> bool {
    let Some(hc) = get(m, &registry::HOSTED_CLUSTER, &opts.hc_namespace, &opts.hc_name) else {
        return false;
    };
    if is_deleting(&hc) {
        return false;
    }
    let cp_ns = opts.cp_ns();
    workloads::deployment_running(m, &cp_ns, "kube-apiserver")
        && get(m, &registry::HOSTED_CONTROL_PLANE, &cp_ns, &opts.hc_name).is_some()
}

/// Where the control plane runs (what the name leads to when no Route53 is simulated).
pub fn running_on(opts: &HostedApiOptions, management: &[Store]) -> Option<usize> {
    management.iter().position(|m| runs_control_plane(opts, m))
}

fn ready_condition(status: &str, heartbeat: &str, transition: &str) -> Value {
    json!({"type": "Ready", "status": status,
        "reason": if status == "True" { "KubeletReady" } else { "NodeStatusUnknown" },
        "message": if status == "True" { "kubelet is posting ready status" } else { "Kubelet stopped posting node status." },
        "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition})
}

fn ready_of(node: &Value) -> Option<&Value> {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == "Ready")
}

impl State {
    /// Where the API's name leads now, and why the API is not served when it is not.
    async fn serving(&self, opts: &HostedApiOptions, management: &[Store]) -> Result<usize, String> {
        match &opts.dns {
            None => running_on(opts, management).ok_or_else(|| {
                format!(
                    "no management cluster runs the control plane of {}",
                    opts.hosted_cluster()
                )
            }),
            Some(d) => {
                let Some(answer) = d.zone.lookup(&d.api_host).await else {
                    return Err(format!("{} has no record in Route53 (NXDOMAIN)", d.api_host));
                };
                let Some(i) = cluster_of(&answer.target, &d.clusters) else {
                    return Err(format!(
                        "{} leads to {}, which no management cluster serves",
                        d.api_host, answer.target
                    ));
                };
                if runs_control_plane(opts, &management[i]) {
                    Ok(i)
                } else {
                    Err(format!(
                        "{} leads to management cluster {}, whose kube-apiserver for {} does not run",
                        d.api_host,
                        d.clusters[i],
                        opts.hosted_cluster()
                    ))
                }
            }
        }
    }

    /// Logs what the API and its kubelets meet when it changes (`FERRY_LOG=ferry_sim=debug`).
    fn note(&mut self, seen: String) {
        if seen != self.seen {
            tracing::debug!("hosted API: {seen}");
            self.seen = seen;
        }
    }

    /// The management cluster a kubelet or haproxy reaches through the VPC resolver.
    async fn reached(&self, opts: &HostedApiOptions, management: &[Store]) -> Option<usize> {
        match &opts.dns {
            None => running_on(opts, management),
            Some(d) => {
                let target = d.resolver.resolve(&d.api_host).await?;
                cluster_of(&target, &d.clusters).filter(|i| runs_control_plane(opts, &management[*i]))
            }
        }
    }

    async fn reconcile(
        &mut self,
        opts: &HostedApiOptions,
        management: &[Store],
        hosted: &Store,
        faults: &crate::kube::faults::FaultPlan,
        backing: &tokio::sync::Mutex<Backing>,
    ) {
        let serving = self.serving(opts, management).await;
        let serving = match serving {
            Ok(i) => match opts.etcds.get(i).map(|e| e(&opts.cp_ns())) {
                Some(members) if members.is_empty() => Err(format!(
                    "the kube-apiserver of {} has no etcd to serve from",
                    opts.hosted_cluster()
                )),
                _ => Ok(i),
            },
            Err(e) => Err(e),
        };
        let now = serving.as_ref().ok().copied();
        faults.set_down(
            serving
                .as_ref()
                .err()
                .map(|why| format!("the hosted cluster's API is not served: {why}")),
        );
        if now != self.backing_cluster {
            backing.lock().await.client = None;
            let client = match now.and_then(|i| opts.etcds.get(i)) {
                Some(access) => {
                    let members = access(&opts.cp_ns());
                    let pick = members
                        .get(self.switches % members.len().max(1))
                        .map(|(_, c)| c.clone());
                    self.switches += 1;
                    if let Some(c) = &pick {
                        load_from(hosted, c).await;
                    }
                    pick
                }
                None => None,
            };
            *backing.lock().await = Backing {
                client,
                from_rv: hosted.resource_version(),
            };
            self.backing_cluster = now;
            // A new kube-controller-manager: it gives every Node its grace from now.
            self.probes.clear();
        }
        let kubelets = opts.kubelets.load(std::sync::atomic::Ordering::Relaxed);
        if let Err(why) = &serving {
            self.note(format!("not served: {why}"));
        }
        let Some(serving) = now else {
            // The kubelets keep trying to post their status while no control plane serves,
            // resolving the API's name as they go: an NXDOMAIN met meanwhile is kept for the
            // zone's negative TTL.
            if kubelets {
                let _ = self.reached(opts, management).await;
            }
            return;
        };
        if !kubelets {
            cluster_version(hosted, true);
            return;
        }
        self.nodes(opts, management, hosted, serving).await;
        workloads::kubelet(hosted, &WorkloadOptions::default());
        cluster_version(hosted, true);
    }

    async fn nodes(&mut self, opts: &HostedApiOptions, management: &[Store], hosted: &Store, serving: usize) {
        let clock = opts.clock;
        let now = clock.now_rfc3339();
        let instances = opts.ec2.running(&opts.hosted_cluster());
        let reached = self.reached(opts, management).await;
        self.note(format!("served from {serving}, kubelets reach {reached:?}"));
        let existing = list(hosted, &registry::NODE, None);
        for i in &instances {
            // The kubelet posts its status while it reaches the serving control plane.
            if reached != Some(serving) {
                continue;
            }
            let due = self
                .posted
                .get(&i.node_name)
                .is_none_or(|t| clock.since(*t) >= opts.node_ready_delay);
            let current = existing.iter().find(|n| name_of(n) == i.node_name);
            match current {
                None => {
                    let node = json!({
                        "apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": i.node_name, "labels": {
                            "node-role.kubernetes.io/worker": "",
                            "hypershift.openshift.io/nodePool": i.node_pool,
                            "kubernetes.io/hostname": i.node_name,
                        }},
                        "spec": {"providerID": i.provider_id},
                        "status": {"conditions": [ready_condition("True", &now, &now)]},
                    });
                    let _ = hosted.create_with_status(&registry::NODE, None, node);
                    self.posted.insert(i.node_name.clone(), Instant::now());
                }
                Some(n) => {
                    let was = ready_of(n);
                    let was_true = was.is_some_and(|c| c["status"] == "True");
                    if was_true && !due {
                        continue;
                    }
                    let transition = match was {
                        Some(c) if was_true => c["lastTransitionTime"].as_str().unwrap_or(&now).to_string(),
                        _ => now.clone(),
                    };
                    let _ = hosted.patch(
                        &registry::NODE,
                        None,
                        &i.node_name,
                        &Patch::Merge(json!({"status": {"conditions": [ready_condition("True", &now, &transition)]}})),
                        &WriteOptions::status(),
                    );
                    self.posted.insert(i.node_name.clone(), Instant::now());
                }
            }
        }
        // The node lifecycle controller of the serving control plane. A kubelet that reaches
        // it posts within its period: only a kubelet that cannot (its instance gone, or its
        // resolver sending it elsewhere) lets the grace run out, never this loop running late
        // on a busy machine.
        let reaching: Vec<&str> = if reached == Some(serving) {
            instances.iter().map(|i| i.node_name.as_str()).collect()
        } else {
            Vec::new()
        };
        for n in list(hosted, &registry::NODE, None) {
            let Some(ready) = ready_of(&n) else { continue };
            let heartbeat = ready["lastHeartbeatTime"].as_str().unwrap_or_default().to_string();
            let probe = self.probes.entry(name_of(&n).to_string()).or_insert_with(|| Probe {
                heartbeat: heartbeat.clone(),
                since: Instant::now(),
            });
            if probe.heartbeat != heartbeat || reaching.contains(&name_of(&n)) {
                probe.heartbeat = heartbeat.clone();
                probe.since = Instant::now();
            }
            if ready["status"] != "Unknown" && clock.since(probe.since) > NODE_MONITOR_GRACE {
                let _ = hosted.patch(
                    &registry::NODE,
                    None,
                    name_of(&n),
                    &Patch::Merge(json!({"status": {"conditions": [ready_condition("Unknown", &heartbeat, &now)]}})),
                    &WriteOptions::status(),
                );
            }
        }
        // A terminated instance's Node is removed by the cloud node controller.
        for n in &existing {
            if !instances.iter().any(|i| i.node_name == name_of(n)) {
                let _ = hosted.delete(&registry::NODE, None, name_of(n), &DeleteOptions::default());
                self.probes.remove(name_of(n));
                self.haproxy.remove(name_of(n));
            }
        }
        let nodes: Vec<String> = list(hosted, &registry::NODE, None)
            .iter()
            .map(|n| name_of(n).to_string())
            .collect();
        ovn_pods(hosted, &nodes);
        self.haproxy(opts, management, hosted, &nodes, serving).await;
    }

    /// Each node's haproxy: a liveness probe every period after the initial delay, through
    /// the address resolved at start; three failures restart it, and it resolves again.
    async fn haproxy(
        &mut self,
        opts: &HostedApiOptions,
        management: &[Store],
        hosted: &Store,
        nodes: &[String],
        serving: usize,
    ) {
        let clock = opts.clock;
        for node in nodes {
            if !self.haproxy.contains_key(node) {
                let target = self.reached(opts, management).await;
                let started = Instant::now();
                self.haproxy.insert(
                    node.clone(),
                    Haproxy {
                        target,
                        started,
                        started_at: clock.now_rfc3339(),
                        next_probe: started + clock.real(HAPROXY_INITIAL_DELAY),
                        failures: 0,
                        restarts: 0,
                    },
                );
            }
            let mut restart = false;
            if let Some(h) = self.haproxy.get_mut(node)
                && Instant::now() >= h.next_probe
            {
                h.next_probe += clock.real(HAPROXY_PERIOD);
                if h.target == Some(serving) {
                    h.failures = 0;
                } else {
                    h.failures += 1;
                    restart = h.failures >= HAPROXY_FAILURES;
                }
            }
            if restart {
                let target = self.reached(opts, management).await;
                if let Some(h) = self.haproxy.get_mut(node) {
                    h.restarts += 1;
                    h.failures = 0;
                    h.target = target;
                    h.started = Instant::now();
                    h.started_at = clock.now_rfc3339();
                    h.next_probe = h.started + clock.real(HAPROXY_INITIAL_DELAY);
                }
            }
            if let Some(h) = self.haproxy.get(node) {
                haproxy_pod(hosted, node, h);
            }
        }
    }
}

fn haproxy_pod(hosted: &Store, node: &str, h: &Haproxy) {
    let name = format!("kube-apiserver-proxy-{node}");
    let last = if h.restarts > 0 {
        json!({"terminated": {"exitCode": 137, "reason": "Error"}})
    } else {
        json!({})
    };
    let status = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "haproxy", "ready": true, "restartCount": h.restarts,
            "image": "haproxy-router:sim", "lastState": last, "state": {"running": {"startedAt": h.started_at}}}]});
    match hosted.get(&registry::POD, Some("kube-system"), &name) {
        Err(_) => {
            let _ = hosted.create_with_status(
                &registry::POD,
                Some("kube-system"),
                json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "kube-system",
                        "labels": {"k8s-app": "kube-apiserver-proxy"},
                        "annotations": {"kubernetes.io/config.mirror": "static", "kubernetes.io/config.source": "file"}},
                    "spec": {"nodeName": node, "hostNetwork": true, "priorityClassName": "system-node-critical",
                        "containers": [{"name": "haproxy", "image": "haproxy-router:sim",
                            "livenessProbe": {"httpGet": {"scheme": "HTTPS", "host": "172.20.0.1", "port": 6443, "path": "/version"},
                                "initialDelaySeconds": 120, "periodSeconds": 120, "failureThreshold": 3}}]},
                    "status": status}),
            );
        }
        Ok(cur) if cur.get("status") != Some(&status) => {
            let _ = hosted.patch(
                &registry::POD,
                Some("kube-system"),
                &name,
                &Patch::Merge(json!({"status": status})),
                &WriteOptions::status(),
            );
        }
        Ok(_) => {}
    }
}

/// What a kube-apiserver starting on `etcd` serves: the API's objects are replaced by the ones
/// stored there (values that are not JSON objects, such as a scenario's raw keys, are not
/// objects of these kinds and are left out).
async fn load_from(hosted: &Store, etcd: &EtcdKvClient) {
    let kinds = persisted();
    let mut stored = Vec::new();
    for (kind, prefix) in &kinds {
        match etcd.range_prefix(prefix).await {
            Ok(kvs) => stored.push((*kind, kvs)),
            Err(e) => {
                tracing::warn!(prefix, error = %e, "hosted API: cannot read its etcd");
                return;
            }
        }
    }
    for (kind, kvs) in stored {
        for o in list(hosted, kind, None) {
            let ns = namespace_of(&o);
            let _ = hosted.delete(
                kind,
                (!ns.is_empty()).then_some(ns),
                name_of(&o),
                &DeleteOptions {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            );
        }
        for (_, value) in kvs {
            let Ok(mut obj) = serde_json::from_str::<Value>(&value) else {
                continue;
            };
            if !obj.is_object() {
                continue;
            }
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                for k in [
                    "resourceVersion",
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                ] {
                    m.remove(k);
                }
            }
            let ns = namespace_of(&obj).to_string();
            if !ns.is_empty() && hosted.get(&registry::NAMESPACE, None, &ns).is_err() {
                let _ = hosted.create(
                    &registry::NAMESPACE,
                    None,
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    &WriteOptions::default(),
                );
            }
            let _ = hosted.create_with_status(kind, (!ns.is_empty()).then_some(ns.as_str()), obj);
        }
    }
}

fn ovn_pods(hosted: &Store, nodes: &[String]) {
    let pods = list(hosted, &registry::POD, Some(OVN_NAMESPACE));
    for node in nodes {
        let has = pods
            .iter()
            .any(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node.as_str()) && !is_deleting(p));
        if has {
            continue;
        }
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..5];
        let _ = hosted.create_with_status(
            &registry::POD,
            Some(OVN_NAMESPACE),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("ovnkube-node-{suffix}"), "namespace": OVN_NAMESPACE,
                    "labels": {"app": "ovnkube-node"}},
                "spec": {"nodeName": node, "terminationGracePeriodSeconds": 30,
                    "containers": [{"name": "ovnkube-controller", "image": "ovn:sim"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            }),
        );
    }
}

fn cluster_version(hosted: &Store, available: bool) {
    let status = if available { "True" } else { "False" };
    let conditions = json!([
        {"type": "Available", "status": status, "reason": if available { "AsExpected" } else { "ControlPlaneDown" },
            "message": if available { "Done applying 4.17.0" } else { "The control plane is not reachable" }},
        {"type": "Progressing", "status": "False", "reason": "AsExpected", "message": "Cluster version is 4.17.0"},
    ]);
    match hosted.get(&registry::CLUSTER_VERSION, None, "version") {
        Err(_) => {
            let _ = hosted.create_with_status(
                &registry::CLUSTER_VERSION,
                None,
                json!({
                    "apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion",
                    "metadata": {"name": "version"},
                    "spec": {"clusterID": uuid::Uuid::new_v4().to_string()},
                    "status": {"conditions": conditions, "desired": {"version": "4.17.0"},
                        "history": [{"state": "Completed", "version": "4.17.0"}]},
                }),
            );
        }
        Ok(cur) => {
            if cur.pointer("/status/conditions/0/status").and_then(Value::as_str) != Some(status) {
                let _ = hosted.patch(
                    &registry::CLUSTER_VERSION,
                    None,
                    "version",
                    &Patch::Merge(json!({"status": {"conditions": conditions}})),
                    &WriteOptions::status(),
                );
            }
        }
    }
}

/// When a Node's Ready condition last changed (for the MachineHealthCheck).
pub fn ready_transition(node: &Value) -> Option<(String, DateTime<Utc>)> {
    let c = ready_of(node)?;
    let at = DateTime::parse_from_rfc3339(c["lastTransitionTime"].as_str()?).ok()?;
    Some((c["status"].as_str()?.to_string(), at.with_timezone(&Utc)))
}
