//! The k8s capability through the real host against ferry-sim, which
//! kube-rs talks to over HTTP as to any API server: CRUD, patches, scale,
//! dry-run, plan mode, selectors, denials (with no request reaching the
//! server), unreachable clusters, and an etcd snapshot through a pod
//! port-forward.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use ferry::runtime::run::RunOptions;
use ferry_tests::sim_cluster as cluster;
use ferry_tests::{GuestRun, aws, err_kind, err_message, ok};
use serde_json::{Value, json};

fn cm(name: &str, ns: &str, labels: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name, "namespace": ns, "labels": labels }, "data": { "k": "v" } })
}

fn ns(name: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } })
}

#[tokio::test]
async fn crud_patch_scale_and_selectors_through_the_guest() {
    let c = cluster().await;
    // The namespace is created out of band: the policy only grants team-a's contents.
    let seed = json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        { "op": "k8s.create", "cluster": "c", "manifest": ns("team-a") }
    ]);
    let out = GuestRun {
        config: c.config.clone(),
        ..Default::default()
    }
    .script(seed)
    .await
    .unwrap();
    // Creating the namespace object itself is inside Namespace "mgmt/team-a".
    ok(&out[1]);

    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "kube-apiserver", "namespace": "team-a" },
        "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "kas" } },
                  "template": { "metadata": { "labels": { "app": "kas" } }, "spec": { "containers": [{ "name": "kas", "image": "x" }] } } }
    });
    let ops = json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        { "op": "k8s.create", "cluster": "c", "manifest": cm("one", "team-a", json!({ "tier": "a" })) },
        { "op": "k8s.create", "cluster": "c", "manifest": cm("one", "team-a", json!({ "tier": "a" })) },
        { "op": "k8s.apply", "cluster": "c", "manifest": cm("two", "team-a", json!({ "tier": "b" })) },
        { "op": "k8s.list", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "labelSelector": "tier in (a,b)" },
        { "op": "k8s.list", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "labelSelector": "tier!=a" },
        { "op": "k8s.patch", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "one",
          "patchKind": "merge", "patch": { "data": { "k": "patched" } } },
        { "op": "k8s.patch", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "one",
          "patchKind": "json", "patch": [{ "op": "test", "path": "/data/k", "value": "wrong" }, { "op": "remove", "path": "/data" }] },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "one" },
        { "op": "k8s.create", "cluster": "c", "manifest": deployment },
        { "op": "k8s.scale", "cluster": "c", "apiVersion": "apps/v1", "kind": "Deployment", "namespace": "team-a", "name": "kube-apiserver", "replicas": 0 },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "apps/v1", "kind": "Deployment", "namespace": "team-a", "name": "kube-apiserver" },
        { "op": "k8s.delete", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "two", "dryRun": true },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "two" },
        { "op": "k8s.delete", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "two" },
        { "op": "k8s.delete", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "two" },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "two" },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "Gizmo", "namespace": "team-a", "name": "x" },
        { "op": "k8s.create", "cluster": "c", "manifest": { "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "namespace": "team-a" } } },
        { "op": "k8s.patch", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "one",
          "patchKind": "json", "patch": { "op": "remove" } },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "name": "one" }
    ]);
    let out = GuestRun {
        config: c.config.clone(),
        ..Default::default()
    }
    .script(ops)
    .await
    .unwrap();
    assert_eq!(ok(&out[1])["metadata"]["name"], "one");
    assert_eq!(err_kind(&out[2]), "conflict");
    assert_eq!(ok(&out[3])["metadata"]["labels"]["tier"], "b");
    assert_eq!(ok(&out[4]).as_array().unwrap().len(), 2);
    let only_b = ok(&out[5]).as_array().unwrap();
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0]["metadata"]["name"], "two");
    assert_eq!(only_b[0]["kind"], "ConfigMap", "list items carry their kind");
    assert_eq!(ok(&out[6])["data"]["k"], "patched");
    assert_eq!(
        err_kind(&out[7]),
        "conflict",
        "a failed JSON-patch test is a conflict: {}",
        out[7]
    );
    assert_eq!(
        ok(&out[8])["data"]["k"],
        "patched",
        "the failed JSON patch changed nothing"
    );
    assert_eq!(ok(&out[10]), 3, "scale returns the previous replicas");
    assert_eq!(ok(&out[11])["spec"]["replicas"], 0);
    assert_eq!(ok(&out[12]), "deleted");
    assert_eq!(
        ok(&out[13])["metadata"]["name"],
        "two",
        "a dry-run delete keeps the object"
    );
    assert_eq!(ok(&out[14]), "deleted");
    assert_eq!(ok(&out[15]), "absent", "deleting twice is not an error");
    assert_eq!(err_kind(&out[16]), "not-found");
    assert_eq!(err_kind(&out[17]), "not-found");
    assert!(err_message(&out[17]).contains("does not serve"), "{}", out[17]);
    // Bad arguments: no name, a JSON patch that is not a list, no namespace.
    assert_eq!(err_kind(&out[18]), "invalid");
    assert!(err_message(&out[18]).contains("metadata.name"), "{}", out[18]);
    assert_eq!(err_kind(&out[19]), "invalid");
    assert!(err_message(&out[19]).contains("not a JSON patch"), "{}", out[19]);
    assert_eq!(err_kind(&out[20]), "invalid");
    assert!(err_message(&out[20]).contains("namespaced"), "{}", out[20]);
}

