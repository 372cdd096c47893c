//! What this run's hosted cluster owns in the namespace its siblings share.
//!
//! The stock policy grants the shared namespace's Secrets, ConfigMaps and NodePools only
//! `in Ferry::Owner`, so before each phase the runner (trusted; the guest has no say) resolves
//! them with the rule the guest carries by ([`ferry_hcp_model::owned`]), on the cluster the
//! phase works on:
//! - from the live HostedCluster there (its references, its NodePools, its `<name>-*`
//!   objects no longer-named sibling claims, and ferry's marker);
//! - where it does not exist (restore, before it is created; a teardown re-run after it is
//!   gone), and always for the phases that act on a backup (restore, teardown), from the
//!   backup's index, read from S3 with its seal checked: what restore applies and teardown
//!   deletes.
//!
//! The set is fixed before the guest starts and audited once, so nothing the guest writes
//! during the run can widen it. An index that cannot be used (missing, or failing its seal)
//! leaves the set smaller (calls are denied naming the rule), never larger; a cluster that
//! cannot be read stops the phase before it starts.

use std::collections::BTreeSet;

use ferry::audit::AuditKey;
use ferry::capabilities::Clients;
use ferry::capabilities::objects::provider::Bucket;
use ferry::capabilities::objects::seal::Sealing;
use ferry::config::RunConfig;
use ferry::policy::{OwnedObject, Ownership};
use ferry_hcp_model::{Owned, name_of};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use crate::lease::{Backoff, worth_retrying};

/// What ferry-dr itself does on a management cluster, in Kubernetes RBAC, for `ferry policy
/// rbac --site`: no policy decides it (the guest never does it), the runner's identity still
/// needs it. On the source and the destination: list the shared namespace's HostedClusters,
/// NodePools, Secrets and ConfigMaps to resolve ownership ([`resolve`]; the runner reads the
/// Secrets' names, the guest reads none but its own), and hold the phase's Lease in
/// `hypershift` ([`crate::lease`]).
pub fn rbac(params: &std::collections::BTreeMap<String, String>) -> Vec<ferry::policy::rbac::DerivedRole> {
    use ferry::policy::rbac::{DerivedRole, Rule};
    let rule = |group: &str, resource: &str, names: Vec<String>, verbs: &[&str]| Rule {
        api_groups: vec![group.to_string()],
        resources: vec![resource.to_string()],
        resource_names: names,
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
    };
    let ns = params.get("hc_namespace").cloned().unwrap_or_default();
    let name = params.get("hc_name").cloned().unwrap_or_default();
    let lease = crate::lease::lease_name(&ns, &name);
    let mut out = Vec::new();
    for role in ["source", "destination"] {
        let cluster = params.get(role).cloned().unwrap_or_else(|| role.to_string());
        out.push(DerivedRole {
            cluster: cluster.clone(),
            namespace: Some(ns.clone()),
            rules: vec![
                rule("", "configmaps", Vec::new(), &["list"]),
                rule("", "secrets", Vec::new(), &["list"]),
                rule(HC_GROUP, "hostedclusters", Vec::new(), &["list"]),
                rule(HC_GROUP, "nodepools", Vec::new(), &["list"]),
            ],
        });
        out.push(DerivedRole {
            cluster,
            namespace: Some(crate::lease::NAMESPACE.to_string()),
            rules: vec![
                rule("coordination.k8s.io", "leases", Vec::new(), &["create"]),
                rule(
                    "coordination.k8s.io",
                    "leases",
                    vec![lease.clone()],
                    &["delete", "get", "update"],
                ),
            ],
        });
    }
    out
}

const HC_GROUP: &str = "hypershift.openshift.io";

/// The largest index read (the guest writes a few kilobytes).
const MAX_INDEX_BYTES: u64 = 8 << 20;

/// Why ownership could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The cluster could not be read.
    #[error("cannot read what {hc} owns on `{cluster}`: {message}")]
    Cluster {
        /// The hosted cluster, `ns/name`.
        hc: String,
        /// The cluster alias.
        cluster: String,
        /// What failed.
        message: String,
    },
}

