//! `ferry:host/k8s`: Kubernetes clusters by alias, through kube-rs.
//!
//! The kind of each call is resolved through API discovery (cached per cluster), so guests
//! can address any kind the server serves, including HyperShift and Cluster API kinds, as
//! JSON. `host.rs` holds the WIT functions; `provider.rs` the kube I/O they use.

mod fields;
mod host;
mod names;
pub mod provider;
pub mod reread;

use std::collections::HashMap;

use kube::discovery::ApiResource;

use super::Capability;
use crate::policy::Action;

/// The k8s capability.
pub const CAPABILITY: Capability = Capability {
    interface: "ferry:host/k8s",
    wit: ("k8s.wit", include_str!("../../../../wit/k8s.wit")),
    actions: &[
        Action::K8sOpen,
        Action::K8sGet,
        Action::K8sList,
        Action::K8sCreate,
        Action::K8sApply,
        Action::K8sReplace,
        Action::K8sPatch,
        Action::K8sDelete,
        Action::K8sScale,
    ],
    needs_grant: true,
};

/// An open cluster handle: only the alias lives in the guest's table.
pub struct ClusterHandle {
    pub(crate) alias: String,
    pub(crate) client: kube::Client,
}

impl ClusterHandle {
    /// The alias from the run config.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The kube client (host-side only).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }
}

/// Discovery results of one cluster: (apiVersion, kind) → resource and scope.
#[derive(Default)]
pub struct DiscoveryCache {
    pub(crate) kinds: HashMap<(String, String), (ApiResource, bool)>,
}

/// The k8s capability's state for one run.
#[derive(Default)]
pub struct State {
    /// Discovery results per cluster alias.
    pub discovery: HashMap<String, DiscoveryCache>,
}
