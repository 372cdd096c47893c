//! Cluster API in a hosted control plane's namespace: the conversion webhook HyperShift serves
//! for the CAPI CRDs, and what the `cluster-api` (CAPI manager) and `capi-provider` (CAPA)
//! Deployments do on the DR path.
//!
//! **Conversion.** `hypershift install` (`cmd/install/install.go`, `assets/crds/assets.go`)
//! stores the CAPI core kinds as `v1beta2` and adds a `Webhook` conversion served by the HO
//! (`/convert`); HyperShift itself still writes `core/v1beta1`. [`convert`] maps between the
//! two the way Cluster API's `internal/api/core/v1beta1/conversion.go` does for the fields a
//! HyperShift control plane uses: references (`apiVersion` ↔ `apiGroup`), `nodeRef`, the
//! Machine deletion timeouts, `minReadySeconds`, the MachineDeployment strategy, and the
//! v1beta1/v1beta2 conditions and replica counters. As upstream, a down-conversion stores the
//! hub object in the `cluster.x-k8s.io/conversion-data` annotation so that a round trip loses
//! nothing.
//!
//! **Controllers**, each only while its Deployment has a running pod, and never for a paused
//! cluster or object (`cluster.spec.paused`, annotation `cluster.x-k8s.io/paused`; CAPI's
//! `annotations.IsPaused`):
//! - Cluster (`internal/controllers/cluster`): finalizer `cluster.cluster.x-k8s.io`; deleting
//!   it deletes its MachineDeployments, MachineSets and Machines, and the finalizer goes once
//!   they are gone;
//! - Machine (`internal/controllers/machine`): finalizer `machine.cluster.x-k8s.io`; deleting
//!   it deletes its infrastructure (the AWSMachine) first;
//! - AWSMachine (CAPA `awsmachine_controller.go`): finalizer
//!   `awsmachine.infrastructure.cluster.x-k8s.io`; deleting it **terminates the EC2
//!   instance**, and with it the Node of the hosted cluster;
//! - AWSCluster: finalizer `awscluster.infrastructure.cluster.x-k8s.io`, removed on deletion.
//!
//! - MachineHealthCheck (`internal/controllers/machinehealthcheck`, CAPI v1.13): for an
//!   unpaused Cluster whose hosted API answers (its Nodes are read through it), a selected
//!   Machine not annotated `cluster.x-k8s.io/skip-remediation` or paused is unhealthy when its
//!   Node is gone, has had a matching unhealthy condition for longer than its timeout (since
//!   the condition's `lastTransitionTime`), or never appeared within `nodeStartupTimeout`;
//!   when the Machines not healthy (unhealthy, still within their timeout, or without a Node)
//!   are at most `maxUnhealthy`, the unhealthy ones are marked for remediation
//!   (`HealthCheckSucceeded=False`, `OwnerRemediated=False`), else `RemediationAllowed=False`;
//! - MachineSet (`machineset_controller.go` `reconcileUnhealthyMachines`, `syncReplicas`):
//!   deletes the Machines marked for remediation, and creates Machines (with their AWSMachine
//!   and a new instance) until it has its replicas;
//! - Machine's `status.nodeRef`: the hosted cluster's Node whose `spec.providerID` is the
//!   Machine's.
//!
//! A deletion made while these controllers still run is recorded as a hazard
//! ([`super::OperatorEvent::MachinesDeletedWithControllersRunning`]): on a real cluster it
//! races the controllers, which may terminate instances the destination now uses.

use serde_json::{Map, Value, json};

use super::aws::{Ec2, Instance};
use super::hosted::{HostedStores, ready_transition};
use super::workloads::deployment_running;
use super::{
    CAPI_PAUSED_ANNOTATION, CLUSTER_ANNOTATION, Condition, NODE_POOL_LABEL, annotation, delete_if_needed,
    finalizers_of, is_deleting, list, name_of, namespace_of, remove_finalizer, set_conditions,
};
use crate::clock::{SimClock, parse_go_duration};
use crate::kube::error::ApiError;
use crate::kube::patch::Patch;
use crate::kube::registry::{self, KindInfo};
use crate::kube::store::{Store, WriteOptions};

/// CAPI's annotation that keeps a Machine out of a MachineHealthCheck's remediation
/// (`clusterv1.MachineSkipRemediationAnnotation`).
pub const SKIP_REMEDIATION_ANNOTATION: &str = "cluster.x-k8s.io/skip-remediation";

/// `ClusterFinalizer`.
pub const CLUSTER_FINALIZER: &str = "cluster.cluster.x-k8s.io";
/// `MachineFinalizer`.
pub const MACHINE_FINALIZER: &str = "machine.cluster.x-k8s.io";
/// CAPA's AWSMachine finalizer.
pub const AWS_MACHINE_FINALIZER: &str = "awsmachine.infrastructure.cluster.x-k8s.io";
/// CAPA's AWSCluster finalizer.
pub const AWS_CLUSTER_FINALIZER: &str = "awscluster.infrastructure.cluster.x-k8s.io";
/// Where a down-conversion keeps the hub object (`utilconversion.DataAnnotation`).
pub const CONVERSION_DATA_ANNOTATION: &str = "cluster.x-k8s.io/conversion-data";

/// The group CAPI core kinds live in.
pub const CAPI_GROUP: &str = "cluster.x-k8s.io";

/// The version a referenced group is read in, to turn a `v1beta2` contract reference
/// (`apiGroup`) back into a `v1beta1` one (`apiVersion`): CAPI resolves it from the referenced
/// CRD's contract label; these are the versions HyperShift's referenced kinds are served in.
fn ref_version(group: &str) -> &'static str {
    match group {
        "hypershift.openshift.io" => "v1beta1",
        _ => "v1beta2",
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(*k))
}

