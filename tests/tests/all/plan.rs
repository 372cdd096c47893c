//! Approved plans through the real host against ferry-sim: a plan run writes down every
//! mutation the policy allowed (and changes nothing), an approved plan is carried out exactly,
//! and an apply denies what the plan does not hold before the call reaches the server, saying
//! what changed on the cluster since the plan was made.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::sync::Arc;

use ferry::audit::AuditKey;
use ferry::config::{RunConfig, WorkspaceConfig};
use ferry::plan::{PlanBook, PlanFile};
use ferry::runtime::RunFailure;
use ferry_sim::kube::registry;
use ferry_sim::{Patch, Sim, WriteOptions};
use ferry_tests::{GuestRun, err_kind, err_message, ok};
use serde_json::{Value, json};

struct Site {
    sim: Sim,
    dir: tempfile::TempDir,
    config: RunConfig,
    key: AuditKey,
}

async fn site() -> Site {
    let ferry_tests::SimCluster { sim, dir, mut config } = ferry_tests::sim_cluster().await;
    config.workspace = Some(WorkspaceConfig::at(dir.path().join("ws")));
    let store = sim.store();
    store
        .create(
            &registry::NAMESPACE,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
            &WriteOptions::default(),
        )
        .unwrap();
    store
        .create(
            &registry::CONFIG_MAP,
            Some("team-a"),
            cm("settings", "v1"),
            &WriteOptions::default(),
        )
        .unwrap();
    Site {
        sim,
        dir,
        config,
        key: AuditKey::from_bytes(vec![42; 32]).unwrap(),
    }
}

fn cm(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "team-a"}, "data": {"k": value}})
}

fn patch(value: &str) -> Value {
    json!({"op": "k8s.patch", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a",
           "name": "settings", "patchKind": "merge", "patch": {"data": {"k": value}}})
}

