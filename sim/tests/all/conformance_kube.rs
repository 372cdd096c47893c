//! Conformance of ferry-sim against kube-rs (kube 5, k8s-openapi 0.29): every test starts its own
//! simulator on 127.0.0.1 and talks to it through a `kube::Client` built from `Config::new(url)`.
//! Asynchronous effects are checked with a bounded polling helper, never with a bare sleep.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::discovery::{Discovery, Scope};
use kube::runtime::watcher;
use kube::{Client, Config};
use serde_json::{Value, json};

use ferry_sim::kube::registry;
use ferry_sim::{Sim, SimOptions};

async fn start() -> Result<(Sim, Client)> {
    start_with(SimOptions::new("test")).await
}

async fn start_with(opts: SimOptions) -> Result<(Sim, Client)> {
    let sim = Sim::start_with(opts).await?;
    let client = Client::try_from(Config::new(sim.url().parse()?))?;
    Ok((sim, client))
}

/// Poll `check` every 20 ms for at most 5 s.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `ErrorResponse` of a failed call.
fn api_err<T: std::fmt::Debug>(r: kube::Result<T>) -> Result<kube::core::Status> {
    match r {
        Err(kube::Error::Api(e)) => Ok(*e),
        other => Err(anyhow!("expected an API error, got {other:?}")),
    }
}

/// A raw request, for what the typed client cannot express; returns (status, body).
async fn raw(client: &Client, method: &str, path: &str, content_type: &str, body: &str) -> Result<(u16, Value)> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.as_bytes().to_vec()))?;
    let resp = client.send(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await?;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, v))
}

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    if !labels.is_empty() {
        c.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    }
    c.data = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
    c
}

async fn create_ns(client: &Client, name: &str) -> Result<()> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.to_string());
    nss.create(&PostParams::default(), &ns).await?;
    Ok(())
}

fn deployment(name: &str) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}
            }
        }
    }))?)
}

async fn resolve(client: &Client, group: &str, version: &str, kind: &str) -> Result<ApiResource> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let (ar, _caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
        .with_context(|| format!("discovery did not find {group}/{version} {kind}"))?;
    Ok(ar)
}

#[tokio::test]
async fn version_and_discovery() -> Result<()> {
    let (_sim, client) = start().await?;
    let info = client.apiserver_version().await?;
    assert_eq!(info.major, "1");
    assert_eq!(info.git_version, "v1.32.0-ferry-sim");

    let discovery = Discovery::new(client.clone()).run().await?;
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "apps",
        "hypershift.openshift.io",
        "cluster.x-k8s.io",
        "infrastructure.cluster.x-k8s.io",
        "route.openshift.io",
        "project.openshift.io",
        "config.openshift.io",
    ] {
        assert!(groups.iter().any(|x| x == g), "group {g:?} missing from {groups:?}");
    }
    let (np, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("hypershift.openshift.io", "v1beta1", "NodePool"))
        .context("NodePool not discovered")?;
    assert_eq!(np.plural, "nodepools");
    assert_eq!(caps.scope, Scope::Namespaced);
    let subs: Vec<&str> = caps.subresources.iter().map(|(r, _)| r.plural.as_str()).collect();
    assert!(subs.contains(&"status") && subs.contains(&"scale"), "{subs:?}");
    let (cv, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("config.openshift.io", "v1", "ClusterVersion"))
        .context("ClusterVersion not discovered")?;
    assert_eq!(cv.plural, "clusterversions");
    assert_eq!(caps.scope, Scope::Cluster);
    let (ar, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(
            "cluster.x-k8s.io",
            "v1beta1",
            "MachineDeployment",
        ))
        .context("MachineDeployment not discovered")?;
    assert_eq!(ar.plural, "machinedeployments");

    // Unknown group, version and resource are clean 404s.
    for path in [
        "/apis/nope.io/v1",
        "/apis/apps/v9",
        "/apis/apps/v1/namespaces/default/widgets",
        "/api/v1/widgets",
    ] {
        let (code, body) = raw(&client, "GET", path, "application/json", "").await?;
        assert_eq!(code, 404, "{path}");
        assert_eq!(body["reason"], "NotFound", "{path}");
        assert_eq!(body["kind"], "Status");
    }
    Ok(())
}

