//! A hosted cluster's own API: a second [`Sim`] per hosted cluster, shared by every management
//! cluster that may run its control plane (source and destination of a DR).
//!
//! Its nodes are the EC2 instances of the hosted cluster ([`super::aws::Ec2`]): each running
//! instance's kubelet registers its Node, and the Node is Ready while the API hostname the
//! kubelet was given leads (through DNS, see [`ApiResolver`]) to a management cluster whose
//! control plane runs — the HostedCluster exists there, is not deleted or paused, and its
//! HostedControlPlane is Available — for at least [`HostedApiOptions::node_ready_delay`].
//! A kubelet whose API hostname leads to a stopped control plane (the source after a backup)
//! goes NotReady, as it would on AWS. Besides the nodes:
//! - one `ovnkube-node-<suffix>` pod per Node in `openshift-ovn-kubernetes`, recreated under a
//!   new name after deletion (as its DaemonSet would), with the kubelet's graceful deletion;
//! - the ClusterVersion `version` with `Available` while the control plane is reachable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::aws::Ec2;
use super::workloads::{self, WorkloadOptions};
use super::{get, hcp_namespace, is_deleting, list, name_of};
use crate::kube::error::SimError;
use crate::kube::patch::Patch;
use crate::kube::registry;
use crate::kube::server::Sim;
use crate::kube::store::{DeleteOptions, Store, WriteOptions};

/// Namespace of the OVN pods.
pub const OVN_NAMESPACE: &str = "openshift-ovn-kubernetes";

/// Which management cluster (index) the hosted cluster's API hostname leads to now, `None`
/// when it resolves nowhere. Environments with Route53 answer from the zone; without, from
/// where the control plane runs.
pub type ApiResolver = Arc<dyn Fn() -> BoxFuture<'static, Option<usize>> + Send + Sync>;

/// How to run a [`HostedClusterApi`].
#[derive(Clone)]
pub struct HostedApiOptions {
    /// Name of the hosted API server (kubeconfig cluster name).
    pub name: String,
    /// HostedCluster namespace on the management clusters.
    pub hc_namespace: String,
    /// HostedCluster name.
    pub hc_name: String,
    /// How long the control plane must be reachable before Nodes turn Ready.
    pub node_ready_delay: Duration,
    /// Reconcile period.
    pub resync: Duration,
    /// The instances of the account.
    pub ec2: Ec2,
    /// DNS for the API hostname (`None`: where the control plane runs).
    pub resolver: Option<ApiResolver>,
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
            node_ready_delay: Duration::from_millis(500),
            resync: Duration::from_millis(250),
            ec2,
            resolver: None,
        }
    }

    fn hosted_cluster(&self) -> String {
        format!("{}/{}", self.hc_namespace, self.hc_name)
    }
}

/// A running hosted cluster API. Dropping it stops the server and (through the closed stop
/// channel) the task.
pub struct HostedClusterApi {
    sim: Sim,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HostedClusterApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedClusterApi")
            .field("sim", &self.sim)
            .finish_non_exhaustive()
    }
}

impl HostedClusterApi {
    /// Start the hosted API server and its task, watching `management` clusters' stores.
    pub async fn start(opts: HostedApiOptions, management: Vec<Store>) -> Result<HostedClusterApi, SimError> {
        let sim = Sim::start(&opts.name).await?;
        let hosted = sim.store().clone();
        let _ = hosted.create(
            &registry::NAMESPACE,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OVN_NAMESPACE}}),
            &WriteOptions::default(),
        );
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut state = State::default();
            loop {
                let dns = match &opts.resolver {
                    Some(r) => r().await,
                    None => running_on(&opts, &management),
                };
                state.reconcile(&opts, &management, &hosted, dns);
                tokio::select! {
                    _ = tokio::time::sleep(opts.resync) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        });
        Ok(HostedClusterApi {
            sim,
            stop,
            task: Some(task),
        })
    }

    /// The hosted cluster's API server.
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// Stop the task and the server.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.sim.shutdown().await;
    }
}

