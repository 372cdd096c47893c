//! `teardown` on the source management cluster.
//!
//! The HyperShift operator adds its finalizer to a HostedCluster before it
//! checks the pause, and its deletion branch ignores `pausedUntil`: deleting a
//! paused HostedCluster while it runs makes it destroy the cloud resources
//! the migrated cluster now uses. So teardown first stops the source's
//! operator (remembering its replicas on the Deployment itself), removes
//! finalizers with merge patches (which, unlike the documented JSON patch,
//! work when there are none), deletes everything of this hosted cluster, and
//! only then starts the operator again at the replicas it had.

use ferry_sdk::hooks::Point;
use ferry_sdk::k8s::{Cluster, DeleteOutcome, condition_true, name, str_at};
use ferry_sdk::wait::{Check, Wait};
use ferry_sdk::{Error, Result, log, manifest};
use serde_json::{Value, json};

use crate::ctx::{Ctx, Done};
use crate::layout;
use crate::model::*;
use crate::restore::node_counts;

/// Runs the teardown phase.
pub fn run(args: &[(String, String)]) -> Result<Value> {
    let mut c = Ctx::new("teardown", args)?;
    let src = c.open("source")?;
    let dst = c.open("destination")?;
    let hosted = c.open("hosted")?;
    let bucket = layout::open_bucket(&c)?;
    let force = c.p.flag("force");
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
        let index_key = format!("{}index.json", layout::s3_dir(c, &backup.index.backup_id));
        ferry_sdk::k8s::retry(|| bucket.head(&index_key)).map_err(|e| {
            ferry_sdk::context(
                e,
                format!("the S3 copy of backup {} (teardown keeps it)", backup.index.backup_id),
            )
        })?;
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
        let verified = match destination_health(c, &dst, &hosted) {
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
        // The site's own checks (change windows, approvals) come last, before anything is deleted.
        c.hook(Point::Verify, "gate", json!({"destination": verified}))
            .map_err(|e| ferry_sdk::context(e, "teardown refused; nothing was deleted"))?;
        Ok(Done::Checked(verified))
    })?;
    let op_ns = c.p.or("operator_namespace", "hypershift").to_string();
    let op_name = c.p.or("operator_deployment", "operator").to_string();
    let op_ref = r(DEPLOYMENT, Some(&op_ns), &op_name);
    // Nothing of this hosted cluster left on the source: nothing to stop the operator for.
    let remains = src.get(&c.hc.hc_ref())?.is_some()
        || src.get(&r(NAMESPACE, None, &c.hc.hcp_ns))?.is_some()
        || !own_node_pools(&src.list(NODE_POOL.0, NODE_POOL.1, Some(&c.hc.ns), None)?, &c.hc.name).is_empty();
    c.step("stop-operator", |c| {
        let stopped_by_us = src
            .get(&op_ref)?
            .is_some_and(|d| manifest::annotation(&d, OPERATOR_REPLICAS_ANNOTATION).is_some());
        if !remains && !stopped_by_us {
            return Ok(Done::Already(
                "nothing of the hosted cluster is left on the source".into(),
            ));
        }
        stop_operator(c, &src, &op_ref)
    })?;
    c.step("scale-down", |c| scale_down(c, &src))?;
    let pools: Vec<String> = own_node_pools(&src.list(NODE_POOL.0, NODE_POOL.1, Some(&c.hc.ns), None)?, &c.hc.name)
        .iter()
        .map(|p| name(p).to_string())
        .collect();
    let hc_ns = c.hc.ns.clone();
    c.step("node-pools", |c| {
        let refs = pools.iter().map(|p| r(NODE_POOL, Some(&hc_ns), p)).collect();
        remove(c, &src, refs)
    })?;
    let hcp_ns = c.hc.hcp_ns.clone();
    let all_of = |kinds: &[Kind]| -> Result<Vec<ferry_sdk::ObjectRef>> {
        let mut out = Vec::new();
        for k in kinds {
            for o in src.list(k.0, k.1, Some(&hcp_ns), None)? {
                out.push(r(*k, Some(&hcp_ns), name(&o)));
            }
        }
        Ok(out)
    };
    c.step("machines", |c| remove(c, &src, all_of(&[MACHINE])?))?;
    c.step("machine-sets", |c| {
        remove(c, &src, all_of(&[MACHINE_SET, MACHINE_DEPLOYMENT])?)
    })?;
    c.step("capi-cluster", |c| remove(c, &src, all_of(&[CAPI_CLUSTER])?))?;
    c.step("aws-machines", |c| {
        remove(c, &src, all_of(&[AWS_MACHINE, AWS_MACHINE_TEMPLATE, AWS_CLUSTER])?)
    })?;
    c.step("control-plane", |c| remove(c, &src, all_of(&[HOSTED_CONTROL_PLANE])?))?;
    c.step("hcp-namespace", |c| delete_namespace(c, &src, &hcp_ns))?;
    c.step("hosted-cluster", |c| remove(c, &src, vec![c.hc.hc_ref()]))?;
    c.step("hc-namespace", |c| hc_namespace(c, &src, &carried))?;
    c.step("start-operator", |c| start_operator(c, &src, &op_ref))?;
    Ok(c.summary())
}