#[tokio::test]
async fn typed_crud_and_conflicts() -> Result<()> {
    let (sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = cms.create(&PostParams::default(), &cm("one", &[])).await?;
    let rv1: u64 = created.metadata.resource_version.clone().unwrap_or_default().parse()?;
    assert!(rv1 > 0);
    assert!(created.metadata.uid.as_deref().is_some_and(|u| u.len() == 36));
    let ts = created
        .metadata
        .creation_timestamp
        .clone()
        .context("creationTimestamp")?;
    assert_eq!(ts.0.subsec_nanosecond(), 0, "second precision");
    // Core kinds carry no generation on a real server.
    assert_eq!(created.metadata.generation, None);

    let dup = api_err(cms.create(&PostParams::default(), &cm("one", &[])).await)?;
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "configmaps \"one\" already exists");

    let mut fetched = cms.get("one").await?;
    assert_eq!(
        fetched.data.as_ref().and_then(|d| d.get("k")).map(String::as_str),
        Some("v")
    );
    fetched
        .data
        .get_or_insert_with(BTreeMap::new)
        .insert("k".into(), "v2".into());
    let replaced = cms.replace("one", &PostParams::default(), &fetched).await?;
    let rv2: u64 = replaced.metadata.resource_version.clone().unwrap_or_default().parse()?;
    assert!(rv2 > rv1);
    // `fetched` still carries rv1: a stale replace is a 409 Conflict.
    let stale = api_err(cms.replace("one", &PostParams::default(), &fetched).await)?;
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert!(
        stale.message.contains("the object has been modified"),
        "{}",
        stale.message
    );
    // An empty resourceVersion replaces unconditionally.
    let mut unconditional = fetched.clone();
    unconditional.metadata.resource_version = None;
    cms.replace("one", &PostParams::default(), &unconditional).await?;

    // PUT of a missing object is a 404, GET too.
    let mut ghost = cm("ghost", &[]);
    ghost.metadata.resource_version = None;
    let e = api_err(cms.replace("ghost", &PostParams::default(), &ghost).await)?;
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert!(cms.get_opt("ghost").await?.is_none());

    // Secret with stringData is stored base64-encoded in data.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s1"}, "stringData": {"password": "hunter2"}
    }))?;
    let s = secrets.create(&PostParams::default(), &s).await?;
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        s.data.and_then(|d| d.get("password").cloned()).map(|b| b.0),
        Some(b"hunter2".to_vec())
    );

    // Deployment: generation starts at 1 and follows spec changes only.
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = deps.create(&PostParams::default(), &deployment("web")?).await?;
    assert_eq!(d.metadata.generation, Some(1));
    assert_eq!(d.spec.replicas, Some(1), "defaulted");
    let d = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await?;
    assert_eq!(d.metadata.generation, Some(1), "label change keeps generation");
    let d = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await?;
    assert_eq!(d.metadata.generation, Some(2));

    let deleted = cms.delete("one", &DeleteParams::default()).await?;
    let obj = deleted.left().context("delete returns the object")?;
    assert_eq!(obj.metadata.name.as_deref(), Some("one"));
    assert!(cms.get_opt("one").await?.is_none());
    let e = api_err(cms.delete("one", &DeleteParams::default()).await)?;
    assert_eq!(e.code, 404);

    // The same through the in-process store.
    assert!(sim.store().get(&registry::CONFIG_MAP, Some("default"), "one").is_err());
    assert!(sim.store().get(&registry::SECRET, Some("default"), "s1").is_ok());
    Ok(())
}

#[tokio::test]
async fn create_validation() -> Result<()> {
    let (_sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let e = api_err(cms.create(&PostParams::default(), &cm("a", &[])).await)?;
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "namespaces \"nowhere\" not found");

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut generated = cm("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let made = cms.create(&PostParams::default(), &generated).await?;
    let name = made.metadata.name.context("generated name")?;
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let mut other_ns = cm("b", &[]);
    other_ns.metadata.namespace = Some("kube-system".into());
    let e = api_err(cms.create(&PostParams::default(), &other_ns).await)?;
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));

    let e = api_err(cms.create(&PostParams::default(), &cm("Bad_Name", &[])).await)?;
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));

    let e = api_err(cms.create(&PostParams::default(), &cm("c", &[("bad key!", "v")])).await)?;
    assert_eq!(e.code, 422);

    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        "{not json",
    )
    .await?;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        r#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
    )
    .await?;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n",
    )
    .await?;
    assert_eq!(code, 201);
    assert_eq!(
        cms.get("from-yaml")
            .await?
            .data
            .and_then(|d| d.get("a").cloned())
            .as_deref(),
        Some("b")
    );
    // Verbs a resource does not have are 405.
    let (code, body) = raw(&client, "GET", "/apis/project.openshift.io/v1/projectrequests", "", "").await?;
    assert_eq!((code, body["reason"].as_str()), (405, Some("MethodNotAllowed")));
    Ok(())
}

