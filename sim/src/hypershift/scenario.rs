//! Scenario files: which management clusters to start and what hosted clusters to seed on the
//! first (source) one: one in full detail, and optionally a fleet of more. TOML (`.toml`) or
//! YAML (anything else).
//!
//! ```toml
//! management_clusters = ["source", "destination"]
//! etcd_keys = { "/kubernetes.io/configmaps/default/marker" = "from-source" }
//!
//! [hosted_cluster]
//! namespace = "clusters"
//! name = "demo-one"
//! availability_policy = "SingleReplica"
//! external_dns_domain = "guest.example.com"
//!
//! [[node_pools]]
//! name = "demo-one-workers"
//! replicas = 2
//!
//! [[fleet]]                    # more hosted clusters, each with its control plane and API
//! name = "team-b"
//! namespace = "clusters-east"  # default: the first one's
//! labels = { tier = "gold" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors of reading a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not a valid scenario.
    #[error("invalid scenario {path}: {message}")]
    Parse {
        /// The file (or `<string>`).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Management cluster names; the first is the source (seeded), the second the destination.
    #[serde(default = "default_clusters")]
    pub management_clusters: Vec<String>,
    /// The hosted cluster seeded on the source.
    pub hosted_cluster: HostedClusterSpec,
    /// Keys written into the source's hosted etcd once it runs.
    #[serde(default)]
    pub etcd_keys: BTreeMap<String, String>,
    /// NodePools of the hosted cluster.
    #[serde(default)]
    pub node_pools: Vec<NodePoolSpec>,
    /// Extra secrets in the HCP namespace that a backup must carry.
    #[serde(default)]
    pub carry_secrets: Vec<String>,
    /// Extra secrets in the HCP namespace that a backup must leave (its filters drop them).
    #[serde(default)]
    pub leave_secrets: Vec<String>,
    /// Names of other HostedClusters in the same namespace (they must survive the DR).
    #[serde(default)]
    pub other_hosted_clusters: Vec<String>,
    /// Instances beyond the NodePools' replicas (a surge during a rollout): more Ready nodes
    /// than the NodePools ask for.
    #[serde(default)]
    pub surge_nodes: u32,
    /// Whether Cluster API's deprecated `v1beta1` is still served (newer CAPI releases stop
    /// serving it; `false` rehearses that).
    #[serde(default = "default_true")]
    pub capi_v1beta1_served: bool,
    /// More hosted clusters seeded in full beside the first (control plane, NodePools, Cluster
    /// API objects, instances, their own API): a management cluster's fleet, to move at once.
    #[serde(default)]
    pub fleet: Vec<FleetMember>,
    /// The HyperShift every management cluster runs: the pinned commit with its bugs, or a
    /// later profile with upstream's fixes.
    #[serde(default)]
    pub hypershift: Profile,
    /// How HyperShift was installed on every management cluster.
    #[serde(default)]
    pub install: InstallSpec,
    /// The Route53 zone as resolvers see it.
    #[serde(default)]
    pub dns: DnsSpec,
    /// `etcd-init` downloads of the snapshot that fail before one succeeds (a transient S3 or
    /// network error; the kubelet retries the init container).
    #[serde(default)]
    pub etcd_init_transient_failures: u32,
}

/// The HyperShift a scenario runs (`hypershift = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Profile {
    /// openshift/hypershift at 3ee9615567 (the pinned commit), bugs included: a HighlyAvailable
    /// `etcd-init` restores each member as its own one-member cluster (OCPBUGS-99534).
    #[default]
    #[serde(rename = "3ee9615")]
    Pinned,
    /// The pinned commit with the open fix of `etcd-init` (openshift/hypershift#9069, 55d36748ec):
    /// each member restores with its name, peer URL, the whole initial cluster and one token.
    #[serde(rename = "3ee9615+pr9069")]
    EtcdInitMemberIdentity,
}

impl Profile {
    /// The name scenarios use.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Pinned => "3ee9615",
            Profile::EtcdInitMemberIdentity => "3ee9615+pr9069",
        }
    }

    /// Whether `etcd-init` restores a member with its identity (the fix).
    pub fn etcd_init_member_identity(self) -> bool {
        self == Profile::EtcdInitMemberIdentity
    }

    /// The operator image the installer is given (`--hypershift-image`).
    pub fn operator_image(self) -> String {
        format!("quay.io/hypershift/hypershift-operator:{}", self.name())
    }
}