/// What the automation does: reads, then three changes.
fn ops() -> Vec<Value> {
    vec![
        json!({"op": "open-cluster", "alias": "mgmt", "as": "c"}),
        json!({"op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "settings"}),
        json!({"op": "k8s.list", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a"}),
        json!({"op": "k8s.apply", "cluster": "c", "manifest": cm("two", "new")}),
        patch("patched"),
        json!({"op": "fs.write", "path": "notes/run.txt", "data": "moved"}),
    ]
}

impl Site {
    fn run(&self, book: &Arc<PlanBook>, plan: bool) -> GuestRun {
        GuestRun {
            config: self.config.clone(),
            plan,
            audit: Some(self.dir.path().join("audit.jsonl")),
            audit_key: Some(self.key.clone()),
            plan_book: Some(book.clone()),
            ..Default::default()
        }
    }

    /// A plan run of `ops`, approved and written where `--apply` reads it.
    async fn approved_plan(&self, ops: &[Value]) -> std::path::PathBuf {
        let book = Arc::new(PlanBook::recording());
        let out = self.run(&book, true).script(json!(ops)).await.unwrap();
        for r in &out {
            ok(r);
        }
        let mut plan = book.recorded().unwrap();
        plan.approve(&self.key, Some("reviewer".into()), "2026-12-07T08:00:00Z".into());
        let path = self.dir.path().join("plan.json");
        plan.save(&path).unwrap();
        path
    }

    fn enforcing(&self, path: &std::path::Path) -> Arc<PlanBook> {
        Arc::new(PlanBook::enforcing(
            PlanFile::load_approved(path, Some(&self.key)).unwrap(),
        ))
    }

    fn settings(&self) -> Value {
        self.sim
            .store()
            .get(&registry::CONFIG_MAP, Some("team-a"), "settings")
            .unwrap()
    }

    fn exists(&self, name: &str) -> bool {
        self.sim
            .store()
            .get(&registry::CONFIG_MAP, Some("team-a"), name)
            .is_ok()
    }

    fn trail(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn a_plan_changes_nothing_and_its_approval_applies_exactly_what_it_holds() {
    let s = site().await;
    let path = s.approved_plan(&ops()).await;
    // The plan run changed nothing.
    assert_eq!(s.settings()["data"]["k"], "v1");
    assert!(!s.exists("two"));
    assert!(!s.dir.path().join("ws/notes/run.txt").exists());

    let plan = PlanFile::load(&path).unwrap();
    let actions: Vec<(&str, &str)> = plan
        .mutations
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("k8s:apply", "k8s mgmt:v1/ConfigMap team-a/two"),
            ("k8s:patch", "k8s mgmt:v1/ConfigMap team-a/settings"),
            ("workspace:write", "workspace notes/run.txt"),
        ]
    );
    assert_eq!(plan.mutations[1].change, "merge patch");
    assert_eq!(plan.inputs.guest, "test-guest");
    assert_eq!(plan.inputs.phase, "script");
    let rv = s.settings()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let read = plan
        .reads
        .iter()
        .find(|r| r.target.ends_with("team-a/settings"))
        .unwrap();
    assert_eq!(read.resource_version.as_deref(), Some(rv.as_str()));
    let list = plan.reads.iter().find(|r| r.target.ends_with("team-a/*")).unwrap();
    assert_eq!(list.items.as_ref().unwrap().keys().collect::<Vec<_>>(), ["settings"]);
    let text = plan.to_text();
    assert!(text.contains("approved by reviewer"), "{text}");
    assert!(text.contains("k8s mgmt:v1/ConfigMap team-a/two"), "{text}");

    let book = s.enforcing(&path);
    let out = s.run(&book, false).script(json!(ops())).await.unwrap();
    for r in &out {
        ok(r);
    }
    assert_eq!(s.settings()["data"]["k"], "patched");
    assert!(s.exists("two"));
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("ws/notes/run.txt")).unwrap(),
        "moved"
    );
    assert!(book.not_done().is_empty(), "{:?}", book.not_done());
}

/// Automation whose actions depend on what it reads: the ops it runs are a workspace file's,
/// so the same arguments make other changes once the file changed.
fn driven() -> Vec<Value> {
    vec![
        json!({"op": "open-cluster", "alias": "mgmt", "as": "c"}),
        json!({"op": "ops-from", "path": "automation.json"}),
        json!({"op": "fs.write", "path": "notes/run.txt", "data": "moved"}),
    ]
}

impl Site {
    fn automation(&self, ops: &[Value]) {
        let ws = self.dir.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(ws.join("automation.json"), json!(ops).to_string()).unwrap();
    }
}

#[tokio::test]
async fn an_unplanned_mutation_is_denied_before_the_server_sees_it() {
    let s = site().await;
    let planned = [
        json!({"op": "k8s.apply", "cluster": "c", "manifest": cm("two", "new")}),
        patch("patched"),
    ];
    s.automation(&planned);
    let path = s.approved_plan(&driven()).await;
    assert_eq!(PlanFile::load(&path).unwrap().mutations.len(), 3);
    // What the automation reads now makes it patch otherwise and create another object.
    s.automation(&[
        planned[0].clone(),
        patch("patched-differently"),
        json!({"op": "k8s.create", "cluster": "c", "manifest": cm("three", "x")}),
    ]);
    let book = s.enforcing(&path);
    let out = s.run(&book, false).script(json!(driven())).await.unwrap();
    let inner = ok(&out[1]).as_array().unwrap().clone();
    ok(&inner[0]); // the planned apply
    for denied in [&inner[1], &inner[2]] {
        assert_eq!(err_kind(denied), "denied", "{denied}");
        let m = err_message(denied);
        assert!(
            m.contains(&format!("not in the approved plan {}", path.display())),
            "{m}"
        );
        assert!(m.contains("make a new plan"), "{m}");
    }
    assert!(
        err_message(&inner[1]).contains("another body"),
        "{}",
        err_message(&inner[1])
    );
    ok(&out[2]); // the planned write
    // Nothing unplanned reached the server.
    assert_eq!(s.settings()["data"]["k"], "v1");
    assert!(!s.exists("three"));
    assert!(s.exists("two"));
    // Each denial is in the trail, decided by the approved plan.
    let denials: Vec<Value> = s.trail().into_iter().filter(|r| r["decision"] == "deny").collect();
    assert_eq!(denials.len(), 2, "{denials:?}");
    assert!(denials.iter().all(|d| d["policies"] == json!(["approved-plan"])));
    // What the plan held and did not happen: the planned patch.
    let not_done = book.not_done();
    assert_eq!(not_done.len(), 1, "{not_done:?}");
    assert!(
        not_done[0].starts_with("k8s:patch k8s mgmt:v1/ConfigMap team-a/settings"),
        "{not_done:?}"
    );

    // A new plan of what the automation does now, approved, applies.
    let path = s.approved_plan(&driven()).await;
    let book = s.enforcing(&path);
    let out = s.run(&book, false).script(json!(driven())).await.unwrap();
    for r in ok(&out[1]).as_array().unwrap() {
        ok(r);
    }
    assert_eq!(s.settings()["data"]["k"], "patched-differently");
    assert!(s.exists("three"));
    assert!(book.not_done().is_empty(), "{:?}", book.not_done());
}

#[tokio::test]
async fn a_plan_whose_objects_are_new_or_gone_is_refused_before_anything_runs() {
    let s = site().await;
    let path = s.approved_plan(&ops()).await;
    let store = s.sim.store();
    store
        .create(
            &registry::CONFIG_MAP,
            Some("team-a"),
            cm("newcomer", "x"),
            &WriteOptions::default(),
        )
        .unwrap();
    // A changed value of an object it read is not staleness (the mutations are checked).
    store
        .patch(
            &registry::CONFIG_MAP,
            Some("team-a"),
            "settings",
            &Patch::Merge(json!({"data": {"other": "y"}})),
            &WriteOptions::default(),
        )
        .unwrap();
    let err = s
        .run(&s.enforcing(&path), false)
        .script(json!(ops()))
        .await
        .unwrap_err();
    let failure = err.downcast_ref::<RunFailure>().unwrap();
    assert!(matches!(failure, RunFailure::Plan(_)), "{failure:?}");
    let m = failure.to_string();
    assert!(m.contains("the cluster changed since the plan"), "{m}");
    assert!(m.contains("k8s mgmt:v1/ConfigMap team-a/newcomer is new"), "{m}");
    assert!(!m.contains("settings"), "{m}");
    assert!(m.contains("Make a new plan"), "{m}");
    assert!(!s.exists("two"), "nothing ran");
    // Gone is stale too.
    store
        .delete(&registry::CONFIG_MAP, Some("team-a"), "newcomer", &Default::default())
        .unwrap();
    store
        .delete(&registry::CONFIG_MAP, Some("team-a"), "settings", &Default::default())
        .unwrap();
    let err = s
        .run(&s.enforcing(&path), false)
        .script(json!(ops()))
        .await
        .unwrap_err();
    let m = err.to_string();
    assert!(m.contains("k8s mgmt:v1/ConfigMap team-a/settings is gone"), "{m}");
}

#[tokio::test]
async fn a_plan_is_refused_for_another_run_before_anything_runs() {
    let s = site().await;
    let path = s.approved_plan(&ops()).await;
    let mut other = s.run(&s.enforcing(&path), false);
    other.config.params.insert("zone_id".into(), "Z2".into());
    let err = other.script(json!(ops())).await.unwrap_err();
    let failure = err.downcast_ref::<RunFailure>().unwrap();
    assert!(matches!(failure, RunFailure::Plan(_)), "{failure:?}");
    let m = failure.to_string();
    assert!(m.contains("made for another run") && m.contains("zone_id=Z2"), "{m}");
    assert!(!s.exists("two"), "nothing ran");
    // Another policy is another run too, even one that only adds a grant.
    let policy = s.dir.path().join("wider.cedar");
    let text = std::fs::read_to_string(ferry_tests::fixture("test-guest.cedar")).unwrap();
    std::fs::write(
        &policy,
        format!("{text}\npermit (principal, action == Ferry::Action::\"k8s:open\", resource);\n"),
    )
    .unwrap();
    let mut other = s.run(&s.enforcing(&path), false);
    other.policy = policy;
    let err = other.script(json!(ops())).await.unwrap_err();
    assert!(err.to_string().contains("policy sha256"), "{err}");
}

/// Each phase of the stock guest, planned against the real state, approved and applied at
/// once (`Drill::phase_approved`, what `ferry drill --approved-plans` runs): no unplanned
/// mutation, every planned one happens, and the migration verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_phase_of_a_migration_is_planned_approved_and_applied() {
    use ferry_dr::phases::{Phase, PhaseArgs};
    let drill = ferry_tests::dr::drill(ferry_drill::basic_scenario(), 20.0).await;
    for phase in [Phase::Backup, Phase::Restore, Phase::Teardown, Phase::Finish] {
        let run = drill.phase_approved(phase, &PhaseArgs::default()).await.unwrap();
        assert!(run.succeeded(), "{}", run.to_line());
        assert!(!run.plan.mutations.is_empty(), "{phase}: the plan holds no change");
        // The file on disk is the approved plan.
        let key = drill.dr_options().audit_key.unwrap();
        assert_eq!(PlanFile::load_approved(&run.path, Some(&key)).unwrap().plan, run.plan);
    }
    let checks = drill.verify().await;
    assert!(checks.passed(), "{}", checks.to_text());
    drill.shutdown().await;
}

/// `ferry abort` under a plan: the source returned to service exactly as reviewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_is_planned_approved_and_applied() {
    use ferry_dr::phases::{Phase, PhaseArgs};
    let drill = ferry_tests::dr::drill(ferry_drill::basic_scenario(), 20.0).await;
    let backup = drill.phase(Phase::Backup, &PhaseArgs::default()).await.unwrap();
    assert!(backup.succeeded(), "{}", backup.to_text());
    let run = drill.phase_approved(Phase::Abort, &PhaseArgs::default()).await.unwrap();
    assert!(run.succeeded(), "{}", run.to_line());
    let actions: Vec<&str> = run.plan.mutations.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"k8s:scale") && actions.contains(&"k8s:patch") && actions.contains(&"k8s:apply"),
        "{actions:?}"
    );
    assert_eq!(drill.marker_state().as_deref(), Some("aborted"));
    let hc = drill
        .env()
        .source()
        .sim
        .store()
        .get(&registry::HOSTED_CLUSTER, Some("clusters"), "demo-one")
        .unwrap();
    assert!(hc["spec"]["pausedUntil"].is_null(), "{hc}");
    drill.shutdown().await;
}

