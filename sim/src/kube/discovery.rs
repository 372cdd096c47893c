//! Discovery documents (`/version`, `/api`, `/apis`, `/apis/{g}/{v}`).
//!
//! Only the legacy (unaggregated) discovery shapes are served; kubectl asks for the aggregated
//! `apidiscovery.k8s.io/v2` list first and falls back when the reply is plain
//! `application/json`. A group's versions are listed most preferred first, in Kubernetes'
//! version order, and `preferredVersion` is the first: what `kubectl get` and a client that
//! asks discovery read and write. The OpenAPI documents are in [`super::openapi`].

use serde_json::{Value, json};

use super::registry::{KindInfo, Registry};

/// The Kubernetes version the simulator claims to be.
pub const GIT_VERSION: &str = "v1.32.0-ferry-sim";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn api_group_list(reg: &Registry) -> Value {
    let mut groups: Vec<String> = Vec::new();
    for (g, _) in reg.group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let entries: Vec<Value> = groups.iter().map(|g| group_entry(g, &reg.versions_of(g))).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": entries})
}

/// `/apis/{group}`, if the group is served.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let versions = reg.versions_of(group);
    if group.is_empty() || versions.is_empty() {
        return None;
    }
    let mut g = group_entry(group, &versions);
    if let Some(m) = g.as_object_mut() {
        m.insert("kind".into(), json!("APIGroup"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    Some(g)
}

fn resource_entries(k: &KindInfo) -> Vec<Value> {
    let mut main = json!({
        "name": k.plural,
        "singularName": k.singular,
        "namespaced": k.namespaced,
        "kind": k.kind,
        "verbs": k.verbs,
    });
    if !k.short_names.is_empty() {
        main["shortNames"] = json!(k.short_names);
    }
    if !k.categories.is_empty() {
        main["categories"] = json!(k.categories);
    }
    let mut out = vec![main];
    if k.status {
        out.push(json!({
            "name": format!("{}/status", k.plural),
            "singularName": "",
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    if k.scale.is_some() {
        // group/version tell client-go's scale client to decode an autoscaling/v1 Scale.
        out.push(json!({
            "name": format!("{}/scale", k.plural),
            "singularName": "",
            "namespaced": k.namespaced,
            "group": "autoscaling",
            "version": "v1",
            "kind": "Scale",
            "verbs": ["get", "patch", "update"],
        }));
    }
    for s in &k.extra_subresources {
        out.push(json!({
            "name": format!("{}/{}", k.plural, s.name),
            "singularName": "",
            "namespaced": k.namespaced,
            "kind": s.kind,
            "verbs": s.verbs,
        }));
    }
    out
}

/// `/api/v1` or `/apis/{group}/{version}`, if served.
pub fn api_resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    if !reg.serves(group, version) {
        return None;
    }
    let resources: Vec<Value> = reg
        .kinds()
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .flat_map(|k| resource_entries(k))
        .collect();
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_list_has_subresources() {
        let reg = Registry::builtin();
        let apps = api_resource_list(&reg, "apps", "v1").expect("served");
        let names: Vec<&str> = apps["resources"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(names.contains(&"deployments"));
        assert!(names.contains(&"deployments/status"));
        assert!(names.contains(&"deployments/scale"));
        assert!(api_resource_list(&reg, "apps", "v2").is_none());
        assert!(api_resource_list(&reg, "nope.io", "v1").is_none());
        let groups = api_group_list(&reg);
        assert!(groups["groups"].as_array().is_some_and(|g| {
            g.iter()
                .any(|e| e["name"] == "hypershift.openshift.io" && e["preferredVersion"]["version"] == "v1beta1")
        }));
    }
}
