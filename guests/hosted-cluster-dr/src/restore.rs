//! `restore` on the destination management cluster.

use ferry_sdk::hooks::{self, Outcome, Point};
use ferry_sdk::k8s::{Cluster, condition, condition_true, name, str_at};
use ferry_sdk::objects::Bucket;
use ferry_sdk::wait::{Check, Wait};
use ferry_sdk::{Error, Result, ResultExt, conflict, etcd, invalid, log, manifest};
use serde_json::{Value, json};

use crate::ctx::{Ctx, Done};
use crate::layout::{self, FileEntry, Index};
use crate::model::*;
use crate::publish;

/// `hypershift.openshift.io/restored-from-backup`: upstream's signal that a control plane came
/// from a backup. The HO mirrors it to the HostedControlPlane, the hosted cluster config
/// operator then recovers what a restore leaves stale (`reconcileClusterRecovery`) and reports
/// `HostedClusterRestoredFromBackup`; the HO removes the annotation once that is True.
pub const RESTORED_FROM_BACKUP_ANNOTATION: &str = "hypershift.openshift.io/restored-from-backup";

/// Runs the restore phase.
pub fn run(args: &[(String, String)]) -> Result<Value> {
    let mut c = Ctx::new("restore", args)?;
    let dst = c.open("destination")?;
    let src = c.open("source")?;
    let hosted = c.open("hosted")?;
    let bucket = layout::open_bucket(&c)?;
    let zone_id = c.p.require("zone_id")?.to_string();
    let zone = ferry_sdk::k8s::retry(|| ferry_sdk::dns::open_zone(&zone_id)).ctx(format!("hosted zone {zone_id}"))?;
    let domain = c.p.require("external_dns_domain")?.to_string();
    let missing = format!(
        "no backup of {}/{} in the backup directory nor in s3://{}/{}",
        c.hc.ns,
        c.hc.name,
        bucket.name(),
        layout::s3_root(&c)
    );
    let Some(backup) = layout::load(&c, &bucket)? else {
        if c.plan {
            c.step("verify-backup", |_| {
                Ok(Done::Planned(format!(
                    "{missing} yet: would restore the backup `ferry backup` takes"
                )))
            })?;
            return Ok(c.summary());
        }
        return Err(Error::NotFound(format!("{missing}; run `ferry backup` first")));
    };
    let index = backup.index;
    let id = index.backup_id.clone();
    // The API is down from when backup stopped the writers until `api-write` sees a write.
    c.api_down_since = index.writers_stopped_at;
    c.out.insert("backup_id".into(), json!(id));
    let mut manifests: Vec<(FileEntry, Value)> = Vec::new();
    c.step("verify-backup", |c| {
        manifests = verify(c, &bucket, &index)?;
        // Site hooks may rewrite manifests; done before anything is applied.
        for (f, m) in manifests.iter_mut() {
            if let Outcome::Replaced(text) = hooks::dispatch(Point::TransformObject, "restore", "verify-backup", m)? {
                *m = serde_json::from_str(&text).map_err(|e| {
                    invalid(format!(
                        "a transform-object hook returned invalid JSON for {}: {e}",
                        f.path
                    ))
                })?;
            }
        }
        Ok(Done::Checked(format!(
            "backup {id} ({} index): {} manifests and the snapshot match their SHA-256",
            backup.origin,
            manifests.len()
        )))
    })?;
    c.step("preflight", |c| {
        if let Some(why) = etcd_init_refusal(c, &index.source.availability_policy) {
            return Err(invalid(format!("{why}; nothing was changed on the destination")));
        }
        preflight(c, &dst, &id, &manifests)
    })?;
    c.step("namespaces", |c| namespaces(c, &dst, &id))?;
    let hc_ns = c.hc.ns.clone();
    let hcp_ns = c.hc.hcp_ns.clone();
    let of = |kinds: &[GroupKind], ns: &str| -> Vec<Value> {
        manifests
            .iter()
            .filter(|(f, _)| f.namespace == ns && kinds.iter().any(|k| is(f, *k)))
            .map(|(_, m)| m.clone())
            .collect()
    };
    c.step("secrets", |c| {
        apply_all(c, &dst, &id, of(&[gk(SECRET), gk(CONFIG_MAP)], &hc_ns))
    })?;
    c.step("hcp-secrets", |c| {
        apply_all(c, &dst, &id, of(&[gk(SECRET), gk(CONFIG_MAP)], &hcp_ns))
    })?;
    // No HostedControlPlane from the backup: the operator builds it from the HostedCluster
    // (`reconcileHostedControlPlane` copies `spec.etcd` whole), and an HCP created first, without
    // the HostedCluster's exact `restoreSnapshotURL`, can never take it (CEL on `oldSelf`).
    c.step("capi-cluster", |c| {
        apply_all(c, &dst, &id, of(&[CAPI_CLUSTER], &hcp_ns))
    })?;
    let reuse = index.nodes == "reuse";
    c.step("machines", |c| {
        if !reuse {
            return Ok(Done::Skipped(
                "control-plane-only: machines are not carried over".into(),
            ));
        }
        let mut all = Vec::new();
        for &k in MACHINE_KINDS {
            all.extend(of(&[k], &hcp_ns).into_iter().map(|mut m| {
                // Until its node is Ready on the destination, a reused node is NotReady for
                // longer than a MachineHealthCheck waits (8 minutes for autoRepair pools); CAPI
                // leaves a Machine with this annotation alone (`machinehealthcheck_controller.go`
                // `isAllowedRemediation`). `remediation` removes it once the nodes are Ready.
                if k == MACHINE && manifest::annotation(&m, SKIP_REMEDIATION_ANNOTATION).is_none() {
                    manifest::annotate(&mut m, SKIP_REMEDIATION_ANNOTATION, "");
                    manifest::annotate(&mut m, SKIP_REMEDIATION_SET_ANNOTATION, &id);
                }
                m
            }));
        }
        apply_all(c, &dst, &id, all)
    })?;
    c.step("extra-objects", |c| {
        let extra: Vec<Value> = manifests
            .iter()
            .filter(|(f, _)| !KNOWN.iter().chain(MACHINE_KINDS).any(|k| is(f, *k)))
            .map(|(_, m)| m.clone())
            .collect();
        apply_all(c, &dst, &id, extra)
    })?;
    let hc_manifest = of(&[gk(HOSTED_CLUSTER)], &hc_ns)
        .into_iter()
        .next()
        .ok_or_else(|| invalid(format!("backup {id} holds no HostedCluster manifest")))?;
    c.step("hosted-cluster", |c| {
        hosted_cluster(c, &dst, &bucket, &index, hc_manifest)
    })?;
    c.step("node-pools", |c| {
        if !reuse {
            return Ok(Done::Skipped(
                "control-plane-only: NodePools are in the backup but not applied; create node pools on the destination"
                    .into(),
            ));
        }
        let pools = of(&[gk(NODE_POOL)], &hc_ns)
            .into_iter()
            .map(|mut np| {
                if let Some(spec) = np.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("pausedUntil");
                }
                np
            })
            .collect();
        apply_all(c, &dst, &id, pools)
    })?;
    c.step("dns", |c| cut_over_dns(c, &src, &dst, &zone, &domain, &index))?;
    c.step("wait-restored", |c| wait_restored(c, &dst))?;
    c.step("etcd-members", |c| etcd_members(c, &dst).map(|(_, done)| done))?;
    c.step("api-write", |c| api_write(c, &dst, &hosted, &index))?;
    c.step("wait-nodes", |c| wait_nodes(c, &dst, &hosted))?;
    c.step("remediation", |c| {
        if !reuse {
            return Ok(Done::Skipped("control-plane-only: no Machine was carried over".into()));
        }
        // A plan cannot list Machines its dry runs created: it holds a patch for each Machine
        // the `machines` step gives the annotation.
        let planned: Vec<String> = of(&[MACHINE], &hcp_ns)
            .iter()
            .filter(|m| manifest::annotation(m, SKIP_REMEDIATION_ANNOTATION).is_none())
            .map(|m| name(m).to_string())
            .collect();
        restore_remediation(c, &dst, &planned)
    })?;
    c.step("old-instances", |c| {
        if reuse {
            return Ok(Done::Skipped("the nodes were reused".into()));
        }
        old_instances(c, &hosted, &manifests)
    })?;
    c.step("complete", |c| {
        if c.plan {
            // The plan holds the patch; its dry run finds no HostedCluster (a dry run too).
            let note =
                json!({"metadata": {"annotations": {RESTORE_COMPLETE_ANNOTATION: rfc3339(ferry_sdk::context::now())}}});
            planned_in_new_namespace(c, dst.merge_patch(&c.hc.hc_ref(), &note).map(|_| ()))?;
            return Ok(Done::Planned(
                "would note the restore complete on the HostedCluster".into(),
            ));
        }
        let hc = dst.must_get(&c.hc.hc_ref())?;
        if let Some(t) = manifest::annotation(&hc, RESTORE_COMPLETE_ANNOTATION) {
            return Ok(Done::Already(format!("restore of backup {id} completed at {t}")));
        }
        let now = rfc3339(ferry_sdk::context::now());
        dst.merge_patch(
            &c.hc.hc_ref(),
            &json!({"metadata": {"annotations": {RESTORE_COMPLETE_ANNOTATION: now}}}),
        )?;
        Ok(Done::Did(format!("restore of backup {id} complete")))
    })?;
    Ok(c.summary())
}