/// A cluster that changed between plan and apply (a new Secret in the control plane's
/// namespace, a NodePool deleted) stops the apply before anything runs, naming what changed;
/// a new plan then applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_cluster_stops_the_apply_and_a_new_plan_applies() {
    use ferry_dr::phases::{DrOptions, Phase, PhaseArgs};
    let mut scenario = ferry_drill::basic_scenario();
    scenario.node_pools.push(ferry_sim::hypershift::scenario::NodePoolSpec {
        name: "demo-one-extra".into(),
        replicas: 1,
        instance_type: "m5.large".into(),
        auto_repair: false,
        machine_health_check_timeout: None,
    });
    let drill = ferry_tests::dr::drill(scenario, 20.0).await;
    let key = drill.dr_options().audit_key.clone().unwrap();
    let hcp_ns = drill.env().hcp_namespace();
    let store = drill.env().source().sim.store();
    let plan = |name: &'static str| {
        let drill = &drill;
        let key = key.clone();
        async move {
            let book = Arc::new(PlanBook::recording());
            let opts = DrOptions {
                plan: true,
                plan_book: Some(book.clone()),
                ..drill.dr_options()
            };
            let r = drill
                .phase_with(Phase::Backup, &PhaseArgs::default(), &opts)
                .await
                .unwrap();
            assert!(r.succeeded(), "{}", r.to_text());
            let mut plan = book.recorded().unwrap();
            plan.approve(&key, None, "now".into());
            let path = drill.dir().join(name);
            plan.save(&path).unwrap();
            path
        }
    };
    let apply = |path: std::path::PathBuf| {
        let drill = &drill;
        let key = key.clone();
        async move {
            let book = Arc::new(PlanBook::enforcing(PlanFile::load_approved(&path, Some(&key)).unwrap()));
            let opts = DrOptions {
                plan_book: Some(book.clone()),
                ..drill.dr_options()
            };
            (
                drill.phase_with(Phase::Backup, &PhaseArgs::default(), &opts).await,
                book,
            )
        }
    };
    let unpaused = |why: &str| {
        let hc = store
            .get(&registry::HOSTED_CLUSTER, Some("clusters"), "demo-one")
            .unwrap();
        assert!(hc["spec"]["pausedUntil"].is_null(), "{why}: nothing ran: {hc}");
    };

    let first = plan("first.plan.json").await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "late-secret", "namespace": hcp_ns},
                        "data": {"k": "dg=="}});
    store
        .create(&registry::SECRET, Some(&hcp_ns), secret, &WriteOptions::default())
        .unwrap();
    let (result, _) = apply(first.clone()).await;
    let m = result.unwrap_err().to_string();
    assert!(m.contains("the cluster changed since the plan"), "{m}");
    assert!(
        m.contains(&format!("k8s source:v1/Secret {hcp_ns}/late-secret is new")),
        "{m}"
    );
    assert!(m.contains("Make a new plan"), "{m}");
    unpaused("a new Secret");

    let second = plan("second.plan.json").await;
    store
        .patch(
            &registry::NODE_POOL,
            Some("clusters"),
            "demo-one-extra",
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            &WriteOptions::default(),
        )
        .unwrap();
    store
        .delete(
            &registry::NODE_POOL,
            Some("clusters"),
            "demo-one-extra",
            &Default::default(),
        )
        .unwrap();
    let (result, _) = apply(second).await;
    let m = result.unwrap_err().to_string();
    assert!(
        m.contains("k8s source:hypershift.openshift.io/v1beta1/NodePool clusters/demo-one-extra is gone"),
        "{m}"
    );
    unpaused("a deleted NodePool");

    let third = plan("third.plan.json").await;
    let (result, book) = apply(third).await;
    let report = result.unwrap();
    assert!(report.succeeded(), "{}", report.to_text());
    assert!(book.not_done().is_empty(), "{:?}", book.not_done());
    drill.shutdown().await;
}