fn put(v: &mut Value, path: &[&str], value: Value) {
    if value.is_null() {
        return;
    }
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        if !cur.get(*k).is_some_and(Value::is_object) {
            cur[*k] = json!({});
        }
        cur = &mut cur[*k];
    }
    if let Some(last) = path.last() {
        cur[*last] = value;
    }
}

fn take(v: &Value, path: &[&str]) -> Value {
    get(v, path).cloned().unwrap_or(Value::Null)
}

/// `ObjectReference` → `ContractVersionedObjectReference`.
fn ref_up(r: &Value) -> Value {
    if !r.is_object() {
        return Value::Null;
    }
    let group = r
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|a| registry::split_api_version(a).0.to_string())
        .unwrap_or_default();
    json!({"apiGroup": group, "kind": r.get("kind").cloned().unwrap_or(Value::Null),
        "name": r.get("name").cloned().unwrap_or(Value::Null)})
}

/// `ContractVersionedObjectReference` → `ObjectReference` in `namespace`.
fn ref_down(r: &Value, namespace: &Value) -> Value {
    if !r.is_object() {
        return Value::Null;
    }
    let group = r.get("apiGroup").and_then(Value::as_str).unwrap_or_default();
    let api_version = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/{}", ref_version(group))
    };
    json!({"apiVersion": api_version, "kind": r.get("kind").cloned().unwrap_or(Value::Null),
        "name": r.get("name").cloned().unwrap_or(Value::Null), "namespace": namespace})
}

/// A Go duration string (`10s`, `5m0s`) → whole seconds.
fn seconds_of(d: &Value) -> Value {
    d.as_str()
        .and_then(crate::kube::crd::cel_k8s::parse_go_duration)
        .map(|d| json!(d.num_seconds()))
        .unwrap_or(Value::Null)
}

/// Whole seconds → a Go duration string.
fn duration_of(s: &Value) -> Value {
    s.as_i64().map(|s| json!(format!("{s}s"))).unwrap_or(Value::Null)
}

fn machine_spec_up(s: &Value, out: &mut Value) {
    for k in [
        "clusterName",
        "version",
        "providerID",
        "failureDomain",
        "readinessGates",
        "taints",
    ] {
        put(out, &[k], take(s, &[k]));
    }
    put(
        out,
        &["bootstrap", "dataSecretName"],
        take(s, &["bootstrap", "dataSecretName"]),
    );
    put(
        out,
        &["bootstrap", "configRef"],
        ref_up(&take(s, &["bootstrap", "configRef"])),
    );
    if out.get("bootstrap").is_none() && s.get("bootstrap").is_some() {
        out["bootstrap"] = json!({});
    }
    put(out, &["infrastructureRef"], ref_up(&take(s, &["infrastructureRef"])));
    for (from, to) in [
        ("nodeDrainTimeout", "nodeDrainTimeoutSeconds"),
        ("nodeVolumeDetachTimeout", "nodeVolumeDetachTimeoutSeconds"),
        ("nodeDeletionTimeout", "nodeDeletionTimeoutSeconds"),
    ] {
        put(out, &["deletion", to], seconds_of(&take(s, &[from])));
    }
}

fn machine_spec_down(s: &Value, namespace: &Value, out: &mut Value) {
    for k in [
        "clusterName",
        "version",
        "providerID",
        "failureDomain",
        "readinessGates",
        "taints",
    ] {
        put(out, &[k], take(s, &[k]));
    }
    put(
        out,
        &["bootstrap", "dataSecretName"],
        take(s, &["bootstrap", "dataSecretName"]),
    );
    put(
        out,
        &["bootstrap", "configRef"],
        ref_down(&take(s, &["bootstrap", "configRef"]), namespace),
    );
    if out.get("bootstrap").is_none() && s.get("bootstrap").is_some() {
        out["bootstrap"] = json!({});
    }
    put(
        out,
        &["infrastructureRef"],
        ref_down(&take(s, &["infrastructureRef"]), namespace),
    );
    for (to, from) in [
        ("nodeDrainTimeout", "nodeDrainTimeoutSeconds"),
        ("nodeVolumeDetachTimeout", "nodeVolumeDetachTimeoutSeconds"),
        ("nodeDeletionTimeout", "nodeDeletionTimeoutSeconds"),
    ] {
        put(out, &[to], duration_of(&take(s, &["deletion", from])));
    }
}

fn template_up(t: &Value, min_ready: Value, out: &mut Value) {
    put(out, &["metadata"], take(t, &["metadata"]));
    let mut spec = json!({});
    machine_spec_up(&take(t, &["spec"]), &mut spec);
    put(&mut spec, &["minReadySeconds"], min_ready);
    out["spec"] = spec;
}

fn template_down(t: &Value, namespace: &Value, out: &mut Value) -> Value {
    put(out, &["metadata"], take(t, &["metadata"]));
    let mut spec = json!({});
    machine_spec_down(&take(t, &["spec"]), namespace, &mut spec);
    out["spec"] = spec;
    take(t, &["spec", "minReadySeconds"])
}

/// Convert one CAPI core object between `v1beta1` and `v1beta2`.
pub fn convert(obj: &Value, to_version: &str) -> Result<Value, String> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    let from = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|a| registry::split_api_version(a).1.to_string())
        .unwrap_or_default();
    if from == to_version {
        return Ok(obj.clone());
    }
    match (from.as_str(), to_version) {
        ("v1beta1", "v1beta2") => Ok(up(&kind, obj)),
        ("v1beta2", "v1beta1") => Ok(down(&kind, obj)),
        _ => Err(format!("cannot convert {kind} from {from} to {to_version}")),
    }
}

