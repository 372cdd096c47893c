//! The control-plane operator (CPO) of each hosted control plane
//! (`control-plane-operator/controllers/hostedcontrolplane/hostedcontrolplane_controller.go`),
//! running only while its Deployment `control-plane-operator` has a running pod:
//!
//! - deletion (`reconcileDeletion`) and the HCP's finalizer come before the pause check;
//! - the status is computed and written **even while paused** (`Reconcile`: the conditions
//!   are patched before `IsReconciliationPaused`): `EtcdAvailable` from the etcd StatefulSet
//!   (`reconcileEtcdStatus`), `KubeAPIServerAvailable`, `InfrastructureReady`,
//!   `ExternalDNSReachable`, `Available` in upstream's priority order
//!   (`reconcileAvailabilityStatus`), `ReconciliationActive`, and `EtcdSnapshotRestored`, set
//!   once and only here, on the HostedControlPlane (`etcdRestoredCondition`: True when every
//!   etcd pod's `etcd-init` completed);
//! - when not paused (`update`): etcd (a StatefulSet whose pods are real etcd members, with the
//!   `etcd-init` container while `restoreSnapshotURL` is set and not yet restored:
//!   `v2/etcd/statefulset.go`, `adaptStatefulSet`), the etcd writers and other control-plane
//!   Deployments, the Services and Routes of each publishing strategy (`infra.go`,
//!   `kas/service.go`: a Route's hostname in `spec.host`, a LoadBalancer Service's in the
//!   external-dns annotation), the HCP router load balancers, the AWSEndpointServices of
//!   private clusters (`awsprivatelink_controller.go`), and `admin-kubeconfig`;
//! - the hosted cluster config operator's `reconcileClusterRecovery`
//!   (`hostedclusterconfigoperator/controllers/resources/resources.go`): with the
//!   `restored-from-backup` annotation, `HostedClusterRestoredFromBackup` on the HCP.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use super::context::{Ctx, InitRecord, OperatorEvent};
use super::etcd::{ETCD_CLIENT_PORT, HostedEtcd, member_pods};
use super::pki::{
    ETCD_CA_CONFIGMAP, ETCD_CA_KEY, ETCD_CLIENT_CA_KEY, ETCD_CLIENT_CERT_KEY, ETCD_CLIENT_KEY_KEY, ETCD_CLIENT_SECRET,
    EtcdPki,
};
use super::restore::{self, restore_urls};
use super::workloads::deployment_running;
use super::{
    CLUSTER_ANNOTATION, CPO_ENDPOINT_FINALIZER, Condition, EXTERNAL_DNS_HOSTNAME_ANNOTATION, FINALIZER,
    HCP_ROUTE_LABEL, INTERNAL_ROUTE_LABEL, Pause, RESTORED_FROM_BACKUP_ANNOTATION, ROUTE_VISIBILITY_LABEL,
    add_finalizer, annotation, deployment_condition, get, is_deleting, list, name_of, namespace_of, remove_finalizer,
    set_conditions,
};
use crate::kube::error::{ApiError, Reason};
use crate::kube::patch::Patch;
use crate::kube::registry::{self, KindInfo};
use crate::kube::store::{Store, WriteOptions};
use crate::services::Restore;

/// The control-plane Deployments the CPO runs, and their replicas in a `HighlyAvailable`
/// control plane (one otherwise).
const COMPONENTS: &[(&str, u64)] = &[
    ("kube-apiserver", 3),
    ("openshift-apiserver", 3),
    ("openshift-oauth-apiserver", 3),
    ("oauth-openshift", 3),
    ("ignition-server", 3),
];

/// A publishing strategy of `spec.services`.
#[derive(Debug, Clone, Default)]
struct Strategy {
    type_: String,
    hostname: Option<String>,
}

fn strategy(hcp: &Value, service: &str) -> Strategy {
    let s = hcp
        .pointer("/spec/services")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|s| s.get("service").and_then(Value::as_str) == Some(service))
        })
        .and_then(|s| s.get("servicePublishingStrategy"));
    let Some(s) = s else {
        return Strategy::default();
    };
    let type_ = s.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    let hostname = match type_.as_str() {
        "Route" => s.pointer("/route/hostname"),
        "LoadBalancer" => s.pointer("/loadBalancer/hostname"),
        _ => None,
    }
    .and_then(Value::as_str)
    .filter(|h| !h.is_empty())
    .map(str::to_string);
    Strategy { type_, hostname }
}

/// `spec.platform.aws.endpointAccess`: (public, private).
fn access(hcp: &Value) -> (bool, bool) {
    match hcp.pointer("/spec/platform/aws/endpointAccess").and_then(Value::as_str) {
        Some("Private") => (false, true),
        Some("PublicAndPrivate") => (true, true),
        _ => (true, false),
    }
}

fn ha(hcp: &Value) -> bool {
    hcp.pointer("/spec/controllerAvailabilityPolicy")
        .and_then(Value::as_str)
        == Some("HighlyAvailable")
}

