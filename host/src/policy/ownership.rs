//! Objects a trusted resolver assigned to one owner before the run.
//!
//! Kubernetes namespaces are often shared: HyperShift keeps every HostedCluster of a
//! namespace, and their Secrets, ConfigMaps and NodePools, side by side. A grant by namespace
//! and kind would reach the siblings' objects too. So whoever starts a run (never the guest)
//! may say which objects belong to the thing the run is about; each such object's entity then
//! gets `Ferry::Owner::"<cluster>/<namespace>/<owner>"` as a parent, and a policy can write
//! `resource in Ferry::Owner::"source/clusters/prod-a"`. The set is fixed for the run: what a
//! guest changes while it runs cannot widen it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::ResourceRef;

/// One owned object, by cluster alias, API group ("" for core), kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OwnedObject {
    /// The cluster alias.
    pub cluster: String,
    /// The API group, "" for the core group.
    pub group: String,
    /// The kind.
    pub kind: String,
    /// The namespace (owned objects are namespaced: ownership splits a shared namespace).
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

/// The owner's name and what it owns. Empty (the default) when a run has no owner: then no
/// entity has an `Owner` parent and grants on owners match nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// The owner's name, e.g. the HostedCluster's; unique within each namespace.
    pub owner: String,
    /// What it owns.
    pub objects: BTreeSet<OwnedObject>,
}

impl Ownership {
    /// The `Owner` entity id `resource` sits in, if the resolver assigned it to the owner.
    pub(crate) fn owner_of(&self, resource: &ResourceRef) -> Option<String> {
        let ResourceRef::K8s {
            cluster,
            group,
            kind,
            namespace: Some(namespace),
            name: Some(name),
            ..
        } = resource
        else {
            return None;
        };
        let key = OwnedObject {
            cluster: cluster.clone(),
            group: group.clone(),
            kind: kind.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
        };
        self.objects
            .contains(&key)
            .then(|| format!("{cluster}/{namespace}/{}", self.owner))
    }

    /// The owner, when `resource` is a named object it does not own, of a kind it owns some
    /// of in that namespace (of the same cluster).
    pub(crate) fn shares_namespace_with(&self, resource: &ResourceRef) -> Option<String> {
        let ResourceRef::K8s {
            cluster,
            group,
            kind,
            namespace: Some(namespace),
            name: Some(_),
            ..
        } = resource
        else {
            return None;
        };
        let here = self.of_kind(cluster, group, kind, namespace).next().is_some();
        (here && self.owner_of(resource).is_none()).then(|| self.owner.clone())
    }

    /// The owned names of one kind in one namespace of one cluster, sorted.
    pub fn names(&self, cluster: &str, group: &str, kind: &str, namespace: &str) -> Vec<String> {
        self.of_kind(cluster, group, kind, namespace)
            .map(|o| o.name.clone())
            .collect()
    }

    /// The owned objects of one kind in one namespace of one cluster, in order.
    fn of_kind<'a>(
        &'a self,
        cluster: &'a str,
        group: &'a str,
        kind: &'a str,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a OwnedObject> {
        self.objects
            .iter()
            .filter(move |o| o.cluster == cluster && o.group == group && o.kind == kind && o.namespace == namespace)
    }

    /// Whether nothing is owned.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}
