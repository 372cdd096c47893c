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
use ferry_sdk::k8s::{Cluster, DeleteOutcome, condition_true, name, str_at};
use ferry_sdk::wait::{Check, Wait};
use ferry_sdk::{Error, Result, log, manifest};
use serde_json::{Value, json};

use crate::ctx::{Ctx, Done};
use crate::layout;
use crate::model::*;
use crate::publish;
use crate::restore::{node_counts, restored_on};
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
    // Once the operator is being stopped, whatever fails, it is started again.
    let result = c
        .step("stop-operator", |c| {
            let me = this_hosted_cluster(c);
            let stopped_by_us = src.get(&op_ref)?.is_some_and(|d| stopped_for(&d, &me));
            if !remains && !stopped_by_us {
                return Ok(Done::Already(
                    "nothing of the hosted cluster is left on the source".into(),
                ));
            }
            stop_operator(c, &src, &op_ref)
        })
        .and_then(|()| tear_down(&mut c, &src, &carried));
    if let Err(e) = result {
        return Err(restart_after(&mut c, &src, &op_ref, e));
    }
    c.step("start-operator", |c| start_operator(c, &src, &op_ref))?;
    Ok(c.summary())
}

/// The steps between `stop-operator` and `start-operator`.
fn tear_down(c: &mut Ctx, src: &Cluster, carried: &[ferry_sdk::ObjectRef]) -> Result<()> {
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
fn restart_after(c: &mut Ctx, src: &Cluster, op_ref: &ferry_sdk::ObjectRef, e: Error) -> Error {
    if crate::ctx::is_stop(&e) || c.plan {
        return e;
    }
    let how = format!(
        "kubectl -n {} scale deployment/{} --replicas=<the value of annotation {OPERATOR_REPLICAS_ANNOTATION}>",
        op_ref.namespace.as_deref().unwrap_or("hypershift"),
        op_ref.name
    );
    match start_operator(c, src, op_ref) {
        Ok(done) => {
            let what = match done {
                Done::Did(d) | Done::Already(d) | Done::Skipped(d) | Done::Planned(d) | Done::Checked(d) => d,
            };
            ferry_sdk::context(
                e,
                format!(
                    "teardown stopped; the source's HyperShift operator was started again ({what}); re-run teardown"
                ),
            )
        }
        Err(restart) => ferry_sdk::context(
            e,
            format!(
                "teardown stopped, and starting the source's HyperShift operator again failed too ({}): every other \
                 hosted cluster on the source is unmanaged until you run `{how}`",
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
    let mut dns_note = String::new();
    if let Some((zone, domain)) = zone {
        let owner = publish::owner_id(dst)
            .map_err(msg)?
            .ok_or("the destination runs no external-dns with a --txt-owner-id")?;
        let hosts = publish::public_hosts(dst, &c.hc.hcp_ns, domain).map_err(msg)?;
        let records = ferry_sdk::k8s::retry(|| zone.list_record_sets(Some(domain))).map_err(msg)?;
        let left = publish::not_moved(&records, &hosts, c.p.or("txt_suffix", "-external-dns"), &owner);
        if !left.is_empty() {
            return Err(format!(
                "Route53 does not publish {} from the destination ({owner}) yet: the nodes still reach the source",
                left.join(", ")
            ));
        }
        dns_note = format!(", {} hostname(s) published from the destination", hosts.len());
    }
    let (ready, expected) = node_counts(c, dst, hosted).map_err(msg)?;
    if ready < expected {
        return Err(format!(
            "only {ready} of {expected} nodes are Ready in the hosted cluster"
        ));
    }
    Ok(format!(
        "the destination runs the hosted cluster: Available, etcd restored{dns_note}, {ready}/{expected} nodes Ready"
    ))
}

/// The hosted clusters whose teardowns need the operator stopped, as noted on it.
fn holders(d: &Value) -> Vec<String> {
    manifest::annotation(d, OPERATOR_HOLDERS_ANNOTATION)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether this teardown stopped the operator (or an older ferry did, which noted only the
/// replicas) and has not started it again.
fn stopped_for(d: &Value, me: &str) -> bool {
    let noted = holders(d);
    noted.iter().any(|h| h == me)
        || (noted.is_empty() && manifest::annotation(d, OPERATOR_REPLICAS_ANNOTATION).is_some())
}

/// Notes `annotations` on the operator under the resourceVersion `d` was read at: of two
/// teardowns noting themselves at once, one is told of a conflict and reads again, so neither
/// is lost. `false` on a conflict.
fn note_on_operator(src: &Cluster, op_ref: &ferry_sdk::ObjectRef, d: &Value, annotations: Value) -> Result<bool> {
    let rv = str_at(d, "/metadata/resourceVersion").unwrap_or_default();
    match src.merge_patch(
        op_ref,
        &json!({"metadata": {"resourceVersion": rv, "annotations": annotations}}),
    ) {
        Ok(_) => Ok(true),
        Err(Error::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// How often a note on the operator is read again after losing a race with another teardown.
const NOTE_ATTEMPTS: usize = 20;

fn lost_races(op_ref: &ferry_sdk::ObjectRef) -> Error {
    Error::Unavailable(format!(
        "{} kept changing while teardown noted itself on it ({NOTE_ATTEMPTS} tries); re-run teardown",
        ferry_sdk::k8s::describe(op_ref)
    ))
}

fn this_hosted_cluster(c: &Ctx) -> String {
    format!("{}/{}", c.hc.ns, c.hc.name)
}

/// The operator Deployment as this run sees it: in a plan, as the plan's earlier writes would
/// have left it (they were dry runs), so the plan holds the writes the real run makes.
fn read_operator(c: &Ctx, src: &Cluster, op_ref: &ferry_sdk::ObjectRef) -> Result<Option<Value>> {
    if c.plan
        && let Some(d) = c.planned.get(&ferry_sdk::k8s::describe(op_ref))
    {
        return Ok(Some(d.clone()));
    }
    src.get(op_ref)
}

/// In a plan: what a merge patch of the operator (a note, or `spec.replicas` for a scale) would
/// leave on it, applied as the API server applies one (RFC 7386: `null` removes a key).
fn plan_on_operator(c: &mut Ctx, op_ref: &ferry_sdk::ObjectRef, d: &Value, patch: &Value) {
    if c.plan {
        let mut after = d.clone();
        merge(&mut after, patch);
        c.planned.insert(ferry_sdk::k8s::describe(op_ref), after);
    }
}

fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(t) = target.as_object_mut() {
        for (k, v) in fields {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn stop_operator(c: &mut Ctx, src: &Cluster, op_ref: &ferry_sdk::ObjectRef) -> Result<Done> {
    let me = this_hosted_cluster(c);
    let mut noted = None;
    for _ in 0..NOTE_ATTEMPTS {
        let Some(d) = read_operator(c, src, op_ref)? else {
            return Ok(Done::Skipped(format!(
                "no operator Deployment {}; set operator_namespace/operator_deployment if HyperShift is installed elsewhere",
                ferry_sdk::k8s::describe(op_ref)
            )));
        };
        let replicas = d.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
        let mut others = holders(&d);
        let recorded = manifest::annotation(&d, OPERATOR_REPLICAS_ANNOTATION).is_some();
        if others.contains(&me) && recorded {
            noted = Some(replicas);
            break;
        }
        // Noted before it is scaled: a crash after this still knows the replicas to restore, and
        // another teardown finishing meanwhile knows not to start it.
        if !others.contains(&me) {
            others.push(me.clone());
            others.sort();
        }
        let mut annotations = json!({OPERATOR_HOLDERS_ANNOTATION: others.join(",")});
        if !recorded {
            // Found stopped by someone else: it was stopped, and stays so afterwards.
            annotations[OPERATOR_REPLICAS_ANNOTATION] = json!(replicas.to_string());
        }
        if note_on_operator(src, op_ref, &d, annotations.clone())? {
            plan_on_operator(c, op_ref, &d, &json!({"metadata": {"annotations": annotations}}));
            noted = Some(replicas);
            break;
        }
    }
    let Some(replicas) = noted else {
        return Err(lost_races(op_ref));
    };
    if replicas == 0 {
        return Ok(Done::Already("the source's HyperShift operator is stopped".into()));
    }
    src.scale(op_ref, 0)?;
    if c.plan {
        let d = read_operator(c, src, op_ref)?.unwrap_or_default();
        plan_on_operator(c, op_ref, &d, &json!({"spec": {"replicas": 0}}));
        return Ok(Done::Planned(format!(
            "would note this teardown on the HyperShift operator and scale it from {replicas} to 0"
        )));
    }
    let ns = op_ref.namespace.clone().unwrap_or_default();
    workloads::wait_pods_gone(
        c,
        src,
        &ns,
        &[op_ref.name.as_str()],
        "teardown/stop-operator",
        "the operator must not run while the hosted cluster is deleted",
    )?;
    Ok(Done::Did(format!(
        "scaled the HyperShift operator from {replicas} to 0"
    )))
}

/// Starts the operator again at the replicas it had, unless another hosted cluster's teardown
/// still needs it stopped (then that one starts it). It is scaled before the notes are cleared:
/// a teardown that notes itself in between finds the replicas to restore, and its own
/// scale-down stops the operator again before it deletes anything.
fn start_operator(c: &mut Ctx, src: &Cluster, op_ref: &ferry_sdk::ObjectRef) -> Result<Done> {
    let me = this_hosted_cluster(c);
    let mut scaled: Option<u32> = None;
    for _ in 0..NOTE_ATTEMPTS {
        let Some(d) = read_operator(c, src, op_ref)? else {
            return Ok(Done::Skipped("no operator Deployment".into()));
        };
        let Some(recorded) = manifest::annotation(&d, OPERATOR_REPLICAS_ANNOTATION).map(str::to_string) else {
            return Ok(match scaled {
                Some(n) => Done::Did(format!("scaled the HyperShift operator back to {n}")),
                None => Done::Already("the HyperShift operator runs as before teardown".into()),
            });
        };
        let others: Vec<String> = holders(&d).into_iter().filter(|h| *h != me).collect();
        if !others.is_empty() {
            let note = json!({OPERATOR_HOLDERS_ANNOTATION: others.join(",")});
            if note_on_operator(src, op_ref, &d, note.clone())? {
                plan_on_operator(c, op_ref, &d, &json!({"metadata": {"annotations": note}}));
                if c.plan {
                    return Ok(Done::Planned(format!(
                        "would leave the HyperShift operator stopped for the teardown of {}",
                        others.join(", ")
                    )));
                }
                return Ok(Done::Already(format!(
                    "the HyperShift operator stays stopped: the teardown of {} still needs it stopped, and starts it \
                     again when done",
                    others.join(", ")
                )));
            }
            continue;
        }
        let replicas: u32 = recorded.parse().map_err(|_| {
            Error::Invalid(format!(
                "annotation {OPERATOR_REPLICAS_ANNOTATION}={recorded:?} on {} is not a number; scale the operator by hand",
                ferry_sdk::k8s::describe(op_ref)
            ))
        })?;
        if scaled.is_none() {
            src.scale(op_ref, replicas)?;
            plan_on_operator(c, op_ref, &d, &json!({"spec": {"replicas": replicas}}));
            scaled = Some(replicas);
            // Read again: the notes are cleared under the resourceVersion after the scale.
            continue;
        }
        let cleared = json!({OPERATOR_HOLDERS_ANNOTATION: null, OPERATOR_REPLICAS_ANNOTATION: null});
        if note_on_operator(src, op_ref, &d, cleared.clone())? {
            plan_on_operator(c, op_ref, &d, &json!({"metadata": {"annotations": cleared}}));
            if c.plan {
                return Ok(Done::Planned(format!(
                    "would scale the HyperShift operator back to {replicas} and clear the notes"
                )));
            }
            return Ok(Done::Did(format!("scaled the HyperShift operator back to {replicas}")));
        }
    }
    Err(lost_races(op_ref))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan's copy of the operator takes a note or a scale as the API server would.
    #[test]
    fn a_merge_patch_sets_nested_fields_and_null_removes() {
        let mut d =
            json!({"metadata": {"annotations": {"a": "1", "b": "2"}, "name": "operator"}, "spec": {"replicas": 2}});
        merge(
            &mut d,
            &json!({"metadata": {"annotations": {"a": null, "c": "3"}}, "spec": {"replicas": 0}}),
        );
        assert_eq!(
            d,
            json!({"metadata": {"annotations": {"b": "2", "c": "3"}, "name": "operator"}, "spec": {"replicas": 0}})
        );
    }

    /// Which teardowns hold the operator stopped, as noted on it; an older ferry noted only
    /// the replicas, and its teardown counts as this one's.
    #[test]
    fn the_operator_is_held_by_the_teardowns_noted_on_it() {
        let noted = |holders: Option<&str>, replicas: Option<&str>| {
            let mut a = serde_json::Map::new();
            if let Some(h) = holders {
                a.insert(OPERATOR_HOLDERS_ANNOTATION.into(), json!(h));
            }
            if let Some(r) = replicas {
                a.insert(OPERATOR_REPLICAS_ANNOTATION.into(), json!(r));
            }
            json!({"metadata": {"annotations": a}})
        };
        let d = noted(Some("clusters/a, team-b/db,"), Some("2"));
        assert_eq!(holders(&d), ["clusters/a", "team-b/db"]);
        assert!(stopped_for(&d, "team-b/db"));
        assert!(!stopped_for(&d, "clusters/b"));
        assert!(stopped_for(&noted(None, Some("2")), "clusters/b"));
        assert!(!stopped_for(&noted(None, None), "clusters/b"));
        assert!(holders(&noted(Some(""), Some("0"))).is_empty());
    }
}
