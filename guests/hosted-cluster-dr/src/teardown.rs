//! `teardown` on the source management cluster.
//!
//! The HyperShift operator adds its finalizer to a HostedCluster before it
//! checks the pause, and its deletion branch ignores `pausedUntil`: deleting a
//! paused HostedCluster while it runs makes it destroy the cloud resources
//! the migrated cluster now uses. So teardown first stops the source's
//! operator (remembering its replicas on the Deployment itself), removes
//! finalizers with merge patches (which, unlike the documented JSON patch,
//! work when there are none), deletes everything of this hosted cluster, and
//! only then starts the operator again at the replicas it had. Any failure after
//! `stop-operator` starts it again before the phase stops (the hosted cluster stays paused,
//! so a running operator never deletes it), or says how to.
//!
//! Upstream puts finalizers where the namespace would wait on them forever with the operator
//! stopped: `hypershift.openshift.io/component-finalizer` on the `cluster-api` and
//! `capi-provider` Deployments (`reconcileCAPIFinalizers`), both operators' finalizers on
//! AWSEndpointServices; the `finalizers` step clears them.

use ferry_sdk::hooks::Point;
use ferry_sdk::k8s::{Cluster, DeleteOutcome, condition, condition_true, name, str_at};
use ferry_sdk::wait::{Check, Wait};
use ferry_sdk::{Error, Result, log, manifest};
use serde_json::{Value, json};

use crate::ctx::{Ctx, Done};
use crate::hold::{Hold, NOTE_ATTEMPTS, this_hosted_cluster};
use crate::layout;
use crate::model::*;
use crate::publish;
use crate::restore::{nodes_of, restored_on};
use crate::workloads;

/// The CAPI controllers of a control-plane namespace: no Machine is deleted while they run
/// (they would delete its instance, which the destination's nodes now are).
const CAPI_CONTROLLERS: &[&str] = &["cluster-api", "capi-provider"];

/// Runs the teardown phase.
pub fn run(args: &[(String, String)]) -> Result<Value> {
    let mut c = Ctx::new("teardown", args)?;
    let src = c.open("source")?;
    let dst = c.open("destination")?;
    let hosted = c.open("hosted")?;
    let bucket = layout::open_bucket(&c)?;
    let force = c.p.flag("force");
    let zone_id = c.p.get("zone_id").map(str::to_string);
    let domain = c.p.or("external_dns_domain", "").to_string();
    let zone = match &zone_id {
        Some(z) => Some(ferry_sdk::k8s::retry(|| ferry_sdk::dns::open_zone(z))?),
        None => None,
    };
    let mut carried: Vec<ferry_sdk::ObjectRef> = Vec::new();
    c.step("gate", |c| {
        let Some(backup) = layout::load(c, &bucket)? else {
            let why = format!(
                "no backup of {}/{} in s3://{}/{}; teardown would destroy the only copy",
                c.hc.ns,
                c.hc.name,
                bucket.name(),
                layout::s3_root(c)
            );
            if c.plan {
                return Ok(Done::Planned(format!("teardown would be refused now: {why}")));
            }
            return Err(Error::Invalid(format!("{why}. Nothing was deleted")));
        };
        // `load` read the index from S3 and checked its signature: the backup exists there,
        // as ferry wrote it, before anything of the source is deleted.
        // What the hosted cluster had in the shared namespace, besides itself
        // and its NodePools (deleted in their own steps).
        for f in &backup.index.files {
            if f.namespace == c.hc.ns && f.kind != HOSTED_CLUSTER.1 && f.kind != NODE_POOL.1 {
                carried.push(ferry_sdk::k8s::obj(
                    &f.api_version,
                    &f.kind,
                    Some(&f.namespace),
                    &f.name,
                ));
            }
        }
        let verified = match destination_health(c, &dst, &hosted, zone.as_ref().map(|z| (z, domain.as_str()))) {
            Ok(ok) => ok,
            Err(why) if c.plan => return Ok(Done::Planned(format!("teardown would be refused now: {why}"))),
            Err(why) if force => {
                log::warn("teardown forced without a verified destination", &[("why", &why)]);
                c.out.insert("forced".into(), json!(why));
                format!("FORCED past: {why}")
            }
            Err(why) => {
                return Err(Error::Invalid(format!(
                    "the destination is not verified healthy: {why}. Teardown refused; nothing was deleted. Finish \
                     `ferry restore` first, or pass --force to tear down anyway (logged)"
                )));
            }
        };
        // One etcd cluster with every member: a split restore passes every condition.
        let verified = match crate::restore::etcd_members(c, &dst) {
            Ok((_, Done::Checked(d))) => format!("{verified}; {d}"),
            Ok(_) => verified,
            Err(e) if c.plan => {
                return Ok(Done::Planned(format!(
                    "teardown would be refused now: {}",
                    ferry_sdk::message(&e)
                )));
            }
            Err(e) if force => {
                let why = ferry_sdk::message(&e).to_string();
                log::warn(
                    "teardown forced past a destination etcd that is not one cluster",
                    &[("why", &why)],
                );
                c.out.insert("forced".into(), json!(why));
                format!("{verified}; FORCED past: {why}")
            }
            Err(e) => {
                return Err(ferry_sdk::context(e, "teardown refused; nothing was deleted"));
            }
        };
        // The site's own checks (change windows, approvals) come last, before anything is deleted.
        c.hook(Point::Verify, "gate", json!({"destination": verified}))
            .map_err(|e| ferry_sdk::context(e, "teardown refused; nothing was deleted"))?;
        Ok(Done::Checked(verified))
    })?;
    let mut pins: Vec<(GroupKind, String)> = Vec::new();
    c.step("capi-storage", |c| {
        let (p, done) = capi_storage(c, &src)?;
        pins = p;
        Ok(done)
    })?;
    let op_ns = c.p.or("operator_namespace", "hypershift").to_string();
    let op_name = c.p.or("operator_deployment", "operator").to_string();
    let operator = Hold {
        cluster: &src,
        deployment: r(DEPLOYMENT, Some(&op_ns), &op_name),
        what: "the source's HyperShift operator".into(),
        replicas_annotation: OPERATOR_REPLICAS_ANNOTATION,
        holders_annotation: OPERATOR_HOLDERS_ANNOTATION,
        step: "teardown/stop-operator",
        why: "the operator must not run while the hosted cluster is deleted",
    };
    // Nothing of this hosted cluster left on the source: nothing to stop the operator for.
    let remains = src.get(&c.hc.hc_ref())?.is_some()
        || src.get(&r(NAMESPACE, None, &c.hc.hcp_ns))?.is_some()
        || !own_node_pools(&src.list(NODE_POOL.0, NODE_POOL.1, Some(&c.hc.ns), None)?, &c.hc.name).is_empty();
    c.step("webhooks", |c| {
        if !remains {
            return Ok(Done::Already(
                "nothing of the hosted cluster is left on the source".into(),
            ));
        }
        exclude_from_webhooks(c, &src)
    })?;
    // Once the operator is being stopped, whatever fails, it is started again (and the
    // webhooks put back).
    let result = c
        .step("stop-operator", |c| {
            if !remains && !operator.held_by_me(c)? {
                return Ok(Done::Already(
                    "nothing of the hosted cluster is left on the source".into(),
                ));
            }
            if src.get(&operator.deployment)?.is_none() {
                return Ok(Done::Skipped(format!(
                    "no operator Deployment {}; set operator_namespace/operator_deployment if HyperShift is \
                     installed elsewhere",
                    ferry_sdk::k8s::describe(&operator.deployment)
                )));
            }
            operator.stop(c)
        })
        .and_then(|()| tear_down(&mut c, &src, &carried, &pins));
    if let Err(e) = result {
        return Err(restart_after(&mut c, &src, &operator, e));
    }
    c.step("webhooks-back", |c| webhooks_back(c, &src))?;
    c.step("start-operator", |c| operator.start(c))?;
    Ok(c.summary())
}

