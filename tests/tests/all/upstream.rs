//! The stock guest against HyperShift as upstream behaves (the simulator loaded with
//! HyperShift's CRDs): one test per place where a guest written against the old simulator
//! would fail a real migration. Each names the upstream behaviour it meets.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use ferry_dr::phases::{Phase, PhaseArgs};
use ferry_drill::{Drill, DrillReport};
use ferry_sim::hypershift::scenario::{EndpointAccess, Publishing, Scenario};
use ferry_sim::hypershift::{OperatorEvent, condition_status};
use ferry_sim::kube::registry;
use ferry_sim::{Patch, WriteOptions};
use ferry_tests::dr::{guest_failure, run};
use serde_json::json;

async fn drill(scenario: Scenario) -> Drill {
    ferry_tests::dr::drill(scenario, 20.0).await
}

fn scenario(file: &str) -> Scenario {
    Scenario::load(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sim/scenarios")
            .join(file),
    )
    .unwrap()
}

fn assert_verified(report: &DrillReport) {
    assert!(report.passed(), "drill verification failed:\n{}", report.to_text());
}

/// `hostedcontrolplane_controller.go` (`etcdRestoredCondition`) sets `EtcdSnapshotRestored`
/// on the HostedControlPlane only, and `reconcileHostedControlPlane` creates the HCP from the
/// HostedCluster with the same `spec.etcd`: restore waits on the HCP, leaves the HCP to the
/// operator, and marks the HostedCluster restored-from-backup, which the hosted cluster config
/// operator acts on (`reconcileClusterRecovery`) before the operator removes the annotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_meets_the_operator_where_upstream_puts_things() {
    let drill = drill(ferry_drill::basic_scenario()).await;
    let b = run(&drill, Phase::Backup).await;
    assert!(b.succeeded(), "{}", b.to_text());
    let r = run(&drill, Phase::Restore).await;
    assert!(r.succeeded(), "{}", r.to_text());
    let dst = drill.env().destination().unwrap().sim.store();
    let hc = &drill.env().scenario.hosted_cluster;
    let hc_obj = dst
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    let hcp = dst
        .get(
            &registry::HOSTED_CONTROL_PLANE,
            Some(&drill.env().hcp_namespace()),
            &hc.name,
        )
        .unwrap();
    assert_eq!(condition_status(&hc_obj, "EtcdSnapshotRestored"), None);
    assert_eq!(condition_status(&hcp, "EtcdSnapshotRestored").as_deref(), Some("True"));
    assert_eq!(
        hcp["spec"]["etcd"]["managed"]["storage"]["restoreSnapshotURL"],
        hc_obj["spec"]["etcd"]["managed"]["storage"]["restoreSnapshotURL"],
        "one URL, copied by the operator"
    );
    assert!(
        hcp["metadata"]["annotations"]["ferry.dev/backup-id"].is_null(),
        "the operator made the HostedControlPlane, not the restore"
    );
    assert_eq!(
        condition_status(&hc_obj, "ReconciliationSucceeded").as_deref(),
        Some("True")
    );
    assert_eq!(
        condition_status(&hcp, "HostedClusterRestoredFromBackup").as_deref(),
        Some("True")
    );
    drill.shutdown().await;
}

