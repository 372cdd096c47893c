//! One capability call written as a line of text, for `ferry policy test`: a
//! reviewer asks "may the guest do this?" without running a guest, and gets
//! the answer the host would give the same call.
//!
//! ```text
//! k8s:delete source Namespace clusters
//! k8s:patch  source apps/v1/Deployment hypershift/operator
//! k8s:list   source Secret clusters
//! objects:put backups/hcp/clusters/prod/index.json
//! etcd:snapshot source/clusters-prod/etcd-0
//! ```
//!
//! The arguments are the ones the capability call carries, so the request
//! becomes the very [`ResourceRef`] the host builds for that call.

use super::{Action, ResourceRef};

/// Why a request line could not be read; the message shows the form expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct RequestError(String);

/// Kinds a reviewer can name without their group and version (the ones the
/// stock guest and HyperShift use); any other kind is written `group/version/Kind`
/// (`v1/Kind` for the core group).
pub(crate) const KNOWN_KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "Namespace"),
    ("", "v1", "Secret"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Pod"),
    ("", "v1", "Node"),
    ("", "v1", "Service"),
    ("", "v1", "ServiceAccount"),
    ("", "v1", "Endpoints"),
    ("", "v1", "PersistentVolumeClaim"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "DaemonSet"),
    ("rbac.authorization.k8s.io", "v1", "Role"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    ("hypershift.openshift.io", "v1beta1", "HostedCluster"),
    ("hypershift.openshift.io", "v1beta1", "NodePool"),
    ("hypershift.openshift.io", "v1beta1", "HostedControlPlane"),
    ("hypershift.openshift.io", "v1beta1", "AWSEndpointService"),
    ("cluster.x-k8s.io", "v1beta1", "Cluster"),
    ("cluster.x-k8s.io", "v1beta1", "MachineDeployment"),
    ("cluster.x-k8s.io", "v1beta1", "MachineSet"),
    ("cluster.x-k8s.io", "v1beta1", "Machine"),
    ("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSCluster"),
    ("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSMachineTemplate"),
    ("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSMachine"),
    ("route.openshift.io", "v1", "Route"),
    ("config.openshift.io", "v1", "ClusterVersion"),
    ("batch", "v1", "Job"),
    ("coordination.k8s.io", "v1", "Lease"),
];

/// The form of each action's arguments, for error messages and `--help`.
pub const FORMS: &str = "\
import INTERFACE                         e.g. import ferry:host/k8s
k8s:open CLUSTER
k8s:VERB CLUSTER KIND [NAMESPACE/]NAME   VERB: get create apply replace patch delete scale
k8s:list CLUSTER KIND [NAMESPACE]        KIND: Secret, HostedCluster, ... or group/version/Kind
objects:open BUCKET
objects:VERB BUCKET/KEY                  VERB: get head put delete presign snapshot-upload
objects:list BUCKET[/PREFIX]
dns:open ZONE | dns:list ZONE
dns:change ZONE RECORD-NAME TYPE
etcd:snapshot CLUSTER/NAMESPACE/POD | etcd:snapshot endpoint:ALIAS
workspace:read|write|list PATH";

fn bad(line: &str, why: &str) -> RequestError {
    RequestError(format!(
        "cannot read the request `{}`: {why}\nrequests are written:\n{FORMS}",
        line.escape_debug()
    ))
}

/// Reads one request line into the call the host would check.
pub fn parse(line: &str) -> Result<(Action, ResourceRef), RequestError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&first, args)) = words.split_first() else {
        return Err(bad(line, "it is empty"));
    };
    let action = Action::from_name(first).ok_or_else(|| {
        bad(
            line,
            &format!("`{first}` is not an action (groups such as `k8s:read` cannot be asked about)"),
        )
    })?;
    let want = |n: usize| -> Result<(), RequestError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(bad(
                line,
                &format!("{action} takes {n} argument(s), {} given", args.len()),
            ))
        }
    };
    use Action as A;
    let resource = match action {
        A::Import => {
            want(1)?;
            ResourceRef::Interface { name: args[0].into() }
        }
        A::K8sOpen => {
            want(1)?;
            ResourceRef::Cluster { alias: args[0].into() }
        }
        A::K8sList => {
            if !(2..=3).contains(&args.len()) {
                return Err(bad(line, "k8s:list takes CLUSTER KIND [NAMESPACE]"));
            }
            let (group, version, kind) = kind(line, args[1])?;
            ResourceRef::K8s {
                cluster: args[0].into(),
                group,
                version,
                kind,
                namespace: args.get(2).map(|s| s.to_string()),
                name: None,
            }
        }
        A::K8sGet | A::K8sCreate | A::K8sApply | A::K8sReplace | A::K8sPatch | A::K8sDelete | A::K8sScale => {
            want(3)?;
            let (group, version, kind) = kind(line, args[1])?;
            let (namespace, name) = match args[2].split_once('/') {
                Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
                None => (None, args[2].to_string()),
            };
            ResourceRef::K8s {
                cluster: args[0].into(),
                group,
                version,
                kind,
                namespace,
                name: Some(name),
            }
        }
        A::ObjectsOpen => {
            want(1)?;
            ResourceRef::Bucket { bucket: args[0].into() }
        }
        A::ObjectsGet
        | A::ObjectsHead
        | A::ObjectsPut
        | A::ObjectsDelete
        | A::ObjectsPresign
        | A::ObjectsSnapshotUpload => {
            want(1)?;
            let (bucket, key) = args[0]
                .split_once('/')
                .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                .ok_or_else(|| bad(line, "write the object as BUCKET/KEY"))?;
            ResourceRef::S3Object {
                bucket: bucket.into(),
                key: key.into(),
            }
        }
        A::ObjectsList => {
            want(1)?;
            match args[0].split_once('/') {
                Some((bucket, prefix)) if !prefix.is_empty() => ResourceRef::S3Prefix {
                    bucket: bucket.into(),
                    prefix: prefix.into(),
                },
                Some((bucket, _)) => ResourceRef::Bucket { bucket: bucket.into() },
                None => ResourceRef::Bucket { bucket: args[0].into() },
            }
        }
        A::DnsOpen | A::DnsList => {
            want(1)?;
            ResourceRef::Zone { zone: args[0].into() }
        }
        A::DnsChange => {
            want(3)?;
            ResourceRef::RecordSet {
                zone: args[0].into(),
                name: args[1].into(),
                rtype: args[2].into(),
            }
        }
        A::EtcdSnapshot | A::EtcdMemberStatus => {
            want(1)?;
            if let Some(alias) = args[0].strip_prefix("endpoint:") {
                ResourceRef::EtcdMember {
                    cluster: String::new(),
                    namespace: String::new(),
                    pod: String::new(),
                    endpoint: alias.into(),
                }
            } else {
                let parts: Vec<&str> = args[0].split('/').collect();
                let [cluster, namespace, pod] = parts[..] else {
                    return Err(bad(line, "write the member as CLUSTER/NAMESPACE/POD or endpoint:ALIAS"));
                };
                ResourceRef::EtcdMember {
                    cluster: cluster.into(),
                    namespace: namespace.into(),
                    pod: pod.into(),
                    endpoint: String::new(),
                }
            }
        }
        A::WorkspaceRead | A::WorkspaceWrite | A::WorkspaceList => {
            if args.len() > 1 {
                return Err(bad(line, "a workspace path has no spaces"));
            }
            ResourceRef::Path {
                path: args.first().map(|s| s.to_string()).unwrap_or_default(),
            }
        }
    };
    Ok((action, resource))
}

