//! Names, kinds and small pure functions of the HyperShift object model.

use std::collections::BTreeSet;

use ferry_sdk::k8s::obj;
use ferry_sdk::params::Params;
use ferry_sdk::{ObjectRef, Result, invalid};
use serde_json::Value;

/// A Kubernetes kind: (apiVersion, kind).
pub type Kind = (&'static str, &'static str);

pub const NAMESPACE: Kind = ("v1", "Namespace");
pub const SECRET: Kind = ("v1", "Secret");
pub const CONFIG_MAP: Kind = ("v1", "ConfigMap");
pub const POD: Kind = ("v1", "Pod");
pub const NODE: Kind = ("v1", "Node");
pub const DEPLOYMENT: Kind = ("apps/v1", "Deployment");
pub const STATEFUL_SET: Kind = ("apps/v1", "StatefulSet");
pub const ROUTE: Kind = ("route.openshift.io/v1", "Route");
pub const HOSTED_CLUSTER: Kind = ("hypershift.openshift.io/v1beta1", "HostedCluster");
pub const NODE_POOL: Kind = ("hypershift.openshift.io/v1beta1", "NodePool");
pub const HOSTED_CONTROL_PLANE: Kind = ("hypershift.openshift.io/v1beta1", "HostedControlPlane");
pub const CAPI_CLUSTER: Kind = ("cluster.x-k8s.io/v1beta1", "Cluster");
pub const MACHINE_DEPLOYMENT: Kind = ("cluster.x-k8s.io/v1beta1", "MachineDeployment");
pub const MACHINE_SET: Kind = ("cluster.x-k8s.io/v1beta1", "MachineSet");
pub const MACHINE: Kind = ("cluster.x-k8s.io/v1beta1", "Machine");
pub const AWS_CLUSTER: Kind = ("infrastructure.cluster.x-k8s.io/v1beta2", "AWSCluster");
pub const AWS_MACHINE_TEMPLATE: Kind = ("infrastructure.cluster.x-k8s.io/v1beta2", "AWSMachineTemplate");
pub const AWS_MACHINE: Kind = ("infrastructure.cluster.x-k8s.io/v1beta2", "AWSMachine");
pub const CLUSTER_VERSION: Kind = ("config.openshift.io/v1", "ClusterVersion");

/// The AWS and CAPI objects that let the destination adopt the existing
/// machines (the "reuse the nodes" variant), in the order restore applies them.
pub const MACHINE_KINDS: &[Kind] = &[
    AWS_CLUSTER,
    AWS_MACHINE_TEMPLATE,
    AWS_MACHINE,
    MACHINE_DEPLOYMENT,
    MACHINE_SET,
    MACHINE,
];

/// The deployments that write to etcd, scaled to zero for a consistent snapshot.
pub const ETCD_WRITERS: &[&str] = &[
    "kube-apiserver",
    "openshift-apiserver",
    "openshift-oauth-apiserver",
    "control-plane-operator",
];

/// Prefix of ferry's own annotations.
pub const ANNOTATION_PREFIX: &str = "ferry.dev/";
/// On restored objects: the backup they came from.
pub const BACKUP_ID_ANNOTATION: &str = "ferry.dev/backup-id";
/// On the restored HostedCluster: when its presigned URL expires (ms since epoch).
pub const URL_EXPIRES_ANNOTATION: &str = "ferry.dev/restore-url-expires";
/// On the restored HostedCluster: when `finish` completed.
pub const FINISHED_ANNOTATION: &str = "ferry.dev/finished";
/// On the source operator Deployment: its replicas before teardown stopped it.
pub const OPERATOR_REPLICAS_ANNOTATION: &str = "ferry.dev/replicas-before-teardown";

/// A reference to an object of `kind`.
pub fn r(kind: Kind, namespace: Option<&str>, name: &str) -> ObjectRef {
    obj(kind.0, kind.1, namespace, name)
}

/// The hosted cluster being moved.
#[derive(Debug, Clone)]
pub struct HcId {
    /// HostedCluster namespace.
    pub ns: String,
    /// HostedCluster name.
    pub name: String,
    /// Hosted control plane namespace (`<ns>-<name>`, dots replaced).
    pub hcp_ns: String,
}

impl HcId {
    /// From the `hc_namespace` and `hc_name` parameters.
    pub fn from_params(p: &Params) -> Result<HcId> {
        let ns = p.or("hc_namespace", "clusters").to_string();
        let name = p.require("hc_name")?.to_string();
        if !valid_name(&name) || !valid_name(&ns) {
            return Err(invalid(format!(
                "`{ns}/{name}` is not a valid HostedCluster namespace/name (lower-case letters, digits, '-' and '.')"
            )));
        }
        Ok(HcId {
            hcp_ns: hcp_namespace(&ns, &name),
            ns,
            name,
        })
    }

    /// The HostedCluster.
    pub fn hc_ref(&self) -> ObjectRef {
        r(HOSTED_CLUSTER, Some(&self.ns), &self.name)
    }

