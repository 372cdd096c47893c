//! `hypershift install` as it puts HyperShift on a management cluster
//! (`cmd/install/install.go` `hyperShiftOperatorManifests`, the builders of
//! `cmd/install/assets/hypershift_operator.go`), and as MCE's addon runs it
//! (stolostron/hypershift-addon-operator `pkg/install/hypershift.go` `runHypershiftInstall`:
//! `--enable-defaulting-webhook --enable-validating-webhook`, see [`InstallOptions::mce`]).
//!
//! What it writes is what the DR path meets: the `hypershift` namespace, the operator's
//! Deployment and Service, its admission webhook configurations, external-dns, and the
//! conversion and storage version of the CRDs (`setupCRDs`). The rest of the installer's
//! assets (RBAC, PriorityClasses, monitoring) has a row in `sim/inventory.toml` that says why it
//! is not written. The operator's answers to its webhooks are [`super::operator_webhooks`].

use serde_json::{Value, json};

use crate::kube::error::{ApiError, Reason};
use crate::kube::patch::Patch;
use crate::kube::registry;
use crate::kube::store::{Store, WriteOptions};

/// The operator's namespace (`--namespace`, default `hypershift`).
pub const NAMESPACE: &str = "hypershift";

/// The name of the operator's Deployment and Service, and of its webhook Service.
pub const OPERATOR: &str = "operator";

/// Both webhook configurations are named after HyperShift's API group.
pub const WEBHOOK_CONFIGURATION: &str = "hypershift.openshift.io";

/// `controller-runtime`'s paths for the operator's webhooks (`builder/webhook.go`
/// `generateMutatePath`, `generateValidatePath`).
pub const MUTATE_HOSTED_CLUSTER: &str = "/mutate-hypershift-openshift-io-v1beta1-hostedcluster";
/// See [`MUTATE_HOSTED_CLUSTER`].
pub const MUTATE_NODE_POOL: &str = "/mutate-hypershift-openshift-io-v1beta1-nodepool";
/// See [`MUTATE_HOSTED_CLUSTER`].
pub const VALIDATE_HOSTED_CLUSTER: &str = "/validate-hypershift-openshift-io-v1beta1-hostedcluster";
/// See [`MUTATE_HOSTED_CLUSTER`].
pub const VALIDATE_NODE_POOL: &str = "/validate-hypershift-openshift-io-v1beta1-nodepool";
/// The conversion endpoint of every CRD `setupCRDs` gives a webhook conversion.
pub const CONVERT: &str = "/convert";

/// The default external-dns image: "tag 1.2.1" of Red Hat's ExternalDNS Operator, whose operand
/// is upstream external-dns v0.13.1 (`cmd/install/install.go` `ExternalDNSImage`).
pub const EXTERNAL_DNS_IMAGE: &str =
    "registry.redhat.io/edo/external-dns-rhel8@sha256:9f60c682b44497d9736a04991c0d2b3485d477f6c89a87c4a44a211a3d1f3cd4";

/// The CAPI core resources whose CRDs `setupCRDs` gives the operator's conversion webhook
/// (`crds/assets.go` `capiCRDNames`, the ones served here).
pub const CAPI_RESOURCES: &[&str] = &[
    "clusters",
    "machines",
    "machinesets",
    "machinedeployments",
    "machinehealthchecks",
];

/// The `install` flags that change what the DR path meets.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// `--enable-defaulting-webhook`: the MutatingWebhookConfiguration.
    pub defaulting_webhook: bool,
    /// `--enable-validating-webhook`: the ValidatingWebhookConfiguration, and the operator
    /// keeps it (it deletes it at start without the flag, `cleanupLegacyWebhook`).
    pub validating_webhook: bool,
    /// `--disable-capi-migration`: CAPI stored as `v1beta1`, and no storage migration
    /// (`capiStorageVersionForOpts`).
    pub disable_capi_migration: bool,
    /// `--hypershift-image`.
    pub image: String,
    /// `--external-dns-*`: the external-dns Deployment, when set.
    pub external_dns: Option<ExternalDnsInstall>,
}

/// `--external-dns-provider=aws` and the flags that go with it.
#[derive(Debug, Clone)]
pub struct ExternalDnsInstall {
    /// `--external-dns-domain-filter`.
    pub domain_filter: String,
    /// `--external-dns-txt-owner-id` (the installer makes a random one when empty).
    pub txt_owner_id: String,
    /// `--external-dns-interval` (default `1m`, `DefaultExternalDNSInterval`).
    pub interval: String,
}

