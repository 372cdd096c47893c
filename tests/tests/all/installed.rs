//! The stock guest on management clusters as HyperShift installs them, one scenario of
//! `sim/scenarios/` each: MCE's admission webhooks, Cluster API objects still stored as
//! v1beta1, external-dns' TXT cache, HighlyAvailable etcd on the pinned commit and on the
//! fixed profile, autoRepair node pools, a transient `etcd-init` failure, the destination's
//! OIDC conditions, and a control-plane-only move. Each test fails on the same simulator
//! without the guest's fix for it (the simulator refuses what upstream refuses).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::time::Duration;

use ferry_dr::phases::{MigrateOptions, MigrateReport, Phase, PhaseArgs, PhaseResult};
use ferry_drill::{Drill, DrillReport};
use ferry_sim::hypershift::scenario::Scenario;
use ferry_sim::kube::registry;
use ferry_sim::{ListOptions, Patch, Store, WriteOptions};
use ferry_tests::dr::guest_failure;
use serde_json::{Value, json};

fn scenario(text: &str) -> Scenario {
    Scenario::from_toml(text).unwrap()
}

async fn drill(s: Scenario) -> Drill {
    ferry_tests::dr::drill(s, 20.0).await
}

fn assert_verified(report: &DrillReport) {
    assert!(report.passed(), "drill verification failed:\n{}", report.to_text());
}

/// The drill's checks, and the API's downtime measured: restore saw the destination serve a
/// write. Its goal is judged where speed is measured (`ferry drill`, bench P6), never here: on
/// a scaled clock a busy machine's every wall-clock second is many upstream seconds.
async fn verified(drill: &Drill, migration: &MigrateReport) {
    let report = drill.verify().await;
    let downtime = drill.check_downtime(migration);
    assert!(migration.downtime_ms().is_some(), "{}", downtime.detail);
    assert_verified(&report);
}

fn args(extra: &[(&str, &str)]) -> PhaseArgs {
    PhaseArgs {
        extra: extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..PhaseArgs::default()
    }
}

/// The summary of `phase` in a migration report.
fn summary(report: &MigrateReport, phase: Phase) -> Value {
    report
        .phases
        .iter()
        .filter_map(PhaseResult::report)
        .find(|r| r.phase == phase)
        .and_then(|r| r.summary().cloned())
        .unwrap_or_else(|| panic!("no summary of {phase}: {report:#?}"))
}

/// The result and detail of `step` in a phase summary.
fn step(summary: &Value, step: &str) -> (String, String) {
    let s = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {summary}"));
    (
        s["result"].as_str().unwrap().to_string(),
        s["detail"].as_str().unwrap().to_string(),
    )
}

fn source(drill: &Drill) -> &Store {
    drill.env().source().sim.store()
}

fn destination(drill: &Drill) -> &Store {
    drill.env().destination().unwrap().sim.store()
}

/// MCE installs the operator's validating webhook: with the operator stopped, teardown's
/// finalizer patches of the HostedCluster and NodePools would be refused by the API server.
/// Teardown keeps this cluster's objects out of the webhooks and puts them back, also when
/// it fails part-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mce_teardown_keeps_the_cluster_out_of_the_webhooks_and_puts_them_back() {
    let drill = drill(scenario(include_str!("../../../sim/scenarios/mce.toml"))).await;
    let vwc_before = source(&drill)
        .get(
            &registry::VALIDATING_WEBHOOK_CONFIGURATION,
            None,
            "hypershift.openshift.io",
        )
        .unwrap();
    // Teardown fails part-way: something in the control-plane namespace keeps a finalizer
    // nobody removes, so the namespace never goes.
    let hcp_ns = drill.env().hcp_namespace();
    source(&drill)
        .create(
            &registry::CONFIG_MAP,
            Some(&hcp_ns),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "held", "namespace": hcp_ns, "finalizers": ["example.com/held"]}}),
            &WriteOptions::default(),
        )
        .unwrap();
    let first = drill.migrate().await;
    assert_eq!(first.failed, Some(Phase::Teardown), "{}", first.message());
    let (_, message) = first.failure().unwrap();
    assert!(message.contains("teardown/hcp-namespace"), "{message}");
    // The webhooks are as they were, and the operator runs again.
    let vwc = source(&drill)
        .get(
            &registry::VALIDATING_WEBHOOK_CONFIGURATION,
            None,
            "hypershift.openshift.io",
        )
        .unwrap();
    assert_eq!(vwc["webhooks"], vwc_before["webhooks"]);
    assert!(
        !vwc["metadata"]["annotations"].to_string().contains("ferry.dev"),
        "{vwc}"
    );
    // Scaled back: its pods come (bounded wait, not a timed assertion).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ferry_sim::hypershift::controllers::operator_running(source(&drill)) {
        assert!(std::time::Instant::now() < deadline, "the operator does not run again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Once the finalizer is gone, the plain command finishes the teardown, through the
    // operator's webhooks as installed.
    source(&drill)
        .patch(
            &registry::CONFIG_MAP,
            Some(&hcp_ns),
            "held",
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            &WriteOptions::default(),
        )
        .unwrap();
    let second = drill.migrate().await;
    assert!(second.succeeded(), "{}", second.message());
    assert_eq!(second.resumed.as_ref().and_then(|r| r.at), Some(Phase::Teardown));
    let teardown = summary(&second, Phase::Teardown);
    // The failed run put the webhooks back; the HostedCluster is still there, so this run
    // excludes it again, and puts them back once more at the end.
    assert_eq!(step(&teardown, "webhooks").0, "done", "{teardown}");
    assert_eq!(step(&teardown, "webhooks-back").0, "done", "{teardown}");
    let vwc = source(&drill)
        .get(
            &registry::VALIDATING_WEBHOOK_CONFIGURATION,
            None,
            "hypershift.openshift.io",
        )
        .unwrap();
    assert_eq!(vwc["webhooks"], vwc_before["webhooks"]);
    verified(&drill, &first).await;
    drill.shutdown().await;
}

