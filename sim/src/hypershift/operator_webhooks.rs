//! What the HyperShift operator's webhook server answers (`hypershift-operator/main.go`:
//! `webhook.Options{Port: 9443}`, handlers registered by
//! `controllers/hostedcluster/hostedcluster_webhook.go` `SetupWebhookWithManager` whenever the
//! operator runs with `--cert-dir`, which the installer always passes).
//!
//! It is served at the Service `hypershift/operator`: the API server reaches it only while a pod
//! of the operator is Ready ([`crate::kube::admission`]), so scaling the operator to zero takes
//! these answers away, as on a real management cluster.

use std::sync::Arc;

use serde_json::{Value, json};

use super::install::{
    CONVERT, MUTATE_HOSTED_CLUSTER, MUTATE_NODE_POOL, NAMESPACE, OPERATOR, VALIDATE_HOSTED_CLUSTER, VALIDATE_NODE_POOL,
};
use crate::kube::admission::{AdmissionRequest, AdmissionResponse, Lookup, Operation};
use crate::kube::store::Store;

/// The annotation the KubeVirt validators check (`hyperv1.JSONPatchAnnotation`).
pub const KUBEVIRT_JSON_PATCH_ANNOTATION: &str = "hypershift.openshift.io/kubevirt-vm-jsonpatch";

/// Registers the operator's webhook server on `store`.
pub fn serve(store: &Store) {
    store.serve_admission(
        NAMESPACE,
        OPERATOR,
        MUTATE_HOSTED_CLUSTER,
        Arc::new(default_hosted_cluster),
    );
    store.serve_admission(NAMESPACE, OPERATOR, MUTATE_NODE_POOL, Arc::new(default_node_pool));
    store.serve_admission(NAMESPACE, OPERATOR, VALIDATE_HOSTED_CLUSTER, Arc::new(validate));
    store.serve_admission(NAMESPACE, OPERATOR, VALIDATE_NODE_POOL, Arc::new(validate));
    store.serve_conversion(NAMESPACE, OPERATOR, CONVERT, Arc::new(super::capi::convert));
}

fn str_at<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// `hostedClusterDefaulter.Default`: a release image when none is given (looked up online:
/// the simulator has no network, so that lookup fails as it would without one), and
/// `allocateNodeCIDRs: Disabled` when unset.
fn default_hosted_cluster(req: &AdmissionRequest, _: &dyn Lookup) -> AdmissionResponse {
    let Some(hc) = req.object.as_ref().filter(|_| req.operation == Operation::Create) else {
        return AdmissionResponse::allow();
    };
    if str_at(hc, "/spec/release/image").is_empty() {
        return AdmissionResponse::deny(
            403,
            "unable to find default release image: Get \"https://multi.ocp.releases.ci.openshift.org/api/v1/releasestream/4-stable-multi/latest\": dial tcp: lookup multi.ocp.releases.ci.openshift.org: no such host",
        );
    }
    let mut ops = Vec::new();
    if hc.pointer("/spec/networking/allocateNodeCIDRs").is_none() {
        if hc.pointer("/spec/networking").is_some() {
            ops.push(json!({"op": "add", "path": "/spec/networking/allocateNodeCIDRs", "value": "Disabled"}));
        } else {
            ops.push(json!({"op": "add", "path": "/spec/networking", "value": {"allocateNodeCIDRs": "Disabled"}}));
        }
    }
    AdmissionResponse::patched(ops)
}

/// `nodePoolDefaulter.Default`: a NodePool without a release image takes its HostedCluster's
/// (read from the operator's cache); without a cluster name, or a HostedCluster, it is denied.
fn default_node_pool(req: &AdmissionRequest, lookup: &dyn Lookup) -> AdmissionResponse {
    let Some(np) = req.object.as_ref().filter(|_| req.operation == Operation::Create) else {
        return AdmissionResponse::allow();
    };
    if !str_at(np, "/spec/release/image").is_empty() {
        return AdmissionResponse::allow();
    }
    let cluster = str_at(np, "/spec/clusterName");
    if cluster.is_empty() {
        return AdmissionResponse::deny(403, "nodePool.Spec.ClusterName is a required field");
    }
    match lookup.lookup("hypershift.openshift.io", "hostedclusters", &req.namespace, cluster) {
        // The wrapped NotFound status is what controller-runtime returns.
        None => AdmissionResponse::deny(
            404,
            format!("hostedclusters.hypershift.openshift.io \"{cluster}\" not found"),
        ),
        Some(hc) => AdmissionResponse::patched(vec![json!({"op": "add", "path": "/spec/release",
            "value": {"image": str_at(&hc, "/spec/release/image")}})]),
    }
}

