//! Manifests carried from one cluster to another.
//!
//! What a server owns must not travel: `status`, `uid`, `resourceVersion`,
//! `creationTimestamp`, `generation`, `managedFields`, `selfLink`,
//! `deletionTimestamp`, and `ownerReferences` (their UIDs name objects of the
//! old cluster; the garbage collector treats such owners as gone and may
//! delete the dependents). Finalizers belong to the controllers of the old
//! cluster and are dropped too; the new cluster's controllers add their own.

use serde_json::{Map, Value};

/// Metadata fields the server sets.
pub const SERVER_OWNED_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
];

/// Annotations that only make sense on the source cluster.
pub const SOURCE_ONLY_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// Strips status and server-owned metadata so the manifest can be applied
/// to another cluster.
pub fn clean_for_transport(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_OWNED_METADATA {
            meta.remove(*f);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for a in SOURCE_ONLY_ANNOTATIONS {
                ann.remove(*a);
            }
        }
        drop_empty(meta, "annotations");
        drop_empty(meta, "labels");
    }
}

/// Removes annotations whose key starts with `prefix` (e.g. ferry's own bookkeeping).
pub fn remove_annotations_with_prefix(obj: &mut Value, prefix: &str) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.retain(|k, _| !k.starts_with(prefix));
        }
        drop_empty(meta, "annotations");
    }
}

fn drop_empty(meta: &mut Map<String, Value>, key: &str) {
    if meta.get(key).and_then(Value::as_object).is_some_and(Map::is_empty) {
        meta.remove(key);
    }
}

/// Sets an annotation.
pub fn annotate(obj: &mut Value, key: &str, value: &str) {
    if let Some(o) = obj.as_object_mut() {
        let meta = o.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            let ann = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
            if let Some(ann) = ann.as_object_mut() {
                ann.insert(key.to_string(), Value::String(value.to_string()));
            }
        }
    }
}

/// An annotation's value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_owned_fields_and_status_go() {
        let mut o = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "7",
                "ownerReferences": [{"uid": "x"}], "finalizers": ["f"], "labels": {"k": "v"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "data": {"k": "dg=="},
            "status": {"phase": "x"}
        });
        clean_for_transport(&mut o);
        assert_eq!(
            o,
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "a", "namespace": "n", "labels": {"k": "v"}},
                "data": {"k": "dg=="}})
        );
    }

    #[test]
    fn annotations_by_prefix() {
        let mut o = json!({"metadata": {"annotations": {"ferry.dev/a": "1", "keep": "2"}}});
        remove_annotations_with_prefix(&mut o, "ferry.dev/");
        assert_eq!(o, json!({"metadata": {"annotations": {"keep": "2"}}}));
        annotate(&mut o, "x", "y");
        assert_eq!(annotation(&o, "x"), Some("y"));
    }
}
