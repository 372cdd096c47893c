//! The HyperShift operator's CAPI storage migration (`support/capi-crdmigrator`, started by
//! `hypershift-operator/main.go` only when its `CAPI_STORAGE_VERSION` is `v1beta2`, i.e.
//! without `--disable-capi-migration`).
//!
//! For each CAPI CRD whose `status.storedVersions` is not its storage version alone
//! (`storageVersionMigrationRequired`), it re-stores every object in the storage version (a
//! no-op server-side apply: the API server decodes the stored object, through the conversion
//! webhook the operator itself serves, and writes it back), then sets `storedVersions` to the
//! storage version and marks the CRD with `crd-migration.cluster.x-k8s.io/observed-generation`.
//! Its progress is the ConfigMap `hypershift/capi-migration-status` (key `status`: JSON with
//! `totalCRDs`, `migratedCRDs` and the conditions `MigrationComplete`, `Progressing` and
//! `Degraded`, `status.go`).
//!
//! Until it has run, objects written while v1beta1 stored them stay stored as v1beta1: reading
//! or writing them in v1beta2 needs the conversion webhook, which answers only while the
//! operator runs.

use serde_json::{Value, json};

use super::context::Ctx;
use super::install::{CAPI_RESOURCES, NAMESPACE};
use super::{Condition, capi, list, merge_conditions, name_of, namespace_of};
use crate::kube::error::{ApiError, Reason};
use crate::kube::patch::Patch;
use crate::kube::registry::{self, KindInfo};
use crate::kube::store::{Store, WriteOptions};

/// The annotation that records the CRD generation a migration finished at.
pub const OBSERVED_GENERATION_ANNOTATION: &str = "crd-migration.cluster.x-k8s.io/observed-generation";

/// The ConfigMap that reports the migration.
pub const STATUS_CONFIGMAP: &str = "capi-migration-status";

/// Whether the operator runs its migrator: `CAPI_STORAGE_VERSION=v1beta2` in its Deployment.
fn enabled(store: &Store) -> bool {
    super::get(store, &registry::DEPLOYMENT, NAMESPACE, super::install::OPERATOR)
        .and_then(|d| {
            d.pointer("/spec/template/spec/containers/0/env")
                .and_then(Value::as_array)
                .and_then(|env| {
                    env.iter()
                        .find(|e| e.get("name").and_then(Value::as_str) == Some("CAPI_STORAGE_VERSION"))
                        .and_then(|e| e.get("value").and_then(Value::as_str).map(str::to_string))
                })
        })
        .is_some_and(|v| v == "v1beta2")
}

/// The storage version of a CRD (`spec.versions[?storage]`).
pub fn storage_version(crd: &Value) -> Option<String> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)?
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name").and_then(Value::as_str))
        .map(str::to_string)
}

