//! The change-management loop of a DR phase through the `ferry` binary, against the lab:
//! `ferry backup --plan --plan-out`, `ferry plan show`, `ferry plan approve`, `ferry backup
//! --apply`; and `ferry migrate --plan --plan-out DIR`, which plans what can be planned ahead.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::sync::Arc;

use ferry_drill::{Drill, DrillOptions};
use ferry_sim::kube::registry;

async fn ferry(drill: &Drill, args: &[&str]) -> (std::process::Output, String) {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .arg("--site")
        .arg(drill.site_path())
        .envs(drill.process_env())
        .env("XDG_CACHE_HOME", std::env::temp_dir().join("ferry-cli-test-cache"))
        .current_dir(drill.dir())
        .output()
        .await
        .unwrap();
    let text = format!(
        "status {:?}\n--- stderr\n{}\n--- stdout\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    (o, text)
}

fn paused(drill: &Drill) -> bool {
    let hc = &drill.env().scenario.hosted_cluster;
    drill
        .env()
        .source()
        .sim
        .store()
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap()["spec"]["pausedUntil"]
        == "true"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_planned_shown_approved_and_applied_through_the_binary() {
    let drill = Drill::start(DrillOptions {
        say: Arc::new(|_: &str| {}),
        ..Default::default()
    })
    .await
    .unwrap();
    let plans = drill.dir().join("plans");
    let dir = plans.to_str().unwrap();
    let (o, text) = ferry(&drill, &["migrate", "--plan", "--plan-out", dir]).await;
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("planned ahead: backup"), "{text}");
    assert!(
        text.contains(&format!("ferry restore --plan --plan-out {dir}/restore.plan.json")),
        "{text}"
    );
    assert!(!paused(&drill), "a plan changes nothing");
    let file = plans.join("backup.plan.json");
    let file = file.to_str().unwrap();

    let (o, text) = ferry(&drill, &["backup", "--apply", file]).await;
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("is not approved"), "{text}");
    assert!(!paused(&drill), "refused before anything ran");

    let show = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["plan", "show", file])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains("phase `backup`") && shown.contains("NOT APPROVED"),
        "{shown}"
    );
    assert!(
        shown.contains("k8s:patch") && shown.contains("HostedCluster clusters/demo-one"),
        "{shown}"
    );
    assert!(
        shown.contains("known only when it runs: artifact-content, run-stamp"),
        "{shown}"
    );

    let key = drill.dir().join("audit.key");
    let approve = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "plan",
            "approve",
            file,
            "--key",
            key.to_str().unwrap(),
            "--by",
            "reviewer",
        ])
        .output()
        .unwrap();
    assert_eq!(
        approve.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );

    let (o, text) = ferry(&drill, &["backup", "--apply", file]).await;
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("every change it held happened"), "{text}");
    assert!(paused(&drill), "the backup ran: {text}");
    assert_eq!(drill.marker_state().as_deref(), Some("complete"), "{text}");

    // `ferry migrate` applies no plan file: each phase is applied on its own.
    let (o, text) = ferry(&drill, &["migrate", "--apply", file]).await;
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("applies no plan file"), "{text}");
    drill.shutdown().await;
}

/// `ferry drill --approved-plans`: every phase planned, approved and applied, then verified.
#[test]
fn the_drill_rehearses_change_management_phase_by_phase() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["drill", "--approved-plans", "--output", "json", "--quiet"])
        .env("XDG_CACHE_HOME", std::env::temp_dir().join("ferry-cli-test-cache"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["schema"], "ferry.drill/v1");
    assert_eq!(
        doc["ok"],
        true,
        "{}",
        serde_json::to_string_pretty(&doc["approved_plans"]).unwrap()
    );
    let phases: Vec<&str> = doc["approved_plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["backup", "restore", "teardown", "finish"]);
    for p in doc["approved_plans"].as_array().unwrap() {
        assert!(p["changes"].as_u64().unwrap() > 0, "{p}");
        assert_eq!(p["not_done"], serde_json::json!([]), "{p}");
    }
}
