//! OpenAPI v3 (`/openapi/v3`): the index and one document per group-version, built from the
//! registry the way `apiextensions-apiserver/pkg/controller/openapi/builder/builder.go` builds
//! them for CRDs; and OpenAPI v2 (`/openapi/v2`, JSON or gnostic protobuf).
//!
//! Three clients depend on them:
//! - `kubectl apply` (1.27+) looks for a PATCH operation with the kind's
//!   `x-kubernetes-group-version-kind` and a `fieldValidation` parameter; finding it, it leaves
//!   validation to the server (`fieldValidation=Strict`).
//! - For a `v1 List` (which has no PATCH operation) kubectl validates each item itself against
//!   `/openapi/v2` in protobuf (`validation.schemaValidation.validateResource`). The v2
//!   definitions carry each kind's GVK but no schema, so kubectl checks no item field: unknown
//!   fields of list items are not refused client-side (a real server would). Known divergence.
//! - `kubectl explain` finds the kind's path, then the schema whose GVK list holds the kind.
//!
//! Custom resources get their CRD schema, and PATCH bodies without strategic merge (so
//! kubectl sends a JSON merge patch, as against a real server). Built-in kinds get a
//! permissive schema and PATCH operations without a request body: kubectl then builds
//! strategic merge patches from its compiled-in types, as it does without OpenAPI.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use super::discovery::GIT_VERSION;
use super::registry::{KindInfo, Registry};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `io.openshift.hypershift.v1beta1.HostedCluster`: the reversed group, the version, the kind.
fn schema_name(k: &KindInfo, kind: &str) -> String {
    if k.group.is_empty() {
        return format!("io.k8s.api.core.{}.{kind}", k.version);
    }
    let reversed: Vec<&str> = k.group.split('.').rev().collect();
    format!("{}.{}.{kind}", reversed.join("."), k.version)
}

fn content_hash(doc: &Value) -> String {
    let mut h = DefaultHasher::new();
    doc.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: every served group-version with the hash of its document (kubectl caches
/// documents by that URL, so it changes whenever the document does).
pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, v) in reg.group_versions() {
        let p = gv_path(&g, &v);
        if let Some(doc) = group_version(reg, &p) {
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", content_hash(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

fn param(name: &str, kind: &str) -> Value {
    json!({"name": name, "in": "query", "description": format!("{name} ({kind})"), "schema": {"type": "string", "uniqueItems": true}})
}

fn gvk(k: &KindInfo) -> Value {
    json!({"group": k.group, "version": k.version, "kind": k.kind})
}

fn response(reference: &str) -> Value {
    json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": reference}}}}})
}

fn operations(k: &KindInfo, path: &str, paths: &mut Map<String, Value>) {
    let own = format!("#/components/schemas/{}", schema_name(k, &k.kind));
    let list = format!("#/components/schemas/{}", schema_name(k, &k.list_kind));
    let op = |action: &str, id: &str, reference: &str| {
        json!({
            "operationId": format!("{id}{}", k.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk(k),
            "parameters": [param("dryRun", "string"), param("fieldManager", "string"), param("fieldValidation", "string")],
            "responses": response(reference),
        })
    };
    let mut patch = op("patch", "patch", &own);
    if let Some(params) = patch.get_mut("parameters").and_then(Value::as_array_mut) {
        params.push(param("force", "boolean"));
    }
    if k.schema.is_some() {
        patch["requestBody"] = json!({"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
        }});
    }
    let base = if k.namespaced {
        format!("/{path}/namespaces/{{namespace}}/{}", k.plural)
    } else {
        format!("/{path}/{}", k.plural)
    };
    let mut collection = Map::new();
    if k.allows("list") {
        collection.insert("get".into(), op("list", "list", &list));
    }
    if k.allows("create") {
        collection.insert("post".into(), op("post", "create", &own));
    }
    if k.allows("deletecollection") {
        collection.insert("delete".into(), op("deletecollection", "deletecollection", &own));
    }
    paths.insert(base.clone(), Value::Object(collection));
    let mut item = Map::new();
    if k.allows("get") {
        item.insert("get".into(), op("get", "read", &own));
    }
    if k.allows("update") {
        item.insert("put".into(), op("put", "replace", &own));
    }
    if k.allows("patch") {
        item.insert("patch".into(), patch);
    }
    if k.allows("delete") {
        item.insert("delete".into(), op("delete", "delete", &own));
    }
    paths.insert(format!("{base}/{{name}}"), Value::Object(item));
    if k.status {
        paths.insert(
            format!("{base}/{{name}}/status"),
            json!({"get": op("get", "readStatus", &own), "put": op("put", "replaceStatus", &own)}),
        );
    }
    if k.namespaced && k.allows("list") {
        paths.insert(
            format!("/{path}/{}", k.plural),
            json!({"get": op("list", "listAllNamespaces", &list)}),
        );
    }
}

/// The schema of a kind: the CRD's `openAPIV3Schema` with `apiVersion`, `kind` and `metadata`
/// as the API server adds them, or a permissive object for built-in kinds.
fn kind_schema(k: &KindInfo) -> Value {
    let mut s = match k.openapi.as_deref() {
        Some(raw) => raw.clone(),
        None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "description": format!("{} ({}), served by ferry-sim without a schema", k.kind, k.api_version())}),
    };
    let props = s
        .as_object_mut()
        .map(|m| m.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(props)) = props {
        props.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}),
        );
        props.insert(
            "kind".into(),
            json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}),
        );
        props.insert(
            "metadata".into(),
            json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}],
                "description": "Standard object's metadata."}),
        );
    }
    s["x-kubernetes-group-version-kind"] = json!([{"group": k.group, "kind": k.kind, "version": k.version}]);
    s
}

