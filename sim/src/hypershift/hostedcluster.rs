//! The HyperShift operator's HostedCluster controller
//! (`hypershift-operator/controllers/hostedcluster/hostedcluster_controller.go`, `reconcile`),
//! in upstream's order:
//!
//! 1. **Deletion** (Phase 2) comes first and never looks at `pausedUntil` (`delete`): unpause
//!    the CAPI Cluster, delete the NodePools, delete the CAPI Cluster and wait, drop the
//!    component finalizers, delete the AWSEndpointServices and wait, delete the
//!    HostedControlPlane and wait, delete the control-plane namespace and wait, then drop the
//!    HostedCluster's finalizer.
//! 2. **Status** (Phase 4): the conditions copied from the HostedControlPlane ("Copy conditions
//!    from hostedcontrolplane": twelve types, `Unknown` when the HCP lacks them;
//!    `EtcdSnapshotRestored` is not among them), the ones computed here (`Available`,
//!    `Progressing`, `ReconciliationActive`, `ValidConfiguration`, ...), written even while
//!    paused.
//! 3. The HostedCluster finalizer, then `reconcileCAPIFinalizers` (the component finalizer on
//!    the `cluster-api` and `capi-provider` Deployments), **then** the pause check: a paused
//!    HostedCluster only gets its HCP's `pausedUntil` (`pauseHostedControlPlane`) and its CAPI
//!    Cluster's `spec.paused` (`pauseCAPICluster`).
//! 4. Otherwise: IDs, the control-plane namespace, the secret syncs (pull secret, SSH key,
//!    encryption key, trust bundle, the configuration references of `api/util/configrefs`),
//!    the restored-from-backup step, `CoreHCPChain` (HostedControlPlane, AWSCluster, CAPI
//!    Cluster), the operator Deployments (control-plane-operator, cluster-api, capi-provider),
//!    and `ReconciliationSucceeded`.
//!
//! A failed HostedControlPlane update (its CEL rules refuse, for example, a different
//! `restoreSnapshotURL`) is a critical error that blocks the later steps, as upstream's
//! `reconcileReport` does.

use serde_json::{Map, Value, json};

use super::context::{Ctx, OperatorEvent};
use super::{
    CAPI_COMPONENTS, CLUSTER_ANNOTATION, COMPONENT_FINALIZER, CPO_ENDPOINT_FINALIZER, Condition,
    DISABLE_MACHINE_MANAGEMENT_ANNOTATION, FINALIZER, HO_ENDPOINT_FINALIZER, Pause, RESTORED_FROM_BACKUP_ANNOTATION,
    SKIP_NAMESPACE_DELETION_ANNOTATION, add_finalizer, annotation, delete_if_needed, deployment_condition,
    finalizers_of, get, hcp_namespace, is_deleting, list, name_of, namespace_of, remove_finalizer, set_conditions,
};
use crate::kube::error::{ApiError, Reason};
use crate::kube::patch::Patch;
use crate::kube::registry::{self, KindInfo};
use crate::kube::store::{Store, WriteOptions};

/// The HCP conditions the HO copies to the HostedCluster (`hcpConditions`).
pub const COPIED_CONDITIONS: &[&str] = &[
    "EtcdAvailable",
    "KubeAPIServerAvailable",
    "InfrastructureReady",
    "ExternalDNSReachable",
    "ValidHostedControlPlaneConfiguration",
    "ValidReleaseInfo",
    "ValidIDPConfiguration",
    "HostedClusterRestoredFromBackup",
    "DataPlaneConnectionAvailable",
    "ControlPlaneConnectionAvailable",
    "EtcdBackupSucceeded",
    "ConfigOperatorReconciliationSucceeded",
    "ValidAWSIdentityProvider",
];

/// The HO's finalizer that marks the issuer's documents uploaded (`oidcDocumentsFinalizer`).
pub const OIDC_DOCUMENTS_FINALIZER: &str = "hypershift.io/aws-oidc-discovery";

/// `reconcileAWSOIDCDocuments`' error when the operator has no OIDC bucket.
pub const NO_OIDC_STORAGE: &str = "hypershift wasn't configured with a S3 bucket or credentials, this makes it unable \
    to set up OIDC for AWS clusters. Please install hypershift with the --oidc-storage-provider-s3-bucket-name, \
    --oidc-storage-provider-s3-region and --oidc-storage-provider-s3-credentials flags set. The bucket must \
    pre-exist and the credentials must be authorized to write into it";

/// The annotations mirrored from HostedCluster to HostedControlPlane
/// (`reconcileHostedControlPlaneAnnotations`, `mirroredAnnotations`): copied when present,
/// removed when absent.
pub const MIRRORED_ANNOTATIONS: &[&str] = &[
    "hypershift.openshift.io/disable-pki-reconciliation",
    "oauth.hypershift.openshift.io/login-url-override",
    "hypershift.openshift.io/konnectivity-agent-image",
    "hypershift.openshift.io/konnectivity-server-image",
    "hypershift.openshift.io/cluster-autoscaler-image",
    "hypershift.openshift.io/ibmcloud-kms-provider-image",
    "hypershift.openshift.io/aws-kms-provider-image",
    "hypershift.openshift.io/portieris-image",
    "hypershift.openshift.io/debug-deployments",
    "hypershift.openshift.io/disable-profiling",
    "hypershift.openshift.io/private-ingress-controller",
    "hypershift.openshift.io/ingress-controller-load-balancer-scope",
    "hypershift.openshift.io/cleanup-cloud-resources",
    "hypershift.openshift.io/control-plane-priority-class",
    "hypershift.openshift.io/api-critical-priority-class",
    "hypershift.openshift.io/etcd-priority-class",
    "hypershift.openshift.io/ensureexists-pullsecret-reconcile",
    "hypershift.openshift.io/topology",
    "hypershift.openshift.io/disable-machine-management",
    "hypershift.openshift.io/certified-operators-catalog-image",
    "hypershift.openshift.io/community-operators-catalog-image",
    "hypershift.openshift.io/redhat-marketplace-catalog-image",
    "hypershift.openshift.io/redhat-operators-catalog-image",
    "hypershift.openshift.io/olm-catalogs-is-registry-overrides",
    "hypershift.openshift.io/kube-apiserver-gogc",
    "hypershift.openshift.io/kube-apiserver-gomemlimit",
    "hypershift.openshift.io/request-serving-node-additional-selector",
    "hypershift.openshift.io/aws-load-balancer-subnets",
    "hypershift.openshift.io/aws-load-balancer-target-node-labels",
    "hypershift.openshift.io/aws-load-balancer-health-probe-mode",
    "hypershift.openshift.io/azure-load-balancer-health-probe-mode",
    "hypershift.openshift.io/shared-load-balancer-health-probe-path",
    "hypershift.openshift.io/shared-load-balancer-health-probe-port",
    "hypershift.openshift.io/management-platform",
    "hypershift.openshift.io/kube-apiserver-verbosity-level",
    "hypershift.openshift.io/kube-apiserver-max-requests-inflight",
    "hypershift.openshift.io/kube-apiserver-max-mutating-requests-inflight",
    "hypershift.openshift.io/disable-ignition-server",
    "hypershift.openshift.io/aws-machine-public-ips",
    "hypershift.openshift.io/aws-karpenter-default-instance-profile",
    "hypershift.openshift.io/karpenter-provider-aws-image",
    "hypershift.openshift.io/karpenter-operator-image",
    "hypershift.openshift.io/kube-apiserver-goaway-chance",
    "hypershift.openshift.io/kube-apiserver-service-account-token-max-expiration",
    RESTORED_FROM_BACKUP_ANNOTATION,
    "hypershift.openshift.io/aws-termination-handler-queue-url",
    "hypershift.openshift.io/swift-pod-network-instance",
    "hypershift.openshift.io/enable-metrics-forwarding",
];