/// `reconcileCAPIFinalizers` puts `hypershift.openshift.io/component-finalizer` on the
/// `cluster-api` and `capi-provider` Deployments: teardown clears it (the control-plane
/// namespace goes) and starts the operator again. A failure after the operator stopped starts
/// it again too, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_clears_upstream_finalizers_and_always_restarts_the_operator() {
    let drill = drill(ferry_drill::basic_scenario()).await;
    for phase in [Phase::Backup, Phase::Restore] {
        let r = run(&drill, phase).await;
        assert!(r.succeeded(), "{}", r.to_text());
    }
    let src = drill.env().source().sim.store();
    let cp_ns = drill.env().hcp_namespace();
    let dep = src.get(&registry::DEPLOYMENT, Some(&cp_ns), "cluster-api").unwrap();
    assert_eq!(
        dep["metadata"]["finalizers"],
        json!(["hypershift.openshift.io/component-finalizer"])
    );
    // Something of a site's holds the namespace: the wait for it times out.
    src.create(
        &registry::CONFIG_MAP,
        Some(&cp_ns),
        json!({"metadata": {"name": "site-thing", "finalizers": ["example.com/keep"]}}),
        &WriteOptions::default(),
    )
    .unwrap();
    let r = run(&drill, Phase::Teardown).await;
    let (_, message) = guest_failure(&r);
    assert!(message.contains("HyperShift operator was started again"), "{message}");
    assert!(
        ferry_sim::hypershift::controllers::operator_running(src) || {
            // Its pods start on the next pass of the simulated kubelets.
            drill
                .env()
                .source()
                .controllers
                .settle(std::time::Duration::from_secs(30))
                .await;
            ferry_sim::hypershift::controllers::operator_running(src)
        }
    );
    let op = src.get(&registry::DEPLOYMENT, Some("hypershift"), "operator").unwrap();
    assert_eq!(op["spec"]["replicas"], 2);
    assert!(op["metadata"]["annotations"]["ferry.dev/replicas-before-teardown"].is_null());
    // The site's object goes; teardown completes and the operator runs.
    src.patch(
        &registry::CONFIG_MAP,
        Some(&cp_ns),
        "site-thing",
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        &WriteOptions::default(),
    )
    .unwrap();
    for phase in [Phase::Teardown, Phase::Finish] {
        let r = run(&drill, phase).await;
        assert!(r.succeeded(), "{}", r.to_text());
    }
    assert_verified(&drill.verify().await);
    drill.shutdown().await;
}

/// Pods outlive their Deployment's scale to zero (graceful termination): the snapshot waits
/// until no etcd writer runs, and no Machine is deleted while the CAPI controllers run (they
/// would terminate the instances the destination's nodes are).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_last_until_the_pods_are_gone() {
    let drill = drill(ferry_drill::basic_scenario()).await;
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{}", report.message());
    assert_verified(&drill.verify().await);
    let log = drill.env().source().controllers.log();
    assert!(
        !log.any(|e| matches!(e, OperatorEvent::SnapshotWithWritersRunning { .. })),
        "{:?}",
        log.entries()
    );
    assert!(!log.any(|e| matches!(e, OperatorEvent::MachinesDeletedWithControllersRunning { .. })));
    assert!(!log.any(|e| matches!(e, OperatorEvent::InstanceTerminated { .. })));
    let hc = &drill.env().scenario.hosted_cluster;
    assert_eq!(
        drill.env().ec2.running(&format!("{}/{}", hc.namespace, hc.name)).len(),
        2
    );
    drill.shutdown().await;
}

/// A NodePool rolling out has more Ready nodes than replicas: `wait-nodes` accepts at least
/// the expected count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_of_nodes_is_enough_nodes() {
    let drill = drill(scenario("surge.toml")).await;
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{}", report.message());
    assert_verified(&drill.verify().await);
    drill.shutdown().await;
}

/// Cluster API stops serving `v1beta1` (CAPI ≥ 1.11 stores `v1beta2`): the guest reads and
/// writes CAPI kinds in the version each cluster serves (discovery).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capi_kinds_follow_discovery() {
    let mut sc = ferry_drill::basic_scenario();
    sc.capi_v1beta1_served = false;
    let drill = drill(sc).await;
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{}", report.message());
    assert_verified(&drill.verify().await);
    drill.shutdown().await;
}

