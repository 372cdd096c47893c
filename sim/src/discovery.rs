//! Discovery documents (`/version`, `/api`, `/apis`, `/apis/{g}/{v}`) and a minimal OpenAPI v3.
//!
//! Only the legacy (unaggregated) discovery shapes are served; kubectl asks for the aggregated
//! `apidiscovery.k8s.io/v2` list first and falls back when the reply is plain
//! `application/json`.
//!
//! OpenAPI: `/openapi/v2` is 404. `/openapi/v3` serves one tiny document per group-version that
//! only declares, for each kind, a PATCH operation accepting the `fieldValidation` query
//! parameter. That is what kubectl (1.27+) checks before `create`/`apply` to decide that
//! validation is done server-side; with both OpenAPI endpoints missing it refuses with
//! "failed to download openapi" unless `--validate=false` is given. The PATCH operations carry
//! no request body, so kubectl's client-side apply does not try to build a strategic merge
//! patch from OpenAPI schemas and uses its compiled-in types (built-in kinds) or a JSON merge
//! patch (custom resources), exactly as with a server without OpenAPI.

use serde_json::{Value, json};

use crate::registry::{KindInfo, Registry};

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

fn group_entry(group: &str, versions: &[&str]) -> Value {
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

fn versions_of<'a>(reg: &'a Registry, group: &str) -> Vec<&'a str> {
    reg.group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(_, v)| v)
        .collect()
}

/// `/apis`.
pub fn api_group_list(reg: &Registry) -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in reg.group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let entries: Vec<Value> = groups.iter().map(|g| group_entry(g, &versions_of(reg, g))).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": entries})
}

/// `/apis/{group}`, if the group is served.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let versions = versions_of(reg, group);
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
        "singularName": k.singular(),
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
    for s in k.extra_subresources {
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

/// A stable content hash for the OpenAPI v3 URLs (clients cache documents by it).
const OPENAPI_HASH: &str = "ferry-sim-1";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn openapi_v3_root(reg: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in reg.group_versions() {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={OPENAPI_HASH}")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/{api/v1 | apis/g/v}`: see the module documentation for why it is this small.
pub fn openapi_v3_group_version(reg: &Registry, path: &str) -> Option<Value> {
    let (group, version) = reg.group_versions().into_iter().find(|(g, v)| gv_path(g, v) == path)?;
    let mut paths = serde_json::Map::new();
    for k in reg
        .kinds()
        .iter()
        .filter(|k| k.group == group && k.version == version && k.allows("patch"))
    {
        let url = if k.namespaced {
            format!("/{path}/namespaces/{{namespace}}/{}/{{name}}", k.plural)
        } else {
            format!("/{path}/{}/{{name}}", k.plural)
        };
        paths.insert(
            url,
            json!({
                "patch": {
                    "operationId": format!("patch{}", k.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {
                        "group": k.group, "version": k.version, "kind": k.kind,
                    },
                    "parameters": [
                        {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                        {"name": "force", "in": "query", "schema": {"type": "boolean"}},
                    ],
                    "responses": {"200": {"description": "OK"}},
                }
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
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
        let doc = openapi_v3_group_version(&reg, "apis/apps/v1").expect("doc");
        assert!(doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"].is_object());
    }
}