/// `hostedClusterValidator` and `nodePoolValidator`: on KubeVirt, the JSON patch annotation
/// must be a JSON patch (`validateJsonAnnotation`); every other platform is allowed as is.
fn validate(req: &AdmissionRequest, _: &dyn Lookup) -> AdmissionResponse {
    let Some(obj) = req.object.as_ref() else {
        return AdmissionResponse::allow();
    };
    if str_at(obj, "/spec/platform/type") != "KubeVirt" {
        return AdmissionResponse::allow();
    }
    let Some(text) = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(KUBEVIRT_JSON_PATCH_ANNOTATION))
        .and_then(Value::as_str)
    else {
        return AdmissionResponse::allow();
    };
    let wrong = |why: &str| {
        AdmissionResponse::deny(
            403,
            format!("wrong json patch structure in the \"{KUBEVIRT_JSON_PATCH_ANNOTATION}\" annotation: {why}"),
        )
    };
    let ops: Vec<Value> = match serde_json::from_str(text) {
        Ok(Value::Array(ops)) => ops,
        Ok(_) => return wrong("json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
        Err(e) => return wrong(&e.to_string()),
    };
    for op in ops {
        let Some(kind) = op.get("op").and_then(Value::as_str) else {
            return wrong("missing op field");
        };
        if kind != "remove" && op.get("value").is_none() {
            return wrong(&format!(
                "Unexpected kind: %!s(<nil>), {}",
                op.get("path").cloned().unwrap_or_default()
            ));
        }
        if op.get("path").and_then(Value::as_str).is_none() {
            return wrong("missing path field");
        }
    }
    AdmissionResponse::allow()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoObjects;
    impl Lookup for NoObjects {
        fn lookup(&self, _: &str, _: &str, _: &str, _: &str) -> Option<Value> {
            None
        }
    }

    fn create(object: Value) -> AdmissionRequest {
        AdmissionRequest {
            webhook: "w".into(),
            operation: Operation::Create,
            group: "hypershift.openshift.io".into(),
            version: "v1beta1".into(),
            kind: "NodePool".into(),
            resource: "nodepools".into(),
            sub_resource: String::new(),
            namespace: "clusters".into(),
            name: "np".into(),
            object: Some(object),
            old_object: None,
            dry_run: false,
        }
    }

    #[test]
    fn the_defaulters_answer_as_upstreams_do() {
        let r = default_hosted_cluster(
            &create(json!({"spec": {"release": {"image": "x"}, "networking": {}}})),
            &NoObjects,
        );
        assert_eq!(
            r.patch,
            Some(json!([{"op": "add", "path": "/spec/networking/allocateNodeCIDRs", "value": "Disabled"}]))
        );
        let r = default_hosted_cluster(&create(json!({"spec": {}})), &NoObjects);
        assert!(!r.allowed && r.message.starts_with("unable to find default release image"));
        let r = default_node_pool(&create(json!({"spec": {"clusterName": "demo"}})), &NoObjects);
        assert_eq!((r.allowed, r.code), (false, 404));
        let r = default_node_pool(&create(json!({"spec": {}})), &NoObjects);
        assert_eq!(r.message, "nodePool.Spec.ClusterName is a required field");
    }

    #[test]
    fn only_kubevirt_objects_are_validated() {
        let bad = json!({"metadata": {"annotations": {KUBEVIRT_JSON_PATCH_ANNOTATION: "[{\"path\": \"/x\"}]"}},
            "spec": {"platform": {"type": "KubeVirt"}}});
        assert!(!validate(&create(bad.clone()), &NoObjects).allowed);
        let mut aws = bad;
        aws["spec"]["platform"]["type"] = json!("AWS");
        assert!(validate(&create(aws), &NoObjects).allowed);
    }
}