/// S3 and Route53 under a plan, against moto: a put, a presign and a record change are held
/// in the plan with their own words, the plan run sends none of them, and the apply makes them.
#[tokio::test]
async fn s3_puts_presigns_and_route53_changes_are_planned_and_applied() {
    let moto = ferry_sim::services::MotoServer::start()
        .await
        .expect("moto_server must be installed (see .ci/setup)");
    let s3 = ferry_tests::aws::s3(&moto.url()).await;
    s3.create_bucket().bucket("ferry-test").send().await.unwrap();
    let r53 = ferry_tests::aws::route53(&moto.url()).await;
    let zone_id = ferry_tests::aws::hosted_zone(&r53, "example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::from_bytes(vec![9; 32]).unwrap();
    let mut config = RunConfig::default();
    ferry_tests::aws::configure(&mut config, &moto.url());
    let run = |book: &Arc<PlanBook>, plan: bool| GuestRun {
        config: config.clone(),
        plan,
        audit_key: Some(key.clone()),
        plan_book: Some(book.clone()),
        options: ferry::runtime::run::RunOptions {
            cache_dir: None,
            clients: ferry_tests::aws::clients(),
            ..Default::default()
        },
        ..Default::default()
    };
    let ops = json!([
        {"op": "open-bucket", "bucket": "ferry-test", "as": "b"},
        {"op": "s3.put", "bucket": "b", "key": "allowed/state.json", "data": "{\"a\":1}"},
        {"op": "s3.presign", "bucket": "b", "key": "allowed/state.json", "expires": 60},
        {"op": "open-zone", "zone": zone_id, "as": "z"},
        {"op": "dns.change", "zone": "z", "changes": [
            {"action": "upsert", "name": "api.team-a.example.com", "type": "A", "ttl": 60, "values": ["10.0.0.1"]}
        ]}
    ]);
    let records = || async {
        r53.list_resource_record_sets()
            .hosted_zone_id(&zone_id)
            .send()
            .await
            .unwrap()
            .resource_record_sets()
            .iter()
            .any(|r| r.name().starts_with("api.team-a"))
    };
    let stored = || async {
        s3.head_object()
            .bucket("ferry-test")
            .key("allowed/state.json")
            .send()
            .await
            .is_ok()
    };

    let book = Arc::new(PlanBook::recording());
    for r in run(&book, true).script(ops.clone()).await.unwrap() {
        ok(&r);
    }
    assert!(!stored().await && !records().await, "a plan sends no write");
    let mut plan = book.recorded().unwrap();
    let entries: Vec<(&str, &str)> = plan
        .mutations
        .iter()
        .map(|e| (e.action.as_str(), e.change.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("objects:put", "put 7 bytes"),
            ("objects:presign", "presign GET for 60 s"),
            ("dns:change", "UPSERT ttl 60 values 10.0.0.1"),
        ]
    );
    assert_eq!(plan.mutations[0].target, "s3://ferry-test/allowed/state.json");
    assert!(
        plan.mutations[2].target.ends_with("A api.team-a.example.com"),
        "{}",
        plan.mutations[2].target
    );
    plan.approve(&key, None, "now".into());
    let path = dir.path().join("plan.json");
    plan.save(&path).unwrap();

    let book = Arc::new(PlanBook::enforcing(PlanFile::load_approved(&path, Some(&key)).unwrap()));
    for r in run(&book, false).script(ops).await.unwrap() {
        ok(&r);
    }
    assert!(stored().await && records().await, "the apply made them");
    assert!(book.not_done().is_empty(), "{:?}", book.not_done());
}
