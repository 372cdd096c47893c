//! `ferry abort`: a backup that will not be restored today leaves the source paused, its etcd
//! writers at zero and its DNS released (upstream needed `contrib/oadp-recovery` for this
//! state, OCPBUGS-77530). Abort returns it to service from wherever backup or restore stopped,
//! refuses while the destination has the hosted cluster, and is idempotent.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::collections::BTreeMap;

use ferry_dr::phases::{DrOptions, Phase, PhaseArgs, PhaseReport};
use ferry_drill::Drill;
use ferry_sim::kube::registry;
use ferry_sim::{ListOptions, Store};
use ferry_tests::dr::{guest_failure, run};
use serde_json::Value;

async fn drill() -> Drill {
    ferry_tests::dr::drill(ferry_drill::basic_scenario(), 20.0).await
}

fn src(drill: &Drill) -> &Store {
    drill.env().source().sim.store()
}

fn stop_after(step: &str) -> PhaseArgs {
    PhaseArgs {
        stop_after: Some(step.into()),
        ..PhaseArgs::default()
    }
}

/// The source serves the hosted cluster as before the backup: nothing paused, writers at
/// their replicas, its public hostnames published by the source's external-dns.
async fn assert_in_service(drill: &Drill, before: &BTreeMap<String, Value>, why: &str) {
    let hc = &drill.env().scenario.hosted_cluster;
    let hc_obj = src(drill)
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    assert!(hc_obj["spec"]["pausedUntil"].is_null(), "{why}: {hc_obj}");
    for np in src(drill)
        .list(&registry::NODE_POOL, Some(&hc.namespace), &ListOptions::default())
        .unwrap()
        .items
    {
        assert!(np["spec"]["pausedUntil"].is_null(), "{why}: {np}");
    }
    assert_eq!(&drill.source_control_plane_replicas(), before, "{why}");
    let records = drill
        .route53()
        .list_resource_record_sets()
        .hosted_zone_id(drill.zone_id())
        .send()
        .await
        .unwrap();
    let api_txt = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name().trim_end_matches('.') == "api-demo-one-external-dns.guest.example.com")
        .unwrap_or_else(|| panic!("{why}: the API's ownership record is gone"));
    let owner = api_txt.resource_records()[0].value();
    assert!(
        owner.contains("external-dns/owner=ferry-drill-source"),
        "{why}: {owner}"
    );
}

async fn abort(drill: &Drill, args: &PhaseArgs) -> PhaseReport {
    drill.phase(Phase::Abort, args).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_returns_the_source_to_service_from_every_backup_step() {
    let drill = drill().await;
    let before = drill.source_control_plane_replicas();
    for step in ferry_dr::stock::steps(Phase::Backup) {
        let b = drill.phase(Phase::Backup, &stop_after(step)).await.unwrap();
        assert!(b.succeeded(), "backup stopped after {step}:\n{}", b.to_text());
        let a = abort(&drill, &PhaseArgs::default()).await;
        assert!(a.succeeded(), "abort after backup/{step}:\n{}", a.to_text());
        assert_in_service(&drill, &before, &format!("after backup/{step}")).await;
        if *step != "preflight" {
            assert_eq!(drill.marker_state().as_deref(), Some("aborted"), "after backup/{step}");
        }
        let again = abort(&drill, &PhaseArgs::default()).await;
        assert!(
            again.succeeded() && again.already_done(),
            "abort twice after {step}:\n{}",
            again.to_text()
        );
    }
    // After an abort, a new backup starts afresh and the migration completes.
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{}", report.message());
    let checks = drill.verify().await;
    assert!(checks.passed(), "{}", checks.to_text());
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_from_a_restore_that_stopped_before_the_hosted_cluster() {
    let drill = drill().await;
    let before = drill.source_control_plane_replicas();
    assert!(run(&drill, Phase::Backup).await.succeeded());
    let r = drill.phase(Phase::Restore, &stop_after("extra-objects")).await.unwrap();
    assert!(r.succeeded(), "{}", r.to_text());
    let a = abort(&drill, &PhaseArgs::default()).await;
    assert!(a.succeeded(), "{}", a.to_text());
    let gate = a.steps().into_iter().find(|(s, _)| s == "gate").unwrap();
    assert_eq!(gate.1, "checked");
    assert!(format!("{a:?}").contains("nothing runs there"), "{a:?}");
    assert_in_service(&drill, &before, "after restore/extra-objects").await;
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_is_refused_while_the_destination_has_the_cluster_unless_forced() {
    let drill = drill().await;
    assert!(run(&drill, Phase::Backup).await.succeeded());
    let r = drill
        .phase(Phase::Restore, &stop_after("hosted-cluster"))
        .await
        .unwrap();
    assert!(r.succeeded(), "{}", r.to_text());
    let a = abort(&drill, &PhaseArgs::default()).await;
    let (kind, message) = guest_failure(&a);
    assert_eq!(kind, "conflict", "{message}");
    assert!(
        message.contains("split brain") && message.contains("nothing was changed"),
        "{message}"
    );
    let hc = &drill.env().scenario.hosted_cluster;
    let paused = src(&drill)
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    assert_eq!(paused["spec"]["pausedUntil"], "true", "refused: still paused");
    // A plan of the forced abort changes nothing either.
    let opts = DrOptions {
        plan: true,
        ..drill.dr_options()
    };
    let forced = PhaseArgs {
        force: true,
        ..PhaseArgs::default()
    };
    let plan = ferry_dr::phases::run_phase(drill.run_config(), Phase::Abort, &forced, &opts)
        .await
        .unwrap();
    assert!(plan.succeeded(), "{}", plan.to_text());
    for (step, result) in plan.steps() {
        assert!(
            ["planned", "checked", "already", "skipped"].contains(&result.as_str()),
            "{step}: {result}"
        );
    }
    let still = src(&drill)
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    assert_eq!(still["spec"]["pausedUntil"], "true", "a plan changes nothing");
    let a = abort(&drill, &forced).await;
    assert!(a.succeeded(), "{}", a.to_text());
    assert!(format!("{a:?}").contains("FORCED"), "{a:?}");
    let unpaused = src(&drill)
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    assert!(unpaused["spec"]["pausedUntil"].is_null());
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_migration_prints_the_abort_command() {
    let drill = drill().await;
    let mopts = ferry_dr::phases::MigrateOptions {
        args: stop_after("upload"),
        ..Default::default()
    };
    let report = drill.migrate_with(&mopts).await;
    assert_eq!(report.stopped, Some(Phase::Backup));
    let abort_cmd = report.abort_command.clone().unwrap();
    assert!(abort_cmd.starts_with("ferry abort --site "), "{abort_cmd}");
    assert!(report.message().contains(&abort_cmd), "{}", report.message());
    drill.shutdown().await;
}
