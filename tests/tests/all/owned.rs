//! The hosted clusters of a namespace share it, and the stock policy grants only what the
//! moved one owns there (`Ferry::Owner`, resolved by ferry-dr before the run). A guest that
//! tries its siblings' Secrets, ConfigMaps and NodePools under the stock policy is refused
//! each time, before any request reaches the API server, with a message naming the owner.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use ferry::capabilities::Clients;
use ferry::runtime::run::RunOptions;
use ferry_sim::kube::registry;
use ferry_tests::{GuestRun, err_kind, err_message, ok};
use serde_json::{Value, json};

/// The stock policy, for the test guest in the stock guest's place.
fn stock_policy_for_test_guest(dir: &std::path::Path) -> std::path::PathBuf {
    let text = ferry_dr::stock::policy_text().replace(
        &format!("Ferry::Guest::\"{}\"", ferry_dr::stock::GUEST_NAME),
        "Ferry::Guest::\"test-guest\"",
    );
    let path = dir.join("stock.cedar");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_under_the_stock_policy_reaches_none_of_its_siblings_objects() {
    let mut scenario = ferry_drill::basic_scenario();
    // `demo-one-x` is named like one of demo-one's objects: `demo-one-x-pull-secret` starts
    // with `demo-one-` and is still the sibling's.
    scenario.other_hosted_clusters = vec!["neighbour".into(), "demo-one-x".into()];
    let drill = ferry_tests::dr::drill(scenario, 20.0).await;
    let hc = drill.env().scenario.hosted_cluster.clone();
    let ns = hc.namespace.clone();
    let store = drill.env().source().sim.store();
    // A sibling's NodePool beside demo-one's.
    let mut pool = store.get(&registry::NODE_POOL, Some(&ns), "demo-one-workers").unwrap();
    pool = ferry_sim::hypershift::environment::portable(&pool);
    pool["metadata"]["name"] = json!("demo-one-x-workers");
    pool["spec"]["clusterName"] = json!("demo-one-x");
    store
        .create(
            &registry::NODE_POOL,
            Some(&ns),
            pool,
            &ferry_sim::WriteOptions::default(),
        )
        .unwrap();

    let config = drill.run_config().clone();
    let source = config.params["source"].clone();
    let clients = Clients::with_aws_credentials(drill.credentials());
    let ownership = ferry_dr::owned::resolve(&config, &clients, &source, false, None, None)
        .await
        .unwrap();
    let names = |kind: &str, group: &str| ownership.names(&source, group, kind, &ns);
    // Referenced (pull secret, SSH key, encryption key) or named after it (the operator's
    // admin kubeconfig); none of demo-one-x's, although they start with `demo-one-` too.
    let own_secrets = [
        "demo-one-admin-kubeconfig",
        "demo-one-etcd-encryption-key",
        "demo-one-pull-secret",
        "demo-one-ssh-key",
    ];
    assert_eq!(names("Secret", ""), own_secrets);
    assert_eq!(names("ConfigMap", ""), ["demo-one-ca-bundle", "ferry-dr-demo-one"]);
    assert_eq!(names("NodePool", "hypershift.openshift.io"), ["demo-one-workers"]);

    // What the siblings hold, as the server has it before the guest runs.
    let sibling_objects = [
        (&registry::SECRET, "demo-one-x-pull-secret"),
        (&registry::SECRET, "neighbour-pull-secret"),
        (&registry::CONFIG_MAP, "demo-one-x-ca-bundle"),
        (&registry::NODE_POOL, "demo-one-x-workers"),
    ];
    let versions = || -> Vec<Value> {
        sibling_objects
            .iter()
            .map(|(kind, name)| store.get(kind, Some(&ns), name).unwrap()["metadata"]["resourceVersion"].clone())
            .collect()
    };
    // The controllers reconcile the NodePool just created (its status): let them finish, so
    // that a change from here on is the guest's.
    drill.env().quiesce(std::time::Duration::from_secs(30)).await;
    let before = versions();

    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // One op on one object: the test guest reads the object's fields from the op itself.
    let on = |op: &str, api_version: &str, kind: &str, name: &str, extra: Value| {
        let mut o =
            json!({"op": op, "cluster": "s", "apiVersion": api_version, "kind": kind, "namespace": ns, "name": name});
        if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
            o.extend(extra.clone());
        }
        o
    };
    let secret = |op: &str, name: &str| on(op, "v1", "Secret", name, json!({}));
    let np = "hypershift.openshift.io/v1beta1";
    let label = json!({"patch": {"metadata": {"labels": {"x": "y"}}}});
    let ops = json!([
        { "op": "open-cluster", "alias": source, "as": "s" },
        secret("k8s.get", "demo-one-pull-secret"),
        { "op": "k8s.owned-names", "cluster": "s", "group": "", "kind": "Secret", "namespace": ns },
        secret("k8s.get", "demo-one-x-pull-secret"),
        secret("k8s.get", "neighbour-pull-secret"),
        { "op": "k8s.list", "cluster": "s", "apiVersion": "v1", "kind": "Secret", "namespace": ns },
        secret("k8s.delete", "neighbour-pull-secret"),
        on("k8s.patch", "v1", "ConfigMap", "demo-one-x-ca-bundle", label.clone()),
        on("k8s.patch", np, "NodePool", "demo-one-x-workers", json!({"patch": {"spec": {"replicas": 0}}})),
        on("k8s.delete", np, "NodePool", "demo-one-x-workers", json!({})),
        on("k8s.patch", np, "NodePool", "demo-one-workers", json!({"patch": {"metadata": {"labels": {"x": "y"}}}, "dryRun": true})),
    ]);
    let out = GuestRun {
        config,
        policy: stock_policy_for_test_guest(dir.path()),
        ownership: ownership.clone(),
        audit: Some(audit.clone()),
        options: RunOptions {
            cache_dir: None,
            clients,
            ..Default::default()
        },
        ..Default::default()
    }
    .script(ops)
    .await
    .unwrap();

    assert_eq!(ok(&out[1])["metadata"]["name"], "demo-one-pull-secret");
    assert_eq!(ok(&out[2]), &json!(own_secrets));
    for (i, what) in [
        (3, "get the look-alike sibling's Secret"),
        (4, "get a sibling's Secret"),
        (6, "delete a sibling's Secret"),
        (7, "patch a sibling's ConfigMap"),
        (8, "patch a sibling's NodePool"),
        (9, "delete a sibling's NodePool"),
    ] {
        assert_eq!(err_kind(&out[i]), "denied", "{what}: {}", out[i]);
        assert!(
            err_message(&out[i]).contains("not among the objects ferry resolved as demo-one's"),
            "{what}: {}",
            out[i]
        );
    }
    // Listing Secrets of the shared namespace would return the siblings': never granted.
    assert_eq!(err_kind(&out[5]), "denied", "{}", out[5]);
    // Its own NodePool is reachable (a dry run: nothing changes).
    assert_eq!(ok(&out[10])["metadata"]["name"], "demo-one-workers");
    assert_eq!(versions(), before, "a sibling's object changed");

    // The trail shows the set the run was given, once, before anything ran.
    let trail = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<Value> = trail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let owned: Vec<&Value> = records
        .iter()
        .filter(|r| r.to_string().contains("\"ownership\""))
        .collect();
    assert_eq!(owned.len(), 1, "{trail}");
    let text = owned[0].to_string();
    assert!(
        text.contains("demo-one-pull-secret") && !text.contains("neighbour-pull-secret"),
        "{text}"
    );
}

