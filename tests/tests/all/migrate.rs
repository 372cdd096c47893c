//! The stock disaster-recovery guest end to end: `ferry migrate` moves a
//! hosted cluster between two simulated management clusters, with real etcd,
//! a signature-checking S3, moto's Route53 and external-dns, under the stock
//! policy. Every test checks the outcome with the drill's verification
//! (etcd keys read back from the restored etcd, DNS owned by the
//! destination, the source clean except the S3 backup, no operator deletion
//! flow against the migrated cluster, no denied call in the audit trail).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::time::Duration;

use ferry_dr::phases::{MigrateOptions, Phase, PhaseArgs};
use ferry_drill::{Drill, DrillReport};
use ferry_sim::hypershift::scenario::Scenario;
use ferry_sim::kube::registry;
use ferry_sim::kube::store::WriteOptions;
use ferry_sim::{Patch, Store};
use ferry_tests::dr::guest_failure;
use serde_json::json;

use ferry_dr::stock::steps as steps_of;

// On the profile whose etcd-init restores members with their identity: at the pinned commit
// the stock guest refuses to move a HighlyAvailable cluster (see `installed.rs`).
const HA_THREE_POOLS: &str = r#"
management_clusters = ["source", "destination"]
other_hosted_clusters = ["prod-ha-neighbour"]
hypershift = "3ee9615+pr9069"
carry_secrets = ["prod-ha-extra-carry"]

[hosted_cluster]
namespace = "clusters"
name = "prod-ha"
availability_policy = "HighlyAvailable"
external_dns_domain = "guest.example.com"

[etcd_keys]
"/kubernetes.io/configmaps/default/ferry-marker" = "from-source-ha"
"/kubernetes.io/secrets/app/token" = "s3cr3t"

[[node_pools]]
name = "prod-ha-a"
replicas = 2

[[node_pools]]
name = "prod-ha-b"
replicas = 1

[[node_pools]]
name = "prod-ha-c"
replicas = 3
"#;

async fn drill(scenario: Scenario, clock_scale: f64) -> Drill {
    ferry_tests::dr::drill(scenario, clock_scale).await
}

fn basic() -> Scenario {
    ferry_drill::basic_scenario()
}

fn assert_verified(report: &DrillReport) {
    assert!(report.passed(), "drill verification failed:\n{}", report.to_text());
}

fn args(extra: &[(&str, &str)]) -> PhaseArgs {
    PhaseArgs {
        extra: extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..PhaseArgs::default()
    }
}

fn hcp_ns(drill: &Drill) -> String {
    drill.env().hcp_namespace()
}

fn dest_store(drill: &Drill) -> &Store {
    drill.env().destination().unwrap().sim.store()
}

fn source_store(drill: &Drill) -> &Store {
    drill.env().source().sim.store()
}

/// The S3 key of backup `id`'s index (the guest's layout: prefix, namespace, name, id).
fn index_key(drill: &Drill, id: &str) -> String {
    let hc = &drill.env().scenario.hosted_cluster;
    format!("{}/{}/{}/{id}/index.json", ferry_drill::PREFIX, hc.namespace, hc.name)
}