/// Reconcile one HostedControlPlane.
pub(crate) async fn reconcile(ctx: &Ctx<'_>, hcp: &Value) -> Result<(), ApiError> {
    let store = ctx.store;
    let ns = namespace_of(hcp).to_string();
    if !deployment_running(store, &ns, "control-plane-operator") {
        return Ok(());
    }
    if is_deleting(hcp) {
        // reconcileDeletion runs before the pause check; its last step drops the finalizer.
        return remove_finalizer(store, &registry::HOSTED_CONTROL_PLANE, hcp, FINALIZER);
    }
    let hcp = add_finalizer(store, &registry::HOSTED_CONTROL_PLANE, hcp, FINALIZER)?;
    write_status(ctx, &hcp)?;
    if Pause::of(&hcp).paused() {
        return Ok(());
    }
    if ctx.opts.hosted_etcd {
        ensure_etcd(ctx, &hcp).await?;
    } else {
        ensure_etcd_statefulset(store, &ns, member_pods(None).len(), true)?;
    }
    ensure_components(ctx, &hcp)?;
    publish(ctx, &hcp)?;
    endpoint_services(ctx, &hcp)?;
    admin_kubeconfig(store, &hcp)?;
    recovery(store, &hcp)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

/// `ValidAWSIdentityProvider` (`controllers/healthcheck/aws.go`
/// `awsHealthCheckIdentityProvider`): checked through the hosted cluster's web identity, which
/// needs its API; the issuer's documents the source published stay where they were (teardown
/// never runs the deletion flow that removes them, `cleanupOIDCBucketData`). Its cadence (a
/// first check after 30 s, then every 5 minutes) is not modelled: the only reader, teardown's
/// gate, comes minutes after the API is up.
fn identity_provider(kas: &Condition) -> Condition {
    if kas.status == "True" {
        Condition::new("ValidAWSIdentityProvider", "True", "AsExpected", "All is well")
    } else {
        Condition::new(
            "ValidAWSIdentityProvider",
            "Unknown",
            "StatusUnknown",
            "Cannot validate AWS identity provider while KubeAPIServer is not available",
        )
    }
}

fn etcd_available(store: &Store, ns: &str) -> Condition {
    let Some(sts) = get(store, &registry::STATEFUL_SET, ns, "etcd") else {
        return Condition::new(
            "EtcdAvailable",
            "False",
            "StatefulSetNotFound",
            "Etcd StatefulSet not found",
        );
    };
    let replicas = sts.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let ready = sts
        .pointer("/status/readyReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if ready > replicas / 2 {
        Condition::new("EtcdAvailable", "True", "QuorumAvailable", "")
    } else {
        Condition::new(
            "EtcdAvailable",
            "False",
            "EtcdWaitingForQuorum",
            "Waiting for etcd to reach quorum",
        )
    }
}

/// `etcdRestoredCondition`: with the StatefulSet fully ready, True when every `etcd-init`
/// completed, False with the termination reason of one that failed.
fn etcd_restored(store: &Store, ns: &str) -> Option<Condition> {
    let sts = get(store, &registry::STATEFUL_SET, ns, "etcd")?;
    let replicas = sts.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    if sts
        .pointer("/status/readyReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != replicas
    {
        return None;
    }
    let mut ready = 0;
    for p in list(store, &registry::POD, Some(ns)) {
        if p.pointer("/metadata/labels/app").and_then(Value::as_str) != Some("etcd") {
            continue;
        }
        for s in p
            .pointer("/status/initContainerStatuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if s.get("name").and_then(Value::as_str) != Some("etcd-init") {
                continue;
            }
            if s.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            } else if let Some(t) = s.pointer("/lastState/terminated")
                && t.get("exitCode").and_then(Value::as_i64).unwrap_or(0) != 0
            {
                let reason = t.get("reason").and_then(Value::as_str).unwrap_or("Error");
                return Some(Condition::new("EtcdSnapshotRestored", "False", reason, ""));
            }
        }
    }
    (ready == replicas).then(|| Condition::new("EtcdSnapshotRestored", "True", "AsExpected", ""))
}

/// The API server's published endpoint, if any: (host, port).
fn kas_endpoint(ctx: &Ctx<'_>, hcp: &Value) -> Option<(String, u16)> {
    let ns = namespace_of(hcp);
    let s = strategy(hcp, "APIServer");
    match s.type_.as_str() {
        "LoadBalancer" => {
            let (public, _) = access(hcp);
            let svc = if public {
                "kube-apiserver"
            } else {
                "kube-apiserver-private"
            };
            let lb = get(ctx.store, &registry::SERVICE, ns, svc)?
                .pointer("/status/loadBalancer/ingress/0/hostname")
                .and_then(Value::as_str)
                .map(str::to_string)?;
            Some((s.hostname.unwrap_or(lb), 6443))
        }
        _ => {
            let (public, _) = access(hcp);
            let route = if public {
                "kube-apiserver"
            } else {
                "kube-apiserver-private"
            };
            let r = get(ctx.store, &registry::ROUTE, ns, route)
                .or_else(|| get(ctx.store, &registry::ROUTE, ns, "kube-apiserver-internal"))?;
            let admitted = r
                .pointer("/status/ingress/0/conditions/0/status")
                .and_then(Value::as_str)
                == Some("True");
            admitted.then(|| {
                (
                    r.pointer("/spec/host")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    443,
                )
            })
        }
    }
}

