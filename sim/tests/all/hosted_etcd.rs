//! The hosted control plane's etcd looks like HyperShift's: client TLS with certificates minted
//! per HCP namespace and published as `etcd-client-tls`/`etcd-ca`, and one real etcd member per
//! `etcd-N` pod (three for `HighlyAvailable`), also after a restore from a snapshot.
//! Asynchronous effects are checked with bounded polling, never with timing assertions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use ferry_sim::hypershift::environment::{Environment, EnvironmentOptions};
use ferry_sim::hypershift::pki::server_sans;
use ferry_sim::hypershift::scenario::Scenario;
use ferry_sim::hypershift::{EtcdClientTls, EtcdKvClient, EtcdPki, OperatorEvent, hcp_namespace};
use ferry_sim::kube::crd::CrdSource;
use ferry_sim::kube::registry;
use ferry_sim::{Sim, Store, WriteOptions};
use support::SnapshotStore;

const NS: &str = "clusters";
const NAME: &str = "demo-one";
const SHORT: Duration = Duration::from_secs(10);
const ETCD: Duration = Duration::from_secs(90);

fn scenario(policy: &str, profile: &str) -> Scenario {
    Scenario::from_toml(&format!(
        "management_clusters = [\"source\", \"destination\"]\nhypershift = \"{profile}\"\n[hosted_cluster]\nnamespace = \"{NS}\"\nname = \"{NAME}\"\navailability_policy = \"{policy}\"\n"
    ))
    .unwrap()
}

/// Management clusters with the upstream CRDs whose source runs the hosted cluster (with
/// `policy`) and its etcd.
async fn env(policy: &str, restore_ca: Option<String>) -> Result<(Environment, String)> {
    env_on(policy, "3ee9615", restore_ca).await
}

/// [`env`] on HyperShift `profile`.
async fn env_on(policy: &str, profile: &str, restore_ca: Option<String>) -> Result<(Environment, String)> {
    let opts = EnvironmentOptions {
        crds: CrdSource::Dir(support::upstream_crds()),
        hosted_api: false,
        restore_trusted_ca: restore_ca,
        ..EnvironmentOptions::default()
    };
    let env = Environment::start(scenario(policy, profile), opts).await?;
    let hcp_ns = hcp_namespace(NS, NAME);
    if env.source().controllers.wait_for_etcd(&hcp_ns, ETCD).await.is_none() {
        bail!(
            "the hosted etcd did not start: {:?}",
            env.source().controllers.log().entries()
        );
    }
    Ok((env, hcp_ns))
}

