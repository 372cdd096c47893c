//! Simulated HyperShift behaviour on top of [`crate::Store`]: the HyperShift operator's
//! reconciliation of HostedClusters and NodePools ([`operator`]), the hosted control plane's
//! etcd ([`etcd`]: one real member per pod, client TLS with a per-namespace PKI from [`pki`])
//! and `restoreSnapshotURL` admission and restore ([`restore`]).
//!
//! Everything here is an in-process controller: it watches a management cluster's store and
//! writes objects back through the same public API clients use, so what ferry sees over HTTP is
//! exactly what the controller did.

mod client;
pub mod etcd;
pub mod hosted;
pub mod operator;
pub mod pki;
pub mod restore;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::patch::Patch;
use crate::registry::KindInfo;
use crate::store::{Store, WriteOptions};

pub use etcd::{EtcdClientTls, EtcdKvClient, EtcdMemberInfo, HostedEtcd};
pub use hosted::{HostedApiOptions, HostedClusterApi};
pub use operator::{HyperShiftOperator, OperatorEvent, OperatorLog, OperatorOptions};
pub use pki::EtcdPki;
pub use restore::{RestoreUrlPolicy, registry_with_admission, validate_restore_urls};

/// The finalizer the HyperShift operator puts on HostedClusters and NodePools.
pub const FINALIZER: &str = "hypershift.openshift.io/finalizer";

/// Annotation naming the external DNS domain of a HostedCluster's routes (what the
/// `--external-dns-domain` flag of `hypershift create cluster` ends up selecting).
pub const EXTERNAL_DNS_DOMAIN_ANNOTATION: &str = "hypershift.openshift.io/external-dns-domain";

/// Label the operator puts on objects it creates in the HCP namespace.
pub const HCP_LABEL: &str = "hypershift.openshift.io/hosted-control-plane";

/// The HostedControlPlane namespace of a HostedCluster: `<hc-ns>-<hc-name>` with `.` → `-`.
pub fn hcp_namespace(hc_namespace: &str, hc_name: &str) -> String {
    format!("{hc_namespace}-{hc_name}").replace('.', "-")
}

/// Whether a `spec.pausedUntil` value pauses reconciliation at `now`: `"true"`/`"True"`, or an
/// RFC3339 date in the future. Absent, `"false"`, past dates and unparsable values do not.
pub fn is_paused_at(paused_until: Option<&str>, now: DateTime<Utc>) -> bool {
    match paused_until {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) => DateTime::parse_from_rfc3339(v).is_ok_and(|until| until.with_timezone(&Utc) > now),
    }
}

/// [`is_paused_at`] for an object's `spec.pausedUntil`, now.
pub fn object_paused(obj: &Value) -> bool {
    is_paused_at(obj.pointer("/spec/pausedUntil").and_then(Value::as_str), Utc::now())
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

/// Replace the finalizer list of an object (merge patch with a resourceVersion precondition).
pub(crate) fn set_finalizers(
    store: &Store,
    kind: &'static KindInfo,
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
            (!ns.is_empty()).then_some(ns),
            name_of(obj),
            &Patch::Merge(patch),
            &WriteOptions::default(),
        )
        .map(|o| o.object)
}

/// One status condition to set with [`set_condition`].
#[derive(Debug, Clone, Copy)]
pub struct Condition<'a> {
    /// Condition type, e.g. `Available`.
    pub type_: &'a str,
    /// `True` (true) or `False` (false).
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'a str,
    /// Human-readable message.
    pub message: &'a str,
}

/// Set one status condition on an object with a status subresource; writes only when something
/// changed. Returns whether it wrote.
pub fn set_condition(
    store: &Store,
    kind: &'static KindInfo,
    namespace: &str,
    name: &str,
    cond: Condition<'_>,
) -> Result<bool, ApiError> {
    let Condition {
        type_,
        status,
        reason,
        message,
    } = cond;
    let ns = (!namespace.is_empty()).then_some(namespace);
    let cur = store.get(kind, ns, name)?;
    let mut conditions: Vec<Value> = cur
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let status_str = if status { "True" } else { "False" };
    let existing = conditions
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some(type_));
    let generation = cur.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
    if let Some(i) = existing {
        let c = &conditions[i];
        if c.get("status").and_then(Value::as_str) == Some(status_str)
            && c.get("reason").and_then(Value::as_str) == Some(reason)
            && c.get("message").and_then(Value::as_str) == Some(message)
        {
            return Ok(false);
        }
    }
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let new = json!({
        "type": type_,
        "status": status_str,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
        "observedGeneration": generation,
    });
    match existing {
        Some(i) => conditions[i] = new,
        None => conditions.push(new),
    }
    store.patch(
        kind,
        ns,
        name,
        &Patch::Merge(json!({"status": {"conditions": conditions}})),
        &WriteOptions::status(),
    )?;
    Ok(true)
}

/// The `status` (`"True"`/`"False"`) of condition `type_` on an object, if set.
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
