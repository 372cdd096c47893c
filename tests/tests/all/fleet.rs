//! `ferry fleet`: a management cluster's hosted clusters moved at once, each its own
//! migration (lease, audit trail, policy link, local backup directory), so that one that
//! fails stops alone with the command that resumes it.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use ferry_dr::fleet::{Member, MemberOutcome, Selection};
use ferry_dr::phases::{MigrateOptions, Phase};
use ferry_drill::{FLEET_SELECTOR, fleet_scenario};
use ferry_sim::kube::registry;
use ferry_sim::kube::store::WriteOptions;
use serde_json::json;

/// Ten hosted clusters in two namespaces, four at a time: nine move and verify; the one whose
/// destination already holds a foreign control-plane namespace stops alone in restore with
/// its resume and abort commands, and its resume, once the namespace is gone, completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_hosted_clusters_four_at_a_time_and_one_that_fails_stops_alone() {
    let drill = ferry_tests::dr::drill(fleet_scenario(10), 30.0).await;
    let broken = Member {
        namespace: "clusters-east".into(),
        name: "fleet-03".into(),
    };
    let broken_hcp_ns = ferry_sim::hypershift::hcp_namespace(&broken.namespace, &broken.name);
    let dest = drill.env().destination().unwrap().sim.store();
    dest.create(
        &registry::NAMESPACE,
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": broken_hcp_ns}}),
        &WriteOptions::default(),
    )
    .unwrap();

    let selection = Selection {
        selector: Some(FLEET_SELECTOR.into()),
        hosted_clusters: Vec::new(),
    };
    let fopts = drill.fleet_options(4);
    let report = drill.migrate_fleet(&selection, &fopts).await.unwrap();
    let text = report.to_text();
    assert_eq!(report.members.len(), 10, "{text}");
    // The bare sibling carries no fleet label: not selected, and untouched (checked below).
    assert!(!report.members.iter().any(|m| m.member.name == "neighbour"), "{text}");
    // Fleet order: namespace, then name (what a Job's index counts in).
    let order: Vec<(String, String)> = report
        .members
        .iter()
        .map(|m| (m.member.namespace.clone(), m.member.name.clone()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);

    for m in &report.members {
        if m.member == broken {
            assert_eq!(m.status(), "failed", "{text}");
            assert_eq!(m.phase(), "restore", "{text}");
            let MemberOutcome::Ran { report: r } = &m.outcome else {
                panic!("{text}")
            };
            assert_eq!(r.completed, [Phase::Backup], "{text}");
            let resume = r.resume_command.as_deref().unwrap_or_default();
            assert!(
                resume.contains("--hc-namespace clusters-east --hc-name fleet-03")
                    && resume.contains("--from restore")
                    && resume.contains("audit/clusters-east/fleet-03.jsonl"),
                "{resume}"
            );
            assert!(
                r.abort_command.as_deref().is_some_and(|a| a.contains(" abort ")),
                "{text}"
            );
            assert!(text.contains(&format!("resume: {resume}")), "{text}");
            assert!(m.reason().contains(&broken_hcp_ns), "{}", m.reason());
        } else {
            assert!(m.succeeded(), "{} did not complete:\n{text}", m.member);
        }
    }
    assert_eq!(report.exit_code(), ferry::runtime::Exit::GuestFailed.code(), "{text}");
    assert!(text.contains("9 of 10 hosted clusters migrated"), "{text}");

    for (member, checks) in drill.verify_fleet(&report, &fopts).await {
        if member != broken {
            assert!(checks.passed(), "{member}:\n{}", checks.to_text());
        }
    }
    // Each member kept its own audit trail, each verifying on its own.
    for m in &report.members {
        let path = fopts.audit_path(&m.member).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let own = format!("{} ", ferry_dr::lease::lease_name(&m.member.namespace, &m.member.name));
        assert!(
            text.contains(&own),
            "{} does not record its lease {own}",
            path.display()
        );
        let others = report
            .members
            .iter()
            .filter(|o| o.member.name != m.member.name)
            .any(|o| {
                text.contains(&format!(
                    "{} ",
                    ferry_dr::lease::lease_name(&o.member.namespace, &o.member.name)
                ))
            });
        assert!(!others, "{} names another member's lease", path.display());
    }

    // The one that stopped resumes alone, as its resume command says, once the cause is gone.
    dest.delete(&registry::NAMESPACE, None, &broken_hcp_ns, &Default::default())
        .unwrap();
    for _ in 0..600 {
        if dest.get(&registry::NAMESPACE, None, &broken_hcp_ns).is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let config = drill
        .site()
        .for_hosted_cluster(&broken.namespace, &broken.name)
        .and_then(|s| s.run_config())
        .unwrap();
    let mut opts = drill.dr_options();
    opts.audit = fopts.audit_path(&broken);
    let resumed = ferry_dr::phases::migrate(
        &config,
        &opts,
        &MigrateOptions {
            from: Some(Phase::Restore),
            ..Default::default()
        },
    )
    .await;
    assert!(resumed.succeeded(), "{}", resumed.message());
    let audit = fopts.audit_path(&broken).unwrap();
    let checks = drill
        .verify_hosted_cluster(&broken.namespace, &broken.name, &audit)
        .await;
    assert!(checks.passed(), "{}", checks.to_text());
    drill.shutdown().await;
}

/// `fleet plan` reads and changes nothing: each member's backup preflight, as a plan; a
/// member whose hosted API is unreachable is reported not ready, the others ready; names
/// that are not on the source are refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_plan_runs_each_preflight_and_changes_nothing() {
    let drill = ferry_tests::dr::drill(fleet_scenario(3), 30.0).await;
    let source = drill.env().source().sim.store();
    let hc_before = |s: &ferry_sim::Store| {
        s.list(&registry::HOSTED_CLUSTER, None, &Default::default())
            .unwrap()
            .items
            .iter()
            .map(|o| o["metadata"]["resourceVersion"].to_string())
            .collect::<Vec<_>>()
    };
    let before = hc_before(source);
    // fleet-01's hosted API kubeconfig is gone: its preflight must say so.
    let kubeconfig = drill.dir().join("kubeconfigs/hosted/clusters-east/fleet-01.kubeconfig");
    std::fs::remove_file(&kubeconfig).unwrap();
    let members = ferry_dr::fleet::select(
        drill.site(),
        &Selection {
            selector: Some(FLEET_SELECTOR.into()),
            hosted_clusters: Vec::new(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        members.iter().map(Member::to_string).collect::<Vec<_>>(),
        ["clusters/demo-one", "clusters/fleet-02", "clusters-east/fleet-01"]
    );
    let planned = ferry_dr::fleet::plan(drill.site(), &members, &drill.dr_options(), 3).await;
    for p in &planned {
        if p.member.name == "fleet-01" {
            assert!(!p.ready, "{p:?}");
            assert!(p.message.contains("fleet-01.kubeconfig"), "{}", p.message);
        } else {
            assert!(p.ready, "{p:?}");
            assert!(p.message.starts_with("checked:"), "{}", p.message);
        }
    }
    assert_eq!(hc_before(source), before, "a plan changed a HostedCluster");

    let missing = ferry_dr::fleet::select(
        drill.site(),
        &Selection {
            selector: Some(FLEET_SELECTOR.into()),
            hosted_clusters: vec!["clusters/neighbour".parse().unwrap(), "clusters/nope".parse().unwrap()],
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("clusters/neighbour") && missing.contains("clusters/nope") && missing.contains("selector"),
        "{missing}"
    );
    drill.shutdown().await;
}