/// The steps between `stop-operator` and `start-operator`.
fn tear_down(c: &mut Ctx, src: &Cluster, carried: &[ferry_sdk::ObjectRef], pins: &[(GroupKind, String)]) -> Result<()> {
    c.step("scale-down", |c| scale_down(c, src))?;
    let pools: Vec<String> = own_node_pools(&src.list(NODE_POOL.0, NODE_POOL.1, Some(&c.hc.ns), None)?, &c.hc.name)
        .iter()
        .map(|p| name(p).to_string())
        .collect();
    let hc_ns = c.hc.ns.clone();
    c.step("node-pools", |c| {
        let refs = pools.iter().map(|p| r(NODE_POOL, Some(&hc_ns), p)).collect();
        remove(c, src, refs)
    })?;
    let hcp_ns = c.hc.hcp_ns.clone();
    let served = Served::new(src);
    // In the version their objects are stored in: nothing needs the stopped operator's
    // conversion webhook.
    for (gk, version) in pins {
        served.pin(*gk, version);
    }
    let all_of = |kinds: &[GroupKind]| -> Result<Vec<ferry_sdk::ObjectRef>> {
        let mut out = Vec::new();
        for k in kinds {
            for o in served.list(*k, &hcp_ns)? {
                out.push(served.r(*k, Some(&hcp_ns), name(&o))?);
            }
        }
        Ok(out)
    };
    c.step("machines", |c| remove(c, src, all_of(&[MACHINE])?))?;
    c.step("machine-sets", |c| {
        remove(c, src, all_of(&[MACHINE_SET, MACHINE_DEPLOYMENT])?)
    })?;
    c.step("capi-cluster", |c| remove(c, src, all_of(&[CAPI_CLUSTER])?))?;
    c.step("aws-machines", |c| {
        remove(c, src, all_of(&[AWS_MACHINE, AWS_MACHINE_TEMPLATE, AWS_CLUSTER])?)
    })?;
    c.step("control-plane", |c| {
        let hcps = src
            .list(HOSTED_CONTROL_PLANE.0, HOSTED_CONTROL_PLANE.1, Some(&hcp_ns), None)?
            .iter()
            .map(|o| r(HOSTED_CONTROL_PLANE, Some(&hcp_ns), name(o)))
            .collect();
        remove(c, src, hcps)
    })?;
    c.step("finalizers", |c| clear_namespace_finalizers(c, src))?;
    c.step("hcp-namespace", |c| delete_namespace(c, src, &hcp_ns))?;
    c.step("hosted-cluster", |c| remove(c, src, vec![c.hc.hc_ref()]))?;
    c.step("hc-namespace", |c| hc_namespace(c, src, carried))?;
    Ok(())
}