/// The Deployments the HO runs in a control-plane namespace (`OperatorDeployments`).
pub const OPERATOR_DEPLOYMENTS: &[&str] = &["control-plane-operator", "cluster-api", "capi-provider"];

fn ns_of(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Reconcile one HostedCluster.
pub(crate) fn reconcile(ctx: &Ctx<'_>, hc: &Value) -> Result<(), ApiError> {
    let store = ctx.store;
    let ns = namespace_of(hc).to_string();
    let name = name_of(hc).to_string();
    let cp_ns = hcp_namespace(&ns, &name);
    let hcp = get(store, &registry::HOSTED_CONTROL_PLANE, &cp_ns, &name);
    // Phase 2: deletion, before any look at pausedUntil.
    if is_deleting(hc) {
        if finalizers_of(hc).iter().any(|f| f == FINALIZER) && delete(ctx, hc, &cp_ns, hcp.as_ref())? {
            ctx.log.push(OperatorEvent::DeletionFlowRan {
                cluster: ctx.cluster().to_string(),
                hc_namespace: ns.clone(),
                hc_name: name.clone(),
            });
            remove_finalizer(store, &registry::HOSTED_CLUSTER, hc, FINALIZER)?;
        }
        return Ok(());
    }
    // Phase 4: status, paused or not.
    let pause = Pause::of(hc);
    write_status(ctx, hc, hcp.as_ref(), &cp_ns, &pause)?;
    // Phase 5: finalizers, then the pause check.
    let hc = add_finalizer(store, &registry::HOSTED_CLUSTER, hc, FINALIZER)?;
    reconcile_capi_finalizers(store, &hc, &cp_ns, false)?;
    if pause.paused() {
        if let Some(hcp) = &hcp {
            pause_hosted_control_plane(store, &hc, hcp)?;
        }
        pause_capi_cluster(store, &hc, &cp_ns, true)?;
        return Ok(());
    }
    if default_ids(store, &hc)? {
        // The update triggers the next pass, which continues from there.
        return Ok(());
    }
    let result = reconcile_active(ctx, &hc, &cp_ns);
    let cond = match &result {
        Ok(()) => Condition::new(
            "ReconciliationSucceeded",
            "True",
            "ReconciliatonSucceeded",
            "Reconciliation completed successfully",
        ),
        Err(e) => Condition::new("ReconciliationSucceeded", "False", "ReconciliationError", &e.message),
    };
    if let Some(cur) = get(store, &registry::HOSTED_CLUSTER, &ns, &name) {
        set_conditions(store, &registry::HOSTED_CLUSTER, &cur, &[cond])?;
    }
    result
}

/// `reconcileOIDCDocumentsWithStatus` around `reconcileAWSOIDCDocuments`
/// (`hostedcluster_controller.go`): once the control plane has a kubeconfig, the issuer's
/// documents are uploaded to the operator's OIDC bucket and the finalizer marks them so;
/// without a bucket (`--oidc-storage-provider-s3-bucket-name`) the upload fails.
/// `ValidOIDCConfiguration` on the HostedCluster says which. Nothing to upload counts as valid.
fn oidc_documents(ctx: &Ctx<'_>, hc: &Value, hcp: &Value) -> Result<(), ApiError> {
    let store = ctx.store;
    let aws = hc.pointer("/spec/platform/type").and_then(Value::as_str) == Some("AWS");
    let own_key = hc
        .pointer("/spec/serviceAccountSigningKey/name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let uploaded = finalizers_of(hc).iter().any(|f| f == OIDC_DOCUMENTS_FINALIZER);
    let cond = if !aws || own_key || uploaded || hcp.pointer("/status/kubeConfig").is_none() {
        Condition::new(
            "ValidOIDCConfiguration",
            "True",
            "AsExpected",
            "OIDC configuration is valid",
        )
    } else if !ctx.opts.oidc_storage {
        Condition::new(
            "ValidOIDCConfiguration",
            "False",
            "OIDCConfigurationInvalid",
            NO_OIDC_STORAGE,
        )
    } else {
        add_finalizer(store, &registry::HOSTED_CLUSTER, hc, OIDC_DOCUMENTS_FINALIZER)?;
        Condition::new(
            "ValidOIDCConfiguration",
            "True",
            "AsExpected",
            "OIDC configuration is valid",
        )
    };
    if let Some(cur) = get(store, &registry::HOSTED_CLUSTER, namespace_of(hc), name_of(hc)) {
        set_conditions(store, &registry::HOSTED_CLUSTER, &cur, &[cond])?;
    }
    Ok(())
}

/// Everything after the pause check; a critical failure blocks the rest.
fn reconcile_active(ctx: &Ctx<'_>, hc: &Value, cp_ns: &str) -> Result<(), ApiError> {
    let store = ctx.store;
    ensure_namespace(ctx, hc, cp_ns)?;
    sync_secrets(store, hc, cp_ns)?;
    restored_from_backup(store, hc, cp_ns)?;
    let blocked = "blocked operations: [KubeconfigAndPasswordSync, PlatformOIDCAndCSI, MonitoringAndCLISecrets, OperatorDeployments, RBACAndPolicies, PublicEndpointExposed]";
    let hcp = reconcile_hcp(ctx, hc, cp_ns).map_err(|e| {
        ApiError::new(
            e.reason,
            format!(
                "critical error: failed to reconcile hostedcontrolplane: {}; {blocked}",
                e.message
            ),
        )
    })?;
    reconcile_aws_cluster(store, hc, cp_ns, &hcp)?;
    reconcile_capi_cluster(ctx, hc, cp_ns)?;
    sync_kubeconfig(store, hc, cp_ns)?;
    oidc_documents(ctx, hc, &hcp)?;
    reconcile_operator_deployments(ctx, hc, cp_ns)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

fn copied(hcp: Option<&Value>, type_: &str) -> Condition {
    match hcp {
        None => Condition::new(
            type_,
            "Unknown",
            "StatusUnknown",
            "The hosted control plane is not found",
        ),
        Some(h) => Condition::read(h, type_)
            .unwrap_or_else(|| Condition::new(type_, "Unknown", "StatusUnknown", "Condition not found in the HCP")),
    }
}

fn write_status(ctx: &Ctx<'_>, hc: &Value, hcp: Option<&Value>, cp_ns: &str, pause: &Pause) -> Result<(), ApiError> {
    let store = ctx.store;
    let mut set: Vec<Condition> = COPIED_CONDITIONS.iter().map(|t| copied(hcp, t)).collect();
    let degraded = match hcp.and_then(|h| Condition::read(h, "Degraded")) {
        None => Condition::new(
            "Degraded",
            "Unknown",
            "StatusUnknown",
            "The hosted control plane is not found",
        ),
        Some(mut c) if c.status == "False" => {
            c.message = "The hosted cluster is not degraded".into();
            c
        }
        Some(c) => c,
    };
    set.push(degraded);
    // computeHostedClusterAvailability
    let available = match hcp.and_then(|h| Condition::read(h, "Available")) {
        Some(c) if c.status == "True" => Condition::new(
            "Available",
            "True",
            "AsExpected",
            "The hosted control plane is available",
        ),
        Some(c) => Condition::new("Available", &c.status, &c.reason, &c.message),
        None => Condition::new(
            "Available",
            "False",
            "WaitingForAvailable",
            "Waiting for hosted control plane to be healthy",
        ),
    };
    let is_available = available.status == "True";
    set.push(available);
    let active = pause.condition("AsExpected");
    let progressing = if active.status == "False" {
        Condition::new(
            "Progressing",
            "False",
            "Blocked",
            &format!("ReconciliationActive condition is false: {}", active.message),
        )
    } else if is_available || hc.pointer("/status/version/history").is_some() {
        Condition::new(
            "Progressing",
            "False",
            "AsExpected",
            "HostedCluster is at expected version",
        )
    } else {
        Condition::new(
            "Progressing",
            "True",
            "Progressing",
            "HostedCluster is deploying, upgrading, or reconfiguring",
        )
    };
    set.push(active);
    set.push(progressing);
    set.push(Condition::new(
        "ValidConfiguration",
        "True",
        "AsExpected",
        "Configuration passes validation",
    ));
    set.push(Condition::new(
        "SupportedHostedCluster",
        "True",
        "AsExpected",
        "HostedCluster is supported by operator configuration",
    ));
    set.push(Condition::new(
        "ValidReleaseImage",
        "True",
        "AsExpected",
        "Release image is valid",
    ));
    set.push(deployment_condition(
        store,
        cp_ns,
        "ignition-server",
        "IgnitionEndpointAvailable",
        "Ignition server",
        "Ignition server deployment is not yet available",
    ));
    // computeAWSEndpointServiceCondition: aggregated over the control plane's services.
    let services = list(store, &registry::AWS_ENDPOINT_SERVICE, Some(cp_ns));
    for (type_, source) in [
        ("AWSEndpointServiceAvailable", "AWSEndpointServiceAvailable"),
        ("AWSEndpointAvailable", "AWSEndpointAvailable"),
    ] {
        let conds: Vec<Condition> = services.iter().filter_map(|s| Condition::read(s, source)).collect();
        set.push(if conds.is_empty() {
            Condition::new(
                type_,
                "Unknown",
                "StatusUnknown",
                "AWSEndpointService conditions not found",
            )
        } else if conds.iter().all(|c| c.status == "True") {
            Condition::new(type_, "True", "AWSSuccess", "All is well")
        } else {
            let msgs: Vec<String> = conds
                .iter()
                .filter(|c| c.status != "True")
                .map(|c| c.message.clone())
                .collect();
            Condition::new(type_, "False", "AWSError", &msgs.join("; "))
        });
    }
    set_conditions(store, &registry::HOSTED_CLUSTER, hc, &set)?;
    // Status fields taken from the HCP: the endpoint, and the version once available.
    let mut status = Map::new();
    if let Some(ep) = hcp.and_then(|h| h.pointer("/status/controlPlaneEndpoint")) {
        status.insert("controlPlaneEndpoint".into(), ep.clone());
    }
    if is_available && hc.pointer("/status/version").is_none() {
        let image = hc.pointer("/spec/release/image").cloned().unwrap_or(Value::Null);
        let now = crate::kube::meta::now();
        status.insert(
            "version".into(),
            json!({"desired": {"image": image, "version": ctx.opts.release_version}, "availableUpdates": null,
                "observedGeneration": hc.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
                "history": [{"state": "Completed", "image": image, "version": ctx.opts.release_version,
                    "startedTime": now, "completionTime": now, "verified": false}]}),
        );
    }
    if hcp.is_some_and(|h| h.pointer("/status/kubeConfig").is_some()) && hc.pointer("/status/kubeconfig").is_none() {
        status.insert(
            "kubeconfig".into(),
            json!({"name": format!("{}-admin-kubeconfig", name_of(hc))}),
        );
    }
    let changed = status
        .iter()
        .any(|(k, v)| hc.pointer(&format!("/status/{k}")) != Some(v));
    if changed {
        let cur = get(store, &registry::HOSTED_CLUSTER, namespace_of(hc), name_of(hc));
        if let Some(cur) = cur {
            store.patch(
                &registry::HOSTED_CLUSTER,
                ns_of(namespace_of(&cur)),
                name_of(&cur),
                // A JSON patch keeps `availableUpdates: null` (required, nullable), which a
                // merge patch would delete; upstream writes the whole status.
                &Patch::Json(Value::Array(
                    status
                        .iter()
                        .map(|(k, v)| json!({"op": "add", "path": format!("/status/{k}"), "value": v}))
                        .collect(),
                )),
                &WriteOptions::status(),
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Finalizers and pause
// ---------------------------------------------------------------------------------------------

/// `reconcileCAPIFinalizers`: the component finalizer on the CAPI Deployments (added here,
/// before the pause check; removed only in the deletion flow), unless machine management is
/// disabled.
fn reconcile_capi_finalizers(store: &Store, hc: &Value, cp_ns: &str, remove: bool) -> Result<(), ApiError> {
    if annotation(hc, DISABLE_MACHINE_MANAGEMENT_ANNOTATION).is_some() {
        return Ok(());
    }
    for name in CAPI_COMPONENTS {
        let Some(d) = get(store, &registry::DEPLOYMENT, cp_ns, name) else {
            continue;
        };
        if remove {
            remove_finalizer(store, &registry::DEPLOYMENT, &d, COMPONENT_FINALIZER)?;
        } else {
            add_finalizer(store, &registry::DEPLOYMENT, &d, COMPONENT_FINALIZER)?;
        }
    }
    Ok(())
}

/// `pauseHostedControlPlane`: the HCP gets the HostedCluster's `pausedUntil`.
fn pause_hosted_control_plane(store: &Store, hc: &Value, hcp: &Value) -> Result<(), ApiError> {
    let want = hc.pointer("/spec/pausedUntil").cloned().unwrap_or(Value::Null);
    if hcp.pointer("/spec/pausedUntil").cloned().unwrap_or(Value::Null) == want || is_deleting(hcp) {
        return Ok(());
    }
    store
        .patch(
            &registry::HOSTED_CONTROL_PLANE,
            ns_of(namespace_of(hcp)),
            name_of(hcp),
            &Patch::Merge(json!({"spec": {"pausedUntil": want}})),
            &WriteOptions::default(),
        )
        .map(|_| ())
}

fn infra_id(hc: &Value) -> Option<&str> {
    hc.pointer("/spec/infraID")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `pauseCAPICluster`: `Cluster/<infraID>.spec.paused`.
fn pause_capi_cluster(store: &Store, hc: &Value, cp_ns: &str, paused: bool) -> Result<(), ApiError> {
    let Some(id) = infra_id(hc) else {
        return Ok(());
    };
    let cluster_kind = super::capi::kind_in(store, &registry::CAPI_CLUSTER, "v1beta1");
    let Some(c) = get(store, &cluster_kind, cp_ns, id) else {
        return Ok(());
    };
    if c.pointer("/spec/paused").and_then(Value::as_bool).unwrap_or(false) == paused || is_deleting(&c) {
        return Ok(());
    }
    store
        .patch(
            &cluster_kind,
            Some(cp_ns),
            id,
            &Patch::Merge(json!({"spec": {"paused": paused}})),
            &WriteOptions::default(),
        )
        .map(|_| ())
}

/// `defaultClusterIDsIfNeeded`: a cluster ID and an infra ID when the spec has none. True
/// when it updated the HostedCluster.
fn default_ids(store: &Store, hc: &Value) -> Result<bool, ApiError> {
    let mut spec = Map::new();
    if hc
        .pointer("/spec/clusterID")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        spec.insert("clusterID".into(), json!(uuid::Uuid::new_v4().to_string()));
    }
    if infra_id(hc).is_none() {
        let suffix: String = uuid::Uuid::new_v4().simple().to_string().chars().take(5).collect();
        spec.insert(
            "infraID".into(),
            json!(format!("{}-{suffix}", name_of(hc).replace('.', "-"))),
        );
    }
    if spec.is_empty() {
        return Ok(false);
    }
    store.patch(
        &registry::HOSTED_CLUSTER,
        ns_of(namespace_of(hc)),
        name_of(hc),
        &Patch::Merge(json!({"spec": spec})),
        &WriteOptions::default(),
    )?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// The control-plane namespace and what the HO copies into it
// ---------------------------------------------------------------------------------------------

/// `reconcileControlPlaneNamespace`: the control-plane namespace is created or updated with
/// its labels (a namespace that already exists, as a restore creates it, gets them too).
fn ensure_namespace(ctx: &Ctx<'_>, hc: &Value, cp_ns: &str) -> Result<(), ApiError> {
    let store = ctx.store;
    let labels = json!({"hypershift.openshift.io/hosted-control-plane": "true",
        "hypershift.openshift.io/monitoring": "true",
        "pod-security.kubernetes.io/enforce": "privileged",
        "pod-security.kubernetes.io/audit": "privileged",
        "pod-security.kubernetes.io/warn": "privileged",
        "security.openshift.io/scc.podSecurityLabelSync": "false"});
    if let Some(ns) = get(store, &registry::NAMESPACE, "", cp_ns) {
        let missing = labels
            .as_object()
            .into_iter()
            .flatten()
            .any(|(k, v)| ns.pointer("/metadata/labels").and_then(|l| l.get(k)) != Some(v));
        if missing && !is_deleting(&ns) {
            store.patch(
                &registry::NAMESPACE,
                None,
                cp_ns,
                &Patch::Merge(json!({"metadata": {"labels": labels}})),
                &WriteOptions::default(),
            )?;
        }
        return Ok(());
    }
    store.create(
        &registry::NAMESPACE,
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cp_ns,
            "labels": labels,
            "annotations": {CLUSTER_ANNOTATION: format!("{}/{}", namespace_of(hc), name_of(hc))}}}),
        &WriteOptions::default(),
    )?;
    ctx.log.created(ctx.cluster(), "Namespace", "", cp_ns);
    Ok(())
}

/// Create or update `obj` (only `data`, `type`, labels and annotations are kept in line).
fn upsert_data(store: &Store, kind: &KindInfo, ns: &str, obj: Value) -> Result<(), ApiError> {
    let name = name_of(&obj).to_string();
    match get(store, kind, ns, &name) {
        None => match store.create(kind, Some(ns), obj, &WriteOptions::default()) {
            Ok(_) => Ok(()),
            Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        },
        Some(live) => {
            if live.get("data") != obj.get("data") {
                store.patch(
                    kind,
                    Some(ns),
                    &name,
                    &Patch::Merge(json!({"data": obj.get("data").cloned().unwrap_or(json!({}))})),
                    &WriteOptions::default(),
                )?;
            }
            Ok(())
        }
    }
}

fn copy_secret(store: &Store, from_ns: &str, from: &str, to_ns: &str, to: &str) -> Result<(), ApiError> {
    let Some(src) = get(store, &registry::SECRET, from_ns, from) else {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("failed to get referenced secret {from_ns}/{from}: secrets \"{from}\" not found"),
        ));
    };
    upsert_data(
        store,
        &registry::SECRET,
        to_ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": to, "namespace": to_ns},
            "type": src.get("type").cloned().unwrap_or(json!("Opaque")), "data": src.get("data").cloned().unwrap_or(json!({}))}),
    )
}

fn copy_config_map(store: &Store, from_ns: &str, from: &str, to_ns: &str, to: &str) -> Result<(), ApiError> {
    let Some(src) = get(store, &registry::CONFIG_MAP, from_ns, from) else {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("failed to get referenced configmap {from_ns}/{from}: configmaps \"{from}\" not found"),
        ));
    };
    upsert_data(
        store,
        &registry::CONFIG_MAP,
        to_ns,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": to, "namespace": to_ns},
            "data": src.get("data").cloned().unwrap_or(json!({}))}),
    )
}