/// `Kind` from the table, or `group/version/Kind`, or `v1/Kind` (core).
fn kind(line: &str, text: &str) -> Result<(String, String, String), RequestError> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts[..] {
        [k] => KNOWN_KINDS
            .iter()
            .find(|(_, _, known)| *known == k)
            .map(|(g, v, k)| (g.to_string(), v.to_string(), k.to_string()))
            .ok_or_else(|| {
                bad(
                    line,
                    &format!("kind `{k}` is not one ferry knows by name; write it as group/version/{k}"),
                )
            }),
        [v, k] => Ok((String::new(), v.into(), k.into())),
        [g, v, k] => Ok((g.into(), v.into(), k.into())),
        _ => Err(bad(line, &format!("`{text}` is not a kind"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_reads_as_the_namespace_object() {
        let (action, r) = parse("k8s:delete source Namespace clusters").expect("parses");
        assert_eq!(action, Action::K8sDelete);
        assert_eq!(
            r,
            ResourceRef::K8s {
                cluster: "source".into(),
                group: String::new(),
                version: "v1".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: Some("clusters".into()),
            }
        );
    }

    #[test]
    fn namespaced_objects_lists_and_explicit_kinds() {
        let (_, r) = parse("k8s:patch source apps/v1/Deployment hypershift/operator").expect("parses");
        assert!(matches!(r, ResourceRef::K8s { ref group, ref namespace, ref name, .. }
            if group == "apps" && namespace.as_deref() == Some("hypershift") && name.as_deref() == Some("operator")));
        let (_, r) = parse("k8s:list source Secret clusters").expect("parses");
        assert!(
            matches!(r, ResourceRef::K8s { ref namespace, name: None, .. } if namespace.as_deref() == Some("clusters"))
        );
        let (_, r) = parse("objects:list b").expect("parses");
        assert_eq!(r, ResourceRef::Bucket { bucket: "b".into() });
        let (_, r) = parse("etcd:snapshot source/clusters-prod/etcd-0").expect("parses");
        assert!(matches!(r, ResourceRef::EtcdMember { ref pod, .. } if pod == "etcd-0"));
    }

    #[test]
    fn bad_requests_say_what_was_wrong_and_show_the_forms() {
        for (line, says) in [
            ("", "it is empty"),
            ("k8s:read source Secret a/b", "is not an action"),
            ("k8s:get source Secret", "takes 3 argument(s), 2 given"),
            ("k8s:get source Widget a/b", "write it as group/version/Widget"),
            ("objects:put bucket-only", "BUCKET/KEY"),
            ("etcd:snapshot a/b", "CLUSTER/NAMESPACE/POD"),
        ] {
            let e = parse(line).expect_err(line).to_string();
            assert!(e.contains(says), "{line:?}: {e}");
            assert!(e.contains("requests are written:"), "{e}");
        }
    }
}