#[derive(Default)]
struct State {
    /// Since when the control plane is reachable (on which management cluster).
    reachable_since: Option<(usize, Instant)>,
}

/// Whether management cluster `m` runs the hosted cluster's control plane.
fn runs_control_plane(opts: &HostedApiOptions, m: &Store) -> bool {
    let Some(hc) = get(m, &registry::HOSTED_CLUSTER, &opts.hc_namespace, &opts.hc_name) else {
        return false;
    };
    if is_deleting(&hc) {
        return false;
    }
    // Nodes talk to the kube-apiserver pods: a paused control plane still serves them; one
    // whose kube-apiserver is scaled down (a backup's quiesce) does not.
    let cp_ns = hcp_namespace(&opts.hc_namespace, &opts.hc_name);
    workloads::deployment_running(m, &cp_ns, "kube-apiserver")
        && get(m, &registry::HOSTED_CONTROL_PLANE, &cp_ns, &opts.hc_name).is_some()
}

/// Where the control plane runs (what DNS says when no Route53 is simulated).
pub fn running_on(opts: &HostedApiOptions, management: &[Store]) -> Option<usize> {
    management.iter().position(|m| runs_control_plane(opts, m))
}

fn ready_condition(status: &str) -> Value {
    json!({"type": "Ready", "status": status,
        "reason": if status == "True" { "KubeletReady" } else { "NodeStatusUnknown" },
        "message": if status == "True" { "kubelet is posting ready status" } else { "Kubelet stopped posting node status." }})
}

fn node_object(name: &str, pool: &str, provider_id: &str, ready: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "node-role.kubernetes.io/worker": "",
            "hypershift.openshift.io/nodePool": pool,
            "kubernetes.io/hostname": name,
        }},
        "spec": {"providerID": provider_id},
        "status": {"conditions": [ready_condition(ready)]},
    })
}

impl State {
    fn reconcile(&mut self, opts: &HostedApiOptions, management: &[Store], hosted: &Store, dns: Option<usize>) {
        let reachable = dns.filter(|i| management.get(*i).is_some_and(|m| runs_control_plane(opts, m)));
        self.reachable_since = match (reachable, self.reachable_since) {
            (Some(h), Some((prev, since))) if prev == h => Some((h, since)),
            (Some(h), _) => Some((h, Instant::now())),
            (None, _) => None,
        };
        let ready = self
            .reachable_since
            .is_some_and(|(_, since)| since.elapsed() >= opts.node_ready_delay);
        let status = if ready { "True" } else { "False" };
        let instances = opts.ec2.running(&opts.hosted_cluster());
        let existing = list(hosted, &registry::NODE, None);
        for i in &instances {
            match existing.iter().find(|n| name_of(n) == i.node_name) {
                None => {
                    let _ = hosted.create(
                        &registry::NODE,
                        None,
                        node_object(&i.node_name, &i.node_pool, &i.provider_id, status),
                        &WriteOptions::default(),
                    );
                }
                Some(cur) => {
                    let now = cur
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                        .and_then(|c| c["status"].as_str());
                    if now != Some(status) {
                        let _ = hosted.patch(
                            &registry::NODE,
                            None,
                            &i.node_name,
                            &Patch::Merge(json!({"status": {"conditions": [ready_condition(status)]}})),
                            &WriteOptions::status(),
                        );
                    }
                }
            }
        }
        // A terminated instance's Node is removed by the cloud node controller.
        for n in &existing {
            if !instances.iter().any(|i| i.node_name == name_of(n)) {
                let _ = hosted.delete(&registry::NODE, None, name_of(n), &DeleteOptions::default());
            }
        }
        let nodes: Vec<String> = instances.iter().map(|i| i.node_name.clone()).collect();
        ovn_pods(hosted, &nodes);
        workloads::kubelet(hosted, &WorkloadOptions::default());
        cluster_version(hosted, reachable.is_some());
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