#[tokio::test]
async fn dynamic_hypershift_objects() -> Result<()> {
    let (_sim, client) = start().await?;
    create_ns(&client, "clusters").await?;
    let hc_ar = resolve(&client, "hypershift.openshift.io", "v1beta1", "HostedCluster").await?;
    let np_ar = resolve(&client, "hypershift.openshift.io", "v1beta1", "NodePool").await?;
    let hcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "clusters", &hc_ar);
    let nps: Api<DynamicObject> = Api::namespaced_with(client.clone(), "clusters", &np_ar);

    let hc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "hypershift.openshift.io/v1beta1", "kind": "HostedCluster",
        "metadata": {"name": "hc1", "finalizers": ["hypershift.openshift.io/finalizer"]},
        "spec": {"infraID": "hc1-x7k2p", "platform": {"type": "AWS"}},
        "status": {"ignored": "on create"}
    }))?;
    let created = hcs.create(&PostParams::default(), &hc).await?;
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.data.get("status").is_none(), "status is dropped on create");
    assert_eq!(created.data["spec"]["infraID"], "hc1-x7k2p");

    let np: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "hypershift.openshift.io/v1beta1", "kind": "NodePool",
        "metadata": {"name": "hc1-workers"},
        "spec": {"clusterName": "hc1", "replicas": 2}
    }))?;
    nps.create(&PostParams::default(), &np).await?;

    let patched = hcs
        .patch(
            "hc1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"pausedUntil": "true"}})),
        )
        .await?;
    assert_eq!(patched.data["spec"]["pausedUntil"], "true");
    assert_eq!(patched.metadata.generation, Some(2));

    let listed = nps.list(&ListParams::default()).await?;
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].data["spec"]["clusterName"], "hc1");

    // Strategic merge is not available for custom resources: 415, like a CRD.
    let e = api_err(
        hcs.patch(
            "hc1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"x": 1}})),
        )
        .await,
    )?;
    assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));

    // NodePool scale subresource via spec.replicas.
    let scale = nps.get_scale("hc1-workers").await?;
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    nps.patch_scale(
        "hc1-workers",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await?;
    assert_eq!(nps.get("hc1-workers").await?.data["spec"]["replicas"], 0);
    Ok(())
}

#[tokio::test]
async fn merge_json_and_strategic_patches() -> Result<()> {
    let (_sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut c = cm("p", &[("a", "1")]);
    c.data = Some(BTreeMap::from([
        ("x".to_string(), "1".to_string()),
        ("y".to_string(), "2".to_string()),
    ]));
    cms.create(&PostParams::default(), &c).await?;

    let merged = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": null, "z": "3"}, "metadata": {"labels": {"b": "2"}}})),
        )
        .await?;
    let data = merged.data.clone().unwrap_or_default();
    assert_eq!(data.get("x"), None);
    assert_eq!(data.get("z").map(String::as_str), Some("3"));
    assert_eq!(merged.metadata.labels.clone().unwrap_or_default().len(), 2);

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/y", "value": "2"},
        {"op": "replace", "path": "/data/y", "value": "20"},
        {"op": "remove", "path": "/metadata/labels/a"}
    ]))?;
    let jp = cms.patch("p", &PatchParams::default(), &Patch::Json::<()>(ops)).await?;
    assert_eq!(jp.data.unwrap_or_default().get("y").map(String::as_str), Some("20"));
    assert!(!jp.metadata.labels.unwrap_or_default().contains_key("a"));

    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/y", "value": "nope"}
    ]))?;
    let e = api_err(
        cms.patch("p", &PatchParams::default(), &Patch::Json::<()>(failing))
            .await,
    )?;
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    let bad_path: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/nope/x", "value": 1}]))?;
    let e = api_err(
        cms.patch("p", &PatchParams::default(), &Patch::Json::<()>(bad_path))
            .await,
    )?;
    assert_eq!(e.code, 422);

    // Patch of a missing object is 404.
    let e = api_err(
        cms.patch("missing", &PatchParams::default(), &Patch::Merge(json!({})))
            .await,
    )?;
    assert_eq!(e.code, 404);

    // Strategic merge on a Deployment merges containers by name.
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deps.create(&PostParams::default(), &deployment("web")?).await?;
    let d = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "envoy:1"},
                {"name": "main", "image": "busybox:2"}
            ]}}}})),
        )
        .await?;
    let containers = d.spec.template.spec.map(|s| s.containers).unwrap_or_default();
    let images: Vec<(String, Option<String>)> = containers.into_iter().map(|c| (c.name, c.image)).collect();
    assert_eq!(
        images,
        vec![
            ("main".to_string(), Some("busybox:2".to_string())),
            ("sidecar".to_string(), Some("envoy:1".to_string()))
        ]
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply() -> Result<()> {
    let (_sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("ferry-test");
    let applied = cms
        .patch(
            "ssa",
            &pp,
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ssa", "labels": {"app": "x"}},
                "data": {"a": "1"}
            })),
        )
        .await?;
    assert_eq!(applied.metadata.name.as_deref(), Some("ssa"));
    assert!(applied.metadata.uid.is_some());
    let updated = cms
        .patch(
            "ssa",
            &pp.clone().force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ssa"},
                "data": {"b": "2"}
            })),
        )
        .await?;
    let data = updated.data.unwrap_or_default();
    assert_eq!(data.get("a").map(String::as_str), Some("1"));
    assert_eq!(data.get("b").map(String::as_str), Some("2"));
    assert_eq!(updated.metadata.uid, applied.metadata.uid);

    // Apply without a field manager is refused like the real server (422 PatchOptions Invalid).
    let e = api_err(
        cms.patch(
            "ssa",
            &PatchParams::default(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}})),
        )
        .await,
    )?;
    assert_eq!(e.code, 422);
    assert!(e.message.contains("fieldManager"), "{}", e.message);

    // A YAML body is accepted too.
    let (code, body) = raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/yaml-ssa?fieldManager=raw",
        "application/apply-patch+yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml-ssa\ndata:\n  k: v\n",
    )
    .await?;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["data"]["k"], "v");

    // Apply on a custom resource creates it.
    create_ns(&client, "clusters").await?;
    let ar = resolve(&client, "hypershift.openshift.io", "v1beta1", "HostedCluster").await?;
    let hcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "clusters", &ar);
    let hc = hcs
        .patch(
            "restored",
            &pp,
            &Patch::Apply(json!({
                "apiVersion": "hypershift.openshift.io/v1beta1", "kind": "HostedCluster",
                "metadata": {"name": "restored"},
                "spec": {"etcd": {"managed": {"storage": {"restoreSnapshotURL": ["s3://b/k"]}}}}
            })),
        )
        .await?;
    assert_eq!(
        hc.data["spec"]["etcd"]["managed"]["storage"]["restoreSnapshotURL"][0],
        "s3://b/k"
    );
    Ok(())
}