/// An upgraded install whose CAPI objects are still stored as v1beta1 (the operator's
/// storage migration never completed): with the operator, which serves the conversion
/// webhook, stopped, every request in another version than the stored one fails. Teardown
/// stores this cluster's objects in the storage version first and addresses them in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capi_objects_stored_as_v1beta1_are_torn_down_in_their_storage_version() {
    let drill = drill(scenario(include_str!("../../../sim/scenarios/capi-v1beta1.toml"))).await;
    // The install as the scenario wants it: storedVersions lists both, v1beta2 stores.
    let crd = source(&drill)
        .get(&registry::CUSTOM_RESOURCE_DEFINITION, None, "machines.cluster.x-k8s.io")
        .unwrap();
    assert_eq!(
        crd["status"]["storedVersions"],
        json!(["v1beta1", "v1beta2"]),
        "{}",
        crd["status"]
    );
    let migration = drill.migrate().await;
    assert!(migration.succeeded(), "{}", migration.message());
    let teardown = summary(&migration, Phase::Teardown);
    let (result, detail) = step(&teardown, "capi-storage");
    assert_eq!(result, "done", "{detail}");
    assert!(
        detail.contains("Machine (2 objects, v1beta1+v1beta2 → v1beta2)"),
        "{detail}"
    );
    verified(&drill, &migration).await;
    drill.shutdown().await;
}

