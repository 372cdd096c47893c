//! A HyperShift world on top of the simulated API server: the controllers that run on a
//! HyperShift management cluster, written against upstream's behaviour (openshift/hypershift
//! at the commit of `../shared/upstream/README.md`). Each modelled behaviour cites the upstream
//! file and function it follows.
//!
//! - [`hostedcluster`]: the HyperShift operator's HostedCluster controller
//!   (`hypershift-operator/controllers/hostedcluster/hostedcluster_controller.go`);
//! - [`nodepool`]: its NodePool controller (`hypershift-operator/controllers/nodepool/`);
//! - [`control_plane`]: the control-plane operator of each hosted control plane
//!   (`control-plane-operator/controllers/hostedcontrolplane/`) and the pieces of the hosted
//!   cluster config operator the DR path meets;
//! - [`capi`]: Cluster API's controllers in the control-plane namespace and the conversion
//!   webhook HyperShift installs for the CAPI CRDs; [`capi_migration`]: the operator's CAPI
//!   storage migration;
//! - [`workloads`]: the kube-controller-manager and kubelets of a management cluster (pods for
//!   Deployments and StatefulSets, with graceful termination);
//! - [`controllers`]: all of the above as one task per management cluster, sharing a
//!   [`context`] (options, the event record, hosted etcds);
//! - [`etcd`], [`pki`], [`restore`]: real etcd members per hosted control plane, their TLS and
//!   `etcd-init`'s restore from `restoreSnapshotURL`;
//! - [`aws`]: the EC2 instances nodes run on; [`external_dns`]: external-dns against Route53;
//!   [`dns`]: the zone and the VPC's caching resolver; [`hosted`]: each hosted cluster's own
//!   API, served from its control plane's etcd (nodes, haproxy, ClusterVersion, OVN pods);
//! - [`install`], [`operator_webhooks`]: what `hypershift install` puts on a management
//!   cluster, and what the operator's webhook server answers;
//! - [`scenario`], [`environment`]: what a drill or test starts.

mod client;

pub mod aws;
pub mod capi;
pub mod capi_migration;
pub mod context;
pub mod control_plane;
pub mod controllers;
pub mod dns;
pub mod environment;
pub mod etcd;
pub mod external_dns;
pub mod hosted;
pub mod hostedcluster;
pub mod install;
pub mod nodepool;
pub mod operator_webhooks;
pub mod pki;
pub mod restore;
pub mod scenario;
pub mod workloads;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::kube::error::{ApiError, Reason};
use crate::kube::patch::Patch;
use crate::kube::registry::KindInfo;
use crate::kube::store::{DeleteOptions, ListOptions, Store, WriteOptions};

pub use context::{ControllersOptions, OperatorEvent, OperatorLog};
pub use controllers::Controllers;
pub use etcd::{EtcdKvClient, EtcdMemberInfo, HostedEtcd};
pub use hosted::{HostedApiOptions, HostedClusterApi, HostedStores};
pub use pki::{EtcdClientTls, EtcdPki};

/// `hyperv1.HostedClusterFinalizer`: on HostedClusters and NodePools (HO) and on
/// HostedControlPlanes (CPO).
pub const FINALIZER: &str = "hypershift.openshift.io/finalizer";

/// `ControlPlaneComponentFinalizer` (`hostedcluster_controller.go`): on the `cluster-api` and
/// `capi-provider` Deployments of a control-plane namespace.
pub const COMPONENT_FINALIZER: &str = "hypershift.openshift.io/component-finalizer";

/// The CAPI Deployments that carry [`COMPONENT_FINALIZER`] (`CAPIComponents`).
pub const CAPI_COMPONENTS: &[&str] = &["cluster-api", "capi-provider"];

/// The HO's finalizer on AWSEndpointServices (`controllers/platform/aws/controller.go`).
pub const HO_ENDPOINT_FINALIZER: &str = "hypershift.openshift.io/hypershift-operator-finalizer";

/// The CPO's finalizer on AWSEndpointServices (`awsprivatelink_controller.go`).
pub const CPO_ENDPOINT_FINALIZER: &str = "hypershift.openshift.io/control-plane-operator-finalizer";

/// `HostedClusterAnnotation`: `<hc-namespace>/<hc-name>` on everything the HO writes.
pub const CLUSTER_ANNOTATION: &str = "hypershift.openshift.io/cluster";

