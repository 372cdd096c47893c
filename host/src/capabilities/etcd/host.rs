use std::sync::Arc;

use wasmtime::component::Resource;

use crate::capabilities::bindings::automation::ferry::host::etcd::{Host, Membership, PodMember, SnapshotInfo};
use crate::capabilities::etcd::provider::{EtcdEndpoint, member_status, snapshot_to_s3};
use crate::capabilities::k8s::ClusterHandle;
use crate::capabilities::objects::BucketHandle;
use crate::capabilities::objects::provider::SIDECAR_SUFFIX;
use crate::capabilities::{Approved, View};
use crate::capabilities::{HostError, HostResult};
use crate::policy::{Action, ResourceRef};
use crate::progress::{ProgressEvent, ProgressSink};

fn progress_fn(sink: Arc<dyn ProgressSink>, step: String) -> impl Fn(u64) + Send + Sync + 'static {
    move |bytes| {
        sink.event(&ProgressEvent {
            step: step.clone(),
            done: bytes,
            total: None,
            unit: "bytes",
            message: format!("{:.1} MiB streamed", bytes as f64 / 1_048_576.0),
        })
    }
}

/// A snapshot's approvals, all taken before anything is read: the member, and everything
/// it will write (the object and its `.sha256` sidecar, each under its own action). They are
/// audited together with the snapshot's one outcome, whatever step it ends at.
struct SnapshotApprovals {
    member: Approved,
    bucket: crate::capabilities::objects::provider::Bucket,
    upload: Approved,
    sidecar: Approved,
}

