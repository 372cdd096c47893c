//! A plan's Kubernetes reads, read again before its apply starts: a plan whose objects are
//! new or gone since it was made is refused before anything changes (see
//! [`crate::plan::Read::changes`]). Each read is decided by the run's policy first, as the
//! guest's own read was.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;

use super::provider::{map_kube_error, split_api_version};
use crate::capabilities::env::RunEnv;
use crate::capabilities::error::{HostError, HostResult};
use crate::plan::Read;
use crate::policy::{Action, CallContext, ResourceRef};

/// `read`'s query against the cluster as it is now.
pub async fn read_again(env: &RunEnv, read: &Read) -> HostResult<Read> {
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
    let gvk = GroupVersionKind::gvk(&group, &version, &q.kind);
    let what = format!("reading {} again", read.target);
    let (ar, caps) = kube::discovery::pinned_kind(&client, &gvk)
        .await
        .map_err(|e| map_kube_error(e, &q.cluster, &what))?;
    let api: Api<DynamicObject> = match (&q.namespace, caps.scope == Scope::Namespaced) {
        (Some(ns), true) => Api::namespaced_with(client, ns, &ar),
        _ => Api::all_with(client, &ar),
    };
    let mut now = Read {
        resource_version: None,
        items: None,
        ..read.clone()
    };
    match &q.name {
        Some(name) => {
            let found = api
                .get_opt(name)
                .await
                .map_err(|e| map_kube_error(e, &q.cluster, &what))?;
            now.resource_version = found.map(|o| o.metadata.resource_version.unwrap_or_default());
        }
        None => {
            let mut params = ListParams::default().limit(500);
            if let Some(l) = &q.label_selector {
                params = params.labels(l);
            }
            if let Some(f) = &q.field_selector {
                params = params.fields(f);
            }
            let mut items = BTreeMap::new();
            loop {
                let page = api
                    .list(&params)
                    .await
                    .map_err(|e| map_kube_error(e, &q.cluster, &what))?;
                for o in page.items {
                    if let Some(n) = o.metadata.name {
                        items.insert(n, o.metadata.resource_version.unwrap_or_default());
                    }
                }
                match page.metadata.continue_ {
                    Some(token) if !token.is_empty() => params = params.continue_token(&token),
                    _ => break,
                }
            }
            now.items = Some(items);
        }
    }
    Ok(now)
}