/// Restore runs before the destination has the HostedCluster: what it may write in the shared
/// namespace comes from the backup's signed index, and an index changed in the bucket (here: a
/// sibling's Secret added to it, the signature left as it was) grants nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_the_hosted_cluster_is_not_yet_ownership_comes_from_the_signed_index() {
    let drill = ferry_tests::dr::drill(ferry_drill::basic_scenario(), 20.0).await;
    let report = drill
        .phase(ferry_dr::phases::Phase::Backup, &Default::default())
        .await
        .unwrap();
    assert!(report.succeeded(), "{}", report.to_text());
    let config = drill.run_config().clone();
    let destination = config.params["destination"].clone();
    let clients = Clients::with_aws_credentials(drill.credentials());
    let key = drill.dr_options().audit_key;
    let ownership = ferry_dr::owned::resolve(&config, &clients, &destination, true, None, key.as_ref())
        .await
        .unwrap();
    let ns = &drill.env().scenario.hosted_cluster.namespace;
    let names = |kind: &str, group: &str| ownership.names(&destination, group, kind, ns);
    assert_eq!(
        names("Secret", ""),
        [
            "demo-one-admin-kubeconfig",
            "demo-one-etcd-encryption-key",
            "demo-one-pull-secret",
            "demo-one-ssh-key"
        ]
    );
    assert_eq!(names("ConfigMap", ""), ["demo-one-ca-bundle", "ferry-dr-demo-one"]);
    assert_eq!(names("NodePool", "hypershift.openshift.io"), ["demo-one-workers"]);

    // The index rewritten in place with a sibling's Secret added, its metadata (and so its
    // seal) kept.
    let s3 = drill.s3_client().await;
    let listed = s3
        .list_objects_v2()
        .bucket(drill.bucket())
        .prefix("hosted-clusters/clusters/demo-one/")
        .send()
        .await
        .unwrap();
    let index_key = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .find(|k| k.ends_with("/index.json"))
        .unwrap()
        .to_string();
    let got = s3
        .get_object()
        .bucket(drill.bucket())
        .key(&index_key)
        .send()
        .await
        .unwrap();
    let metadata = got.metadata().cloned().unwrap_or_default();
    let mut index: Value = serde_json::from_slice(&got.body.collect().await.unwrap().into_bytes()).unwrap();
    let mut stolen = index["files"][0].clone();
    stolen["kind"] = json!("Secret");
    stolen["api_version"] = json!("v1");
    stolen["namespace"] = json!(ns);
    stolen["name"] = json!("neighbour-pull-secret");
    index["files"].as_array_mut().unwrap().push(stolen);
    s3.put_object()
        .bucket(drill.bucket())
        .key(&index_key)
        .set_metadata(Some(metadata.into_iter().filter(|(k, _)| k != "sha256").collect()))
        .body(serde_json::to_vec(&index).unwrap().into())
        .send()
        .await
        .unwrap();
    // Refused, the index grants nothing: only the marker is left (the guest then stops on the
    // same seal, `migrate::an_index_changed_after_backup_stops_restore_and_teardown`).
    let left = ferry_dr::owned::resolve(&config, &clients, &destination, true, None, key.as_ref())
        .await
        .unwrap();
    let names = |kind: &str, group: &str| left.names(&destination, group, kind, ns);
    assert!(names("Secret", "").is_empty(), "{left:?}");
    assert!(names("NodePool", "hypershift.openshift.io").is_empty(), "{left:?}");
    assert_eq!(names("ConfigMap", ""), ["ferry-dr-demo-one"]);
}
