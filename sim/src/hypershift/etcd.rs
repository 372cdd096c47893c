//! The hosted control plane's etcd: a real etcd process per HCP namespace.
//!
//! HyperShift runs one etcd pod for `SingleReplica` (`etcd-0`) and three for
//! `HighlyAvailable` (`etcd-0..2`). The simulator runs **one** real etcd per HCP namespace and
//! routes every `etcd-N` pod's port-forward (port 2379) to it: all members serve the same data,
//! which is what a healthy three-member cluster looks like to a client taking a snapshot.
//! etcd serves plain HTTP (no client TLS): the simulator does not mint certificates, so the
//! `etcd-client-tls`/`etcd-ca` material HyperShift mounts is not created.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::services::EtcdServer;

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

/// A running hosted etcd.
pub struct HostedEtcd {
    server: EtcdServer,
    members: Vec<String>,
    dir: PathBuf,
    restored: bool,
}

impl std::fmt::Debug for HostedEtcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedEtcd")
            .field("client_url", &self.server.client_url())
            .field("members", &self.members)
            .field("restored", &self.restored)
            .finish_non_exhaustive()
    }
}

impl HostedEtcd {
    /// Start a fresh (empty) etcd with its data under `dir` (which it owns and removes on stop).
    pub async fn start(dir: &Path, members: Vec<String>) -> Result<HostedEtcd, HostedEtcdError> {
        let server = EtcdServer::start(dir).await.map_err(HostedEtcdError::Start)?;
        Ok(HostedEtcd {
            server,
            members,
            dir: dir.to_path_buf(),
            restored: false,
        })
    }

    /// Write `snapshot` (the downloaded bytes) under `dir`, restore it and start etcd from it.
    pub async fn restore(dir: &Path, members: Vec<String>, snapshot: &[u8]) -> Result<HostedEtcd, HostedEtcdError> {
        std::fs::create_dir_all(dir).map_err(|source| HostedEtcdError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = dir.join("snapshot.db");
        std::fs::write(&file, snapshot).map_err(|source| HostedEtcdError::Io {
            path: file.clone(),
            source,
        })?;
        let server = EtcdServer::restore_from(&file, dir.join("data"))
            .await
            .map_err(HostedEtcdError::Start)?;
        Ok(HostedEtcd {
            server,
            members,
            dir: dir.to_path_buf(),
            restored: true,
        })
    }

    /// The client URL (`http://127.0.0.1:PORT`).
    pub fn client_url(&self) -> String {
        self.server.client_url()
    }

    /// The client address port-forwards go to.
    pub fn client_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.client_url().trim_start_matches("http://").parse().ok()
    }

    /// The pod names served (`etcd-0`, ...).
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// True when this etcd was started from a restored snapshot.
    pub fn restored(&self) -> bool {
        self.restored
    }

    /// A key-value client for tests and seeding.
    pub fn client(&self) -> EtcdKvClient {
        EtcdKvClient::new(&self.client_url())
    }

    /// Stop etcd and remove its data.
    pub async fn stop(self) {
        let HostedEtcd { server, dir, .. } = self;
        let _ = server.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A tiny etcd v3 client over etcd's JSON gateway (`/v3/kv/put`, `/v3/kv/range`).
#[derive(Debug, Clone)]
pub struct EtcdKvClient {
    base: String,
}

impl EtcdKvClient {
    /// A client for the etcd at `client_url` (`http://host:port`).
    pub fn new(client_url: &str) -> Self {
        EtcdKvClient {
            base: client_url.trim_end_matches('/').to_string(),
        }
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value, HostedEtcdError> {
        let url = format!("{}{path}", self.base);
        let fail = |why: String| HostedEtcdError::Request { url: url.clone(), why };
        let (status, out) = super::client::request(http::Method::POST, &url, body.to_string())
            .await
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

    /// GET `key` (`None` when absent).
    pub async fn get(&self, key: &str) -> Result<Option<String>, HostedEtcdError> {
        let resp = self.call("/v3/kv/range", json!({"key": B64.encode(key)})).await?;
        let Some(v) = resp
            .pointer("/kvs/0/value")
            .and_then(Value::as_str)
            .and_then(|v| B64.decode(v).ok())
        else {
            return Ok(None);
        };
        Ok(Some(String::from_utf8_lossy(&v).to_string()))
    }
}