impl InstallOptions {
    /// A plain `hypershift install` (conversion webhooks only; `NewInstallOptionsWithDefaults`).
    pub fn upstream(image: &str) -> Self {
        InstallOptions {
            defaulting_webhook: false,
            validating_webhook: false,
            disable_capi_migration: false,
            image: image.to_string(),
            external_dns: None,
        }
    }

    /// As MCE's addon installs it on a self-managed cluster: both admission webhooks on.
    pub fn mce(image: &str) -> Self {
        InstallOptions {
            defaulting_webhook: true,
            validating_webhook: true,
            ..Self::upstream(image)
        }
    }

    /// `capiStorageVersionForOpts`: `v1beta2`, or `v1beta1` with `--disable-capi-migration`.
    pub fn capi_storage_version(&self) -> &'static str {
        if self.disable_capi_migration {
            "v1beta1"
        } else {
            "v1beta2"
        }
    }
}

/// `HyperShiftOperatorDeployment.Build`: two replicas whenever a webhook is on (the conversion
/// webhook is by default, `ApplyDefaults`), `--cert-dir` for the webhook server, and the env
/// the operator reads (`CAPI_STORAGE_VERSION` decides whether its CAPI migrator runs).
pub fn operator_deployment(opts: &InstallOptions) -> Value {
    let mut args = vec![
        "run".to_string(),
        "--namespace=$(MY_NAMESPACE)".into(),
        "--pod-name=$(MY_NAME)".into(),
        "--metrics-addr=:9000".into(),
        "--enable-dedicated-request-serving-isolation=true".into(),
        "--enable-ocp-cluster-monitoring=false".into(),
        "--enable-ci-debug-output=false".into(),
        "--private-platform=None".into(),
        "--cert-dir=/var/run/secrets/serving-cert".into(),
    ];
    if opts.validating_webhook {
        args.push("--enable-validating-webhook=true".into());
    }
    let labels = json!({"name": OPERATOR, "hypershift.openshift.io/operator-component": OPERATOR, "app": OPERATOR});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": OPERATOR, "namespace": NAMESPACE, "labels": {"name": OPERATOR}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"name": OPERATOR}},
            "template": {"metadata": {"labels": labels},
                "spec": {"serviceAccountName": OPERATOR, "priorityClassName": "hypershift-operator",
                    "containers": [{"name": OPERATOR, "image": opts.image,
                        "command": ["/usr/bin/hypershift-operator"], "args": args,
                        "ports": [{"name": "metrics", "containerPort": 9000}, {"name": "manager", "containerPort": 9443}],
                        "env": [{"name": "CAPI_STORAGE_VERSION", "value": opts.capi_storage_version()},
                            {"name": "ENABLE_ETCD_RECOVERY", "value": "1"}]}]}}},
    })
}

/// `HyperShiftOperatorService.Build`: `manager` 443 → 9443 (the webhooks), `metrics` 9393.
pub fn operator_service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": OPERATOR, "namespace": NAMESPACE, "labels": {"name": OPERATOR}},
        "spec": {"type": "ClusterIP", "selector": {"name": OPERATOR},
            "ports": [{"name": "metrics", "port": 9393, "targetPort": "metrics", "protocol": "TCP"},
                {"name": "manager", "port": 443, "targetPort": "manager", "protocol": "TCP"}]},
    })
}

fn webhook(name: &str, resource: &str, operations: &[&str], path: &str) -> Value {
    json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"service": {"namespace": NAMESPACE, "name": OPERATOR, "path": path}},
        "rules": [{"operations": operations, "apiGroups": ["hypershift.openshift.io"], "apiVersions": ["v1beta1"],
            "resources": [resource], "scope": "Namespaced"}],
        "sideEffects": "None",
        "timeoutSeconds": 15,
    })
}

/// `HyperShiftMutatingWebhookConfiguration.Build`: HostedCluster and NodePool CREATE, its
/// failurePolicy left to the API server's default (`Fail`).
pub fn mutating_webhook_configuration() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIGURATION},
        "webhooks": [
            webhook("hostedclusters.hypershift.openshift.io", "hostedclusters", &["CREATE"], MUTATE_HOSTED_CLUSTER),
            webhook("nodepools.hypershift.openshift.io", "nodepools", &["CREATE"], MUTATE_NODE_POOL),
        ],
    })
}

/// `HyperShiftValidatingWebhookConfiguration.Build`: HostedCluster and NodePool CREATE and
/// UPDATE, `failurePolicy: Fail`, no selectors.
pub fn validating_webhook_configuration() -> Value {
    let mut hc = webhook(
        "hostedclusters.hypershift.openshift.io",
        "hostedclusters",
        &["CREATE", "UPDATE"],
        VALIDATE_HOSTED_CLUSTER,
    );
    let mut np = webhook(
        "nodepools.hypershift.openshift.io",
        "nodepools",
        &["CREATE", "UPDATE"],
        VALIDATE_NODE_POOL,
    );
    hc["failurePolicy"] = json!("Fail");
    np["failurePolicy"] = json!("Fail");
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIGURATION},
        "webhooks": [hc, np],
    })
}

