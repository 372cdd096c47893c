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
pub const AWS_ENDPOINT_SERVICE: Kind = ("hypershift.openshift.io/v1beta1", "AWSEndpointService");
pub const SERVICE: Kind = ("v1", "Service");
pub const CLUSTER_VERSION: Kind = ("config.openshift.io/v1", "ClusterVersion");

/// A kind by group, for kinds whose served versions change across releases: Cluster API
/// (`v1beta1` → `v1beta2`) and its AWS provider. Each cluster is asked which version it serves
/// and prefers ([`Served`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKind {
    /// API group.
    pub group: &'static str,
    /// Kind.
    pub kind: &'static str,
}

const fn gk(group: &'static str, kind: &'static str) -> GroupKind {
    GroupKind { group, kind }
}

pub const CAPI_GROUP: &str = "cluster.x-k8s.io";
pub const CAPA_GROUP: &str = "infrastructure.cluster.x-k8s.io";
pub const CAPI_CLUSTER: GroupKind = gk(CAPI_GROUP, "Cluster");
pub const MACHINE_DEPLOYMENT: GroupKind = gk(CAPI_GROUP, "MachineDeployment");
pub const MACHINE_SET: GroupKind = gk(CAPI_GROUP, "MachineSet");
pub const MACHINE: GroupKind = gk(CAPI_GROUP, "Machine");
pub const AWS_CLUSTER: GroupKind = gk(CAPA_GROUP, "AWSCluster");
pub const AWS_MACHINE_TEMPLATE: GroupKind = gk(CAPA_GROUP, "AWSMachineTemplate");
pub const AWS_MACHINE: GroupKind = gk(CAPA_GROUP, "AWSMachine");

/// The AWS and CAPI objects that let the destination adopt the existing
/// machines (the "reuse the nodes" variant), in the order restore applies them.
pub const MACHINE_KINDS: &[GroupKind] = &[
    AWS_CLUSTER,
    AWS_MACHINE_TEMPLATE,
    AWS_MACHINE,
    MACHINE_DEPLOYMENT,
    MACHINE_SET,
    MACHINE,
];

impl GroupKind {
    /// The group and kind of a fixed-version kind.
    pub fn of(k: Kind) -> GroupKind {
        gk(group_of(k.0), k.1)
    }

    /// Whether an object of `api_version`/`kind` is of this group and kind (any version).
    pub fn matches(&self, api_version: &str, kind: &str) -> bool {
        kind == self.kind && group_of(api_version) == self.group
    }
}

/// The group of an `apiVersion` (`""` for the core group).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The versions one cluster serves its Cluster API kinds in, asked once per kind.
pub struct Served<'a> {
    cluster: &'a ferry_sdk::k8s::Cluster,
    cache: std::cell::RefCell<std::collections::BTreeMap<GroupKind, String>>,
}

impl<'a> Served<'a> {
    /// For `cluster`.
    pub fn new(cluster: &'a ferry_sdk::k8s::Cluster) -> Self {
        Served {
            cluster,
            cache: Default::default(),
        }
    }

    /// The `apiVersion` the cluster serves and prefers for `gk`.
    pub fn api_version(&self, gk: GroupKind) -> Result<String> {
        if let Some(v) = self.cache.borrow().get(&gk) {
            return Ok(v.clone());
        }
        let v = self.cluster.api_version(gk.group, gk.kind).map_err(|e| {
            ferry_sdk::context(
                e,
                format!(
                    "which version of {}/{} cluster `{}` serves",
                    gk.group,
                    gk.kind,
                    self.cluster.alias()
                ),
            )
        })?;
        self.cache.borrow_mut().insert(gk, v.clone());
        Ok(v)
    }

    /// A reference to an object of `gk` in the served version.
    pub fn r(&self, gk: GroupKind, namespace: Option<&str>, name: &str) -> Result<ObjectRef> {
        Ok(obj(&self.api_version(gk)?, gk.kind, namespace, name))
    }

    /// Lists objects of `gk` in `namespace`.
    pub fn list(&self, gk: GroupKind, namespace: &str) -> Result<Vec<Value>> {
        self.cluster
            .list(&self.api_version(gk)?, gk.kind, Some(namespace), None)
    }
}

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

