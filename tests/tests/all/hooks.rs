//! Site hooks around the stock DR guest: they change what is carried and
//! restored, veto destructive steps, are held to their own policies and
//! limits, and fail their step with their name unless they are advisory.
//! Swapping the whole guest runs a site's component under its own policy.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::path::PathBuf;

use ferry::config::{HookConfig, Limits};
use ferry::runtime::run::{ComponentSource, PolicySource};
use ferry_dr::phases::{GuestChoice, Phase};
use ferry_drill::{Drill, DrillOptions};
use ferry_sim::kube::registry;
use ferry_tests::dr::{guest_failure, run, source_has_hosted_cluster};

async fn drill() -> Drill {
    ferry_tests::init_logging();
    Drill::start(DrillOptions {
        install_moto: false,
        ..DrillOptions::default()
    })
    .await
    .unwrap()
}

fn test_hook(points: &[&str], advisory: bool) -> HookConfig {
    HookConfig {
        name: "test-hook".into(),
        component: PathBuf::from(ferry_artifacts::TEST_HOOK),
        policy: ferry_tests::fixture("test-hook.cedar"),
        points: points.iter().map(|p| p.to_string()).collect(),
        advisory,
        limits: None,
    }
}

fn with_hook(drill: &mut Drill, hook: HookConfig, mode: &str) {
    let config = drill.run_config_mut();
    config.hooks = vec![hook];
    config.params.insert("test_hook_mode".into(), mode.into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vetoing_verify_hook_stops_teardown_with_nothing_deleted() {
    let mut drill = drill().await;
    with_hook(&mut drill, test_hook(&["verify"], false), "veto");
    // Backup's own verify point (before the routes go) vetoes too: run it without.
    drill
        .run_config_mut()
        .params
        .insert("test_hook_mode".into(), "proceed".into());
    assert!(run(&drill, Phase::Backup).await.succeeded());
    assert!(run(&drill, Phase::Restore).await.succeeded());
    drill
        .run_config_mut()
        .params
        .insert("test_hook_mode".into(), "veto".into());
    let r = run(&drill, Phase::Teardown).await;
    let (kind, message) = guest_failure(&r);
    assert_eq!(kind, "invalid", "{message}");
    assert!(
        message.contains("hook `test-hook` vetoed") && message.contains("test veto at teardown/gate"),
        "{message}"
    );
    assert!(message.contains("nothing was deleted"), "{message}");
    assert!(source_has_hosted_cluster(&drill));
    let store = drill.env().source().sim.store();
    let hcp = drill.env().hcp_namespace();
    assert!(store.get(&registry::NAMESPACE, None, &hcp).is_ok());
    let operator = store
        .get(&registry::DEPLOYMENT, Some("hypershift"), "operator")
        .unwrap();
    assert_eq!(operator["spec"]["replicas"], 2, "the operator was stopped");
    // The hook allows it now: teardown completes.
    drill
        .run_config_mut()
        .params
        .insert("test_hook_mode".into(), "proceed".into());
    assert!(run(&drill, Phase::Teardown).await.succeeded());
    assert!(!source_has_hosted_cluster(&drill));
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_outside_its_policy_is_denied_and_the_phase_says_so() {
    let mut drill = drill().await;
    with_hook(&mut drill, test_hook(&["before-step"], false), "deny");
    let r = run(&drill, Phase::Backup).await;
    let (kind, message) = guest_failure(&r);
    assert_eq!(kind, "denied", "{message}");
    assert!(
        message.contains("hook `test-hook`") && message.contains("backup/preflight"),
        "{message}"
    );
    // Denied before anything happened: not even paused.
    let hc = &drill.env().scenario.hosted_cluster;
    let source_hc = drill
        .env()
        .source()
        .sim
        .store()
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    assert!(source_hc["spec"].get("pausedUntil").is_none());
    let audit = std::fs::read_to_string(drill.audit_path()).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"guest\":\"test-hook\"") && l.contains("\"decision\":\"deny\"")),
        "the hook's denied call is not in the audit trail"
    );
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_or_runaway_hook_fails_its_step_with_its_name() {
    let mut drill = drill().await;
    with_hook(&mut drill, test_hook(&["before-step"], false), "trap");
    let (_, message) = guest_failure(&run(&drill, Phase::Backup).await);
    assert!(
        message.contains("hook `test-hook`") && message.contains("trap"),
        "{message}"
    );

    let mut runaway = test_hook(&["before-step"], false);
    runaway.limits = Some(Limits {
        cpu_ms: 200,
        ..HookConfig::default_limits()
    });
    with_hook(&mut drill, runaway, "loop");
    let (_, message) = guest_failure(&run(&drill, Phase::Backup).await);
    assert!(
        message.contains("hook `test-hook`") && message.contains("CPU"),
        "{message}"
    );

    with_hook(&mut drill, test_hook(&["before-step"], false), "error");
    let (kind, message) = guest_failure(&run(&drill, Phase::Backup).await);
    assert_eq!(kind, "invalid", "{message}");
    assert!(
        message.contains("hook `test-hook`") && message.contains("on purpose"),
        "{message}"
    );
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advisory_hook_that_fails_only_warns() {
    let mut drill = drill().await;
    let every_point = [
        "before-step",
        "after-step",
        "select-objects",
        "transform-object",
        "verify",
    ];
    with_hook(&mut drill, test_hook(&every_point, true), "trap");
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{report:#?}");
    let checks = drill.verify().await;
    assert!(checks.passed(), "{}", checks.to_text());
    let audit = std::fs::read_to_string(drill.audit_path()).unwrap();
    assert!(
        audit.contains("advisory-failure"),
        "the advisory failures are not audited"
    );
    drill.shutdown().await;
}

/// A hook sees only the points it names: one that names none is never called, rather than
/// called everywhere (here it would trap and fail the backup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_names_no_point_is_never_called() {
    let mut drill = drill().await;
    with_hook(&mut drill, test_hook(&[], false), "trap");
    let report = run(&drill, Phase::Backup).await;
    assert!(report.succeeded(), "{report:#?}");
    let audit = std::fs::read_to_string(drill.audit_path()).unwrap();
    assert!(!audit.contains("\"guest\":\"test-hook\""), "the hook was called");
    drill.shutdown().await;
}

/// A transform may change an object, not replace it: a hook that hands back a RoleBinding
/// for what it was given fails restore, naming the hook, before anything is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_hook_cannot_turn_an_object_into_a_role_binding() {
    let mut drill = drill().await;
    with_hook(&mut drill, test_hook(&["transform-object"], false), "rolebinding");
    assert!(run(&drill, Phase::Backup).await.succeeded());
    let (kind, message) = guest_failure(&run(&drill, Phase::Restore).await);
    assert_eq!(kind, "invalid", "{message}");
    assert!(
        message.contains("hook `test-hook`") && message.contains("into rbac.authorization.k8s.io/RoleBinding"),
        "{message}"
    );
    let hc = &drill.env().scenario.hosted_cluster;
    let dst = drill.env().destination().unwrap().sim.store().clone();
    assert!(
        dst.get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
            .is_err(),
        "nothing is applied"
    );
    let hcp = drill.env().hcp_namespace();
    for ns in [hc.namespace.as_str(), hcp.as_str()] {
        assert!(dst.get(&registry::ROLE_BINDING, Some(ns), "test-hook-admin").is_err());
    }
    drill.shutdown().await;
}

/// A hook whose policy grants no read of a Secret sees its values as a marker; what it hands
/// back gets the real values again, so the restored Secret is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_without_the_grant_sees_secrets_redacted() {
    let mut drill = drill().await;
    with_hook(&mut drill, test_hook(&["transform-object"], false), "peek");
    let hc = drill.env().scenario.hosted_cluster.clone();
    let pull = format!("{}-pull-secret", hc.name);
    let source = drill.env().source().sim.store().clone();
    let original = source.get(&registry::SECRET, Some(&hc.namespace), &pull).unwrap();
    let value = original["data"][".dockerconfigjson"].as_str().unwrap().to_string();
    assert!(!value.is_empty());
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{report:#?}");
    let audit = std::fs::read_to_string(drill.audit_path()).unwrap();
    let seen: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"guest\":\"test-hook\"") && l.contains("test-hook saw a Secret"))
        .collect();
    assert!(!seen.is_empty(), "the hook saw no Secret");
    assert!(seen.iter().all(|l| l.contains("redacted")), "{seen:?}");
    assert!(!audit.contains(&value), "a Secret value reached the hook");
    assert!(audit.contains("\"outcome\":\"redacted\""), "the redaction is audited");
    let restored = drill
        .env()
        .destination()
        .unwrap()
        .sim
        .store()
        .get(&registry::SECRET, Some(&hc.namespace), &pull)
        .unwrap();
    assert_eq!(
        restored["data"][".dockerconfigjson"],
        value.as_str(),
        "the values came back"
    );
    assert_eq!(
        restored["metadata"]["annotations"]["site.example/restored-by"],
        "test-hook"
    );
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_hook_rewrites_what_restore_applies() {
    let mut drill = drill().await;
    with_hook(&mut drill, test_hook(&["transform-object"], false), "transform");
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{report:#?}");
    let hc = &drill.env().scenario.hosted_cluster;
    let restored = drill
        .env()
        .destination()
        .unwrap()
        .sim
        .store()
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    assert_eq!(
        restored["metadata"]["annotations"]["site.example/restored-by"], "test-hook",
        "{restored}"
    );
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_guest_runs_under_its_own_policy() {
    let mut drill = drill().await;
    // The site's own DR guest (here: the stock component under another name)
    // with a site policy that does not grant etcd snapshots.
    let stock =
        ferry_dr::stock::policy_text().replace("Ferry::Guest::\"hosted-cluster-dr\"", "Ferry::Guest::\"site-dr\"");
    let start = stock.find("@id(\"etcd-snapshot\")").unwrap();
    let end = start + stock[start..].find("resource == ?resource);").unwrap() + "resource == ?resource);".len();
    let stock = format!("{}{}", &stock[..start], &stock[end..]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("site-dr.cedar");
    std::fs::write(&policy, stock).unwrap();
    drill.set_guest(GuestChoice {
        component: ComponentSource::File(PathBuf::from(ferry_artifacts::HOSTED_CLUSTER_DR)),
        name: Some("site-dr".into()),
        policy: PolicySource::File(policy),
    });
    let (kind, message) = guest_failure(&run(&drill, Phase::Backup).await);
    assert_eq!(kind, "denied", "{message}");
    assert!(message.contains("etcd"), "{message}");
    let audit = std::fs::read_to_string(drill.audit_path()).unwrap();
    assert!(
        audit.contains("\"guest\":\"site-dr\""),
        "the swapped guest is not the principal"
    );
    drill.shutdown().await;
}

fn example(name: &str, component: &str, points: &[&str]) -> HookConfig {
    HookConfig {
        name: name.into(),
        component: PathBuf::from(component),
        policy: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../guests/examples/{name}/policy.cedar")),
        points: points.iter().map(|p| p.to_string()).collect(),
        advisory: false,
        limits: None,
    }
}

/// A ServiceMonitor with the carry label in the control-plane namespace.
fn plant_service_monitor(drill: &Drill) {
    let hcp = drill.env().hcp_namespace();
    drill
        .env()
        .source()
        .sim
        .store()
        .create(
            &registry::SERVICE_MONITOR,
            Some(&hcp),
            serde_json::json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                "metadata": {"name": "site-etcd-metrics", "namespace": hcp, "labels": {"ferry.dev/carry": "true"}},
                "spec": {"endpoints": [{"port": "metrics", "interval": "30s"}],
                    "selector": {"matchLabels": {"app": "etcd"}}}}),
            &Default::default(),
        )
        .unwrap();
}

/// A hook never widens what the run may do: `carry-labelled` may name a ServiceMonitor, but
/// the stock policy does not let the DR guest read one, so backup stops naming it, before it
/// uploads any manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_cannot_make_the_guest_carry_what_its_policy_does_not_grant() {
    let mut drill = drill().await;
    plant_service_monitor(&drill);
    drill.run_config_mut().hooks = vec![example(
        "carry-labelled",
        ferry_artifacts::CARRY_LABELLED,
        &["select-objects"],
    )];
    let (kind, message) = guest_failure(&run(&drill, Phase::Backup).await);
    assert_eq!(kind, "denied", "{message}");
    assert!(
        message.contains("ServiceMonitor") && message.contains("site-etcd-metrics"),
        "{message}"
    );
    let audit = std::fs::read_to_string(drill.audit_path()).unwrap();
    assert!(
        !audit
            .lines()
            .any(|l| l.contains("\"action\":\"objects:put\"") && l.contains("/namespaces/")),
        "no manifest was uploaded"
    );
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_resource_selected_by_a_hook_survives_the_migration() {
    let mut drill = drill().await;
    plant_service_monitor(&drill);
    let hcp = drill.env().hcp_namespace();
    let labels = serde_json::json!({"ferry.dev/carry": "true"});
    let store = drill.env().source().sim.store().clone();
    store
        .create(
            &registry::CONFIG_MAP,
            Some(&hcp),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "site-runbook", "namespace": hcp, "labels": labels},
                "data": {"owner": "platform-team"}}),
            &Default::default(),
        )
        .unwrap();
    drill.run_config_mut().hooks = vec![
        example("carry-labelled", ferry_artifacts::CARRY_LABELLED, &["select-objects"]),
        example("run-summary", ferry_artifacts::RUN_SUMMARY, &["after-step"]),
    ];
    // The stock policy grants no ServiceMonitor: the site grants it to the DR guest.
    let grants = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guests/examples/carry-labelled/dr-grants.cedar");
    let mut guest = GuestChoice::stock();
    guest.policy = PolicySource::Text {
        text: format!(
            "{}\n{}",
            ferry_dr::stock::policy_text(),
            std::fs::read_to_string(&grants).unwrap()
        )
        .into(),
        origin: "stock policy + carry-labelled/dr-grants.cedar".into(),
    };
    drill.set_guest(guest);
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{report:#?}");
    let checks = drill.verify().await;
    assert!(checks.passed(), "{}", checks.to_text());
    let dest = drill.env().destination().unwrap().sim.store();
    let smon = dest
        .get(&registry::SERVICE_MONITOR, Some(&hcp), "site-etcd-metrics")
        .unwrap();
    assert_eq!(smon["spec"]["endpoints"][0]["port"], "metrics");
    let cm = dest.get(&registry::CONFIG_MAP, Some(&hcp), "site-runbook").unwrap();
    assert_eq!(cm["data"]["owner"], "platform-team");
    // The run-summary hook wrote one summary after backup and one after finish.
    let hc = &drill.env().scenario.hosted_cluster;
    let prefix = format!("hosted-clusters/{}/{}/run-summaries/", hc.namespace, hc.name);
    let s3 = drill.s3_client().await;
    let listed = s3
        .list_objects_v2()
        .bucket(drill.bucket())
        .prefix(&prefix)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(keys.iter().any(|k| k.contains("/backup-")), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains("/finish-")), "{keys:?}");
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_window_example_vetoes_teardown_outside_the_window() {
    let mut drill = drill().await;
    drill.run_config_mut().hooks = vec![example("change-window", ferry_artifacts::CHANGE_WINDOW, &["verify"])];
    drill
        .run_config_mut()
        .params
        .insert("change_window".into(), "closed".into());
    let report = drill.migrate().await;
    assert_eq!(report.failed, Some(Phase::Teardown), "{report:#?}");
    assert!(
        format!("{report:?}").contains("hook `change-window` vetoed"),
        "{report:#?}"
    );
    assert!(source_has_hosted_cluster(&drill));
    drill
        .run_config_mut()
        .params
        .insert("change_window".into(), "open".into());
    let report = drill
        .migrate_with(&ferry_dr::phases::MigrateOptions {
            from: Some(Phase::Teardown),
            ..Default::default()
        })
        .await;
    assert!(report.succeeded(), "{report:#?}");
    assert!(drill.verify().await.passed());
    drill.shutdown().await;
}