/// The args of `ExternalDNSDeployment.Build` for the AWS provider.
pub fn external_dns_args(ed: &ExternalDnsInstall) -> Vec<String> {
    vec![
        "--source=service".to_string(),
        "--source=openshift-route".into(),
        format!("--domain-filter={}", ed.domain_filter),
        "--provider=aws".into(),
        "--registry=txt".into(),
        "--txt-suffix=-external-dns".into(),
        format!("--txt-owner-id={}", ed.txt_owner_id),
        "--label-filter=hypershift.openshift.io/route-visibility!=private".into(),
        format!("--interval={}", ed.interval),
        "--txt-cache-interval=1h".into(),
        "--aws-zone-type=public".into(),
        "--aws-batch-change-interval=10s".into(),
        "--aws-zones-cache-duration=1h".into(),
    ]
}

/// `ExternalDNSDeployment.Build`: one replica, no update strategy (RollingUpdate), the image
/// of [`EXTERNAL_DNS_IMAGE`].
pub fn external_dns_deployment(ed: &ExternalDnsInstall) -> Value {
    let labels = json!({"name": "external-dns", "app": "external-dns",
        "hypershift.openshift.io/operator-component": "external-dns"});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "external-dns", "namespace": NAMESPACE, "labels": {"name": "external-dns"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"name": "external-dns"}},
            "template": {"metadata": {"labels": labels},
                "spec": {"serviceAccountName": "external-dns", "priorityClassName": "hypershift-operator",
                    "containers": [{"name": "external-dns", "image": EXTERNAL_DNS_IMAGE, "command": ["/external-dns"],
                        "args": external_dns_args(ed),
                        "ports": [{"name": "metrics", "containerPort": 7979}],
                        "env": [{"name": "AWS_SHARED_CREDENTIALS_FILE", "value": "/etc/provider/credentials"},
                            {"name": "AWS_REGION", "value": "us-east-1"}]}]}}},
    })
}

fn apply(store: &Store, kind: &registry::KindInfo, namespace: Option<&str>, obj: Value) -> Result<(), ApiError> {
    match store.create(kind, namespace, obj.clone(), &WriteOptions::default()) {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::AlreadyExists => {
            // `apply` is a server-side apply with force ownership: what it sets wins.
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            store
                .patch(
                    kind,
                    namespace,
                    name,
                    &Patch::Merge(obj.clone()),
                    &WriteOptions::default(),
                )
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Installs HyperShift on `store` as `hypershift install` does with `opts`.
pub fn install(store: &Store, opts: &InstallOptions) -> Result<(), ApiError> {
    apply(
        store,
        &registry::NAMESPACE,
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE,
            "labels": {"hypershift.openshift.io/component": "operator", "hypershift.openshift.io/monitoring": "true"}}}),
    )?;
    apply(
        store,
        &registry::SERVICE_ACCOUNT,
        Some(NAMESPACE),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": OPERATOR, "namespace": NAMESPACE}}),
    )?;
    if opts.defaulting_webhook {
        apply(
            store,
            &registry::MUTATING_WEBHOOK_CONFIGURATION,
            None,
            mutating_webhook_configuration(),
        )?;
    }
    if opts.validating_webhook {
        apply(
            store,
            &registry::VALIDATING_WEBHOOK_CONFIGURATION,
            None,
            validating_webhook_configuration(),
        )?;
    }
    if let Some(ed) = &opts.external_dns {
        apply(
            store,
            &registry::SERVICE_ACCOUNT,
            Some(NAMESPACE),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "external-dns", "namespace": NAMESPACE}}),
        )?;
        apply(
            store,
            &registry::DEPLOYMENT,
            Some(NAMESPACE),
            external_dns_deployment(ed),
        )?;
    }
    apply(store, &registry::DEPLOYMENT, Some(NAMESPACE), operator_deployment(opts))?;
    apply(store, &registry::SERVICE, Some(NAMESPACE), operator_service())?;
    apply(
        store,
        &registry::CONFIG_MAP,
        Some(NAMESPACE),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "feature-gate", "namespace": NAMESPACE},
            "data": {"TechPreviewEnabled": "false"}}),
    )?;
    setup_crds(store, opts, true)
}