/// external-dns as HyperShift deploys it keeps a TXT cache for an hour: the destination's
/// still lists the source as owner of the names, and would not create them before its cache
/// refreshes. Restore releases the source's names once the destination publishes them, then
/// restarts both external-dns, and waits only as long as their arguments say they need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destination_publishes_at_once_despite_its_txt_cache() {
    let drill = drill(ferry_drill::basic_scenario()).await;
    let ed = |store: &Store| {
        store
            .get(&registry::DEPLOYMENT, Some("hypershift"), "external-dns")
            .unwrap()
    };
    let args = ed(destination(&drill))["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--txt-cache-interval=1h"), "{args}");
    assert!(
        !drill.run_config().params.contains_key("dns_timeout_seconds"),
        "the wait is bounded by external-dns' own arguments"
    );
    let pods = |store: &Store| -> Vec<String> {
        store
            .list(&registry::POD, Some("hypershift"), &ListOptions::default())
            .unwrap()
            .items
            .iter()
            .filter(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("external-dns")
            })
            .map(|p| p["metadata"]["uid"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let before = pods(destination(&drill));
    let migration = drill.migrate().await;
    assert!(migration.succeeded(), "{}", migration.message());
    let restore = summary(&migration, Phase::Restore);
    let (result, detail) = step(&restore, "dns");
    assert_eq!(result, "done", "{detail}");
    assert!(detail.contains("released on the source"), "{detail}");
    // A new external-dns process runs on the destination, at its replicas as before.
    let after = pods(destination(&drill));
    assert!(
        !after.is_empty() && after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
    verified(&drill, &migration).await;
    drill.shutdown().await;
}

/// At the pinned commit `etcd-init` restores each member of a HighlyAvailable control plane
/// as a cluster of its own: the stock guest refuses the move before it changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_on_the_pinned_commit_is_refused_before_anything_changes() {
    let drill = drill(scenario(include_str!("../../../sim/scenarios/ha-pinned.toml"))).await;
    let migration = drill.migrate().await;
    let why = drill.expected_refusal().unwrap();
    let report = drill.verify_refusal(&migration, why).await;
    assert_verified(&report);
    let (_, message) = migration.failure().unwrap();
    assert!(
        message.contains("etcd_init_member_identity") && message.contains("openshift/hypershift#9069"),
        "{message}"
    );
    drill.shutdown().await;
}

/// A site that says its destination restores members with their identity when it does not:
/// every condition upstream sets says restored, but the members are three clusters. Restore
/// stops at `etcd-members`, and teardown refuses, so the source stays intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_ha_restore_is_caught_before_teardown() {
    let drill = drill(scenario(include_str!("../../../sim/scenarios/ha-pinned.toml"))).await;
    let claim = args(&[("etcd_init_member_identity", "true")]);
    let migration = drill
        .migrate_with(&MigrateOptions {
            args: claim.clone(),
            ..MigrateOptions::default()
        })
        .await;
    assert_eq!(migration.failed, Some(Phase::Restore), "{}", migration.message());
    let (_, message) = migration.failure().unwrap();
    assert!(
        message.contains("restore/etcd-members") && message.contains("is not one cluster"),
        "{message}"
    );
    assert!(message.contains("OCPBUGS-99534"), "{message}");
    // Every upstream condition says restored.
    let hc = &drill.env().scenario.hosted_cluster;
    let hcp = destination(&drill)
        .get(
            &registry::HOSTED_CONTROL_PLANE,
            Some(&drill.env().hcp_namespace()),
            &hc.name,
        )
        .unwrap();
    assert_eq!(
        ferry_sim::hypershift::condition_status(&hcp, "EtcdSnapshotRestored").as_deref(),
        Some("True")
    );
    let teardown = drill.phase(Phase::Teardown, &claim).await.unwrap();
    let (_, message) = guest_failure(&teardown);
    assert!(
        message.contains("teardown refused") && message.contains("not one cluster"),
        "{message}"
    );
    assert!(ferry_tests::dr::source_has_hosted_cluster(&drill));
    let checks = drill.verify().await;
    let split = checks.check("etcd-one-cluster").unwrap();
    assert!(!split.passed, "{}", split.detail);
    drill.shutdown().await;
}

/// With `etcd-init` fixed, the three members restore as one cluster; the guest checks it and
/// the migration completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_on_the_fixed_profile_restores_one_etcd_cluster() {
    let drill = drill(scenario(include_str!("../../../sim/scenarios/ha-fixed.toml"))).await;
    let migration = drill.migrate().await;
    assert!(migration.succeeded(), "{}", migration.message());
    let restore = summary(&migration, Phase::Restore);
    let members = restore["etcd_members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{restore}");
    assert!(
        members
            .iter()
            .all(|m| m["cluster_id"] == members[0]["cluster_id"] && m["members"].as_array().map(Vec::len) == Some(3)),
        "{members:?}"
    );
    verified(&drill, &migration).await;
    drill.shutdown().await;
}

/// A NodePool with autoRepair gets a MachineHealthCheck (8 minutes NotReady). Here the
/// reused nodes cannot reach any control plane for longer: their resolver cached the API
/// name's NXDOMAIN (the zone's negative TTL, 900 s) while the name was released. Without
/// skip-remediation, Cluster API would replace them and CAPA terminate the instances ferry
/// reuses; restore keeps them and gives remediation back once they are Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_nodes_are_kept_from_remediation_until_ready() {
    let drill = drill(scenario(include_str!("../../../sim/scenarios/autorepair.toml"))).await;
    let hc_key = {
        let hc = &drill.env().scenario.hosted_cluster;
        format!("{}/{}", hc.namespace, hc.name)
    };
    let backup = ferry_tests::dr::run(&drill, Phase::Backup).await;
    assert!(backup.succeeded(), "{}", backup.to_text());
    // The names go before the destination publishes them, long enough for every node's
    // resolver to ask (past the ALIAS TTL) and keep the NXDOMAIN.
    let hcp_ns = drill.env().hcp_namespace();
    for route in source(&drill)
        .list(&registry::ROUTE, Some(&hcp_ns), &ListOptions::default())
        .unwrap()
        .items
    {
        source(&drill)
            .delete(
                &registry::ROUTE,
                Some(&hcp_ns),
                route["metadata"]["name"].as_str().unwrap(),
                &Default::default(),
            )
            .unwrap();
    }
    drill.source_external_dns().unwrap().reconcile_now().await.unwrap();
    let scale = drill.run_config().clock.scale;
    tokio::time::sleep(Duration::from_secs_f64(90.0 / scale)).await;
    let migration = drill
        .migrate_with(&MigrateOptions {
            from: Some(Phase::Restore),
            ..MigrateOptions::default()
        })
        .await;
    assert!(migration.succeeded(), "{}", migration.message());
    // The MachineHealthCheck saw the nodes unhealthy, and remediated nothing.
    let mhc = destination(&drill)
        .list(&registry::MACHINE_HEALTH_CHECK, Some(&hcp_ns), &ListOptions::default())
        .unwrap()
        .items;
    assert_eq!(mhc.len(), 1, "{mhc:?}");
    let terminated: Vec<String> = drill
        .env()
        .ec2
        .all()
        .into_iter()
        .filter(|i| i.hosted_cluster == hc_key && i.terminated)
        .map(|i| i.provider_id)
        .collect();
    assert!(
        terminated.is_empty(),
        "instances ferry reuses were terminated: {terminated:?}"
    );
    let restore = summary(&migration, Phase::Restore);
    assert_eq!(step(&restore, "remediation").0, "done", "{restore}");
    verified(&drill, &migration).await;
    drill.shutdown().await;
}