#[tokio::test]
async fn finalizers_hold_deletion() -> Result<()> {
    let (_sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut c = cm("held", &[]);
    c.metadata.finalizers = Some(vec!["ferry.io/hold".into()]);
    cms.create(&PostParams::default(), &c).await?;

    let first = cms
        .delete("held", &DeleteParams::default())
        .await?
        .left()
        .context("object returned")?;
    let ts = first
        .metadata
        .deletion_timestamp
        .clone()
        .context("deletionTimestamp set")?;
    let still = cms.get("held").await?;
    assert_eq!(still.metadata.deletion_timestamp, Some(ts.clone()));
    // A second delete does not move the timestamp.
    let second = cms
        .delete("held", &DeleteParams::default())
        .await?
        .left()
        .context("object returned")?;
    assert_eq!(second.metadata.deletion_timestamp, Some(ts));

    // New finalizers cannot be added while deleting.
    let e = api_err(
        cms.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["ferry.io/hold", "x.io/new"]}})),
        )
        .await,
    )?;
    assert_eq!(e.code, 422);

    // Removing the last finalizer completes the deletion.
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert!(cms.get_opt("held").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn namespace_termination_cascades() -> Result<()> {
    let (_sim, client) = start().await?;
    create_ns(&client, "doomed").await?;
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = nss.get("doomed").await?;
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    assert_eq!(
        ns.metadata
            .labels
            .unwrap_or_default()
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("doomed")
    );

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    cms.create(&PostParams::default(), &cm("plain", &[])).await?;
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["ferry.io/hold".into()]);
    cms.create(&PostParams::default(), &held).await?;

    let terminating = nss
        .delete("doomed", &DeleteParams::default())
        .await?
        .left()
        .context("namespace returned")?;
    assert_eq!(terminating.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    eventually("plain configmap removed", || async {
        Ok(cms.get_opt("plain").await?.is_none())
    })
    .await?;
    let held_now = cms.get("held").await?;
    assert!(held_now.metadata.deletion_timestamp.is_some());
    assert!(nss.get_opt("doomed").await?.is_some(), "namespace waits for finalizers");

    let e = api_err(cms.create(&PostParams::default(), &cm("late", &[])).await)?;
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert!(e.message.contains("being terminated"), "{}", e.message);

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": []}})),
    )
    .await?;
    eventually("namespace gone", || async {
        Ok(nss.get_opt("doomed").await?.is_none())
    })
    .await?;

    let e = api_err(nss.delete("default", &DeleteParams::default()).await)?;
    assert_eq!(e.code, 403, "the default namespace cannot be deleted");
    Ok(())
}