fn gk(k: Kind) -> GroupKind {
    GroupKind::of(k)
}

/// Whether a backup file holds an object of `k` (any version).
fn is(f: &FileEntry, k: GroupKind) -> bool {
    k.matches(&f.api_version, &f.kind)
}

/// The kinds the documented procedure carries besides [`MACHINE_KINDS`] (everything else
/// came from a hook). The HostedControlPlane is carried but never applied.
const KNOWN: &[GroupKind] = &[
    GroupKind {
        group: "",
        kind: "Secret",
    },
    GroupKind {
        group: "",
        kind: "ConfigMap",
    },
    GroupKind {
        group: "hypershift.openshift.io",
        kind: "HostedCluster",
    },
    GroupKind {
        group: "hypershift.openshift.io",
        kind: "NodePool",
    },
    GroupKind {
        group: "hypershift.openshift.io",
        kind: "HostedControlPlane",
    },
    CAPI_CLUSTER,
];

/// Reads every manifest (checking its SHA-256) and checks the snapshot in S3
/// host-side, before anything on the destination changes.
fn verify(c: &mut Ctx, bucket: &Bucket, index: &Index) -> Result<Vec<(FileEntry, Value)>> {
    let mut out = Vec::new();
    for f in &index.files {
        let data = layout::read_file(c, bucket, &index.backup_id, f)?;
        let m = layout::from_yaml(&f.path, &data)?;
        if name(&m) != f.name || str_at(&m, "/kind") != Some(f.kind.as_str()) {
            return Err(invalid(format!(
                "backup file {} holds {} {}, the index says {} {}",
                f.path,
                str_at(&m, "/kind").unwrap_or("?"),
                name(&m),
                f.kind,
                f.name
            )));
        }
        out.push((f.clone(), m));
    }
    let s = &index.snapshot;
    let head = ferry_sdk::k8s::retry(|| bucket.head(&s.key)).map_err(|e| {
        ferry_sdk::context(
            e,
            format!(
                "the etcd snapshot s3://{}/{} of backup {}",
                bucket.name(),
                s.key,
                index.backup_id
            ),
        )
    })?;
    if head.size != s.size {
        return Err(invalid(format!(
            "the etcd snapshot s3://{}/{} has {} bytes, the index says {}; nothing was changed on the destination",
            bucket.name(),
            s.key,
            head.size,
            s.size
        )));
    }
    ferry_sdk::k8s::retry(|| bucket.verify_sha256(&s.key, &s.sha256)).map_err(|e| {
        invalid(format!(
            "the etcd snapshot s3://{}/{} does not match the SHA-256 in the index ({}); nothing was changed on \
             the destination. Take a new backup.",
            bucket.name(),
            s.key,
            ferry_sdk::message(&e)
        ))
    })?;
    Ok(out)
}

/// Whether `obj` was restored by ferry from backup `id`.
fn ours(obj: &Value, id: &str) -> bool {
    manifest::annotation(obj, BACKUP_ID_ANNOTATION) == Some(id)
}

/// Why a HighlyAvailable control plane must not be restored onto the destination, unless the
/// site says its HyperShift restores etcd with each member's identity
/// (`etcd_init_member_identity = true`). At the pinned commit `etcd-init.sh` runs
/// `etcdutl snapshot restore` with no `--name`, `--initial-cluster` or
/// `--initial-advertise-peer-urls`, so each of the three members starts as a cluster of its
/// own (OCPBUGS-99534; the fix is openshift/hypershift#9069). Nothing on the destination shows
/// which script its control-plane operator will run before a control plane exists, so the
/// site's word decides, and `etcd-members` checks it after the restore.
pub fn etcd_init_refusal(c: &Ctx, availability: &str) -> Option<String> {
    if availability != "HighlyAvailable" {
        return None;
    }
    if c.p.flag("etcd_init_member_identity") {
        return None;
    }
    Some(format!(
        "HostedCluster {}/{} is HighlyAvailable: HyperShift's etcd-init (etcd-init.sh at the commit ferry              models, and every release without openshift/hypershift#9069) restores each of its three etcd members              as a cluster of its own (OCPBUGS-99534), and every condition still says restored. Restore it onto a              destination whose HyperShift carries the fix, and say so in the site with              etcd_init_member_identity = true; ferry checks the members after the restore either way",
        c.hc.ns, c.hc.name
    ))
}

