//! Helpers shared by the simulator's integration tests.

#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result};

use ferry_sim::services::SigV4S3Server;
use ferry_sim::{ListOptions, Store};

/// [`ferry_sim::crd_tests::upstream_dir`]; missing, the test fails with what to do: these
/// tests are the simulator's referee and must not pass by not running.
pub fn upstream_dir() -> std::path::PathBuf {
    ferry_sim::crd_tests::upstream_dir().unwrap_or_else(|| {
        panic!(
            "HyperShift's upstream CRDs are not in ../shared/upstream next to the checkout: set \
             FERRY_UPSTREAM_DIR to the directory holding hypershift/crds and hypershift/crd-tests"
        )
    })
}

/// The directory of HyperShift's CRDs.
#[allow(dead_code)]
pub fn upstream_crds() -> std::path::PathBuf {
    upstream_dir().join("hypershift/crds")
}

/// An HTTPS S3 (SigV4-checking) holding snapshots, and presigned URLs for them: what a
/// HostedCluster's `restoreSnapshotURL` points at.
pub struct SnapshotStore {
    s3: SigV4S3Server,
    _dir: tempfile::TempDir,
}

const BUCKET: &str = "backups";

impl SnapshotStore {
    /// Start the server.
    pub async fn start() -> Result<SnapshotStore> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join(BUCKET))?;
        let s3 = SigV4S3Server::start_tls(dir.path(), "AKIDFERRYSIM", "ferry-sim-secret").await?;
        Ok(SnapshotStore { s3, _dir: dir })
    }

    /// The CA etcd-init must trust.
    pub fn ca_pem(&self) -> String {
        self.s3.ca_pem().unwrap_or_default().to_string()
    }

    /// Store `bytes` under `key` and presign a GET valid for an hour, signed with `secret`
    /// (a wrong secret makes a URL S3 answers with a 403 XML error).
    pub async fn presigned(&self, key: &str, bytes: &[u8], secret: &str) -> Result<String> {
        std::fs::write(self.s3.root().join(BUCKET).join(key), bytes)?;
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(self.s3.url())
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                self.s3.access_key(),
                secret,
                None,
                None,
                "test",
            ))
            .build();
        let client = aws_sdk_s3::Client::from_conf(conf);
        let req = client
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(
                Duration::from_secs(3600),
            )?)
            .await?;
        Ok(req.uri().to_string())
    }

    /// The secret that signs valid URLs.
    pub fn secret(&self) -> String {
        self.s3.secret_key().to_string()
    }
}

/// A real etcd snapshot holding `keys` (etcd and etcdctl, as `.ci/setup` installs them).
pub async fn etcd_snapshot(keys: &[(&str, &str)]) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let src = ferry_sim::services::EtcdServer::start(dir.path().join("src")).await?;
    let client = ferry_sim::hypershift::EtcdKvClient::new(&src.client_url());
    for (k, v) in keys {
        client.put(k, v).await?;
    }
    let snap = dir.path().join("snap.db");
    let out = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(src.client_url())
        .arg("snapshot")
        .arg("save")
        .arg(&snap)
        .output()
        .await
        .context("cannot run etcdctl")?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(std::fs::read(&snap)?)
}

/// Every object of `namespaces` (and the namespaces) with its finalizers and whether it is
/// being deleted: what a failed wait prints.
pub fn dump(store: &Store, namespaces: &[&str]) -> String {
    let mut out = Vec::new();
    let registry = store.registry();
    for kind in registry.kinds() {
        for ns in namespaces {
            let items = if kind.namespaced {
                store.list(kind, Some(ns), &ListOptions::default())
            } else if kind.kind == "Namespace" {
                store.list(kind, None, &ListOptions::default())
            } else {
                continue;
            };
            for o in items.map(|l| l.items).unwrap_or_default() {
                let name = o["metadata"]["name"].as_str().unwrap_or_default();
                if !kind.namespaced && name != *ns {
                    continue;
                }
                out.push(format!(
                    "{}/{} {ns}/{name} finalizers={} deleting={}",
                    kind.kind,
                    kind.version,
                    o["metadata"]["finalizers"],
                    o["metadata"]["deletionTimestamp"].is_string()
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out.join("\n")
}
