//! The kube-controller-manager and the kubelets of a management cluster, as far as the DR path
//! meets them: every Deployment gets as many Running pods as it asks for, and a scaled-down
//! pod terminates gracefully — it carries a `deletionTimestamp` for its grace period (scaled
//! down to [`WorkloadOptions::termination`]) before the kubelet removes it. So "the pods are
//! gone" is something a client has to wait for, as on a real cluster.
//!
//! Follows `pkg/controller/replicaset/replica_set.go` (`manageReplicas`: create the missing,
//! delete the surplus) and the kubelet's graceful deletion (`deletionGracePeriodSeconds`, then
//! a delete with grace period 0). The ReplicaSet between a Deployment and its pods is not
//! modelled: pods are owned by the Deployment and named `<deployment>-<hash>-<suffix>`.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use super::{is_deleting, list, name_of, namespace_of};
use crate::kube::error::ApiError;
use crate::kube::meta;
use crate::kube::registry;
use crate::kube::store::{DeleteOptions, Store, WriteOptions};

/// How pods behave.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// How long a deleted pod stays `Terminating` (its grace period, shortened for tests).
    pub termination: Duration,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            termination: Duration::from_millis(500),
        }
    }
}

/// The template hash of a Deployment (stable per Deployment name).
fn pod_template_hash(deployment: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in deployment.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:08x}", h)[..8].to_string()
}

/// Labels of the pods a Deployment selects (`spec.selector.matchLabels`).
fn match_labels(d: &Value) -> serde_json::Map<String, Value> {
    d.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn selects(labels: &serde_json::Map<String, Value>, pod: &Value) -> bool {
    !labels.is_empty()
        && labels
            .iter()
            .all(|(k, v)| pod.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
}

/// Whether a pod is Running and not terminating.
pub fn running(pod: &Value) -> bool {
    !is_deleting(pod) && pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
}

/// The pods of a Deployment (terminating ones included).
pub fn deployment_pods(store: &Store, deployment: &Value) -> Vec<Value> {
    let labels = match_labels(deployment);
    let owner = deployment.pointer("/metadata/uid").cloned();
    list(store, &registry::POD, Some(namespace_of(deployment)))
        .into_iter()
        .filter(|p| {
            selects(&labels, p)
                && p.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r.get("uid") == owner.as_ref()))
        })
        .collect()
}

/// Whether `namespace/name` has a running pod: what "the controller runs" means.
pub fn deployment_running(store: &Store, namespace: &str, name: &str) -> bool {
    super::get(store, &registry::DEPLOYMENT, namespace, name)
        .is_some_and(|d| deployment_pods(store, &d).iter().any(running))
}

fn new_pod(d: &Value) -> Value {
    let name = name_of(d);
    let ns = namespace_of(d);
    let mut labels = d
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let hash = pod_template_hash(name);
    labels.insert("pod-template-hash".into(), json!(hash));
    let containers = d
        .pointer("/spec/template/spec/containers")
        .cloned()
        .unwrap_or_else(|| json!([{"name": name, "image": format!("quay.io/openshift/{name}:sim")}]));
    let statuses: Vec<Value> = containers
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    json!({"name": c.get("name").cloned().unwrap_or(json!(name)), "ready": true, "restartCount": 0,
                        "image": c.get("image").cloned().unwrap_or(Value::Null), "state": {"running": {}}})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{name}-{hash}-{}", meta::random_suffix()),
            "namespace": ns,
            "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                "uid": d.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {"containers": containers, "nodeName": "management-worker-0",
            "terminationGracePeriodSeconds": 30},
        "status": {"phase": "Running", "podIP": "10.128.0.10",
            "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": statuses},
    })
}