/// `hypershift install` flags of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallSpec {
    /// `--enable-defaulting-webhook --enable-validating-webhook`, as MCE's addon installs it.
    #[serde(default)]
    pub webhooks: bool,
    /// The CAPI storage version: `v1beta2` (default), or `v1beta1` (`--disable-capi-migration`:
    /// objects stay stored as v1beta1 for good).
    #[serde(default = "default_capi_storage")]
    pub capi_storage: String,
    /// The version the seeded CAPI objects are stored in (default: `capi_storage`). `v1beta1`
    /// with `capi_storage = "v1beta2"` is an upgraded install whose objects the operator's
    /// storage migration has yet to move.
    #[serde(default)]
    pub capi_stored_as: Option<String>,
    /// Whether the operator runs its CAPI storage migration (`support/capi-crdmigrator`) when
    /// the storage version is v1beta2; `false` leaves a migration that never completes.
    #[serde(default = "default_true")]
    pub capi_migration: bool,
    /// `--external-dns-interval`.
    #[serde(default = "default_external_dns_interval")]
    pub external_dns_interval: String,
    /// The management clusters whose operator was installed without an OIDC bucket
    /// (`--oidc-storage-provider-s3-bucket-name` unset): it cannot publish a restored AWS
    /// cluster's issuer documents.
    #[serde(default)]
    pub without_oidc_storage: Vec<String>,
}

impl Default for InstallSpec {
    fn default() -> Self {
        InstallSpec {
            webhooks: false,
            capi_storage: default_capi_storage(),
            capi_stored_as: None,
            capi_migration: true,
            external_dns_interval: default_external_dns_interval(),
            without_oidc_storage: Vec::new(),
        }
    }
}

impl InstallSpec {
    /// The version the seeded CAPI objects are stored in.
    pub fn capi_stored_as(&self) -> &str {
        self.capi_stored_as.as_deref().unwrap_or(&self.capi_storage)
    }
}

fn default_capi_storage() -> String {
    "v1beta2".to_string()
}

fn default_external_dns_interval() -> String {
    "1m".to_string()
}

/// The zone as the resolvers of nodes and clients see it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    /// How long a resolver keeps an NXDOMAIN: the lesser of the zone SOA's TTL and its minimum
    /// (RFC 2308); Route53's default SOA gives 900 s.
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl_seconds: u64,
}

impl Default for DnsSpec {
    fn default() -> Self {
        DnsSpec {
            negative_ttl_seconds: default_negative_ttl(),
        }
    }
}

fn default_negative_ttl() -> u64 {
    900
}

/// A further hosted cluster of the source, like the first but for its names and labels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetMember {
    /// HostedCluster name.
    pub name: String,
    /// HostedCluster namespace (default: the first hosted cluster's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// HostedCluster labels (what `ferry fleet --selector` selects on).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its NodePools (default: one, `<name>-workers`, with one replica).
    #[serde(default)]
    pub node_pools: Option<Vec<NodePoolSpec>>,
}

/// A hosted cluster the environment seeds in full: the first or a fleet member.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Its spec (a fleet member's is the first's with the member's names and labels).
    pub spec: HostedClusterSpec,
    /// Its NodePools.
    pub node_pools: Vec<NodePoolSpec>,
    /// Position: 0 for the first, which alone gets the scenario's extra secrets, etcd keys and
    /// surge nodes.
    pub index: usize,
}

fn default_true() -> bool {
    true
}

/// How the APIServer is published (`spec.services[APIServer].servicePublishingStrategy.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Publishing {
    /// A Route with a hostname, published by external-dns' route source.
    #[default]
    Route,
    /// A LoadBalancer Service whose external-dns annotation carries the hostname.
    LoadBalancer,
}

/// `spec.platform.aws.endpointAccess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum EndpointAccess {
    /// Public endpoints only.
    #[default]
    Public,
    /// Public endpoints and a PrivateLink endpoint.
    PublicAndPrivate,
    /// A PrivateLink endpoint only.
    Private,
}

impl EndpointAccess {
    /// The API value.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointAccess::Public => "Public",
            EndpointAccess::PublicAndPrivate => "PublicAndPrivate",
            EndpointAccess::Private => "Private",
        }
    }
}

fn default_clusters() -> Vec<String> {
    vec!["source".to_string(), "destination".to_string()]
}

/// The seeded hosted cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostedClusterSpec {
    /// HostedCluster namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// HostedCluster name (dots allowed).
    pub name: String,
    /// `SingleReplica` or `HighlyAvailable`.
    #[serde(default = "default_policy")]
    pub availability_policy: String,
    /// Domain of the control-plane route hosts.
    #[serde(default = "default_domain")]
    pub external_dns_domain: String,
    /// `spec.release.image`.
    #[serde(default = "default_release")]
    pub release_image: String,
    /// AWS region.
    #[serde(default = "default_region")]
    pub region: String,
    /// `spec.infraID` (default: the name with dots replaced and a suffix).
    #[serde(default)]
    pub infra_id: Option<String>,
    /// How the APIServer is published.
    #[serde(default)]
    pub api_publishing: Publishing,
    /// Public, PublicAndPrivate or Private endpoints.
    #[serde(default)]
    pub endpoint_access: EndpointAccess,
    /// Identity providers and other `spec.configuration` references whose Secrets and
    /// ConfigMaps have names unrelated to the hosted cluster's (htpasswd, OpenID client secret
    /// and CA, OAuth templates, client CA, trusted CAs, scheduler policy, ...).
    #[serde(default)]
    pub identity_providers: bool,
    /// HostedCluster labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_namespace() -> String {
    "clusters".to_string()
}
fn default_policy() -> String {
    "SingleReplica".to_string()
}
fn default_domain() -> String {
    "guest.example.com".to_string()
}
fn default_release() -> String {
    "quay.io/openshift-release-dev/ocp-release:4.17.0-x86_64".to_string()
}
fn default_region() -> String {
    "us-east-1".to_string()
}

