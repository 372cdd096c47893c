//! The hosted cluster's own API: a second [`Sim`] per hosted cluster, shared by every
//! management cluster that may host its control plane (source and destination of a DR).
//!
//! A task keeps it consistent with whichever management cluster currently runs the control
//! plane — the one where the HostedCluster exists, is not being deleted, is not paused, and
//! has a Running `etcd-0` pod in its HCP namespace:
//! - Nodes `<nodepool>-<i>` for each NodePool replica there, `Ready=True` once the control
//!   plane has run for [`HostedApiOptions::node_ready_delay`] (reset, and `NotReady`, while no
//!   management cluster runs it);
//! - one `ovnkube-node-<suffix>` pod per Node in `openshift-ovn-kubernetes`, recreated under a
//!   new name after deletion (as its DaemonSet would);
//! - the ClusterVersion `version` with `Available` (control plane running) and
//!   `Progressing=False`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{hcp_namespace, is_deleting, name_of, object_paused};
use crate::error::SimError;
use crate::patch::Patch;
use crate::registry;
use crate::server::Sim;
use crate::store::{DeleteOptions, ListOptions, Store, WriteOptions};

/// Namespace of the OVN pods.
pub const OVN_NAMESPACE: &str = "openshift-ovn-kubernetes";

/// How to run a [`HostedClusterApi`].
#[derive(Debug, Clone)]
pub struct HostedApiOptions {
    /// Name of the hosted API server (kubeconfig cluster name).
    pub name: String,
    /// HostedCluster namespace on the management clusters.
    pub hc_namespace: String,
    /// HostedCluster name.
    pub hc_name: String,
    /// How long the control plane must run before Nodes turn Ready.
    pub node_ready_delay: Duration,
    /// Reconcile period.
    pub resync: Duration,
}

impl HostedApiOptions {
    /// Defaults for HostedCluster `namespace/name`.
    pub fn new(hc_namespace: &str, hc_name: &str) -> Self {
        HostedApiOptions {
            name: format!("{}-hosted", hc_name.replace('.', "-")),
            hc_namespace: hc_namespace.to_string(),
            hc_name: hc_name.to_string(),
            node_ready_delay: Duration::from_millis(500),
            resync: Duration::from_millis(100),
        }
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
                state.reconcile(&opts, &management, &hosted);
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
    /// Since when the control plane runs (on which management cluster).
    running_since: Option<(usize, Instant)>,
}

fn items(store: &Store, kind: &'static registry::KindInfo, ns: Option<&str>) -> Vec<Value> {
    store
        .list(kind, ns, &ListOptions::default())
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The index of the management cluster running the control plane, if any.
fn hosting(opts: &HostedApiOptions, management: &[Store]) -> Option<usize> {
    let hcp_ns = hcp_namespace(&opts.hc_namespace, &opts.hc_name);
    management.iter().position(|m| {
        let Ok(hc) = m.get(&registry::HOSTED_CLUSTER, Some(&opts.hc_namespace), &opts.hc_name) else {
            return false;
        };
        !is_deleting(&hc)
            && !object_paused(&hc)
            && m.get(&registry::POD, Some(&hcp_ns), "etcd-0")
                .is_ok_and(|p| p.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
    })
}

impl State {
    fn reconcile(&mut self, opts: &HostedApiOptions, management: &[Store], hosted: &Store) {
        let host = hosting(opts, management);
        self.running_since = match (host, self.running_since) {
            (Some(h), Some((prev, since))) if prev == h => Some((h, since)),
            (Some(h), _) => Some((h, Instant::now())),
            (None, _) => None,
        };
        let ready = self
            .running_since
            .is_some_and(|(_, since)| since.elapsed() >= opts.node_ready_delay);
        // Desired nodes: from the NodePools where the control plane runs (else keep the
        // existing ones, NotReady).
        let mut desired: Vec<(String, String)> = Vec::new();
        if let Some(h) = host {
            for np in items(&management[h], &registry::NODE_POOL, Some(&opts.hc_namespace)) {
                if np.pointer("/spec/clusterName").and_then(Value::as_str) != Some(opts.hc_name.as_str()) {
                    continue;
                }
                let replicas = np.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(0);
                for i in 0..replicas {
                    desired.push((format!("{}-{i}", name_of(&np)), name_of(&np).to_string()));
                }
            }
        } else {
            for n in items(hosted, &registry::NODE, None) {
                desired.push((name_of(&n).to_string(), String::new()));
            }
        }
        let existing: HashMap<String, Value> = items(hosted, &registry::NODE, None)
            .into_iter()
            .map(|n| (name_of(&n).to_string(), n))
            .collect();
        for (node, pool) in &desired {
            let status = if ready { "True" } else { "False" };
            match existing.get(node) {
                None => {
                    let _ = hosted.create(
                        &registry::NODE,
                        None,
                        node_object(node, pool, status),
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
                            node,
                            &Patch::Merge(json!({"status": {"conditions": [ready_condition(status)]}})),
                            &WriteOptions::status(),
                        );
                    }
                }
            }
        }
        if host.is_some() {
            for name in existing.keys() {
                if !desired.iter().any(|(n, _)| n == name) {
                    let _ = hosted.delete(&registry::NODE, None, name, &DeleteOptions::default());
                }
            }
        }
        self.ovn_pods(hosted, &desired);
        self.cluster_version(hosted, host.is_some());
    }

    fn ovn_pods(&self, hosted: &Store, nodes: &[(String, String)]) {
        let pods = items(hosted, &registry::POD, Some(OVN_NAMESPACE));
        for (node, _) in nodes {
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
                    "spec": {"nodeName": node, "containers": [{"name": "ovnkube-controller", "image": "ovn:sim"}]},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
                }),
            );
        }
    }

    fn cluster_version(&self, hosted: &Store, available: bool) {
        let status = if available { "True" } else { "False" };
        let conditions = json!([
            {"type": "Available", "status": status, "reason": if available { "AsExpected" } else { "ControlPlaneDown" },
                "message": if available { "Done applying 4.17.0" } else { "The control plane is not running" }},
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
}

fn ready_condition(status: &str) -> Value {
    json!({"type": "Ready", "status": status,
        "reason": if status == "True" { "KubeletReady" } else { "NodeStatusUnknown" },
        "message": if status == "True" { "kubelet is posting ready status" } else { "Kubelet stopped posting node status." }})
}

fn node_object(name: &str, pool: &str, ready: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "node-role.kubernetes.io/worker": "",
            "hypershift.openshift.io/nodePool": pool,
            "kubernetes.io/hostname": name,
        }},
        "spec": {},
        "status": {"conditions": [ready_condition(ready)]},
    })
}
