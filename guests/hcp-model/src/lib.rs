//! Which objects of a HostedCluster's namespace belong to it.
//!
//! HostedClusters share their namespace (`clusters` by convention), and moving one must not
//! touch its siblings' Secrets, ConfigMaps or NodePools. The stock guest uses this rule to
//! choose what to carry, and ferry's DR runner uses the same rule, before a phase starts, to
//! tell the policy which objects the run may reach. One crate, so the two cannot disagree.

use std::collections::BTreeSet;

use serde_json::Value;

/// The name of ferry's marker ConfigMap for hosted cluster `hc_name`, in its namespace.
pub fn marker_name(hc_name: &str) -> String {
    format!("ferry-dr-{hc_name}")
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

/// Where the backups of hosted cluster `ns/name` live in the bucket: `<prefix>/<ns>/<name>/`,
/// each in a folder named by its [backup id](is_backup_id) holding `index.json`.
pub fn backup_root(s3_prefix: &str, ns: &str, name: &str) -> String {
    format!("{}/{ns}/{name}/", s3_prefix.trim_end_matches('/'))
}

/// The `s3_prefix` used when the site sets none.
pub const DEFAULT_S3_PREFIX: &str = "hosted-clusters";

/// The backup id of `key` when it is a backup's index under `root` (`<root><id>/index.json`):
/// how both the guest and ferry-dr find the backups a listing holds.
pub fn indexed_backup_id<'k>(root: &str, key: &'k str) -> Option<&'k str> {
    key.strip_prefix(root)?
        .strip_suffix("/index.json")
        .filter(|id| is_backup_id(id))
}

/// Whether a string looks like a backup id: the UTC time, sortable (`20261123T101500Z`).
pub fn is_backup_id(s: &str) -> bool {
    s.len() == 16 && s.as_bytes().get(8) == Some(&b'T') && s.ends_with('Z')
}

/// What of the shared namespace belongs to one hosted cluster, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Owned {
    /// Secret names.
    pub secrets: BTreeSet<String>,
    /// ConfigMap names (ferry's marker included).
    pub config_maps: BTreeSet<String>,
    /// NodePool names.
    pub node_pools: BTreeSet<String>,
}

impl Owned {
    /// Adds what `other` owns.
    pub fn merge(&mut self, other: Owned) {
        self.secrets.extend(other.secrets);
        self.config_maps.extend(other.config_maps);
        self.node_pools.extend(other.node_pools);
    }
}

/// The NodePools of `pools` whose `spec.clusterName` is `hc_name`: upstream's only link from a
/// NodePool to its HostedCluster (`nodepool_types.go`, `ClusterName`).
pub fn own_node_pools<'a>(pools: &'a [Value], hc_name: &str) -> Vec<&'a Value> {
    pools
        .iter()
        .filter(|np| np.pointer("/spec/clusterName").and_then(Value::as_str) == Some(hc_name))
        .collect()
}

/// An object's `metadata.name`, or "" when it has none.
pub fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

/// Whether `n` looks like hosted cluster `hc_name`'s by name (`<hc_name>-…`, as `hypershift
/// create cluster` names the Secrets it makes), and no sibling with a longer name claims it
/// the same way (`prod-a-x` belongs to `prod-a-x`'s cluster, not to `prod-a`'s).
pub fn named_after(n: &str, hc_name: &str, siblings: &[&str]) -> bool {
    let claims = |owner: &str| n.strip_prefix(owner).is_some_and(|rest| rest.starts_with('-'));
    claims(hc_name) && !siblings.iter().any(|s| s.len() > hc_name.len() && claims(s))
}

/// Resolves what hosted cluster `hc` owns in its namespace, given every NodePool and
/// HostedCluster of that namespace and the names of the Secrets and ConfigMaps present.
/// Referenced names are owned even when absent, so that a reader asking for them finds them
/// missing and says so, rather than being denied.
pub fn owned<'a>(
    hc: &Value,
    pools: &[Value],
    hosted_clusters: &[Value],
    secret_names: impl IntoIterator<Item = &'a str>,
    config_map_names: impl IntoIterator<Item = &'a str>,
) -> Owned {
    let hc_name = name_of(hc);
    let own_pools = own_node_pools(pools, hc_name);
    let mut refs = References::default();
    refs.collect(hc);
    own_pools.iter().for_each(|p| refs.collect(p));
    let siblings: Vec<&str> = hosted_clusters.iter().map(name_of).filter(|n| *n != hc_name).collect();
    let by_name = |names: &mut BTreeSet<String>, present: Vec<&str>| {
        names.extend(
            present
                .into_iter()
                .filter(|n| named_after(n, hc_name, &siblings))
                .map(str::to_string),
        );
    };
    let mut out = Owned {
        secrets: refs.secrets,
        config_maps: refs.config_maps,
        node_pools: own_pools.iter().map(|p| name_of(p).to_string()).collect(),
    };
    by_name(&mut out.secrets, secret_names.into_iter().collect());
    by_name(&mut out.config_maps, config_map_names.into_iter().collect());
    out.config_maps.insert(marker_name(hc_name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn only_backup_indexes_under_the_root_name_a_backup() {
        let root = backup_root("hosted-clusters/", "clusters", "prod-a");
        assert_eq!(root, "hosted-clusters/clusters/prod-a/");
        let key = |k: &str| format!("{root}{k}");
        assert_eq!(
            indexed_backup_id(&root, &key("20261123T093500Z/index.json")),
            Some("20261123T093500Z")
        );
        assert_eq!(indexed_backup_id(&root, &key("20261123T093500Z/etcd.db")), None);
        assert_eq!(indexed_backup_id(&root, &key("latest/index.json")), None);
        assert_eq!(
            indexed_backup_id(&root, "hosted-clusters/clusters/prod-ab/20261123T093500Z/index.json"),
            None
        );
    }

    #[test]
    fn owned_takes_references_own_pools_and_names_but_never_a_siblings() {
        let hc = |n: &str, ps: &str| json!({"kind": "HostedCluster", "metadata": {"name": n}, "spec": {"pullSecret": {"name": ps}}});
        let np = |n: &str, c: &str| json!({"kind": "NodePool", "metadata": {"name": n}, "spec": {"clusterName": c}});
        let a = hc("prod-a", "shared-pull");
        let all = [a.clone(), hc("prod-a-x", "x-pull"), hc("prod-b", "shared-pull")];
        let pools = [
            np("prod-a-w1", "prod-a"),
            np("prod-a-x-w1", "prod-a-x"),
            np("prod-b-w1", "prod-b"),
        ];
        let secrets = ["prod-a-ssh", "prod-a-x-ssh", "prod-b-ssh", "shared-pull", "x-pull"];
        let cms = ["prod-a-trust", "kube-root-ca.crt"];
        let o = owned(&a, &pools, &all, secrets, cms);
        assert_eq!(o.secrets.iter().collect::<Vec<_>>(), ["prod-a-ssh", "shared-pull"]);
        assert_eq!(
            o.config_maps.iter().collect::<Vec<_>>(),
            ["ferry-dr-prod-a", "prod-a-trust"]
        );
        assert_eq!(o.node_pools.iter().collect::<Vec<_>>(), ["prod-a-w1"]);
        // A sibling with a longer name keeps its own `<name>-*` objects.
        assert!(!named_after("prod-a-x-ssh", "prod-a", &["prod-a-x"]));
        assert!(named_after("prod-a-x-ssh", "prod-a-x", &["prod-a"]));
        assert!(!named_after("prod-ab-ssh", "prod-a", &[]));
    }
}