/// `HostedClusterRestoredFromBackupAnnotation`: the hosted cluster came from a backup.
pub const RESTORED_FROM_BACKUP_ANNOTATION: &str = "hypershift.openshift.io/restored-from-backup";

/// `DisableMachineManagement`: no CAPI Deployments and no component finalizer.
pub const DISABLE_MACHINE_MANAGEMENT_ANNOTATION: &str = "hypershift.openshift.io/disable-machine-management";

/// `SkipControlPlaneNamespaceDeletionAnnotation`.
pub const SKIP_NAMESPACE_DELETION_ANNOTATION: &str =
    "hypershift.openshift.io/skip-delete-hosted-controlplane-namespace";

/// `ExternalDNSHostnameAnnotation` (`hostedcluster_types.go`).
pub const EXTERNAL_DNS_HOSTNAME_ANNOTATION: &str = "external-dns.alpha.kubernetes.io/hostname";

/// `RouteVisibilityLabel`: `private` routes are not published (external-dns' label filter).
pub const ROUTE_VISIBILITY_LABEL: &str = "hypershift.openshift.io/route-visibility";

/// `netutil.HCPRouteLabel`: routes the control-plane operator admits itself.
pub const HCP_ROUTE_LABEL: &str = "hypershift.openshift.io/hosted-control-plane";

/// `InternalRouteLabel`: routes served by the private router.
pub const INTERNAL_ROUTE_LABEL: &str = "hypershift.openshift.io/internal-route";

/// CAPI's `PausedAnnotation`.
pub const CAPI_PAUSED_ANNOTATION: &str = "cluster.x-k8s.io/paused";

/// The label CAPI puts on everything of a cluster (`ClusterNameLabel`).
pub const CAPI_CLUSTER_LABEL: &str = "cluster.x-k8s.io/cluster-name";

/// The label HyperShift puts on a NodePool's CAPI objects.
pub const NODE_POOL_LABEL: &str = "hypershift.openshift.io/nodePool";

/// `manifests.HostedControlPlaneNamespace`: `<hc-namespace>-<hc-name>`, with `.` replaced by
/// `-` in the name only.
pub fn hcp_namespace(hc_namespace: &str, hc_name: &str) -> String {
    format!("{hc_namespace}-{}", hc_name.replace('.', "-"))
}

/// What a `pausedUntil` value means (`support/util/pausereconcile.go`,
/// `ProcessPausedUntilField`): a boolean pauses while true; an RFC3339 date while it is in the
/// future; anything else is invalid and does not pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pause {
    /// Not paused.
    Active,
    /// Paused until the field is removed (`"true"`).
    UntilRemoved,
    /// Paused until the date.
    Until(DateTime<Utc>),
    /// An unparsable value (`InvalidPausedUntilValue`).
    Invalid,
}

impl Pause {
    /// Parse `spec.pausedUntil` as of `now`.
    pub fn parse(value: Option<&str>, now: DateTime<Utc>) -> Pause {
        let Some(v) = value else {
            return Pause::Active;
        };
        // strconv.ParseBool: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
        match v {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => return Pause::UntilRemoved,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => return Pause::Active,
            _ => {}
        }
        match DateTime::parse_from_rfc3339(v) {
            Ok(t) if t.with_timezone(&Utc) > now => Pause::Until(t.with_timezone(&Utc)),
            Ok(_) => Pause::Active,
            Err(_) => Pause::Invalid,
        }
    }

    /// `spec.pausedUntil` of an object, now.
    pub fn of(obj: &Value) -> Pause {
        Self::parse(obj.pointer("/spec/pausedUntil").and_then(Value::as_str), Utc::now())
    }

    /// Whether reconciliation stops.
    pub fn paused(&self) -> bool {
        matches!(self, Pause::UntilRemoved | Pause::Until(_))
    }

