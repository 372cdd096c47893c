//! The simulated HyperShift operator, hosted etcd and `restoreSnapshotURL` restore.
//! Asynchronous effects are checked with bounded polling, never with timing assertions.
//! Negative checks ("nothing happened") wait for the operator to finish a later pass, observed
//! through a marker HostedCluster getting its finalizer (a pass reconciles every HostedCluster
//! in name order, and the markers sort last).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use ferry_sim::hypershift::restore::{self, RestoreUrlPolicy};
use ferry_sim::hypershift::{
    EtcdKvClient, FINALIZER, HyperShiftOperator, OperatorEvent, OperatorOptions, condition_status, hcp_namespace,
};
use ferry_sim::patch::Patch;
use ferry_sim::registry;
use ferry_sim::services::EtcdServer;
use ferry_sim::{DeleteOptions, ListOptions, Sim, SimOptions, Store, WriteOptions};
use support::serve_bytes;

const NS: &str = "clusters";
const NAME: &str = "demo.one";

async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SHORT: Duration = Duration::from_secs(10);
const ETCD: Duration = Duration::from_secs(60);

fn ensure_ns(store: &Store, ns: &str) {
    let _ = store.create(
        &registry::NAMESPACE,
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        &WriteOptions::default(),
    );
}

fn hc_object(name: &str, spec: Value) -> Value {
    let mut s = json!({
        "release": {"image": "quay.io/openshift-release-dev/ocp-release:4.17.0-x86_64"},
        "infraID": format!("{}-infra", name.replace('.', "-")),
        "controllerAvailabilityPolicy": "SingleReplica",
        "etcd": {"managementType": "Managed", "managed": {"storage": {"type": "PersistentVolume"}}},
        "platform": {"type": "AWS", "aws": {"region": "us-east-1"}},
    });
    if let (Some(base), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    json!({
        "apiVersion": "hypershift.openshift.io/v1beta1",
        "kind": "HostedCluster",
        "metadata": {"name": name, "namespace": NS,
            "annotations": {"hypershift.openshift.io/external-dns-domain": "example.com"}},
        "spec": s,
    })
}

fn create_hc(store: &Store, name: &str, spec: Value) {
    ensure_ns(store, NS);
    store
        .create(
            &registry::HOSTED_CLUSTER,
            Some(NS),
            hc_object(name, spec),
            &WriteOptions::default(),
        )
        .unwrap();
}

fn get(store: &Store, kind: &'static registry::KindInfo, ns: Option<&str>, name: &str) -> Option<Value> {
    store.get(kind, ns, name).ok()
}

fn has_finalizer(store: &Store, name: &str) -> bool {
    get(store, &registry::HOSTED_CLUSTER, Some(NS), name).is_some_and(|hc| {
        hc.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
    })
}

fn route_names(store: &Store, ns: &str) -> Vec<String> {
    store
        .list(&registry::ROUTE, Some(ns), &ListOptions::default())
        .unwrap()
        .items
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn merge(store: &Store, kind: &'static registry::KindInfo, ns: Option<&str>, name: &str, patch: Value) {
    store
        .patch(kind, ns, name, &Patch::Merge(patch), &WriteOptions::default())
        .unwrap();
}

/// Wait until the operator completed a pass that started after this call.
async fn settle(store: &Store, marker: &str) -> Result<()> {
    create_hc(store, marker, json!({"pausedUntil": "true"}));
    eventually("the marker HostedCluster gets its finalizer", SHORT, || {
        has_finalizer(store, marker)
    })
    .await
}

fn opts(cluster: &str, etcd: bool) -> OperatorOptions {
    let mut o = OperatorOptions::new(cluster);
    o.hosted_etcd = etcd;
    o
}

#[tokio::test]
async fn paused_hc_keeps_deleted_routes_deleted_until_unpaused() -> Result<()> {
    let sim = Sim::start("mgmt1").await?;
    let store = sim.store().clone();
    let ho = HyperShiftOperator::start(&sim, opts("mgmt1", false))?;
    let hcp_ns = hcp_namespace(NS, NAME);
    assert_eq!(hcp_ns, "clusters-demo-one");
    create_hc(&store, NAME, json!({}));
    eventually("four routes", SHORT, || route_names(&store, &hcp_ns).len() == 4).await?;
    let api = store.get(&registry::ROUTE, Some(&hcp_ns), "kube-apiserver")?;
    assert_eq!(api["spec"]["host"], "api-demo.one.example.com");
    assert!(get(&store, &registry::HOSTED_CONTROL_PLANE, Some(&hcp_ns), NAME).is_some());
    eventually("Available=True", SHORT, || {
        get(&store, &registry::HOSTED_CLUSTER, Some(NS), NAME)
            .is_some_and(|hc| condition_status(&hc, "Available").as_deref() == Some("True"))
    })
    .await?;
    store.create(
        &registry::CAPI_CLUSTER,
        Some(&hcp_ns),
        json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
            "metadata": {"name": "demo-one-infra"}, "spec": {}}),
        &WriteOptions::default(),
    )?;

    merge(
        &store,
        &registry::HOSTED_CLUSTER,
        Some(NS),
        NAME,
        json!({"spec": {"pausedUntil": "true"}}),
    );
    let capi_paused = |want: bool| {
        get(&store, &registry::CAPI_CLUSTER, Some(&hcp_ns), "demo-one-infra")
            .is_some_and(|c| c["spec"]["paused"].as_bool() == Some(want))
    };
    eventually("CAPI Cluster paused", SHORT, || capi_paused(true)).await?;
    eventually("HCP pausedUntil copied", SHORT, || {
        get(&store, &registry::HOSTED_CONTROL_PLANE, Some(&hcp_ns), NAME)
            .is_some_and(|h| h["spec"]["pausedUntil"] == "true")
    })
    .await?;
    for r in route_names(&store, &hcp_ns) {
        store.delete(&registry::ROUTE, Some(&hcp_ns), &r, &DeleteOptions::default())?;
    }
    settle(&store, "zz-marker-1").await?;
    assert!(
        route_names(&store, &hcp_ns).is_empty(),
        "a paused HC must not recreate routes"
    );

    merge(
        &store,
        &registry::HOSTED_CLUSTER,
        Some(NS),
        NAME,
        json!({"spec": {"pausedUntil": null}}),
    );
    eventually("routes recreated after unpause", SHORT, || {
        route_names(&store, &hcp_ns).len() == 4
    })
    .await?;
    eventually("CAPI Cluster unpaused", SHORT, || capi_paused(false)).await?;
    assert!(ho.log().any(|e| matches!(e, OperatorEvent::Created { kind, name, .. }
        if kind == "Route" && name == "kube-apiserver")));
    ho.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn finalizer_is_added_before_the_pause_check() -> Result<()> {
    let sim = Sim::start("mgmt1").await?;
    let store = sim.store().clone();
    let _ho = HyperShiftOperator::start(&sim, opts("mgmt1", false))?;
    create_hc(&store, NAME, json!({"pausedUntil": "true"}));
    eventually("finalizer on the paused HC", SHORT, || has_finalizer(&store, NAME)).await?;
    settle(&store, "zz-marker-1").await?;
    assert!(
        get(&store, &registry::NAMESPACE, None, &hcp_namespace(NS, NAME)).is_none(),
        "a paused HC gets no control plane"
    );
    // A pausedUntil date in the future pauses too; one in the past does not.
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    merge(
        &store,
        &registry::HOSTED_CLUSTER,
        Some(NS),
        NAME,
        json!({"spec": {"pausedUntil": past}}),
    );
    eventually("control plane after the pause date", SHORT, || {
        route_names(&store, &hcp_namespace(NS, NAME)).len() == 4
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn deleting_a_paused_hc_with_the_finalizer_runs_the_deletion_flow() -> Result<()> {
    let sim = Sim::start("mgmt1").await?;
    let store = sim.store().clone();
    let ho = HyperShiftOperator::start(&sim, opts("mgmt1", false))?;
    let hcp_ns = hcp_namespace(NS, NAME);
    create_hc(&store, NAME, json!({}));
    eventually("routes", SHORT, || route_names(&store, &hcp_ns).len() == 4).await?;
    store.create(
        &registry::NODE_POOL,
        Some(NS),
        json!({"apiVersion": "hypershift.openshift.io/v1beta1", "kind": "NodePool",
            "metadata": {"name": "demo-workers"}, "spec": {"clusterName": NAME, "replicas": 2}}),
        &WriteOptions::default(),
    )?;
    store.create(
        &registry::CAPI_CLUSTER,
        Some(&hcp_ns),
        json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
            "metadata": {"name": "demo-one-infra", "finalizers": ["cluster.cluster.x-k8s.io"]}, "spec": {}}),
        &WriteOptions::default(),
    )?;
    merge(
        &store,
        &registry::HOSTED_CLUSTER,
        Some(NS),
        NAME,
        json!({"spec": {"pausedUntil": "true"}}),
    );
    merge(
        &store,
        &registry::NODE_POOL,
        Some(NS),
        "demo-workers",
        json!({"spec": {"pausedUntil": "true"}}),
    );
    eventually("CAPI paused", SHORT, || {
        get(&store, &registry::CAPI_CLUSTER, Some(&hcp_ns), "demo-one-infra")
            .is_some_and(|c| c["spec"]["paused"] == true)
    })
    .await?;
    store.delete(&registry::HOSTED_CLUSTER, Some(NS), NAME, &DeleteOptions::default())?;
    let ev = ho
        .log()
        .wait_for(SHORT, |e| matches!(e, OperatorEvent::DeletionFlowRan { .. }))
        .await;
    assert_eq!(
        ev,
        Some(OperatorEvent::DeletionFlowRan {
            cluster: "mgmt1".into(),
            hc_namespace: NS.into(),
            hc_name: NAME.into()
        })
    );
    eventually("HC gone", SHORT, || {
        get(&store, &registry::HOSTED_CLUSTER, Some(NS), NAME).is_none()
    })
    .await?;
    assert!(get(&store, &registry::NODE_POOL, Some(NS), "demo-workers").is_none());
    assert!(get(&store, &registry::CAPI_CLUSTER, Some(&hcp_ns), "demo-one-infra").is_none());
    let events = store.list(&registry::EVENT, Some(NS), &ListOptions::default())?.items;
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "DeletionFlowRan" && e["involvedObject"]["name"] == NAME),
        "{events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn deleting_after_the_finalizer_was_removed_runs_no_deletion_flow() -> Result<()> {
    let sim = Sim::start("mgmt1").await?;
    let store = sim.store().clone();
    let ho = HyperShiftOperator::start(&sim, opts("mgmt1", false))?;
    create_hc(&store, NAME, json!({"pausedUntil": "true"}));
    eventually("finalizer", SHORT, || has_finalizer(&store, NAME)).await?;
    // Both writes without yielding to the operator (current-thread runtime): the real HO could
    // re-add its finalizer between them (the teardown race), which the procedure avoids by
    // scaling the operator down.
    merge(
        &store,
        &registry::HOSTED_CLUSTER,
        Some(NS),
        NAME,
        json!({"metadata": {"finalizers": null}}),
    );
    store.delete(&registry::HOSTED_CLUSTER, Some(NS), NAME, &DeleteOptions::default())?;
    assert!(get(&store, &registry::HOSTED_CLUSTER, Some(NS), NAME).is_none());
    settle(&store, "zz-marker-1").await?;
    assert!(!ho.log().any(|e| matches!(e, OperatorEvent::DeletionFlowRan { .. })));
    Ok(())
}

#[tokio::test]
async fn a_scaled_down_operator_does_nothing() -> Result<()> {
    let sim = Sim::start("mgmt1").await?;
    let store = sim.store().clone();
    let ho = HyperShiftOperator::start(&sim, opts("mgmt1", false))?;
    ensure_ns(&store, "hypershift");
    store.create(
        &registry::DEPLOYMENT,
        Some("hypershift"),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "operator"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "operator"}},
                "template": {"metadata": {"labels": {"app": "operator"}}, "spec": {"containers": []}}}}),
        &WriteOptions::default(),
    )?;
    create_hc(&store, NAME, json!({}));
    // A negative check against a stopped operator can only be bounded by time; it cannot fail
    // spuriously (a slow machine only makes it weaker).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!has_finalizer(&store, NAME));
    merge(
        &store,
        &registry::DEPLOYMENT,
        Some("hypershift"),
        "operator",
        json!({"spec": {"replicas": 2}}),
    );
    eventually("finalizer once scaled up", SHORT, || has_finalizer(&store, NAME)).await?;
    assert!(ho.log().any(|e| matches!(e, OperatorEvent::FinalizerAdded { .. })));
    Ok(())
}