/// The Secrets and ConfigMaps a HostedCluster's `spec.configuration` names
/// (`api/util/configrefs`: `SecretRefs`, `ConfigMapRefs`).
pub fn configuration_refs(hc: &Value) -> (Vec<String>, Vec<String>) {
    let mut secrets = Vec::new();
    let mut config_maps = Vec::new();
    let c = |p: &str| hc.pointer(&format!("/spec/configuration{p}"));
    let name = |v: Option<&Value>, out: &mut Vec<String>| {
        if let Some(n) = v
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            out.push(n.to_string());
        }
    };
    for nc in c("/apiServer/servingCerts/namedCertificates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        name(nc.get("servingCertificate"), &mut secrets);
    }
    name(c("/apiServer/clientCA"), &mut config_maps);
    for w in c("/authentication/webhookTokenAuthenticators")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        name(w.get("kubeConfig"), &mut secrets);
    }
    name(c("/authentication/webhookTokenAuthenticator/kubeConfig"), &mut secrets);
    name(c("/authentication/oauthMetadata"), &mut config_maps);
    if c("/authentication/type").and_then(Value::as_str) == Some("OIDC") {
        for p in c("/authentication/oidcProviders")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for cl in p.get("oidcClients").and_then(Value::as_array).into_iter().flatten() {
                name(cl.get("clientSecret"), &mut secrets);
            }
            name(p.pointer("/issuer/issuerCertificateAuthority"), &mut config_maps);
        }
    }
    name(c("/image/additionalTrustedCA"), &mut config_maps);
    for idp in c("/oauth/identityProviders")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // The first provider block of each entry (a switch in upstream).
        let (secret_keys, ca): (&[&str], bool) = if let Some(p) = idp.get("basicAuth") {
            name(p.get("tlsClientCert"), &mut secrets);
            name(p.get("tlsClientKey"), &mut secrets);
            name(p.get("ca"), &mut config_maps);
            (&[], false)
        } else if idp.get("github").is_some() || idp.get("gitlab").is_some() {
            (&["clientSecret"], true)
        } else if idp.get("google").is_some() {
            (&["clientSecret"], false)
        } else if idp.get("htpasswd").is_some() {
            (&["fileData"], false)
        } else if let Some(p) = idp.get("keystone") {
            name(p.get("tlsClientCert"), &mut secrets);
            name(p.get("tlsClientKey"), &mut secrets);
            name(p.get("ca"), &mut config_maps);
            (&[], false)
        } else if idp.get("ldap").is_some() {
            (&["bindPassword"], true)
        } else if idp.get("openID").is_some() {
            (&["clientSecret"], true)
        } else if let Some(p) = idp.get("requestHeader") {
            name(p.get("ca"), &mut config_maps);
            (&[], false)
        } else {
            (&[], false)
        };
        let block = ["github", "gitlab", "google", "htpasswd", "ldap", "openID"]
            .iter()
            .find_map(|k| idp.get(*k));
        if let Some(b) = block {
            for k in secret_keys {
                name(b.get(*k), &mut secrets);
            }
            if ca {
                name(b.get("ca"), &mut config_maps);
            }
        }
    }
    for t in ["login", "providerSelection", "error"] {
        name(c(&format!("/oauth/templates/{t}")), &mut secrets);
    }
    name(c("/proxy/trustedCA"), &mut config_maps);
    name(c("/scheduler/policy"), &mut config_maps);
    secrets.sort();
    secrets.dedup();
    config_maps.sort();
    config_maps.dedup();
    (secrets, config_maps)
}