fn up(kind: &str, obj: &Value) -> Value {
    let mut meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    // A down-conversion kept the hub object: start from it (utilconversion.UnmarshalData).
    let hub = annotation(obj, CONVERSION_DATA_ANNOTATION)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .unwrap_or_else(|| json!({}));
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove(CONVERSION_DATA_ANNOTATION);
        if a.is_empty()
            && let Some(m) = meta.as_object_mut()
        {
            m.remove("annotations");
        }
    }
    let s = take(obj, &["spec"]);
    let st = take(obj, &["status"]);
    let mut spec = hub.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut status = hub.get("status").cloned().unwrap_or_else(|| json!({}));
    match kind {
        "Cluster" => {
            for k in ["paused", "clusterNetwork", "availabilityGates", "topology"] {
                put(&mut spec, &[k], take(&s, &[k]));
            }
            // v1beta2's APIEndpoint is `omitzero`: an unset endpoint (`{"host": "", "port": 0}`
            // in v1beta1) is left out rather than failing its minLength/minimum.
            let ep = take(&s, &["controlPlaneEndpoint"]);
            if ep.get("host").and_then(Value::as_str).is_some_and(|h| !h.is_empty()) {
                put(&mut spec, &["controlPlaneEndpoint"], ep);
            }
            put(&mut spec, &["controlPlaneRef"], ref_up(&take(&s, &["controlPlaneRef"])));
            put(
                &mut spec,
                &["infrastructureRef"],
                ref_up(&take(&s, &["infrastructureRef"])),
            );
            put(
                &mut status,
                &["initialization", "infrastructureProvisioned"],
                take(&st, &["infrastructureReady"]),
            );
            put(
                &mut status,
                &["initialization", "controlPlaneInitialized"],
                take(&st, &["controlPlaneReady"]),
            );
        }
        "Machine" => {
            machine_spec_up(&s, &mut spec);
            put(
                &mut status,
                &["nodeRef"],
                take(&st, &["nodeRef", "name"])
                    .as_str()
                    .map(|n| json!({"name": n}))
                    .unwrap_or(Value::Null),
            );
            put(
                &mut status,
                &["initialization", "bootstrapDataSecretCreated"],
                take(&st, &["bootstrapReady"]),
            );
            put(
                &mut status,
                &["initialization", "infrastructureProvisioned"],
                take(&st, &["infrastructureReady"]),
            );
            for k in [
                "addresses",
                "nodeInfo",
                "lastUpdated",
                "certificatesExpiryDate",
                "deletion",
            ] {
                put(&mut status, &[k], take(&st, &[k]));
            }
        }
        "MachineSet" => {
            for k in ["clusterName", "replicas", "selector"] {
                put(&mut spec, &[k], take(&s, &[k]));
            }
            put(&mut spec, &["deletion", "order"], take(&s, &["deletePolicy"]));
            put(&mut spec, &["machineNaming"], take(&s, &["machineNamingStrategy"]));
            let mut t = json!({});
            template_up(&take(&s, &["template"]), take(&s, &["minReadySeconds"]), &mut t);
            spec["template"] = t;
            for k in ["readyReplicas", "availableReplicas", "fullyLabeledReplicas"] {
                put(&mut status, &["deprecated", "v1beta1", k], take(&st, &[k]));
            }
        }
        "MachineDeployment" => {
            for k in ["clusterName", "replicas", "selector", "paused"] {
                put(&mut spec, &[k], take(&s, &[k]));
            }
            put(&mut spec, &["rollout", "strategy"], take(&s, &["strategy"]));
            put(&mut spec, &["rollout", "after"], take(&s, &["rolloutAfter"]));
            put(&mut spec, &["machineNaming"], take(&s, &["machineNamingStrategy"]));
            let mut t = json!({});
            template_up(&take(&s, &["template"]), take(&s, &["minReadySeconds"]), &mut t);
            spec["template"] = t;
            for k in [
                "readyReplicas",
                "availableReplicas",
                "updatedReplicas",
                "unavailableReplicas",
            ] {
                put(&mut status, &["deprecated", "v1beta1", k], take(&st, &[k]));
            }
        }
        _ => {}
    }
    for k in ["phase", "observedGeneration", "replicas", "selector", "failureDomains"] {
        put(&mut status, &[k], take(&st, &[k]));
    }
    put(
        &mut status,
        &["deprecated", "v1beta1", "conditions"],
        take(&st, &["conditions"]),
    );
    put(
        &mut status,
        &["deprecated", "v1beta1", "failureReason"],
        take(&st, &["failureReason"]),
    );
    put(
        &mut status,
        &["deprecated", "v1beta1", "failureMessage"],
        take(&st, &["failureMessage"]),
    );
    put(&mut status, &["conditions"], take(&st, &["v1beta2", "conditions"]));
    for k in ["readyReplicas", "availableReplicas", "upToDateReplicas"] {
        put(&mut status, &[k], take(&st, &["v1beta2", k]));
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(format!("{CAPI_GROUP}/v1beta2")));
    out.insert("kind".into(), json!(kind));
    out.insert("metadata".into(), meta);
    out.insert("spec".into(), spec);
    if status.as_object().is_some_and(|m| !m.is_empty()) || obj.get("status").is_some() {
        out.insert("status".into(), status);
    }
    Value::Object(out)
}