#[tokio::test]
async fn denials_happen_before_any_request_reaches_the_server() {
    let c = cluster().await;
    let store = c.sim.store().clone();
    let ops = json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        { "op": "k8s.create", "cluster": "c", "manifest": ns("team-b") },
        { "op": "k8s.create", "cluster": "c", "manifest": cm("x", "team-b", json!({})) },
        { "op": "k8s.create", "cluster": "c", "manifest": ns("team-a") },
        { "op": "k8s.create", "cluster": "c", "manifest": {
            "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "s", "namespace": "team-a" }, "stringData": { "a": "b" } } },
        { "op": "k8s.list", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap" },
        { "op": "open-cluster", "alias": "prod", "as": "p" }
    ]);
    let out = GuestRun {
        config: c.config.clone(),
        ..Default::default()
    }
    .script(ops)
    .await
    .unwrap();
    assert_eq!(err_kind(&out[1]), "denied");
    assert!(err_message(&out[1]).contains("deny by default"), "{}", out[1]);
    assert_eq!(err_kind(&out[2]), "denied");
    ok(&out[3]);
    assert_eq!(err_kind(&out[4]), "denied");
    assert!(err_message(&out[4]).contains("no-secret-writes"), "{}", out[4]);
    assert_eq!(
        err_kind(&out[5]),
        "denied",
        "listing across all namespaces is not granted"
    );
    assert_eq!(err_kind(&out[6]), "denied");
    let namespaces = store
        .list(&ferry_sim::kube::registry::NAMESPACE, None, &Default::default())
        .unwrap();
    let names: Vec<&str> = namespaces
        .items
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    assert!(!names.contains(&"team-b"), "{names:?}");
    assert!(
        store
            .get(&ferry_sim::kube::registry::SECRET, Some("team-a"), "s")
            .is_err()
    );
}

#[tokio::test]
async fn plan_mode_sends_every_mutation_as_a_dry_run() {
    let c = cluster().await;
    let ops = json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        { "op": "k8s.create", "cluster": "c", "manifest": ns("team-a") },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "Namespace", "name": "team-a" }
    ]);
    let out = GuestRun {
        config: c.config.clone(),
        plan: true,
        ..Default::default()
    }
    .script(ops)
    .await
    .unwrap();
    assert_eq!(
        ok(&out[1])["metadata"]["name"],
        "team-a",
        "the server validated the create"
    );
    assert_eq!(err_kind(&out[2]), "not-found", "nothing was stored");
}

