//! The EC2 instances a hosted cluster's nodes run on, shared by every management cluster of an
//! environment (they are in the AWS account, not in a cluster).
//!
//! An instance exists from the moment its AWSMachine is seeded until Cluster API's AWS
//! provider terminates it (`capi-provider` reconciling a deleted AWSMachine, see
//! [`super::capi`]). Its kubelet registers the Node named in its Machine's `nodeRef` with the
//! hosted cluster's API ([`super::hosted`]), and is Ready while the API hostname it was given
//! resolves to a management cluster that runs the control plane.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// `aws:///<zone>/<instance-id>`.
    pub provider_id: String,
    /// The Node its kubelet registers.
    pub node_name: String,
    /// The NodePool it belongs to (label of its Node).
    pub node_pool: String,
    /// The hosted cluster (`namespace/name`) it serves.
    pub hosted_cluster: String,
    /// Terminated by Cluster API's AWS provider.
    pub terminated: bool,
}

/// The instances of the account, by provider ID.
#[derive(Debug, Clone, Default)]
pub struct Ec2(Arc<Mutex<BTreeMap<String, Instance>>>);

impl Ec2 {
    /// Launch (or keep) an instance.
    pub fn launch(&self, instance: Instance) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(instance.provider_id.clone())
            .or_insert(instance);
    }

    /// Terminate an instance; true when it was running.
    pub fn terminate(&self, provider_id: &str) -> bool {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match m.get_mut(provider_id) {
            Some(i) if !i.terminated => {
                i.terminated = true;
                tracing::warn!(provider_id, node = %i.node_name, "EC2 instance terminated by Cluster API");
                true
            }
            _ => false,
        }
    }

    /// The running instances of a hosted cluster (`namespace/name`).
    pub fn running(&self, hosted_cluster: &str) -> Vec<Instance> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|i| i.hosted_cluster == hosted_cluster && !i.terminated)
            .cloned()
            .collect()
    }

    /// Every instance ever launched, terminated ones included.
    pub fn all(&self) -> Vec<Instance> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminated_instances_stop_running() {
        let ec2 = Ec2::default();
        ec2.launch(Instance {
            provider_id: "aws:///us-east-1a/i-1".into(),
            node_name: "n1".into(),
            node_pool: "np".into(),
            hosted_cluster: "clusters/a".into(),
            terminated: false,
        });
        assert_eq!(ec2.running("clusters/a").len(), 1);
        assert!(ec2.terminate("aws:///us-east-1a/i-1"));
        assert!(!ec2.terminate("aws:///us-east-1a/i-1"));
        assert!(ec2.running("clusters/a").is_empty());
        assert_eq!(ec2.all().len(), 1);
    }
}