fn preflight(c: &mut Ctx, dst: &Cluster, id: &str, manifests: &[(FileEntry, Value)]) -> Result<Done> {
    // Cluster API objects were dumped in the version the source served; the destination
    // must serve that version too (it converts between the versions it serves).
    let mut unserved = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (f, _) in manifests {
        let group = group_of(&f.api_version);
        if (group != CAPI_GROUP && group != CAPA_GROUP) || !seen.insert((f.api_version.clone(), f.kind.clone())) {
            continue;
        }
        match dst.list(&f.api_version, &f.kind, Some(&c.hc.hcp_ns), None) {
            Ok(_) => {}
            Err(Error::NotFound(_)) => {
                let serves = dst.api_version(group, &f.kind).unwrap_or_else(|_| "nothing".into());
                unserved.push(format!("{} {} (it serves {serves})", f.api_version, f.kind));
            }
            Err(e) => return Err(e),
        }
    }
    if !unserved.is_empty() {
        return Err(invalid(format!(
            "the destination `{}` does not serve the versions backup {id} holds: {}; nothing was changed. Install \
             the same HyperShift (and Cluster API) release as on the source, or take the backup again once both \
             serve the same versions",
            c.alias("destination"),
            unserved.join(", ")
        )));
    }
    if let Some(hc) = dst.get(&c.hc.hc_ref())? {
        if ours(&hc, id) {
            return Ok(Done::Checked(format!(
                "resuming: the HostedCluster was restored from backup {id}"
            )));
        }
        return Err(conflict(format!(
            "HostedCluster {}/{} already exists on the destination `{}` and was not restored from backup {id} (its \
             annotation {BACKUP_ID_ANNOTATION} is {:?}); nothing was changed. Remove it first if it is a failed \
             earlier attempt, or restore onto another cluster",
            c.hc.ns,
            c.hc.name,
            c.alias("destination"),
            manifest::annotation(&hc, BACKUP_ID_ANNOTATION)
        )));
    }
    if let Some(ns) = dst.get(&r(NAMESPACE, None, &c.hc.hcp_ns))?
        && !ours(&ns, id)
    {
        return Err(conflict(format!(
            "the hosted control plane namespace {} already exists on the destination `{}` and was not created by \
                 this restore; restoring into it could mix two control planes. Delete it (after checking what it \
                 holds) and re-run",
            c.hc.hcp_ns,
            c.alias("destination")
        )));
    }
    Ok(Done::Checked(format!(
        "the destination has no HostedCluster {}/{} and no foreign namespace {}",
        c.hc.ns, c.hc.name, c.hc.hcp_ns
    )))
}

fn namespaces(c: &mut Ctx, dst: &Cluster, id: &str) -> Result<Done> {
    let mut created = Vec::new();
    // The HostedCluster namespace may hold other hosted clusters: create it if
    // missing, never replace or delete it.
    if dst.get(&r(NAMESPACE, None, &c.hc.ns))?.is_none() {
        dst.create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": c.hc.ns}}))?;
        created.push(c.hc.ns.clone());
    }
    if dst.get(&r(NAMESPACE, None, &c.hc.hcp_ns))?.is_none() {
        dst.create(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": c.hc.hcp_ns, "annotations": {BACKUP_ID_ANNOTATION: id}}}))?;
        created.push(c.hc.hcp_ns.clone());
    }
    Ok(Done::of_changes(
        &created,
        c.plan,
        "both namespaces exist",
        "create",
        "created",
    ))
}

/// Applies manifests that are not there yet (objects restored from this
/// backup are left alone, so a re-run changes nothing).
fn apply_all(c: &mut Ctx, dst: &Cluster, id: &str, manifests: Vec<Value>) -> Result<Done> {
    if manifests.is_empty() {
        return Ok(Done::Skipped("nothing of this kind in the backup".into()));
    }
    let mut applied = Vec::new();
    let total = manifests.len();
    for mut m in manifests {
        let obj_ref = ferry_sdk::k8s::ref_of(&m)?;
        if let Some(existing) = dst.get(&obj_ref)? {
            // Ours, or made on the destination because of this restore (the HCP
            // namespace is ours): leave it to its controllers.
            if ours(&existing, id) || obj_ref.namespace.as_deref() == Some(c.hc.hcp_ns.as_str()) {
                continue;
            }
            // The HostedCluster namespace is shared: never overwrite another's object.
            if existing.get("data") == m.get("data") && existing.get("spec") == m.get("spec") {
                continue;
            }
            return Err(conflict(format!(
                "{} already exists on the destination with other content and was not restored by ferry; nothing                  of it was changed. Rename or remove it, then re-run restore",
                ferry_sdk::k8s::describe(&obj_ref)
            )));
        }
        manifest::annotate(&mut m, BACKUP_ID_ANNOTATION, id);
        planned_in_new_namespace(c, dst.apply(&m)).ctx(ferry_sdk::k8s::describe(&obj_ref))?;
        applied.push(format!("{} {}", obj_ref.kind, obj_ref.name));
    }
    Ok(Done::of_changes(
        &applied,
        c.plan,
        format!("all {total} restored from this backup already"),
        "apply",
        "applied",
    ))
}

/// A plan's dry-run write into a namespace this plan creates: the server cannot check it (the
/// namespace's creation was a dry run too), but the host has already written it into the plan.
fn planned_in_new_namespace<T: Default>(c: &Ctx, result: Result<T>) -> Result<T> {
    match result {
        Err(Error::NotFound(_)) if c.plan => Ok(T::default()),
        other => other,
    }
}

/// `spec.etcd.managed.storage.restoreSnapshotURL` may hold one URL, of at
/// most 1024 characters, with an https or s3 scheme.
const MAX_URL: usize = 1024;

fn hosted_cluster(c: &mut Ctx, dst: &Cluster, bucket: &Bucket, index: &Index, mut hc: Value) -> Result<Done> {
    if let Some(existing) = dst.get(&c.hc.hc_ref())?
        && ours(&existing, &index.backup_id)
    {
        return Ok(Done::Already("the HostedCluster was created from this backup".into()));
    }
    let secs = c.p.u64_or("presign_seconds", 3600)?.clamp(1, 604_800) as u32;
    // Presigned right before use, in the bucket's own region (host-side).
    let url = ferry_sdk::k8s::retry(|| bucket.presign_get(&index.snapshot.key, secs)).ctx("presigning the snapshot")?;
    if url.len() > MAX_URL {
        return Err(invalid(format!(
            "the presigned snapshot URL is {} characters long; HyperShift accepts at most {MAX_URL} (temporary STS \
             credentials make long URLs: use long-term credentials for the presign)",
            url.len()
        )));
    }
    let expires = ferry_sdk::context::now() + u64::from(secs) * 1000;
    if let Some(spec) = hc.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("pausedUntil");
    }
    let storage = hc
        .pointer_mut("/spec/etcd/managed/storage")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            invalid("the backed-up HostedCluster has no spec.etcd.managed.storage; its etcd is not managed")
        })?;
    storage.insert("restoreSnapshotURL".into(), json!([url]));
    manifest::annotate(&mut hc, BACKUP_ID_ANNOTATION, &index.backup_id);
    manifest::annotate(&mut hc, URL_EXPIRES_ANNOTATION, &expires.to_string());
    manifest::annotate(&mut hc, RESTORED_FROM_BACKUP_ANNOTATION, "true");
    let created = planned_in_new_namespace(c, dst.create(&hc))?;
    if c.plan {
        return Ok(Done::Planned(format!(
            "would presign s3://{}/{} and create the HostedCluster with it as its one restoreSnapshotURL, unpaused",
            bucket.name(),
            index.snapshot.key
        )));
    }
    match created {
        Some(_) => Ok(Done::Did(format!(
            "created the HostedCluster, unpaused, marked restored-from-backup, restoring from the snapshot (URL \
             valid {secs}s, until {}); the operator creates the HostedControlPlane from it",
            rfc3339(expires)
        ))),
        // Already there: our own create, whose answer was lost and whose retry found it, or
        // another writer's. The backup id it carries tells which.
        None => match dst.get(&c.hc.hc_ref())? {
            Some(existing) if ours(&existing, &index.backup_id) => Ok(Done::Did(
                "created the HostedCluster (the API server's answer was lost; the one found carries this backup's id)"
                    .into(),
            )),
            _ => Err(conflict(
                "a HostedCluster of that name appeared on the destination while restoring, not created from this \
                 backup; find out who created it before re-running restore",
            )),
        },
    }
}