async fn etcd_env(policy: &str) -> Result<(Sim, HyperShiftOperator, String, EtcdKvClient)> {
    let sim = Sim::start("mgmt1").await?;
    let ho = HyperShiftOperator::start(&sim, opts("mgmt1", true))?;
    create_hc(sim.store(), NAME, json!({"controllerAvailabilityPolicy": policy}));
    let hcp_ns = hcp_namespace(NS, NAME);
    let Some(client) = ho.wait_for_etcd(&hcp_ns, ETCD).await else {
        bail!("the hosted etcd did not start: {:?}", ho.log().entries());
    };
    Ok((sim, ho, hcp_ns, client))
}

#[tokio::test]
async fn hosted_etcd_single_replica_serves_pods_and_port_forwards() -> Result<()> {
    let (sim, ho, hcp_ns, client) = etcd_env("SingleReplica").await?;
    let store = sim.store().clone();
    client.put("/kubernetes.io/configmaps/default/x", "hello").await?;
    assert_eq!(
        client.get("/kubernetes.io/configmaps/default/x").await?.as_deref(),
        Some("hello")
    );
    assert_eq!(client.get("/missing").await?, None);
    eventually("pod etcd-0 Running", SHORT, || {
        get(&store, &registry::POD, Some(&hcp_ns), "etcd-0").is_some_and(|p| p["status"]["phase"] == "Running")
    })
    .await?;
    assert!(get(&store, &registry::POD, Some(&hcp_ns), "etcd-1").is_none());
    let sts = store.get(&registry::STATEFUL_SET, Some(&hcp_ns), "etcd")?;
    assert_eq!(sts["spec"]["replicas"], 1);
    let url = ho.etcd_client_url(&hcp_ns).unwrap();
    let fwd = sim.port_forwards().lookup(&hcp_ns, "etcd-0", 2379).unwrap();
    // The hosted etcd serves client TLS (see tests/hosted_etcd.rs for the certificates).
    assert_eq!(url, format!("https://{fwd}"));
    // Deleted pods come back.
    store.delete(&registry::POD, Some(&hcp_ns), "etcd-0", &DeleteOptions::default())?;
    eventually("etcd-0 recreated", SHORT, || {
        get(&store, &registry::POD, Some(&hcp_ns), "etcd-0").is_some()
    })
    .await?;
    // Deleting the HCP namespace stops etcd.
    store.delete(&registry::NAMESPACE, None, &hcp_ns, &DeleteOptions::default())?;
    ho.log()
        .wait_for(
            SHORT,
            |e| matches!(e, OperatorEvent::EtcdStopped { hcp_namespace, .. } if *hcp_namespace == hcp_ns),
        )
        .await
        .expect("EtcdStopped");
    assert!(sim.port_forwards().lookup(&hcp_ns, "etcd-0", 2379).is_none());
    assert!(ho.etcd_client_url(&hcp_ns).is_none());
    ho.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn hosted_etcd_highly_available_has_three_members() -> Result<()> {
    let (sim, ho, hcp_ns, _client) = etcd_env("HighlyAvailable").await?;
    let store = sim.store().clone();
    eventually("three etcd pods", SHORT, || {
        (0..3).all(|i| get(&store, &registry::POD, Some(&hcp_ns), &format!("etcd-{i}")).is_some())
    })
    .await?;
    let addrs: Vec<_> = (0..3)
        .map(|i| sim.port_forwards().lookup(&hcp_ns, &format!("etcd-{i}"), 2379).unwrap())
        .collect();
    // One real member per pod (tests/hosted_etcd.rs checks they form one cluster).
    assert!(
        addrs[0] != addrs[1] && addrs[1] != addrs[2] && addrs[0] != addrs[2],
        "each pod forwards to its own member: {addrs:?}"
    );
    assert_eq!(
        store.get(&registry::STATEFUL_SET, Some(&hcp_ns), "etcd")?["spec"]["replicas"],
        3
    );
    ho.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn admission_enforces_restore_snapshot_url_rules() -> Result<()> {
    let strict = Sim::start_with(SimOptions {
        registry: restore::registry_with_admission(RestoreUrlPolicy::default()),
        ..SimOptions::new("strict")
    })
    .await?;
    ensure_ns(strict.store(), NS);
    let with_urls = |name: &str, urls: Value| {
        hc_object(
            name,
            json!({"etcd": {"managementType": "Managed", "managed": {"storage": {
                "type": "PersistentVolume", "restoreSnapshotURL": urls}}}}),
        )
    };
    let kind = strict
        .store()
        .registry()
        .by_kind("hypershift.openshift.io/v1beta1", "HostedCluster")
        .unwrap();
    let create = |name: &str, urls: Value| {
        strict
            .store()
            .create(kind, Some(NS), with_urls(name, urls), &WriteOptions::default())
    };
    let long = format!("https://bucket.s3.amazonaws.com/{}", "a".repeat(1100));
    for (name, urls) in [
        ("two", json!(["https://a/x", "https://b/y"])),
        ("http", json!(["http://127.0.0.1:1/snap"])),
        ("ftp", json!(["ftp://x/y"])),
        ("long", json!([long])),
    ] {
        let err = create(name, urls).expect_err(name);
        assert_eq!(err.code(), 422, "{name}: {err:?}");
    }
    create(
        "ok-https",
        json!(["https://bucket.s3.amazonaws.com/demo-etcd-0-snapshot.db"]),
    )?;
    create("ok-s3", json!(["s3://bucket/demo-etcd-0-snapshot.db"]))?;
    create("ok-none", Value::Null)?;

    // Through the HTTP API too (what ferry and kubectl see).
    let client = kube::Client::try_from(kube::Config::new(strict.url().parse()?))?;
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("hypershift.openshift.io", "v1beta1", "HostedCluster"),
        "hostedclusters",
    );
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(client, NS, &ar);
    let obj: kube::api::DynamicObject =
        serde_json::from_value(with_urls("via-http", json!(["https://a/1", "https://a/2"])))?;
    match api.create(&kube::api::PostParams::default(), &obj).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("restoreSnapshotURL"), "{status:?}");
        }
        other => bail!("expected 422 Invalid, got {other:?}"),
    }

    let loopback = Sim::start_with(SimOptions {
        registry: restore::registry_with_admission(RestoreUrlPolicy {
            allow_http_restore_urls: true,
        }),
        ..SimOptions::new("loopback")
    })
    .await?;
    ensure_ns(loopback.store(), NS);
    let kind = loopback
        .store()
        .registry()
        .by_kind("hypershift.openshift.io/v1beta1", "HostedCluster")
        .unwrap();
    loopback.store().create(
        kind,
        Some(NS),
        with_urls("http", json!(["http://127.0.0.1:1/snap"])),
        &WriteOptions::default(),
    )?;
    let err = loopback
        .store()
        .create(
            kind,
            Some(NS),
            with_urls("remote", json!(["http://example.com/snap"])),
            &WriteOptions::default(),
        )
        .expect_err("only loopback http");
    assert_eq!(err.code(), 422);
    Ok(())
}