impl HostedClusterSpec {
    /// `spec.infraID`.
    pub fn infra_id(&self) -> String {
        self.infra_id
            .clone()
            .unwrap_or_else(|| format!("{}-x7k2p", self.name.replace('.', "-")))
    }
}

/// One NodePool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePoolSpec {
    /// NodePool name.
    pub name: String,
    /// Desired replicas.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// EC2 instance type.
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
    /// `spec.management.autoRepair`: the NodePool controller keeps a MachineHealthCheck.
    #[serde(default)]
    pub auto_repair: bool,
    /// `hypershift.openshift.io/machine-health-check-timeout` on the NodePool (a Go duration;
    /// upstream's default is 8m).
    #[serde(default)]
    pub machine_health_check_timeout: Option<String>,
}

fn default_replicas() -> u32 {
    2
}
fn default_instance_type() -> String {
    "m5.large".to_string()
}

impl Scenario {
    /// The hosted clusters seeded in full, the first one first.
    pub fn seeded(&self) -> Vec<Seeded> {
        let first = Seeded {
            spec: self.hosted_cluster.clone(),
            node_pools: self.node_pools.clone(),
            index: 0,
        };
        let members = self.fleet.iter().enumerate().map(|(i, m)| {
            let mut spec = self.hosted_cluster.clone();
            spec.name = m.name.clone();
            if let Some(ns) = &m.namespace {
                spec.namespace = ns.clone();
            }
            spec.infra_id = None;
            spec.identity_providers = false;
            spec.labels = m.labels.clone();
            let node_pools = m.node_pools.clone().unwrap_or_else(|| {
                vec![NodePoolSpec {
                    name: format!("{}-workers", m.name),
                    replicas: 1,
                    instance_type: default_instance_type(),
                    auto_repair: false,
                    machine_health_check_timeout: None,
                }]
            });
            Seeded {
                spec,
                node_pools,
                index: i + 1,
            }
        });
        std::iter::once(first).chain(members).collect()
    }

    /// Parse TOML text.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })
    }

    /// Parse YAML text.
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        serde_saphyr::from_str(text).map_err(|e| ScenarioError::Parse {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })
    }

    /// Read a file: TOML when it ends in `.toml`, YAML otherwise.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parsed = if path.extension().is_some_and(|e| e == "toml") {
            Self::from_toml(&text)
        } else {
            Self::from_yaml(&text)
        };
        parsed.map_err(|e| match e {
            ScenarioError::Parse { message, .. } => ScenarioError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fleet member is the first hosted cluster under its own names and labels, with one
    /// NodePool of its own unless it lists some; it never inherits the first one's extras.
    #[test]
    fn fleet_members_are_seeded_like_the_first_under_their_own_names() {
        let s = Scenario::from_toml(
            r#"
            [hosted_cluster]
            name = "demo-one"
            identity_providers = true
            [[fleet]]
            name = "team-b"
            namespace = "clusters-east"
            labels = { tier = "gold" }
            [[fleet]]
            name = "team-c"
            node_pools = [{ name = "c-a", replicas = 3 }]
            "#,
        )
        .expect("valid");
        let seeded = s.seeded();
        let names: Vec<(usize, &str, &str)> = seeded
            .iter()
            .map(|m| (m.index, m.spec.namespace.as_str(), m.spec.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (0, "clusters", "demo-one"),
                (1, "clusters-east", "team-b"),
                (2, "clusters", "team-c")
            ]
        );
        let b = &seeded[1];
        assert_eq!(b.spec.labels.get("tier").map(String::as_str), Some("gold"));
        assert!(!b.spec.identity_providers);
        assert_eq!(b.spec.infra_id(), "team-b-x7k2p");
        assert_eq!(
            b.node_pools
                .iter()
                .map(|p| (p.name.as_str(), p.replicas))
                .collect::<Vec<_>>(),
            [("team-b-workers", 1)]
        );
        assert_eq!(seeded[2].node_pools[0].replicas, 3);
        assert!(Scenario::from_toml("[hosted_cluster]\nname = \"a\"\n[[fleet]]\nnmae = \"b\"").is_err());
    }
}