/// A restore that failed as upstream reports it: `EtcdSnapshotRestored=False` on the
/// HostedControlPlane, the only place it is set (`etcdRestoredCondition`), in words for the
/// operator, with what to do. Only then is the advice to delete the control plane given.
fn restore_failure(c: &Ctx, hc: &Value, hcp: Option<&Value>) -> Option<String> {
    let cond = hcp.and_then(|h| condition(h, "EtcdSnapshotRestored"))?;
    if cond.get("status").and_then(Value::as_str) != Some("False") {
        return None;
    }
    let why = format!(
        "the HostedControlPlane reports EtcdSnapshotRestored=False ({})",
        cond.get("reason").and_then(Value::as_str).unwrap_or_default()
    );
    let expired = manifest::annotation(hc, URL_EXPIRES_ANNOTATION)
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| ferry_sdk::context::now() > *t)
        .map(|t| format!(" The presigned URL expired at {}.", rfc3339(t)))
        .unwrap_or_default();
    Some(format!(
        "the destination could not restore etcd from the snapshot: {why}.{expired} {}",
        fresh_url_advice(c)
    ))
}

/// `etcd-init` attempts that failed and that the kubelet retries: an init container that is
/// not Ready with a non-zero exit in `lastState`. Upstream reads them the same way and only
/// then (`etcdRestoredCondition`); a container that is Ready restored, whatever an earlier
/// attempt left in `lastState`. A retry is not a failed restore: shown while waiting, never a
/// reason to delete anything.
fn init_retries(c: &Ctx, dst: &Cluster) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for pod in dst.list(POD.0, POD.1, Some(&c.hc.hcp_ns), Some("app=etcd"))? {
        let failed = pod
            .pointer("/status/initContainerStatuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|s| s.get("name").and_then(Value::as_str) == Some("etcd-init"))
            .filter(|s| s.get("ready").and_then(Value::as_bool) != Some(true))
            .find_map(|s| {
                let t = s.pointer("/lastState/terminated")?;
                (t.get("exitCode").and_then(Value::as_i64).unwrap_or(0) != 0).then(|| {
                    let reason = t.get("reason").and_then(Value::as_str).unwrap_or("Error");
                    let message = t.get("message").and_then(Value::as_str).unwrap_or_default();
                    let restarts = s.get("restartCount").and_then(Value::as_u64).unwrap_or(0);
                    format!(
                        "{reason}{}{}, {restarts} restarts",
                        if message.is_empty() { "" } else { ": " },
                        message.lines().last().unwrap_or_default()
                    )
                })
            });
        if let Some(f) = failed {
            out.push(format!("etcd-init of {} failed and is retried ({f})", name(&pod)));
        }
    }
    Ok(out)
}

/// What to do when a restore URL failed: it cannot be changed on the HostedCluster.
fn fresh_url_advice(c: &Ctx) -> String {
    format!(
        "The URL on a HostedCluster is immutable: delete the HostedCluster {}/{}, the HostedControlPlane and the \
         data-etcd-* PVCs in {} on the destination, then re-run `ferry restore`; it presigns a fresh URL (raise \
         presign_seconds if etcd starts slowly).",
        c.hc.ns, c.hc.name, c.hc.hcp_ns
    )
}

/// Whether the destination's HostedControlPlane reports its etcd restored from the snapshot.
pub fn restored_on(c: &Ctx, dst: &Cluster) -> Result<bool> {
    Ok(dst
        .get(&r(HOSTED_CONTROL_PLANE, Some(&c.hc.hcp_ns), &c.hc.name))?
        .is_some_and(|h| condition_true(&h, "EtcdSnapshotRestored")))
}

/// `Available` on the HostedCluster (the HO computes it from the HostedControlPlane) and
/// `EtcdSnapshotRestored` on the HostedControlPlane, the only place upstream sets it.
fn restored(hc: &Value, hcp: Option<&Value>) -> bool {
    condition_true(hc, "Available") && hcp.is_some_and(|h| condition_true(h, "EtcdSnapshotRestored"))
}