#[tokio::test]
async fn owner_reference_garbage_collection() -> Result<()> {
    let (_sim, client) = start().await?;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owned_by = |d: &Deployment, name: &str| -> Result<ConfigMap> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment",
                "name": d.metadata.name, "uid": d.metadata.uid
            }]}
        }))?)
    };

    // Background (default): dependents go with the owner.
    let owner = deps.create(&PostParams::default(), &deployment("owner")?).await?;
    cms.create(&PostParams::default(), &owned_by(&owner, "child")?).await?;
    deps.delete("owner", &DeleteParams::background()).await?;
    eventually("child collected", || async {
        Ok(cms.get_opt("child").await?.is_none())
    })
    .await?;

    // Orphan: dependents stay, without the reference.
    let owner = deps.create(&PostParams::default(), &deployment("owner2")?).await?;
    cms.create(&PostParams::default(), &owned_by(&owner, "orphan")?).await?;
    deps.delete("owner2", &DeleteParams::orphan()).await?;
    let orphan = cms.get("orphan").await?;
    assert!(orphan.metadata.owner_references.unwrap_or_default().is_empty());

    // Foreground: the owner waits (deletionTimestamp + foregroundDeletion) for its dependents.
    let owner = deps.create(&PostParams::default(), &deployment("owner3")?).await?;
    let mut child = owned_by(&owner, "slow-child")?;
    child.metadata.finalizers = Some(vec!["ferry.io/hold".into()]);
    cms.create(&PostParams::default(), &child).await?;
    deps.delete("owner3", &DeleteParams::foreground()).await?;
    let waiting = deps.get("owner3").await?;
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(
        waiting
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(cms.get("slow-child").await?.metadata.deletion_timestamp.is_some());
    cms.patch(
        "slow-child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    eventually("foreground owner gone", || async {
        Ok(deps.get_opt("owner3").await?.is_none())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn label_selectors_every_operator() -> Result<()> {
    let (_sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (name, labels) in [
        ("a", vec![("env", "prod"), ("tier", "web")]),
        ("b", vec![("env", "dev"), ("tier", "db")]),
        ("c", vec![("env", "qa")]),
        ("d", vec![]),
    ] {
        cms.create(&PostParams::default(), &cm(name, &labels)).await?;
    }
    let names = |sel: &'static str| {
        let cms = cms.clone();
        async move {
            let list = cms.list(&ListParams::default().labels(sel)).await?;
            Ok::<Vec<String>, anyhow::Error>(list.items.into_iter().filter_map(|c| c.metadata.name).collect())
        }
    };
    assert_eq!(names("env=prod").await?, ["a"]);
    assert_eq!(names("env==dev").await?, ["b"]);
    assert_eq!(names("env!=prod").await?, ["b", "c", "d"]);
    assert_eq!(names("env in (prod,qa)").await?, ["a", "c"]);
    assert_eq!(names("env notin (prod,qa)").await?, ["b", "d"]);
    assert_eq!(names("tier").await?, ["a", "b"]);
    assert_eq!(names("!tier").await?, ["c", "d"]);
    assert_eq!(names("env,!tier").await?, ["c"]);
    assert_eq!(names("env in (prod,dev),tier=db").await?, ["b"]);
    let e = api_err(cms.list(&ListParams::default().labels("env in (prod")).await)?;
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    Ok(())
}

#[tokio::test]
async fn field_selectors() -> Result<()> {
    let (_sim, client) = start().await?;
    create_ns(&client, "other").await?;
    for ns in ["default", "other"] {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        cms.create(&PostParams::default(), &cm("same", &[])).await?;
        cms.create(&PostParams::default(), &cm(&format!("only-{ns}"), &[]))
            .await?;
    }
    let all: Api<ConfigMap> = Api::all(client.clone());
    let keys = |sel: &'static str| {
        let all = all.clone();
        async move {
            let list = all.list(&ListParams::default().fields(sel)).await?;
            Ok::<Vec<String>, anyhow::Error>(
                list.items
                    .into_iter()
                    .map(|c| {
                        format!(
                            "{}/{}",
                            c.metadata.namespace.unwrap_or_default(),
                            c.metadata.name.unwrap_or_default()
                        )
                    })
                    .collect(),
            )
        }
    };
    assert_eq!(keys("metadata.name=same").await?, ["default/same", "other/same"]);
    assert_eq!(
        keys("metadata.namespace==other").await?,
        ["other/only-other", "other/same"]
    );
    assert_eq!(
        keys("metadata.name!=same,metadata.namespace=default").await?,
        ["default/only-default"]
    );
    let e = api_err(all.list(&ListParams::default().fields("spec.foo=bar")).await)?;
    assert_eq!(e.code, 400);
    assert!(e.message.contains("field label not supported"), "{}", e.message);
    Ok(())
}

#[tokio::test]
async fn pagination_with_limit_and_continue() -> Result<()> {
    let (_sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..25 {
        cms.create(&PostParams::default(), &cm(&format!("cm-{i:02}"), &[]))
            .await?;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = Vec::new();
    let mut list_rv = None;
    loop {
        let mut lp = ListParams::default().limit(10);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = cms.list(&lp).await?;
        pages.push(page.items.len());
        // Every page reports the resourceVersion of the first one.
        let rv = page.metadata.resource_version.clone();
        assert_eq!(*list_rv.get_or_insert(rv.clone()), rv);
        if page.metadata.continue_.is_some() {
            assert!(page.metadata.remaining_item_count.is_some_and(|r| r > 0));
        }
        seen.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, [10, 10, 5]);
    let expected: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(seen, expected);

    let e = api_err(
        cms.list(&ListParams::default().limit(5).continue_token("garbage!"))
            .await,
    )?;
    assert_eq!(e.code, 400);
    Ok(())
}

#[tokio::test]
async fn scale_and_status_subresources() -> Result<()> {
    let (_sim, client) = start().await?;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deps.create(&PostParams::default(), &deployment("web")?).await?;

    let scale = deps.get_scale("web").await?;
    assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(
        scale.status.as_ref().and_then(|s| s.selector.clone()).as_deref(),
        Some("app=web")
    );
    let scaled = deps
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await?;
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(0));
    let d = deps.get("web").await?;
    assert_eq!(d.spec.replicas, Some(0));
    assert_eq!(d.metadata.generation, Some(2));
    let e = api_err(
        deps.patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await,
    )?;
    assert_eq!(e.code, 422);

    // PUT /scale with the Scale's resourceVersion as a precondition.
    let mut current = deps.get_scale("web").await?;
    if let Some(spec) = current.spec.as_mut() {
        spec.replicas = Some(4);
    }
    let replaced = deps.replace_scale("web", &PostParams::default(), &current).await?;
    assert_eq!(replaced.spec.as_ref().and_then(|s| s.replicas), Some(4));
    let e = api_err(deps.replace_scale("web", &PostParams::default(), &current).await)?;
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    deps.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await?;

    // Status subresource: only .status changes, generation does not move.
    let s = deps
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3, "readyReplicas": 3},
                                 "spec": {"replicas": 9}})),
        )
        .await?;
    assert_eq!(s.status.as_ref().and_then(|st| st.ready_replicas), Some(3));
    assert_eq!(s.spec.replicas, Some(0), "spec ignored on /status");
    assert_eq!(s.metadata.generation, Some(4), "1 + three spec.replicas changes");
    let scale = deps.get_scale("web").await?;
    assert_eq!(scale.status.map(|st| st.replicas), Some(3));

    // The main endpoint ignores .status.
    let d = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 0}})),
        )
        .await?;
    assert_eq!(d.status.and_then(|st| st.ready_replicas), Some(3));

    // replace_status takes the status of the body.
    let mut current = deps.get_status("web").await?;
    if let Some(st) = current.status.as_mut() {
        st.ready_replicas = Some(1);
    }
    let replaced = deps.replace_status("web", &PostParams::default(), &current).await?;
    assert_eq!(replaced.status.and_then(|st| st.ready_replicas), Some(1));
    Ok(())
}