/// A name is part of the request URL: `victim#` was once decided as `victim#` and sent to
/// `.../victim`, so a dry-run-only run really patched `victim`. Such names, namespaces and
/// types are refused as the API server would refuse them, before discovery, the policy or
/// any request.
#[tokio::test]
async fn names_that_would_change_the_url_are_refused_before_any_request() {
    let c = cluster().await;
    let seed = json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        { "op": "k8s.create", "cluster": "c", "manifest": ns("team-a") },
        { "op": "k8s.create", "cluster": "c", "manifest": cm("victim", "team-a", json!({})) }
    ]);
    let out = GuestRun {
        config: c.config.clone(),
        ..Default::default()
    }
    .script(seed)
    .await
    .unwrap();
    ok(&out[2]);
    let patch = |name: &str| {
        json!({ "op": "k8s.patch", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a",
                "name": name, "patchKind": "merge", "patch": { "data": { "k": "pwned" } } })
    };
    let ops = json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        patch("victim#"),
        patch("victim?dryRun=All"),
        patch("#"),
        patch("../victim"),
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1#", "kind": "ConfigMap", "namespace": "team-a", "name": "victim" },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a/configmaps/victim#", "name": "x" },
        { "op": "k8s.delete", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "victim#" }
    ]);
    let out = GuestRun {
        config: c.config.clone(),
        plan: true,
        ..Default::default()
    }
    .script(ops)
    .await
    .unwrap();
    for (i, what) in [
        (1, "ConfigMap name"),
        (2, "ConfigMap name"),
        (3, "ConfigMap name"),
        (4, "ConfigMap name"),
        (5, "API version"),
        (6, "namespace"),
        (7, "ConfigMap name"),
    ] {
        assert_eq!(err_kind(&out[i]), "invalid", "{i}: {}", out[i]);
        assert!(err_message(&out[i]).contains(what), "{i}: {}", out[i]);
    }
    let victim = c
        .sim
        .store()
        .get(&ferry_sim::kube::registry::CONFIG_MAP, Some("team-a"), "victim")
        .unwrap();
    assert_eq!(victim["data"]["k"], "v", "the object was not touched: {victim}");
}

/// Discovery is I/O too: a kind the run has not discovered is decided on the names the
/// guest gave before its apiVersion goes to the server, and a failed discovery is audited.
#[tokio::test]
async fn discovery_waits_for_the_decision_and_its_failures_are_audited() {
    let c = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let ops = json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        // Not granted (team-b), and not served either: the denial comes first.
        { "op": "k8s.get", "cluster": "c", "apiVersion": "example.com/v1", "kind": "Gizmo", "namespace": "team-b", "name": "x" },
        // Granted (team-a) but not served: discovery runs, fails, and is audited.
        { "op": "k8s.get", "cluster": "c", "apiVersion": "example.com/v1", "kind": "Gizmo", "namespace": "team-a", "name": "x" }
    ]);
    let out = GuestRun {
        config: c.config.clone(),
        audit: Some(audit.clone()),
        ..Default::default()
    }
    .script(ops)
    .await
    .unwrap();
    assert_eq!(err_kind(&out[1]), "denied", "{}", out[1]);
    assert_eq!(err_kind(&out[2]), "not-found", "{}", out[2]);
    let trail = std::fs::read_to_string(&audit).unwrap();
    let gizmo: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r.to_string().contains("Gizmo"))
        .collect();
    assert_eq!(gizmo.len(), 2, "{trail}");
    assert!(gizmo[0].to_string().contains("deny"), "{}", gizmo[0]);
    assert!(gizmo[1].to_string().contains("not-found"), "{}", gizmo[1]);
}

/// A list is held by the host before the guest gets it: past `max_list_bytes` it is refused
/// with what to narrow.
#[tokio::test]
async fn lists_are_bounded() {
    let c = cluster().await;
    let store = c.sim.store().clone();
    store
        .create(
            &ferry_sim::kube::registry::NAMESPACE,
            None,
            ns("team-a"),
            &Default::default(),
        )
        .unwrap();
    for i in 0..20 {
        store
            .create(
                &ferry_sim::kube::registry::CONFIG_MAP,
                Some("team-a"),
                cm(&format!("cm-{i}"), "team-a", json!({})),
                &Default::default(),
            )
            .unwrap();
    }
    let mut config = c.config.clone();
    config.limits.max_list_bytes = 2_000;
    let out = GuestRun {
        config,
        ..Default::default()
    }
    .script(json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        { "op": "k8s.list", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a" },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "cm-1" }
    ]))
    .await
    .unwrap();
    assert_eq!(err_kind(&out[1]), "invalid", "{}", out[1]);
    assert!(err_message(&out[1]).contains("max_list_bytes"), "{}", out[1]);
    ok(&out[2]);
}