/// `etcd-init` fails twice to download the snapshot before it succeeds: the kubelet retries
/// it, and the running container's `lastState` still says exit code 56. The restore is not
/// failed, and no advice to delete anything is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_etcd_init_failure_is_not_a_failed_restore() {
    let drill = drill(scenario(include_str!(
        "../../../sim/scenarios/etcd-init-transient.toml"
    )))
    .await;
    let migration = drill.migrate().await;
    assert!(migration.succeeded(), "{}", migration.message());
    let pod = destination(&drill)
        .get(&registry::POD, Some(&drill.env().hcp_namespace()), "etcd-0")
        .unwrap();
    let init = &pod["status"]["initContainerStatuses"][0];
    assert_eq!(init["ready"], true, "{init}");
    assert_eq!(init["restartCount"], 2, "{init}");
    assert_eq!(init["lastState"]["terminated"]["exitCode"], 56, "{init}");
    assert!(!migration.message().contains("delete the HostedCluster"));
    verified(&drill, &migration).await;
    drill.shutdown().await;
}

/// The destination's operator has no OIDC bucket: it cannot publish the restored cluster's
/// issuer documents (`ValidOIDCConfiguration=False`). Teardown refuses, so the source's
/// documents are not the only thing keeping service accounts working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_refuses_a_destination_whose_oidc_is_not_valid() {
    let text = include_str!("../../../sim/scenarios/basic.toml").replace(
        "[hosted_cluster]",
        "[install]\nwithout_oidc_storage = [\"destination\"]\n\n[hosted_cluster]",
    );
    let drill = drill(scenario(&text)).await;
    let migration = drill.migrate().await;
    assert_eq!(migration.failed, Some(Phase::Teardown), "{}", migration.message());
    let (_, message) = migration.failure().unwrap();
    assert!(
        message.contains("ValidOIDCConfiguration=False") && message.contains("oidc-storage-provider-s3-bucket-name"),
        "{message}"
    );
    assert!(ferry_tests::dr::source_has_hosted_cluster(&drill));
    drill.shutdown().await;
}

/// `nodes = "control-plane-only"`: the source's instances keep running and rejoin the
/// restored control plane as nodes nothing manages. Restore reports them by instance id, with
/// the commands that remove them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_only_reports_the_old_instances() {
    let drill = drill(ferry_drill::basic_scenario()).await;
    let hc = drill.env().scenario.hosted_cluster.clone();
    let running: Vec<String> = drill
        .env()
        .ec2
        .running(&format!("{}/{}", hc.namespace, hc.name))
        .into_iter()
        .map(|i| i.provider_id.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(!running.is_empty());
    let migration = drill
        .migrate_with(&MigrateOptions {
            args: args(&[("nodes", "control-plane-only")]),
            ..MigrateOptions::default()
        })
        .await;
    assert!(migration.succeeded(), "{}", migration.message());
    let restore = summary(&migration, Phase::Restore);
    let reported: Vec<&str> = restore["old_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap())
        .collect();
    let mut expected = running.clone();
    expected.sort();
    assert_eq!(reported, expected, "{restore}");
    let commands = restore["old_instance_commands"].to_string();
    for id in &running {
        assert!(
            commands.contains(&format!(
                "aws ec2 terminate-instances --region us-east-1 --instance-ids {id}"
            )),
            "{commands}"
        );
    }
    drill.shutdown().await;
}