#[tokio::test]
async fn dry_run_stores_nothing() -> Result<()> {
    let (sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("real", &[])).await?;
    let rv_before = sim.store().resource_version();
    let dry_post = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let preview = cms.create(&dry_post, &cm("dry", &[])).await?;
    assert_eq!(preview.metadata.name.as_deref(), Some("dry"));
    assert!(preview.metadata.uid.is_some());
    assert!(cms.get_opt("dry").await?.is_none());

    let mut real = cms.get("real").await?;
    real.data = Some(BTreeMap::from([("k".into(), "dry".into())]));
    let replaced = cms.replace("real", &dry_post, &real).await?;
    assert_eq!(
        replaced.data.unwrap_or_default().get("k").map(String::as_str),
        Some("dry")
    );

    let dry_patch = PatchParams::default().dry_run();
    cms.patch("real", &dry_patch, &Patch::Merge(json!({"data": {"k": "patched"}})))
        .await?;
    cms.patch(
        "applied",
        &PatchParams::apply("t").dry_run(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}})),
    )
    .await?;
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    cms.delete("real", &dp).await?;

    assert_eq!(sim.store().resource_version(), rv_before, "no write happened");
    let real = cms.get("real").await?;
    assert_eq!(real.data.unwrap_or_default().get("k").map(String::as_str), Some("v"));
    assert!(cms.get_opt("applied").await?.is_none());
    Ok(())
}

type EventStream = futures::stream::BoxStream<'static, Result<watcher::Event<ConfigMap>, watcher::Error>>;

async fn next(stream: &mut EventStream) -> Result<watcher::Event<ConfigMap>> {
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await {
        Ok(Ok(Some(ev))) => Ok(ev),
        Ok(Ok(None)) => bail!("watch ended"),
        Ok(Err(e)) => bail!("watcher error: {e}"),
        Err(_) => bail!("no watch event within 5 s"),
    }
}