/// PullSecretSync, SSHKeySync, SecretEncryptionSync, AdditionalTrustBundle and
/// GlobalConfigSync (`reconcileGlobalConfigSync`): copies into the control-plane namespace.
fn sync_secrets(store: &Store, hc: &Value, cp_ns: &str) -> Result<(), ApiError> {
    let ns = namespace_of(hc);
    let spec_name = |p: &str| hc.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(ps) = spec_name("/spec/pullSecret/name") {
        copy_secret(store, ns, ps, cp_ns, "pull-secret")?;
    }
    if let Some(k) = spec_name("/spec/sshKey/name") {
        copy_secret(store, ns, k, cp_ns, "ssh-key")?;
    }
    for p in [
        "/spec/secretEncryption/aescbc/activeKey/name",
        "/spec/secretEncryption/aescbc/backupKey/name",
    ] {
        if let Some(k) = spec_name(p) {
            copy_secret(store, ns, k, cp_ns, k)?;
        }
    }
    if let Some(cm) = spec_name("/spec/additionalTrustBundle/name") {
        copy_config_map(store, ns, cm, cp_ns, "user-ca-bundle")?;
    }
    let (secrets, config_maps) = configuration_refs(hc);
    for s in secrets {
        copy_secret(store, ns, &s, cp_ns, &s)?;
    }
    for c in config_maps {
        copy_config_map(store, ns, &c, cp_ns, &c)?;
    }
    Ok(())
}