/// `setupCRDs`: every HyperShift CRD and the CAPI core CRDs convert through the operator's
/// `/convert`; the CAPI CRDs are stored in [`InstallOptions::capi_storage_version`]. A `fresh`
/// install creates them so (`status.storedVersions` is the storage version alone); an upgrade
/// changes the storage version of existing CRDs, which the API server appends to
/// `storedVersions`. CRDs the server does not serve (built-in rows) are left alone.
pub fn setup_crds(store: &Store, opts: &InstallOptions, fresh: bool) -> Result<(), ApiError> {
    let crds = store.list(
        &registry::CUSTOM_RESOURCE_DEFINITION,
        None,
        &crate::kube::store::ListOptions::default(),
    )?;
    for crd in crds.items {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let capi = group == super::capi::CAPI_GROUP && CAPI_RESOURCES.contains(&plural);
        if group != "hypershift.openshift.io" && !capi {
            continue;
        }
        let review = if capi {
            json!(["v1beta1", "v1beta2"])
        } else {
            json!(["v1beta1", "v1alpha1"])
        };
        let mut spec = json!({"conversion": {"strategy": "Webhook", "webhook": {
            "clientConfig": {"service": {"name": OPERATOR, "namespace": NAMESPACE, "path": CONVERT, "port": 443}},
            "conversionReviewVersions": review}}});
        if capi {
            let storage = opts.capi_storage_version();
            let mut versions = crd.pointer("/spec/versions").cloned().unwrap_or(json!([]));
            let mut found = false;
            for v in versions.as_array_mut().into_iter().flatten() {
                let is = v.get("name").and_then(Value::as_str) == Some(storage);
                found |= is;
                v["storage"] = json!(is);
            }
            if found {
                spec["versions"] = versions;
            }
        }
        store.patch(
            &registry::CUSTOM_RESOURCE_DEFINITION,
            None,
            &name,
            &Patch::Merge(json!({"spec": spec})),
            &WriteOptions::default(),
        )?;
        if capi
            && fresh
            && let Ok(now) = store.get(&registry::CUSTOM_RESOURCE_DEFINITION, None, &name)
        {
            let storage = now
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .and_then(|vs| {
                    vs.iter()
                        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                })
                .and_then(|v| v.get("name").cloned());
            if let Some(storage) = storage {
                store.patch(
                    &registry::CUSTOM_RESOURCE_DEFINITION,
                    None,
                    &name,
                    &Patch::Merge(json!({"status": {"storedVersions": [storage]}})),
                    &WriteOptions::status(),
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MCE's install has both webhook configurations, two operator replicas behind the Service
    /// the webhooks name, and external-dns with HyperShift's arguments.
    #[test]
    fn an_mce_install_writes_what_the_installer_writes() {
        let store = Store::new(crate::kube::registry::Registry::builtin(), 1000);
        let mut opts = InstallOptions::mce("quay.io/hypershift/hypershift-operator:3ee9615");
        opts.external_dns = Some(ExternalDnsInstall {
            domain_filter: "guest.example.com".into(),
            txt_owner_id: "owner-a".into(),
            interval: "1m".into(),
        });
        install(&store, &opts).expect("install");
        let vwc = store
            .get(&registry::VALIDATING_WEBHOOK_CONFIGURATION, None, WEBHOOK_CONFIGURATION)
            .expect("validating");
        assert_eq!(vwc["webhooks"][0]["failurePolicy"], "Fail");
        assert_eq!(vwc["webhooks"][1]["clientConfig"]["service"]["name"], "operator");
        assert_eq!(
            vwc["webhooks"][0]["objectSelector"],
            json!({}),
            "defaulted by the API server"
        );
        let mwc = store
            .get(&registry::MUTATING_WEBHOOK_CONFIGURATION, None, WEBHOOK_CONFIGURATION)
            .expect("mutating");
        assert_eq!(
            mwc["webhooks"][0]["failurePolicy"], "Fail",
            "left to the API server's default"
        );
        let d = store
            .get(&registry::DEPLOYMENT, Some(NAMESPACE), OPERATOR)
            .expect("operator");
        assert_eq!(d["spec"]["replicas"], 2);
        let ed = store
            .get(&registry::DEPLOYMENT, Some(NAMESPACE), "external-dns")
            .expect("external-dns");
        let args = ed["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(
            args.contains("--txt-cache-interval=1h") && args.contains("--interval=1m"),
            "{args}"
        );
        assert!(store.get(&registry::SERVICE, Some(NAMESPACE), OPERATOR).is_ok());
        // An upstream install has no admission webhooks.
        let plain = Store::new(crate::kube::registry::Registry::builtin(), 1000);
        install(&plain, &InstallOptions::upstream("img")).expect("install");
        assert!(
            plain
                .get(&registry::VALIDATING_WEBHOOK_CONFIGURATION, None, WEBHOOK_CONFIGURATION)
                .is_err()
        );
    }
}