#[tokio::test]
async fn kube_runtime_watcher_sees_changes() -> Result<()> {
    let (_sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("pre", &[])).await?;
    let mut stream: EventStream = watcher(cms.clone(), watcher::Config::default()).boxed();

    let mut log: Vec<String> = Vec::new();
    // Initial listing.
    loop {
        match next(&mut stream).await? {
            watcher::Event::Init => log.push("init".into()),
            watcher::Event::InitApply(c) => log.push(format!("init-apply {}", c.metadata.name.unwrap_or_default())),
            watcher::Event::InitDone => {
                log.push("init-done".into());
                break;
            }
            other => bail!("unexpected {other:?}"),
        }
    }
    assert_eq!(log, ["init", "init-apply pre", "init-done"]);

    cms.create(&PostParams::default(), &cm("w", &[])).await?;
    match next(&mut stream).await? {
        watcher::Event::Apply(c) => assert_eq!(c.metadata.name.as_deref(), Some("w")),
        other => bail!("expected Apply(w), got {other:?}"),
    }
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await?;
    match next(&mut stream).await? {
        watcher::Event::Apply(c) => {
            assert_eq!(c.data.unwrap_or_default().get("k").map(String::as_str), Some("changed"))
        }
        other => bail!("expected Apply(modified), got {other:?}"),
    }
    cms.delete("w", &DeleteParams::default()).await?;
    match next(&mut stream).await? {
        watcher::Event::Delete(c) => assert_eq!(c.metadata.name.as_deref(), Some("w")),
        other => bail!("expected Delete(w), got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn raw_watch_semantics() -> Result<()> {
    let mut opts = SimOptions::new("watch");
    opts.history_limit = 8;
    opts.bookmark_interval = Duration::from_millis(50);
    let (_sim, client) = start_with(opts).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = cms.create(&PostParams::default(), &cm("w0", &[("team", "a")])).await?;
    let rv0 = first.metadata.resource_version.clone().unwrap_or_default();

    // Events strictly after rv0, filtered by label; a label change out of the selector is a
    // DELETED for this watcher; bookmarks arrive.
    let mut wp = WatchParams::default().labels("team=a").timeout(30);
    wp.bookmarks = true;
    let mut stream = cms.watch(&wp, &rv0).await?.boxed();
    cms.create(&PostParams::default(), &cm("w1", &[("team", "a")])).await?;
    cms.create(&PostParams::default(), &cm("other", &[("team", "b")]))
        .await?;
    cms.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
    )
    .await?;
    let mut got = Vec::new();
    let mut bookmark_seen = false;
    while got.len() < 2 || !bookmark_seen {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .context("watch event timeout")??
            .context("watch ended")?;
        match ev {
            WatchEvent::Added(c) => got.push(format!("ADDED {}", c.metadata.name.unwrap_or_default())),
            WatchEvent::Modified(c) => got.push(format!("MODIFIED {}", c.metadata.name.unwrap_or_default())),
            WatchEvent::Deleted(c) => got.push(format!("DELETED {}", c.metadata.name.unwrap_or_default())),
            WatchEvent::Bookmark(b) => {
                assert!(!b.metadata.resource_version.is_empty());
                bookmark_seen = true;
            }
            WatchEvent::Error(e) => bail!("unexpected error event {e:?}"),
        }
    }
    assert_eq!(got, ["ADDED w1", "DELETED w1"]);

    // timeoutSeconds ends the stream.
    let mut short = cms.watch(&WatchParams::default().timeout(1), &rv0).await?.boxed();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while short.try_next().await?.is_some() {}
        Ok::<(), kube::Error>(())
    })
    .await;
    assert!(matches!(ended, Ok(Ok(()))), "a 1 s watch ends: {ended:?}");

    // Overflow the 8-event history, then resume from rv0: 410 Expired as an ERROR event.
    for i in 0..12 {
        cms.create(&PostParams::default(), &cm(&format!("fill-{i}"), &[]))
            .await?;
    }
    let mut stream = cms.watch(&WatchParams::default(), &rv0).await?.boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .context("timeout")??
        .context("watch ended")?;
    match ev {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => bail!("expected a 410 ERROR event, got {other:?}"),
    }
    Ok(())
}

async fn echo_server() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

#[tokio::test]
async fn port_forward_to_a_tcp_echo_server() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (sim, client) = start().await?;
    let echo = echo_server().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "etcd-0"},
        "spec": {"containers": [{"name": "etcd", "image": "etcd", "ports": [{"containerPort": 2379}]}]}
    }))?;
    let created = pods.create(&PostParams::default(), &pod).await?;
    assert_eq!(created.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    sim.set_port_forward("default", "etcd-0", 2379, echo);

    let mut pf = pods.portforward("etcd-0", &[2379]).await?;
    let mut stream = pf.take_stream(2379).context("stream for 2379")?;
    stream.write_all(b"hello etcd").await?;
    let mut buf = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .context("echo timeout")??;
    assert_eq!(&buf, b"hello etcd");
    stream.write_all(b"again").await?;
    let mut buf = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .context("echo timeout")??;
    assert_eq!(&buf, b"again");
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), pf.join())
        .await
        .context("join timeout")??;

    // A port without a route reports on the error channel.
    let mut pf = pods.portforward("etcd-0", &[9999]).await?;
    let err = pf.take_error(9999).context("error future")?;
    let msg = tokio::time::timeout(Duration::from_secs(5), err)
        .await
        .context("error timeout")?;
    assert!(msg.is_some_and(|m| m.contains("9999")));

    // A missing pod is a 404 before any upgrade.
    let e = match pods.portforward("nope", &[1]).await {
        Err(kube::Error::Api(e)) => *e,
        Err(other) => bail!("expected a 404 API error, got {other}"),
        Ok(_) => bail!("expected a 404 API error, got a port-forward"),
    };
    assert_eq!(e.code, 404);
    Ok(())
}