/// After a failure with the operator stopped: start it again (the HostedCluster is paused or
/// gone, so it deletes nothing), and say what happened. A `stop_after` stop (a rehearsed
/// crash) is passed through: a crash cannot restart anything, and the next run resumes.
fn restart_after(c: &mut Ctx, src: &Cluster, operator: &Hold, e: Error) -> Error {
    let op_ref = &operator.deployment;
    if crate::ctx::is_stop(&e) || c.plan {
        return e;
    }
    let how = format!(
        "kubectl -n {} scale deployment/{} --replicas=<the value of annotation {OPERATOR_REPLICAS_ANNOTATION}>",
        op_ref.namespace.as_deref().unwrap_or("hypershift"),
        op_ref.name
    );
    let webhooks = match webhooks_back(c, src) {
        Ok(_) => String::new(),
        Err(w) => format!(
            "; putting back the object selectors of ValidatingWebhookConfiguration {HYPERSHIFT_WEBHOOK_CONFIGURATION} \
             failed too ({}): set them from its annotation {WEBHOOK_SELECTORS_ANNOTATION}",
            ferry_sdk::message(&w)
        ),
    };
    match operator.start(c) {
        Ok(done) => {
            let what = match done {
                Done::Did(d) | Done::Already(d) | Done::Skipped(d) | Done::Planned(d) | Done::Checked(d) => d,
            };
            ferry_sdk::context(
                e,
                format!(
                    "teardown stopped; the source's HyperShift operator was started again ({what}){webhooks}; re-run \
                     teardown"
                ),
            )
        }
        Err(restart) => ferry_sdk::context(
            e,
            format!(
                "teardown stopped, and starting the source's HyperShift operator again failed too ({}): every other \
                 hosted cluster on the source is unmanaged until you run `{how}`{webhooks}",
                ferry_sdk::message(&restart)
            ),
        ),
    }
}

/// Clears the finalizers that would keep the control-plane namespace from going away with
/// the operators stopped: the component finalizer on the CAPI Deployments, and both
/// operators' finalizers on AWSEndpointServices.
fn clear_namespace_finalizers(c: &mut Ctx, src: &Cluster) -> Result<Done> {
    let ns = c.hc.hcp_ns.clone();
    let mut cleared = Vec::new();
    for (kind, objects) in [
        (DEPLOYMENT, src.list(DEPLOYMENT.0, DEPLOYMENT.1, Some(&ns), None)?),
        (AWS_ENDPOINT_SERVICE, list_if_served(src, AWS_ENDPOINT_SERVICE, &ns)?),
    ] {
        for o in objects {
            let has = o
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            if has {
                src.clear_finalizers(&r(kind, Some(&ns), name(&o)))?;
                cleared.push(format!("{} {}", kind.1, name(&o)));
            }
        }
    }
    Ok(Done::of_changes(
        &cleared,
        c.plan,
        format!("nothing in {ns} holds a finalizer the operators would remove"),
        "clear the finalizers of",
        "cleared the finalizers of",
    ))
}

/// Lists `kind` in `ns`, or nothing when the cluster does not serve it.
fn list_if_served(cluster: &Cluster, kind: Kind, ns: &str) -> Result<Vec<Value>> {
    match cluster.list(kind.0, kind.1, Some(ns), None) {
        Err(Error::NotFound(_)) => Ok(Vec::new()),
        other => other,
    }
}