fn status_of(o: Option<&Value>, t: &str) -> String {
    o.and_then(|o| condition(o, t))
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
        .to_string()
}

fn wait_restored(c: &mut Ctx, dst: &Cluster) -> Result<Done> {
    let hc_ref = c.hc.hc_ref();
    let hcp_ref = r(HOSTED_CONTROL_PLANE, Some(&c.hc.hcp_ns), &c.hc.name);
    if c.plan {
        return Ok(Done::Planned(
            "would wait for the HostedCluster to be Available and its HostedControlPlane to report \
             EtcdSnapshotRestored"
                .into(),
        ));
    }
    if let Some(hc) = dst.get(&hc_ref)?
        && restored(&hc, dst.get(&hcp_ref)?.as_ref())
    {
        return Ok(Done::Already(
            "the HostedCluster is Available and its etcd restored".into(),
        ));
    }
    let timeout = c.p.u64_or("restore_timeout_seconds", 1200)?;
    let advice = format!(
        "Nothing on the source was changed by restore beyond its released DNS. Check the destination's HyperShift \
         operator, the HostedControlPlane and its etcd pods, then re-run `ferry restore`. If etcd-init keeps \
         failing (above), its URL will not start working: {}",
        fresh_url_advice(c)
    );
    Wait {
        step: "restore/wait-restored",
        what: "the HostedCluster to be Available and its HostedControlPlane to report EtcdSnapshotRestored",
        timeout_seconds: timeout,
        interval_millis: 500,
        on_timeout: &advice,
    }
    .until(|| {
        let hc = dst.must_get(&hc_ref)?;
        let hcp = dst.get(&hcp_ref)?;
        if let Some(why) = restore_failure(c, &hc, hcp.as_ref()) {
            return Err(Error::Invalid(why));
        }
        if let Some(t) = manifest::annotation(&hc, URL_EXPIRES_ANNOTATION).and_then(|t| t.parse::<u64>().ok())
            && !hcp.as_ref().is_some_and(|h| condition_true(h, "EtcdSnapshotRestored"))
            && ferry_sdk::context::now() > t
        {
            return Err(Error::Invalid(format!(
                "the presigned snapshot URL expired at {} before the destination restored etcd. {}",
                rfc3339(t),
                fresh_url_advice(c)
            )));
        }
        if restored(&hc, hcp.as_ref()) {
            return Ok(Check::Done(()));
        }
        let retries = init_retries(c, dst)?;
        let retries = if retries.is_empty() {
            String::new()
        } else {
            format!("; {}", retries.join("; "))
        };
        Ok(if hcp.is_none() {
            Check::Pending(format!(
                "no HostedControlPlane yet (HostedCluster ReconciliationSucceeded={})",
                status_of(Some(&hc), "ReconciliationSucceeded")
            ))
        } else {
            Check::Pending(format!(
                "HostedCluster Available={}, HostedControlPlane EtcdSnapshotRestored={}{retries}",
                status_of(Some(&hc), "Available"),
                status_of(hcp.as_ref(), "EtcdSnapshotRestored")
            ))
        })
    })?;
    Ok(Done::Did(
        "the HostedCluster is Available and its etcd was restored from the snapshot".into(),
    ))
}

/// Nodes Ready in the hosted cluster, and how many are expected (the sum of the destination's
/// NodePool replicas of this hosted cluster). A Node restored from etcd says Ready with the
/// heartbeat its kubelet posted to the source, until the destination's node lifecycle
/// controller marks it Unknown after its grace period: only a heartbeat posted since the
/// destination served (`ferry.dev/served-write-at` on its HostedCluster) counts.
pub fn node_counts(c: &Ctx, dst: &Cluster, hosted: &Cluster) -> Result<(u64, u64)> {
    let n = nodes_of(c, dst, hosted)?;
    Ok((n.ready, n.expected))
}

/// The hosted cluster's nodes as the destination sees them.
pub struct Nodes {
    /// Nodes Ready with a heartbeat posted to the destination.
    pub ready: u64,
    /// The replicas the destination's NodePools of this hosted cluster want.
    pub expected: u64,
    /// Each Node not counted, and why, for the message a person reads.
    pub not_counted: Vec<String>,
}

impl Nodes {
    /// `"1 of 2 nodes are Ready in the hosted cluster (ip-a: Ready=Unknown, …)"`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} of {} nodes are Ready in the hosted cluster",
            self.ready, self.expected
        );
        if !self.not_counted.is_empty() {
            s.push_str(&format!(" ({})", self.not_counted.join("; ")));
        }
        s
    }
}

/// Counts the Nodes Ready with a heartbeat at or after the destination first served a write
/// (a heartbeat from before was posted to the source), and says why each other Node is not.
pub fn nodes_of(c: &Ctx, dst: &Cluster, hosted: &Cluster) -> Result<Nodes> {
    let pools = dst.list(NODE_POOL.0, NODE_POOL.1, Some(&c.hc.ns), None)?;
    let expected = replicas_sum(own_node_pools(&pools, &c.hc.name));
    let since = dst
        .get(&c.hc.hc_ref())?
        .and_then(|hc| manifest::annotation(&hc, SERVED_WRITE_ANNOTATION).and_then(|t| t.parse::<u64>().ok()))
        // Heartbeats have whole seconds.
        .map(|t| t - t % 1000);
    let mut ready = 0;
    let mut not_counted = Vec::new();
    for node in hosted.list(NODE.0, NODE.1, None, None)? {
        match why_not_counted(&node, since) {
            None => ready += 1,
            Some(why) => not_counted.push(format!("{}: {why}", name(&node))),
        }
    }
    Ok(Nodes {
        ready,
        expected,
        not_counted,
    })
}

/// Why `node` does not count as Ready with a heartbeat at or after `since`, if it does not.
fn why_not_counted(node: &Value, since: Option<u64>) -> Option<String> {
    let Some(ready) = condition(node, "Ready") else {
        return Some("no Ready condition yet".into());
    };
    let status = ready.get("status").and_then(Value::as_str).unwrap_or("none");
    let heartbeat_text = ready
        .get("lastHeartbeatTime")
        .and_then(Value::as_str)
        .unwrap_or("never");
    if status != "True" {
        let reason = ready.get("reason").and_then(Value::as_str).unwrap_or_default();
        return Some(format!("Ready={status} {reason}, last heartbeat {heartbeat_text}"));
    }
    let heartbeat = ferry_sdk::time::parse_rfc3339(heartbeat_text);
    match since {
        Some(s) if heartbeat.is_none_or(|h| h < s) => Some(format!(
            "last heartbeat {heartbeat_text}, before the destination served its first write ({})",
            ferry_sdk::time::rfc3339(s)
        )),
        _ => None,
    }
}