#[tokio::test]
async fn project_request_and_isolated_instances() -> Result<()> {
    let (a, client_a) = start().await?;
    let (_b, client_b) = start().await?;
    assert_ne!(a.url(), _b.url());
    let (code, body) = raw(
        &client_a,
        "POST",
        "/apis/project.openshift.io/v1/projectrequests",
        "application/json",
        r#"{"apiVersion":"project.openshift.io/v1","kind":"ProjectRequest","metadata":{"name":"clusters"},"displayName":"Clusters"}"#,
    )
    .await?;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["kind"], "Project");
    let nss_a: Api<Namespace> = Api::all(client_a.clone());
    let ns = nss_a.get("clusters").await?;
    assert_eq!(
        ns.metadata
            .annotations
            .unwrap_or_default()
            .get("openshift.io/display-name")
            .map(String::as_str),
        Some("Clusters")
    );
    let nss_b: Api<Namespace> = Api::all(client_b);
    assert!(nss_b.get_opt("clusters").await?.is_none(), "instances share nothing");
    let (code, _) = raw(
        &client_a,
        "POST",
        "/apis/project.openshift.io/v1/projectrequests",
        "application/json",
        r#"{"apiVersion":"project.openshift.io/v1","kind":"ProjectRequest","metadata":{"name":"clusters"}}"#,
    )
    .await?;
    assert_eq!(code, 409);
    Ok(())
}

#[tokio::test]
async fn delete_collection_by_label() -> Result<()> {
    let (_sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (n, team) in [("r1", "a"), ("r2", "a"), ("r3", "b")] {
        cms.create(&PostParams::default(), &cm(n, &[("team", team)])).await?;
    }
    let out = cms
        .delete_collection(&DeleteParams::default(), &ListParams::default().labels("team=a"))
        .await?;
    let deleted = out.left().context("list of deleted objects")?;
    assert_eq!(deleted.items.len(), 2);
    let left: Vec<String> = cms
        .list(&ListParams::default().labels("team"))
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, ["r3"]);
    Ok(())
}

#[tokio::test]
async fn in_process_store_watch_for_controllers() -> Result<()> {
    use ferry_sim::{EventType, WatchFilter, WatchFrom, WriteOptions};
    let sim = Sim::start("controllers").await?;
    let store = sim.store().clone();
    let mut w = store.watch(WatchFilter::kind(&registry::NODE_POOL), WatchFrom::Now)?;
    store.create(
        &registry::NAMESPACE,
        None,
        json!({"metadata": {"name": "clusters"}}),
        &WriteOptions::default(),
    )?;
    let np = store.create_with_status(
        &registry::NODE_POOL,
        Some("clusters"),
        json!({"apiVersion": "hypershift.openshift.io/v1beta1", "kind": "NodePool",
               "metadata": {"name": "np1"}, "spec": {"replicas": 1},
               "status": {"replicas": 1}}),
    )?;
    assert_eq!(np["status"]["replicas"], 1);
    let ev = tokio::time::timeout(Duration::from_secs(5), w.next()).await??;
    assert_eq!((ev.event_type, ev.name.as_str()), (EventType::Added, "np1"));
    let ev = tokio::time::timeout(Duration::from_secs(5), w.next()).await??;
    assert_eq!(ev.event_type, EventType::Modified);
    assert_eq!(ev.object["status"]["replicas"], 1);
    assert!(w.try_next().is_none(), "the namespace event is filtered out");
    Ok(())
}

#[tokio::test]
async fn kube_runtime_finalizer_helper() -> Result<()> {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event as Fin, finalizer};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let (_sim, client) = start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("guarded", &[])).await?;
    let cleanups = Arc::new(AtomicUsize::new(0));
    let reconcile = |obj: Arc<ConfigMap>| {
        let cleanups = cleanups.clone();
        let cms = cms.clone();
        async move {
            finalizer(&cms, "ferry.io/cleanup", obj, |ev| async move {
                if let Fin::Cleanup(_) = ev {
                    cleanups.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<Action, std::io::Error>(Action::await_change())
            })
            .await
            .map_err(|e| anyhow!("finalizer: {e}"))
        }
    };
    // First pass adds the finalizer (JSON patch: test-for-null + add).
    reconcile(Arc::new(cms.get("guarded").await?)).await?;
    assert_eq!(
        cms.get("guarded").await?.metadata.finalizers,
        Some(vec!["ferry.io/cleanup".to_string()])
    );
    cms.delete("guarded", &DeleteParams::default()).await?;
    let deleting = cms.get("guarded").await?;
    assert!(deleting.metadata.deletion_timestamp.is_some());
    // Second pass runs the cleanup and removes the finalizer (test + remove), which deletes it.
    reconcile(Arc::new(deleting)).await?;
    assert_eq!(cleanups.load(Ordering::SeqCst), 1);
    assert!(cms.get_opt("guarded").await?.is_none());
    Ok(())
}