/// Poll (bounded) until `obj` exists.
async fn wait_get(store: &Store, kind: &'static registry::KindInfo, ns: &str, name: &str) -> Result<Value> {
    let deadline = std::time::Instant::now() + SHORT;
    loop {
        if let Ok(v) = store.get(kind, Some(ns), name) {
            return Ok(v);
        }
        if std::time::Instant::now() >= deadline {
            bail!("timed out waiting for {}/{ns}/{name}", kind.kind);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The client TLS material read from the HCP namespace, the way ferry's host reads it
/// (Secret `etcd-client-tls` keys `etcd-client.crt`/`etcd-client.key`, ConfigMap `etcd-ca`
/// key `ca.crt`).
async fn tls_from_namespace(store: &Store, hcp_ns: &str) -> Result<EtcdClientTls> {
    let secret = wait_get(store, &registry::SECRET, hcp_ns, "etcd-client-tls").await?;
    let cm = wait_get(store, &registry::CONFIG_MAP, hcp_ns, "etcd-ca").await?;
    let secret_key = |k: &str| -> Result<String> {
        let b = secret["data"][k]
            .as_str()
            .with_context(|| format!("secret etcd-client-tls has no key {k}: {secret}"))?;
        Ok(String::from_utf8(B64.decode(b)?)?)
    };
    Ok(EtcdClientTls {
        ca_pem: cm["data"]["ca.crt"]
            .as_str()
            .with_context(|| format!("configmap etcd-ca has no ca.crt: {cm}"))?
            .to_string(),
        cert_pem: secret_key("etcd-client.crt")?,
        key_pem: secret_key("etcd-client.key")?,
        server_name: None,
    })
}

/// A TLS client for pod `pod`'s port-forward, verifying the server as
/// `<pod>.etcd-discovery.<ns>.svc` (what ferry's host does through a port-forward).
fn pod_client(sim: &Sim, hcp_ns: &str, pod: &str, tls: &EtcdClientTls) -> EtcdKvClient {
    let addr = sim
        .port_forwards()
        .lookup(hcp_ns, pod, 2379)
        .unwrap_or_else(|| panic!("no port-forward for {hcp_ns}/{pod}:2379"));
    EtcdKvClient::with_tls(
        &format!("https://{addr}"),
        EtcdClientTls {
            server_name: Some(format!("{pod}.etcd-discovery.{hcp_ns}.svc")),
            ..tls.clone()
        },
    )
}

#[test]
fn server_certificate_names_localhost_and_the_member_dns_names() {
    let members: Vec<String> = (0..3).map(|i| format!("etcd-{i}")).collect();
    let sans = server_sans("clusters-demo-one", &members);
    for want in [
        "localhost",
        "127.0.0.1",
        "etcd-0.etcd-discovery.clusters-demo-one.svc",
        "etcd-1.etcd-discovery.clusters-demo-one.svc",
        "etcd-2.etcd-discovery.clusters-demo-one.svc",
        "etcd-client.clusters-demo-one.svc",
    ] {
        assert!(sans.iter().any(|s| s == want), "{want} missing from {sans:?}");
    }
}

#[tokio::test]
async fn hcp_namespace_gets_the_client_secret_and_the_ca_configmap() -> Result<()> {
    let (env, hcp_ns) = env("SingleReplica", None).await?;
    let (sim, ho) = (&env.source().sim, &env.source().controllers);
    let store = sim.store().clone();
    let tls = tls_from_namespace(&store, &hcp_ns).await?;
    assert!(tls.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"), "{}", tls.ca_pem);
    assert!(tls.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(tls.key_pem.contains("PRIVATE KEY-----"));
    assert_ne!(tls.cert_pem, tls.ca_pem, "the client certificate is not the CA");
    assert_eq!(ho.etcd_client_url(&hcp_ns).unwrap().split("://").next(), Some("https"));

    // The material works through the pod's port-forward with the pod's DNS name (a SAN of the
    // serving certificate), and a name the certificate does not carry is refused.
    let client = pod_client(sim, &hcp_ns, "etcd-0", &tls);
    client.put("/kubernetes.io/configmaps/default/tls", "yes").await?;
    assert_eq!(
        client.get("/kubernetes.io/configmaps/default/tls").await?.as_deref(),
        Some("yes")
    );
    let addr = sim.port_forwards().lookup(&hcp_ns, "etcd-0", 2379).unwrap();
    let wrong_name = EtcdKvClient::with_tls(
        &format!("https://{addr}"),
        EtcdClientTls {
            server_name: Some("etcd-0.etcd-discovery.other-namespace.svc".to_string()),
            ..tls.clone()
        },
    );
    let err = wrong_name.get("/x").await.expect_err("name not in the certificate");
    assert!(err.to_string().contains("TLS handshake"), "{err}");

    // The operator puts tampered material back (HyperShift's PKI reconciliation).
    store.patch(
        &registry::CONFIG_MAP,
        Some(&hcp_ns),
        "etcd-ca",
        &ferry_sim::kube::patch::Patch::Merge(json!({"data": {"ca.crt": "not a CA"}})),
        &WriteOptions::default(),
    )?;
    let deadline = std::time::Instant::now() + SHORT;
    while store.get(&registry::CONFIG_MAP, Some(&hcp_ns), "etcd-ca")?["data"]["ca.crt"] != tls.ca_pem.as_str() {
        assert!(std::time::Instant::now() < deadline, "etcd-ca was not reconciled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_client_without_the_client_certificate_is_refused() -> Result<()> {
    let (env, hcp_ns) = env("SingleReplica", None).await?;
    let (sim, ho) = (&env.source().sim, &env.source().controllers);
    let tls = tls_from_namespace(sim.store(), &hcp_ns).await?;
    let url = ho.etcd_client_url(&hcp_ns).unwrap();

    let with_cert = EtcdKvClient::with_tls(&url, tls.clone());
    with_cert.put("/kubernetes.io/secrets/default/s", "v").await?;
    assert_eq!(
        with_cert.get("/kubernetes.io/secrets/default/s").await?.as_deref(),
        Some("v")
    );
    // The operator's own client (what seeding uses) also speaks TLS.
    let seeded = ho.wait_for_etcd(&hcp_ns, SHORT).await.unwrap();
    assert_eq!(
        seeded.get("/kubernetes.io/secrets/default/s").await?.as_deref(),
        Some("v")
    );

    let without_cert = EtcdKvClient::with_tls(&url, tls.without_client_cert());
    let err = without_cert
        .get("/kubernetes.io/secrets/default/s")
        .await
        .expect_err("etcd requires a client certificate");
    println!("without a client certificate: {err}");
    assert!(
        err.to_string().contains("fatal alert"),
        "etcd refuses the handshake: {err}"
    );
    // A certificate from another CA (another namespace's PKI) is refused as well.
    let other = EtcdPki::mint("other-namespace", &["etcd-0".to_string()])?;
    let foreign = EtcdKvClient::with_tls(
        &url,
        EtcdClientTls {
            cert_pem: other.client_cert_pem.clone(),
            key_pem: other.client_key_pem.clone(),
            ..tls.clone()
        },
    );
    let err = foreign
        .get("/kubernetes.io/secrets/default/s")
        .await
        .expect_err("a client certificate of another CA");
    assert!(err.to_string().contains("fatal alert"), "{err}");
    let plain = EtcdKvClient::new(&url.replacen("https://", "http://", 1));
    let err = plain
        .get("/kubernetes.io/secrets/default/s")
        .await
        .expect_err("plain HTTP");
    println!("over plain HTTP: {err}");
    env.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn highly_available_pods_reach_three_members_of_one_cluster() -> Result<()> {
    let (env, hcp_ns) = env("HighlyAvailable", None).await?;
    let sim = &env.source().sim;
    let tls = tls_from_namespace(sim.store(), &hcp_ns).await?;
    let pods = ["etcd-0", "etcd-1", "etcd-2"];
    let clients: Vec<EtcdKvClient> = pods.iter().map(|p| pod_client(sim, &hcp_ns, p, &tls)).collect();

    let mut member_ids = BTreeSet::new();
    let mut cluster_ids = BTreeSet::new();
    for c in &clients {
        let (member, cluster) = c.member_and_cluster_id().await?;
        member_ids.insert(member);
        cluster_ids.insert(cluster);
    }
    assert_eq!(member_ids.len(), 3, "three distinct members: {member_ids:?}");
    assert_eq!(cluster_ids.len(), 1, "one cluster: {cluster_ids:?}");

    let members = clients[1].member_list().await?;
    let names: BTreeSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, pods.into_iter().collect::<BTreeSet<_>>(), "{members:?}");

    clients[0]
        .put("/kubernetes.io/configmaps/default/ha", "replicated")
        .await?;
    assert_eq!(
        clients[2].get("/kubernetes.io/configmaps/default/ha").await?.as_deref(),
        Some("replicated")
    );
    // Every member applies the write to its own store (a serializable read is local).
    for c in &clients {
        let deadline = std::time::Instant::now() + SHORT;
        while c.get_local("/kubernetes.io/configmaps/default/ha").await?.as_deref() != Some("replicated") {
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not apply the write",
                c.url()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    env.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_grpc_client_snapshots_a_member_over_tls_with_the_published_material() -> Result<()> {
    // What a DR backup does: etcdctl (gRPC) with the client certificate and CA from the HCP
    // namespace, through a pod's port-forward, takes a snapshot.
    let (env, hcp_ns) = env("HighlyAvailable", None).await?;
    let sim = &env.source().sim;
    let tls = tls_from_namespace(sim.store(), &hcp_ns).await?;
    pod_client(sim, &hcp_ns, "etcd-0", &tls).put("/grpc/key", "v").await?;
    let dir = tempfile::tempdir()?;
    for (f, pem) in [
        ("ca.crt", &tls.ca_pem),
        ("client.crt", &tls.cert_pem),
        ("client.key", &tls.key_pem),
    ] {
        std::fs::write(dir.path().join(f), pem)?;
    }
    let addr = sim.port_forwards().lookup(&hcp_ns, "etcd-1", 2379).unwrap();
    let etcdctl = |args: &[&str]| {
        let mut c = tokio::process::Command::new("etcdctl");
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://{addr}"))
            .arg(format!("--cacert={}", dir.path().join("ca.crt").display()))
            .arg(format!("--cert={}", dir.path().join("client.crt").display()))
            .arg(format!("--key={}", dir.path().join("client.key").display()))
            .args(args);
        c
    };
    let snap = dir.path().join("etcd-1.db");
    let out = etcdctl(&["snapshot", "save", &snap.display().to_string()])
        .output()
        .await?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata(&snap)?.len() > 0);
    let out = etcdctl(&["member", "list"]).output().await?;
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(list.lines().count(), 3, "{list}");
    env.shutdown().await;
    Ok(())
}

/// Restores `snap` on the destination of an HA environment on `profile`; the restored etcd's
/// pods with a client each.
async fn restore_ha(profile: &str) -> Result<(Environment, String, SnapshotStore, Vec<(String, EtcdKvClient)>)> {
    let snap = support::etcd_snapshot(&[
        ("/kubernetes.io/secrets/default/keep", "from-source"),
        ("/kubernetes.io/configmaps/app/state", "42"),
    ])
    .await?;
    let snapshots = SnapshotStore::start().await?;
    let url = snapshots.presigned("demo-one.db", &snap, &snapshots.secret()).await?;
    let (env, hcp_ns) = env_on("HighlyAvailable", profile, Some(snapshots.ca_pem())).await?;
    env.recreate_hosted_cluster(1, &url, false)?;
    let dest = &env.clusters[1];
    let started = dest
        .controllers
        .log()
        .wait_for(ETCD, |e| {
            matches!(
                e,
                OperatorEvent::EtcdStarted { .. } | OperatorEvent::EtcdRestoreFailed { .. }
            )
        })
        .await;
    assert!(
        matches!(&started, Some(OperatorEvent::EtcdStarted { restored: true, members, .. }) if members.len() == 3),
        "{:?}",
        dest.controllers.log().entries()
    );
    let tls = tls_from_namespace(dest.sim.store(), &hcp_ns).await?;
    let clients = ["etcd-0", "etcd-1", "etcd-2"]
        .iter()
        .map(|pod| (pod.to_string(), pod_client(&dest.sim, &hcp_ns, pod, &tls)))
        .collect();
    Ok((env, hcp_ns, snapshots, clients))
}

/// The fix of openshift/hypershift#9069: every member restores with its identity, and the
/// three form one cluster holding the snapshot.
#[tokio::test]
async fn a_highly_available_restore_with_member_identity_is_one_cluster() -> Result<()> {
    let (env, _, _snapshots, clients) = restore_ha("3ee9615+pr9069").await?;
    let mut member_ids = BTreeSet::new();
    for (pod, c) in &clients {
        // Serializable reads: what this member restored into its own store.
        assert_eq!(
            c.get_local("/kubernetes.io/secrets/default/keep").await?.as_deref(),
            Some("from-source"),
            "{pod}"
        );
        assert_eq!(
            c.get_local("/kubernetes.io/configmaps/app/state").await?.as_deref(),
            Some("42"),
            "{pod}"
        );
        member_ids.insert(c.member_and_cluster_id().await?.0);
        assert_eq!(c.member_list().await?.len(), 3, "{pod}");
    }
    assert_eq!(member_ids.len(), 3, "{member_ids:?}");
    // The restored members form one working cluster: a new write reaches every member.
    clients[0].1.put("/after/restore", "ok").await?;
    assert_eq!(clients[2].1.get("/after/restore").await?.as_deref(), Some("ok"));
    env.shutdown().await;
    Ok(())
}

/// The pinned commit's `etcd-init.sh` restores with no `--name` or `--initial-cluster`
/// (OCPBUGS-99534): each member holds the snapshot and is a one-member cluster of its own, so a
/// write through one member never reaches the others.
#[tokio::test]
async fn a_highly_available_restore_on_the_pinned_commit_splits_into_three_clusters() -> Result<()> {
    let (env, _, _snapshots, clients) = restore_ha("3ee9615").await?;
    let mut clusters = BTreeSet::new();
    for (pod, c) in &clients {
        assert_eq!(
            c.get_local("/kubernetes.io/secrets/default/keep").await?.as_deref(),
            Some("from-source"),
            "{pod}"
        );
        let members = c.member_list().await?;
        assert_eq!(members.len(), 1, "{pod}: {members:?}");
        assert_eq!(members[0].name, *pod, "a member publishes its own name once started");
        clusters.insert(c.member_and_cluster_id().await?.1);
    }
    assert_eq!(clusters.len(), 3, "three clusters: {clusters:?}");
    clients[0].1.put("/after/restore", "only-here").await?;
    assert_eq!(clients[0].1.get("/after/restore").await?.as_deref(), Some("only-here"));
    assert_eq!(clients[2].1.get("/after/restore").await?, None, "the members disagree");
    env.shutdown().await;
    Ok(())
}