impl View<'_> {
    /// Decides the upload and its sidecar for a snapshot whose member was approved as
    /// `member`. On a denial, the approvals already taken are audited with it.
    async fn approve_upload(
        &mut self,
        into: &Resource<BucketHandle>,
        key: &str,
        member: Approved,
    ) -> HostResult<SnapshotApprovals> {
        let bucket = match self.table.get(into) {
            Ok(b) => b.bucket().clone(),
            Err(e) => return self.fail(member, HostError::from(e)),
        };
        let plan = self.env.plan;
        let object = |key: String| ResourceRef::S3Object {
            bucket: bucket.name().to_string(),
            key,
        };
        let upload = match self
            .authorize(Action::ObjectsSnapshotUpload, object(key.to_string()), plan)
            .await
        {
            Ok(a) => a,
            Err(e) => return self.fail(member, e),
        };
        let sidecar_key = format!("{key}{SIDECAR_SUFFIX}");
        let sidecar = match self
            .authorize(Action::ObjectsPut, object(sidecar_key.clone()), plan)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                let not_started = HostError::Denied(format!("not started: its sidecar {sidecar_key} was denied"));
                self.audit(upload, &Err::<(), _>(not_started));
                return self.fail(member, e);
            }
        };
        Ok(SnapshotApprovals {
            member,
            bucket,
            upload,
            sidecar,
        })
    }

    /// Audits every approval of a snapshot with its outcome, and passes the outcome on.
    fn finish_snapshot(
        &self,
        approvals: SnapshotApprovals,
        result: HostResult<SnapshotInfo>,
    ) -> HostResult<SnapshotInfo> {
        if let (Some(book), Ok(info)) = (&self.env.plan_book, &result) {
            // What a record of the snapshot carries is the snapshot's, known when it runs.
            book.artifact_facts(&[
                ("sha256", format!("\"{}\"", info.sha256)),
                ("size", info.size.to_string()),
                ("revision", info.revision.to_string()),
            ]);
        }
        self.audit(approvals.member, &result);
        self.audit(approvals.sidecar, &result);
        self.finish(approvals.upload, result)
    }

    async fn snapshot_into(
        &mut self,
        member_label: String,
        endpoint: EtcdEndpoint,
        key: String,
        approvals: SnapshotApprovals,
    ) -> HostResult<SnapshotInfo> {
        let bucket = approvals.bucket.clone();
        if self.env.plan {
            tracing::info!(member = %member_label, bucket = bucket.name(), %key, "plan: would stream an etcd snapshot");
            let planned = Ok(SnapshotInfo {
                key,
                size: 0,
                sha256: String::new(),
                revision: 0,
                member: member_label,
            });
            return self.finish_snapshot(approvals, planned);
        }
        let progress = progress_fn(self.env.progress.clone(), format!("etcd-snapshot {member_label}"));
        let result = snapshot_to_s3(&endpoint, &bucket, &key, super::SNAPSHOT_PART_SIZE, progress)
            .await
            .map(|i| SnapshotInfo {
                key: key.clone(),
                size: i.size,
                sha256: i.sha256,
                revision: i.revision,
                member: member_label.clone(),
            })
            .map_err(HostError::from);
        self.finish_snapshot(approvals, result)
    }

    /// Reads `key` of a Secret (or ConfigMap) in `namespace`, as PEM text. Each read is a
    /// `k8s:get` the policy decides (and the audit records) like the guest's own: naming a
    /// Secret here reaches no further than reading it would.
    async fn read_tls_item(
        &mut self,
        client: &kube::Client,
        alias: &str,
        namespace: &str,
        name: &str,
        keys: &[&str],
    ) -> HostResult<String> {
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};
        let get = |kind: &str| ResourceRef::K8s {
            cluster: alias.to_string(),
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
        };
        let approved = self.authorize(Action::K8sGet, get("Secret"), false).await?;
        let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|e| crate::capabilities::k8s::provider::map_kube_error(e, alias, &format!("read secret {name}")));
        let secret = self.finish(approved, secret)?;
        match secret {
            Some(s) => {
                let data = s.data.unwrap_or_default();
                for k in keys {
                    if let Some(v) = data.get(*k) {
                        return String::from_utf8(v.0.clone()).map_err(|_| {
                            HostError::Invalid(format!("secret {namespace}/{name} key {k} is not PEM text"))
                        });
                    }
                }
                Err(HostError::NotFound(format!(
                    "secret {namespace}/{name} has none of the keys {keys:?}"
                )))
            }
            None => {
                let approved = self.authorize(Action::K8sGet, get("ConfigMap"), false).await?;
                let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
                let cm = cms.get_opt(name).await.map_err(|e| {
                    crate::capabilities::k8s::provider::map_kube_error(e, alias, &format!("read configmap {name}"))
                });
                let cm = self.finish(approved, cm)?.ok_or_else(|| {
                    HostError::NotFound(format!(
                        "no secret or configmap {namespace}/{name} on cluster `{alias}`"
                    ))
                })?;
                let data = cm.data.unwrap_or_default();
                keys.iter().find_map(|k| data.get(*k).cloned()).ok_or_else(|| {
                    HostError::NotFound(format!("configmap {namespace}/{name} has none of the keys {keys:?}"))
                })
            }
        }
    }
    /// The way to a member pod: its TLS material (read host-side from the secrets the guest
    /// named, each read decided by the policy) and a port-forward. The forward lives as long
    /// as the returned handle.
    async fn pod_endpoint(
        &mut self,
        client: kube::Client,
        alias: &str,
        member: &PodMember,
    ) -> HostResult<(EtcdEndpoint, crate::capabilities::etcd::portforward::LocalForward)> {
        let tls = match (&member.client_secret, &member.ca_secret) {
            (Some(client_secret), Some(ca_secret)) => {
                let cert_pem = self
                    .read_tls_item(
                        &client,
                        alias,
                        &member.namespace,
                        client_secret,
                        &["etcd-client.crt", "tls.crt"],
                    )
                    .await?;
                let key_pem = self
                    .read_tls_item(
                        &client,
                        alias,
                        &member.namespace,
                        client_secret,
                        &["etcd-client.key", "tls.key"],
                    )
                    .await?;
                let ca_pem = self
                    .read_tls_item(&client, alias, &member.namespace, ca_secret, &["ca.crt"])
                    .await?;
                Some(crate::capabilities::etcd::provider::EtcdTls {
                    ca_pem,
                    cert_pem,
                    key_pem,
                    domain: Some(format!("{}.etcd-discovery.{}.svc", member.pod, member.namespace)),
                })
            }
            (None, None) => None,
            _ => {
                return Err(HostError::Invalid(
                    "give both client-secret and ca-secret for TLS, or neither".into(),
                ));
            }
        };
        let forward = crate::capabilities::etcd::portforward::forward_pod_port(
            client,
            &member.namespace,
            &member.pod,
            member.port,
        )
        .await
        .map_err(HostError::from)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = EtcdEndpoint {
            endpoints: vec![format!("{scheme}://{}", forward.local_addr)],
            tls,
        };
        Ok((endpoint, forward))
    }
}