/// Names of the Secrets and ConfigMaps of the HostedCluster namespace that a HostedCluster or
/// NodePool refers to: what the destination's operator must find there.
#[derive(Debug, Default, Clone)]
pub struct References {
    /// Secret names.
    pub secrets: BTreeSet<String>,
    /// ConfigMap names.
    pub config_maps: BTreeSet<String>,
}

/// Where a HostedCluster names a Secret (`*`: every item of a list): its own fields
/// (`hostedcluster_types.go` and the platform types), then `spec.configuration` as upstream's
/// `api/util/configrefs` (`SecretRefs`) collects it.
const HC_SECRET_PATHS: &[&str] = &[
    "/spec/pullSecret",
    "/spec/sshKey",
    "/spec/serviceAccountSigningKey",
    "/spec/auditWebhook",
    "/spec/secretEncryption/aescbc/activeKey",
    "/spec/secretEncryption/aescbc/backupKey",
    "/spec/secretEncryption/kms/ibmcloud/auth/unmanaged/credentials",
    "/spec/etcd/unmanaged/tls/clientSecret",
    "/spec/platform/openstack/identityRef",
    "/spec/platform/kubevirt/credentials/infraKubeConfigSecret",
    "/spec/platform/powervs/kubeCloudControllerCreds",
    "/spec/platform/powervs/nodePoolManagementCreds",
    "/spec/platform/powervs/ingressOperatorCloudCreds",
    "/spec/platform/powervs/storageOperatorCloudCreds",
    "/spec/platform/powervs/imageRegistryOperatorCloudCreds",
    "/spec/configuration/apiServer/servingCerts/namedCertificates/*/servingCertificate",
    "/spec/configuration/authentication/webhookTokenAuthenticators/*/kubeConfig",
    "/spec/configuration/authentication/webhookTokenAuthenticator/kubeConfig",
    "/spec/configuration/oauth/identityProviders/*/basicAuth/tlsClientCert",
    "/spec/configuration/oauth/identityProviders/*/basicAuth/tlsClientKey",
    "/spec/configuration/oauth/identityProviders/*/github/clientSecret",
    "/spec/configuration/oauth/identityProviders/*/gitlab/clientSecret",
    "/spec/configuration/oauth/identityProviders/*/google/clientSecret",
    "/spec/configuration/oauth/identityProviders/*/htpasswd/fileData",
    "/spec/configuration/oauth/identityProviders/*/keystone/tlsClientCert",
    "/spec/configuration/oauth/identityProviders/*/keystone/tlsClientKey",
    "/spec/configuration/oauth/identityProviders/*/ldap/bindPassword",
    "/spec/configuration/oauth/identityProviders/*/openID/clientSecret",
    "/spec/configuration/oauth/templates/login",
    "/spec/configuration/oauth/templates/providerSelection",
    "/spec/configuration/oauth/templates/error",
];

/// `configrefs` collects OIDC client secrets only when `authentication.type` is `OIDC`.
const HC_OIDC_SECRET_PATHS: &[&str] =
    &["/spec/configuration/authentication/oidcProviders/*/oidcClients/*/clientSecret"];

/// Where a HostedCluster names a ConfigMap: `spec.additionalTrustBundle`, then
/// `configrefs`' `ConfigMapRefs`.
const HC_CONFIG_MAP_PATHS: &[&str] = &[
    "/spec/additionalTrustBundle",
    "/spec/configuration/apiServer/clientCA",
    "/spec/configuration/authentication/oauthMetadata",
    "/spec/configuration/image/additionalTrustedCA",
    "/spec/configuration/oauth/identityProviders/*/basicAuth/ca",
    "/spec/configuration/oauth/identityProviders/*/github/ca",
    "/spec/configuration/oauth/identityProviders/*/gitlab/ca",
    "/spec/configuration/oauth/identityProviders/*/keystone/ca",
    "/spec/configuration/oauth/identityProviders/*/ldap/ca",
    "/spec/configuration/oauth/identityProviders/*/openID/ca",
    "/spec/configuration/oauth/identityProviders/*/requestHeader/ca",
    "/spec/configuration/proxy/trustedCA",
    "/spec/configuration/scheduler/policy",
];

/// `configrefs` collects the OIDC issuer CA only when `authentication.type` is `OIDC`.
const HC_OIDC_CONFIG_MAP_PATHS: &[&str] =
    &["/spec/configuration/authentication/oidcProviders/*/issuer/issuerCertificateAuthority"];