fn down(kind: &str, obj: &Value) -> Value {
    let mut meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let namespace = take(&meta, &["namespace"]);
    // Keep the hub object for the way back (utilconversion.MarshalData).
    let hub = json!({"spec": take(obj, &["spec"]), "status": take(obj, &["status"])});
    put(
        &mut meta,
        &["annotations", CONVERSION_DATA_ANNOTATION],
        json!(hub.to_string()),
    );
    let s = take(obj, &["spec"]);
    let st = take(obj, &["status"]);
    let mut spec = json!({});
    let mut status = json!({});
    match kind {
        "Cluster" => {
            for k in ["paused", "clusterNetwork", "availabilityGates", "topology"] {
                put(&mut spec, &[k], take(&s, &[k]));
            }
            // v1beta2's APIEndpoint is `omitzero`: an unset endpoint (`{"host": "", "port": 0}`
            // in v1beta1) is left out rather than failing its minLength/minimum.
            let ep = take(&s, &["controlPlaneEndpoint"]);
            if ep.get("host").and_then(Value::as_str).is_some_and(|h| !h.is_empty()) {
                put(&mut spec, &["controlPlaneEndpoint"], ep);
            }
            put(
                &mut spec,
                &["controlPlaneRef"],
                ref_down(&take(&s, &["controlPlaneRef"]), &namespace),
            );
            put(
                &mut spec,
                &["infrastructureRef"],
                ref_down(&take(&s, &["infrastructureRef"]), &namespace),
            );
            put(
                &mut status,
                &["infrastructureReady"],
                take(&st, &["initialization", "infrastructureProvisioned"]),
            );
            put(
                &mut status,
                &["controlPlaneReady"],
                take(&st, &["initialization", "controlPlaneInitialized"]),
            );
        }
        "Machine" => {
            machine_spec_down(&s, &namespace, &mut spec);
            put(
                &mut status,
                &["nodeRef"],
                take(&st, &["nodeRef", "name"])
                    .as_str()
                    .map(|n| json!({"apiVersion": "v1", "kind": "Node", "name": n}))
                    .unwrap_or(Value::Null),
            );
            put(
                &mut status,
                &["bootstrapReady"],
                take(&st, &["initialization", "bootstrapDataSecretCreated"]),
            );
            put(
                &mut status,
                &["infrastructureReady"],
                take(&st, &["initialization", "infrastructureProvisioned"]),
            );
            for k in [
                "addresses",
                "nodeInfo",
                "lastUpdated",
                "certificatesExpiryDate",
                "deletion",
            ] {
                put(&mut status, &[k], take(&st, &[k]));
            }
        }
        "MachineSet" => {
            for k in ["clusterName", "replicas", "selector"] {
                put(&mut spec, &[k], take(&s, &[k]));
            }
            put(&mut spec, &["deletePolicy"], take(&s, &["deletion", "order"]));
            put(&mut spec, &["machineNamingStrategy"], take(&s, &["machineNaming"]));
            let mut t = json!({});
            let min_ready = template_down(&take(&s, &["template"]), &namespace, &mut t);
            spec["template"] = t;
            put(&mut spec, &["minReadySeconds"], min_ready);
            for k in ["readyReplicas", "availableReplicas", "fullyLabeledReplicas"] {
                put(&mut status, &[k], take(&st, &["deprecated", "v1beta1", k]));
            }
        }
        "MachineDeployment" => {
            for k in ["clusterName", "replicas", "selector", "paused"] {
                put(&mut spec, &[k], take(&s, &[k]));
            }
            put(&mut spec, &["strategy"], take(&s, &["rollout", "strategy"]));
            put(&mut spec, &["rolloutAfter"], take(&s, &["rollout", "after"]));
            put(&mut spec, &["machineNamingStrategy"], take(&s, &["machineNaming"]));
            let mut t = json!({});
            let min_ready = template_down(&take(&s, &["template"]), &namespace, &mut t);
            spec["template"] = t;
            put(&mut spec, &["minReadySeconds"], min_ready);
            for k in [
                "readyReplicas",
                "availableReplicas",
                "updatedReplicas",
                "unavailableReplicas",
            ] {
                put(&mut status, &[k], take(&st, &["deprecated", "v1beta1", k]));
            }
        }
        _ => {}
    }
    for k in ["phase", "observedGeneration", "replicas", "selector", "failureDomains"] {
        put(&mut status, &[k], take(&st, &[k]));
    }
    put(
        &mut status,
        &["conditions"],
        take(&st, &["deprecated", "v1beta1", "conditions"]),
    );
    put(
        &mut status,
        &["failureReason"],
        take(&st, &["deprecated", "v1beta1", "failureReason"]),
    );
    put(
        &mut status,
        &["failureMessage"],
        take(&st, &["deprecated", "v1beta1", "failureMessage"]),
    );
    put(&mut status, &["v1beta2", "conditions"], take(&st, &["conditions"]));
    for k in ["readyReplicas", "availableReplicas", "upToDateReplicas"] {
        put(&mut status, &["v1beta2", k], take(&st, &[k]));
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(format!("{CAPI_GROUP}/v1beta1")));
    out.insert("kind".into(), json!(kind));
    out.insert("metadata".into(), meta);
    out.insert("spec".into(), spec);
    if obj.get("status").is_some() {
        out.insert("status".into(), status);
    }
    Value::Object(out)
}