fn write_status(ctx: &Ctx<'_>, hcp: &Value) -> Result<(), ApiError> {
    let store = ctx.store;
    let ns = namespace_of(hcp);
    let etcd = etcd_available(store, ns);
    let kas = deployment_condition(
        store,
        ns,
        "kube-apiserver",
        "KubeAPIServerAvailable",
        "Kube APIServer",
        "Waiting for Kube APIServer deployment to become available",
    );
    let endpoint = kas_endpoint(ctx, hcp);
    let infra = if endpoint.is_some() {
        Condition::new("InfrastructureReady", "True", "AsExpected", "All is well")
    } else {
        Condition::new(
            "InfrastructureReady",
            "False",
            "WaitingOnInfrastructureReady",
            "Waiting on the API server endpoint to be published",
        )
    };
    let dns = if strategy(hcp, "APIServer").hostname.is_some() {
        Condition::new("ExternalDNSReachable", "True", "AsExpected", "All is well")
    } else {
        Condition::new(
            "ExternalDNSReachable",
            "Unknown",
            "StatusUnknown",
            "External DNS is not configured",
        )
    };
    let has_kubeconfig = get(store, &registry::SECRET, ns, "admin-kubeconfig").is_some();
    // reconcileAvailabilityStatus, in upstream's order.
    let available = if infra.status != "True" {
        Condition::new("Available", "False", &infra.reason, &infra.message)
    } else if !has_kubeconfig {
        Condition::new(
            "Available",
            "False",
            "KubeconfigWaitingForCreate",
            "Waiting for hosted control plane kubeconfig to be created",
        )
    } else if etcd.status != "True" {
        Condition::new("Available", "False", &etcd.reason, &etcd.message)
    } else if kas.status != "True" {
        Condition::new("Available", "False", &kas.reason, &kas.message)
    } else {
        Condition::new("Available", "True", "AsExpected", "")
    };
    let is_available = available.status == "True";
    let identity = identity_provider(&kas);
    let mut set = vec![
        Condition::new(
            "ValidHostedControlPlaneConfiguration",
            "True",
            "AsExpected",
            "Configuration passes validation",
        ),
        etcd,
        kas,
        infra,
        dns,
        Condition::new("ValidReleaseInfo", "True", "AsExpected", "All is well"),
        Condition::new(
            "ValidIDPConfiguration",
            "True",
            "IDPConfigurationValid",
            "Identity provider configuration is valid",
        ),
        Condition::new("Degraded", "False", "AsExpected", ""),
        available,
        Pause::of(hcp).condition("AsExpected"),
        identity,
    ];
    // The restore condition is evaluated once, while none is set (reconcileEtcdStatus).
    if !restore_urls(hcp).is_empty()
        && Condition::read(hcp, "EtcdSnapshotRestored").is_none()
        && let Some(c) = etcd_restored(store, ns)
    {
        set.push(c);
    }
    set_conditions(store, &registry::HOSTED_CONTROL_PLANE, hcp, &set)?;
    let mut status = Map::new();
    if let Some((host, port)) = endpoint {
        status.insert("controlPlaneEndpoint".into(), json!({"host": host, "port": port}));
    }
    if has_kubeconfig {
        status.insert(
            "kubeConfig".into(),
            json!({"name": "admin-kubeconfig", "key": "kubeconfig"}),
        );
    }
    status.insert("ready".into(), json!(is_available));
    status.insert("initialized".into(), json!(true));
    let changed = status
        .iter()
        .any(|(k, v)| hcp.pointer(&format!("/status/{k}")) != Some(v));
    if changed && let Some(cur) = get(store, &registry::HOSTED_CONTROL_PLANE, ns, name_of(hcp)) {
        store.patch(
            &registry::HOSTED_CONTROL_PLANE,
            Some(ns),
            name_of(&cur),
            &Patch::Merge(json!({"status": status})),
            &WriteOptions::status(),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// etcd
// ---------------------------------------------------------------------------------------------

/// Create `obj` unless it exists (AlreadyExists is fine); returns whether it created it.
fn ensure(ctx: &Ctx<'_>, kind: &KindInfo, ns: &str, obj: Value) -> Result<bool, ApiError> {
    let name = name_of(&obj).to_string();
    if get(ctx.store, kind, ns, &name).is_some() {
        return Ok(false);
    }
    match ctx.store.create_with_status(kind, Some(ns), obj) {
        Ok(_) => {
            ctx.log.created(ctx.cluster(), &kind.kind, ns, &name);
            Ok(true)
        }
        Err(e) if e.reason == Reason::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The StatefulSet `etcd` with its replicas and readiness.
fn ensure_etcd_statefulset(store: &Store, ns: &str, replicas: usize, ready: bool) -> Result<(), ApiError> {
    let ready_n = if ready { replicas } else { 0 };
    match get(store, &registry::STATEFUL_SET, ns, "etcd") {
        None => {
            let obj = json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "etcd", "namespace": ns, "labels": {"app": "etcd"}},
                "spec": {
                    "replicas": replicas, "serviceName": "etcd-discovery",
                    "selector": {"matchLabels": {"app": "etcd"}},
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}}}}],
                    "template": {"metadata": {"labels": {"app": "etcd"}},
                        "spec": {"containers": [{"name": "etcd", "image": "quay.io/openshift/etcd:sim",
                            "ports": [{"name": "client", "containerPort": ETCD_CLIENT_PORT}]}]}},
                },
                "status": {"replicas": replicas, "readyReplicas": ready_n, "availableReplicas": ready_n},
            });
            match store.create_with_status(&registry::STATEFUL_SET, Some(ns), obj) {
                Ok(_) => Ok(()),
                Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            }
        }
        Some(sts) => {
            if sts.pointer("/status/readyReplicas").and_then(Value::as_u64) != Some(ready_n as u64) {
                store.patch(
                    &registry::STATEFUL_SET,
                    Some(ns),
                    "etcd",
                    &Patch::Merge(json!({"status": {"replicas": replicas, "readyReplicas": ready_n,
                        "availableReplicas": ready_n}})),
                    &WriteOptions::status(),
                )?;
            }
            Ok(())
        }
    }
}

/// What the kubelet reports of a pod's `etcd-init` container.
#[derive(Debug, Clone)]
enum Init<'a> {
    /// No init container (not restoring).
    None,
    /// Completed (exit 0), after `restarts` failed runs, the last of which `last` describes.
    Completed {
        url: &'a str,
        restarts: u32,
        last: Option<(i64, String)>,
    },
    /// Running, after `restarts` failed runs, the last of which `last` describes.
    Running {
        url: &'a str,
        restarts: u32,
        last: Option<(i64, String)>,
    },
    /// Failing: the last run exited with `code` (`why`), and the kubelet backs off before the
    /// next (`CrashLoopBackOff`).
    Failing {
        url: &'a str,
        restarts: u32,
        code: i64,
        why: String,
    },
}