/// Checks that the destination runs the hosted cluster: HostedCluster Available with its
/// etcd restored (on the HostedControlPlane), its hostnames published from the destination
/// (when a zone is given), and at least all its nodes Ready.
pub fn destination_health(
    c: &Ctx,
    dst: &Cluster,
    hosted: &Cluster,
    zone: Option<(&ferry_sdk::dns::Zone, &str)>,
) -> std::result::Result<String, String> {
    let msg = |e: Error| ferry_sdk::message(&e).to_string();
    let hc = dst.get(&c.hc.hc_ref()).map_err(msg)?.ok_or_else(|| {
        format!(
            "HostedCluster {}/{} does not exist on the destination",
            c.hc.ns, c.hc.name
        )
    })?;
    if !condition_true(&hc, "Available") {
        return Err("the HostedCluster on the destination is not Available".into());
    }
    let restoring = hc
        .pointer("/spec/etcd/managed/storage/restoreSnapshotURL")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if restoring && !restored_on(c, dst).map_err(msg)? {
        return Err(
            "the destination's etcd was not restored from the snapshot (the HostedControlPlane's \
             EtcdSnapshotRestored is not True)"
                .into(),
        );
    }
    // Service-account tokens are verified against the issuer's documents, which the
    // destination's operator must have published (`reconcileOIDCDocumentsWithStatus` sets
    // `ValidOIDCConfiguration` on the HostedCluster) and the hosted cluster's AWS identity
    // provider must accept (the control-plane operator sets `ValidAWSIdentityProvider` on the
    // HostedControlPlane). The source's documents must not be the only thing that works.
    let hcp = dst
        .get(&r(HOSTED_CONTROL_PLANE, Some(&c.hc.hcp_ns), &c.hc.name))
        .map_err(msg)?;
    for (cond, on, obj) in [
        ("ValidOIDCConfiguration", "HostedCluster", Some(&hc)),
        ("ValidAWSIdentityProvider", "HostedControlPlane", hcp.as_ref()),
    ] {
        let found = obj.and_then(|o| condition(o, cond));
        let status = found
            .and_then(|f| f.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("Unknown");
        if status != "True" {
            let why = found
                .map(|f| {
                    format!(
                        " ({}: {})",
                        f.get("reason").and_then(Value::as_str).unwrap_or_default(),
                        f.get("message").and_then(Value::as_str).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            return Err(format!(
                "the destination's {on} reports {cond}={status}{why}: the hosted cluster's service accounts would \
                 depend on what the source published"
            ));
        }
    }
    let mut dns_note = String::new();
    if let Some((zone, domain)) = zone {
        let owner = publish::owner_id(dst)
            .map_err(msg)?
            .ok_or("the destination runs no external-dns with a --txt-owner-id")?;
        let hosts = publish::public_hosts(dst, &c.hc.hcp_ns, domain).map_err(msg)?;
        let records = ferry_sdk::k8s::retry(|| zone.list_record_sets(Some(domain))).map_err(msg)?;
        let targets = publish::ready_targets(dst, &c.hc.hcp_ns, domain).map_err(msg)?;
        let left = publish::not_moved(
            &records,
            &hosts,
            c.p.or("txt_suffix", "-external-dns"),
            &owner,
            &targets,
        );
        if !left.is_empty() {
            return Err(format!(
                "Route53 does not publish {} from the destination ({owner}) yet: the nodes still reach the source",
                left.join(", ")
            ));
        }
        dns_note = format!(", {} hostname(s) published from the destination", hosts.len());
    }
    // A node counts once it posted a heartbeat to the destination; one that is a period late
    // at this moment is waited for, bounded (`gate_nodes_timeout_seconds`), not taken for a
    // node that never came.
    let bound_ms =
        c.p.u64_or("gate_nodes_timeout_seconds", 120)
            .map_err(msg)?
            .saturating_mul(1000);
    let start = ferry_sdk::context::now();
    let mut nodes = nodes_of(c, dst, hosted).map_err(msg)?;
    while nodes.ready < nodes.expected && ferry_sdk::context::now().saturating_sub(start) < bound_ms {
        ferry_sdk::context::sleep(1000);
        nodes = nodes_of(c, dst, hosted).map_err(msg)?;
    }
    let (ready, expected) = (nodes.ready, nodes.expected);
    if ready < expected {
        return Err(nodes.describe());
    }
    Ok(format!(
        "the destination runs the hosted cluster: Available, etcd restored, OIDC valid{dns_note}, {ready}/{expected} \
         nodes Ready"
    ))
}

fn scale_down(c: &mut Ctx, src: &Cluster) -> Result<Done> {
    let ns = c.hc.hcp_ns.clone();
    let mut changed = Vec::new();
    for sts in src.list(STATEFUL_SET.0, STATEFUL_SET.1, Some(&ns), None)? {
        let n = name(&sts).to_string();
        let sts_ref = r(STATEFUL_SET, Some(&ns), &n);
        // Scaling a StatefulSet whose PVC retention is `whenScaled: Delete` deletes its data.
        if str_at(&sts, "/spec/persistentVolumeClaimRetentionPolicy/whenScaled") == Some("Delete") {
            src.merge_patch(
                &sts_ref,
                &json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Retain"}}}),
            )?;
            changed.push(format!("StatefulSet {n}: PVC retention whenScaled Delete→Retain"));
        }
        if sts.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) > 0 {
            src.scale(&sts_ref, 0)?;
            changed.push(format!("StatefulSet {n}→0"));
        }
    }
    for d in src.list(DEPLOYMENT.0, DEPLOYMENT.1, Some(&ns), None)? {
        if d.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) > 0 {
            src.scale(&r(DEPLOYMENT, Some(&ns), name(&d)), 0)?;
            changed.push(format!("Deployment {}→0", name(&d)));
        }
    }
    // The CAPI controllers must be gone before any Machine is deleted.
    let gone = workloads::wait_pods_gone(
        c,
        src,
        &ns,
        CAPI_CONTROLLERS,
        "teardown/scale-down",
        "they would delete the instances the destination's nodes run on",
    )?;
    if changed.is_empty() && gone > 0 && !c.plan {
        return Ok(Done::Did(format!(
            "waited for {gone} Cluster API controller pods to terminate"
        )));
    }
    Ok(Done::of_changes(
        &changed,
        c.plan,
        format!("nothing runs in {ns}"),
        "scale",
        "scaled",
    ))
}

/// Removes finalizers and deletes each object (absent ones are fine).
fn remove(c: &mut Ctx, src: &Cluster, refs: Vec<ferry_sdk::ObjectRef>) -> Result<Done> {
    let mut gone = Vec::new();
    for obj_ref in &refs {
        if !src.clear_finalizers(obj_ref)? {
            continue;
        }
        match src.delete(obj_ref)? {
            DeleteOutcome::Absent => {}
            DeleteOutcome::Deleted | DeleteOutcome::Pending => gone.push(format!("{} {}", obj_ref.kind, obj_ref.name)),
        }
    }
    Ok(Done::of_changes(&gone, c.plan, "none left", "delete", "deleted"))
}

fn delete_namespace(c: &mut Ctx, src: &Cluster, ns: &str) -> Result<Done> {
    let ns_ref = r(NAMESPACE, None, ns);
    if src.get(&ns_ref)?.is_none() {
        return Ok(Done::Already(format!("namespace {ns} is gone")));
    }
    src.delete(&ns_ref)?;
    if c.plan {
        return Ok(Done::Planned(format!("would delete namespace {ns}")));
    }
    Wait {
        step: "teardown/hcp-namespace",
        what: "the hosted control plane namespace to be deleted",
        timeout_seconds: 300,
        interval_millis: 500,
        on_timeout: "Something in it still has finalizers; the HyperShift operator stays stopped. Inspect the \
                     namespace, then re-run teardown.",
    }
    .until(|| {
        Ok(match src.get(&ns_ref)? {
            None => Check::Done(()),
            Some(n) => Check::Pending(str_at(&n, "/status/phase").unwrap_or("Terminating").to_string()),
        })
    })?;
    Ok(Done::Did(format!("deleted namespace {ns}")))
}

/// Deletes what this hosted cluster had in the shared HostedCluster namespace
/// (what the backup carried, unless another hosted cluster refers to it, and
/// the marker), then the namespace itself only if nothing else lives in it.
fn hc_namespace(c: &mut Ctx, src: &Cluster, carried: &[ferry_sdk::ObjectRef]) -> Result<Done> {
    let ns = c.hc.ns.clone();
    if src.get(&r(NAMESPACE, None, &ns))?.is_none() {
        return Ok(Done::Already(format!("namespace {ns} is gone")));
    }
    // The other hosted clusters' references (this one is deleted by now, or in a plan, would be).
    let others: Vec<Value> = src
        .list(HOSTED_CLUSTER.0, HOSTED_CLUSTER.1, Some(&ns), None)?
        .into_iter()
        .filter(|o| name(o) != c.hc.name)
        .collect();
    let mut refs = References::default();
    others.iter().for_each(|o| refs.collect(o));
    let pools = src.list(NODE_POOL.0, NODE_POOL.1, Some(&ns), None)?;
    let own: Vec<&str> = own_node_pools(&pools, &c.hc.name).iter().map(|p| name(p)).collect();
    for np in pools.iter().filter(|p| !own.contains(&name(p))) {
        refs.collect(np);
    }
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    for obj_ref in carried {
        let n = &obj_ref.name;
        let shared = match obj_ref.kind.as_str() {
            "Secret" => refs.secrets.contains(n),
            "ConfigMap" => refs.config_maps.contains(n),
            _ => false,
        };
        if shared {
            kept.push(format!("{} {n} (used by another hosted cluster)", obj_ref.kind));
            continue;
        }
        if src.delete(obj_ref)? != DeleteOutcome::Absent {
            deleted.push(format!("{} {n}", obj_ref.kind));
        }
    }
    if src.delete(&c.hc.marker_ref())? != DeleteOutcome::Absent {
        deleted.push(format!("ConfigMap {}", c.hc.marker_name()));
    }
    if c.plan {
        return Ok(Done::Planned(format!("would delete {}", deleted.join(", "))));
    }
    let mut detail = if deleted.is_empty() {
        "nothing of it left".to_string()
    } else {
        format!("deleted {}", deleted.join(", "))
    };
    if !kept.is_empty() {
        detail.push_str(&format!("; kept {}", kept.join(", ")));
    }
    if !c.p.flag("delete_empty_hc_namespace") {
        detail.push_str(&format!(
            "; kept namespace {ns}: it is shared, and deleting it when empty is not enabled \
             ([hosted_cluster] delete_empty_namespace)"
        ));
        return Ok(if deleted.is_empty() {
            Done::Already(detail)
        } else {
            Done::Did(detail)
        });
    }
    let mut residents = residents(src, &ns)?;
    if residents.is_empty() {
        // Also granted by the policy only when the site added
        // policies/examples/delete-empty-hc-namespace.cedar; a denial names the rule.
        src.delete(&r(NAMESPACE, None, &ns))?;
        detail.push_str(&format!(
            "; deleted namespace {ns} (it held nothing of any kind the cluster serves)"
        ));
        return Ok(Done::Did(detail));
    }
    residents.truncate(5);
    detail.push_str(&format!(
        "; kept namespace {ns}: it still holds {}",
        residents.join(", ")
    ));
    Ok(if deleted.is_empty() {
        Done::Already(detail)
    } else {
        Done::Did(detail)
    })
}

/// What lives in namespace `ns`, over every namespaced kind the cluster serves (custom
/// resources and aggregated APIs included), leaving out what the platform puts in every
/// namespace and goes with it. A kind that cannot be listed counts as present: emptiness
/// must be shown, not assumed.
fn residents(src: &Cluster, ns: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for (api_version, kind) in src.namespaced_kinds()? {
        match src.list(&api_version, &kind, Some(ns), None) {
            Ok(items) => found.extend(
                items
                    .iter()
                    .filter(|o| !platform_made(&kind, o))
                    .map(|o| format!("{kind} {}", name(o))),
            ),
            Err(e) => found.push(format!("{api_version} {kind} (cannot be listed: {e})")),
        }
    }
    Ok(found)
}

/// Objects every namespace gets from the platform rather than from anyone living in it:
/// kube-controller-manager's root CA ConfigMap, service-account controller and its tokens;
/// OpenShift's service CA ConfigMap, `builder`/`deployer` service accounts, their pull
/// secrets and role bindings; and Events, which outlive what they describe.
fn platform_made(kind: &str, obj: &Value) -> bool {
    let n = name(obj);
    match kind {
        "Event" => true,
        "ServiceAccount" => ["default", "builder", "deployer"].contains(&n),
        "Secret" => matches!(
            str_at(obj, "/type"),
            Some("kubernetes.io/service-account-token" | "kubernetes.io/dockercfg")
        ),
        "ConfigMap" => n == "kube-root-ca.crt" || n == "openshift-service-ca.crt",
        "RoleBinding" => ["system:image-pullers", "system:image-builders", "system:deployers"].contains(&n),
        _ => false,
    }
}

/// How teardown addresses each Cluster API kind while the operator, which serves their
/// conversion webhook (`setupCRDs`), is stopped: in the CRD's storage version, where nothing
/// needs converting. When `status.storedVersions` says some objects may still be stored in an
/// older version (the operator's storage migration has not run, or never does with
/// `--disable-capi-migration` after an upgrade), this hosted cluster's objects of that kind
/// are first written once, unchanged, while the webhook answers: the API server stores each in
/// the storage version, as upstream's migrator does (`support/capi-crdmigrator`). Returns the
/// versions to pin.
fn capi_storage(c: &mut Ctx, src: &Cluster) -> Result<(Vec<(GroupKind, String)>, Done)> {
    let mut pins = Vec::new();
    let mut notes = Vec::new();
    let mut rewritten = Vec::new();
    let served = Served::new(src);
    for &(gk, plural) in TEARDOWN_CAPI_KINDS {
        let crd_name = format!("{plural}.{}", gk.group);
        let Some(crd) = src.get(&r(CRD, None, &crd_name))? else {
            continue;
        };
        if str_at(&crd, "/spec/conversion/strategy") != Some("Webhook") {
            continue;
        }
        let storage = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .and_then(|v| v.get("name").and_then(Value::as_str))
            .ok_or_else(|| Error::Invalid(format!("CRD {crd_name} has no storage version")))?
            .to_string();
        let stored: Vec<&str> = crd
            .pointer("/status/storedVersions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        served.pin(gk, &storage);
        pins.push((gk, storage.clone()));
        if stored == [storage.as_str()] {
            notes.push(format!("{} {storage}", gk.kind));
            continue;
        }
        let objects = served.list(gk, &c.hc.hcp_ns).map_err(|e| {
            ferry_sdk::context(
                e,
                format!(
                    "{crd_name} may hold objects stored as {} (status.storedVersions) and reading them needs the \
                     operator's conversion webhook, which does not answer; teardown refused before stopping the \
                     operator. Start the HyperShift operator (hypershift/operator) and re-run teardown",
                    stored.join(", ")
                ),
            )
        })?;
        for o in &objects {
            src.merge_patch(&served.r(gk, Some(&c.hc.hcp_ns), name(o))?, &json!({}))
                .map_err(|e| {
                    ferry_sdk::context(
                        e,
                        format!(
                            "writing {} {} once so that it is stored as {storage}; teardown refused before stopping \
                             the operator",
                            gk.kind,
                            name(o)
                        ),
                    )
                })?;
        }
        rewritten.push(format!(
            "{} ({} object{}, {} → {storage})",
            gk.kind,
            objects.len(),
            if objects.len() == 1 { "" } else { "s" },
            stored.join("+")
        ));
    }
    if pins.is_empty() {
        return Ok((
            pins,
            Done::Skipped("no Cluster API CRD converts through a webhook".into()),
        ));
    }
    if rewritten.is_empty() {
        return Ok((
            pins,
            Done::Checked(format!(
                "every object is stored in its CRD's storage version, which teardown uses: {}",
                notes.join(", ")
            )),
        ));
    }
    let detail = format!(
        "stored in the storage version while the conversion webhook answers: {}{}",
        rewritten.join(", "),
        if notes.is_empty() {
            String::new()
        } else {
            format!("; already so: {}", notes.join(", "))
        }
    );
    Ok((
        pins,
        if c.plan {
            Done::Planned(format!("would have {detail}"))
        } else {
            Done::Did(detail)
        },
    ))
}

/// The teardowns (`namespace/name`) noted on the webhook configuration.
fn webhook_holders(vwc: &Value) -> Vec<String> {
    manifest::annotation(vwc, WEBHOOK_HOLDERS_ANNOTATION)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

/// The expression that keeps objects carrying [`TEARDOWN_LABEL`] out of a webhook.
fn teardown_expression() -> Value {
    json!({"key": TEARDOWN_LABEL, "operator": "DoesNotExist"})
}

/// Whether webhook `w` is called for HostedClusters or NodePools.
fn guards_hosted_clusters(w: &Value) -> bool {
    w.get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|rule| {
            let has = |field: &str, want: &[&str]| {
                rule.get(field)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|v| v == "*" || want.contains(&v))
            };
            has("apiGroups", &["hypershift.openshift.io"]) && has("resources", &["hostedclusters", "nodepools"])
        })
}

fn excludes_teardown(w: &Value) -> bool {
    w.pointer("/objectSelector/matchExpressions")
        .and_then(Value::as_array)
        .is_some_and(|e| e.contains(&teardown_expression()))
}

/// Keeps the operator's validating webhooks (`hypershift install --enable-validating-webhook`,
/// as MCE installs it: HostedCluster and NodePool UPDATE, `failurePolicy: Fail`) from refusing
/// teardown's writes while the operator is stopped: labels this hosted cluster's HostedCluster
/// and NodePools while the webhook still answers, then adds `objectSelector`
/// `{key: ferry.dev/teardown, operator: DoesNotExist}` to each webhook (a webhook
/// configuration is never itself sent to a webhook). The selectors as they were and the
/// teardowns that need them changed are noted on the configuration, under the
/// resourceVersion read; `webhooks-back` puts them back.
fn exclude_from_webhooks(c: &mut Ctx, src: &Cluster) -> Result<Done> {
    let vwc_ref = r(VALIDATING_WEBHOOK_CONFIGURATION, None, HYPERSHIFT_WEBHOOK_CONFIGURATION);
    let Some(first) = src.get(&vwc_ref)? else {
        return Ok(Done::Skipped(format!(
            "no ValidatingWebhookConfiguration {HYPERSHIFT_WEBHOOK_CONFIGURATION}: writes to HostedClusters and \
             NodePools do not need the operator"
        )));
    };
    if !first
        .get("webhooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(guards_hosted_clusters)
    {
        return Ok(Done::Skipped(format!(
            "ValidatingWebhookConfiguration {HYPERSHIFT_WEBHOOK_CONFIGURATION} guards no HostedCluster or NodePool"
        )));
    }
    let me = this_hosted_cluster(c);
    let mut changed = Vec::new();
    // Labels first, while the operator answers the UPDATE they are.
    let pools: Vec<String> = own_node_pools(&src.list(NODE_POOL.0, NODE_POOL.1, Some(&c.hc.ns), None)?, &c.hc.name)
        .iter()
        .map(|p| name(p).to_string())
        .collect();
    let mut targets = vec![c.hc.hc_ref()];
    targets.extend(pools.iter().map(|p| r(NODE_POOL, Some(&c.hc.ns), p)));
    for t in &targets {
        let Some(obj) = src.get(t)? else { continue };
        let labelled = obj
            .pointer("/metadata/labels")
            .and_then(|l| l.get(TEARDOWN_LABEL))
            .is_some();
        if !labelled {
            src.merge_patch(t, &json!({"metadata": {"labels": {TEARDOWN_LABEL: "true"}}}))?;
            changed.push(format!("labelled {} {}", t.kind, t.name));
        }
    }
    for _ in 0..NOTE_ATTEMPTS {
        let Some(vwc) = src.get(&vwc_ref)? else {
            break;
        };
        let mut holders = webhook_holders(&vwc);
        let mut webhooks: Vec<Value> = vwc
            .get("webhooks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let done = webhooks
            .iter()
            .filter(|w| guards_hosted_clusters(w))
            .all(excludes_teardown);
        if done && holders.contains(&me) {
            break;
        }
        let mut annotations = serde_json::Map::new();
        if manifest::annotation(&vwc, WEBHOOK_SELECTORS_ANNOTATION).is_none() {
            let before: serde_json::Map<String, Value> = webhooks
                .iter()
                .filter_map(|w| {
                    let n = w.get("name").and_then(Value::as_str)?;
                    Some((n.to_string(), w.get("objectSelector").cloned().unwrap_or(json!({}))))
                })
                .collect();
            annotations.insert(
                WEBHOOK_SELECTORS_ANNOTATION.into(),
                json!(Value::Object(before).to_string()),
            );
        }
        if !holders.contains(&me) {
            holders.push(me.clone());
            holders.sort();
        }
        annotations.insert(WEBHOOK_HOLDERS_ANNOTATION.into(), json!(holders.join(",")));
        for w in webhooks.iter_mut().filter(|w| guards_hosted_clusters(w)) {
            if excludes_teardown(w) {
                continue;
            }
            let sel = w
                .as_object_mut()
                .map(|o| o.entry("objectSelector").or_insert(json!({})))
                .and_then(Value::as_object_mut);
            if let Some(sel) = sel {
                let exprs = sel.entry("matchExpressions").or_insert(json!([]));
                if let Some(a) = exprs.as_array_mut() {
                    a.push(teardown_expression());
                }
            }
        }
        let rv = str_at(&vwc, "/metadata/resourceVersion").unwrap_or_default();
        match src.merge_patch(
            &vwc_ref,
            &json!({"metadata": {"resourceVersion": rv, "annotations": annotations}, "webhooks": webhooks}),
        ) {
            Ok(_) => {
                changed.push(format!(
                    "excluded objects labelled {TEARDOWN_LABEL} from ValidatingWebhookConfiguration \
                     {HYPERSHIFT_WEBHOOK_CONFIGURATION}"
                ));
                break;
            }
            Err(Error::Conflict(_)) if !c.plan => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(match (changed.is_empty(), c.plan) {
        (true, _) => Done::Already(format!(
            "the operator's validating webhooks leave this hosted cluster's objects alone \
             ({HYPERSHIFT_WEBHOOK_CONFIGURATION})"
        )),
        (false, true) => Done::Planned(format!("would have {}", changed.join("; "))),
        (false, false) => Done::Did(changed.join("; ")),
    })
}

/// Puts the operator's validating webhooks back as they were before teardown, unless another
/// hosted cluster's teardown still needs them changed (the last one puts them back).
fn webhooks_back(c: &mut Ctx, src: &Cluster) -> Result<Done> {
    let vwc_ref = r(VALIDATING_WEBHOOK_CONFIGURATION, None, HYPERSHIFT_WEBHOOK_CONFIGURATION);
    let me = this_hosted_cluster(c);
    for _ in 0..NOTE_ATTEMPTS {
        let Some(vwc) = src.get(&vwc_ref)? else {
            return Ok(Done::Skipped(format!(
                "no ValidatingWebhookConfiguration {HYPERSHIFT_WEBHOOK_CONFIGURATION}"
            )));
        };
        let holders = webhook_holders(&vwc);
        let saved = manifest::annotation(&vwc, WEBHOOK_SELECTORS_ANNOTATION).map(str::to_string);
        let others: Vec<String> = holders.iter().filter(|h| **h != me).cloned().collect();
        let rv = str_at(&vwc, "/metadata/resourceVersion")
            .unwrap_or_default()
            .to_string();
        let patch = if !others.is_empty() {
            if !holders.contains(&me) {
                return Ok(Done::Already(format!(
                    "the webhooks stay changed for the teardown of {}, which puts them back",
                    others.join(", ")
                )));
            }
            json!({"metadata": {"resourceVersion": rv, "annotations": {WEBHOOK_HOLDERS_ANNOTATION: others.join(",")}}})
        } else {
            let Some(saved) = saved else {
                return Ok(Done::Already(format!(
                    "ValidatingWebhookConfiguration {HYPERSHIFT_WEBHOOK_CONFIGURATION} is as before teardown"
                )));
            };
            let before: serde_json::Map<String, Value> = serde_json::from_str(&saved).map_err(|e| {
                Error::Invalid(format!(
                    "annotation {WEBHOOK_SELECTORS_ANNOTATION} on ValidatingWebhookConfiguration \
                     {HYPERSHIFT_WEBHOOK_CONFIGURATION} is not the JSON teardown wrote ({e}); put the objectSelectors \
                     back by hand"
                ))
            })?;
            let mut webhooks: Vec<Value> = vwc
                .get("webhooks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for w in &mut webhooks {
                let n = w.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                let Some(o) = w.as_object_mut() else { continue };
                match before.get(&n) {
                    Some(sel) => {
                        o.insert("objectSelector".into(), sel.clone());
                    }
                    // A webhook added since: only ferry's expression comes out.
                    None => {
                        if let Some(a) = o
                            .get_mut("objectSelector")
                            .and_then(|s| s.get_mut("matchExpressions"))
                            .and_then(Value::as_array_mut)
                        {
                            a.retain(|e| *e != teardown_expression());
                        }
                    }
                }
            }
            json!({"metadata": {"resourceVersion": rv,
                    "annotations": {WEBHOOK_HOLDERS_ANNOTATION: null, WEBHOOK_SELECTORS_ANNOTATION: null}},
                   "webhooks": webhooks})
        };
        match src.merge_patch(&vwc_ref, &patch) {
            Ok(_) if !others.is_empty() => {
                return Ok(Done::Did(format!(
                    "left the webhooks changed for the teardown of {}, which puts them back",
                    others.join(", ")
                )));
            }
            Ok(_) if c.plan => {
                return Ok(Done::Planned(format!(
                    "would put back the object selectors of ValidatingWebhookConfiguration \
                     {HYPERSHIFT_WEBHOOK_CONFIGURATION}"
                )));
            }
            Ok(_) => {
                return Ok(Done::Did(format!(
                    "put back the object selectors of ValidatingWebhookConfiguration {HYPERSHIFT_WEBHOOK_CONFIGURATION}"
                )));
            }
            Err(Error::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Unavailable(format!(
        "ValidatingWebhookConfiguration {HYPERSHIFT_WEBHOOK_CONFIGURATION} kept changing while teardown put its \
         selectors back ({NOTE_ATTEMPTS} tries); re-run teardown"
    )))
}