/// The CAPI kind `base` in `version` when the API serves it, else in the version it prefers.
/// Each client uses the version it was built against: the CAPI controllers (CAPI ≥ 1.11)
/// `v1beta2`; the HyperShift operator at the pinned commit `v1beta1`
/// (`hostedcluster_controller.go` imports `sigs.k8s.io/cluster-api/api/core/v1beta1`). When a
/// cluster stops serving `v1beta1`, the sim's HO falls back to the preferred version, as an HO
/// built for that CAPI would.
pub fn kind_in(store: &Store, base: &KindInfo, version: &str) -> KindInfo {
    let mut k = base.clone();
    let registry = store.registry();
    let versions = registry.versions_of(&base.group);
    for v in std::iter::once(version.to_string()).chain(versions) {
        k.version = v;
        if let Ok(found) = store.kind(&k) {
            return (*found).clone();
        }
    }
    base.clone()
}

/// An object the HO builds in `v1beta1`, in the version of `kind`.
pub fn in_version_of(kind: &KindInfo, obj: Value) -> Value {
    if kind.version == "v1beta1" || kind.group != CAPI_GROUP {
        return obj;
    }
    convert(&obj, &kind.version).unwrap_or(obj)
}

/// Whether CAPI treats `obj` as paused: its Cluster has `spec.paused`, or it carries the
/// paused annotation (`annotations.IsPaused`).
fn paused(cluster: Option<&Value>, obj: &Value) -> bool {
    cluster.is_some_and(|c| c.pointer("/spec/paused").and_then(Value::as_bool) == Some(true))
        || annotation(obj, CAPI_PAUSED_ANNOTATION).is_some()
}

/// What one pass of the CAPI controllers of `ns` did that matters to a test.
#[derive(Debug, Default)]
pub struct Pass {
    /// Instances terminated (provider IDs).
    pub terminated: Vec<String>,
}

/// What a pass of Cluster API meets besides its own namespace.
#[derive(Debug, Clone, Copy)]
pub struct CapiEnv<'a> {
    /// The account's instances.
    pub ec2: &'a Ec2,
    /// The hosted clusters' APIs (Nodes).
    pub hosted: &'a HostedStores,
    /// The clock health checks time out on.
    pub clock: SimClock,
    /// The AWS region (new instances' provider IDs).
    pub region: &'a str,
}

/// One pass of the CAPI manager and the AWS provider of control-plane namespace `ns`.
pub fn reconcile(store: &Store, env: &CapiEnv<'_>, ns: &str) -> Result<Pass, ApiError> {
    let ec2 = env.ec2;
    let mut pass = Pass::default();
    let manager = deployment_running(store, ns, "cluster-api");
    let provider = deployment_running(store, ns, "capi-provider");
    let cluster_kind = kind_in(store, &registry::CAPI_CLUSTER, "v1beta2");
    let machine_kind = kind_in(store, &registry::MACHINE, "v1beta2");
    let clusters = list(store, &cluster_kind, Some(ns));
    let cluster = clusters.first();
    if provider {
        for m in list(store, &registry::AWS_MACHINE, Some(ns)) {
            if paused(cluster, &m) {
                continue;
            }
            if is_deleting(&m) {
                if let Some(id) = m.pointer("/spec/providerID").and_then(Value::as_str)
                    && ec2.terminate(id)
                {
                    pass.terminated.push(id.to_string());
                }
                remove_finalizer(store, &registry::AWS_MACHINE, &m, AWS_MACHINE_FINALIZER)?;
            } else if !finalizers_of(&m).iter().any(|f| f == AWS_MACHINE_FINALIZER) {
                super::add_finalizer(store, &registry::AWS_MACHINE, &m, AWS_MACHINE_FINALIZER)?;
            }
        }
        for c in list(store, &registry::AWS_CLUSTER, Some(ns)) {
            if is_deleting(&c) && !paused(cluster, &c) {
                remove_finalizer(store, &registry::AWS_CLUSTER, &c, AWS_CLUSTER_FINALIZER)?;
            }
        }
    }
    if !manager {
        return Ok(pass);
    }
    // cluster_controller.go (`Reconcile`): after the pause check, the finalizer goes on first,
    // so that deleting the Cluster waits for its descendants.
    if let Some(c) = cluster
        && !is_deleting(c)
        && !paused(None, c)
        && !finalizers_of(c).iter().any(|f| f == CLUSTER_FINALIZER)
    {
        super::add_finalizer(store, &cluster_kind, c, CLUSTER_FINALIZER)?;
    }
    for m in list(store, &machine_kind, Some(ns)) {
        if paused(cluster, &m) {
            continue;
        }
        if is_deleting(&m) {
            // reconcileDelete: the infrastructure goes first, then the finalizer.
            let infra = m
                .pointer("/spec/infrastructureRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let infra_left = match super::get(store, &registry::AWS_MACHINE, ns, infra) {
                Some(am) => delete_if_needed(store, &registry::AWS_MACHINE, &am)?,
                None => false,
            };
            if !infra_left {
                remove_finalizer(store, &machine_kind, &m, MACHINE_FINALIZER)?;
            }
        }
    }
    let key = hosted_cluster_of(store, ns);
    let hosted = key.as_deref().and_then(|k| env.hosted.reachable(k));
    if let Some(h) = &hosted {
        node_refs(store, &machine_kind, ns, cluster, h)?;
    }
    let mhc_kind = kind_in(store, &registry::MACHINE_HEALTH_CHECK, "v1beta2");
    for mhc in list(store, &mhc_kind, Some(ns)) {
        health_check(store, env, &machine_kind, &mhc_kind, ns, cluster, &mhc, hosted.as_ref())?;
    }
    let ms_kind = kind_in(store, &registry::MACHINE_SET, "v1beta2");
    for ms in list(store, &ms_kind, Some(ns)) {
        machine_set(store, env, &machine_kind, ns, cluster, &ms, key.as_deref())?;
    }
    if let Some(c) = cluster
        && is_deleting(c)
        && !paused(None, c)
    {
        // reconcileDelete: descendants first (MachineDeployments, MachineSets, Machines).
        let mut left = false;
        for base in [
            &registry::MACHINE_DEPLOYMENT,
            &registry::MACHINE_SET,
            &registry::MACHINE,
        ] {
            let kind = kind_in(store, base, "v1beta2");
            for o in list(store, &kind, Some(ns)) {
                left |= delete_if_needed(store, &kind, &o)?;
            }
        }
        if !left {
            remove_finalizer(store, &cluster_kind, c, CLUSTER_FINALIZER)?;
        }
    }
    Ok(pass)
}

