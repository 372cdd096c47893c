//! What a hook may see of, and do to, the object an event carries.
//!
//! A hook runs under its own policy, and handing it an object must not widen
//! that policy: a Secret's values reach a hook only when its policy grants
//! reading that Secret, and a `transform-object` hook may change an object but
//! not turn it into another one (a RoleBinding in place of a ConfigMap), which
//! the guest would then apply under the guest's own grants.

use serde_json::Value;

/// Stands for each Secret value a hook may not read. A transform that hands it back
/// gets the original value put back in its place.
pub const REDACTED: &str = "<redacted: the hook's policy does not grant reading this Secret>";

/// The namespace and name of `payload` when it is a core/v1 Secret manifest.
pub fn secret_of(payload: &Value) -> Option<(Option<String>, String)> {
    if payload.get("apiVersion")?.as_str()? != "v1" || payload.get("kind")?.as_str()? != "Secret" {
        return None;
    }
    let meta = payload.get("metadata")?;
    let name = meta.get("name")?.as_str()?.to_string();
    let namespace = meta.get("namespace").and_then(Value::as_str).map(str::to_string);
    Some((namespace, name))
}

/// `secret` with every value of `data` and `stringData` replaced by [`REDACTED`].
pub fn redact(secret: &Value) -> Value {
    let mut out = secret.clone();
    for field in ["data", "stringData"] {
        if let Some(Value::Object(values)) = out.get_mut(field) {
            for v in values.values_mut() {
                *v = Value::String(REDACTED.to_string());
            }
        }
    }
    out
}

/// Puts `original`'s values back where a hook's replacement of a redacted Secret still
/// holds [`REDACTED`]; values the hook set itself stay.
pub fn unredact(replaced: &mut Value, original: &Value) {
    for field in ["data", "stringData"] {
        let (Some(Value::Object(values)), Some(Value::Object(orig))) = (replaced.get_mut(field), original.get(field))
        else {
            continue;
        };
        for (k, v) in values.iter_mut() {
            if v.as_str() == Some(REDACTED)
                && let Some(o) = orig.get(k)
            {
                *v = o.clone();
            }
        }
    }
}

/// `group/Kind namespace/name`, the identity a transform must keep (the version may change).
fn identity(m: &Value) -> String {
    let api = m.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let group = api.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = m.get("kind").and_then(Value::as_str).unwrap_or_default();
    let meta = m.get("metadata");
    let field = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or_default();
    let group = if group.is_empty() { "core" } else { group };
    format!("{group}/{kind} {}/{}", field("namespace"), field("name"))
}

/// `Err` (saying what became what) when `replaced` is not the same object as `original`.
pub fn same_object(original: &Value, replaced: &Value) -> Result<(), String> {
    let (was, now) = (identity(original), identity(replaced));
    if was == now {
        Ok(())
    } else {
        Err(format!(
            "it turned {was} into {now}: a transform may change an object, not replace it with another"
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn secret() -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull-secret", "namespace": "clusters"},
            "data": {".dockerconfigjson": "c2VjcmV0"}, "stringData": {"token": "abc"}})
    }

    #[test]
    fn a_redacted_secret_hides_every_value_and_gets_them_back() {
        let s = secret();
        assert_eq!(secret_of(&s), Some((Some("clusters".into()), "pull-secret".into())));
        let r = redact(&s);
        assert!(
            !r.to_string().contains("c2VjcmV0") && !r.to_string().contains("abc"),
            "{r}"
        );
        let mut back = r.clone();
        back["metadata"]["annotations"] = json!({"site.example/x": "y"});
        back["data"]["new-key"] = json!("bmV3");
        unredact(&mut back, &s);
        assert_eq!(back["data"][".dockerconfigjson"], "c2VjcmV0");
        assert_eq!(back["stringData"]["token"], "abc");
        assert_eq!(back["data"]["new-key"], "bmV3", "a value the hook set stays");
        assert_eq!(
            secret_of(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
            None
        );
    }

    #[test]
    fn a_transform_keeps_the_object_it_was_given() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}});
        let mut changed = cm.clone();
        changed["data"] = json!({"k": "v"});
        assert!(same_object(&cm, &changed).is_ok());
        let rb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "a", "namespace": "n"}});
        let e = same_object(&cm, &rb).expect_err("another kind");
        assert!(
            e.contains("core/ConfigMap n/a into rbac.authorization.k8s.io/RoleBinding n/a"),
            "{e}"
        );
        let mut renamed = cm.clone();
        renamed["metadata"]["name"] = json!("b");
        assert!(same_object(&cm, &renamed).is_err());
        let mut newer = json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine", "metadata": {"name": "m"}});
        let old = newer.clone();
        newer["apiVersion"] = json!("cluster.x-k8s.io/v1beta2");
        assert!(same_object(&old, &newer).is_ok(), "a version change is the same object");
    }
}
