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