/// The pod `etcd-N` as the kubelet reports it (`pkg/kubelet/kubelet_pods.go`
/// `convertToAPIContainerStatuses`): with a completed `etcd-init`, the init container is Ready
/// and its `lastState` keeps a failure of an earlier run; with a failing one, the pod is
/// Pending and not Ready.
fn etcd_pod(ns: &str, pod: &str, init: &Init<'_>) -> Value {
    let mut status = json!({"podIP": "127.0.0.1"});
    let terminated = |code: i64, why: &str| {
        let mut t = json!({"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }});
        if !why.is_empty() {
            t["message"] = json!(why);
        }
        json!({"terminated": t})
    };
    let init_status = |ready: bool, restarts: u32, last: Value, state: Value| {
        json!([{"name": "etcd-init", "ready": ready, "restartCount": restarts,
            "image": "quay.io/openshift/etcd:sim", "lastState": last, "state": state}])
    };
    let restoring = match init {
        Init::None => {
            status["phase"] = json!("Running");
            status["conditions"] = json!([{"type": "Ready", "status": "True"}]);
            None
        }
        Init::Completed { url, restarts, last } => {
            status["phase"] = json!("Running");
            status["conditions"] = json!([{"type": "Ready", "status": "True"}]);
            let last = last
                .as_ref()
                .map(|(c, w)| terminated(*c, w))
                .unwrap_or_else(|| json!({}));
            status["initContainerStatuses"] = init_status(true, *restarts, last, terminated(0, ""));
            Some(*url)
        }
        Init::Running { url, restarts, last } => {
            status["phase"] = json!("Pending");
            status["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "ContainersNotInitialized"}]);
            let last = last
                .as_ref()
                .map(|(c, w)| terminated(*c, w))
                .unwrap_or_else(|| json!({}));
            status["initContainerStatuses"] = init_status(false, *restarts, last, json!({"running": {}}));
            Some(*url)
        }
        Init::Failing {
            url,
            restarts,
            code,
            why,
        } => {
            status["phase"] = json!("Pending");
            status["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "ContainersNotInitialized"}]);
            status["initContainerStatuses"] = init_status(
                false,
                *restarts,
                terminated(*code, why),
                json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            );
            Some(*url)
        }
    };
    let is_running = status["phase"] == "Running";
    status["containerStatuses"] = json!([{"name": "etcd", "ready": is_running, "restartCount": 0,
        "image": "quay.io/openshift/etcd:sim",
        "state": if is_running { json!({"running": {}}) } else { json!({"waiting": {"reason": "PodInitializing"}}) }}]);
    let mut spec = json!({"nodeName": "management-worker-0", "containers": [{"name": "etcd", "image": "quay.io/openshift/etcd:sim",
        "ports": [{"name": "client", "containerPort": ETCD_CLIENT_PORT}]}]});
    if let Some(url) = restoring {
        spec["initContainers"] = json!([{"name": "etcd-init", "image": "quay.io/openshift/etcd:sim",
            "env": [{"name": "RESTORE_URL_ETCD", "value": url}]}]);
    }
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "namespace": ns, "labels": {"app": "etcd"}},
        "spec": spec, "status": status})
}

fn ensure_etcd_pods(ctx: &Ctx<'_>, ns: &str, members: &[String], init: &Init<'_>) -> Result<(), ApiError> {
    for (i, pod) in members.iter().enumerate() {
        let want = etcd_pod(ns, pod, init);
        match get(ctx.store, &registry::POD, ns, pod) {
            None => {
                ensure(ctx, &registry::POD, ns, want)?;
            }
            Some(cur) if cur.get("status") != want.get("status") && !is_deleting(&cur) => {
                ctx.store.patch(
                    &registry::POD,
                    Some(ns),
                    pod,
                    &Patch::Merge(json!({"status": want["status"]})),
                    &WriteOptions::status(),
                )?;
            }
            Some(_) => {}
        }
        let pvc = format!("data-etcd-{i}");
        ensure(
            ctx,
            &registry::PERSISTENT_VOLUME_CLAIM,
            ns,
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": pvc, "namespace": ns, "labels": {"app": "etcd"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}}},
                "status": {"phase": "Bound"}}),
        )?;
    }
    Ok(())
}

/// The kubelet's view of this namespace's `etcd-init` runs.
fn init_record(ctx: &Ctx<'_>, ns: &str) -> InitRecord {
    ctx.etcds
        .init
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(ns)
        .cloned()
        .unwrap_or_default()
}