/// `reconcileRestoredFromBackupWithStatus`: with the annotation, take the HCP's
/// `HostedClusterRestoredFromBackup`; once it is True, drop the annotation from the
/// HostedCluster (the mirroring then drops it from the HCP).
fn restored_from_backup(store: &Store, hc: &Value, cp_ns: &str) -> Result<(), ApiError> {
    if annotation(hc, RESTORED_FROM_BACKUP_ANNOTATION).is_none() {
        return Ok(());
    }
    let done = get(store, &registry::HOSTED_CONTROL_PLANE, cp_ns, name_of(hc))
        .and_then(|h| Condition::read(&h, "HostedClusterRestoredFromBackup"))
        .is_some_and(|c| c.status == "True");
    if done {
        store.patch(
            &registry::HOSTED_CLUSTER,
            ns_of(namespace_of(hc)),
            name_of(hc),
            &Patch::Merge(json!({"metadata": {"annotations": {RESTORED_FROM_BACKUP_ANNOTATION: null}}})),
            &WriteOptions::default(),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CoreHCPChain
// ---------------------------------------------------------------------------------------------

/// The HCP spec the HO wants (`reconcileHostedControlPlane`).
pub fn desired_hcp_spec(hc: &Value) -> Value {
    let s = |p: &str| hc.pointer(&format!("/spec{p}")).cloned();
    let mut spec = Map::new();
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            spec.insert(k.into(), v);
        }
    };
    set("releaseImage", s("/release/image"));
    set("controlPlaneReleaseImage", s("/controlPlaneRelease/image"));
    set("updateService", s("/updateService"));
    set("channel", s("/channel"));
    set("pullSecret", Some(json!({"name": "pull-secret"})));
    let ssh = if s("/sshKey/name")
        .and_then(|v| v.as_str().map(str::to_string))
        .is_some_and(|n| !n.is_empty())
    {
        "ssh-key"
    } else {
        ""
    };
    set("sshKey", Some(json!({"name": ssh})));
    for k in [
        "auditWebhook",
        "fips",
        "issuerURL",
        "serviceAccountSigningKey",
        "networking",
        "clusterID",
        "infraID",
        "dns",
        "services",
        "controllerAvailabilityPolicy",
        "infrastructureAvailabilityPolicy",
        "imageContentSources",
        "secretEncryption",
        "kubeAPIServerDNSName",
        "pausedUntil",
        "olmCatalogPlacement",
        "autoscaling",
        "autoNode",
        "nodeSelector",
        "tolerations",
        "labels",
        "platform",
        "configuration",
        "capabilities",
        "operatorConfiguration",
        "monitoring",
    ] {
        set(k, s(&format!("/{k}")));
    }
    if let Some(mt) = s("/etcd/managementType") {
        let mut etcd = json!({"managementType": mt});
        for k in ["managed", "unmanaged"] {
            if let Some(v) = s(&format!("/etcd/{k}")) {
                etcd[k] = v;
            }
        }
        spec.insert("etcd".into(), etcd);
    }
    if s("/additionalTrustBundle/name").is_some() {
        spec.insert("additionalTrustBundle".into(), json!({"name": "user-ca-bundle"}));
    }
    Value::Object(spec)
}

fn desired_hcp_annotations(hc: &Value, current: Option<&Value>) -> Map<String, Value> {
    let mut ann = current
        .and_then(|h| h.pointer("/metadata/annotations"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    ann.insert(
        CLUSTER_ANNOTATION.into(),
        json!(format!("{}/{}", namespace_of(hc), name_of(hc))),
    );
    for key in MIRRORED_ANNOTATIONS {
        match annotation(hc, key) {
            Some(v) => {
                ann.insert((*key).into(), json!(v));
            }
            None => {
                ann.remove(*key);
            }
        }
    }
    ann
}

fn desired_hcp_labels(hc: &Value, current: Option<&Value>) -> Map<String, Value> {
    let mut labels = current
        .and_then(|h| h.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.retain(|k, _| !k.starts_with("api.openshift.com/"));
    if let Some(l) = hc.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in l {
            if k.starts_with("api.openshift.com/") {
                labels.insert(k.clone(), v.clone());
            }
        }
    }
    labels
}

/// createOrUpdate of the HostedControlPlane: create it, or overwrite the fields above on
/// the existing one and update it when anything differs.
fn reconcile_hcp(ctx: &Ctx<'_>, hc: &Value, cp_ns: &str) -> Result<Value, ApiError> {
    let store = ctx.store;
    let name = name_of(hc);
    let current = get(store, &registry::HOSTED_CONTROL_PLANE, cp_ns, name);
    let spec = desired_hcp_spec(hc);
    let annotations = desired_hcp_annotations(hc, current.as_ref());
    let labels = desired_hcp_labels(hc, current.as_ref());
    match current {
        None => {
            let mut meta = json!({"name": name, "namespace": cp_ns, "annotations": annotations});
            if !labels.is_empty() {
                meta["labels"] = Value::Object(labels);
            }
            let created = store.create(
                &registry::HOSTED_CONTROL_PLANE,
                Some(cp_ns),
                json!({"apiVersion": "hypershift.openshift.io/v1beta1", "kind": "HostedControlPlane",
                    "metadata": meta, "spec": spec}),
                &WriteOptions::default(),
            )?;
            ctx.log.created(ctx.cluster(), "HostedControlPlane", cp_ns, name);
            Ok(created)
        }
        Some(cur) => {
            let mut want = cur.clone();
            if let Some(ws) = want.get_mut("spec").and_then(Value::as_object_mut)
                && let Some(ds) = spec.as_object()
            {
                for (k, v) in ds {
                    ws.insert(k.clone(), v.clone());
                }
                // Fields the HO owns but the HostedCluster no longer sets go (e.g. pausedUntil).
                for k in ["pausedUntil", "additionalTrustBundle", "auditWebhook", "configuration"] {
                    if !ds.contains_key(k) {
                        ws.remove(k);
                    }
                }
            }
            want["metadata"]["annotations"] = Value::Object(annotations);
            if labels.is_empty() {
                if let Some(m) = want.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("labels");
                }
            } else {
                want["metadata"]["labels"] = Value::Object(labels);
            }
            if want == cur {
                return Ok(cur);
            }
            store.update(
                &registry::HOSTED_CONTROL_PLANE,
                Some(cp_ns),
                name,
                want,
                &WriteOptions::default(),
            )
        }
    }
}

/// `ReconcileCAPIInfraCR` for AWS: the AWSCluster (named like the HostedCluster), ready.
fn reconcile_aws_cluster(store: &Store, hc: &Value, cp_ns: &str, hcp: &Value) -> Result<(), ApiError> {
    let name = name_of(hc);
    let region = hc.pointer("/spec/platform/aws/region").cloned().unwrap_or(Value::Null);
    let endpoint = hcp
        .pointer("/status/controlPlaneEndpoint")
        .cloned()
        .unwrap_or_else(|| json!({"host": "", "port": 0}));
    let ann = json!({"cluster.x-k8s.io/managed-by": "external", CLUSTER_ANNOTATION: format!("{}/{}", namespace_of(hc), name)});
    match get(store, &registry::AWS_CLUSTER, cp_ns, name) {
        None => {
            let obj = json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSCluster",
                "metadata": {"name": name, "namespace": cp_ns, "annotations": ann},
                "spec": {"region": region, "controlPlaneEndpoint": endpoint},
                "status": {"ready": true}});
            match store.create_with_status(&registry::AWS_CLUSTER, Some(cp_ns), obj) {
                Ok(_) => Ok(()),
                Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            }
        }
        Some(cur) => {
            if is_deleting(&cur) {
                return Ok(());
            }
            if cur.pointer("/spec/controlPlaneEndpoint") != Some(&endpoint) && endpoint["host"] != "" {
                store.patch(
                    &registry::AWS_CLUSTER,
                    Some(cp_ns),
                    name,
                    &Patch::Merge(json!({"spec": {"controlPlaneEndpoint": endpoint}})),
                    &WriteOptions::default(),
                )?;
            }
            if cur.pointer("/status/ready") != Some(&json!(true)) {
                store.patch(
                    &registry::AWS_CLUSTER,
                    Some(cp_ns),
                    name,
                    &Patch::Merge(json!({"status": {"ready": true}})),
                    &WriteOptions::status(),
                )?;
            }
            Ok(())
        }
    }
}