    /// `GenerateReconciliationActiveCondition`; `active_reason` is `AsExpected` for
    /// HostedClusters and control planes, `ReconciliationActive` for NodePools.
    pub fn condition(&self, active_reason: &str) -> Condition {
        match self {
            Pause::Active => Condition::new(
                "ReconciliationActive",
                "True",
                active_reason,
                "Reconciliation active on resource",
            ),
            Pause::UntilRemoved => Condition::new(
                "ReconciliationActive",
                "False",
                "ReconciliationPaused",
                "Reconciliation paused until field removed",
            ),
            Pause::Until(t) => Condition::new(
                "ReconciliationActive",
                "False",
                "ReconciliationPaused",
                &format!(
                    "Reconciliation paused until: {}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            ),
            Pause::Invalid => Condition::new(
                "ReconciliationActive",
                "True",
                "InvalidPausedUntilValue",
                "Invalid value provided for PausedUntil field",
            ),
        }
    }
}

/// Whether an object's `spec.pausedUntil` pauses it now.
pub fn object_paused(obj: &Value) -> bool {
    Pause::of(obj).paused()
}

/// `metadata.name` (empty when absent).
pub(crate) fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.namespace` (empty when absent).
pub(crate) fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The object's finalizers.
pub(crate) fn finalizers_of(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// True when the object carries a deletionTimestamp.
pub(crate) fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

/// An annotation's value.
pub(crate) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

pub(crate) fn ns_opt(ns: &str) -> Option<&str> {
    (!ns.is_empty()).then_some(ns)
}

/// List, treating an unserved kind as empty (a cluster without that CRD).
pub(crate) fn list(store: &Store, kind: &KindInfo, namespace: Option<&str>) -> Vec<Value> {
    store
        .list(kind, namespace, &ListOptions::default())
        .map(|l| l.items)
        .unwrap_or_default()
}

/// GET, `None` when absent (or the kind is not served).
pub(crate) fn get(store: &Store, kind: &KindInfo, namespace: &str, name: &str) -> Option<Value> {
    store.get(kind, ns_opt(namespace), name).ok()
}

/// Replace the finalizer list of an object (merge patch with a resourceVersion precondition).
pub(crate) fn set_finalizers(
    store: &Store,
    kind: &KindInfo,
    obj: &Value,
    finalizers: Vec<String>,
) -> Result<Value, ApiError> {
    let ns = namespace_of(obj);
    let patch = json!({"metadata": {
        "finalizers": if finalizers.is_empty() { Value::Null } else { json!(finalizers) },
        "resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
    }});
    store
        .patch(
            kind,
            ns_opt(ns),
            name_of(obj),
            &Patch::Merge(patch),
            &WriteOptions::default(),
        )
        .map(|o| o.object)
}

/// Add a finalizer when missing.
pub(crate) fn add_finalizer(store: &Store, kind: &KindInfo, obj: &Value, finalizer: &str) -> Result<Value, ApiError> {
    let mut fins = finalizers_of(obj);
    if fins.iter().any(|f| f == finalizer) || is_deleting(obj) {
        return Ok(obj.clone());
    }
    fins.push(finalizer.to_string());
    set_finalizers(store, kind, obj, fins)
}

/// Remove a finalizer when present (NotFound is fine: the object is gone).
pub(crate) fn remove_finalizer(store: &Store, kind: &KindInfo, obj: &Value, finalizer: &str) -> Result<(), ApiError> {
    let fins = finalizers_of(obj);
    if !fins.iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let rest = fins.into_iter().filter(|f| f != finalizer).collect();
    match set_finalizers(store, kind, obj, rest) {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// `DeleteIfNeeded` (`support/k8sutil/object.go`): delete unless already deleting; true while
/// the object still exists.
pub(crate) fn delete_if_needed(store: &Store, kind: &KindInfo, obj: &Value) -> Result<bool, ApiError> {
    if is_deleting(obj) {
        return Ok(true);
    }
    match store.delete(kind, ns_opt(namespace_of(obj)), name_of(obj), &DeleteOptions::default()) {
        Ok(after) => Ok(is_deleting(&after)),
        Err(e) if e.reason == Reason::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// A condition that follows a Deployment's availability, worded as upstream words its
/// `<what> deployment ...` conditions: `NotFound`, `AsExpected`, or `WaitingForAvailable` with
/// `waiting` as the message.
pub(crate) fn deployment_condition(
    store: &Store,
    ns: &str,
    deployment: &str,
    type_: &str,
    what: &str,
    waiting: &str,
) -> Condition {
    match get(store, &crate::kube::registry::DEPLOYMENT, ns, deployment) {
        None => Condition::new(type_, "False", "NotFound", &format!("{what} deployment not found")),
        Some(d)
            if d.pointer("/status/availableReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                > 0 =>
        {
            Condition::new(type_, "True", "AsExpected", &format!("{what} deployment is available"))
        }
        Some(_) => Condition::new(type_, "False", "WaitingForAvailable", waiting),
    }
}

/// A status condition (`metav1.Condition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Type, e.g. `Available`.
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl Condition {
    /// A condition from its parts.
    pub fn new(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The condition as found in `obj`'s status, if set.
    pub fn read(obj: &Value, type_: &str) -> Option<Condition> {
        let c = condition(obj, type_)?;
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        Some(Condition {
            type_: type_.into(),
            status: s("status"),
            reason: s("reason"),
            message: s("message"),
        })
    }
}

/// `meta.SetStatusCondition` on a list: replace by type, keeping `lastTransitionTime` unless
/// the status changes; `observedGeneration` set to `generation`.
pub fn merge_conditions(current: &[Value], set: &[Condition], generation: i64) -> Vec<Value> {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut out: Vec<Value> = current.to_vec();
    for c in set {
        let existing = out
            .iter()
            .position(|x| x.get("type").and_then(Value::as_str) == Some(c.type_.as_str()));
        let ltt = existing
            .and_then(|i| {
                let x = &out[i];
                (x.get("status").and_then(Value::as_str) == Some(c.status.as_str()))
                    .then(|| x.get("lastTransitionTime").cloned())
                    .flatten()
            })
            .unwrap_or_else(|| json!(now));
        let v = json!({
            "type": c.type_, "status": c.status, "reason": c.reason, "message": c.message,
            "lastTransitionTime": ltt, "observedGeneration": generation,
        });
        match existing {
            Some(i) => out[i] = v,
            None => out.push(v),
        }
    }
    out
}

/// Set conditions on an object with a status subresource in one status write, when anything
/// changed. Returns whether it wrote.
pub fn set_conditions(store: &Store, kind: &KindInfo, obj: &Value, set: &[Condition]) -> Result<bool, ApiError> {
    let current: Vec<Value> = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let merged = merge_conditions(&current, set, generation);
    if merged == current {
        return Ok(false);
    }
    store.patch(
        kind,
        ns_opt(namespace_of(obj)),
        name_of(obj),
        &Patch::Merge(json!({"status": {"conditions": merged}})),
        &WriteOptions::status(),
    )?;
    Ok(true)
}

/// The `status` (`"True"`/`"False"`/`"Unknown"`) of condition `type_` on an object, if set.
pub fn condition_status(obj: &Value, type_: &str) -> Option<String> {
    condition(obj, type_).and_then(|c| c.get("status").and_then(Value::as_str).map(str::to_string))
}

/// The whole condition `type_` of an object, if set.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_until_follows_process_paused_until_field() {
        let now = Utc::now();
        assert_eq!(Pause::parse(Some("true"), now), Pause::UntilRemoved);
        assert_eq!(Pause::parse(Some("True"), now), Pause::UntilRemoved);
        assert_eq!(Pause::parse(Some("false"), now), Pause::Active);
        assert_eq!(Pause::parse(None, now), Pause::Active);
        assert_eq!(Pause::parse(Some("2000-01-01T00:00:00Z"), now), Pause::Active);
        assert!(Pause::parse(Some("2999-01-01T00:00:00Z"), now).paused());
        assert_eq!(Pause::parse(Some("tomorrow"), now), Pause::Invalid);
        let c = Pause::UntilRemoved.condition("AsExpected");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "ReconciliationPaused")
        );
        assert_eq!(
            Pause::Active.condition("ReconciliationActive").reason,
            "ReconciliationActive"
        );
    }

    #[test]
    fn conditions_keep_their_transition_time_while_status_holds() {
        let first = merge_conditions(&[], &[Condition::new("Available", "True", "AsExpected", "")], 1);
        let mut aged = first.clone();
        aged[0]["lastTransitionTime"] = json!("2000-01-01T00:00:00Z");
        let again = merge_conditions(&aged, &[Condition::new("Available", "True", "AsExpected", "x")], 2);
        assert_eq!(again[0]["lastTransitionTime"], "2000-01-01T00:00:00Z");
        assert_eq!(again[0]["observedGeneration"], 2);
        let flipped = merge_conditions(&aged, &[Condition::new("Available", "False", "X", "")], 2);
        assert_ne!(flipped[0]["lastTransitionTime"], "2000-01-01T00:00:00Z");
    }

    #[test]
    fn control_plane_namespace_replaces_dots_in_the_name_only() {
        assert_eq!(hcp_namespace("clusters", "demo.one"), "clusters-demo-one");
        assert_eq!(hcp_namespace("my.ns", "a"), "my.ns-a");
    }
}