/// Start (or keep) the hosted etcd and its objects. An empty data directory with a
/// `restoreSnapshotURL` runs `etcd-init` first (`v2/etcd/etcd-init.sh`): download, reject an XML
/// body, restore as the profile's script does ([`Restore`]). A failed run leaves the pods
/// Pending and is run again after the kubelet's back-off ([`InitRecord::back_off`]).
async fn ensure_etcd(ctx: &Ctx<'_>, hcp: &Value) -> Result<(), ApiError> {
    let ns = namespace_of(hcp).to_string();
    let members = member_pods(
        hcp.pointer("/spec/controllerAvailabilityPolicy")
            .and_then(Value::as_str),
    );
    let urls = restore_urls(hcp);
    let restored = Condition::read(hcp, "EtcdSnapshotRestored").is_some_and(|c| c.status == "True");
    let restoring = urls.first().map(String::as_str).filter(|_| !restored);
    let record = init_record(ctx, &ns);
    let completed = |url| Init::Completed {
        url,
        restarts: record.restarts,
        last: record.last_failure.as_ref().map(|(_, c, w)| (*c, w.clone())),
    };
    let running = ctx
        .etcds
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&ns)
        .map(|e| (e.member_addrs(), e.pki().clone(), e.restored()));
    if let Some((addrs, pki, was_restored)) = running {
        ensure_etcd_tls(ctx.store, &ns, &pki)?;
        ensure_etcd_statefulset(ctx.store, &ns, addrs.len(), true)?;
        let names: Vec<String> = addrs.iter().map(|(p, _)| p.clone()).collect();
        let init = match restoring.filter(|_| was_restored) {
            Some(url) => completed(url),
            None => Init::None,
        };
        ensure_etcd_pods(ctx, &ns, &names, &init)?;
        for (pod, addr) in addrs {
            ctx.forwards.set(&ns, &pod, ETCD_CLIENT_PORT, addr);
        }
        return Ok(());
    }
    if let (Some(url), Some((at, code, why))) = (restoring, &record.last_failure)
        && ctx.opts.clock.since(*at) < record.back_off()
    {
        ensure_etcd_statefulset(ctx.store, &ns, members.len(), false)?;
        let init = Init::Failing {
            url,
            restarts: record.restarts,
            code: *code,
            why: why.clone(),
        };
        ensure_etcd_pods(ctx, &ns, &members, &init)?;
        return Ok(());
    }
    let n = ctx.etcds.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = ctx.data_root.join(format!("{ns}-{n}"));
    // The pinned commit's etcd-init restores with no member identity.
    let how = if ctx.opts.profile.etcd_init_member_identity() {
        Restore::AsMember
    } else {
        Restore::Alone
    };
    let (started, took) = match restoring {
        None => (
            HostedEtcd::start_in(&dir, &ns, members.clone())
                .await
                .map_err(|e| (1, e.to_string())),
            None,
        ),
        Some(url) => {
            // The kubelet runs etcd-init in the pods while the operators go on reconciling
            // (the CPO's `reconcileEtcd` applies the StatefulSet and moves on): the run is a
            // task of its own, and each pass looks at how it is doing.
            let inflight = ctx
                .etcds
                .restoring
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&ns);
            let outcome = match inflight {
                Some(task) if task.is_finished() => match task.await {
                    Ok(outcome) => outcome,
                    Err(e) => (Err((1, format!("etcd-init did not finish: {e}"))), Duration::ZERO),
                },
                Some(task) => {
                    ctx.etcds
                        .restoring
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(ns.clone(), task);
                    return restoring_pods(ctx, &ns, &members, url, &record);
                }
                None => {
                    let attempt = {
                        let mut init = ctx.etcds.init.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        let r = init.entry(ns.clone()).or_default();
                        r.attempts += 1;
                        r.attempts
                    };
                    if attempt <= ctx.opts.etcd_init_transient_failures {
                        // A transient failure of the download (`curl` under `sh -ce` exits with
                        // its code).
                        (
                            Err((56, format!("curl: (56) Recv failure: Connection reset by peer ({url})"))),
                            Duration::ZERO,
                        )
                    } else {
                        let (url_owned, ns_owned, members_owned) = (url.to_string(), ns.clone(), members.clone());
                        let (timeout, ca, clock) = (
                            ctx.opts.restore_download_timeout,
                            ctx.opts.restore_trusted_ca.clone(),
                            ctx.opts.clock,
                        );
                        let task = tokio::spawn(async move {
                            let began = Instant::now();
                            let result = match restore::download_snapshot(&url_owned, timeout, ca.as_deref()).await {
                                Err(e) => Err((1, e.to_string())),
                                Ok(bytes) => HostedEtcd::restore_in(&dir, &ns_owned, members_owned, &bytes, how)
                                    .await
                                    .map_err(|e| (1, e.to_string())),
                            };
                            if result.is_err() {
                                let _ = std::fs::remove_dir_all(&dir);
                            }
                            (result, clock.since(began))
                        });
                        ctx.etcds
                            .restoring
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(ns.clone(), task);
                        return restoring_pods(ctx, &ns, &members, url, &record);
                    }
                }
            };
            (outcome.0, Some(outcome.1))
        }
    };
    match started {
        Ok(etcd) => {
            let was_restored = etcd.restored();
            let addrs = etcd.member_addrs();
            let pki = etcd.pki().clone();
            ctx.etcds
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(ns.clone(), etcd);
            ctx.log.push(OperatorEvent::EtcdStarted {
                cluster: ctx.cluster().to_string(),
                hcp_namespace: ns.clone(),
                members: members.clone(),
                restored: was_restored,
                restore_took: took.filter(|_| was_restored),
            });
            ensure_etcd_tls(ctx.store, &ns, &pki)?;
            ensure_etcd_statefulset(ctx.store, &ns, addrs.len(), true)?;
            let init = match restoring.filter(|_| was_restored) {
                Some(url) => completed(url),
                None => Init::None,
            };
            ensure_etcd_pods(ctx, &ns, &members, &init)?;
            for (pod, addr) in addrs {
                ctx.forwards.set(&ns, &pod, ETCD_CLIENT_PORT, addr);
            }
        }
        Err((code, message)) => {
            let _ = std::fs::remove_dir_all(&dir);
            let record = {
                let mut init = ctx.etcds.init.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let r = init.entry(ns.clone()).or_default();
                r.restarts += 1;
                r.last_failure = Some((Instant::now(), code, message.clone()));
                r.clone()
            };
            ctx.log.push(OperatorEvent::EtcdRestoreFailed {
                cluster: ctx.cluster().to_string(),
                hcp_namespace: ns.clone(),
                reason: "Error".to_string(),
                message: message.clone(),
            });
            ensure_etcd_statefulset(ctx.store, &ns, members.len(), false)?;
            let init = Init::Failing {
                url: restoring.unwrap_or_default(),
                restarts: record.restarts,
                code,
                why: message,
            };
            ensure_etcd_pods(ctx, &ns, &members, &init)?;
        }
    }
    Ok(())
}

/// The etcd pods while `etcd-init` runs: Pending, the init container running, the failure of
/// an earlier run (if any) in its `lastState`.
fn restoring_pods(ctx: &Ctx<'_>, ns: &str, members: &[String], url: &str, record: &InitRecord) -> Result<(), ApiError> {
    ensure_etcd_statefulset(ctx.store, ns, members.len(), false)?;
    let init = Init::Running {
        url,
        restarts: record.restarts,
        last: record.last_failure.as_ref().map(|(_, c, w)| (*c, w.clone())),
    };
    ensure_etcd_pods(ctx, ns, members, &init)
}

/// The Secret `etcd-client-tls` and the ConfigMap `etcd-ca` of the running etcd: created when
/// absent and, like HyperShift's PKI reconciliation, put back when their data differs (e.g. a
/// restore copied another cluster's certificates into the namespace).
fn ensure_etcd_tls(store: &Store, ns: &str, pki: &EtcdPki) -> Result<(), ApiError> {
    let b64 = |s: &str| B64.encode(s);
    upsert_data(
        store,
        &registry::SECRET,
        ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": ETCD_CLIENT_SECRET, "namespace": ns},
            "type": "Opaque", "data": {ETCD_CLIENT_CERT_KEY: b64(&pki.client_cert_pem),
                ETCD_CLIENT_KEY_KEY: b64(&pki.client_key_pem), ETCD_CLIENT_CA_KEY: b64(&pki.ca_pem)}}),
    )?;
    upsert_data(
        store,
        &registry::CONFIG_MAP,
        ns,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ETCD_CA_CONFIGMAP, "namespace": ns},
            "data": {ETCD_CA_KEY: pki.ca_pem}}),
    )
}