/// Resolves what hosted cluster `hc_namespace/hc_name` owns on cluster `alias` (a run
/// parameter's value). With `from_index` (phases that act on a backup: restore applies it,
/// teardown deletes what it carried), what backup `backup_id` (default: the newest) lists is
/// added even where the HostedCluster exists: a restore resumed after creating it still has
/// NodePools to create that the live cluster does not show yet.
pub async fn resolve(
    config: &RunConfig,
    clients: &Clients,
    alias: &str,
    from_index: bool,
    backup_id: Option<&str>,
    key: Option<&AuditKey>,
) -> Result<Ownership, ResolveError> {
    let param = |k: &str| config.params.get(k).cloned().unwrap_or_default();
    let (ns, name) = (param("hc_namespace"), param("hc_name"));
    let hc_id = format!("{ns}/{name}");
    let cluster_err = |message: String| ResolveError::Cluster {
        hc: hc_id.clone(),
        cluster: alias.to_string(),
        message,
    };
    let client = clients
        .kube(config, alias)
        .await
        .map_err(|e| cluster_err(e.to_string()))?;
    let live = read_live(&client, &ns).await.map_err(cluster_err)?;
    let live_hc = live.hosted_clusters.iter().find(|h| name_of(h) == name);
    let mut owned = match live_hc {
        Some(hc) => ferry_hcp_model::owned(
            hc,
            &live.node_pools,
            &live.hosted_clusters,
            live.secrets.iter().map(String::as_str),
            live.config_maps.iter().map(String::as_str),
        ),
        None => Owned::default(),
    };
    // ferry's own state, whatever else is known.
    owned.config_maps.insert(ferry_hcp_model::marker_name(&name));
    if live_hc.is_none() || from_index {
        match from_backup(config, clients, &ns, &name, backup_id, key).await {
            Ok(indexed) => owned.merge(indexed),
            // Fail closed: without the index the set is smaller, never larger. The guest reads
            // the same index and stops with this problem at its first step.
            Err(message) => tracing::warn!(
                hosted_cluster = %hc_id,
                "the backup index does not say what the hosted cluster owns: {message}"
            ),
        }
    }
    let object = |group: &str, kind: &str, n: &String| OwnedObject {
        cluster: alias.to_string(),
        group: group.to_string(),
        kind: kind.to_string(),
        namespace: ns.clone(),
        name: n.clone(),
    };
    let mut objects = BTreeSet::new();
    objects.extend(owned.secrets.iter().map(|n| object("", "Secret", n)));
    objects.extend(owned.config_maps.iter().map(|n| object("", "ConfigMap", n)));
    objects.extend(owned.node_pools.iter().map(|n| object(HC_GROUP, "NodePool", n)));
    Ok(Ownership { owner: name, objects })
}

/// What the namespace holds, as far as ownership needs it.
struct Live {
    hosted_clusters: Vec<Value>,
    node_pools: Vec<Value>,
    secrets: Vec<String>,
    config_maps: Vec<String>,
}

async fn read_live(client: &kube::Client, ns: &str) -> Result<Live, String> {
    let list = |group: &str, version: &str, kind: &str| {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        let kind = kind.to_string();
        async move {
            let mut backoff = Backoff::new();
            loop {
                match api.list(&ListParams::default()).await {
                    Ok(l) => {
                        return l
                            .items
                            .into_iter()
                            .map(|o| serde_json::to_value(o).map_err(|e| e.to_string()))
                            .collect::<Result<Vec<Value>, String>>();
                    }
                    // HyperShift not installed: no HostedClusters, no NodePools.
                    Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
                    Err(e) if worth_retrying(&e) && backoff.wait().await => continue,
                    Err(e) => {
                        return Err(format!(
                            "listing {kind} in {ns}: {}",
                            ferry::capabilities::k8s::provider::describe_kube_error(&e)
                        ));
                    }
                }
            }
        }
    };
    let names = |v: Vec<Value>| v.iter().map(|o| name_of(o).to_string()).collect();
    Ok(Live {
        hosted_clusters: list(HC_GROUP, "v1beta1", "HostedCluster").await?,
        node_pools: list(HC_GROUP, "v1beta1", "NodePool").await?,
        secrets: names(list("", "v1", "Secret").await?),
        config_maps: names(list("", "v1", "ConfigMap").await?),
    })
}

/// What the backup's index lists in namespace `ns`: read from S3 with the
/// seal checked exactly as the guest's `get-sealed` does.
async fn from_backup(
    config: &RunConfig,
    clients: &Clients,
    ns: &str,
    name: &str,
    backup_id: Option<&str>,
    key: Option<&AuditKey>,
) -> Result<Owned, String> {
    let mut owned = Owned::default();
    let Some(bucket_name) = config.params.get("bucket").filter(|b| !b.is_empty()) else {
        return Ok(owned);
    };
    let prefix = config
        .params
        .get("s3_prefix")
        .map(String::as_str)
        .unwrap_or(ferry_hcp_model::DEFAULT_S3_PREFIX);
    let root = ferry_hcp_model::backup_root(prefix, ns, name);
    let bucket = Bucket::new(clients.s3(config).await, bucket_name.clone());
    let id = match backup_id {
        Some(id) => id.to_string(),
        None => {
            let listed = bucket.list(&root).await.map_err(|e| e.to_string())?;
            let newest = listed
                .iter()
                .filter_map(|o| ferry_hcp_model::indexed_backup_id(&root, &o.key))
                .max()
                .map(str::to_string);
            match newest {
                Some(id) => id,
                // No backup yet: it lists nothing.
                None => return Ok(owned),
            }
        }
    };
    let index_key = format!("{root}{id}/index.json");
    let object = bucket
        .get(&index_key, MAX_INDEX_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    let sealing = match key {
        Some(k) => Sealing::Key(k.clone()),
        None => Sealing::Unsigned,
    };
    sealing
        .check_content(bucket_name, &index_key, &object.data, object.info.seal.as_deref())
        .map_err(|e| e.to_string())?;
    let index: Value =
        serde_json::from_slice(&object.data).map_err(|e| format!("the index of backup {id} is not JSON ({e})"))?;
    for f in index.get("files").and_then(Value::as_array).into_iter().flatten() {
        let at = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("");
        if at("namespace") != ns {
            continue;
        }
        let set = match (at("api_version").rsplit_once('/').map_or("", |(g, _)| g), at("kind")) {
            ("", "Secret") => &mut owned.secrets,
            ("", "ConfigMap") => &mut owned.config_maps,
            (HC_GROUP, "NodePool") => &mut owned.node_pools,
            _ => continue,
        };
        set.insert(at("name").to_string());
    }
    Ok(owned)
}