#[tokio::test]
async fn restore_url_is_immutable() -> Result<()> {
    let sim = Sim::start("mgmt2").await?;
    let store = sim.store().clone();
    let _ho = HyperShiftOperator::start(&sim, opts("mgmt2", false))?;
    let storage = |url: &str| {
        json!({"etcd": {"managementType": "Managed", "managed": {"storage": {
            "type": "PersistentVolume", "restoreSnapshotURL": [url]}}}})
    };
    create_hc(&store, NAME, storage("https://bucket.s3.amazonaws.com/a"));
    let valid = |want: &str| {
        get(&store, &registry::HOSTED_CLUSTER, Some(NS), NAME)
            .is_some_and(|hc| condition_status(&hc, "RestoreSnapshotURLValid").as_deref() == Some(want))
    };
    eventually("RestoreSnapshotURLValid=True", SHORT, || valid("True")).await?;
    merge(
        &store,
        &registry::HOSTED_CLUSTER,
        Some(NS),
        NAME,
        json!({"spec": storage("https://bucket.s3.amazonaws.com/b")}),
    );
    eventually("RestoreSnapshotURLValid=False", SHORT, || valid("False")).await?;
    // Changing it back is accepted again.
    merge(
        &store,
        &registry::HOSTED_CLUSTER,
        Some(NS),
        NAME,
        json!({"spec": storage("https://bucket.s3.amazonaws.com/a")}),
    );
    eventually("RestoreSnapshotURLValid=True again", SHORT, || valid("True")).await?;
    Ok(())
}

