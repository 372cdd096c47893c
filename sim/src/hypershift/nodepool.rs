//! The HyperShift operator's NodePool controller
//! (`hypershift-operator/controllers/nodepool/nodepool_controller.go`, `reconcile`):
//!
//! - deletion comes first and ignores `pausedUntil` (`Reconcile`): the NodePool's
//!   MachineDeployment goes, then the finalizer;
//! - the finalizer `hypershift.openshift.io/finalizer`, and `ReconciliationActive` (reason
//!   `ReconciliationActive` when active, `generateReconciliationActiveCondition`), are set
//!   before the pause check;
//! - a paused NodePool gets `cluster.x-k8s.io/paused: "true"` on its MachineDeployment and
//!   MachineSets (`capi.Pause`: `pauseMachineDeployment`, `pauseMachineSet`); an active one
//!   gets the annotation removed (`setMachineDeploymentMetadata`, `reconcileMachineSet`), its
//!   replicas carried to the MachineDeployment, and its `status.replicas` from it.
//!
//! - with `spec.management.autoRepair` a MachineHealthCheck named after the pool watches its
//!   Machines (`capi.go` `Reconcile`, `reconcileMachineHealthCheck`: Ready False or Unknown for
//!   8 minutes, `maxUnhealthy` 2, `nodeStartupTimeout` 20 minutes, each overridable by the
//!   `hypershift.openshift.io/machine-health-check-*` annotations of the NodePool, else of the
//!   HostedCluster); without it, the health check is deleted. Upstream creates it once the pool
//!   reached its ignition endpoint, which a restored pool has by its `restored-from-backup`
//!   annotation (`token.go`); the simulator's pools have always reached it.
//!
//! A HostedCluster's pause does not pause its NodePools: each has its own `pausedUntil`.

use serde_json::{Value, json};

use super::capi;
use super::context::Ctx;
use super::{
    CAPI_PAUSED_ANNOTATION, FINALIZER, NODE_POOL_LABEL, Pause, add_finalizer, annotation, delete_if_needed,
    finalizers_of, get, hcp_namespace, is_deleting, list, name_of, namespace_of, remove_finalizer, set_conditions,
};
use crate::kube::error::ApiError;
use crate::kube::patch::Patch;
use crate::kube::registry::{self, KindInfo};
use crate::kube::store::{Store, WriteOptions};

fn set_paused_annotation(store: &Store, kind: &KindInfo, obj: &Value, paused: bool) -> Result<(), ApiError> {
    if annotation(obj, CAPI_PAUSED_ANNOTATION).is_some() == paused || is_deleting(obj) {
        return Ok(());
    }
    let value = if paused { json!("true") } else { Value::Null };
    store
        .patch(
            kind,
            Some(namespace_of(obj)),
            name_of(obj),
            &Patch::Merge(json!({"metadata": {"annotations": {CAPI_PAUSED_ANNOTATION: value}}})),
            &WriteOptions::default(),
        )
        .map(|_| ())
}

/// The MachineSets of a NodePool (by its label).
fn machine_sets(store: &Store, cp_ns: &str, pool: &str) -> Vec<Value> {
    list(
        store,
        &capi::kind_in(store, &registry::MACHINE_SET, "v1beta1"),
        Some(cp_ns),
    )
    .into_iter()
    .filter(|ms| {
        ms.pointer(&format!("/metadata/labels/{}", NODE_POOL_LABEL.replace('/', "~1")))
            .and_then(Value::as_str)
            == Some(pool)
    })
    .collect()
}