#[tokio::test]
async fn an_unreachable_cluster_is_reported_as_unavailable() {
    let c = cluster().await;
    let config = c.config.clone();
    c.sim.shutdown().await;
    let out = GuestRun {
        config,
        ..Default::default()
    }
    .script(json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        // A call the policy grants: decisions come before any I/O, discovery's included.
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "x" }
    ]))
    .await
    .unwrap();
    ok(&out[0]);
    assert_eq!(err_kind(&out[1]), "unavailable", "{}", out[1]);
    assert!(err_message(&out[1]).contains("unreachable"), "{}", out[1]);
}

/// A server that answers 503 (a hosted cluster's API whose kube-apiserver was stopped) is
/// asked once per call: the guest gets `unavailable` at once and decides, on the host's clock,
/// whether to try again. kube-rs's own retry (exponential, on the wall clock, on by default)
/// would hold a single call for minutes, and a resumed backup for half an hour.
#[tokio::test]
async fn an_unavailable_server_is_asked_once_per_call() {
    use ferry_sim::kube::faults::{FaultAction, FaultRule, InjectedError};
    let c = cluster().await;
    let rule = c.sim.faults().add(
        FaultRule::new(FaultAction::Error(InjectedError::ServiceUnavailable {
            retry_after_secs: None,
        }))
        .resource("configmaps"),
    );
    let out = GuestRun {
        config: c.config.clone(),
        ..Default::default()
    }
    .script(json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "x" }
    ]))
    .await
    .unwrap();
    ok(&out[0]);
    assert_eq!(err_kind(&out[1]), "unavailable", "{}", out[1]);
    let stats = c.sim.faults().stats(rule).unwrap();
    assert_eq!(
        stats.fired, 1,
        "the 503 was asked again behind the guest's back: {stats:?}"
    );
}

#[tokio::test]
async fn etcd_snapshot_through_a_pod_port_forward() {
    use ferry_sim::services::{EtcdServer, MotoServer};
    let c = cluster().await;
    let tmp = tempfile::tempdir().unwrap();
    let etcd = EtcdServer::start(tmp.path().join("etcd")).await.unwrap();
    let mut kv = etcd_client::Client::connect([etcd.client_url()], None).await.unwrap();
    kv.put("/registry/pods/a", "b", None).await.unwrap();
    let moto = MotoServer::start().await.unwrap();
    aws::s3(&moto.url())
        .await
        .create_bucket()
        .bucket("ferry-test")
        .send()
        .await
        .unwrap();

    let addr: std::net::SocketAddr = etcd.client_url().trim_start_matches("http://").parse().unwrap();
    let store = c.sim.store().clone();
    store
        .create(
            &ferry_sim::kube::registry::NAMESPACE,
            None,
            ns("team-a"),
            &Default::default(),
        )
        .unwrap();
    let pod = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "etcd-0", "namespace": "team-a" },
                      "spec": { "containers": [{ "name": "etcd", "image": "etcd" }] }, "status": { "phase": "Running" } });
    store
        .create_with_status(&ferry_sim::kube::registry::POD, Some("team-a"), pod)
        .unwrap();
    c.sim.set_port_forward("team-a", "etcd-0", 2379, addr);

    let mut config = c.config.clone();
    aws::configure(&mut config, &moto.url());
    let audit = tmp.path().join("audit.jsonl");
    let out = GuestRun {
        config,
        options: RunOptions { cache_dir: None, clients: aws::clients(), ..Default::default() },
        audit: Some(audit.clone()),
        ..Default::default()
    }
    .script(json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        { "op": "open-bucket", "bucket": "ferry-test", "as": "b" },
        { "op": "etcd.snapshot-pod", "cluster": "c", "namespace": "team-a", "pod": "etcd-0", "bucket": "b", "key": "allowed/etcd-0.db" },
        // Decided before any I/O: a pod that does not exist, into a key the policy refuses, is
        // a denial, not a missing secret or pod (which only reading them would have found).
        { "op": "etcd.snapshot-pod", "cluster": "c", "namespace": "team-a", "pod": "ghost", "bucket": "b", "key": "denied/ghost.db",
          "clientSecret": "etcd-client-tls", "caSecret": "etcd-ca" },
        // The TLS Secrets the guest names are read only as far as k8s:get on them is granted.
        { "op": "etcd.snapshot-pod", "cluster": "c", "namespace": "team-b", "pod": "etcd-0", "bucket": "b", "key": "allowed/team-b.db",
          "clientSecret": "etcd-client-tls", "caSecret": "etcd-ca" }
    ]))
    .await
    .unwrap();
    let info = ok(&out[2]);
    assert!(info["size"].as_u64().unwrap() > 0);
    assert_eq!(info["member"], "mgmt:team-a/etcd-0");
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(err_kind(&out[3]), "denied", "{}", out[3]);
    assert!(err_message(&out[3]).contains("denied/ghost.db"), "{}", out[3]);
    assert_eq!(err_kind(&out[4]), "denied", "{}", out[4]);
    assert!(err_message(&out[4]).contains("etcd-client-tls"), "{}", out[4]);
    // The upload and its sidecar were approved before the refused read: both are audited
    // with the snapshot's outcome, not dropped.
    let trail: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (action, key) in [
        ("objects:snapshot-upload", "team-b.db"),
        ("objects:put", "team-b.db.sha256"),
    ] {
        assert!(
            trail.iter().any(|r| r["action"] == action
                && r["resource"].as_str().is_some_and(|res| res.ends_with(key))
                && r["outcome"] == "denied"),
            "no {action} record for {key}"
        );
    }
}

