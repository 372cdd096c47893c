//! The hosted control plane's etcd: a real etcd cluster per HCP namespace, serving client TLS.
//!
//! HyperShift runs one etcd pod for `SingleReplica` (`etcd-0`) and three for `HighlyAvailable`
//! (`etcd-0..2`). The simulator runs **one real etcd member per pod**, named like the pod, as one
//! cluster ([`EtcdCluster`]: distinct client/peer ports on loopback, a shared
//! `--initial-cluster`), and routes each `etcd-N` pod's port-forward (port 2379) to its own
//! member. A restore from `restoreSnapshotURL` restores the snapshot into every member as the
//! profile's `etcd-init.sh` does: at the pinned commit with no member identity, so each member
//! of a HighlyAvailable control plane is a one-member cluster of its own; with the fix of
//! openshift/hypershift#9069 with its name, peer URL and the whole initial cluster, so the
//! members form one cluster ([`crate::services::Restore`]).
//!
//! Like HyperShift's, the etcd serves **client TLS and requires client certificates**: a CA,
//! a serving certificate (SANs `localhost`, `127.0.0.1`, `etcd-N.etcd-discovery.<ns>.svc`, ...)
//! and a client certificate are minted per HCP namespace ([`EtcdPki`]), and the operator
//! publishes the client material as the Secret `etcd-client-tls` (`etcd-client.crt`,
//! `etcd-client.key`) and the CA as the ConfigMap `etcd-ca` (`ca.crt`). Peers talk plain HTTP
//! on loopback (HyperShift's peer TLS is not modelled).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::client::TlsConnect;
use super::pki::EtcdClientTls;
pub use super::pki::EtcdPki;
use crate::services::{EtcdCluster, Restore};

/// Port etcd pods expose for clients.
pub const ETCD_CLIENT_PORT: u16 = 2379;

/// Errors of the hosted etcd.
#[derive(Debug, thiserror::Error)]
pub enum HostedEtcdError {
    /// The etcd process did not start (or the restore failed).
    #[error("cannot start the hosted etcd: {0:#}")]
    Start(anyhow::Error),
    /// Writing the snapshot file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key-value request to etcd failed.
    #[error("etcd request to {url} failed: {why}")]
    Request {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
}

/// The etcd pod names of an availability policy (`HighlyAvailable` → three, else one).
pub fn member_pods(availability_policy: Option<&str>) -> Vec<String> {
    let n = if availability_policy == Some("HighlyAvailable") {
        3
    } else {
        1
    };
    (0..n).map(|i| format!("etcd-{i}")).collect()
}

/// The namespace [`HostedEtcd::start`] and [`HostedEtcd::restore`] mint certificates for (they
/// predate per-namespace PKI; the operator uses [`HostedEtcd::start_in`]/[`HostedEtcd::restore_in`]).
pub const DEFAULT_ETCD_NAMESPACE: &str = "default";

/// How long one [`EtcdKvClient`] request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A running hosted etcd: one member per pod, with client TLS.
pub struct HostedEtcd {
    cluster: EtcdCluster,
    members: Vec<String>,
    namespace: String,
    pki: EtcdPki,
    dir: PathBuf,
    restored: bool,
}

impl std::fmt::Debug for HostedEtcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedEtcd")
            .field("namespace", &self.namespace)
            .field("client_url", &self.client_url())
            .field("members", &self.members)
            .field("restored", &self.restored)
            .finish_non_exhaustive()
    }
}

impl HostedEtcd {
    /// Start a fresh (empty) etcd with its data under `dir` (which it owns and removes on stop),
    /// with certificates for namespace [`DEFAULT_ETCD_NAMESPACE`]. See [`HostedEtcd::start_in`].
    pub async fn start(dir: &Path, members: Vec<String>) -> Result<HostedEtcd, HostedEtcdError> {
        Self::start_in(dir, DEFAULT_ETCD_NAMESPACE, members).await
    }

    /// Start a fresh (empty) etcd cluster for HCP namespace `namespace`: one member per pod name
    /// in `members` (at least one), a PKI minted for the namespace, client TLS required.
    pub async fn start_in(dir: &Path, namespace: &str, members: Vec<String>) -> Result<HostedEtcd, HostedEtcdError> {
        Self::launch(dir, namespace, members, None).await
    }

    /// Write `snapshot` (the downloaded bytes) under `dir`, restore it and start etcd from it as
    /// one cluster, with certificates for namespace [`DEFAULT_ETCD_NAMESPACE`]. See
    /// [`HostedEtcd::restore_in`].
    pub async fn restore(dir: &Path, members: Vec<String>, snapshot: &[u8]) -> Result<HostedEtcd, HostedEtcdError> {
        Self::restore_in(dir, DEFAULT_ETCD_NAMESPACE, members, snapshot, Restore::AsMember).await
    }