/// Nothing of the hosted cluster exists on the destination.
fn assert_destination_untouched(drill: &Drill) {
    let hc = &drill.env().scenario.hosted_cluster;
    let store = dest_store(drill);
    assert!(
        store
            .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
            .is_err()
    );
    assert!(store.get(&registry::NAMESPACE, None, &hcp_ns(drill)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_migration_then_every_phase_rerun_is_a_no_op() {
    let drill = drill(basic(), 20.0).await;
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{report:#?}");
    assert_verified(&drill.verify().await);

    // Each phase, run again after the migration, changes nothing.
    for phase in Phase::ALL {
        let r = drill.phase(phase, &PhaseArgs::default()).await.unwrap();
        assert!(r.succeeded(), "{}", r.to_text());
        assert!(
            r.already_done(),
            "re-running {phase} changed something:\n{}",
            r.to_text()
        );
    }
    assert_verified(&drill.verify().await);
    drill.shutdown().await;
}

/// An SRE whose terminal died runs the same command again, without `--from`: ferry reads where
/// the migration stands (the marker, the destination's notes, what is left of the source) and
/// carries on from the first phase not done, here after stops in restore and in teardown.
/// Once everything is done, the plain command changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_rerun_resumes_where_the_migration_stopped() {
    let drill = drill(basic(), 20.0).await;
    let stop = |step: &str| MigrateOptions {
        args: PhaseArgs {
            stop_after: Some(step.to_string()),
            ..PhaseArgs::default()
        },
        ..MigrateOptions::default()
    };
    // Stopped in restore, the HostedCluster already on the destination.
    let first = drill.migrate_with(&stop("wait-nodes")).await;
    assert_eq!(first.stopped, Some(Phase::Restore), "{}", first.message());
    // Stopped again in teardown (restore resumes where it was, then teardown stops).
    let second = drill.migrate_with(&stop("hcp-namespace")).await;
    assert_eq!(
        second.resumed.as_ref().and_then(|r| r.at),
        Some(Phase::Restore),
        "{second:#?}"
    );
    assert_eq!(second.stopped, Some(Phase::Teardown), "{}", second.message());
    let third = drill.migrate().await;
    assert!(third.succeeded(), "{}", third.message());
    let resumed = third.resumed.clone().unwrap();
    assert_eq!(resumed.at, Some(Phase::Teardown), "{resumed:?}");
    assert!(resumed.why.contains("still holds"), "{resumed:?}");
    assert_eq!(third.completed, [Phase::Teardown, Phase::Finish]);
    assert_verified(&drill.verify().await);
    let again = drill.migrate().await;
    assert!(again.succeeded(), "{}", again.message());
    assert!(again.phases.is_empty(), "{again:#?}");
    assert!(again.message().contains("nothing left to do"), "{}", again.message());
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highly_available_with_three_node_pools_reusing_the_nodes() {
    let drill = drill(Scenario::from_toml(HA_THREE_POOLS).unwrap(), 20.0).await;
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{report:#?}");
    assert_verified(&drill.verify().await);
    // All six nodes came back, on the destination's control plane.
    let finish = drill.phase(Phase::Finish, &PhaseArgs::default()).await.unwrap();
    let nodes = &finish.summary().unwrap()["nodes"];
    assert_eq!(nodes["ready"], 6, "{nodes}");
    assert_eq!(nodes["expected"], 6, "{nodes}");
    // The destination got the CAPI/AWS machine objects (the reuse variant).
    let machines = dest_store(&drill)
        .list(&registry::AWS_MACHINE, Some(&hcp_ns(&drill)), &Default::default())
        .unwrap();
    assert_eq!(machines.items.len(), 6);
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_only_leaves_the_machines_behind() {
    let drill = drill(basic(), 20.0).await;
    let mopts = MigrateOptions {
        args: args(&[("nodes", "control-plane-only")]),
        ..MigrateOptions::default()
    };
    let report = drill.migrate_with(&mopts).await;
    assert!(report.succeeded(), "{report:#?}");
    assert_verified(&drill.verify().await);
    let machines = dest_store(&drill)
        .list(&registry::AWS_MACHINE, Some(&hcp_ns(&drill)), &Default::default())
        .unwrap();
    assert!(machines.items.is_empty(), "control-plane-only carried machines");
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_phase_resumes_after_stopping_at_each_step() {
    let drill = drill(basic(), 20.0).await;
    for phase in Phase::ALL {
        for step in steps_of(phase) {
            let r = drill
                .phase(
                    phase,
                    &PhaseArgs {
                        stop_after: Some(step.to_string()),
                        ..PhaseArgs::default()
                    },
                )
                .await
                .unwrap();
            assert!(r.succeeded(), "{phase} stopped after {step}:\n{}", r.to_text());
            assert_eq!(r.stopped_after(), Some(*step), "{}", r.to_text());
        }
        let r = drill.phase(phase, &PhaseArgs::default()).await.unwrap();
        assert!(r.succeeded(), "{}", r.to_text());
        let steps: Vec<String> = r.steps().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, steps_of(phase), "the step list of {phase} changed");
    }
    assert_verified(&drill.verify().await);
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_backup_stops_restore_before_any_change() {
    let drill = drill(basic(), 20.0).await;
    let backup = drill.phase(Phase::Backup, &PhaseArgs::default()).await.unwrap();
    assert!(backup.succeeded(), "{}", backup.to_text());
    let summary = backup.summary().unwrap();
    let id = summary["backup_id"].as_str().unwrap().to_string();
    let hc = drill.env().scenario.hosted_cluster.clone();

    // A manifest changed after the backup.
    let backup_dir = drill.run_config().workspace.as_ref().unwrap().dir.clone();
    let file = backup_dir
        .join(&id)
        .join(format!("namespaces/{}/hc-{}.yaml", hc.namespace, hc.name));
    let original = std::fs::read(&file).unwrap();
    let mut tampered = original.clone();
    tampered.extend_from_slice(b"# edited by hand\n");
    std::fs::write(&file, &tampered).unwrap();
    let r = drill.phase(Phase::Restore, &PhaseArgs::default()).await.unwrap();
    let (kind, message) = guest_failure(&r);
    assert_eq!(kind, "invalid", "{message}");
    assert!(
        message.contains("corrupt") && message.contains(&format!("hc-{}.yaml", hc.name)),
        "{message}"
    );
    assert!(message.contains("Nothing was changed"), "{message}");
    assert_destination_untouched(&drill);
    std::fs::write(&file, &original).unwrap();

    // The snapshot replaced in S3 by bytes of the same size, by someone who may use the
    // site's KMS key (without it, the encryption check refuses the object first).
    let key = summary["snapshot"]["key"].as_str().unwrap().to_string();
    let size = summary["snapshot"]["size"].as_u64().unwrap() as usize;
    let s3 = drill.s3_client().await;
    s3.put_object()
        .bucket(drill.bucket())
        .key(&key)
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .ssekms_key_id(ferry_drill::KMS_KEY_ID)
        .body(vec![0x42u8; size].into())
        .send()
        .await
        .unwrap();
    let r = drill.phase(Phase::Restore, &PhaseArgs::default()).await.unwrap();
    let (kind, message) = guest_failure(&r);
    assert_eq!(kind, "invalid", "{message}");
    assert!(message.contains("SHA-256") && message.contains(&key), "{message}");
    assert_destination_untouched(&drill);
    drill.shutdown().await;
}

/// Restore applies and teardown deletes what the backup's index lists, so the index is
/// trusted only as ferry signed it in S3: a local copy that differs is refused (it used to
/// win), and an S3 copy edited with a fresh checksum stops restore and teardown alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_changed_after_backup_stops_restore_and_teardown() {
    let drill = drill(basic(), 20.0).await;
    let backup = drill.phase(Phase::Backup, &PhaseArgs::default()).await.unwrap();
    assert!(backup.succeeded(), "{}", backup.to_text());
    let id = backup.summary().unwrap()["backup_id"].as_str().unwrap().to_string();
    let hc = drill.env().scenario.hosted_cluster.clone();

    // The local copy, edited.
    let local = drill
        .run_config()
        .workspace
        .as_ref()
        .unwrap()
        .dir
        .join(&id)
        .join("index.json");
    let original = std::fs::read(&local).unwrap();
    std::fs::write(&local, [original.as_slice(), b" "].concat()).unwrap();
    let r = drill.phase(Phase::Restore, &PhaseArgs::default()).await.unwrap();
    let (kind, message) = guest_failure(&r);
    assert_eq!(kind, "invalid", "{message}");
    assert!(message.contains("differs from the signed one"), "{message}");
    assert_destination_untouched(&drill);

    // The S3 copy, edited by someone who can write the bucket: the NodePool list emptied,
    // the checksum metadata recomputed, the signature kept. The local folder is gone.
    std::fs::remove_dir_all(local.parent().unwrap()).unwrap();
    let key = index_key(&drill, &id);
    let s3 = drill.s3_client().await;
    let got = s3.get_object().bucket(drill.bucket()).key(&key).send().await.unwrap();
    let mut metadata = got.metadata().cloned().unwrap_or_default();
    let mut index: serde_json::Value = serde_json::from_slice(&got.body.collect().await.unwrap().into_bytes()).unwrap();
    index["node_pools"] = json!([]);
    let edited = serde_json::to_vec_pretty(&index).unwrap();
    metadata.insert(
        "sha256".into(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&edited)),
    );
    s3.put_object()
        .bucket(drill.bucket())
        .key(&key)
        .set_metadata(Some(metadata))
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .ssekms_key_id(ferry_drill::KMS_KEY_ID)
        .body(edited.into())
        .send()
        .await
        .unwrap();
    for phase in [Phase::Restore, Phase::Teardown] {
        let r = drill.phase(phase, &PhaseArgs::default()).await.unwrap();
        let (_, message) = guest_failure(&r);
        assert!(message.contains("does not match its signature"), "{phase}: {message}");
    }
    assert_destination_untouched(&drill);
    assert!(
        source_store(&drill)
            .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
            .is_ok(),
        "teardown deleted the source's HostedCluster on an edited index"
    );
    drill.shutdown().await;
}

/// With the site's opt-in (the parameter and the example policy), teardown deletes the
/// shared namespace only when it holds nothing of any kind the cluster serves: a Role there,
/// a kind the procedure never touches, keeps it and is named; once it is gone, a re-run
/// deletes the namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_namespace_goes_only_when_nothing_of_any_kind_lives_in_it() {
    let mut scenario = basic();
    scenario.other_hosted_clusters.clear();
    let mut drill = drill(scenario, 20.0).await;
    let mut guest = ferry_dr::GuestChoice::stock();
    guest.policy = ferry::runtime::run::PolicySource::Text {
        text: format!(
            "{}\n{}",
            ferry_dr::stock::policy_text(),
            include_str!("../../../policies/examples/delete-empty-hc-namespace.cedar")
        )
        .into(),
        origin: "stock + delete-empty-hc-namespace.cedar".into(),
    };
    drill.set_guest(guest);
    drill
        .run_config_mut()
        .params
        .insert("delete_empty_hc_namespace".into(), "true".into());
    let ns = drill.env().scenario.hosted_cluster.namespace.clone();
    source_store(&drill)
        .create(
            &registry::ROLE,
            Some(&ns),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "metadata": {"name": "site-reader", "namespace": ns}, "rules": []}),
            &WriteOptions::default(),
        )
        .unwrap();
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{}", report.message());
    let text = report
        .phases
        .iter()
        .find_map(|p| match p {
            ferry_dr::phases::PhaseResult::Completed(r) if r.phase == Phase::Teardown => {
                r.summary().map(|s| s.to_string())
            }
            _ => None,
        })
        .unwrap();
    assert!(
        text.contains(&format!("kept namespace {ns}: it still holds Role site-reader")),
        "{text}"
    );
    assert!(source_store(&drill).get(&registry::NAMESPACE, None, &ns).is_ok());

    source_store(&drill)
        .delete(
            &registry::ROLE,
            Some(&ns),
            "site-reader",
            &ferry_sim::DeleteOptions::default(),
        )
        .unwrap();
    let again = drill.phase(Phase::Teardown, &PhaseArgs::default()).await.unwrap();
    assert!(again.succeeded(), "{}", again.to_text());
    let text = again.summary().unwrap().to_string();
    assert!(text.contains(&format!("deleted namespace {ns}")), "{text}");
    drill.shutdown().await;
}

/// With `[backup] encrypt_to`, every file of the local backup folder is an age file (no
/// Secret readable on disk); restore reads them with the identity and refuses, saying what to
/// set, without it; `decrypt_tree` (`ferry backup decrypt`) gives back the plain layout, the
/// same bytes as the S3 copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_backup_is_encrypted_at_rest_and_decrypts_to_the_documented_layout() {
    use ferry::capabilities::workspace::at_rest;
    let mut drill = drill(basic(), 20.0).await;
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("backup.agekey");
    let recipient = at_rest::keygen(&identity).unwrap();
    let ws = drill.run_config_mut().workspace.as_mut().unwrap();
    ws.encrypt_to = vec![recipient];
    let dir = ws.dir.clone();
    let backup = drill.phase(Phase::Backup, &PhaseArgs::default()).await.unwrap();
    assert!(backup.succeeded(), "{}", backup.to_text());
    let id = backup.summary().unwrap()["backup_id"].as_str().unwrap().to_string();
    let mut files = 0;
    let mut stack = vec![dir.join(&id)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let data = std::fs::read(e.path()).unwrap();
                assert!(
                    at_rest::is_encrypted(&data),
                    "{} is stored in the clear",
                    e.path().display()
                );
                assert!(!data.windows(5).any(|w| w == b"kind:"), "{}", e.path().display());
                files += 1;
            }
        }
    }
    assert!(files > 5, "only {files} files");

    // Restore without the identity: refused before any change, saying what to set.
    let r = drill.phase(Phase::Restore, &PhaseArgs::default()).await.unwrap();
    let (_, message) = guest_failure(&r);
    assert!(
        message.contains("is encrypted (age)") && message.contains("age_identity"),
        "{message}"
    );
    assert_destination_untouched(&drill);

    drill.run_config_mut().workspace.as_mut().unwrap().identity = Some(identity.clone());
    let r = drill.phase(Phase::Restore, &PhaseArgs::default()).await.unwrap();
    assert!(r.succeeded(), "{}", r.to_text());

    let plain = keys.path().join("plain");
    let summary = at_rest::decrypt_tree(&dir, &plain, &identity).unwrap();
    assert_eq!(summary.decrypted, files);
    let key = index_key(&drill, &id);
    let s3 = drill.s3_client().await;
    let in_s3 = s3.get_object().bucket(drill.bucket()).key(&key).send().await.unwrap();
    let in_s3 = in_s3.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        std::fs::read(plain.join(&id).join("index.json")).unwrap(),
        in_s3.to_vec()
    );
    drill.shutdown().await;
}