/// `reconcileCAPICluster`: the CAPI Cluster `<infraID>`, written with CAPI's `core/v1beta1`
/// types as HyperShift does; an existing one only gets `spec.paused = false`.
fn reconcile_capi_cluster(ctx: &Ctx<'_>, hc: &Value, cp_ns: &str) -> Result<(), ApiError> {
    let store = ctx.store;
    let Some(id) = infra_id(hc) else {
        return Ok(());
    };
    let kind = super::capi::kind_in(store, &registry::CAPI_CLUSTER, "v1beta1");
    if get(store, &kind, cp_ns, id).is_some() {
        return pause_capi_cluster(store, hc, cp_ns, false);
    }
    let obj = json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
    "metadata": {"name": id, "namespace": cp_ns,
        "annotations": {CLUSTER_ANNOTATION: format!("{}/{}", namespace_of(hc), name_of(hc))}},
    "spec": {
        "controlPlaneEndpoint": {"host": "", "port": 0},
        "controlPlaneRef": {"apiVersion": "hypershift.openshift.io/v1beta1", "kind": "HostedControlPlane",
            "namespace": cp_ns, "name": name_of(hc)},
        "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSCluster",
            "namespace": cp_ns, "name": name_of(hc)},
    }});
    let obj = super::capi::in_version_of(&kind, obj);
    match store.create(&kind, Some(cp_ns), obj, &WriteOptions::default()) {
        Ok(_) => {
            ctx.log.created(ctx.cluster(), "Cluster", cp_ns, id);
            Ok(())
        }
        Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// `KubeconfigAndPasswordSync`: the control plane's `admin-kubeconfig` becomes
/// `<hc>-admin-kubeconfig` in the HostedCluster's namespace, owned by the HostedCluster.
fn sync_kubeconfig(store: &Store, hc: &Value, cp_ns: &str) -> Result<(), ApiError> {
    let Some(src) = get(store, &registry::SECRET, cp_ns, "admin-kubeconfig") else {
        return Ok(());
    };
    let ns = namespace_of(hc);
    let name = format!("{}-admin-kubeconfig", name_of(hc));
    upsert_data(
        store,
        &registry::SECRET,
        ns,
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": [{
                "apiVersion": "hypershift.openshift.io/v1beta1", "kind": "HostedCluster", "name": name_of(hc),
                "uid": hc.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                "controller": true, "blockOwnerDeletion": true}]},
            "type": "Opaque", "data": {"kubeconfig": src.pointer("/data/kubeconfig").cloned().unwrap_or(Value::Null)}}),
    )
}