fn loopback_opts(cluster: &str) -> OperatorOptions {
    let mut o = opts(cluster, true);
    o.restore_policy = RestoreUrlPolicy {
        allow_http_restore_urls: true,
    };
    o
}

#[tokio::test]
async fn hc_with_restore_url_starts_etcd_from_the_snapshot() -> Result<()> {
    // A source etcd with data, and its snapshot.
    let dir = tempfile::tempdir()?;
    let src = EtcdServer::start(dir.path().join("src")).await?;
    EtcdKvClient::new(&src.client_url())
        .put("/kubernetes.io/secrets/default/keep", "from-source")
        .await?;
    let snap = dir.path().join("snap.db");
    let out = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(src.client_url())
        .arg("snapshot")
        .arg("save")
        .arg(&snap)
        .output()
        .await?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let base = serve_bytes(200, std::fs::read(&snap)?).await?;

    let sim = Sim::start("mgmt2").await?;
    let store = sim.store().clone();
    let ho = HyperShiftOperator::start(&sim, loopback_opts("mgmt2"))?;
    create_hc(
        &store,
        NAME,
        json!({"etcd": {"managementType": "Managed", "managed": {"storage": {
            "type": "PersistentVolume", "restoreSnapshotURL": [format!("{base}/demo.one-etcd-0-snapshot.db")]}}}}),
    );
    let hcp_ns = hcp_namespace(NS, NAME);
    let started = ho
        .log()
        .wait_for(ETCD, |e| {
            matches!(
                e,
                OperatorEvent::EtcdStarted { .. } | OperatorEvent::EtcdRestoreFailed { .. }
            )
        })
        .await;
    assert!(
        matches!(&started, Some(OperatorEvent::EtcdStarted { restored: true, .. })),
        "{started:?}"
    );
    let client = ho.etcd_client(&hcp_ns).unwrap();
    assert_eq!(
        client.get("/kubernetes.io/secrets/default/keep").await?.as_deref(),
        Some("from-source")
    );
    eventually("EtcdSnapshotRestored=True and Available=True", SHORT, || {
        get(&store, &registry::HOSTED_CLUSTER, Some(NS), NAME).is_some_and(|hc| {
            condition_status(&hc, "EtcdSnapshotRestored").as_deref() == Some("True")
                && condition_status(&hc, "Available").as_deref() == Some("True")
        })
    })
    .await?;
    ho.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_s3_error_body_fails_the_restore() -> Result<()> {
    let xml = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code></Error>".to_vec();
    let base = serve_bytes(403, xml).await?;
    let sim = Sim::start("mgmt2").await?;
    let store = sim.store().clone();
    let ho = HyperShiftOperator::start(&sim, loopback_opts("mgmt2"))?;
    create_hc(
        &store,
        NAME,
        json!({"etcd": {"managementType": "Managed", "managed": {"storage": {
            "type": "PersistentVolume", "restoreSnapshotURL": [format!("{base}/snap.db")]}}}}),
    );
    eventually("EtcdSnapshotRestored=False", SHORT, || {
        get(&store, &registry::HOSTED_CLUSTER, Some(NS), NAME)
            .is_some_and(|hc| condition_status(&hc, "EtcdSnapshotRestored").as_deref() == Some("False"))
    })
    .await?;
    let hc = store.get(&registry::HOSTED_CLUSTER, Some(NS), NAME)?;
    let cond = ferry_sim::hypershift::condition(&hc, "EtcdSnapshotRestored").unwrap();
    assert_eq!(cond["reason"], "InvalidSnapshot", "{cond}");
    assert_eq!(condition_status(&hc, "Available").as_deref(), Some("False"));
    assert!(ho.etcd_client_url(&hcp_namespace(NS, NAME)).is_none());
    Ok(())
}

#[tokio::test]
async fn basic_scenario_seeds_a_realistic_hosted_cluster() -> Result<()> {
    use ferry_sim::environment::{Environment, EnvironmentOptions};
    use ferry_sim::scenario::Scenario;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/basic.toml");
    let scenario = Scenario::load(&path)?;
    assert_eq!(scenario.hosted_cluster.name, "demo.one");
    let env = Environment::start(scenario, EnvironmentOptions::default()).await?;
    let hcp_ns = env.hcp_namespace();
    assert_eq!(hcp_ns, "clusters-demo-one");
    let src = env.source();
    let store = src.sim.store();
    let client = src.operator.etcd_client(&hcp_ns).unwrap();
    assert_eq!(
        client
            .get("/kubernetes.io/configmaps/default/ferry-marker")
            .await?
            .as_deref(),
        Some("from-source")
    );
    assert!(get(store, &registry::HOSTED_CLUSTER, Some(NS), "neighbour").is_some());
    for s in [
        "demo.one-pull-secret",
        "demo.one-ssh-key",
        "demo.one-etcd-encryption-key",
    ] {
        assert!(get(store, &registry::SECRET, Some(NS), s).is_some(), "{s}");
    }
    for s in [
        "root-ca",
        "demo-extra-carry",
        "builder-dockercfg-x7k2p",
        "default-token-x7k2p",
        "token-demo-one-workers-stale",
    ] {
        assert!(get(store, &registry::SECRET, Some(&hcp_ns), s).is_some(), "{s}");
    }
    assert!(get(store, &registry::CONFIG_MAP, Some(NS), "demo.one-ca-bundle").is_some());
    assert!(get(store, &registry::CAPI_CLUSTER, Some(&hcp_ns), "demo-one-x7k2p").is_some());
    assert!(get(store, &registry::AWS_CLUSTER, Some(&hcp_ns), "demo.one").is_some());
    assert!(get(store, &registry::MACHINE_DEPLOYMENT, Some(&hcp_ns), "demo-one-workers").is_some());
    let count = |kind: &'static registry::KindInfo| {
        store
            .list(kind, Some(&hcp_ns), &ListOptions::default())
            .unwrap()
            .items
            .len()
    };
    assert_eq!(count(&registry::MACHINE), 2);
    assert_eq!(count(&registry::AWS_MACHINE), 2);
    assert_eq!(count(&registry::AWS_MACHINE_TEMPLATE), 1);
    let tmpl = &store
        .list(&registry::AWS_MACHINE_TEMPLATE, Some(&hcp_ns), &ListOptions::default())?
        .items[0];
    assert!(
        tmpl["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("demo-one-workers-")
    );
    let api = store.get(&registry::ROUTE, Some(&hcp_ns), "kube-apiserver")?;
    assert_eq!(api["spec"]["host"], "api-demo.one.guest.example.com");
    // The destination is empty but has its operator.
    let dst = env.destination().unwrap();
    assert!(get(dst.sim.store(), &registry::HOSTED_CLUSTER, Some(NS), "demo.one").is_none());
    let dir = tempfile::tempdir()?;
    let written = env.write_kubeconfigs(dir.path())?;
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(written[0].2.exists());
    assert_eq!(written[2].0, "demo-one-hosted");
    let hosted = env.hosted.as_ref().unwrap().sim().store().clone();
    eventually("hosted nodes registered", SHORT, || {
        hosted
            .list(&registry::NODE, None, &ListOptions::default())
            .unwrap()
            .items
            .len()
            == 2
    })
    .await?;
    env.shutdown().await;
    Ok(())
}

fn seed_running_control_plane(store: &Store, paused: bool) {
    let spec = if paused {
        json!({"pausedUntil": "true"})
    } else {
        json!({})
    };
    create_hc(store, NAME, spec);
    store
        .create(
            &registry::NODE_POOL,
            Some(NS),
            json!({"apiVersion": "hypershift.openshift.io/v1beta1", "kind": "NodePool",
                "metadata": {"name": "demo-workers"}, "spec": {"clusterName": NAME, "replicas": 2}}),
            &WriteOptions::default(),
        )
        .unwrap();
    let hcp_ns = hcp_namespace(NS, NAME);
    ensure_ns(store, &hcp_ns);
    store
        .create_with_status(
            &registry::POD,
            Some(&hcp_ns),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "etcd-0"},
                "spec": {"containers": [{"name": "etcd", "image": "etcd"}]}, "status": {"phase": "Running"}}),
        )
        .unwrap();
}