/// `api/util/configrefs`: identity providers' Secrets and ConfigMaps under names of their own
/// (htpasswd `fileData`, OpenID client secret and CA, templates, client CA, trusted CAs,
/// scheduler policy) reach the destination, where the operator copies them into the control
/// plane; the sibling hosted cluster's objects stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_provider_references_move_with_the_cluster() {
    let drill = drill(scenario("identity-providers.toml")).await;
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{}", report.message());
    assert_verified(&drill.verify().await);
    let hc = &drill.env().scenario.hosted_cluster;
    let dst = drill.env().destination().unwrap().sim.store();
    let hc_obj = dst
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    let (secrets, config_maps) = ferry_sim::hypershift::hostedcluster::configuration_refs(&hc_obj);
    assert!(secrets.contains(&"htpass-secret".to_string()), "{secrets:?}");
    for s in &secrets {
        assert!(dst.get(&registry::SECRET, Some(&hc.namespace), s).is_ok(), "Secret {s}");
        assert!(
            dst.get(&registry::SECRET, Some(&drill.env().hcp_namespace()), s)
                .is_ok(),
            "Secret {s} in the HCP"
        );
    }
    for c in &config_maps {
        assert!(
            dst.get(&registry::CONFIG_MAP, Some(&hc.namespace), c).is_ok(),
            "ConfigMap {c}"
        );
    }
    assert!(
        drill
            .env()
            .source()
            .sim
            .store()
            .get(&registry::SECRET, Some(&hc.namespace), "idp-sibling-pull-secret")
            .is_ok(),
        "the sibling's objects stay on the source"
    );
    drill.shutdown().await;
}

/// `kas.ReconcileService`: an APIServer published by a LoadBalancer Service gets its DNS record
/// from the Service's external-dns annotation. Backup releases it on the source, restore waits
/// until the destination's external-dns owns it before waiting on nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_balancer_published_api_server_moves_its_record() {
    let drill = drill(scenario("loadbalancer.toml")).await;
    assert_eq!(
        drill.env().scenario.hosted_cluster.api_publishing,
        Publishing::LoadBalancer
    );
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{}", report.message());
    let checks = drill.verify().await;
    assert_verified(&checks);
    // The API's record is the Service's: external-dns' AWS provider writes an ALIAS A record
    // for an ELB hostname (`provider/aws/aws.go`, `useAlias`), to the destination's.
    let records = drill
        .route53()
        .list_resource_record_sets()
        .hosted_zone_id(drill.zone_id())
        .send()
        .await
        .unwrap();
    let api = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name().trim_end_matches('.') == "api-lb-one.guest.example.com" && r.r#type().as_str() == "A")
        .unwrap_or_else(|| panic!("the API's record: {:?}", records.resource_record_sets()));
    let target = api.alias_target().map(|a| a.dns_name()).unwrap_or_default();
    assert!(
        target.starts_with("kube-apiserver-") && target.contains(".destination.elb."),
        "{api:?}"
    );
    drill.shutdown().await;
}

/// Endpoint access Private or PublicAndPrivate (AWSEndpointServices, PrivateLink, private
/// zone): refused in preflight with the reason, before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_endpoint_access_is_refused_before_anything_changes() {
    for access in [EndpointAccess::Private, EndpointAccess::PublicAndPrivate] {
        let mut sc = scenario("private.toml");
        sc.hosted_cluster.endpoint_access = access;
        let drill = drill(sc).await;
        let r = drill.phase(Phase::Backup, &PhaseArgs::default()).await.unwrap();
        let (kind, message) = guest_failure(&r);
        assert_eq!(kind, "invalid", "{message}");
        assert!(
            message.contains(&format!("endpoint access is {}", access.as_str())),
            "{message}"
        );
        assert!(message.contains("PrivateLink"), "{message}");
        let hc = &drill.env().scenario.hosted_cluster;
        let src = drill
            .env()
            .source()
            .sim
            .store()
            .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
            .unwrap();
        assert!(src["spec"]["pausedUntil"].is_null(), "nothing was paused");
        drill.shutdown().await;
    }
}
