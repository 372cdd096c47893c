//! A plan's Kubernetes reads, read again before its apply starts: a plan whose objects are
//! new or gone since it was made is refused before anything changes (see
//! [`crate::plan::Read::changes`]). Each read is decided by the run's policy first, as the
//! guest's own read was.

use std::collections::{BTreeMap, HashMap};

use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;

use super::provider::{list_each, map_kube_error, scoped_api, split_api_version};
use crate::capabilities::env::RunEnv;
use crate::capabilities::error::{HostError, HostResult};
use crate::plan::Read;
use crate::policy::{Action, CallContext, ResourceRef};

/// Kinds already discovered, per cluster, `group/version` and kind: the reads of one plan
/// often share them.
type Discovered = HashMap<(String, String, String), (ApiResource, bool)>;

/// What is new or gone among `reads` now, one line each (an object read alone and in a list
/// is named once); a read that cannot be made again is named with why.
pub async fn changed_since(env: &RunEnv, reads: &[Read]) -> Vec<String> {
    let mut discovered = Discovered::new();
    let mut changes = Vec::new();
    for read in reads {
        let found = match read_again(env, read, &mut discovered).await {
            Ok(now) => read.changes(&now),
            Err(e) => vec![format!("{} cannot be read again: {e}", read.target)],
        };
        for change in found {
            if !changes.contains(&change) {
                changes.push(change);
            }
        }
    }
    changes
}

/// `read`'s query against the cluster as it is now.
async fn read_again(env: &RunEnv, read: &Read, discovered: &mut Discovered) -> HostResult<Read> {
    let q = &read.query;
    let (group, version) = split_api_version(&q.api_version);
    let resource = ResourceRef::K8s {
        cluster: q.cluster.clone(),
        group: group.clone(),
        version: version.clone(),
        kind: q.kind.clone(),
        namespace: q.namespace.clone(),
        name: q.name.clone(),
    };
    let action = if q.name.is_some() {
        Action::K8sGet
    } else {
        Action::K8sList
    };
    let ctx = CallContext {
        plan: false,
        dry_run: false,
        phase: env.phase.clone(),
        patch_fields: None,
        presign_seconds: None,
    };
    let decision = env.policy.authorize(action, &resource, &ctx);
    if !decision.allowed {
        return Err(HostError::Denied(decision.denial_reason(action, &resource)));
    }
    let client = env.clients.kube(&env.config, &q.cluster).await?;
    let key = (q.cluster.clone(), q.api_version.clone(), q.kind.clone());
    let (ar, namespaced) = match discovered.get(&key) {
        Some(found) => found.clone(),
        None => {
            let gvk = GroupVersionKind::gvk(&group, &version, &q.kind);
            let (ar, caps) = kube::discovery::pinned_kind(&client, &gvk)
                .await
                .map_err(|e| map_kube_error(e, &q.cluster, &format!("discovering {} {}", q.api_version, q.kind)))?;
            let found = (ar, caps.scope == Scope::Namespaced);
            discovered.insert(key, found.clone());
            found
        }
    };
    let mut now = Read {
        resource_version: None,
        items: None,
        ..read.clone()
    };
    match &q.name {
        Some(name) => {
            let api: Api<DynamicObject> = scoped_api(client, &ar, namespaced, q.namespace.as_deref());
            let found = api
                .get_opt(name)
                .await
                .map_err(|e| map_kube_error(e, &q.cluster, &format!("get {} {name}", ar.kind)))?;
            now.resource_version = found.map(|o| o.metadata.resource_version.unwrap_or_default());
        }
        None => {
            let api = scoped_api(client, &ar, namespaced, q.namespace.as_deref());
            let selectors = (q.label_selector.as_deref(), q.field_selector.as_deref());
            let mut items = BTreeMap::new();
            list_each(&api, &ar, &q.cluster, selectors, |o| {
                if let Some(n) = &o.metadata.name {
                    items.insert(n.clone(), o.metadata.resource_version.clone().unwrap_or_default());
                }
                Ok(())
            })
            .await?;
            now.items = Some(items);
        }
    }
    Ok(now)
}