/// The machine that took the backup is gone: restore, teardown and finish need only the
/// site config and S3. After backup, the local backup folder and the audit trail are
/// deleted, and the migration goes on from `restore` with an empty backup folder elsewhere;
/// the end state is verified (the manifests come from S3, checked against the signed index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_resumes_from_another_machine_with_only_s3() {
    let mut drill = drill(basic(), 20.0).await;
    let backup = drill.phase(Phase::Backup, &PhaseArgs::default()).await.unwrap();
    assert!(backup.succeeded(), "{}", backup.to_text());
    let first_machine = drill.run_config().workspace.as_ref().unwrap().dir.clone();
    std::fs::remove_dir_all(&first_machine).unwrap();
    std::fs::remove_file(drill.audit_path()).unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    drill.run_config_mut().workspace.as_mut().unwrap().dir = elsewhere.path().join("backup");
    let report = drill
        .migrate_with(&MigrateOptions {
            from: Some(Phase::Restore),
            ..MigrateOptions::default()
        })
        .await;
    assert!(report.succeeded(), "{}", report.message());
    assert!(
        !first_machine.exists(),
        "nothing was written where the first machine kept its files"
    );
    assert_verified(&drill.verify().await);
    drill.shutdown().await;
}

/// Two ferries on one hosted cluster do not interleave: of two backups started together,
/// exactly one proceeds and the other is refused naming the holder; a live lease of a ferry
/// elsewhere refuses a phase until `--break-lease`, which the audit trail records; a lease
/// whose holder stopped renewing (killed) is taken over once expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ferry_at_a_time_holds_the_hosted_cluster() {
    let drill = drill(basic(), 20.0).await;
    let no_args = PhaseArgs::default();
    let (a, b) = tokio::join!(
        drill.phase(Phase::Backup, &no_args),
        drill.phase(Phase::Backup, &no_args)
    );
    let refused: Vec<String> = [&a, &b]
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(refused.len(), 1, "exactly one backup proceeds: {a:?} / {b:?}");
    assert!(
        refused[0].contains("another ferry is working on this hosted cluster") && refused[0].contains("held by ferry@"),
        "{}",
        refused[0]
    );
    let done = [a, b].into_iter().find_map(Result::ok).unwrap();
    assert!(done.succeeded(), "{}", done.to_text());

    // Another machine's ferry holds the source's lease and renews it.
    let hc = drill.env().scenario.hosted_cluster.clone();
    let name = ferry_dr::lease::lease_name(&hc.namespace, &hc.name);
    let plant = |renewed: std::time::SystemTime| {
        let t = ferry::audit::humantime_rfc3339(renewed);
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "hypershift"},
            "spec": {"holderIdentity": "ferry@laptop-7 pid 4242", "leaseDurationSeconds": 60,
                     "acquireTime": t, "renewTime": t}});
        let store = source_store(&drill);
        let _ = store.delete(
            &registry::LEASE,
            Some("hypershift"),
            &name,
            &ferry_sim::DeleteOptions::default(),
        );
        store
            .create(&registry::LEASE, Some("hypershift"), lease, &WriteOptions::default())
            .unwrap();
    };
    plant(std::time::SystemTime::now());
    let err = drill
        .phase(Phase::Backup, &PhaseArgs::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("held by ferry@laptop-7 pid 4242") && err.contains("--break-lease"),
        "{err}"
    );
    let opts = ferry_dr::DrOptions {
        break_lease: true,
        ..drill.dr_options()
    };
    let r = drill
        .phase_with(Phase::Backup, &PhaseArgs::default(), &opts)
        .await
        .unwrap();
    assert!(r.succeeded(), "{}", r.to_text());
    let trail = std::fs::read_to_string(drill.audit_path()).unwrap();
    assert!(
        trail.contains("BREAKING the live lease of ferry@laptop-7 pid 4242"),
        "the break is not audited"
    );

    // Killed an hour ago: its lease expired, and is taken over without asking.
    plant(std::time::SystemTime::now() - std::time::Duration::from_secs(3600));
    let r = drill.phase(Phase::Backup, &PhaseArgs::default()).await.unwrap();
    assert!(r.succeeded(), "{}", r.to_text());
    // Released at the end of each phase.
    assert!(
        source_store(&drill)
            .get(&registry::LEASE, Some("hypershift"), &name)
            .is_err()
    );
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_presigned_url_is_detected_and_explained() {
    // Real time: the URL's expiry and the guest's clock must agree.
    let drill = drill(basic(), 1.0).await;
    let backup = drill.phase(Phase::Backup, &PhaseArgs::default()).await.unwrap();
    assert!(backup.succeeded(), "{}", backup.to_text());

    // The destination's HyperShift operator is down while the URL expires.
    let store = dest_store(&drill).clone();
    let set_operator = |replicas: u32| {
        store
            .patch(
                &registry::DEPLOYMENT,
                Some("hypershift"),
                "operator",
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
                &WriteOptions::default(),
            )
            .unwrap();
    };
    set_operator(0);
    let restart = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(3000)).await;
            store
                .patch(
                    &registry::DEPLOYMENT,
                    Some("hypershift"),
                    "operator",
                    &Patch::Merge(json!({"spec": {"replicas": 2}})),
                    &WriteOptions::default(),
                )
                .unwrap();
        })
    };
    let r = drill
        .phase(
            Phase::Restore,
            &args(&[("presign_seconds", "1"), ("restore_timeout_seconds", "60")]),
        )
        .await
        .unwrap();
    restart.await.unwrap();
    let (_, message) = guest_failure(&r);
    assert!(message.contains("expired"), "{message}");
    assert!(message.contains("re-run `ferry restore`"), "{message}");
    let hc = &drill.env().scenario.hosted_cluster;
    let restored = dest_store(&drill)
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    assert_ne!(
        ferry_sim::hypershift::condition_status(&restored, "EtcdSnapshotRestored").as_deref(),
        Some("True")
    );
    // Teardown refuses: the destination is not healthy.
    let t = drill.phase(Phase::Teardown, &PhaseArgs::default()).await.unwrap();
    let (_, message) = guest_failure(&t);
    assert!(message.contains("not verified healthy"), "{message}");
    assert!(
        source_store(&drill)
            .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
            .is_ok()
    );
    drill.shutdown().await;
}

