//! The restore path end to end: ferry streams a hosted etcd snapshot into an
//! S3 that really checks SigV4 (over HTTPS, with its own CA), presigns it in the
//! bucket's region, and a
//! simulated management cluster restores a HostedCluster from that URL. An
//! expired URL gets S3's XML error body, which the cluster rejects instead of
//! restoring garbage.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::time::Duration;

use aws_credential_types::Credentials;
use ferry::backends::etcd::{EtcdEndpoint, snapshot_to_s3};
use ferry::backends::s3::{Bucket, S3Settings, s3_client};
use ferry_sim::hypershift::{EtcdKvClient, HyperShiftOperator, OperatorOptions, condition, condition_status};
use ferry_sim::s3::SigV4S3Server;
use ferry_sim::services::EtcdServer;
use ferry_sim::{Sim, WriteOptions, registry};
use serde_json::{Value, json};

const NS: &str = "clusters";
const NAME: &str = "prod.a";

/// Waits (bounded) until the HostedCluster's `EtcdSnapshotRestored` condition
/// has `status`, and returns the HostedCluster.
async fn wait_for_restore_condition(store: &ferry_sim::Store, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(hc) = store.get(&registry::HOSTED_CLUSTER, Some(NS), NAME)
            && condition_status(&hc, "EtcdSnapshotRestored").as_deref() == Some(status)
        {
            return hc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for EtcdSnapshotRestored={status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hosted_cluster(url: &str) -> Value {
    json!({
        "apiVersion": "hypershift.openshift.io/v1beta1", "kind": "HostedCluster",
        "metadata": { "name": NAME, "namespace": NS },
        "spec": {
            "infraID": "prod-a-infra", "controllerAvailabilityPolicy": "SingleReplica",
            "release": { "image": "quay.io/openshift-release-dev/ocp-release:4.17.0-x86_64" },
            "platform": { "type": "AWS", "aws": { "region": "us-east-1" } },
            "etcd": { "managementType": "Managed", "managed": { "storage": {
                "type": "PersistentVolume", "restoreSnapshotURL": [url] } } }
        }
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    s3: SigV4S3Server,
    _source: EtcdServer,
    bucket: Bucket,
}

/// A source etcd with one key, snapshotted by ferry into a SigV4 S3.
async fn snapshot_in_s3() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let s3 = SigV4S3Server::start_tls(dir.path().join("s3"), "AKIAFERRYTEST", "ferry-secret")
        .await
        .unwrap();
    let settings = S3Settings {
        region: "us-east-1".into(),
        endpoint_url: Some(s3.url()),
        force_path_style: true,
        profile: None,
        ca_bundle_pem: s3.ca_pem().map(|p| p.as_bytes().to_vec()),
    };
    let client = s3_client(
        &settings,
        Some(Credentials::new("AKIAFERRYTEST", "ferry-secret", None, None, "test")),
    )
    .await;
    client.create_bucket().bucket("backups").send().await.unwrap();
    let source = EtcdServer::start(dir.path().join("source")).await.unwrap();
    EtcdKvClient::new(&source.client_url())
        .put("/kubernetes.io/configmaps/app/state", "from-source")
        .await
        .unwrap();
    let endpoint = EtcdEndpoint {
        endpoints: vec![source.client_url()],
        tls: None,
    };
    snapshot_to_s3(
        &endpoint,
        &client,
        "backups",
        "prod.a/etcd-0.db",
        8 * 1024 * 1024,
        |_| {},
    )
    .await
    .unwrap();
    Fixture {
        _dir: dir,
        s3,
        _source: source,
        bucket: Bucket::new(client, "backups"),
    }
}

/// A destination whose operator trusts the S3's CA (as a real one trusts S3's public CA).
async fn destination(s3: &SigV4S3Server) -> (Sim, HyperShiftOperator) {
    let sim = Sim::start("destination").await.unwrap();
    let mut opts = OperatorOptions::new("destination");
    opts.hosted_etcd = true;
    opts.restore_trusted_ca = s3.ca_pem().map(str::to_string);
    let operator = HyperShiftOperator::start(&sim, opts).unwrap();
    sim.store()
        .create(
            &registry::NAMESPACE,
            None,
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NS } }),
            &WriteOptions::default(),
        )
        .unwrap();
    (sim, operator)
}

#[tokio::test]
async fn a_cluster_restores_from_a_presigned_sigv4_url() {
    let f = snapshot_in_s3().await;
    let url = f
        .bucket
        .presign_get("prod.a/etcd-0.db", Duration::from_secs(600))
        .await
        .unwrap();
    assert!(url.starts_with("https://") && url.contains("X-Amz-Signature="), "{url}");
    let (sim, operator) = destination(&f.s3).await;
    sim.store()
        .create(
            &registry::HOSTED_CLUSTER,
            Some(NS),
            hosted_cluster(&url),
            &WriteOptions::default(),
        )
        .unwrap();

    wait_for_restore_condition(sim.store(), "True").await;
    let kv = operator
        .wait_for_etcd("clusters-prod-a", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        kv.get("/kubernetes.io/configmaps/app/state").await.unwrap().as_deref(),
        Some("from-source")
    );
    operator.shutdown().await;
}

#[tokio::test]
async fn an_expired_presigned_url_is_rejected_not_restored() {
    let f = snapshot_in_s3().await;
    let url = f
        .bucket
        .presign_get("prod.a/etcd-0.db", Duration::from_secs(1))
        .await
        .unwrap();
    // Let the URL expire (X-Amz-Date has one-second resolution).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (sim, operator) = destination(&f.s3).await;
    sim.store()
        .create(
            &registry::HOSTED_CLUSTER,
            Some(NS),
            hosted_cluster(&url),
            &WriteOptions::default(),
        )
        .unwrap();

    let hc = wait_for_restore_condition(sim.store(), "False").await;
    let cond = condition(&hc, "EtcdSnapshotRestored").unwrap();
    assert_eq!(cond["reason"], "InvalidSnapshot", "{cond}");
    assert_ne!(condition_status(&hc, "Available").as_deref(), Some("True"));
    operator.shutdown().await;
}