#[tokio::test]
async fn hosted_api_nodes_follow_the_control_plane() -> Result<()> {
    use ferry_sim::hypershift::hosted::OVN_NAMESPACE;
    use ferry_sim::hypershift::{HostedApiOptions, HostedClusterApi};
    let m1 = Sim::start("mgmt1").await?;
    let m2 = Sim::start("mgmt2").await?;
    seed_running_control_plane(m1.store(), false);
    let mut opts = HostedApiOptions::new(NS, NAME);
    opts.node_ready_delay = Duration::from_millis(200);
    let api = HostedClusterApi::start(opts, vec![m1.store().clone(), m2.store().clone()]).await?;
    let hosted = api.sim().store().clone();
    let ready_nodes = || {
        hosted
            .list(&registry::NODE, None, &ListOptions::default())
            .unwrap()
            .items
            .iter()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .count()
    };
    let cv_available = |want: &str| {
        get(&hosted, &registry::CLUSTER_VERSION, None, "version")
            .is_some_and(|cv| condition_status(&cv, "Available").as_deref() == Some(want))
    };
    eventually("two Ready nodes", SHORT, || ready_nodes() == 2).await?;
    assert!(get(&hosted, &registry::NODE, None, "demo-workers-0").is_some());
    eventually("ClusterVersion Available", SHORT, || cv_available("True")).await?;
    let ovn = || {
        hosted
            .list(&registry::POD, Some(OVN_NAMESPACE), &ListOptions::default())
            .unwrap()
            .items
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    eventually("two OVN pods", SHORT, || ovn().len() == 2).await?;
    let before = ovn();
    hosted.delete(
        &registry::POD,
        Some(OVN_NAMESPACE),
        &before[0],
        &DeleteOptions::default(),
    )?;
    eventually("OVN pod recreated under a new name", SHORT, || {
        let now = ovn();
        now.len() == 2 && !now.contains(&before[0])
    })
    .await?;

    // The source pauses: nodes go NotReady.
    merge(
        m1.store(),
        &registry::HOSTED_CLUSTER,
        Some(NS),
        NAME,
        json!({"spec": {"pausedUntil": "true"}}),
    );
    eventually("nodes NotReady", SHORT, || ready_nodes() == 0).await?;
    eventually("ClusterVersion not Available", SHORT, || cv_available("False")).await?;
    // The destination runs the control plane: nodes come back.
    seed_running_control_plane(m2.store(), false);
    eventually("nodes Ready on the destination", SHORT, || ready_nodes() == 2).await?;
    api.shutdown().await;
    Ok(())
}