/// Reconcile one NodePool.
pub(crate) fn reconcile(ctx: &Ctx<'_>, np: &Value) -> Result<(), ApiError> {
    let store = ctx.store;
    let pool = name_of(np);
    let cluster = np
        .pointer("/spec/clusterName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let cp_ns = hcp_namespace(namespace_of(np), cluster);
    let md_kind = capi::kind_in(store, &registry::MACHINE_DEPLOYMENT, "v1beta1");
    let ms_kind = capi::kind_in(store, &registry::MACHINE_SET, "v1beta1");
    let md = get(store, &md_kind, &cp_ns, pool);
    if is_deleting(np) {
        if finalizers_of(np).iter().any(|f| f == FINALIZER) {
            let left = match &md {
                Some(md) => delete_if_needed(store, &md_kind, md)?,
                None => false,
            };
            if !left {
                remove_finalizer(store, &registry::NODE_POOL, np, FINALIZER)?;
            }
        }
        return Ok(());
    }
    let np = add_finalizer(store, &registry::NODE_POOL, np, FINALIZER)?;
    let pause = Pause::of(&np);
    set_conditions(
        store,
        &registry::NODE_POOL,
        &np,
        &[pause.condition("ReconciliationActive")],
    )?;
    let paused = pause.paused();
    if let Some(md) = &md {
        set_paused_annotation(store, &md_kind, md, paused)?;
    }
    for ms in machine_sets(store, &cp_ns, pool) {
        set_paused_annotation(store, &ms_kind, &ms, paused)?;
    }
    if paused {
        return Ok(());
    }
    machine_health_check(ctx, &np, &cp_ns)?;
    let Some(md) = md else {
        return Ok(());
    };
    let want = np.pointer("/spec/replicas").cloned();
    if let Some(want) = want
        && md.pointer("/spec/replicas") != Some(&want)
    {
        store.patch(
            &md_kind,
            Some(&cp_ns),
            pool,
            &Patch::Merge(json!({"spec": {"replicas": want}})),
            &WriteOptions::default(),
        )?;
    }
    let have = md.pointer("/status/replicas").cloned().unwrap_or(json!(0));
    if np.pointer("/status/replicas") != Some(&have) {
        store.patch(
            &registry::NODE_POOL,
            Some(namespace_of(&np)),
            pool,
            &Patch::Merge(json!({"status": {"replicas": have}})),
            &WriteOptions::status(),
        )?;
    }
    Ok(())
}

/// The annotations that override the health check (`hostedcluster_types.go`).
pub const MHC_MAX_UNHEALTHY_ANNOTATION: &str = "hypershift.openshift.io/machine-health-check-max-unhealthy";
/// See [`MHC_MAX_UNHEALTHY_ANNOTATION`].
pub const MHC_TIMEOUT_ANNOTATION: &str = "hypershift.openshift.io/machine-health-check-timeout";
/// See [`MHC_MAX_UNHEALTHY_ANNOTATION`].
pub const MHC_NODE_STARTUP_TIMEOUT_ANNOTATION: &str =
    "hypershift.openshift.io/machine-health-check-node-startup-timeout";

/// `reconcileMachineHealthCheck` (or its deletion without autoRepair).
fn machine_health_check(ctx: &Ctx<'_>, np: &Value, cp_ns: &str) -> Result<(), ApiError> {
    let store = ctx.store;
    // The HO's client is built against v1beta1 ([`super::capi::kind_in`]).
    let kind = &super::capi::kind_in(store, &registry::MACHINE_HEALTH_CHECK, "v1beta1");
    let pool = name_of(np);
    let existing = get(store, kind, cp_ns, pool);
    let auto_repair = np.pointer("/spec/management/autoRepair").and_then(Value::as_bool) == Some(true);
    if !auto_repair {
        if let Some(mhc) = existing {
            delete_if_needed(store, kind, &mhc)?;
        }
        return Ok(());
    }
    let hc = get(
        store,
        &registry::HOSTED_CLUSTER,
        namespace_of(np),
        np.pointer("/spec/clusterName")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let setting = |key: &str, default: &str| -> String {
        annotation(np, key)
            .or_else(|| hc.as_ref().and_then(|h| annotation(h, key)))
            .unwrap_or(default)
            .to_string()
    };
    let timeout = setting(MHC_TIMEOUT_ANNOTATION, "8m0s");
    let max_unhealthy = setting(MHC_MAX_UNHEALTHY_ANNOTATION, "2");
    let max_unhealthy = max_unhealthy
        .parse::<i64>()
        .map(|n| json!(n))
        .unwrap_or_else(|_| json!(max_unhealthy));
    let infra = hc
        .as_ref()
        .and_then(|h| h.pointer("/spec/infraID").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let spec = json!({
        "clusterName": infra,
        "selector": {"matchLabels": {NODE_POOL_LABEL: pool}},
        "unhealthyConditions": [
            {"type": "Ready", "status": "False", "timeout": timeout},
            {"type": "Ready", "status": "Unknown", "timeout": timeout},
        ],
        "maxUnhealthy": max_unhealthy,
        "nodeStartupTimeout": setting(MHC_NODE_STARTUP_TIMEOUT_ANNOTATION, "20m0s"),
    });
    match existing {
        None => {
            let obj = json!({"apiVersion": format!("{}/{}", kind.group, kind.version), "kind": "MachineHealthCheck",
                "metadata": {"name": pool, "namespace": cp_ns,
                    "annotations": {"hypershift.openshift.io/nodePool": format!("{}/{pool}", namespace_of(np))}},
                "spec": spec});
            match store.create(kind, Some(cp_ns), obj, &WriteOptions::default()) {
                Ok(_) => ctx.log.created(ctx.cluster(), "MachineHealthCheck", cp_ns, pool),
                Err(e) if e.reason == crate::kube::error::Reason::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Some(mhc) if mhc.get("spec") != Some(&spec) && !is_deleting(&mhc) => {
            // CreateOrUpdate overwrites what anyone else changed.
            store.patch(
                kind,
                Some(cp_ns),
                pool,
                &Patch::Merge(json!({"spec": spec})),
                &WriteOptions::default(),
            )?;
        }
        Some(_) => {}
    }
    Ok(())
}
