//! Patch semantics: JSON merge patch (RFC 7386), JSON patch (RFC 6902), a schema-free strategic
//! merge patch, and the merge used by server-side apply.
//!
//! Strategic merge patch normally reads `patchMergeKey` / `patchStrategy` from the Go types.
//! Without schemas we keep a small table of the list fields that matter (containers, volumes,
//! env, ports, conditions, ownerReferences, finalizers...) keyed by field name; every other list
//! is replaced, which is also what the real server does for lists without a patch strategy.
//! The `$patch`, `$retainKeys`, `$setElementOrder/` and `$deleteFromPrimitiveList/` directives
//! that kubectl's client-side apply emits are understood.

use serde_json::{Map, Value};

use crate::kube::error::ApiError;

/// Media types of PATCH bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json` (built-in kinds only).
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// Parse a `Content-Type` header value (parameters such as `; charset=utf-8` are ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base.to_ascii_lowercase().as_str() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media types a kind accepts, in the order the real server lists them in 415 errors.
    pub fn accepted(strategic: bool) -> &'static [&'static str] {
        if strategic {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
                "application/strategic-merge-patch+json",
            ]
        } else {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
        }
    }
}

/// A patch request as the store executes it.
#[derive(Debug, Clone)]
pub enum Patch {
    /// RFC 7386 merge patch.
    Merge(Value),
    /// RFC 6902 JSON patch (an array of operations).
    Json(Value),
    /// Strategic merge patch.
    Strategic(Value),
    /// Server-side apply of a full (partial) object configuration.
    Apply {
        /// The applied configuration.
        config: Value,
        /// Required field manager.
        field_manager: String,
        /// `force=true`.
        force: bool,
    },
}

/// RFC 7386 merge: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch, applied atomically. A malformed document is 400; an operation that
/// fails (a `test` that does not match, a path that does not exist) is 422 like the real server.
///
/// One deliberate deviation from RFC 6902, copied from the apiserver's evanphx/json-patch: a
/// `test` for `null` succeeds on a missing path. kube-runtime's `finalizer()` helper relies on
/// it (`test /metadata/finalizers == null` before adding the first finalizer).
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut work = target.clone();
    for (i, op) in ops.0.iter().enumerate() {
        if let json_patch::PatchOperation::Test(t) = op
            && t.value.is_null()
            && work.pointer(t.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(&mut work, std::slice::from_ref(op)).map_err(|e| {
            ApiError::invalid_plain(format!(
                "operation {i} ({}) failed at path '{}': {}",
                op_name(op),
                op.path(),
                e.kind
            ))
        })?;
    }
    *target = work;
    Ok(())
}

fn op_name(op: &json_patch::PatchOperation) -> &'static str {
    match op {
        json_patch::PatchOperation::Add(_) => "add",
        json_patch::PatchOperation::Remove(_) => "remove",
        json_patch::PatchOperation::Replace(_) => "replace",
        json_patch::PatchOperation::Move(_) => "move",
        json_patch::PatchOperation::Copy(_) => "copy",
        json_patch::PatchOperation::Test(_) => "test",
    }
}

