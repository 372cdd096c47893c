//! Names, kinds and small pure functions of the HyperShift object model.

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
pub const CRD: Kind = ("apiextensions.k8s.io/v1", "CustomResourceDefinition");
pub const VALIDATING_WEBHOOK_CONFIGURATION: Kind =
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration");

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

/// The versions one cluster serves its Cluster API kinds in, asked once per kind, or the
/// versions pinned for them ([`Served::pin`]).
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

    /// Address `gk` in `version` (the version its objects are stored in) rather than the one
    /// the cluster prefers: no request then needs the conversion webhook.
    pub fn pin(&self, gk: GroupKind, version: &str) {
        self.cache.borrow_mut().insert(gk, format!("{}/{version}", gk.group));
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
/// The Cluster API kinds teardown reads and writes with the HyperShift operator stopped, with
/// the plural their CRD is named after (`<plural>.<group>`): while the operator is down, its
/// conversion webhook (`setupCRDs`) does not answer.
pub const TEARDOWN_CAPI_KINDS: &[(GroupKind, &str)] = &[
    (CAPI_CLUSTER, "clusters"),
    (MACHINE_DEPLOYMENT, "machinedeployments"),
    (MACHINE_SET, "machinesets"),
    (MACHINE, "machines"),
    (AWS_CLUSTER, "awsclusters"),
    (AWS_MACHINE_TEMPLATE, "awsmachinetemplates"),
    (AWS_MACHINE, "awsmachines"),
];

/// The validating webhook configuration `hypershift install --enable-validating-webhook`
/// writes (MCE's default): HostedCluster and NodePool UPDATEs need the operator's endpoints.
pub const HYPERSHIFT_WEBHOOK_CONFIGURATION: &str = "hypershift.openshift.io";
/// The label teardown puts on this hosted cluster's HostedCluster and NodePools, which the
/// operator's webhooks are told to leave alone while the operator is stopped.
pub const TEARDOWN_LABEL: &str = "ferry.dev/teardown";
/// On the webhook configuration: the teardowns (`namespace/name`) that need its webhooks to
/// leave their objects alone (the last one puts the selectors back).
pub const WEBHOOK_HOLDERS_ANNOTATION: &str = "ferry.dev/excludes-for-teardown-of";
/// On the webhook configuration: each webhook's `objectSelector` before teardown changed it
/// (JSON, by webhook name).
pub const WEBHOOK_SELECTORS_ANNOTATION: &str = "ferry.dev/object-selectors-before-teardown";

/// Cluster API's annotation that keeps a Machine out of MachineHealthCheck remediation.
pub const SKIP_REMEDIATION_ANNOTATION: &str = "cluster.x-k8s.io/skip-remediation";
/// On a restored Machine: restore set [`SKIP_REMEDIATION_ANNOTATION`] (and removes it once the
/// nodes are Ready).
pub const SKIP_REMEDIATION_SET_ANNOTATION: &str = "ferry.dev/skip-remediation-until-ready";

/// On the restored HostedCluster: when restore completed (RFC 3339).
pub const RESTORE_COMPLETE_ANNOTATION: &str = "ferry.dev/restore-complete";
/// On the restored HostedCluster: when the destination first served a write (ms since the
/// epoch), the end of the API's downtime.
pub const SERVED_WRITE_ANNOTATION: &str = "ferry.dev/served-write-at";

/// The ConfigMap restore writes in the hosted cluster, and deletes, to see the destination
/// serve a write (the end of the API's downtime).
pub const PROBE_CONFIGMAP: (&str, &str) = ("default", "ferry-dr-write-probe");

/// A management cluster's external-dns, as `hypershift install` deploys it.
pub const EXTERNAL_DNS: (&str, &str) = ("hypershift", "external-dns");
/// On an external-dns Deployment: its replicas before ferry scaled it to zero to restart it.
pub const EXTERNAL_DNS_REPLICAS_ANNOTATION: &str = "ferry.dev/replicas-before-restart";
/// On an external-dns Deployment: the hosted clusters (`namespace/name`) whose DNS cut-over
/// restarts it.
pub const EXTERNAL_DNS_HOLDERS_ANNOTATION: &str = "ferry.dev/restarting-for-dns-of";

/// On the source operator Deployment: its replicas before teardown stopped it.
pub const OPERATOR_REPLICAS_ANNOTATION: &str = "ferry.dev/replicas-before-teardown";
/// On the source operator Deployment: the hosted clusters (`namespace/name`, comma-separated)
/// whose teardowns need it stopped. The operator serves every hosted cluster of the management
/// cluster, and a fleet tears several down at once: it runs again only when the last is done.
pub const OPERATOR_HOLDERS_ANNOTATION: &str = "ferry.dev/stopped-for-teardown-of";

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
        ferry_hcp_model::marker_name(&self.name)
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

/// The sum of `spec.replicas` of NodePools.
pub fn replicas_sum<'a>(pools: impl IntoIterator<Item = &'a Value>) -> u64 {
    pools
        .into_iter()
        .map(|np| np.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(0))
        .sum()
}

pub use ferry_hcp_model::{References, own_node_pools};

pub use ferry_sdk::time::{rfc3339, rfc3339_ms};

/// A backup id: the UTC time, sortable (`20261123T101500Z`).
pub fn backup_id(ms: u64) -> String {
    ferry_sdk::time::compact(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_hcp_model::is_backup_id;

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
}