/// The ownership records of `host` (both TXT formats) rewritten to name `owner`, as another
/// management cluster's external-dns would have written them.
async fn own_records(drill: &Drill, host: &str, owner: &str) {
    use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet};
    let r53 = drill.route53();
    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(drill.zone_id())
        .send()
        .await
        .unwrap();
    let (first, rest) = host.split_once('.').unwrap();
    let names = [
        format!("{first}-external-dns.{rest}"),
        format!("cname-{first}-external-dns.{rest}"),
    ];
    let mut changes = Vec::new();
    for set in sets.resource_record_sets() {
        if names.iter().any(|n| n == set.name().trim_end_matches('.')) {
            let value = set.resource_records()[0].value();
            let resource = value.split("external-dns/resource=").nth(1).unwrap_or("\"");
            let new = format!("\"heritage=external-dns,external-dns/owner={owner},external-dns/resource={resource}");
            let rs = ResourceRecordSet::builder()
                .name(set.name())
                .r#type(set.r#type().clone())
                .ttl(set.ttl().unwrap_or(300))
                .resource_records(ResourceRecord::builder().value(new).build().unwrap())
                .build()
                .unwrap();
            changes.push(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(rs)
                    .build()
                    .unwrap(),
            );
        }
    }
    assert_eq!(changes.len(), 2, "{:?}", sets.resource_record_sets());
    r53.change_resource_record_sets()
        .hosted_zone_id(drill.zone_id())
        .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build().unwrap())
        .send()
        .await
        .unwrap();
}