    /// Write `snapshot` under `dir`, restore it into every member of `members` as `how` says
    /// and start them (with client TLS, as [`HostedEtcd::start_in`]).
    pub async fn restore_in(
        dir: &Path,
        namespace: &str,
        members: Vec<String>,
        snapshot: &[u8],
        how: Restore,
    ) -> Result<HostedEtcd, HostedEtcdError> {
        std::fs::create_dir_all(dir).map_err(|source| HostedEtcdError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = dir.join("snapshot.db");
        std::fs::write(&file, snapshot).map_err(|source| HostedEtcdError::Io {
            path: file.clone(),
            source,
        })?;
        Self::launch(dir, namespace, members, Some((&file, how))).await
    }

    async fn launch(
        dir: &Path,
        namespace: &str,
        members: Vec<String>,
        snapshot: Option<(&Path, Restore)>,
    ) -> Result<HostedEtcd, HostedEtcdError> {
        if members.is_empty() {
            return Err(HostedEtcdError::Start(anyhow::anyhow!(
                "a hosted etcd needs at least one member"
            )));
        }
        let pki = EtcdPki::mint(namespace, &members).map_err(|e| HostedEtcdError::Start(e.into()))?;
        let server_tls = pki
            .write_server_files(&dir.join("pki"))
            .map_err(|e| HostedEtcdError::Start(e.into()))?;
        let data = dir.join("data");
        let cluster = match snapshot {
            None => EtcdCluster::start(&data, &members, Some(&server_tls)).await,
            Some((file, how)) => EtcdCluster::restore_from(file, &data, &members, Some(&server_tls), how).await,
        }
        .map_err(HostedEtcdError::Start)?;
        Ok(HostedEtcd {
            cluster,
            members,
            namespace: namespace.to_string(),
            pki,
            dir: dir.to_path_buf(),
            restored: snapshot.is_some(),
        })
    }

    /// The client URL of the first member (`https://127.0.0.1:PORT`).
    pub fn client_url(&self) -> String {
        self.cluster
            .members()
            .first()
            .map(|m| m.client_url())
            .unwrap_or_default()
    }

    /// The client address of the first member.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.cluster.members().first().map(|m| m.client_addr())
    }

    /// The client URL of the member of pod `pod`.
    pub fn member_client_url(&self, pod: &str) -> Option<String> {
        self.cluster.member(pod).map(|m| m.client_url())
    }

    /// Each pod with the client address of its own member, in pod order.
    pub fn member_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.cluster
            .members()
            .iter()
            .map(|m| (m.name().to_string(), m.client_addr()))
            .collect()
    }

    /// The pod names served (`etcd-0`, ...), which are also the etcd member names.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The HCP namespace the certificates were minted for.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The certificates (CA, server, client).
    pub fn pki(&self) -> &EtcdPki {
        &self.pki
    }

    /// True when this etcd was started from a restored snapshot.
    pub fn restored(&self) -> bool {
        self.restored
    }

    /// A key-value client (with the client certificate) for the first member.
    pub fn client(&self) -> EtcdKvClient {
        EtcdKvClient::with_tls(&self.client_url(), self.pki.client_tls())
    }

    /// A key-value client (with the client certificate) for the member of pod `pod`.
    pub fn member_client(&self, pod: &str) -> Option<EtcdKvClient> {
        self.member_client_url(pod)
            .map(|url| EtcdKvClient::with_tls(&url, self.pki.client_tls()))
    }

    /// A key-value client for every member, in pod order.
    pub fn member_clients(&self) -> Vec<(String, EtcdKvClient)> {
        self.member_addrs()
            .into_iter()
            .filter_map(|(pod, _)| self.member_client(&pod).map(|c| (pod, c)))
            .collect()
    }

    /// Stop etcd and remove its data.
    pub async fn stop(self) {
        let HostedEtcd { cluster, dir, .. } = self;
        let _ = cluster.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A tiny etcd v3 client over etcd's JSON gateway (`/v3/kv/put`, `/v3/kv/range`,
/// `/v3/cluster/member/list`), over plain HTTP ([`EtcdKvClient::new`]) or TLS with a client
/// certificate ([`EtcdKvClient::with_tls`]).
#[derive(Clone)]
pub struct EtcdKvClient {
    base: String,
    tls: Option<Result<TlsConnect, String>>,
}

impl std::fmt::Debug for EtcdKvClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdKvClient")
            .field("base", &self.base)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// One member of [`EtcdKvClient::member_list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMemberInfo {
    /// Member ID (decimal, as the gateway returns it).
    pub id: String,
    /// Member name (`etcd-0`, ...).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
}

impl EtcdKvClient {
    /// A plain-HTTP client for the etcd at `client_url` (`http://host:port`).
    pub fn new(client_url: &str) -> Self {
        EtcdKvClient {
            base: client_url.trim_end_matches('/').to_string(),
            tls: None,
        }
    }

