//! Policy engine tests: decisions per resource type, hierarchy edge cases,
//! template links, load errors, `explain`, and the cost of a decision.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use ferry::policy::{
    Action, CallContext, Decision, GuestIdentity, PolicyEngine, PolicyError, ResourceRef, hcp_namespace,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/examples")
}

fn guest() -> GuestIdentity {
    GuestIdentity {
        name: "hosted-cluster-dr".into(),
        sha256: "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12".into(),
    }
}

fn apply() -> CallContext {
    CallContext {
        phase: "restore".into(),
        ..CallContext::default()
    }
}

fn allow_list() -> Result<PolicyEngine, PolicyError> {
    PolicyEngine::load(&examples().join("allow-list.cedar"), &BTreeMap::new(), &guest())
}

fn k8s(kind: &str, group: &str, namespace: Option<&str>, name: Option<&str>) -> ResourceRef {
    ResourceRef::K8s {
        cluster: "source".into(),
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        namespace: namespace.map(Into::into),
        name: name.map(Into::into),
    }
}

fn hc(namespace: &str, name: &str) -> ResourceRef {
    k8s("HostedCluster", "hypershift.openshift.io", Some(namespace), Some(name))
}

fn obj(bucket: &str, key: &str) -> ResourceRef {
    ResourceRef::S3Object {
        bucket: bucket.into(),
        key: key.into(),
    }
}

