//! The fields a patch sets, read from its body before the policy decides
//! (`context.patchFields`). A policy can then tell "record an annotation on the
//! operator" from "change the operator's image", which the verb alone cannot.
//!
//! A field is named by its first two levels (`metadata.annotations`,
//! `spec.replicas`, `spec.template`): deep enough to separate what an object
//! is from what is noted on it, short enough for policies to list. A value
//! that is not an object names only its first level (`spec` for `"spec": null`).

use serde_json::Value;

use crate::capabilities::HostError;
use crate::capabilities::bindings::automation::ferry::host::k8s::PatchKind;

/// Fields every apply body carries to name its object; they are not changes.
const IDENTITY: &[&str] = &["apiVersion", "kind", "metadata.name", "metadata.namespace"];

/// The fields `body` sets, sorted and without repeats.
pub(super) fn patch_fields(kind: &PatchKind, body: &Value) -> Result<Vec<String>, HostError> {
    let mut out = Vec::new();
    match kind {
        PatchKind::Merge | PatchKind::Apply => {
            let Value::Object(top) = body else {
                return Err(HostError::Invalid(
                    "a merge or apply patch must be a JSON object".into(),
                ));
            };
            for (k, v) in top {
                match v {
                    Value::Object(inner) if !inner.is_empty() => {
                        out.extend(inner.keys().map(|sub| format!("{k}.{sub}")));
                    }
                    _ => out.push(k.clone()),
                }
            }
        }
        PatchKind::Json => {
            let Value::Array(ops) = body else {
                return Err(HostError::Invalid(
                    "not a JSON patch (RFC 6902): it must be an array of operations".into(),
                ));
            };
            for op in ops {
                for key in ["path", "from"] {
                    if let Some(pointer) = op.get(key).and_then(Value::as_str) {
                        out.push(pointer_field(pointer)?);
                    }
                }
            }
        }
    }
    out.retain(|f| !IDENTITY.contains(&f.as_str()));
    out.sort();
    out.dedup();
    Ok(out)
}

/// `/spec/template/spec` → `spec.template`; `""` (the whole object) → `""`.
fn pointer_field(pointer: &str) -> Result<String, HostError> {
    if pointer.is_empty() {
        return Ok(String::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(HostError::Invalid(format!(
            "JSON patch path `{}` does not start with `/`",
            pointer.escape_debug()
        )));
    };
    let parts: Vec<String> = rest
        .split('/')
        .take(2)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    Ok(parts.join("."))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(kind: PatchKind, body: Value) -> Vec<String> {
        patch_fields(&kind, &body).expect("a valid patch")
    }

    #[test]
    fn an_annotation_patch_is_told_from_an_image_patch() {
        assert_eq!(
            fields(PatchKind::Merge, json!({"metadata": {"annotations": {"a": "1"}}})),
            ["metadata.annotations"]
        );
        assert_eq!(
            fields(
                PatchKind::Merge,
                json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"template": {"spec": {}}}})
            ),
            ["metadata.annotations", "spec.template"]
        );
        assert_eq!(
            fields(
                PatchKind::Json,
                json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "x"}])
            ),
            ["spec.template"]
        );
        assert_eq!(
            fields(
                PatchKind::Json,
                json!([{"op": "move", "from": "/a~1b/c", "path": "/spec"}])
            ),
            ["a/b.c", "spec"]
        );
    }

    #[test]
    fn apply_bodies_leave_out_the_fields_that_name_the_object() {
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "operator", "namespace": "hypershift"}, "spec": {"replicas": 0}});
        assert_eq!(fields(PatchKind::Apply, body), ["spec.replicas"]);
        // Replacing a whole value, or the whole object, is named at its own level.
        assert_eq!(fields(PatchKind::Merge, json!({"spec": null})), ["spec"]);
        assert_eq!(
            fields(PatchKind::Json, json!([{"op": "replace", "path": "", "value": {}}])),
            [""]
        );
    }

    #[test]
    fn bodies_of_the_wrong_shape_are_refused() {
        assert!(patch_fields(&PatchKind::Merge, &json!([1])).is_err());
        assert!(patch_fields(&PatchKind::Json, &json!({"op": "add"})).is_err());
        assert!(patch_fields(&PatchKind::Json, &json!([{"op": "add", "path": "spec"}])).is_err());
    }
}