/// The hosted cluster (`namespace/name`) a control-plane namespace belongs to (its
/// HostedControlPlane's `hypershift.openshift.io/cluster` annotation).
fn hosted_cluster_of(store: &Store, ns: &str) -> Option<String> {
    list(store, &registry::HOSTED_CONTROL_PLANE, Some(ns))
        .first()
        .and_then(|hcp| annotation(hcp, CLUSTER_ANNOTATION).map(str::to_string))
}

/// The labels a selector's `matchLabels` asks for, matched against an object.
fn selects(selector: Option<&Value>, obj: &Value) -> bool {
    let Some(want) = selector.and_then(|s| s.get("matchLabels")).and_then(Value::as_object) else {
        return false;
    };
    let labels = obj.pointer("/metadata/labels");
    !want.is_empty() && want.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The Node a Machine names (`status.nodeRef.name`).
fn node_of(m: &Value) -> Option<&str> {
    m.pointer("/status/nodeRef/name").and_then(Value::as_str)
}

/// A Machine's condition of `type_`, if set.
fn machine_condition(m: &Value, type_: &str) -> Option<String> {
    super::condition_status(m, type_)
}

/// `status.nodeRef` of Machines from the Node whose providerID is theirs.
fn node_refs(
    store: &Store,
    kind: &KindInfo,
    ns: &str,
    cluster: Option<&Value>,
    hosted: &Store,
) -> Result<(), ApiError> {
    let nodes = list(hosted, &registry::NODE, None);
    for m in list(store, kind, Some(ns)) {
        if paused(cluster, &m) || is_deleting(&m) || node_of(&m).is_some() {
            continue;
        }
        let Some(pid) = m.pointer("/spec/providerID").and_then(Value::as_str) else {
            continue;
        };
        let Some(node) = nodes
            .iter()
            .find(|n| n.pointer("/spec/providerID").and_then(Value::as_str) == Some(pid))
        else {
            continue;
        };
        let node_ref = if kind.version == "v1beta1" {
            json!({"apiVersion": "v1", "kind": "Node", "name": name_of(node)})
        } else {
            json!({"name": name_of(node)})
        };
        store.patch(
            kind,
            Some(ns),
            name_of(&m),
            &Patch::Merge(json!({"status": {"nodeRef": node_ref}})),
            &WriteOptions::status(),
        )?;
    }
    Ok(())
}

/// A MachineHealthCheck's verdict on one Machine.
enum Health {
    Healthy,
    /// Not healthy yet, not timed out either.
    Pending,
    Unhealthy(&'static str),
}

/// `getScaledValueFromIntOrPercent(maxUnhealthy, expected, false)`.
fn max_unhealthy(v: Option<&Value>, expected: usize) -> usize {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        Some(Value::String(s)) if s.ends_with('%') => {
            let pct: usize = s.trim_end_matches('%').parse().unwrap_or(100);
            pct * expected / 100
        }
        Some(Value::String(s)) => s.parse().unwrap_or(expected),
        _ => expected,
    }
}

/// One MachineHealthCheck (`machinehealthcheck_controller.go` `Reconcile`, `healthCheckTargets`,
/// `isAllowedRemediation`, `patchUnhealthyTargets`).
#[allow(clippy::too_many_arguments)]
fn health_check(
    store: &Store,
    env: &CapiEnv<'_>,
    machine_kind: &KindInfo,
    mhc_kind: &KindInfo,
    ns: &str,
    cluster: Option<&Value>,
    mhc: &Value,
    hosted: Option<&Store>,
) -> Result<(), ApiError> {
    if paused(cluster, mhc) || is_deleting(mhc) {
        return Ok(());
    }
    // The workload cluster cannot be reached: the reconcile errors, nothing is evaluated.
    let Some(hosted) = hosted else {
        return Ok(());
    };
    let spec = mhc.get("spec").cloned().unwrap_or_default();
    let timeout = spec
        .pointer("/unhealthyConditions/0/timeout")
        .and_then(Value::as_str)
        .and_then(parse_go_duration)
        .unwrap_or(std::time::Duration::from_secs(480));
    let startup = spec
        .get("nodeStartupTimeout")
        .and_then(Value::as_str)
        .and_then(parse_go_duration)
        .unwrap_or(std::time::Duration::from_secs(1200));
    let now = env.clock.now();
    let targets: Vec<Value> = list(store, machine_kind, Some(ns))
        .into_iter()
        .filter(|m| selects(spec.get("selector"), m))
        .filter(|m| {
            annotation(m, SKIP_REMEDIATION_ANNOTATION).is_none() && annotation(m, CAPI_PAUSED_ANNOTATION).is_none()
        })
        .collect();
    let mut verdicts = Vec::new();
    for m in &targets {
        let verdict = if is_deleting(m) {
            Health::Pending
        } else {
            match node_of(m) {
                Some(node) => match super::get(hosted, &registry::NODE, "", node) {
                    None => Health::Unhealthy("NodeDeleted"),
                    Some(n) => match ready_transition(&n) {
                        Some((status, _)) if status == "True" => Health::Healthy,
                        Some((_, since)) => {
                            let for_ = now.signed_duration_since(since).to_std().unwrap_or_default();
                            if for_ > timeout {
                                Health::Unhealthy("UnhealthyNode")
                            } else {
                                Health::Pending
                            }
                        }
                        None => Health::Pending,
                    },
                },
                None => {
                    // Counted from the Machine's creation (the API server's time).
                    let created = m
                        .pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| chrono::Utc::now().signed_duration_since(t).to_std().unwrap_or_default())
                        .map(|real| env.clock.upstream(real))
                        .unwrap_or_default();
                    if created > startup {
                        Health::Unhealthy("NodeStartupTimeout")
                    } else {
                        Health::Pending
                    }
                }
            }
        };
        verdicts.push(verdict);
    }
    let expected = targets.len();
    let healthy = verdicts.iter().filter(|v| matches!(v, Health::Healthy)).count();
    let unhealthy_count = expected - healthy;
    let max = max_unhealthy(spec.get("maxUnhealthy"), expected);
    let allowed = unhealthy_count <= max;
    let condition = if allowed {
        Condition::new("RemediationAllowed", "True", "RemediationAllowed", "")
    } else {
        Condition::new(
            "RemediationAllowed",
            "False",
            "TooManyUnhealthy",
            &format!(
                "Remediation is not allowed, the number of not started or unhealthy machines exceeds maxUnhealthy (total: {expected}, unhealthy: {unhealthy_count}, maxUnhealthy: {max})"
            ),
        )
    };
    let status = json!({"expectedMachines": expected, "currentHealthy": healthy,
        "remediationsAllowed": max.saturating_sub(unhealthy_count)});
    let same = ["expectedMachines", "currentHealthy", "remediationsAllowed"]
        .iter()
        .all(|k| mhc.pointer(&format!("/status/{k}")) == status.get(*k));
    if !same {
        store.patch(
            mhc_kind,
            Some(ns),
            name_of(mhc),
            &Patch::Merge(json!({"status": status})),
            &WriteOptions::status(),
        )?;
    }
    if let Some(now_mhc) = super::get(store, mhc_kind, ns, name_of(mhc)) {
        set_conditions(store, mhc_kind, &now_mhc, &[condition])?;
    }
    for (m, v) in targets.iter().zip(&verdicts) {
        let set = match v {
            // Reasons as CAPI's v1beta2 API names them (`MachineHealthCheckSucceededReason`):
            // the v1beta2 schema requires one.
            Health::Healthy => vec![Condition::new(
                "HealthCheckSucceeded",
                "True",
                "HealthCheckSucceeded",
                "",
            )],
            Health::Unhealthy(reason) if allowed && !paused(cluster, m) => vec![
                Condition::new("HealthCheckSucceeded", "False", reason, "Health check failed"),
                Condition::new(
                    "OwnerRemediated",
                    "False",
                    "WaitingForRemediation",
                    "Waiting for remediation",
                ),
            ],
            Health::Unhealthy(reason) => vec![Condition::new(
                "HealthCheckSucceeded",
                "False",
                reason,
                "Health check failed",
            )],
            Health::Pending => continue,
        };
        if let Some(cur) = super::get(store, machine_kind, ns, name_of(m)) {
            set_conditions(store, machine_kind, &cur, &set)?;
        }
    }
    Ok(())
}