#[track_caller]
fn allowed(e: &PolicyEngine, action: Action, r: &ResourceRef) -> Decision {
    let d = e.authorize(action, r, &apply());
    assert!(
        d.allowed,
        "expected {action} on {r:?} to be allowed: {}",
        d.denial_reason(action, r)
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    d
}

#[track_caller]
fn denied(e: &PolicyEngine, action: Action, r: &ResourceRef) -> Decision {
    let d = e.authorize(action, r, &apply());
    assert!(
        !d.allowed,
        "expected {action} on {r:?} to be denied (policies {:?})",
        d.policies
    );
    d
}

#[test]
fn kubernetes_decisions() -> TestResult {
    let e = allow_list()?;
    allowed(&e, Action::K8sOpen, &ResourceRef::Cluster { alias: "source".into() });
    denied(
        &e,
        Action::K8sOpen,
        &ResourceRef::Cluster {
            alias: "destination".into(),
        },
    );

    let d = allowed(&e, Action::K8sGet, &hc("clusters", "prod-a"));
    assert_eq!(d.policies, ["hc-read"]);
    allowed(
        &e,
        Action::K8sList,
        &k8s("HostedCluster", "hypershift.openshift.io", Some("clusters"), None),
    );
    // Same kind, other namespace; same namespace, other kind; write.
    denied(&e, Action::K8sGet, &hc("other", "prod-a"));
    denied(
        &e,
        Action::K8sGet,
        &k8s("Secret", "", Some("clusters"), Some("pull-secret")),
    );
    denied(&e, Action::K8sPatch, &hc("clusters", "prod-a"));
    // Listing across all namespaces needs the cluster, not one namespace.
    denied(
        &e,
        Action::K8sList,
        &k8s("HostedCluster", "hypershift.openshift.io", None, None),
    );

    // The HCP namespace is read-write.
    allowed(
        &e,
        Action::K8sDelete,
        &k8s("Pod", "", Some("clusters-prod-a"), Some("etcd-0")),
    );
    allowed(
        &e,
        Action::K8sScale,
        &k8s("Deployment", "apps", Some("clusters-prod-a"), Some("kube-apiserver")),
    );
    Ok(())
}

#[test]
fn namespace_object_is_inside_its_own_namespace() -> TestResult {
    let e = allow_list()?;
    let ns = k8s("Namespace", "", None, Some("clusters-prod-a"));
    // hcp-namespace-rw covers `resource in Namespace "source/clusters-prod-a"`,
    // which includes the Namespace object itself...
    let d = allowed(&e, Action::K8sGet, &ns);
    assert_eq!(d.policies, ["hcp-namespace-rw"]);
    allowed(&e, Action::K8sPatch, &ns);
    // ...but not another Namespace object.
    denied(&e, Action::K8sGet, &k8s("Namespace", "", None, Some("clusters-prod-b")));
    Ok(())
}

#[test]
fn forbid_beats_permit() -> TestResult {
    let e = allow_list()?;
    let ns = k8s("Namespace", "", None, Some("clusters-prod-a"));
    let d = denied(&e, Action::K8sDelete, &ns);
    assert_eq!(d.policies, ["no-namespace-delete"]);
    assert_eq!(
        d.denial_reason(Action::K8sDelete, &ns),
        "denied by policy `no-namespace-delete` (forbid)"
    );
    Ok(())
}

#[test]
fn default_deny_names_the_resource() -> TestResult {
    let e = allow_list()?;
    let ns = k8s("Namespace", "", None, Some("clusters"));
    let d = denied(&e, Action::K8sGet, &ns);
    assert!(d.policies.is_empty());
    assert_eq!(
        d.denial_reason(Action::K8sGet, &ns),
        "no policy permits k8s:get on K8sObject \"source//Namespace//clusters\" (deny by default)"
    );
    Ok(())
}

#[test]
fn s3_decisions_and_prefix_chains() -> TestResult {
    let e = allow_list()?;
    allowed(
        &e,
        Action::ObjectsOpen,
        &ResourceRef::Bucket {
            bucket: "dr-backups".into(),
        },
    );
    denied(&e, Action::ObjectsOpen, &ResourceRef::Bucket { bucket: "other".into() });

    allowed(&e, Action::ObjectsPut, &obj("dr-backups", "prod-a/etcd/snapshot.db"));
    allowed(&e, Action::ObjectsGet, &obj("dr-backups", "prod-a/manifest.json"));
    allowed(
        &e,
        Action::ObjectsSnapshotUpload,
        &obj("dr-backups", "prod-a/etcd/2024/snap.db"),
    );
    // `prod-a/` is not a string prefix match: `prod-ab/` is a sibling.
    denied(&e, Action::ObjectsGet, &obj("dr-backups", "prod-ab/x"));
    denied(&e, Action::ObjectsPut, &obj("dr-backups", "prod-a"));
    denied(&e, Action::ObjectsGet, &obj("other-bucket", "prod-a/x"));
    // Presigning is not part of s3:read.
    denied(&e, Action::ObjectsPresign, &obj("dr-backups", "prod-a/x"));
    // Dot segments are refused before evaluation.
    let d = denied(&e, Action::ObjectsGet, &obj("dr-backups", "prod-a/../prod-b/x"));
    assert!(d.errors.iter().any(|m| m.contains("..")), "{:?}", d.errors);

    let list = |prefix: &str| ResourceRef::S3Prefix {
        bucket: "dr-backups".into(),
        prefix: prefix.into(),
    };
    allowed(&e, Action::ObjectsList, &list("prod-a/"));
    allowed(&e, Action::ObjectsList, &list("prod-a/etcd/"));
    allowed(&e, Action::ObjectsList, &list("prod-a/2024-"));
    // Without the slash the listing would include `prod-ab/...`: needs the bucket.
    denied(&e, Action::ObjectsList, &list("prod-a"));
    denied(&e, Action::ObjectsList, &list(""));
    denied(
        &e,
        Action::ObjectsList,
        &ResourceRef::Bucket {
            bucket: "dr-backups".into(),
        },
    );
    Ok(())
}

#[test]
fn dns_decisions() -> TestResult {
    let e = allow_list()?;
    let zone = |z: &str| ResourceRef::Zone { zone: z.into() };
    allowed(&e, Action::DnsOpen, &zone("Z0123456789EXAMPLE"));
    allowed(&e, Action::DnsList, &zone("/hostedzone/Z0123456789EXAMPLE"));
    denied(&e, Action::DnsList, &zone("ZOTHER"));

    let rs = |name: &str, t: &str| ResourceRef::RecordSet {
        zone: "Z0123456789EXAMPLE".into(),
        name: name.into(),
        rtype: t.into(),
    };
    // Names are normalised: case, trailing dot, octal escapes.
    allowed(&e, Action::DnsChange, &rs("API.prod-a.example.com.", "a"));
    allowed(&e, Action::DnsChange, &rs("\\052.apps.prod-a.example.com", "CNAME"));
    denied(&e, Action::DnsChange, &rs("api.prod-b.example.com", "A"));
    denied(&e, Action::DnsChange, &rs("api.prod-a.example.com", "TXT"));
    Ok(())
}

#[test]
fn etcd_and_workspace_decisions() -> TestResult {
    let e = allow_list()?;
    let pod = |ns: &str| ResourceRef::EtcdMember {
        cluster: "source".into(),
        namespace: ns.into(),
        pod: "etcd-0".into(),
        endpoint: String::new(),
    };
    allowed(&e, Action::EtcdSnapshot, &pod("clusters-prod-a"));
    denied(&e, Action::EtcdSnapshot, &pod("clusters-prod-b"));
    let endpoint = ResourceRef::EtcdMember {
        cluster: String::new(),
        namespace: String::new(),
        pod: String::new(),
        endpoint: "test".into(),
    };
    denied(&e, Action::EtcdSnapshot, &endpoint);

    let path = |p: &str| ResourceRef::Path { path: p.into() };
    allowed(&e, Action::WorkspaceWrite, &path("backup/prod-a/manifest.json"));
    allowed(&e, Action::WorkspaceRead, &path("./backup//prod-a/manifest.json"));
    allowed(&e, Action::WorkspaceList, &path("backup"));
    allowed(&e, Action::WorkspaceList, &path("backup/prod-a/"));
    denied(&e, Action::WorkspaceList, &path(""));
    denied(&e, Action::WorkspaceRead, &path("backups/x"));
    denied(&e, Action::WorkspaceRead, &path("backup"));
    let d = denied(&e, Action::WorkspaceRead, &path("backup/../secrets"));
    assert!(
        d.denial_reason(Action::WorkspaceRead, &path("backup/../secrets"))
            .starts_with("invalid workspace:read request")
    );
    Ok(())
}

#[test]
fn imports_ignore_versions() -> TestResult {
    let e = allow_list()?;
    assert!(e.check_import("ferry:host/k8s@0.1.0").allowed);
    assert!(e.check_import("ferry:host/k8s").allowed);
    assert_eq!(
        e.check_import("ferry:host/objects@0.2.0").policies,
        ["import-interfaces"]
    );
    let d = e.check_import("ferry:host/etcd@0.1.0");
    assert!(!d.allowed);
    let reason = d.denial_reason(
        Action::Import,
        &ResourceRef::Interface {
            name: "ferry:host/etcd@0.1.0".into(),
        },
    );
    assert!(reason.contains("Interface \"ferry:host/etcd\""), "{reason}");
    Ok(())
}

#[test]
fn other_guests_get_nothing() -> TestResult {
    let other = GuestIdentity {
        name: "someone-else".into(),
        sha256: String::new(),
    };
    let e = PolicyEngine::load(&examples().join("allow-list.cedar"), &BTreeMap::new(), &other)?;
    denied(&e, Action::K8sGet, &hc("clusters", "prod-a"));
    assert!(!e.check_import("ferry:host/k8s").allowed);
    Ok(())
}

#[test]
fn plan_mode_forbid() -> TestResult {
    let e = PolicyEngine::load(&examples().join("plan-mode.cedar"), &BTreeMap::new(), &guest())?;
    let r = hc("clusters", "prod-a");
    let ctx = |plan, dry_run, phase: &str| CallContext {
        plan,
        dry_run,
        phase: phase.into(),
        patch_fields: None,
        presign_seconds: None,
    };
    // Reads are fine in a plan.
    assert!(e.authorize(Action::K8sGet, &r, &ctx(true, false, "backup")).allowed);
    // A real write in a plan is forbidden, a server-side dry-run is not.
    let d = e.authorize(Action::K8sPatch, &r, &ctx(true, false, "restore"));
    assert!(!d.allowed);
    assert_eq!(d.policies, ["no-changes-in-plan"]);
    assert!(e.authorize(Action::K8sPatch, &r, &ctx(true, true, "restore")).allowed);
    // In apply mode, only in the restore phase.
    assert!(e.authorize(Action::K8sPatch, &r, &ctx(false, false, "restore")).allowed);
    let d = e.authorize(Action::K8sPatch, &r, &ctx(false, false, "backup"));
    assert_eq!(d.policies, ["changes-only-in-restore"]);
    Ok(())
}

fn template_params() -> BTreeMap<String, String> {
    [
        ("source", "mgmt"),
        ("hc_namespace", "clusters"),
        ("hc_name", "my.cluster"),
        ("bucket", "dr-backups"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn template_links_from_params() -> TestResult {
    let path = examples().join("hosted-cluster-template.cedar");
    let e = PolicyEngine::load(&path, &template_params(), &guest())?;
    assert_eq!(
        e.params().get("hcp_namespace").map(String::as_str),
        Some("clusters-my-cluster")
    );
    assert_eq!(hcp_namespace("clusters", "my.cluster"), "clusters-my-cluster");
    let ids = e.policy_ids();
    for id in [
        "open-cluster#1",
        "hc-namespaces-read#1",
        "hc-namespaces-read#2",
        "hc-objects-write#1",
        "backup-prefix#1",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
    }

    let m = |kind: &str, group: &str, ns: &str, name: &str| ResourceRef::K8s {
        cluster: "mgmt".into(),
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        namespace: Some(ns.into()),
        name: Some(name.into()),
    };
    assert!(
        e.authorize(
            Action::K8sOpen,
            &ResourceRef::Cluster { alias: "mgmt".into() },
            &apply()
        )
        .allowed
    );
    let d = e.authorize(Action::K8sGet, &m("Secret", "", "clusters-my-cluster", "x"), &apply());
    assert_eq!(d.policies, ["hc-namespaces-read#2"]);
    let list = ResourceRef::K8s {
        cluster: "mgmt".into(),
        group: String::new(),
        version: "v1".into(),
        kind: "Secret".into(),
        namespace: Some("clusters".into()),
        name: None,
    };
    assert!(e.authorize(Action::K8sList, &list, &apply()).allowed);
    assert!(
        !e.authorize(Action::K8sGet, &m("Secret", "", "clusters-other", "x"), &apply())
            .allowed
    );
    assert!(
        e.authorize(
            Action::K8sPatch,
            &m("NodePool", "hypershift.openshift.io", "clusters", "np"),
            &apply()
        )
        .allowed
    );
    assert!(
        !e.authorize(Action::K8sPatch, &m("Secret", "", "clusters", "x"), &apply())
            .allowed
    );
    assert!(
        e.authorize(Action::ObjectsPut, &obj("dr-backups", "my.cluster/etcd.db"), &apply())
            .allowed
    );
    assert!(
        !e.authorize(Action::ObjectsPut, &obj("dr-backups", "my.clusterx/etcd.db"), &apply())
            .allowed
    );

    // The ?principal slot defaults to the running guest only.
    let other = GuestIdentity {
        name: "other".into(),
        sha256: String::new(),
    };
    let e2 = PolicyEngine::load(&path, &template_params(), &other)?;
    assert!(
        e2.authorize(
            Action::K8sOpen,
            &ResourceRef::Cluster { alias: "mgmt".into() },
            &apply()
        )
        .allowed
    );
    Ok(())
}

#[test]
fn template_link_with_explicit_principal() -> TestResult {
    let src = r#"
        @id("t")
        @link("principal=Ferry::Guest::\"{who}\", resource=Ferry::Bucket::\"{bucket}\"")
        permit (principal == ?principal, action == Ferry::Action::"objects:open", resource == ?resource);
    "#;
    let mut params = template_params();
    params.insert("who".into(), "hosted-cluster-dr".into());
    let e = PolicyEngine::from_source(src, "inline", &params, &guest())?;
    assert!(
        e.authorize(
            Action::ObjectsOpen,
            &ResourceRef::Bucket {
                bucket: "dr-backups".into()
            },
            &apply()
        )
        .allowed
    );
    params.insert("who".into(), "someone-else".into());
    let e = PolicyEngine::from_source(src, "inline", &params, &guest())?;
    assert!(
        !e.authorize(
            Action::ObjectsOpen,
            &ResourceRef::Bucket {
                bucket: "dr-backups".into()
            },
            &apply()
        )
        .allowed
    );
    Ok(())
}

#[test]
fn missing_param_names_template_and_param() {
    let mut params = template_params();
    params.remove("bucket");
    let err = PolicyEngine::load(&examples().join("hosted-cluster-template.cedar"), &params, &guest())
        .err()
        .map(|e| (e.to_string(), e));
    match err {
        Some((text, PolicyError::MissingParam { template, param })) => {
            assert_eq!((template.as_str(), param.as_str()), ("backup-prefix", "bucket"));
            assert!(text.contains("backup-prefix") && text.contains("bucket"), "{text}");
        }
        other => panic!("expected MissingParam, got {other:?}"),
    }
}

#[test]
fn parameter_values_cannot_inject_cedar() -> TestResult {
    // A value with quotes becomes part of the id; it cannot close the string
    // and name another entity.
    let mut params = template_params();
    params.insert("source".into(), "x\" || true || \"".into());
    let e = PolicyEngine::load(&examples().join("hosted-cluster-template.cedar"), &params, &guest())?;
    assert!(
        !e.authorize(
            Action::K8sOpen,
            &ResourceRef::Cluster { alias: "mgmt".into() },
            &apply()
        )
        .allowed
    );
    Ok(())
}

#[test]
fn guest_digest_can_be_pinned() -> TestResult {
    let src = r#"
        @id("pinned")
        permit (principal, action == Ferry::Action::"objects:open", resource)
        when { principal.sha256 == "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12" };
    "#;
    let bucket = ResourceRef::Bucket { bucket: "b".into() };
    let e = PolicyEngine::from_source(src, "inline", &BTreeMap::new(), &guest())?;
    assert!(e.authorize(Action::ObjectsOpen, &bucket, &apply()).allowed);
    let tampered = GuestIdentity {
        sha256: "00".into(),
        ..guest()
    };
    let e = PolicyEngine::from_source(src, "inline", &BTreeMap::new(), &tampered)?;
    assert!(!e.authorize(Action::ObjectsOpen, &bucket, &apply()).allowed);
    Ok(())
}

#[test]
fn link_on_a_static_policy_is_an_error() {
    let src = r#"@id("static") @link("resource=Ferry::Bucket::\"b\"") permit (principal, action, resource);"#;
    let err = PolicyEngine::from_source(src, "inline", &BTreeMap::new(), &guest()).err();
    assert!(
        matches!(&err, Some(PolicyError::Link { template, .. }) if template == "static"),
        "{err:?}"
    );
}

#[test]
fn template_without_link_is_an_error() {
    let src = r#"@id("lonely") permit (principal == ?principal, action, resource);"#;
    let err = PolicyEngine::from_source(src, "inline", &BTreeMap::new(), &guest()).err();
    assert!(
        matches!(&err, Some(PolicyError::Link { template, .. }) if template == "lonely"),
        "{err:?}"
    );
}

#[test]
fn malformed_policy_reports_line_and_column() {
    let path = examples().join("malformed.cedar");
    let err = PolicyEngine::load(&path, &BTreeMap::new(), &guest()).err();
    let Some(PolicyError::Parse { origin, message }) = &err else {
        panic!("expected Parse, got {err:?}")
    };
    assert!(origin.ends_with("malformed.cedar"));
    // The stray `resource` after the action is on line 5 of the file.
    assert!(message.contains("malformed.cedar:5:"), "{message}");
    println!("{}", err.map(|e| e.to_string()).unwrap_or_default());
}

#[test]
fn schema_invalid_policy_names_the_policy() {
    let path = examples().join("invalid-schema.cedar");
    let err = PolicyEngine::load(&path, &BTreeMap::new(), &guest()).err();
    let Some(PolicyError::Validation { errors, .. }) = &err else {
        panic!("expected Validation, got {err:?}")
    };
    let all = errors.join("\n");
    assert!(
        all.contains("uses-unknown-attribute") && all.contains("labels"),
        "{all}"
    );
    assert!(
        all.contains("uses-unknown-action") && all.contains("k8s:watch"),
        "{all}"
    );
    assert!(all.contains("invalid-schema.cedar:6:"), "{all}");
    println!("{}", err.map(|e| e.to_string()).unwrap_or_default());
}

#[test]
fn linked_entities_are_validated() {
    let src = r#"
        @id("bad-link")
        @link("resource=Ferry::Nope::\"x\"")
        permit (principal == ?principal, action == Ferry::Action::"objects:open", resource == ?resource);
    "#;
    let err = PolicyEngine::from_source(src, "inline", &BTreeMap::new(), &guest()).err();
    assert!(
        matches!(&err, Some(PolicyError::Validation { .. } | PolicyError::Link { .. })),
        "expected a load error, got {err:?}"
    );
    println!("{}", err.map(|e| e.to_string()).unwrap_or_default());
}

#[test]
fn duplicate_ids_and_missing_files_fail() {
    let src = r#"@id("a") permit (principal, action, resource); @id("a") forbid (principal, action, resource);"#;
    assert!(matches!(
        PolicyEngine::from_source(src, "inline", &BTreeMap::new(), &guest()),
        Err(PolicyError::Parse { .. })
    ));
    let missing = PolicyEngine::load(&examples().join("does-not-exist.cedar"), &BTreeMap::new(), &guest());
    assert!(matches!(missing, Err(PolicyError::Io { .. })));
}

#[test]
fn policies_without_id_get_positional_ids() -> TestResult {
    let src = r#"
        permit (principal, action == Ferry::Action::"objects:open", resource);
        @id("named") permit (principal, action == Ferry::Action::"dns:open", resource);
    "#;
    let e = PolicyEngine::from_source(src, "inline", &BTreeMap::new(), &guest())?;
    assert_eq!(e.policy_ids(), ["policy0", "named"]);
    let d = e.authorize(
        Action::ObjectsOpen,
        &ResourceRef::Bucket { bucket: "b".into() },
        &apply(),
    );
    assert_eq!(d.policies, ["policy0"]);
    e.validate()?;
    Ok(())
}

#[test]
fn explain_in_plain_words() -> TestResult {
    let e = allow_list()?;
    let text = e.explain();
    println!("{text}");
    let line = |needle: &str, id: &str| {
        assert!(
            text.lines()
                .any(|l| l.contains(needle) && l.trim_end().ends_with(&format!("[{id}]"))),
            "no line with `{needle}` [{id}] in:\n{text}"
        );
    };
    assert!(
        text.starts_with("Guest `hosted-cluster-dr` (sha256 ab12cd34ef56…) may:\n"),
        "{text}"
    );
    line(
        "import ferry:host/context, ferry:host/k8s, ferry:host/objects, ferry:host/workspace",
        "import-interfaces",
    );
    line(
        "k8s:read (k8s:get, k8s:list) on objects in namespace source/clusters when group is \"hypershift.openshift.io\" and kind is \"HostedCluster\"",
        "hc-read",
    );
    line("on anything under s3://dr-backups/prod-a/", "backup-prefix-rw");
    line(
        "dns:change on anything in zone Z0123456789EXAMPLE when resource.name like \"*.prod-a.example.com\"",
        "dns-cutover",
    );
    line(
        "k8s:delete on any resource when kind is \"Namespace\" and group is \"\"",
        "no-namespace-delete",
    );
    let never = text.find("It may never:").ok_or("no forbid section")?;
    assert!(text[never..].contains("no-namespace-delete"));
    assert!(text.trim_end().ends_with("Everything else is denied by default."));

    let t = PolicyEngine::load(
        &examples().join("hosted-cluster-template.cedar"),
        &template_params(),
        &guest(),
    )?;
    let text = t.explain();
    println!("{text}");
    assert!(text.contains("k8s:open on cluster mgmt"), "{text}");
    assert!(text.contains("objects in namespace mgmt/clusters-my-cluster"), "{text}");

    let p = PolicyEngine::load(&examples().join("plan-mode.cedar"), &BTreeMap::new(), &guest())?;
    let text = p.explain();
    println!("{text}");
    assert!(
        text.contains("any mutating action on any resource unless (context.plan == false) || context.dryRun"),
        "{text}"
    );
    Ok(())
}

#[test]
fn schema_is_exposed() {
    assert!(PolicyEngine::schema().contains("namespace Ferry"));
}

#[test]
fn authorize_cost() -> TestResult {
    let e = allow_list()?;
    let cases = [
        ("k8s get (allow)", Action::K8sGet, hc("clusters", "prod-a")),
        ("k8s get other ns (deny)", Action::K8sGet, hc("other", "prod-a")),
        (
            "namespace delete (forbid)",
            Action::K8sDelete,
            k8s("Namespace", "", None, Some("clusters-prod-a")),
        ),
        (
            "s3 put 4-level key (allow)",
            Action::ObjectsPut,
            obj("dr-backups", "prod-a/etcd/2024/snap.db"),
        ),
        (
            "dns list (allow)",
            Action::DnsList,
            ResourceRef::Zone {
                zone: "Z0123456789EXAMPLE".into(),
            },
        ),
    ];
    const N: u32 = 10_000;
    let ctx = apply();
    for (label, action, r) in &cases {
        // Warm up, then time; report, never assert (shared, noisy machine).
        let expect = e.authorize(*action, r, &ctx).allowed;
        let start = Instant::now();
        for _ in 0..N {
            assert_eq!(e.authorize(*action, r, &ctx).allowed, expect);
        }
        let per_call = start.elapsed() / N;
        println!(
            "authorize {label:<28} {:>8.1} µs/call ({N} calls)",
            per_call.as_secs_f64() * 1e6
        );
    }
    Ok(())
}

/// Policies written with the names used before actions followed the WIT interfaces (`s3:*`,
/// `fs:*`) keep working, with a deprecation warning.
#[test]
fn deprecated_action_names_load_with_a_warning() -> TestResult {
    let src = r#"
        @id("old")
        permit (principal, action in [Ferry::Action::"s3:get", Ferry::Action::"fs:read"], resource);
    "#;
    let p = PolicyEngine::from_source(src, "old.cedar", &BTreeMap::new(), &guest())?;
    assert!(
        p.warnings().iter().any(|w| w.contains("`s3:*` are deprecated")),
        "{:?}",
        p.warnings()
    );
    assert!(
        p.warnings().iter().any(|w| w.contains("`fs:*` are deprecated")),
        "{:?}",
        p.warnings()
    );
    let obj = ResourceRef::S3Object {
        bucket: "b".into(),
        key: "k".into(),
    };
    assert!(p.authorize(Action::ObjectsGet, &obj, &apply()).allowed);
    assert!(!p.authorize(Action::ObjectsPut, &obj, &apply()).allowed);
    Ok(())
}