/// Waits until the hosted cluster has at least as many Ready nodes as its NodePools want.
pub fn wait_nodes(c: &mut Ctx, dst: &Cluster, hosted: &Cluster) -> Result<Done> {
    if c.plan {
        return Ok(Done::Planned(
            "would wait for the hosted cluster's nodes to be Ready".into(),
        ));
    }
    let (ready, expected) = node_counts(c, dst, hosted)?;
    if expected == 0 {
        return Ok(Done::Skipped("no NodePool replicas on the destination".into()));
    }
    // A rollout surges nodes beyond the NodePools' replicas: at least the expected count.
    if ready >= expected {
        return Ok(Done::Already(format!("{ready}/{expected} nodes Ready")));
    }
    let timeout = c.p.u64_or("nodes_timeout_seconds", 1200)?;
    Wait {
        step: &format!(
            "{}/wait-nodes",
            if c.out.contains_key("finish") {
                "finish"
            } else {
                "restore"
            }
        ),
        what: "the hosted cluster's nodes to be Ready (a heartbeat posted to the destination)",
        timeout_seconds: timeout,
        interval_millis: 1000,
        on_timeout: "The control plane runs on the destination; the source is untouched. Check the NodePools, \
                     Machines and AWSMachines on the destination, then re-run.",
    }
    .until(|| {
        let n = nodes_of(c, dst, hosted)?;
        Ok(if n.ready >= n.expected {
            Check::Done(())
        } else {
            Check::Pending(n.describe())
        })
    })?;
    Ok(Done::Did(format!("{expected}/{expected} nodes Ready")))
}

/// Moves the control plane's DNS to the destination while its etcd restores: once the
/// destination's control-plane operator publishes every hostname the backup recorded (its
/// Routes admitted, its Services addressed), the source releases them (Routes deleted,
/// hostname annotations removed: its control-plane operator is paused and puts neither back)
/// and both external-dns are restarted, the way upstream documents the cut-over, so that
/// neither an interval nor the destination's TXT cache (`--txt-cache-interval=1h`) delays it.
/// Done here, not in backup, so that names point nowhere for seconds, not minutes: a resolver
/// keeps an NXDOMAIN for the zone's negative TTL.
fn cut_over_dns(
    c: &mut Ctx,
    src: &Cluster,
    dst: &Cluster,
    zone: &ferry_sdk::dns::Zone,
    domain: &str,
    index: &Index,
) -> Result<Done> {
    let hosts: Vec<String> = {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut h: Vec<String> = index
            .route_hosts
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| *h == d || h.ends_with(&format!(".{d}")))
            .collect();
        h.sort();
        h.dedup();
        h
    };
    if hosts.is_empty() {
        return Ok(Done::Skipped(format!(
            "the control plane published no public hostname under {domain} when it was backed up"
        )));
    }
    let to = publish::Publisher {
        cluster: dst,
        ed: publish::external_dns(dst)?.ok_or_else(|| {
            invalid(format!(
                "the destination `{}` runs no external-dns with --txt-owner-id (Deployment hypershift/external-dns); \
                 nothing can publish the hosted cluster's hostnames",
                c.alias("destination")
            ))
        })?,
        alias: c.alias("destination"),
    };
    let from = publish::external_dns(src)?.map(|ed| publish::Publisher {
        cluster: src,
        ed,
        alias: c.alias("source"),
    });
    let suffix = c.p.or("txt_suffix", "-external-dns").to_string();
    let records = ferry_sdk::k8s::retry(|| zone.list_record_sets(Some(domain)))?;
    let targets = publish::ready_targets(dst, &c.hc.hcp_ns, domain)?;
    if publish::not_moved(&records, &hosts, &suffix, &to.ed.owner, &targets).is_empty() {
        // A run killed mid-restart left an external-dns noted (and maybe at zero): finish it.
        let publishers: Vec<&publish::Publisher> = from.iter().chain([&to]).collect();
        publish::finish_restarts(c, &publishers, "restore/dns")?;
        return Ok(Done::Already(format!(
            "Route53 publishes {} from the destination (owner {})",
            hosts.join(", "),
            to.ed.owner
        )));
    }
    let timeout = c.p.u64_or("publish_timeout_seconds", 600)?;
    let missing = |ready: &[String]| hosts.iter().filter(|h| !ready.contains(h)).cloned().collect::<Vec<_>>();
    // A plan holds the release and the restarts the apply makes, without the waits.
    let plan = c.plan;
    (!plan)
        .then(|| {
            Wait {
                step: "restore/dns",
                what: "the destination's control plane to publish its hostnames",
                timeout_seconds: timeout,
                interval_millis: 250,
                on_timeout: "The source still publishes them; nothing was released. Check the destination's \
                     control-plane operator and its Routes (status.ingress) in the control-plane namespace, then \
                     re-run `ferry restore`.",
            }
            .until(|| {
                let left = missing(&publish::ready_hosts(dst, &c.hc.hcp_ns, domain)?);
                Ok(if left.is_empty() {
                    Check::Done(())
                } else {
                    Check::Pending(format!("not yet published: {}", left.join(", ")))
                })
            })
        })
        .transpose()?;
    // Releasing the source's names ends its claim on the cluster's DNS: hooks may veto.
    c.hook(Point::Verify, "dns", json!({"hosts": hosts}))?;
    let on_timeout = format!(
        "The source's names are released and its control plane stays paused; teardown must not run yet. Check \
         external-dns on `{}` (hypershift/external-dns, owner {}), then re-run `ferry restore`; `ferry abort` \
         returns the source to service instead.",
        to.alias, to.ed.owner
    );
    let hcp_ns = c.hc.hcp_ns.clone();
    let release = || publish::release(src, &hcp_ns);
    let (_, released) = publish::cut_over(
        c,
        "restore/dns",
        zone,
        domain,
        &hosts,
        from.as_ref(),
        &to,
        &release,
        &on_timeout,
    )?;
    if plan {
        return Ok(Done::Planned(format!(
            "would wait for the destination to publish {}, stop the source's external-dns, release {} on the \
             source, hand the records over to the destination's external-dns and restart it, then start the \
             source's again",
            hosts.join(", "),
            if released.is_empty() {
                "nothing".to_string()
            } else {
                released.join(", ")
            }
        )));
    }
    let released = if released.is_empty() {
        "nothing left to release on the source".to_string()
    } else {
        format!("released on the source: {}", released.join(", "))
    };
    Ok(Done::Did(format!(
        "{released}; Route53 publishes {} from the destination (owner {})",
        hosts.join(", "),
        to.ed.owner
    )))
}