/// `status.storedVersions` of a CRD.
pub fn stored_versions(crd: &Value) -> Vec<String> {
    crd.pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Migrates one CRD; true once it is migrated.
fn migrate(store: &Store, crd: &Value) -> Result<bool, ApiError> {
    let name = name_of(crd).to_string();
    let generation = crd
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .to_string();
    if super::annotation(crd, OBSERVED_GENERATION_ANNOTATION) == Some(generation.as_str()) {
        return Ok(true);
    }
    let storage = storage_version(crd).ok_or_else(|| {
        ApiError::internal(format!(
            "could not find storage version for CustomResourceDefinition {name}"
        ))
    })?;
    if stored_versions(crd) != [storage.clone()] {
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let base = registry::Registry::builtin()
            .kinds()
            .iter()
            .find(|k| k.group == capi::CAPI_GROUP && k.plural == plural)
            .map(|k| KindInfo::clone(k));
        if let Some(base) = base {
            let kind = capi::kind_in(store, &base, &storage);
            for o in list(store, &kind, None) {
                let ns = namespace_of(&o);
                match store.patch(
                    &kind,
                    (!ns.is_empty()).then_some(ns),
                    name_of(&o),
                    &Patch::Merge(json!({})),
                    &WriteOptions::default(),
                ) {
                    Ok(_) => {}
                    Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
                    Err(e) => {
                        return Err(ApiError::internal(format!(
                            "failed to migrate storage version of {} objects: {}",
                            kind.kind, e.message
                        )));
                    }
                }
            }
        }
        store.patch(
            &registry::CUSTOM_RESOURCE_DEFINITION,
            None,
            &name,
            &Patch::Merge(json!({"status": {"storedVersions": [storage]}})),
            &WriteOptions::status(),
        )?;
    }
    store.patch(
        &registry::CUSTOM_RESOURCE_DEFINITION,
        None,
        &name,
        &Patch::Merge(json!({"metadata": {"annotations": {OBSERVED_GENERATION_ANNOTATION: generation}}})),
        &WriteOptions::default(),
    )?;
    Ok(true)
}

/// One pass of the migrator (the operator runs): every CAPI CRD, then the status ConfigMap.
pub(crate) fn reconcile(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    let store = ctx.store;
    if !ctx.opts.capi_migration || !enabled(store) {
        return Ok(());
    }
    let crds: Vec<Value> = list(store, &registry::CUSTOM_RESOURCE_DEFINITION, None)
        .into_iter()
        .filter(|c| {
            c.pointer("/spec/group").and_then(Value::as_str) == Some(capi::CAPI_GROUP)
                && c.pointer("/spec/names/plural")
                    .and_then(Value::as_str)
                    .is_some_and(|p| CAPI_RESOURCES.contains(&p))
        })
        .collect();
    let total = crds.len();
    let mut migrated = 0;
    let mut error = None;
    for crd in &crds {
        match migrate(store, crd) {
            Ok(true) => migrated += 1,
            Ok(false) => {}
            Err(e) => error = Some(e.message),
        }
    }
    write_status(store, total, migrated, error.as_deref())
}

fn write_status(store: &Store, total: usize, migrated: usize, error: Option<&str>) -> Result<(), ApiError> {
    let complete = total > 0 && migrated == total;
    let progress = format!("{migrated}/{total} CRDs migrated");
    let set = [
        if complete {
            Condition::new(
                "MigrationComplete",
                "True",
                "MigrationComplete",
                &format!("All {total} CRDs have been migrated"),
            )
        } else {
            Condition::new("MigrationComplete", "False", "MigrationInProgress", &progress)
        },
        if complete {
            Condition::new("Progressing", "False", "MigrationComplete", "Migration has completed")
        } else {
            Condition::new("Progressing", "True", "MigrationInProgress", &progress)
        },
        match error {
            Some(e) => Condition::new("Degraded", "True", "MigrationError", e),
            None => Condition::new("Degraded", "False", "NoErrors", "No migration errors"),
        },
    ];
    let current = super::get(store, &registry::CONFIG_MAP, NAMESPACE, STATUS_CONFIGMAP);
    let old: Value = current
        .as_ref()
        .and_then(|c| c.pointer("/data/status").and_then(Value::as_str))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| json!({}));
    let old_conditions: Vec<Value> = old
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut conditions = merge_conditions(&old_conditions, &set, 0);
    for c in &mut conditions {
        if let Some(m) = c.as_object_mut() {
            m.remove("observedGeneration");
        }
    }
    let status = json!({"totalCRDs": total, "migratedCRDs": migrated, "conditions": conditions});
    if old == status {
        return Ok(());
    }
    let data = json!({"status": status.to_string()});
    match current {
        None => store
            .create(
                &registry::CONFIG_MAP,
                Some(NAMESPACE),
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": STATUS_CONFIGMAP, "namespace": NAMESPACE}, "data": data}),
                &WriteOptions::default(),
            )
            .map(|_| ()),
        Some(_) => store
            .patch(
                &registry::CONFIG_MAP,
                Some(NAMESPACE),
                STATUS_CONFIGMAP,
                &Patch::Merge(json!({"data": data})),
                &WriteOptions::default(),
            )
            .map(|_| ()),
    }
}