/// A short random suffix, as generated names have.
fn suffix(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..n].to_string()
}

/// One MachineSet: delete the Machines marked for remediation, then make new Machines (and
/// instances) up to its replicas.
fn machine_set(
    store: &Store,
    env: &CapiEnv<'_>,
    machine_kind: &KindInfo,
    ns: &str,
    cluster: Option<&Value>,
    ms: &Value,
    hosted_cluster: Option<&str>,
) -> Result<(), ApiError> {
    if paused(cluster, ms) || is_deleting(ms) {
        return Ok(());
    }
    let mut live = 0i64;
    for m in list(store, machine_kind, Some(ns)) {
        if !selects(ms.pointer("/spec/selector"), &m) || is_deleting(&m) {
            continue;
        }
        let marked = machine_condition(&m, "HealthCheckSucceeded").as_deref() == Some("False")
            && machine_condition(&m, "OwnerRemediated").as_deref() == Some("False");
        if marked {
            delete_if_needed(store, machine_kind, &m)?;
        } else {
            live += 1;
        }
    }
    let replicas = ms.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
    let Some(hosted_cluster) = hosted_cluster else {
        return Ok(());
    };
    for _ in live..replicas {
        replacement(store, env, machine_kind, ns, ms, hosted_cluster)?;
    }
    Ok(())
}