/// `OperatorDeployments`: the control-plane operator and the CAPI manager and provider, one
/// replica each (a Deployment scaled down while unpaused is scaled back).
fn reconcile_operator_deployments(ctx: &Ctx<'_>, hc: &Value, cp_ns: &str) -> Result<(), ApiError> {
    let store = ctx.store;
    let skip_capi = annotation(hc, DISABLE_MACHINE_MANAGEMENT_ANNOTATION).is_some();
    for name in OPERATOR_DEPLOYMENTS {
        if skip_capi && CAPI_COMPONENTS.contains(name) {
            continue;
        }
        match get(store, &registry::DEPLOYMENT, cp_ns, name) {
            Some(d) => {
                if d.pointer("/spec/replicas").and_then(Value::as_i64) != Some(1) && !is_deleting(&d) {
                    store.patch(
                        &registry::DEPLOYMENT,
                        Some(cp_ns),
                        name,
                        &Patch::Merge(json!({"spec": {"replicas": 1}})),
                        &WriteOptions::default(),
                    )?;
                }
            }
            None => {
                let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": cp_ns, "labels": {"app": name, "hypershift.openshift.io/managed-by": "hypershift-operator"},
                        "annotations": {CLUSTER_ANNOTATION: format!("{}/{}", namespace_of(hc), name_of(hc))}},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                            "spec": {"containers": [{"name": name, "image": format!("quay.io/hypershift/{name}:sim")}]}}}});
                match store.create(&registry::DEPLOYMENT, Some(cp_ns), d, &WriteOptions::default()) {
                    Ok(_) => ctx.log.created(ctx.cluster(), "Deployment", cp_ns, name),
                    Err(e) if e.reason == Reason::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    // The component finalizer goes on the CAPI Deployments as soon as they exist.
    reconcile_capi_finalizers(store, hc, cp_ns, false)
}