fn upsert_data(store: &Store, kind: &KindInfo, ns: &str, obj: Value) -> Result<(), ApiError> {
    let name = name_of(&obj).to_string();
    let want = obj.get("data").cloned().unwrap_or_else(|| json!({}));
    match get(store, kind, ns, &name) {
        None => match store.create(kind, Some(ns), obj, &WriteOptions::default()) {
            Ok(_) => Ok(()),
            Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        },
        Some(live) => {
            let differs = want
                .as_object()
                .is_some_and(|w| w.iter().any(|(k, v)| live.pointer(&format!("/data/{k}")) != Some(v)));
            if differs {
                store.patch(
                    kind,
                    Some(ns),
                    &name,
                    &Patch::Merge(json!({"data": want})),
                    &WriteOptions::default(),
                )?;
            }
            Ok(())
        }
    }
}

/// Stop the etcd of namespaces that went away (or are terminating).
pub(crate) async fn stop_orphaned_etcds(ctx: &Ctx<'_>) {
    // A namespace that went away takes its pods, and the kubelet's record of them, with it.
    let lives = |ns: &String| {
        ctx.store
            .get(&registry::NAMESPACE, None, ns)
            .is_ok_and(|n| !is_deleting(&n))
    };
    ctx.etcds
        .init
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|ns, _| lives(ns));
    ctx.etcds
        .restoring
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|ns, task| {
            let keep = lives(ns);
            if !keep {
                task.abort();
            }
            keep
        });
    let gone: Vec<String> = ctx
        .etcds
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .keys()
        .filter(|ns| match ctx.store.get(&registry::NAMESPACE, None, ns) {
            Ok(obj) => is_deleting(&obj),
            Err(_) => true,
        })
        .cloned()
        .collect();
    for ns in gone {
        let Some(etcd) = ctx
            .etcds
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&ns)
        else {
            continue;
        };
        for pod in etcd.members() {
            ctx.forwards.remove(&ns, pod, ETCD_CLIENT_PORT);
        }
        etcd.stop().await;
        ctx.log.push(OperatorEvent::EtcdStopped {
            cluster: ctx.cluster().to_string(),
            hcp_namespace: ns,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Components
// ---------------------------------------------------------------------------------------------

fn ensure_components(ctx: &Ctx<'_>, hcp: &Value) -> Result<(), ApiError> {
    let ns = namespace_of(hcp);
    for (name, ha_replicas) in COMPONENTS {
        let replicas = if ha(hcp) { *ha_replicas } else { 1 };
        match get(ctx.store, &registry::DEPLOYMENT, ns, name) {
            Some(d) => {
                if d.pointer("/spec/replicas").and_then(Value::as_u64) != Some(replicas) && !is_deleting(&d) {
                    ctx.store.patch(
                        &registry::DEPLOYMENT,
                        Some(ns),
                        name,
                        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
                        &WriteOptions::default(),
                    )?;
                }
            }
            None => {
                ensure(
                    ctx,
                    &registry::DEPLOYMENT,
                    ns,
                    json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": name, "namespace": ns, "labels": {"app": name,
                            "hypershift.openshift.io/managed-by": "control-plane-operator"}},
                        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": {"app": name}},
                                "spec": {"containers": [{"name": name, "image": format!("quay.io/openshift/{name}:sim")}]}}}}),
                )?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Publishing: Services, Routes, routers
// ---------------------------------------------------------------------------------------------

fn upsert(ctx: &Ctx<'_>, kind: &KindInfo, ns: &str, obj: Value) -> Result<(), ApiError> {
    let name = name_of(&obj).to_string();
    match get(ctx.store, kind, ns, &name) {
        None => ensure(ctx, kind, ns, obj).map(|_| ()),
        Some(cur) if is_deleting(&cur) => Ok(()),
        Some(cur) => {
            let mut patch = Map::new();
            for k in ["spec"] {
                if let Some(v) = obj.get(k)
                    && cur.get(k) != Some(v)
                {
                    patch.insert(k.into(), v.clone());
                }
            }
            let want_labels = obj.pointer("/metadata/labels");
            let want_ann = obj.pointer("/metadata/annotations");
            if want_labels.is_some() && cur.pointer("/metadata/labels") != want_labels
                || want_ann.is_some() && cur.pointer("/metadata/annotations") != want_ann
            {
                patch.insert(
                    "metadata".into(),
                    json!({"labels": want_labels.cloned().unwrap_or(Value::Null),
                        "annotations": want_ann.cloned().unwrap_or(Value::Null)}),
                );
            }
            if !patch.is_empty() {
                ctx.store.patch(
                    kind,
                    Some(ns),
                    &name,
                    &Patch::Merge(Value::Object(patch)),
                    &WriteOptions::default(),
                )?;
            }
            if let Some(st) = obj.get("status")
                && ctx
                    .store
                    .get(kind, Some(ns), &name)
                    .ok()
                    .and_then(|c| c.get("status").cloned())
                    .as_ref()
                    != Some(st)
            {
                ctx.store.patch(
                    kind,
                    Some(ns),
                    &name,
                    &Patch::Merge(json!({"status": st})),
                    &WriteOptions::status(),
                )?;
            }
            Ok(())
        }
    }
}

fn delete_if_present(ctx: &Ctx<'_>, kind: &KindInfo, ns: &str, name: &str) -> Result<(), ApiError> {
    if let Some(o) = get(ctx.store, kind, ns, name) {
        super::delete_if_needed(ctx.store, kind, &o)?;
    }
    Ok(())
}

fn service(ns: &str, name: &str, type_: &str, lb_host: Option<&str>, annotations: Value, labels: Value) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
        "spec": {"type": type_, "selector": {"app": name}, "ports": [{"name": "https", "port": 443, "targetPort": 6443, "protocol": "TCP"}]}});
    if let Some(h) = lb_host {
        s["status"] = json!({"loadBalancer": {"ingress": [{"hostname": h}]}});
    }
    s
}

fn route(ns: &str, name: &str, host: &str, to: &str, labels: Value) -> Value {
    json!({"apiVersion": "route.openshift.io/v1", "kind": "Route",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"host": host, "to": {"kind": "Service", "name": to, "weight": 100},
            "tls": {"termination": "passthrough", "insecureEdgeTerminationPolicy": "None"},
            "wildcardPolicy": "None"}})
}