/// `syncReplicas`: a new Machine, its AWSMachine, and the instance CAPA launches for it.
fn replacement(
    store: &Store,
    env: &CapiEnv<'_>,
    machine_kind: &KindInfo,
    ns: &str,
    ms: &Value,
    hosted_cluster: &str,
) -> Result<(), ApiError> {
    let pool = ms
        .pointer(&format!("/metadata/labels/{}", NODE_POOL_LABEL.replace('/', "~1")))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let infra = ms
        .pointer("/spec/clusterName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let labels = ms
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let machine = format!("{}-{}", name_of(ms), suffix(5));
    let aws_machine = format!("{pool}-{}", suffix(5));
    let id = suffix(15);
    let provider_id = format!("aws:///{}a/i-0{id}", env.region);
    let node = format!("ip-10-250-{}.ec2.internal", &id[..6]);
    let template = ms
        .pointer("/spec/template/spec/infrastructureRef/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let instance_type = super::get(store, &registry::AWS_MACHINE_TEMPLATE, ns, template)
        .and_then(|t| {
            t.pointer("/spec/template/spec/instanceType")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "m5.large".to_string());
    let infra_ref = if machine_kind.version == "v1beta1" {
        json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSMachine", "name": aws_machine, "namespace": ns})
    } else {
        json!({"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AWSMachine", "name": aws_machine})
    };
    let mut all_labels = labels.clone();
    all_labels[super::CAPI_CLUSTER_LABEL] = json!(infra);
    let m = store.create(
        machine_kind,
        Some(ns),
        json!({"apiVersion": format!("{CAPI_GROUP}/{}", machine_kind.version), "kind": "Machine",
            "metadata": {"name": machine, "namespace": ns, "labels": all_labels, "finalizers": [MACHINE_FINALIZER],
                "ownerReferences": [{"apiVersion": format!("{CAPI_GROUP}/{}", machine_kind.version), "kind": "MachineSet",
                    "name": name_of(ms), "uid": ms.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                    "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"clusterName": infra, "bootstrap": {"dataSecretName": format!("user-data-{pool}")},
                "infrastructureRef": infra_ref, "providerID": provider_id}}),
        &WriteOptions::default(),
    )?;
    store.create(
        &registry::AWS_MACHINE,
        Some(ns),
        json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSMachine",
            "metadata": {"name": aws_machine, "namespace": ns, "labels": all_labels, "finalizers": [AWS_MACHINE_FINALIZER],
                "ownerReferences": [{"apiVersion": format!("{CAPI_GROUP}/{}", machine_kind.version), "kind": "Machine",
                    "name": machine, "uid": m.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                    "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"instanceType": instance_type, "providerID": provider_id}}),
        &WriteOptions::default(),
    )?;
    env.ec2.launch(Instance {
        provider_id,
        node_name: node,
        node_pool: pool,
        hosted_cluster: hosted_cluster.to_string(),
        terminated: false,
    });
    Ok(())
}

/// Whether any CAPI controller of `ns` runs (for the hazard record).
pub fn controllers_running(store: &Store, ns: &str) -> bool {
    deployment_running(store, ns, "cluster-api") || deployment_running(store, ns, "capi-provider")
}

/// Names of the objects of `ns` being deleted while Machines exist (for the hazard record).
pub fn deleting_machines(store: &Store, ns: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kind in [
        kind_in(store, &registry::MACHINE, "v1beta2"),
        (*registry::AWS_MACHINE).as_ref().clone(),
    ] {
        for o in list(store, &kind, Some(ns)) {
            if is_deleting(&o) {
                out.push(format!("{}/{}/{}", kind.kind, namespace_of(&o), name_of(&o)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine_v1beta1() -> Value {
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
            "metadata": {"name": "m1", "namespace": "clusters-a"},
            "spec": {"clusterName": "a-x", "bootstrap": {"dataSecretName": "boot"},
                "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSMachine",
                    "name": "am1", "namespace": "clusters-a"},
                "nodeDrainTimeout": "5m0s", "providerID": "aws:///us-east-1a/i-1"},
            "status": {"phase": "Running", "nodeRef": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
                "infrastructureReady": true, "conditions": [{"type": "Ready", "status": "True"}]},
        })
    }

    #[test]
    fn machines_convert_as_cluster_api_does() {
        let up = convert(&machine_v1beta1(), "v1beta2").expect("converts");
        assert_eq!(up["apiVersion"], "cluster.x-k8s.io/v1beta2");
        assert_eq!(
            up["spec"]["infrastructureRef"],
            json!({"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AWSMachine", "name": "am1"})
        );
        assert_eq!(up["spec"]["deletion"]["nodeDrainTimeoutSeconds"], 300);
        assert_eq!(up["status"]["nodeRef"], json!({"name": "n1"}));
        assert_eq!(up["status"]["initialization"]["infrastructureProvisioned"], true);
        assert_eq!(up["status"]["deprecated"]["v1beta1"]["conditions"][0]["type"], "Ready");
        let down = convert(&up, "v1beta1").expect("converts");
        assert_eq!(
            down["spec"]["infrastructureRef"]["apiVersion"],
            "infrastructure.cluster.x-k8s.io/v1beta2"
        );
        assert_eq!(down["spec"]["nodeDrainTimeout"], "300s");
        assert_eq!(down["status"]["nodeRef"]["name"], "n1");
        // Round trip: the hub object comes back whole.
        let again = convert(&down, "v1beta2").expect("converts");
        assert_eq!(again["spec"], up["spec"]);
        assert_eq!(again["status"], up["status"]);
        assert!(annotation(&again, CONVERSION_DATA_ANNOTATION).is_none());
    }

    #[test]
    fn cluster_refs_and_pause_convert() {
        let v2 = json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": "a-x", "namespace": "clusters-a"},
            "spec": {"paused": true, "controlPlaneRef": {"apiGroup": "hypershift.openshift.io", "kind": "HostedControlPlane", "name": "a"},
                "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AWSCluster", "name": "a"}}});
        let v1 = convert(&v2, "v1beta1").expect("converts");
        assert_eq!(v1["spec"]["paused"], true);
        assert_eq!(
            v1["spec"]["controlPlaneRef"]["apiVersion"],
            "hypershift.openshift.io/v1beta1"
        );
        assert_eq!(v1["spec"]["controlPlaneRef"]["namespace"], "clusters-a");
        assert!(convert(&v2, "v1alpha9").is_err());
    }
}