    /// The marker ConfigMap on the source (backup state).
    pub fn marker_ref(&self) -> ObjectRef {
        r(CONFIG_MAP, Some(&self.ns), &self.marker_name())
    }

    /// The marker's name.
    pub fn marker_name(&self) -> String {
        format!("ferry-dr-{}", self.name)
    }
}

/// HyperShift's HCP namespace name.
pub fn hcp_namespace(ns: &str, name: &str) -> String {
    format!("{ns}-{name}").replace('.', "-")
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The NodePools of the hosted cluster among `pools` (`spec.clusterName`).
pub fn own_node_pools<'a>(pools: &'a [Value], hc_name: &str) -> Vec<&'a Value> {
    pools
        .iter()
        .filter(|np| np.pointer("/spec/clusterName").and_then(Value::as_str) == Some(hc_name))
        .collect()
}

/// The sum of `spec.replicas` of NodePools.
pub fn replicas_sum<'a>(pools: impl IntoIterator<Item = &'a Value>) -> u64 {
    pools
        .into_iter()
        .map(|np| np.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(0))
        .sum()
}

/// Names of Secrets and ConfigMaps a HostedCluster or NodePool spec refers to
/// (pull secret, SSH key, etcd encryption keys, trust bundles, IDP secrets
/// and CAs, serving certificates, NodePool config and tuning config, ...).
#[derive(Debug, Default, Clone)]
pub struct References {
    /// Secret names.
    pub secrets: BTreeSet<String>,
    /// ConfigMap names.
    pub config_maps: BTreeSet<String>,
}

/// Keys whose `{name}` object names a Secret.
const SECRET_KEYS: &[&str] = &[
    "pullSecret",
    "sshKey",
    "activeKey",
    "backupKey",
    "serviceAccountSigningKey",
    "auditWebhook",
    "clientSecret",
    "servingCertificate",
    "bindPassword",
    "kubeconfig",
];
/// Keys whose `{name}` object (or list of them) names a ConfigMap.
const CONFIG_MAP_KEYS: &[&str] = &["additionalTrustBundle", "trustedCA", "ca", "config", "tuningConfig"];

impl References {
    /// Collects references from an object's `spec`.
    pub fn collect(&mut self, obj: &Value) {
        if let Some(spec) = obj.get("spec") {
            self.walk(spec);
        }
    }

    fn walk(&mut self, v: &Value) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let target = if SECRET_KEYS.contains(&k.as_str()) {
                        Some(&mut self.secrets)
                    } else if CONFIG_MAP_KEYS.contains(&k.as_str()) {
                        Some(&mut self.config_maps)
                    } else {
                        None
                    };
                    if let Some(set) = target {
                        for item in child
                            .as_array()
                            .map(|a| a.iter().collect())
                            .unwrap_or_else(|| vec![child])
                        {
                            if let Some(n) = item.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                                set.insert(n.to_string());
                            }
                        }
                    }
                    self.walk(child);
                }
            }
            Value::Array(a) => a.iter().for_each(|c| self.walk(c)),
            _ => {}
        }
    }
}

pub use ferry_sdk::time::rfc3339;

/// A backup id: the UTC time, sortable (`20261123T101500Z`).
pub fn backup_id(ms: u64) -> String {
    ferry_sdk::time::compact(ms)
}

/// Whether a string looks like a backup id.
pub fn is_backup_id(s: &str) -> bool {
    s.len() == 16 && s.as_bytes().get(8) == Some(&b'T') && s.ends_with('Z')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_426_500_000), "2026-11-23T09:35:00Z");
        assert_eq!(backup_id(1_795_426_500_000), "20261123T093500Z");
        assert!(is_backup_id("20261123T093500Z"));
        assert!(!is_backup_id("latest"));
    }

    #[test]
    fn hcp_namespace_replaces_dots() {
        assert_eq!(hcp_namespace("clusters", "demo.one"), "clusters-demo-one");
    }

    #[test]
    fn references_are_found_under_other_names() {
        let hc = json!({"spec": {
            "pullSecret": {"name": "ps"},
            "secretEncryption": {"aescbc": {"activeKey": {"name": "key"}}},
            "additionalTrustBundle": {"name": "bundle"},
            "configuration": {"oauth": {"identityProviders": [
                {"openID": {"clientSecret": {"name": "idp"}, "ca": {"name": "idp-ca"}}}]}},
        }});
        let np = json!({"spec": {"config": [{"name": "tuned-a"}, {"name": "tuned-b"}]}});
        let mut refs = References::default();
        refs.collect(&hc);
        refs.collect(&np);
        assert_eq!(refs.secrets.iter().collect::<Vec<_>>(), ["idp", "key", "ps"]);
        assert_eq!(
            refs.config_maps.iter().collect::<Vec<_>>(),
            ["bundle", "idp-ca", "tuned-a", "tuned-b"]
        );
    }
}