/// The host of a Route with no hostname in the strategy: the management cluster's ingress
/// assigns one under its own apps domain, which external-dns does not publish.
fn default_host(ctx: &Ctx<'_>, ns: &str, route: &str) -> String {
    format!("{route}-{ns}.apps.{}.sim", ctx.cluster())
}

fn publish(ctx: &Ctx<'_>, hcp: &Value) -> Result<(), ApiError> {
    let ns = namespace_of(hcp).to_string();
    let (public, private) = access(hcp);
    let hcp_label = |internal: bool, private_route: bool| {
        let mut l = json!({HCP_ROUTE_LABEL: ns});
        if internal {
            l[INTERNAL_ROUTE_LABEL] = json!("true");
        }
        if private_route {
            l[ROUTE_VISIBILITY_LABEL] = json!("private");
        }
        l
    };
    // A Route of the control plane; private ones carry the labels that keep them from
    // external-dns and mark them internal.
    let put_route = |name: &str, host: &str, to: &str, private: bool| {
        upsert(
            ctx,
            &registry::ROUTE,
            &ns,
            route(&ns, name, host, to, hcp_label(private, private)),
        )
    };
    let kas = strategy(hcp, "APIServer");
    // The kube-apiserver's Services, and an internal load balancer for private access.
    let kas_service = |name: &str, type_: &str, lb: Option<&str>, ann: Value| {
        upsert(
            ctx,
            &registry::SERVICE,
            &ns,
            service(&ns, name, type_, lb, ann, json!({"app": "kube-apiserver"})),
        )
    };
    let internal_lb = json!({"service.beta.kubernetes.io/aws-load-balancer-internal": "true"});
    match kas.type_.as_str() {
        "LoadBalancer" => {
            // kas.ReconcileService: a public LB carries the external-dns hostname.
            if public {
                let mut ann = json!({"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"});
                if let Some(h) = &kas.hostname {
                    ann[EXTERNAL_DNS_HOSTNAME_ANNOTATION] = json!(h);
                }
                let lb = ctx.opts.load_balancer_hostname(&ns, "kube-apiserver");
                kas_service("kube-apiserver", "LoadBalancer", Some(&lb), ann)?;
            } else {
                kas_service("kube-apiserver", "ClusterIP", None, json!({}))?;
            }
            if private {
                let lb = ctx.opts.load_balancer_hostname(&ns, "kube-apiserver-private");
                kas_service("kube-apiserver-private", "LoadBalancer", Some(&lb), internal_lb.clone())?;
            }
            delete_if_present(ctx, &registry::ROUTE, &ns, "kube-apiserver")?;
        }
        _ => {
            kas_service("kube-apiserver", "ClusterIP", None, json!({}))?;
            if public {
                let host = kas.hostname.clone().unwrap_or_else(|| default_host(ctx, &ns, "api"));
                put_route("kube-apiserver", &host, "kube-apiserver", false)?;
            } else if let Some(host) = &kas.hostname {
                put_route("kube-apiserver-private", host, "kube-apiserver", true)?;
            }
        }
    }
    put_route(
        "kube-apiserver-internal",
        &format!("api.{}.hypershift.local", name_of(hcp)),
        "kube-apiserver",
        true,
    )?;
    for (service_name, route_name, svc) in [
        ("OAuthServer", "oauth", "oauth-openshift"),
        ("Konnectivity", "konnectivity-server", "konnectivity-server"),
        ("Ignition", "ignition-server", "ignition-server-proxy"),
    ] {
        let st = strategy(hcp, service_name);
        if st.type_ != "Route" {
            continue;
        }
        let host = st
            .hostname
            .clone()
            .unwrap_or_else(|| default_host(ctx, &ns, route_name));
        match (public, route_name) {
            (true, _) => put_route(route_name, &host, svc, false)?,
            (false, "oauth") => put_route("oauth-private", &host, svc, true)?,
            (false, _) => put_route(route_name, &host, svc, true)?,
        }
    }
    // The HCP routers (reconcileHCPRouterServices).
    let router = |name: &str, private: bool, ann: Value| {
        let lb = ctx.opts.router_hostname(&ns, private);
        upsert(
            ctx,
            &registry::SERVICE,
            &ns,
            service(
                &ns,
                name,
                "LoadBalancer",
                Some(&lb),
                ann,
                json!({"app": "private-router"}),
            ),
        )
    };
    if public && kas.type_ == "Route" && kas.hostname.is_some() {
        router("router", false, json!({}))?;
    }
    if private {
        router("private-router", true, internal_lb)?;
    }
    admit_routes(ctx, &ns)
}