/// The etcd pods of the control plane on `cluster`, by name.
fn etcd_pods(c: &Ctx, cluster: &Cluster) -> Result<Vec<String>> {
    let mut pods: Vec<String> = cluster
        .list(POD.0, POD.1, Some(&c.hc.hcp_ns), Some("app=etcd"))?
        .iter()
        .map(|p| name(p).to_string())
        .collect();
    pods.sort();
    Ok(pods)
}

/// Asks every etcd member of the destination's control plane which cluster it is in and
/// which members that cluster has: a restore is only good when they are one cluster with
/// every member. At the pinned HyperShift commit `etcd-init.sh` restores each member of a
/// HighlyAvailable control plane as a cluster of its own (OCPBUGS-99534), and every condition
/// upstream sets still says True. Returns what each member said.
pub fn etcd_members(c: &mut Ctx, dst: &Cluster) -> Result<(Vec<etcd::Membership>, Done)> {
    if c.plan {
        return Ok((
            Vec::new(),
            Done::Planned("would ask every etcd member which cluster it is in".into()),
        ));
    }
    let pods = etcd_pods(c, dst)?;
    if pods.is_empty() {
        return Err(Error::Unavailable(format!(
            "no etcd pod runs in {} on the destination `{}`",
            c.hc.hcp_ns,
            c.alias("destination")
        )));
    }
    let tls = dst.get(&r(SECRET, Some(&c.hc.hcp_ns), "etcd-client-tls"))?.is_some();
    let mut seen = Vec::new();
    for pod in &pods {
        let member = etcd::PodMember {
            namespace: c.hc.hcp_ns.clone(),
            pod: pod.clone(),
            port: 2379,
            client_secret: tls.then(|| "etcd-client-tls".to_string()),
            ca_secret: tls.then(|| "etcd-ca".to_string()),
        };
        seen.push(
            ferry_sdk::k8s::retry(|| etcd::member_status(dst.handle(), &member)).ctx(format!("etcd member {pod}"))?,
        );
    }
    let clusters: std::collections::BTreeSet<&str> = seen.iter().map(|m| m.cluster_id.as_str()).collect();
    let complete = seen.iter().all(|m| {
        let mut listed = m.members.clone();
        listed.sort();
        listed == pods
    });
    c.out.insert(
        "etcd_members".into(),
        json!(seen
            .iter()
            .map(|m| json!({"pod": m.pod, "member_id": m.member_id, "cluster_id": m.cluster_id, "members": m.members}))
            .collect::<Vec<_>>()),
    );
    if clusters.len() == 1 && complete {
        let detail = format!(
            "{} member{} in one etcd cluster ({}): {}",
            pods.len(),
            if pods.len() == 1 { "" } else { "s" },
            seen[0].cluster_id,
            pods.join(", ")
        );
        return Ok((seen, Done::Checked(detail)));
    }
    let said: Vec<String> = seen
        .iter()
        .map(|m| {
            format!(
                "{} is in cluster {} listing [{}]",
                m.pod,
                m.cluster_id,
                m.members.join(", ")
            )
        })
        .collect();
    Err(invalid(format!(
        "the restored etcd of {}/{} is not one cluster: {}. Each member was restored as a cluster of its own: the \
         destination's HyperShift restores etcd with `etcdutl snapshot restore` and no member name or initial \
         cluster (etcd-init.sh; OCPBUGS-99534, fixed by openshift/hypershift#9069), so the hosted cluster's API \
         reads whichever member its connection reaches and writes can vanish. Nothing was torn down: the source is \
         intact and paused. Delete the destination's HostedCluster {}/{} and the data-etcd-* PVCs in {}, then \
         either run `ferry abort` to return the source to service, or restore onto a destination whose HyperShift \
         carries the fix (the site says so with etcd_init_member_identity = true)",
        c.hc.ns,
        c.hc.name,
        said.join("; "),
        c.hc.ns,
        c.hc.name,
        c.hc.hcp_ns
    )))
}

/// Writes to the hosted cluster's API until it accepts a write, and deletes what it wrote: the
/// moment the destination serves a write ends the API's downtime, which is recorded (on the
/// HostedCluster, so a re-run reports the first one) and reported with the moment backup
/// stopped the writers.
fn api_write(c: &mut Ctx, dst: &Cluster, hosted: &Cluster, index: &Index) -> Result<Done> {
    let hc_ref = c.hc.hc_ref();
    let probe_ref = r(CONFIG_MAP, Some(PROBE_CONFIGMAP.0), PROBE_CONFIGMAP.1);
    let probe = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": PROBE_CONFIGMAP.1, "namespace": PROBE_CONFIGMAP.0},
        "data": {"backup-id": index.backup_id}});
    if c.plan {
        // The plan holds the probe and the annotation as the apply writes them. Their dry runs
        // find nothing to answer: the hosted API is down, and the HostedCluster a dry run.
        let tolerated = |r: Result<()>| match r {
            Err(Error::Unavailable(_) | Error::NotFound(_)) | Ok(()) => Ok(()),
            Err(e) => Err(e),
        };
        tolerated(hosted.create(&probe).map(|_| ()))?;
        tolerated(
            dst.merge_patch(
                &hc_ref,
                &json!({"metadata": {"annotations": {SERVED_WRITE_ANNOTATION: ferry_sdk::context::now().to_string()}}}),
            )
            .map(|_| ()),
        )?;
        tolerated(hosted.delete(&probe_ref).map(|_| ()))?;
        return Ok(Done::Planned(format!(
            "would create and delete ConfigMap {}/{} in the hosted cluster to see it serve a write",
            PROBE_CONFIGMAP.0, PROBE_CONFIGMAP.1
        )));
    }
    let recorded = dst
        .get(&hc_ref)?
        .and_then(|hc| manifest::annotation(&hc, SERVED_WRITE_ANNOTATION).and_then(|t| t.parse::<u64>().ok()));
    let timeout = c.p.u64_or("api_timeout_seconds", 600)?;
    let served = match recorded {
        Some(t) => t,
        None => {
            Wait {
                step: "restore/api-write",
                what: "the hosted cluster's API to accept a write",
                timeout_seconds: timeout,
                interval_millis: 250,
                on_timeout: "The control plane runs on the destination and Route53 points at it, but its API \
                             takes no write. Check the kube-apiserver pods in the control-plane namespace and the \
                             hosted cluster's DNS name, then re-run `ferry restore`.",
            }
            .until(|| match hosted.create(&probe) {
                Ok(Some(_)) => Ok(Check::Done(())),
                // Left by an earlier attempt: delete it and write again.
                Ok(None) => {
                    hosted.delete(&probe_ref)?;
                    Ok(Check::Pending("an earlier probe was still there".into()))
                }
                Err(Error::Unavailable(m)) => Ok(Check::Pending(m)),
                Err(e) => Err(e),
            })?;
            let now = ferry_sdk::context::now();
            dst.merge_patch(
                &hc_ref,
                &json!({"metadata": {"annotations": {SERVED_WRITE_ANNOTATION: now.to_string()}}}),
            )?;
            now
        }
    };
    ferry_sdk::k8s::retry(|| hosted.delete(&probe_ref))?;
    log::info(
        "milestone: the destination serves writes; the hosted cluster's API is up",
        &[("milestone", "served-write"), ("at", &rfc3339_ms(served))],
    );
    c.out.insert("served_write_at".into(), json!(rfc3339_ms(served)));
    let downtime = index.writers_stopped_at.map(|stopped| served.saturating_sub(stopped));
    if let (Some(stopped), Some(ms)) = (index.writers_stopped_at, downtime) {
        c.out.insert("writers_stopped_at".into(), json!(rfc3339_ms(stopped)));
        c.out.insert("downtime_ms".into(), json!(ms));
    }
    c.api_up_at = Some(served);
    let how_long = downtime
        .map(|ms| format!(", {} after backup stopped the writers", human_ms(ms)))
        .unwrap_or_default();
    let detail = format!(
        "the hosted cluster's API served a write at {}{how_long}",
        rfc3339_ms(served)
    );
    Ok(if recorded.is_some() {
        Done::Already(detail)
    } else {
        Done::Did(detail)
    })
}