/// The merge key of a list field for strategic merge, if it is a keyed list.
fn merge_key(field: &str, elems: &[&Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "topologySpreadConstraints" => "topologyKey",
        // Container ports merge on containerPort, Service ports on port.
        "ports" => {
            if elems.iter().any(|e| e.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Primitive lists with the `merge` strategy (set union) instead of replacement.
fn is_merging_primitive_list(field: &str) -> bool {
    field == "finalizers"
}

/// Remove directives from a value that is inserted wholesale (no existing counterpart).
fn strip_directives(v: &Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.get("$patch").and_then(Value::as_str) == Some("delete") {
                return None;
            }
            let mut out = Map::new();
            for (k, val) in m {
                if k.starts_with('$') || val.is_null() {
                    continue;
                }
                if let Some(clean) = strip_directives(val) {
                    out.insert(k.clone(), clean);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(
            a.iter()
                .filter(|e| {
                    !(e.as_object()
                        .is_some_and(|m| m.len() == 1 && m.get("$patch").and_then(Value::as_str) == Some("replace")))
                })
                .filter_map(strip_directives)
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Strategic merge patch of `patch` into `target` (both objects).
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Some(p) = patch.as_object() else {
        return Err(ApiError::bad_request(
            "strategic merge patch body must be a JSON object",
        ));
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(t) = target.as_object_mut() {
        smp_object(t, p);
    }
    Ok(())
}

fn smp_object(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        if let Some(Value::Object(clean)) = strip_directives(&Value::Object(patch.clone())) {
            *target = clean;
        }
        return;
    }
    let mut orders: Vec<(&str, &Vec<Value>)> = Vec::new();
    for (k, pv) in patch {
        if let Some(directive) = k.strip_prefix('$') {
            if let Some(field) = directive.strip_prefix("setElementOrder/") {
                if let Some(order) = pv.as_array() {
                    orders.push((field, order));
                }
            } else if let Some(field) = directive.strip_prefix("deleteFromPrimitiveList/")
                && let (Some(Value::Array(list)), Some(remove)) = (target.get_mut(field), pv.as_array())
            {
                list.retain(|e| !remove.contains(e));
            }
            continue;
        }
        if pv.is_null() {
            target.remove(k);
            continue;
        }
        match (target.get_mut(k), pv) {
            (Some(Value::Object(t)), Value::Object(p)) => {
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    target.remove(k);
                } else {
                    smp_object(t, p);
                }
            }
            (Some(Value::Array(t)), Value::Array(p)) => smp_list(k, t, p),
            (_, pv) => match strip_directives(pv) {
                Some(clean) => {
                    target.insert(k.clone(), clean);
                }
                None => {
                    target.remove(k);
                }
            },
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = target.get_mut(field) {
            reorder(field, list, order);
        }
    }
}

fn smp_list(field: &str, target: &mut Vec<Value>, patch: &[Value]) {
    let replace_marker = |e: &Value| {
        e.as_object()
            .is_some_and(|m| m.len() == 1 && m.get("$patch").and_then(Value::as_str) == Some("replace"))
    };
    if patch.iter().any(replace_marker) {
        if let Some(Value::Array(clean)) = strip_directives(&Value::Array(patch.to_vec())) {
            *target = clean;
        }
        return;
    }
    let all_objects = patch.iter().all(Value::is_object) && target.iter().all(Value::is_object);
    let elems: Vec<&Value> = patch.iter().chain(target.iter()).collect();
    match merge_key(field, &elems) {
        Some(key) if all_objects => {
            for pe in patch {
                let kv = pe.get(key);
                let delete = pe.get("$patch").and_then(Value::as_str) == Some("delete");
                if delete {
                    target.retain(|te| te.get(key) != kv);
                    continue;
                }
                match target.iter_mut().find(|te| kv.is_some() && te.get(key) == kv) {
                    Some(Value::Object(te)) => {
                        if let Some(p) = pe.as_object() {
                            smp_object(te, p);
                        }
                    }
                    _ => {
                        if let Some(clean) = strip_directives(pe) {
                            target.push(clean);
                        }
                    }
                }
            }
        }
        _ if is_merging_primitive_list(field) => {
            for pe in patch {
                if !target.contains(pe) {
                    target.push(pe.clone());
                }
            }
        }
        _ => {
            *target = patch.iter().filter_map(strip_directives).collect();
        }
    }
}

/// `$setElementOrder`: listed elements first in the given order, the rest after.
fn reorder(field: &str, list: &mut Vec<Value>, order: &[Value]) {
    let elems: Vec<&Value> = order.iter().collect();
    let key = merge_key(field, &elems);
    let same = |a: &Value, b: &Value| match key {
        Some(k) if a.is_object() => a.get(k) == b.get(k),
        _ => a == b,
    };
    let mut rest = std::mem::take(list);
    for o in order {
        if let Some(pos) = rest.iter().position(|e| same(o, e)) {
            list.push(rest.remove(pos));
        }
    }
    list.extend(rest);
}

/// Merge an applied configuration onto the live object (server-side apply without field
/// ownership): built-in kinds use the strategic rules (keyed lists merge), custom resources
/// use JSON merge semantics (lists are atomic, as in a CRD without `x-kubernetes-list-type`).
pub fn apply_merge(target: &mut Value, config: &Value, strategic: bool) -> Result<(), ApiError> {
    if strategic {
        strategic_merge_patch(target, config)
    } else {
        merge_patch(target, config);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_ops_and_failures() {
        let mut t = json!({"data": {"a": "1"}});
        json_patch(
            &mut t,
            &json!([{"op": "test", "path": "/data/a", "value": "1"},
                    {"op": "replace", "path": "/data/a", "value": "2"},
                    {"op": "add", "path": "/data/b", "value": "3"}]),
        )
        .expect("applies");
        assert_eq!(t, json!({"data": {"a": "2", "b": "3"}}));
        let before = t.clone();
        let err = json_patch(
            &mut t,
            &json!([{"op": "replace", "path": "/data/a", "value": "9"},
                    {"op": "test", "path": "/data/a", "value": "nope"}]),
        )
        .expect_err("test fails");
        assert_eq!(err.code(), 422);
        assert_eq!(t, before, "a failed JSON patch changes nothing");
        let err = json_patch(&mut t, &json!([{"op": "remove", "path": "/missing/x"}])).expect_err("bad path");
        assert_eq!(err.code(), 422);
        let err = json_patch(&mut t, &json!({"op": "remove"})).expect_err("not an array");
        assert_eq!(err.code(), 400);
        // kube-runtime's finalizer(): test-for-null on a missing path, then add.
        let mut o = json!({"metadata": {"name": "x"}});
        json_patch(
            &mut o,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]),
        )
        .expect("null test on a missing path passes");
        assert_eq!(o["metadata"]["finalizers"], json!(["f"]));
        // ...but once the path exists, testing it for null fails.
        let err = json_patch(
            &mut o,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]),
        )
        .expect_err("not null any more");
        assert_eq!(err.code(), 422);
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ], "tolerations": [{"key": "k"}]}}}});
        strategic_merge_patch(
            &mut t,
            &json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                {"name": "c", "image": "c:1"},
                {"name": "b", "$patch": "delete"}
            ], "tolerations": [{"key": "z"}]}}}}),
        )
        .expect("applies");
        let c = &t["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().map(Vec::len), Some(2));
        assert_eq!(c[0]["image"], "a:2");
        assert_eq!(
            c[0]["env"],
            json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}])
        );
        assert_eq!(c[1]["name"], "c");
        // Lists without a merge key are replaced.
        assert_eq!(t["spec"]["template"]["spec"]["tolerations"], json!([{"key": "z"}]));
    }

    #[test]
    fn strategic_directives() {
        let mut t = json!({"metadata": {"finalizers": ["a", "b"]},
                           "ports": [{"port": 80, "name": "http"}, {"port": 443}],
                           "data": {"x": "1", "y": "2"}});
        strategic_merge_patch(
            &mut t,
            &json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]},
                    "$setElementOrder/ports": [{"port": 443}, {"port": 80}],
                    "ports": [{"port": 80, "name": "web"}],
                    "data": {"$patch": "replace", "z": "3"}}),
        )
        .expect("applies");
        assert_eq!(t["metadata"]["finalizers"], json!(["b", "c"]));
        assert_eq!(t["ports"], json!([{"port": 443}, {"port": 80, "name": "web"}]));
        assert_eq!(t["data"], json!({"z": "3"}));
        let err = strategic_merge_patch(&mut t, &json!([1])).expect_err("not an object");
        assert_eq!(err.code(), 400);
    }

    #[test]
    fn apply_merge_flavours() {
        let live = json!({"spec": {"containers": [{"name": "a", "image": "1"}], "list": [1]}});
        let cfg = json!({"spec": {"containers": [{"name": "b", "image": "2"}], "list": [2]}});
        let mut builtin = live.clone();
        apply_merge(&mut builtin, &cfg, true).expect("applies");
        assert_eq!(builtin["spec"]["containers"].as_array().map(Vec::len), Some(2));
        let mut custom = live;
        apply_merge(&mut custom, &cfg, false).expect("applies");
        assert_eq!(custom["spec"]["containers"].as_array().map(Vec::len), Some(1));
        assert_eq!(custom["spec"]["list"], json!([2]));
    }
}