fn meta_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            json!({"type": "object", "description": "ObjectMeta is metadata that all persisted resources must have.",
            "properties": {
                "name": {"type": "string", "description": "Name must be unique within a namespace."},
                "generateName": {"type": "string", "description": "An optional prefix used by the server to generate a unique name."},
                "namespace": {"type": "string", "description": "Namespace defines the space within which each name must be unique."},
                "uid": {"type": "string"},
                "resourceVersion": {"type": "string"},
                "generation": {"type": "integer", "format": "int64"},
                "creationTimestamp": {"type": "string", "format": "date-time"},
                "deletionTimestamp": {"type": "string", "format": "date-time"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                "finalizers": {"type": "array", "items": {"type": "string"}},
                "ownerReferences": {"type": "array", "items": {"type": "object"}},
            }}),
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
            json!({"type": "object", "properties": {
                "resourceVersion": {"type": "string"}, "continue": {"type": "string"},
                "remainingItemCount": {"type": "integer", "format": "int64"}}}),
        ),
    ]
}

/// `/openapi/v3/{api/v1 | apis/g/v}`: paths and schemas of every kind of one group-version.
pub fn group_version(reg: &Registry, path: &str) -> Option<Value> {
    let (group, version) = reg.group_versions().into_iter().find(|(g, v)| gv_path(g, v) == path)?;
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for k in reg.kinds().iter().filter(|k| k.group == group && k.version == version) {
        operations(k, path, &mut paths);
        schemas.insert(schema_name(k, &k.kind), kind_schema(k));
        schemas.insert(
            schema_name(k, &k.list_kind),
            json!({"type": "object", "required": ["items"], "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{}", schema_name(k, &k.kind))}},
                "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}]}},
                "x-kubernetes-group-version-kind": [{"group": k.group, "kind": k.list_kind, "version": k.version}]}),
        );
    }
    for (name, s) in meta_schemas() {
        schemas.insert(name.into(), s);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `/openapi/v2` as JSON: a Swagger 2.0 document with one definition per served kind, named as
/// kube-apiserver names them and carrying `x-kubernetes-group-version-kind` (what kubectl's
/// `LookupResource` keys on). Definitions have no schema (see the module comment).
pub fn v2_document(reg: &Registry) -> Value {
    let mut definitions = Map::new();
    for k in reg.kinds() {
        definitions.insert(
            schema_name(k, &k.kind),
            json!({"description": format!("{} ({})", k.kind, k.api_version()),
                "x-kubernetes-group-version-kind": [gvk(k)]}),
        );
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": {}, "definitions": definitions})
}

/// The Content-Type of [`v2_protobuf`] as kube-openapi's handler sends it (clients ask with
/// `...spec.v2@v1.0+protobuf`, which is not a valid media type to answer with).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// [`v2_document`] as the gnostic `openapi_v2.Document` protobuf kubectl decodes
/// (`github.com/google/gnostic-models/openapiv2/OpenAPIv2.proto`: Document 1 swagger, 2 info,
/// 9 definitions; Info 1 title, 2 version; Definitions 1 NamedSchema; NamedSchema 1 name,
/// 2 Schema; Schema 4 description, 31 vendor extensions as NamedAny{1 name, 2 Any{2 yaml}}).
pub fn v2_protobuf(reg: &Registry) -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field(num: u64, data: &[u8], out: &mut Vec<u8>) {
        varint((num << 3) | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }
    let mut info = Vec::new();
    field(1, b"Kubernetes", &mut info);
    field(2, GIT_VERSION.as_bytes(), &mut info);
    let mut definitions = Vec::new();
    for k in reg.kinds() {
        let gvk_yaml = format!(
            "- group: {:?}\n  kind: {:?}\n  version: {:?}\n",
            k.group, k.kind, k.version
        );
        let mut any = Vec::new();
        field(2, gvk_yaml.as_bytes(), &mut any);
        let mut ext = Vec::new();
        field(1, b"x-kubernetes-group-version-kind", &mut ext);
        field(2, &any, &mut ext);
        let mut schema = Vec::new();
        field(4, format!("{} ({})", k.kind, k.api_version()).as_bytes(), &mut schema);
        field(31, &ext, &mut schema);
        let mut named = Vec::new();
        field(1, schema_name(k, &k.kind).as_bytes(), &mut named);
        field(2, &schema, &mut named);
        field(1, &named, &mut definitions);
    }
    let mut doc = Vec::new();
    field(1, b"2.0", &mut doc);
    field(2, &info, &mut doc);
    field(9, &definitions, &mut doc);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_declare_server_side_field_validation() {
        let reg = Registry::builtin();
        let doc = group_version(&reg, "apis/apps/v1").expect("doc");
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            patch["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x["name"] == "fieldValidation"))
        );
        // Built-in kinds: no request body, so kubectl uses its compiled-in strategic merge.
        assert!(patch.get("requestBody").is_none());
        assert_eq!(
            doc["components"]["schemas"]["apps.v1.Deployment"]["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let idx = index(&reg);
        assert!(
            idx["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("/openapi/v3/api/v1?hash="))
        );
    }
}