// ---------------------------------------------------------------------------------------------
// Deletion
// ---------------------------------------------------------------------------------------------

/// `delete`: true once everything is gone and the finalizer may go.
fn delete(ctx: &Ctx<'_>, hc: &Value, cp_ns: &str, hcp: Option<&Value>) -> Result<bool, ApiError> {
    let store = ctx.store;
    let name = name_of(hc);
    pause_capi_cluster(store, hc, cp_ns, false)?;
    // deleteNodePools: no wait.
    for np in list(store, &registry::NODE_POOL, Some(namespace_of(hc))) {
        if np.pointer("/spec/clusterName").and_then(Value::as_str) == Some(name) {
            delete_if_needed(store, &registry::NODE_POOL, &np)?;
        }
    }
    let cluster_kind = super::capi::kind_in(store, &registry::CAPI_CLUSTER, "v1beta1");
    if let Some(id) = infra_id(hc)
        && let Some(c) = get(store, &cluster_kind, cp_ns, id)
        && delete_if_needed(store, &cluster_kind, &c)?
    {
        return Ok(false);
    }
    reconcile_capi_finalizers(store, hc, cp_ns, true)?;
    // deleteAWSEndpointServices: wait while any exist; drop the CPO's finalizer of one that
    // has been terminating for longer than the grace upstream allows.
    let mut left = false;
    for s in list(store, &registry::AWS_ENDPOINT_SERVICE, Some(cp_ns)) {
        left |= delete_if_needed(store, &registry::AWS_ENDPOINT_SERVICE, &s)?;
        let since = s
            .pointer("/metadata/deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if let Some(t) = since
            && chrono::Utc::now().signed_duration_since(t).to_std().unwrap_or_default()
                > ctx.opts.endpoint_service_grace
        {
            remove_finalizer(store, &registry::AWS_ENDPOINT_SERVICE, &s, CPO_ENDPOINT_FINALIZER)?;
        }
    }
    if left {
        return Ok(false);
    }
    if let Some(h) = hcp
        && delete_if_needed(store, &registry::HOSTED_CONTROL_PLANE, h)?
    {
        return Ok(false);
    }
    // `cleanupOIDCBucketData`: the issuer's documents are deleted from the OIDC bucket (the
    // keys `<infraID>/.well-known/...`, shared with any restored copy of this cluster), then
    // the finalizer goes. Without a bucket the HO cannot, and the finalizer stays.
    if finalizers_of(hc).iter().any(|f| f == OIDC_DOCUMENTS_FINALIZER) {
        if !ctx.opts.oidc_storage {
            return Ok(false);
        }
        remove_finalizer(store, &registry::HOSTED_CLUSTER, hc, OIDC_DOCUMENTS_FINALIZER)?;
        return Ok(false);
    }
    if annotation(hc, SKIP_NAMESPACE_DELETION_ANNOTATION) != Some("true")
        && let Some(n) = get(store, &registry::NAMESPACE, "", cp_ns)
        && delete_if_needed(store, &registry::NAMESPACE, &n)?
    {
        return Ok(false);
    }
    Ok(true)
}

/// The HO's AWSEndpointService controller (`controllers/platform/aws/controller.go`): its
/// finalizer on every AWSEndpointService, the `AWSEndpointServiceAvailable` condition, and the
/// finalizer's removal once the endpoint service is gone. It honours the HostedCluster's pause
/// after its finalizer handling.
pub(crate) fn reconcile_endpoint_services(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    let store = ctx.store;
    for s in list(store, &registry::AWS_ENDPOINT_SERVICE, None) {
        if is_deleting(&s) {
            remove_finalizer(store, &registry::AWS_ENDPOINT_SERVICE, &s, HO_ENDPOINT_FINALIZER)?;
            continue;
        }
        let s = add_finalizer(store, &registry::AWS_ENDPOINT_SERVICE, &s, HO_ENDPOINT_FINALIZER)?;
        let hc_paused = annotation(&s, CLUSTER_ANNOTATION)
            .and_then(|c| c.split_once('/'))
            .and_then(|(ns, n)| get(store, &registry::HOSTED_CLUSTER, ns, n))
            .is_some_and(|hc| Pause::of(&hc).paused());
        if hc_paused {
            continue;
        }
        if s.pointer("/status/endpointServiceName").is_none() {
            let svc = format!(
                "com.amazonaws.vpce.{}.vpce-svc-{}",
                ctx.opts.region,
                &uuid::Uuid::new_v4().simple().to_string()[..17]
            );
            store.patch(
                &registry::AWS_ENDPOINT_SERVICE,
                Some(namespace_of(&s)),
                name_of(&s),
                &Patch::Merge(json!({"status": {"endpointServiceName": svc}})),
                &WriteOptions::status(),
            )?;
        }
        if let Some(cur) = get(store, &registry::AWS_ENDPOINT_SERVICE, namespace_of(&s), name_of(&s)) {
            set_conditions(
                store,
                &registry::AWS_ENDPOINT_SERVICE,
                &cur,
                &[Condition::new("AWSEndpointServiceAvailable", "True", "AWSSuccess", "")],
            )?;
        }
    }
    Ok(())
}
