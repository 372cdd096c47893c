//! The HyperShift world against the upstream CRDs: each test pins one upstream behaviour the
//! DR path meets (the upstream file and function are named on each test).
//! Asynchronous effects are checked with bounded polling, never with timing assertions.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use ferry_sim::hypershift::environment::{Environment, EnvironmentOptions};
use ferry_sim::hypershift::scenario::Scenario;
use ferry_sim::hypershift::{
    CAPI_PAUSED_ANNOTATION, COMPONENT_FINALIZER, CPO_ENDPOINT_FINALIZER, EXTERNAL_DNS_HOSTNAME_ANNOTATION, FINALIZER,
    HO_ENDPOINT_FINALIZER, OperatorEvent, RESTORED_FROM_BACKUP_ANNOTATION, condition, condition_status, hcp_namespace,
};
use ferry_sim::kube::crd::CrdSource;
use ferry_sim::kube::registry::{self, KindInfo};
use ferry_sim::{DeleteOptions, ListOptions, Patch, Reason, Store, WriteOptions};
use support::SnapshotStore;

const WAIT: Duration = Duration::from_secs(30);

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn scenario(extra: &str) -> Scenario {
    Scenario::from_toml(&format!(
        r#"
management_clusters = ["source", "destination"]
{extra}
[hosted_cluster]
namespace = "clusters"
name = "hc1"
[[node_pools]]
name = "workers"
replicas = 2
"#
    ))
    .unwrap()
}

async fn start(sc: Scenario) -> Result<Environment> {
    start_with(sc, None).await
}

async fn start_with(sc: Scenario, restore_ca: Option<String>) -> Result<Environment> {
    // `RUST_LOG=ferry_sim=debug` shows every failed reconcile.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let opts = EnvironmentOptions {
        crds: CrdSource::Dir(support::upstream_crds()),
        hosted_api: false,
        restore_trusted_ca: restore_ca,
        ..EnvironmentOptions::default()
    };
    Ok(Environment::start(sc, opts).await?)
}

fn get(store: &Store, kind: &KindInfo, ns: Option<&str>, name: &str) -> Option<Value> {
    store.get(kind, ns, name).ok()
}