/// The cut-over hands the records over (their ownership TXT records rewritten in one batch)
/// instead of waiting for the source's external-dns to delete them: the names never stop
/// resolving, so no resolver keeps an NXDOMAIN. With the source's external-dns down, the
/// migration completes all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_are_handed_over_without_the_sources_external_dns() {
    let drill = drill(basic(), 20.0).await;
    drill.source_external_dns().unwrap().stop().await;
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{}", report.message());
    assert_verified(&drill.verify().await);
    drill.shutdown().await;
}

/// A record a third external-dns owns (a management cluster the hosted cluster ran on before)
/// is never taken over: the wait for it to go is bounded, and restore stops before teardown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route53_wait_that_times_out_stops_before_teardown() {
    let drill = drill(basic(), 20.0).await;
    let hc = drill.env().scenario.hosted_cluster.clone();
    own_records(
        &drill,
        &format!("api-{}.guest.example.com", hc.name),
        "another-management-cluster",
    )
    .await;
    let mopts = MigrateOptions {
        args: args(&[("dns_timeout_seconds", "30")]),
        ..MigrateOptions::default()
    };
    let report = drill.migrate_with(&mopts).await;
    assert_eq!(report.failed, Some(Phase::Restore), "{report:#?}");
    assert_eq!(report.completed, [Phase::Backup], "{report:#?}");
    let (_, message) = report.failure().unwrap();
    assert!(
        message.contains("restore/dns")
            && message.contains("another owner")
            && message.contains("teardown must not run"),
        "{message}"
    );
    // Nothing destructive happened: the source still has its hosted cluster, paused, and
    // the abort command is offered.
    let hc = &drill.env().scenario.hosted_cluster;
    let source_hc = source_store(&drill)
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    assert_eq!(source_hc["spec"]["pausedUntil"], "true");
    assert!(report.abort_command.is_some(), "{report:#?}");
    drill.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_migration_changes_nothing() {
    let drill = drill(basic(), 20.0).await;
    let routes_before = source_store(&drill)
        .list(&registry::ROUTE, Some(&hcp_ns(&drill)), &Default::default())
        .unwrap()
        .items
        .len();
    assert!(routes_before > 0);
    let opts = ferry_dr::phases::DrOptions {
        plan: true,
        ..drill.dr_options()
    };
    let report = ferry_dr::phases::migrate(drill.run_config(), &opts, &MigrateOptions::default()).await;
    assert!(report.succeeded(), "{report:#?}");
    for phase in &report.phases {
        let ferry_dr::phases::PhaseResult::Completed(r) = phase else {
            panic!("{phase:?}");
        };
        for (step, result) in r.steps() {
            assert!(
                ["planned", "checked", "already", "skipped"].contains(&result.as_str()),
                "{} {step}: {result} in a plan",
                r.phase
            );
        }
    }
    // The source is as it was: not paused, its routes and writers there, no marker.
    let hc = &drill.env().scenario.hosted_cluster;
    let store = source_store(&drill);
    let source_hc = store
        .get(&registry::HOSTED_CLUSTER, Some(&hc.namespace), &hc.name)
        .unwrap();
    assert!(source_hc["spec"].get("pausedUntil").is_none(), "{source_hc}");
    let routes = store
        .list(&registry::ROUTE, Some(&hcp_ns(&drill)), &Default::default())
        .unwrap();
    assert_eq!(routes.items.len(), routes_before);
    let api = store
        .get(&registry::DEPLOYMENT, Some(&hcp_ns(&drill)), "kube-apiserver")
        .unwrap();
    assert_eq!(api["spec"]["replicas"], 1);
    assert!(
        store
            .get(
                &registry::CONFIG_MAP,
                Some(&hc.namespace),
                &format!("ferry-dr-{}", hc.name)
            )
            .is_err()
    );
    assert_destination_untouched(&drill);
    // Nothing was written to the bucket.
    let report = drill.verify().await;
    assert!(!report.check("backup-kept").unwrap().passed, "{}", report.to_text());
    drill.shutdown().await;
}