    /// A client for the etcd at `client_url` (`https://host:port`) speaking TLS with `tls`.
    /// Invalid PEM makes every request fail with the reason.
    pub fn with_tls(client_url: &str, tls: EtcdClientTls) -> Self {
        let connect = tls.rustls_config().map(|config| TlsConnect {
            config: Arc::new(config),
            server_name: tls.server_name.clone(),
        });
        EtcdKvClient {
            base: client_url.trim_end_matches('/').to_string(),
            tls: Some(connect),
        }
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value, HostedEtcdError> {
        let url = format!("{}{path}", self.base);
        let fail = |why: String| HostedEtcdError::Request { url: url.clone(), why };
        let tls = match &self.tls {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => return Err(fail(e.clone())),
        };
        let sent = super::client::request_with(http::Method::POST, &url, body.to_string(), tls);
        let (status, out) = tokio::time::timeout(REQUEST_TIMEOUT, sent)
            .await
            .map_err(|_| fail(format!("timed out after {REQUEST_TIMEOUT:?}")))?
            .map_err(fail)?;
        if status != 200 {
            return Err(fail(format!("HTTP {status}: {}", String::from_utf8_lossy(&out))));
        }
        serde_json::from_slice(&out).map_err(|e| fail(format!("invalid JSON: {e}")))
    }

    /// PUT `key` = `value`.
    pub async fn put(&self, key: &str, value: &str) -> Result<(), HostedEtcdError> {
        self.call(
            "/v3/kv/put",
            json!({"key": B64.encode(key), "value": B64.encode(value)}),
        )
        .await
        .map(|_| ())
    }

    /// GET `key` (`None` when absent). Linearizable: it goes through the leader, so a key put
    /// through one member is read through any other.
    pub async fn get(&self, key: &str) -> Result<Option<String>, HostedEtcdError> {
        let resp = self.call("/v3/kv/range", json!({"key": B64.encode(key)})).await?;
        Ok(first_value(&resp))
    }

    /// GET `key` from this member's own store (`serializable`: no round-trip to the leader),
    /// which shows what this very member holds.
    pub async fn get_local(&self, key: &str) -> Result<Option<String>, HostedEtcdError> {
        let resp = self
            .call("/v3/kv/range", json!({"key": B64.encode(key), "serializable": true}))
            .await?;
        Ok(first_value(&resp))
    }

    /// Every key under `prefix` with its value, from this member's own store (`serializable`).
    pub async fn range_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, HostedEtcdError> {
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last = last.saturating_add(1);
        }
        let resp = self
            .call(
                "/v3/kv/range",
                json!({"key": B64.encode(prefix), "range_end": B64.encode(&end), "serializable": true}),
            )
            .await?;
        let decode = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .and_then(|s| B64.decode(s).ok())
                .map(|b| String::from_utf8_lossy(&b).to_string())
        };
        Ok(resp
            .get("kvs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((decode(kv.get("key"))?, decode(kv.get("value")).unwrap_or_default())))
            .collect())
    }

    /// DELETE `key`.
    pub async fn delete(&self, key: &str) -> Result<(), HostedEtcdError> {
        self.call("/v3/kv/deleterange", json!({"key": B64.encode(key)}))
            .await
            .map(|_| ())
    }

    /// The cluster's members.
    pub async fn member_list(&self) -> Result<Vec<EtcdMemberInfo>, HostedEtcdError> {
        let resp = self.call("/v3/cluster/member/list", json!({})).await?;
        let strings = |m: &Value, field: &str| -> Vec<String> {
            m.get(field)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        Ok(resp
            .get("members")
            .and_then(Value::as_array)
            .map(|members| {
                members
                    .iter()
                    .map(|m| EtcdMemberInfo {
                        id: m
                            .get("ID")
                            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                            .unwrap_or_default(),
                        name: m.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                        peer_urls: strings(m, "peerURLs"),
                        client_urls: strings(m, "clientURLs"),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The ID of the member this client talks to and its cluster's ID (`/v3/maintenance/status`
    /// header), as decimal strings.
    pub async fn member_and_cluster_id(&self) -> Result<(String, String), HostedEtcdError> {
        let resp = self.call("/v3/maintenance/status", json!({})).await?;
        let id = |p: &str| {
            resp.pointer(p)
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                .unwrap_or_default()
        };
        Ok((id("/header/member_id"), id("/header/cluster_id")))
    }
}

fn first_value(resp: &Value) -> Option<String> {
    let v = resp
        .pointer("/kvs/0/value")
        .and_then(Value::as_str)
        .and_then(|v| B64.decode(v).ok())?;
    Some(String::from_utf8_lossy(&v).to_string())
}