/// One pass over every Deployment and terminating pod of the cluster.
pub fn reconcile(store: &Store, opts: &WorkloadOptions) -> Result<(), ApiError> {
    for d in list(store, &registry::DEPLOYMENT, None) {
        if is_deleting(&d) {
            continue;
        }
        let want = d.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as usize;
        let pods = deployment_pods(store, &d);
        let live: Vec<&Value> = pods.iter().filter(|p| !is_deleting(p)).collect();
        if live.len() < want {
            for _ in live.len()..want {
                store.create_with_status(&registry::POD, Some(namespace_of(&d)), new_pod(&d))?;
            }
        } else {
            // manageReplicas deletes the surplus; the kubelet then terminates them gracefully.
            for p in live.iter().skip(want) {
                let _ = store.delete(
                    &registry::POD,
                    Some(namespace_of(p)),
                    name_of(p),
                    &DeleteOptions {
                        grace_period_seconds: Some(30),
                        ..Default::default()
                    },
                );
            }
        }
        let ready = deployment_pods(store, &d).iter().filter(|p| running(p)).count();
        let status = json!({"replicas": ready, "readyReplicas": ready, "availableReplicas": ready,
            "updatedReplicas": ready, "observedGeneration": d.pointer("/metadata/generation").cloned().unwrap_or(json!(1))});
        let same = ["replicas", "readyReplicas", "availableReplicas"]
            .iter()
            .all(|k| d.pointer(&format!("/status/{k}")) == status.get(*k));
        if !same {
            store.patch(
                &registry::DEPLOYMENT,
                Some(namespace_of(&d)),
                name_of(&d),
                &crate::kube::patch::Patch::Merge(json!({"status": status})),
                &WriteOptions::status(),
            )?;
        }
    }
    kubelet(store, opts);
    Ok(())
}

/// The kubelets: a terminating pod goes once its (shortened) grace period is over. Its
/// deletion began `deletionGracePeriodSeconds` before its `deletionTimestamp`.
pub fn kubelet(store: &Store, opts: &WorkloadOptions) {
    let now = Utc::now();
    for p in list(store, &registry::POD, None) {
        let Some(deadline) = p
            .pointer("/metadata/deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        else {
            continue;
        };
        let grace = p
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let since = deadline.with_timezone(&Utc) - chrono::Duration::seconds(grace);
        let elapsed = now.signed_duration_since(since);
        if elapsed.to_std().unwrap_or_default() >= opts.termination {
            let _ = store.delete(
                &registry::POD,
                Some(namespace_of(&p)),
                name_of(&p),
                &DeleteOptions {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::registry::Registry;

    #[test]
    fn deployments_get_pods_and_scaled_down_pods_terminate_gracefully() {
        let store = Store::new(Registry::builtin(), 1000);
        store
            .create(
                &registry::NAMESPACE,
                None,
                json!({"metadata": {"name": "cp"}}),
                &WriteOptions::default(),
            )
            .expect("ns");
        store
            .create(
                &registry::DEPLOYMENT,
                Some("cp"),
                json!({"metadata": {"name": "kube-apiserver"}, "spec": {"replicas": 2,
                    "selector": {"matchLabels": {"app": "kube-apiserver"}},
                    "template": {"metadata": {"labels": {"app": "kube-apiserver"}}}}}),
                &WriteOptions::default(),
            )
            .expect("deployment");
        let opts = WorkloadOptions {
            termination: Duration::from_secs(3600),
        };
        reconcile(&store, &opts).expect("reconcile");
        assert!(deployment_running(&store, "cp", "kube-apiserver"));
        let d = store
            .get(&registry::DEPLOYMENT, Some("cp"), "kube-apiserver")
            .expect("d");
        assert_eq!(deployment_pods(&store, &d).len(), 2);
        assert_eq!(d["status"]["readyReplicas"], 2);
        store
            .patch(
                &registry::DEPLOYMENT,
                Some("cp"),
                "kube-apiserver",
                &crate::kube::patch::Patch::Merge(json!({"spec": {"replicas": 0}})),
                &WriteOptions::default(),
            )
            .expect("scale");
        reconcile(&store, &opts).expect("reconcile");
        let pods = deployment_pods(&store, &d);
        assert_eq!(pods.len(), 2, "terminating pods linger for their grace period");
        assert!(pods.iter().all(is_deleting));
        assert!(!deployment_running(&store, "cp", "kube-apiserver"));
        reconcile(
            &store,
            &WorkloadOptions {
                termination: Duration::ZERO,
            },
        )
        .expect("reconcile");
        assert!(deployment_pods(&store, &d).is_empty());
    }
}