/// `1m 42.3s`, `8.1s`.
fn human_ms(ms: u64) -> String {
    let secs = ms as f64 / 1000.0;
    if secs >= 60.0 {
        format!("{}m {:.1}s", (secs / 60.0).floor(), secs % 60.0)
    } else {
        format!("{secs:.1}s")
    }
}

/// Gives remediation back to the MachineHealthChecks once the nodes are Ready: removes the
/// skip-remediation annotation from every Machine restore put it on (never from one that
/// carried it in the backup).
fn restore_remediation(c: &mut Ctx, dst: &Cluster, planned: &[String]) -> Result<Done> {
    let served = Served::new(dst);
    let names: Vec<String> = if c.plan {
        planned.to_vec()
    } else {
        served
            .list(MACHINE, &c.hc.hcp_ns)?
            .iter()
            .filter(|m| manifest::annotation(m, SKIP_REMEDIATION_SET_ANNOTATION).is_some())
            .map(|m| name(m).to_string())
            .collect()
    };
    let mut restored = Vec::new();
    for m in names {
        let patched = dst.merge_patch(
            &served.r(MACHINE, Some(&c.hc.hcp_ns), &m)?,
            &json!({"metadata": {"annotations": {SKIP_REMEDIATION_ANNOTATION: null, SKIP_REMEDIATION_SET_ANNOTATION: null}}}),
        );
        planned_in_new_namespace(c, patched.map(|_| ()))?;
        restored.push(m);
    }
    Ok(Done::of_changes(
        &restored,
        c.plan,
        "no Machine holds a skip-remediation annotation restore set",
        "give remediation back to Machines",
        "gave remediation back to Machines",
    ))
}

/// With `nodes = "control-plane-only"` the source's instances keep running and their kubelets
/// reach the same API name: they rejoin the restored control plane as nodes no NodePool
/// manages. Reports them by instance id (from the backed-up AWSMachines), with the commands
/// that remove them.
fn old_instances(c: &mut Ctx, hosted: &Cluster, manifests: &[(FileEntry, Value)]) -> Result<Done> {
    let mut instances: Vec<(String, String)> = manifests
        .iter()
        .filter(|(f, _)| is(f, AWS_MACHINE))
        .filter_map(|(_, m)| {
            let provider = str_at(m, "/spec/providerID").unwrap_or_default();
            let id = str_at(m, "/spec/instanceID").map(str::to_string).or_else(|| {
                provider
                    .rsplit('/')
                    .next()
                    .filter(|s| s.starts_with("i-"))
                    .map(str::to_string)
            })?;
            let zone = provider
                .strip_prefix("aws:///")
                .and_then(|p| p.split('/').next())
                .unwrap_or_default()
                .to_string();
            Some((id, zone))
        })
        .collect();
    instances.sort();
    instances.dedup();
    if instances.is_empty() {
        return Ok(Done::Skipped(
            "the backup holds no AWSMachine: no old instance to report".into(),
        ));
    }
    let nodes = if c.plan {
        Vec::new()
    } else {
        hosted.list(NODE.0, NODE.1, None, None).unwrap_or_default()
    };
    let node_of = |id: &str| {
        nodes
            .iter()
            .find(|n| str_at(n, "/spec/providerID").is_some_and(|p| p.ends_with(&format!("/{id}"))))
            .map(|n| name(n).to_string())
    };
    let region = |zone: &str| zone.trim_end_matches(|ch: char| ch.is_ascii_alphabetic()).to_string();
    let mut report = Vec::new();
    let mut commands = Vec::new();
    for (id, zone) in &instances {
        let node = node_of(id);
        report.push(json!({"instance_id": id, "availability_zone": zone, "node": node}));
        let region = region(zone);
        let region = if region.is_empty() {
            String::new()
        } else {
            format!(" --region {region}")
        };
        commands.push(format!("aws ec2 terminate-instances{region} --instance-ids {id}"));
        if let Some(n) = node {
            commands.push(format!("oc --kubeconfig <hosted cluster kubeconfig> delete node {n}"));
        }
    }
    c.out.insert("old_instances".into(), json!(report));
    c.out.insert("old_instance_commands".into(), json!(commands));
    let ids: Vec<&str> = instances.iter().map(|(id, _)| id.as_str()).collect();
    log::warn(
        &format!(
            "control-plane-only: the source's instances {} still run and rejoin the restored control plane as \
             nodes no NodePool manages; remove them once the destination's node pools serve the workloads:\n  {}",
            ids.join(", "),
            commands.join("\n  ")
        ),
        &[("step", "restore/old-instances")],
    );
    Ok(Done::Checked(format!(
        "{} old instance{} left running (not managed by the destination): {}; see `old_instance_commands`",
        ids.len(),
        if ids.len() == 1 { "" } else { "s" },
        ids.join(", ")
    )))
}