/// Where a NodePool names ConfigMaps (`nodepool_types.go`: `config`, `tuningConfig`).
const NP_CONFIG_MAP_PATHS: &[&str] = &["/spec/config/*", "/spec/tuningConfig/*"];

/// The `name` of every object `path` (JSON pointer, `*` for each list item) leads to.
fn names_at<'v>(v: &'v Value, path: &str, out: &mut Vec<&'v str>) {
    let path = path.trim_start_matches('/');
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    if head.is_empty() {
        if let Some(n) = v.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            out.push(n);
        }
        return;
    }
    if head == "*" {
        for item in v.as_array().into_iter().flatten() {
            names_at(item, rest, out);
        }
    } else if let Some(child) = v.get(head) {
        names_at(child, rest, out);
    }
}

impl References {
    /// Collects the references of a HostedCluster or NodePool (by its `kind`).
    pub fn collect(&mut self, obj: &Value) {
        let oidc = obj
            .pointer("/spec/configuration/authentication/type")
            .and_then(Value::as_str)
            == Some("OIDC");
        let (secrets, config_maps): (Vec<&str>, Vec<&str>) = match obj.get("kind").and_then(Value::as_str) {
            Some("NodePool") => (Vec::new(), NP_CONFIG_MAP_PATHS.to_vec()),
            _ => {
                let mut s = HC_SECRET_PATHS.to_vec();
                let mut c = HC_CONFIG_MAP_PATHS.to_vec();
                if oidc {
                    s.extend(HC_OIDC_SECRET_PATHS);
                    c.extend(HC_OIDC_CONFIG_MAP_PATHS);
                }
                (s, c)
            }
        };
        for (paths, set) in [(secrets, &mut self.secrets), (config_maps, &mut self.config_maps)] {
            let mut found = Vec::new();
            for p in paths {
                names_at(obj, p, &mut found);
            }
            set.extend(found.into_iter().map(str::to_string));
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
    fn references_follow_upstream_configrefs() {
        let hc = json!({"kind": "HostedCluster", "spec": {
            "pullSecret": {"name": "ps"},
            "secretEncryption": {"aescbc": {"activeKey": {"name": "key"}}},
            "additionalTrustBundle": {"name": "bundle"},
            "configuration": {
                "apiServer": {"clientCA": {"name": "client-ca"},
                    "servingCerts": {"namedCertificates": [{"servingCertificate": {"name": "api-cert"}}]}},
                "authentication": {"oauthMetadata": {"name": "meta"},
                    "oidcProviders": [{"issuer": {"issuerCertificateAuthority": {"name": "oidc-ca"}},
                        "oidcClients": [{"clientSecret": {"name": "oidc-secret"}}]}]},
                "image": {"additionalTrustedCA": {"name": "registry-ca"}},
                "oauth": {"identityProviders": [
                    {"htpasswd": {"fileData": {"name": "htpass"}}},
                    {"openID": {"clientSecret": {"name": "idp"}, "ca": {"name": "idp-ca"}}},
                    {"requestHeader": {"ca": {"name": "rh-ca"}}}],
                    "templates": {"login": {"name": "login"}, "error": {"name": ""}}},
                "proxy": {"trustedCA": {"name": "proxy-ca"}},
                "scheduler": {"policy": {"name": "sched"}},
            },
        }});
        let np = json!({"kind": "NodePool", "spec": {"config": [{"name": "tuned-a"}], "tuningConfig": [{"name": "tuned-b"}],
            "pullSecret": {"name": "not-a-nodepool-field"}}});
        let mut refs = References::default();
        refs.collect(&hc);
        refs.collect(&np);
        assert_eq!(
            refs.secrets.iter().collect::<Vec<_>>(),
            ["api-cert", "htpass", "idp", "key", "login", "ps"]
        );
        assert_eq!(
            refs.config_maps.iter().collect::<Vec<_>>(),
            [
                "bundle",
                "client-ca",
                "idp-ca",
                "meta",
                "proxy-ca",
                "registry-ca",
                "rh-ca",
                "sched",
                "tuned-a",
                "tuned-b"
            ]
        );
        // OIDC references count only when the authentication type is OIDC (configrefs).
        let mut oidc = hc.clone();
        oidc["spec"]["configuration"]["authentication"]["type"] = json!("OIDC");
        let mut refs = References::default();
        refs.collect(&oidc);
        assert!(refs.secrets.contains("oidc-secret") && refs.config_maps.contains("oidc-ca"));
    }
}