/// `AdmitHCPManagedRoutes`: the CPO admits its labelled routes itself, with the router load
/// balancer as canonical hostname (what external-dns points a route's CNAME at).
fn admit_routes(ctx: &Ctx<'_>, ns: &str) -> Result<(), ApiError> {
    for r in list(ctx.store, &registry::ROUTE, Some(ns)) {
        if r.pointer(&format!("/metadata/labels/{}", HCP_ROUTE_LABEL.replace('/', "~1")))
            .is_none()
            || is_deleting(&r)
        {
            continue;
        }
        let internal = r
            .pointer(&format!("/metadata/labels/{}", INTERNAL_ROUTE_LABEL.replace('/', "~1")))
            .is_some();
        let canonical = ctx.opts.router_hostname(ns, internal);
        let host = r.pointer("/spec/host").cloned().unwrap_or(Value::Null);
        let want = json!({"ingress": [{"host": host, "routerName": if internal { "private-router" } else { "router" },
            "routerCanonicalHostname": canonical, "wildcardPolicy": "None",
            "conditions": [{"type": "Admitted", "status": "True"}]}]});
        if r.get("status") != Some(&want) {
            ctx.store.patch(
                &registry::ROUTE,
                Some(ns),
                name_of(&r),
                &Patch::Merge(json!({"status": want})),
                &WriteOptions::status(),
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// AWS PrivateLink
// ---------------------------------------------------------------------------------------------

/// `PrivateServiceObserver` and the CPO's `AWSEndpointServiceReconciler`: one
/// AWSEndpointService per internal load balancer of a private control plane, with the CPO's
/// finalizer; once the HO published the endpoint service, the endpoint and the ExternalName
/// Services that carry the private hostnames to external-dns.
fn endpoint_services(ctx: &Ctx<'_>, hcp: &Value) -> Result<(), ApiError> {
    let ns = namespace_of(hcp).to_string();
    let (_, private) = access(hcp);
    if !private {
        return Ok(());
    }
    let cluster = annotation(hcp, CLUSTER_ANNOTATION).unwrap_or_default().to_string();
    for svc in ["private-router", "kube-apiserver-private"] {
        let Some(s) = get(ctx.store, &registry::SERVICE, &ns, svc) else {
            continue;
        };
        let Some(lb) = s
            .pointer("/status/loadBalancer/ingress/0/hostname")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let lb_name = lb.split('.').next().unwrap_or(lb);
        upsert(
            ctx,
            &registry::AWS_ENDPOINT_SERVICE,
            &ns,
            json!({"apiVersion": "hypershift.openshift.io/v1beta1", "kind": "AWSEndpointService",
                "metadata": {"name": svc, "namespace": ns, "annotations": {CLUSTER_ANNOTATION: cluster}},
                "spec": {"networkLoadBalancerName": lb_name}}),
        )?;
    }
    for es in list(ctx.store, &registry::AWS_ENDPOINT_SERVICE, Some(&ns)) {
        if is_deleting(&es) {
            remove_finalizer(ctx.store, &registry::AWS_ENDPOINT_SERVICE, &es, CPO_ENDPOINT_FINALIZER)?;
            continue;
        }
        let es = add_finalizer(ctx.store, &registry::AWS_ENDPOINT_SERVICE, &es, CPO_ENDPOINT_FINALIZER)?;
        let Some(service_name) = es.pointer("/status/endpointServiceName").and_then(Value::as_str) else {
            continue;
        };
        let endpoint_dns = format!("vpce-{}.{service_name}", name_of(&es));
        if es.pointer("/status/endpointID").is_none() {
            ctx.store.patch(
                &registry::AWS_ENDPOINT_SERVICE,
                Some(&ns),
                name_of(&es),
                &Patch::Merge(json!({"status": {"endpointID": format!("vpce-{}", &uuid::Uuid::new_v4().simple().to_string()[..17]),
                    "dnsNames": [endpoint_dns]}})),
                &WriteOptions::status(),
            )?;
        }
        if let Some(cur) = get(ctx.store, &registry::AWS_ENDPOINT_SERVICE, &ns, name_of(&es)) {
            set_conditions(
                ctx.store,
                &registry::AWS_ENDPOINT_SERVICE,
                &cur,
                &[Condition::new("AWSEndpointAvailable", "True", "AWSSuccess", "")],
            )?;
        }
        // reconcileExternalNameServices: the private hostnames, for external-dns.
        if name_of(&es) == "private-router" {
            for (svc, service_name) in [
                ("kube-apiserver-private-external", "APIServer"),
                ("oauth-private-external", "OAuthServer"),
            ] {
                let st = strategy(hcp, service_name);
                let Some(host) = st.hostname.filter(|_| st.type_ == "Route") else {
                    continue;
                };
                upsert(
                    ctx,
                    &registry::SERVICE,
                    &ns,
                    json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": svc, "namespace": ns,
                            "labels": {"hypershift.openshift.io/external-private-service": "true"},
                            "annotations": {EXTERNAL_DNS_HOSTNAME_ANNOTATION: host}},
                        "spec": {"type": "ExternalName", "externalName": endpoint_dns}}),
                )?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Kubeconfig and recovery
// ---------------------------------------------------------------------------------------------

/// `admin-kubeconfig`: a kubeconfig for the published API endpoint.
fn admin_kubeconfig(store: &Store, hcp: &Value) -> Result<(), ApiError> {
    let ns = namespace_of(hcp);
    let Some(ep) = hcp.pointer("/status/controlPlaneEndpoint") else {
        return Ok(());
    };
    let host = ep.get("host").and_then(Value::as_str).unwrap_or_default();
    let port = ep.get("port").and_then(Value::as_u64).unwrap_or(443);
    if host.is_empty() {
        return Ok(());
    }
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: cluster\n  cluster:\n    server: https://{host}:{port}\ncontexts:\n- name: admin\n  context:\n    cluster: cluster\n    user: admin\ncurrent-context: admin\nusers:\n- name: admin\n  user: {{}}\n"
    );
    upsert_data(
        store,
        &registry::SECRET,
        ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "admin-kubeconfig", "namespace": ns},
            "type": "Opaque", "data": {"kubeconfig": B64.encode(kubeconfig)}}),
    )
}

/// `reconcileClusterRecovery`: a control plane restored from a backup recovers its hosted
/// cluster (upstream resets the monitoring stack's volumes, `recovery.RecoverMonitoringStack`)
/// and reports it on the HCP. The simulated hosted cluster has no monitoring stack: recovery
/// finishes once the control plane is available.
fn recovery(store: &Store, hcp: &Value) -> Result<(), ApiError> {
    if annotation(hcp, RESTORED_FROM_BACKUP_ANNOTATION).is_none() {
        return Ok(());
    }
    let Some(cur) = get(store, &registry::HOSTED_CONTROL_PLANE, namespace_of(hcp), name_of(hcp)) else {
        return Ok(());
    };
    let finished = Condition::read(&cur, "Available").is_some_and(|c| c.status == "True");
    let c = if finished {
        Condition::new(
            "HostedClusterRestoredFromBackup",
            "True",
            "RecoveryFinished",
            "Hosted cluster recovery finished",
        )
    } else {
        Condition::new(
            "HostedClusterRestoredFromBackup",
            "False",
            "RecoveryFinished",
            "Hosted cluster recovery not finished yet",
        )
    };
    set_conditions(store, &registry::HOSTED_CONTROL_PLANE, &cur, &[c]).map(|_| ())
}