/// Checks that the destination runs the hosted cluster: HostedCluster
/// Available with its etcd restored, and all its nodes Ready.
pub fn destination_health(c: &Ctx, dst: &Cluster, hosted: &Cluster) -> std::result::Result<String, String> {
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
    if restoring && !condition_true(&hc, "EtcdSnapshotRestored") {
        return Err(
            "the destination's etcd was not restored from the snapshot (EtcdSnapshotRestored is not True)".into(),
        );
    }
    let (ready, expected) = node_counts(c, dst, hosted).map_err(msg)?;
    if ready < expected {
        return Err(format!(
            "only {ready} of {expected} nodes are Ready in the hosted cluster"
        ));
    }
    Ok(format!(
        "the destination runs the hosted cluster: Available, etcd restored, {ready}/{expected} nodes Ready"
    ))
}

fn stop_operator(c: &mut Ctx, src: &Cluster, op_ref: &ferry_sdk::ObjectRef) -> Result<Done> {
    let Some(d) = src.get(op_ref)? else {
        return Ok(Done::Skipped(format!(
            "no operator Deployment {}; set operator_namespace/operator_deployment if HyperShift is installed elsewhere",
            ferry_sdk::k8s::describe(op_ref)
        )));
    };
    let replicas = d.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
    let recorded = manifest::annotation(&d, OPERATOR_REPLICAS_ANNOTATION).is_some();
    if replicas == 0 {
        if !recorded && !c.plan {
            // Someone else stopped it: remember that it was stopped.
            src.merge_patch(
                op_ref,
                &json!({"metadata": {"annotations": {OPERATOR_REPLICAS_ANNOTATION: "0"}}}),
            )?;
        }
        return Ok(Done::Already("the source's HyperShift operator is stopped".into()));
    }
    if c.plan {
        return Ok(Done::Planned(format!(
            "would scale the HyperShift operator from {replicas} to 0"
        )));
    }
    // Record the replicas on the Deployment first: a crash after this still knows them.
    if !recorded {
        src.merge_patch(
            op_ref,
            &json!({"metadata": {"annotations": {OPERATOR_REPLICAS_ANNOTATION: replicas.to_string()}}}),
        )?;
    }
    src.scale(op_ref, 0)?;
    let selector = d
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty());
    if let Some(selector) = selector {
        let ns = op_ref.namespace.clone().unwrap_or_default();
        Wait {
            step: "teardown/stop-operator",
            what: "the HyperShift operator's pods to stop",
            timeout_seconds: 300,
            interval_millis: 1000,
            on_timeout: "Nothing of the hosted cluster was deleted yet. Check the operator's pods and re-run teardown.",
        }
        .until(|| {
            let pods = src.list(POD.0, POD.1, Some(&ns), Some(&selector))?;
            Ok(if pods.is_empty() {
                Check::Done(())
            } else {
                Check::Pending(format!("{} pods left", pods.len()))
            })
        })?;
    }
    Ok(Done::Did(format!(
        "scaled the HyperShift operator from {replicas} to 0"
    )))
}

fn start_operator(c: &mut Ctx, src: &Cluster, op_ref: &ferry_sdk::ObjectRef) -> Result<Done> {
    let Some(d) = src.get(op_ref)? else {
        return Ok(Done::Skipped("no operator Deployment".into()));
    };
    let Some(recorded) = manifest::annotation(&d, OPERATOR_REPLICAS_ANNOTATION) else {
        return Ok(Done::Already("the HyperShift operator runs as before teardown".into()));
    };
    let replicas: u32 = recorded.parse().map_err(|_| {
        Error::Invalid(format!(
            "annotation {OPERATOR_REPLICAS_ANNOTATION}={recorded:?} on {} is not a number; scale the operator by hand",
            ferry_sdk::k8s::describe(op_ref)
        ))
    })?;
    if c.plan {
        return Ok(Done::Planned(format!(
            "would scale the HyperShift operator back to {replicas}"
        )));
    }
    src.scale(op_ref, replicas)?;
    src.merge_patch(
        op_ref,
        &json!({"metadata": {"annotations": {OPERATOR_REPLICAS_ANNOTATION: null}}}),
    )?;
    Ok(Done::Did(format!("scaled the HyperShift operator back to {replicas}")))
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
    let others = src.list(HOSTED_CLUSTER.0, HOSTED_CLUSTER.1, Some(&ns), None)?;
    let mut refs = References::default();
    others.iter().for_each(|o| refs.collect(o));
    for np in src.list(NODE_POOL.0, NODE_POOL.1, Some(&ns), None)? {
        refs.collect(&np);
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
    // Does anything else live in the namespace?
    let mut residents = Vec::new();
    for kind in [HOSTED_CLUSTER, NODE_POOL, DEPLOYMENT, STATEFUL_SET, POD] {
        for o in src.list(kind.0, kind.1, Some(&ns), None)? {
            residents.push(format!("{} {}", kind.1, name(&o)));
        }
    }
    for s in src.list(SECRET.0, SECRET.1, Some(&ns), None)? {
        let t = str_at(&s, "/type").unwrap_or_default();
        if t != "kubernetes.io/service-account-token" && !t.contains("docker") {
            residents.push(format!("Secret {}", name(&s)));
        }
    }
    for cm in src.list(CONFIG_MAP.0, CONFIG_MAP.1, Some(&ns), None)? {
        let n = name(&cm);
        if n != "kube-root-ca.crt" && n != "openshift-service-ca.crt" {
            residents.push(format!("ConfigMap {n}"));
        }
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
    if residents.is_empty() {
        src.delete(&r(NAMESPACE, None, &ns))?;
        detail.push_str(&format!("; deleted namespace {ns} (nothing else lived in it)"));
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