fn merge(store: &Store, kind: &KindInfo, ns: &str, name: &str, patch: Value) -> Result<()> {
    store.patch(kind, Some(ns), name, &Patch::Merge(patch), &WriteOptions::default())?;
    Ok(())
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn names(store: &Store, kind: &KindInfo, ns: &str) -> Vec<String> {
    store
        .list(kind, Some(ns), &ListOptions::default())
        .map(|l| {
            l.items
                .iter()
                .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The source's controllers ran two full passes (nothing left to happen from the state before).
async fn settle(env: &Environment, cluster: usize) {
    assert!(
        env.clusters[cluster].controllers.settle(WAIT).await,
        "the controllers stopped passing"
    );
}

const NS: &str = "clusters";
const HC: &str = "hc1";

/// `hostedcluster_controller.go` (`reconcile`, "Copy conditions from hostedcontrolplane") and
/// `hostedcontrolplane_controller.go` (`etcdRestoredCondition`): `EtcdSnapshotRestored` stays on
/// the HostedControlPlane; the HostedCluster gets the copied list only.
#[tokio::test]
async fn basic_scenario_is_available_with_conditions_where_upstream_puts_them() -> Result<()> {
    let env = start(scenario("")).await?;
    let store = env.source().sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    eventually("HostedCluster Available", || {
        get(store, &registry::HOSTED_CLUSTER, Some(NS), HC)
            .is_some_and(|hc| condition_status(&hc, "Available").as_deref() == Some("True"))
    })
    .await?;
    let hc = get(store, &registry::HOSTED_CLUSTER, Some(NS), HC).unwrap();
    let hcp = get(store, &registry::HOSTED_CONTROL_PLANE, Some(&cp_ns), HC).unwrap();
    assert_eq!(condition_status(&hc, "EtcdSnapshotRestored"), None, "{hc:#}");
    assert_eq!(condition_status(&hcp, "EtcdAvailable").as_deref(), Some("True"));
    assert_eq!(
        condition_status(&hc, "EtcdAvailable").as_deref(),
        Some("True"),
        "copied from the HCP"
    );
    env.shutdown().await;
    Ok(())
}

/// `hostedcluster_controller.go` (`reconcile`: `reconcileCAPIFinalizers` runs before the
/// `pausedUntil` check): the component finalizer is put back on the CAPI Deployments even while
/// the HostedCluster is paused.
#[tokio::test]
async fn component_finalizer_is_added_before_the_pause_check() -> Result<()> {
    let env = start(scenario("")).await?;
    let store = env.source().sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    for d in ["cluster-api", "capi-provider"] {
        let dep = get(store, &registry::DEPLOYMENT, Some(&cp_ns), d).unwrap();
        assert!(
            finalizers(&dep).contains(&COMPONENT_FINALIZER.to_string()),
            "{d}: {dep:#}"
        );
    }
    merge(
        store,
        &registry::HOSTED_CLUSTER,
        NS,
        HC,
        json!({"spec": {"pausedUntil": "true"}}),
    )?;
    eventually("the HostedControlPlane paused", || {
        get(store, &registry::HOSTED_CONTROL_PLANE, Some(&cp_ns), HC)
            .is_some_and(|h| h["spec"]["pausedUntil"] == "true")
    })
    .await?;
    merge(
        store,
        &registry::DEPLOYMENT,
        &cp_ns,
        "cluster-api",
        json!({"metadata": {"finalizers": null}}),
    )?;
    eventually("the component finalizer back on cluster-api", || {
        get(store, &registry::DEPLOYMENT, Some(&cp_ns), "cluster-api")
            .is_some_and(|d| finalizers(&d).contains(&COMPONENT_FINALIZER.to_string()))
    })
    .await?;
    env.shutdown().await;
    Ok(())
}

/// `pausereconcile.go` and the CPO's `Reconcile` (`IsReconciliationPaused`): a paused control
/// plane recreates nothing (routes deleted during a backup stay deleted) until unpaused; the
/// HO pauses the CAPI Cluster too (`pauseCAPICluster`).
#[tokio::test]
async fn a_paused_control_plane_recreates_nothing_until_unpaused() -> Result<()> {
    let env = start(scenario("")).await?;
    let store = env.source().sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    assert!(names(store, &registry::ROUTE, &cp_ns).contains(&"kube-apiserver".to_string()));
    merge(
        store,
        &registry::HOSTED_CLUSTER,
        NS,
        HC,
        json!({"spec": {"pausedUntil": "true"}}),
    )?;
    eventually("the HostedControlPlane and CAPI Cluster paused", || {
        get(store, &registry::HOSTED_CONTROL_PLANE, Some(&cp_ns), HC)
            .is_some_and(|h| h["spec"]["pausedUntil"] == "true")
            && store
                .list(&registry::CAPI_CLUSTER, Some(&cp_ns), &ListOptions::default())
                .is_ok_and(|l| l.items.iter().all(|c| c["spec"]["paused"] == true) && !l.items.is_empty())
    })
    .await?;
    for r in names(store, &registry::ROUTE, &cp_ns) {
        store.delete(&registry::ROUTE, Some(&cp_ns), &r, &DeleteOptions::default())?;
    }
    settle(&env, 0).await;
    assert_eq!(names(store, &registry::ROUTE, &cp_ns), Vec::<String>::new());
    let hc = get(store, &registry::HOSTED_CLUSTER, Some(NS), HC).unwrap();
    assert_eq!(condition_status(&hc, "ReconciliationActive").as_deref(), Some("False"));
    merge(
        store,
        &registry::HOSTED_CLUSTER,
        NS,
        HC,
        json!({"spec": {"pausedUntil": null}}),
    )?;
    eventually("the routes back", || {
        names(store, &registry::ROUTE, &cp_ns).contains(&"kube-apiserver".to_string())
    })
    .await?;
    env.shutdown().await;
    Ok(())
}

/// The HostedCluster CRD's CEL rules on `restoreSnapshotURL` (`hostedcluster_types.go`): it
/// cannot be added after creation, and the API server says so in its own words.
#[tokio::test]
async fn restore_url_cannot_be_added_after_creation() -> Result<()> {
    let env = start(scenario("")).await?;
    let store = env.source().sim.store();
    let err = store
        .patch(
            &registry::HOSTED_CLUSTER,
            Some(NS),
            HC,
            &Patch::Merge(json!({"spec": {"etcd": {"managed": {"storage": {"restoreSnapshotURL": ["https://s3.example.com/snap.db"]}}}}})),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.reason, Reason::Invalid, "{err}");
    assert!(
        err.message.contains("spec.etcd.managed.storage: Invalid value: \"object\": restoreSnapshotURL cannot be added or removed after creation"),
        "{}",
        err.message
    );
    env.shutdown().await;
    Ok(())
}

/// `reconcileHostedControlPlane` updates an existing HostedControlPlane with the
/// HostedCluster's `spec.etcd`; the HCP CRD refuses a `restoreSnapshotURL` added after
/// creation, so the operator stops with a critical error (`ReconciliationSucceeded=False`) and
/// never deploys the control plane: what a restore that creates the HCP first meets.
#[tokio::test]
async fn a_hostedcontrolplane_created_first_blocks_a_restore() -> Result<()> {
    let snapshots = SnapshotStore::start().await?;
    let env = start_with(scenario(""), Some(snapshots.ca_pem())).await?;
    let (src, dst) = (env.clusters[0].sim.store(), env.clusters[1].sim.store());
    let cp_ns = hcp_namespace(NS, HC);
    dst.create(
        &registry::NAMESPACE,
        None,
        json!({"metadata": {"name": cp_ns}}),
        &WriteOptions::default(),
    )?;
    let hcp =
        ferry_sim::hypershift::environment::portable(&src.get(&registry::HOSTED_CONTROL_PLANE, Some(&cp_ns), HC)?);
    dst.create(
        &registry::HOSTED_CONTROL_PLANE,
        Some(&cp_ns),
        hcp,
        &WriteOptions::default(),
    )?;
    let url = snapshots.presigned("hc1.db", b"not used", &snapshots.secret()).await?;
    env.recreate_hosted_cluster(1, &url, false)?;
    eventually("ReconciliationSucceeded=False", || {
        get(dst, &registry::HOSTED_CLUSTER, Some(NS), HC)
            .is_some_and(|hc| condition_status(&hc, "ReconciliationSucceeded").as_deref() == Some("False"))
    })
    .await?;
    let hc = get(dst, &registry::HOSTED_CLUSTER, Some(NS), HC).unwrap();
    let msg = condition(&hc, "ReconciliationSucceeded").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("critical error: failed to reconcile hostedcontrolplane"),
        "{msg}"
    );
    assert!(
        msg.contains("restoreSnapshotURL cannot be added or removed after creation"),
        "{msg}"
    );
    settle(&env, 1).await;
    assert!(get(dst, &registry::DEPLOYMENT, Some(&cp_ns), "control-plane-operator").is_none());
    env.shutdown().await;
    Ok(())
}

/// `etcd-init.sh` restores the snapshot of `restoreSnapshotURL`; `etcdRestoredCondition` sets
/// `EtcdSnapshotRestored` on the HostedControlPlane only; the restored-from-backup annotation is
/// mirrored to the HCP (`mirroredAnnotations`), the hosted cluster config operator reports
/// `HostedClusterRestoredFromBackup` (`reconcileClusterRecovery`), the HO copies it and then
/// removes the annotation (`reconcileRestoredFromBackup`).
#[tokio::test]
async fn a_restore_from_a_presigned_url_is_reported_where_upstream_reports_it() -> Result<()> {
    let snapshots = SnapshotStore::start().await?;
    let env = start_with(scenario(""), Some(snapshots.ca_pem())).await?;
    let dst = env.clusters[1].sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    let snap = support::etcd_snapshot(&[("/kubernetes.io/configmaps/default/marker", "from-backup")]).await?;
    let url = snapshots.presigned("hc1.db", &snap, &snapshots.secret()).await?;
    env.recreate_hosted_cluster(1, &url, true)?;
    let hcp = {
        let mut found = None;
        eventually("EtcdSnapshotRestored on the HostedControlPlane", || {
            found = get(dst, &registry::HOSTED_CONTROL_PLANE, Some(&cp_ns), HC)
                .filter(|h| condition_status(h, "EtcdSnapshotRestored").as_deref() == Some("True"));
            found.is_some()
        })
        .await?;
        found.unwrap()
    };
    assert_eq!(
        hcp["spec"]["etcd"]["managed"]["storage"]["restoreSnapshotURL"],
        json!([url])
    );
    let client = env.clusters[1].controllers.etcd_client(&cp_ns).unwrap();
    assert_eq!(
        client.get("/kubernetes.io/configmaps/default/marker").await?.as_deref(),
        Some("from-backup")
    );
    eventually(
        "HostedClusterRestoredFromBackup copied and the annotation removed",
        || {
            let recovered = get(dst, &registry::HOSTED_CONTROL_PLANE, Some(&cp_ns), HC)
                .is_some_and(|h| condition_status(&h, "HostedClusterRestoredFromBackup").as_deref() == Some("True"));
            recovered
                && get(dst, &registry::HOSTED_CLUSTER, Some(NS), HC).is_some_and(|hc| {
                    condition_status(&hc, "HostedClusterRestoredFromBackup").as_deref() == Some("True")
                        && hc["metadata"]["annotations"][RESTORED_FROM_BACKUP_ANNOTATION].is_null()
                })
        },
    )
    .await?;
    let hc = get(dst, &registry::HOSTED_CLUSTER, Some(NS), HC).unwrap();
    assert_eq!(
        condition_status(&hc, "EtcdSnapshotRestored"),
        None,
        "never on the HostedCluster"
    );
    env.shutdown().await;
    Ok(())
}

/// `etcd-init.sh`: a body that is an S3 XML error (here a URL signed with the wrong secret)
/// fails the init container; `etcdRestoredCondition` reports it on the HostedControlPlane.
#[tokio::test]
async fn an_s3_error_body_fails_the_restore() -> Result<()> {
    let snapshots = SnapshotStore::start().await?;
    let env = start_with(scenario(""), Some(snapshots.ca_pem())).await?;
    let dst = env.clusters[1].sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    let url = snapshots.presigned("hc1.db", b"snapshot", "not-the-secret").await?;
    env.recreate_hosted_cluster(1, &url, false)?;
    let seen = env.clusters[1]
        .controllers
        .log()
        .wait_for(WAIT, |e| {
            matches!(
                e,
                OperatorEvent::EtcdRestoreFailed { .. } | OperatorEvent::EtcdStarted { .. }
            )
        })
        .await;
    assert!(
        matches!(seen, Some(OperatorEvent::EtcdRestoreFailed { .. })),
        "{seen:?}"
    );
    assert!(env.clusters[1].controllers.etcd_client(&cp_ns).is_none());
    let hcp = get(dst, &registry::HOSTED_CONTROL_PLANE, Some(&cp_ns), HC).unwrap();
    assert_ne!(condition_status(&hcp, "Available").as_deref(), Some("True"));
    env.shutdown().await;
    Ok(())
}

/// `hostedcluster_controller.go` (`delete`): NodePools, the CAPI Cluster and its machines (and
/// their instances), the component finalizers, the HostedControlPlane and the control-plane
/// namespace go, then the HostedCluster's finalizer; the sibling HostedCluster stays.
#[tokio::test]
async fn deleting_a_hosted_cluster_runs_the_deletion_flow() -> Result<()> {
    let env = start(scenario(r#"other_hosted_clusters = ["hc2"]"#)).await?;
    let store = env.source().sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    assert_eq!(env.ec2.running(&format!("{NS}/{HC}")).len(), 2);
    store.delete(&registry::HOSTED_CLUSTER, Some(NS), HC, &DeleteOptions::default())?;
    if let Err(e) = eventually("the HostedCluster gone", || {
        get(store, &registry::HOSTED_CLUSTER, Some(NS), HC).is_none()
    })
    .await
    {
        bail!("{e}; left: {}", support::dump(store, &[NS, &cp_ns]));
    }
    assert!(get(store, &registry::NAMESPACE, None, &cp_ns).is_none());
    assert_eq!(names(store, &registry::NODE_POOL, NS), Vec::<String>::new());
    assert!(
        env.ec2.running(&format!("{NS}/{HC}")).is_empty(),
        "instances terminated"
    );
    assert!(
        env.source()
            .controllers
            .log()
            .any(|e| matches!(e, OperatorEvent::DeletionFlowRan { hc_name, .. } if hc_name == HC))
    );
    let sibling = get(store, &registry::HOSTED_CLUSTER, Some(NS), "hc2").unwrap();
    assert!(finalizers(&sibling).contains(&FINALIZER.to_string()));
    env.shutdown().await;
    Ok(())
}

/// The HO only acts while its Deployment `hypershift/operator` has running pods: scaled to
/// zero, it puts nothing back; scaled up, it does.
#[tokio::test]
async fn a_scaled_down_operator_does_nothing() -> Result<()> {
    let env = start(scenario("")).await?;
    let store = env.source().sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    merge(
        store,
        &registry::DEPLOYMENT,
        "hypershift",
        "operator",
        json!({"spec": {"replicas": 0}}),
    )?;
    eventually("the operator's pods gone", || {
        names(store, &registry::POD, "hypershift")
            .iter()
            .all(|p| !p.starts_with("operator-"))
    })
    .await?;
    merge(
        store,
        &registry::DEPLOYMENT,
        &cp_ns,
        "cluster-api",
        json!({"metadata": {"finalizers": null}}),
    )?;
    settle(&env, 0).await;
    let dep = get(store, &registry::DEPLOYMENT, Some(&cp_ns), "cluster-api").unwrap();
    assert!(finalizers(&dep).is_empty(), "{dep:#}");
    merge(
        store,
        &registry::DEPLOYMENT,
        "hypershift",
        "operator",
        json!({"spec": {"replicas": 2}}),
    )?;
    eventually("the component finalizer back", || {
        get(store, &registry::DEPLOYMENT, Some(&cp_ns), "cluster-api").is_some_and(|d| !finalizers(&d).is_empty())
    })
    .await?;
    env.shutdown().await;
    Ok(())
}

/// `nodepool_controller.go` (`pauseMachineDeployment`/`pauseMachineSet`): a paused NodePool
/// annotates its MachineDeployment and MachineSets `cluster.x-k8s.io/paused`; unpaused, the
/// annotation goes.
#[tokio::test]
async fn a_paused_nodepool_pauses_its_machines() -> Result<()> {
    let env = start(scenario("")).await?;
    let store = env.source().sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    let annotated = |paused: bool| {
        let mds = store
            .list(&registry::MACHINE_DEPLOYMENT, Some(&cp_ns), &ListOptions::default())
            .unwrap()
            .items;
        let mss = store
            .list(&registry::MACHINE_SET, Some(&cp_ns), &ListOptions::default())
            .unwrap()
            .items;
        !mds.is_empty()
            && mds
                .iter()
                .chain(&mss)
                .all(|o| o["metadata"]["annotations"][CAPI_PAUSED_ANNOTATION].is_string() == paused)
    };
    merge(
        store,
        &registry::NODE_POOL,
        NS,
        "workers",
        json!({"spec": {"pausedUntil": "true"}}),
    )?;
    eventually("paused annotations", || annotated(true)).await?;
    merge(
        store,
        &registry::NODE_POOL,
        NS,
        "workers",
        json!({"spec": {"pausedUntil": null}}),
    )?;
    eventually("annotations removed", || annotated(false)).await?;
    env.shutdown().await;
    Ok(())
}

/// `cmd/install`: the CAPI CRDs get the HO's conversion webhook; objects are stored as
/// `v1beta2` and served in both versions, or in `v1beta2` only once CAPI stops serving
/// `v1beta1`. Discovery tells a client which one to use.
#[tokio::test]
async fn capi_objects_are_served_in_the_versions_the_crds_serve() -> Result<()> {
    for (v1beta1_served, scenario_line) in [(true, ""), (false, "capi_v1beta1_served = false")] {
        let env = start(scenario(scenario_line)).await?;
        let sim = &env.source().sim;
        let cp_ns = hcp_namespace(NS, HC);
        let client = kube::Client::try_from(kube::Config::new(sim.url().parse()?))?;
        let discovery = kube::Discovery::new(client.clone()).run().await?;
        let group = discovery.get("cluster.x-k8s.io").unwrap();
        assert_eq!(group.preferred_version(), Some("v1beta2"));
        let versions: Vec<&str> = group.versions().collect();
        assert_eq!(versions.contains(&"v1beta1"), v1beta1_served, "{versions:?}");
        let v2 = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta2", "MachineDeployment"),
            "machinedeployments",
        );
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(client.clone(), &cp_ns, &v2);
        let mds = api.list(&Default::default()).await?;
        assert_eq!(mds.items.len(), 1);
        assert_eq!(
            mds.items[0].data["spec"]["template"]["spec"]["infrastructureRef"]["apiGroup"],
            "infrastructure.cluster.x-k8s.io"
        );
        let v1 = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta1", "MachineDeployment"),
            "machinedeployments",
        );
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(client, &cp_ns, &v1);
        match api.list(&Default::default()).await {
            Ok(l) => {
                assert!(v1beta1_served);
                let r = &l.items[0].data["spec"]["template"]["spec"]["infrastructureRef"];
                assert_eq!(r["apiVersion"], "infrastructure.cluster.x-k8s.io/v1beta2", "{r}");
            }
            Err(kube::Error::Api(e)) => {
                assert!(!v1beta1_served, "{e:?}");
                assert_eq!(e.code, 404);
            }
            Err(e) => return Err(e.into()),
        }
        env.shutdown().await;
    }
    Ok(())
}

/// `kas/service.go` (`ReconcileService`): an APIServer published by `LoadBalancer` gets a
/// LoadBalancer Service carrying the external-dns hostname annotation, and no Route.
#[tokio::test]
async fn load_balancer_publishing_annotates_the_service() -> Result<()> {
    let mut sc = scenario("");
    sc.hosted_cluster.api_publishing = ferry_sim::hypershift::scenario::Publishing::LoadBalancer;
    let env = start(sc).await?;
    let store = env.source().sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    let svc = get(store, &registry::SERVICE, Some(&cp_ns), "kube-apiserver").unwrap();
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(
        svc["metadata"]["annotations"][EXTERNAL_DNS_HOSTNAME_ANNOTATION],
        "api-hc1.guest.example.com"
    );
    assert!(
        svc["status"]["loadBalancer"]["ingress"][0]["hostname"].is_string(),
        "{svc:#}"
    );
    assert!(!names(store, &registry::ROUTE, &cp_ns).contains(&"kube-apiserver".to_string()));
    env.shutdown().await;
    Ok(())
}

/// `controllers/platform/aws/controller.go` and the CPO's `awsprivatelink_controller.go`: a
/// Private cluster's AWSEndpointServices carry both operators' finalizers, and external-dns
/// gets the private hostnames from ExternalName Services.
#[tokio::test]
async fn private_endpoint_access_has_endpoint_services_with_both_finalizers() -> Result<()> {
    let mut sc = scenario("");
    sc.hosted_cluster.endpoint_access = ferry_sim::hypershift::scenario::EndpointAccess::Private;
    let env = start(sc).await?;
    let store = env.source().sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    eventually("endpoint services with both finalizers and an endpoint", || {
        let l = store
            .list(&registry::AWS_ENDPOINT_SERVICE, Some(&cp_ns), &ListOptions::default())
            .unwrap()
            .items;
        !l.is_empty()
            && l.iter().all(|e| {
                let f = finalizers(e);
                f.contains(&HO_ENDPOINT_FINALIZER.to_string())
                    && f.contains(&CPO_ENDPOINT_FINALIZER.to_string())
                    && e["status"]["endpointID"].is_string()
            })
    })
    .await?;
    eventually("the private API hostname on an ExternalName Service", || {
        get(
            store,
            &registry::SERVICE,
            Some(&cp_ns),
            "kube-apiserver-private-external",
        )
        .is_some_and(|s| s["metadata"]["annotations"][EXTERNAL_DNS_HOSTNAME_ANNOTATION] == "api-hc1.guest.example.com")
    })
    .await?;
    env.shutdown().await;
    Ok(())
}

/// `api/util/configrefs` and the HO's secret syncs: Secrets and ConfigMaps the configuration
/// references under names of their own are copied into the control-plane namespace.
#[tokio::test]
async fn configuration_references_reach_the_control_plane_namespace() -> Result<()> {
    let mut sc = scenario("");
    sc.hosted_cluster.identity_providers = true;
    let env = start(sc).await?;
    let store = env.source().sim.store();
    let cp_ns = hcp_namespace(NS, HC);
    let hc = get(store, &registry::HOSTED_CLUSTER, Some(NS), HC).unwrap();
    let (secrets, cms) = ferry_sim::hypershift::hostedcluster::configuration_refs(&hc);
    assert!(
        secrets.contains(&"htpass-secret".to_string()) && cms.contains(&"sso-ca".to_string()),
        "{secrets:?} {cms:?}"
    );
    eventually("every referenced object copied", || {
        secrets
            .iter()
            .all(|s| get(store, &registry::SECRET, Some(&cp_ns), s).is_some())
            && cms
                .iter()
                .all(|c| get(store, &registry::CONFIG_MAP, Some(&cp_ns), c).is_some())
    })
    .await?;
    env.shutdown().await;
    Ok(())
}

/// `sim/scenarios/basic.toml` on the upstream CRDs: everything a DR meets is seeded and valid,
/// and the hosted cluster's own API has Nodes (one per instance), a ClusterVersion and OVN
/// pods; nodes go NotReady when the kube-apiserver pods they talk to are gone.
#[tokio::test]
async fn basic_scenario_seeds_a_realistic_hosted_cluster() -> Result<()> {
    use ferry_sim::hypershift::hosted::OVN_NAMESPACE;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/basic.toml");
    let scenario = Scenario::load(&path)?;
    let opts = EnvironmentOptions {
        crds: CrdSource::Dir(support::upstream_crds()),
        node_ready_delay: Duration::from_millis(200),
        ..EnvironmentOptions::default()
    };
    let env = Environment::start(scenario, opts).await?;
    let hcp_ns = env.hcp_namespace();
    assert_eq!(hcp_ns, "clusters-demo-one");
    let store = env.source().sim.store();
    let client = env.source().controllers.etcd_client(&hcp_ns).unwrap();
    assert_eq!(
        client
            .get("/kubernetes.io/configmaps/default/ferry-marker")
            .await?
            .as_deref(),
        Some("from-source")
    );
    assert!(get(store, &registry::HOSTED_CLUSTER, Some(NS), "neighbour").is_some());
    for s in [
        "demo-one-pull-secret",
        "demo-one-ssh-key",
        "demo-one-etcd-encryption-key",
    ] {
        assert!(get(store, &registry::SECRET, Some(NS), s).is_some(), "{s}");
    }
    for s in [
        "root-ca",
        "demo-extra-carry",
        "builder-dockercfg-x7k2p",
        "token-demo-one-workers-stale",
    ] {
        assert!(get(store, &registry::SECRET, Some(&hcp_ns), s).is_some(), "{s}");
    }
    let count = |kind: &KindInfo| {
        store
            .list(kind, Some(&hcp_ns), &ListOptions::default())
            .unwrap()
            .items
            .len()
    };
    assert_eq!(count(&registry::MACHINE), 2);
    assert_eq!(count(&registry::AWS_MACHINE), 2);
    assert_eq!(count(&registry::AWS_MACHINE_TEMPLATE), 1);
    assert_eq!(count(&registry::CAPI_CLUSTER), 1);
    let api = store.get(&registry::ROUTE, Some(&hcp_ns), "kube-apiserver")?;
    assert_eq!(api["spec"]["host"], "api-demo-one.guest.example.com");
    let dst = env.destination().unwrap();
    assert!(get(dst.sim.store(), &registry::HOSTED_CLUSTER, Some(NS), "demo-one").is_none());
    let dir = tempfile::tempdir()?;
    let written = env.write_kubeconfigs(dir.path())?;
    assert_eq!(written.len(), 3, "{written:?}");
    assert_eq!(written[2].0, "demo-one-hosted");

    let hosted = env.hosted().unwrap().sim().store().clone();
    let ready_nodes = || {
        hosted
            .list(&registry::NODE, None, &ListOptions::default())
            .unwrap()
            .items
            .iter()
            .filter(|n| condition_status(n, "Ready").as_deref() == Some("True"))
            .count()
    };
    eventually("two Ready nodes", || ready_nodes() == 2).await?;
    eventually("ClusterVersion Available", || {
        get(&hosted, &registry::CLUSTER_VERSION, None, "version")
            .is_some_and(|cv| condition_status(&cv, "Available").as_deref() == Some("True"))
    })
    .await?;
    let ovn = || names(&hosted, &registry::POD, OVN_NAMESPACE);
    eventually("two OVN pods", || ovn().len() == 2).await?;
    let before = ovn();
    hosted.delete(
        &registry::POD,
        Some(OVN_NAMESPACE),
        &before[0],
        &DeleteOptions::default(),
    )?;
    eventually("OVN pod recreated under a new name", || {
        let now = ovn();
        now.len() == 2 && !now.contains(&before[0])
    })
    .await?;
    // A backup's quiesce: paused, then the API servers scaled down.
    merge(
        store,
        &registry::HOSTED_CLUSTER,
        NS,
        "demo-one",
        json!({"spec": {"pausedUntil": "true"}}),
    )?;
    eventually("the HostedControlPlane paused", || {
        get(store, &registry::HOSTED_CONTROL_PLANE, Some(&hcp_ns), "demo-one")
            .is_some_and(|h| h["spec"]["pausedUntil"] == "true")
    })
    .await?;
    assert_eq!(ready_nodes(), 2, "a paused control plane still serves its nodes");
    merge(
        store,
        &registry::DEPLOYMENT,
        &hcp_ns,
        "kube-apiserver",
        json!({"spec": {"replicas": 0}}),
    )?;
    // No kube-apiserver, no API: the hosted cluster's clients get 503, and nothing marks the
    // Nodes (the node lifecycle controller runs in the kube-controller-manager, which needs
    // the API): etcd keeps their last status until a control plane serves again.
    let faults = env.hosted().unwrap().sim().faults().clone();
    eventually("the hosted API not served", || faults.down().is_some()).await?;
    assert_eq!(ready_nodes(), 2, "a stopped control plane marks nothing");
    env.shutdown().await;
    Ok(())
}

/// Every scenario file of `sim/scenarios` parses and starts on the upstream CRDs: what the
/// drill and the tests rehearse is what a real HyperShift accepts.
#[tokio::test]
async fn every_scenario_file_starts_on_the_upstream_crds() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let sc = Scenario::load(&f)?;
        let env = start(sc)
            .await
            .map_err(|e| anyhow::anyhow!("{} does not start: {e:#}", f.display()))?;
        env.shutdown().await;
    }
    Ok(())
}