/// A kubeconfig whose credential plugin fails and prints a token on the way: kube-rs's
/// error quotes the plugin's command, environment and output, so none of it may reach the
/// guest or the audit trail; the error says what failed and how to see the output.
#[tokio::test]
async fn a_failing_credential_plugin_leaks_nothing_it_printed() {
    let c = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(c.config.clusters["mgmt"].kubeconfig.as_ref().unwrap()).unwrap();
    let server = original
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .to_string();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mgmt\n  cluster:\n    server: {server}\n\
             users:\n- name: mgmt\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      \
             command: sh\n      args: [\"-c\", \"echo token=PRINTED-SECRET; echo $PLUGIN_KEY >&2; exit 1\", \"ARG-SECRET\"]\n      \
             env:\n      - name: PLUGIN_KEY\n        value: ENV-SECRET\n      interactiveMode: Never\n\
             contexts:\n- name: mgmt\n  context:\n    cluster: mgmt\n    user: mgmt\ncurrent-context: mgmt\n"
        ),
    )
    .unwrap();
    let mut config = c.config.clone();
    config.clusters.get_mut("mgmt").unwrap().kubeconfig = Some(kubeconfig);
    let audit = dir.path().join("audit.jsonl");
    let out = GuestRun {
        config,
        audit: Some(audit.clone()),
        ..Default::default()
    }
    .script(json!([
        { "op": "open-cluster", "alias": "mgmt", "as": "c" },
        { "op": "k8s.get", "cluster": "c", "apiVersion": "v1", "kind": "ConfigMap", "namespace": "team-a", "name": "x" }
    ]))
    .await
    .unwrap();
    // kube-rs runs the plugin when the client is built, or on the first request.
    let failed = if out[0].get("ok").is_some() { &out[1] } else { &out[0] };
    assert_eq!(err_kind(failed), "unavailable", "{failed}");
    let message = err_message(failed);
    assert!(
        message.contains("credential plugin (exec) failed") && message.contains("kubectl"),
        "{message}"
    );
    let trail = std::fs::read_to_string(&audit).unwrap();
    for secret in ["PRINTED-SECRET", "ENV-SECRET", "ARG-SECRET"] {
        assert!(!message.contains(secret), "{secret} reached the guest: {message}");
        assert!(!trail.contains(secret), "{secret} reached the audit trail");
    }
}
