//! The restore path end to end: ferry streams a hosted etcd snapshot into an S3 that really
//! checks SigV4 (over HTTPS, with its own CA) and presigns it; a simulated management cluster
//! with HyperShift's CRDs restores a HostedCluster from that URL (`etcd-init`), and reports it
//! where upstream does: `EtcdSnapshotRestored` on the HostedControlPlane. An expired URL gets
//! S3's XML error body, which `etcd-init` rejects instead of restoring garbage.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::time::Duration;

use aws_credential_types::Credentials;
use ferry::capabilities::etcd::provider::{EtcdEndpoint, snapshot_to_s3};
use ferry::capabilities::objects::provider::{Bucket, S3Settings, s3_client};
use ferry_sim::hypershift::environment::{Environment, EnvironmentOptions};
use ferry_sim::hypershift::scenario::Scenario;
use ferry_sim::hypershift::{EtcdKvClient, OperatorEvent, condition_status, hcp_namespace};
use ferry_sim::kube::registry;
use ferry_sim::services::EtcdServer;
use ferry_sim::services::s3::SigV4S3Server;
use serde_json::Value;

const NS: &str = "clusters";
const NAME: &str = "prod-a";

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
        &ferry::capabilities::objects::provider::Bucket::new(client.clone(), "backups"),
        "prod-a/etcd-0.db",
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

/// Source and destination with HyperShift's CRDs, the destination's `etcd-init` trusting the
/// S3's CA (as a real one trusts S3's public CA).
async fn environment(s3: &SigV4S3Server) -> Environment {
    ferry_tests::init_logging();
    let scenario = Scenario::from_toml(&format!(
        "management_clusters = [\"source\", \"destination\"]\n[hosted_cluster]\nnamespace = \"{NS}\"\nname = \"{NAME}\"\n"
    ))
    .unwrap();
    let opts = EnvironmentOptions {
        crds: ferry_tests::upstream_crds(),
        hosted_api: false,
        restore_trusted_ca: s3.ca_pem().map(str::to_string),
        ..EnvironmentOptions::default()
    };
    Environment::start(scenario, opts).await.unwrap()
}

/// Waits (bounded) until the destination's HostedControlPlane has `EtcdSnapshotRestored`
/// (`True`), or `etcd-init` failed; returns the HostedControlPlane.
async fn wait_for_restore(env: &Environment) -> Option<Value> {
    let dest = &env.clusters[1];
    let seen = dest
        .controllers
        .log()
        .wait_for(Duration::from_secs(60), |e| {
            matches!(
                e,
                OperatorEvent::EtcdStarted { .. } | OperatorEvent::EtcdRestoreFailed { .. }
            )
        })
        .await;
    if !matches!(seen, Some(OperatorEvent::EtcdStarted { restored: true, .. })) {
        return None;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let hcp = dest
            .sim
            .store()
            .get(&registry::HOSTED_CONTROL_PLANE, Some(&hcp_namespace(NS, NAME)), NAME)
            .ok();
        if let Some(h) = hcp.filter(|h| condition_status(h, "EtcdSnapshotRestored").as_deref() == Some("True")) {
            return Some(h);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "etcd started but EtcdSnapshotRestored never True"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cluster_restores_from_a_presigned_sigv4_url() {
    let f = snapshot_in_s3().await;
    let url = f
        .bucket
        .presign_get("prod-a/etcd-0.db", Duration::from_secs(600))
        .await
        .unwrap();
    assert!(url.starts_with("https://") && url.contains("X-Amz-Signature="), "{url}");
    let env = environment(&f.s3).await;
    env.recreate_hosted_cluster(1, &url, true).unwrap();
    assert!(
        wait_for_restore(&env).await.is_some(),
        "{:?}",
        env.clusters[1].controllers.log().entries()
    );
    let kv = env.clusters[1]
        .controllers
        .wait_for_etcd(&hcp_namespace(NS, NAME), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        kv.get("/kubernetes.io/configmaps/app/state").await.unwrap().as_deref(),
        Some("from-source")
    );
    let hc = env.clusters[1]
        .sim
        .store()
        .get(&registry::HOSTED_CLUSTER, Some(NS), NAME)
        .unwrap();
    assert_eq!(
        condition_status(&hc, "EtcdSnapshotRestored"),
        None,
        "upstream never copies it to the HostedCluster"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn an_expired_presigned_url_is_rejected_not_restored() {
    let f = snapshot_in_s3().await;
    let url = f
        .bucket
        .presign_get("prod-a/etcd-0.db", Duration::from_secs(1))
        .await
        .unwrap();
    let env = environment(&f.s3).await;
    // Let the URL expire (X-Amz-Date has one-second resolution).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    env.recreate_hosted_cluster(1, &url, false).unwrap();
    assert!(wait_for_restore(&env).await.is_none());
    // etcd-init exits 1 on an XML body: the kubelet's termination reason is `Error`.
    let failed = env.clusters[1]
        .controllers
        .log()
        .entries()
        .into_iter()
        .find_map(|e| match e {
            OperatorEvent::EtcdRestoreFailed { reason, message, .. } => Some((reason, message)),
            _ => None,
        });
    let (reason, message) = failed.expect("etcd-init failed");
    assert_eq!(reason, "Error");
    assert!(message.contains("Request has expired"), "{message}");
    let hcp = env.clusters[1]
        .sim
        .store()
        .get(&registry::HOSTED_CONTROL_PLANE, Some(&hcp_namespace(NS, NAME)), NAME)
        .unwrap();
    assert_ne!(condition_status(&hcp, "Available").as_deref(), Some("True"));
    env.shutdown().await;
}