impl Host for View<'_> {
    async fn member_status(&mut self, via: Resource<ClusterHandle>, member: PodMember) -> HostResult<Membership> {
        let (alias, client) = {
            let c = self.table.get(&via)?;
            (c.alias().to_string(), c.client().clone())
        };
        let approved = self
            .authorize(
                Action::EtcdMemberStatus,
                ResourceRef::EtcdMember {
                    cluster: alias.clone(),
                    namespace: member.namespace.clone(),
                    pod: member.pod.clone(),
                    endpoint: String::new(),
                },
                false,
            )
            .await?;
        let result = match self.pod_endpoint(client, &alias, &member).await {
            Err(e) => Err(e),
            Ok((endpoint, forward)) => {
                let url = endpoint.endpoints.first().cloned().unwrap_or_default();
                let status = member_status(&url, endpoint.tls.as_ref())
                    .await
                    .map(|s| Membership {
                        pod: member.pod.clone(),
                        member_id: format!("{:x}", s.member_id),
                        cluster_id: format!("{:x}", s.cluster_id),
                        members: s.members,
                    })
                    .map_err(HostError::from);
                drop(forward);
                status
            }
        };
        self.finish(approved, result)
    }

    async fn snapshot_pod_to_object(
        &mut self,
        via: Resource<ClusterHandle>,
        member: PodMember,
        into: Resource<BucketHandle>,
        key: String,
    ) -> HostResult<SnapshotInfo> {
        let (alias, client) = {
            let c = self.table.get(&via)?;
            (c.alias().to_string(), c.client().clone())
        };
        let label = format!("{alias}:{}/{}", member.namespace, member.pod);
        let approved = self
            .authorize(
                Action::EtcdSnapshot,
                ResourceRef::EtcdMember {
                    cluster: alias.clone(),
                    namespace: member.namespace.clone(),
                    pod: member.pod.clone(),
                    endpoint: String::new(),
                },
                self.env.plan,
            )
            .await?;
        // Everything this call writes is decided before anything is read.
        let approvals = self.approve_upload(&into, &key, approved).await?;
        let (endpoint, forward) = match self.pod_endpoint(client, &alias, &member).await {
            Ok(found) => found,
            Err(e) => return self.finish_snapshot(approvals, Err(e)),
        };
        let result = self.snapshot_into(label, endpoint, key, approvals).await;
        drop(forward);
        result
    }

    async fn snapshot_endpoint_to_object(
        &mut self,
        alias: String,
        into: Resource<BucketHandle>,
        key: String,
    ) -> HostResult<SnapshotInfo> {
        let approved = self
            .authorize(
                Action::EtcdSnapshot,
                ResourceRef::EtcdMember {
                    cluster: String::new(),
                    namespace: String::new(),
                    pod: String::new(),
                    endpoint: alias.clone(),
                },
                self.env.plan,
            )
            .await?;
        let Some(cfg) = self.env.config.etcd.get(&alias) else {
            let e = HostError::NotFound(format!(
                "no etcd endpoint `{alias}` in the run config; add an [etcd.{alias}] section"
            ));
            return self.fail(approved, e);
        };
        let endpoints = cfg.endpoints.clone();
        let approvals = self.approve_upload(&into, &key, approved).await?;
        let endpoint = EtcdEndpoint { endpoints, tls: None };
        self.snapshot_into(format!("endpoint:{alias}"), endpoint, key, approvals)
            .await
    }
}
