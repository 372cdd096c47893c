//! `restore` on the destination management cluster.

use ferry_sdk::hooks::{self, Outcome, Point};
use ferry_sdk::k8s::{Cluster, condition, condition_true, name, str_at};
use ferry_sdk::objects::Bucket;
use ferry_sdk::wait::{Check, Wait};
use ferry_sdk::{Error, Result, ResultExt, conflict, invalid, manifest};
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
    c.step("preflight", |c| preflight(c, &dst, &id, &manifests))?;
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
            all.extend(of(&[k], &hcp_ns));
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
    c.step("wait-restored", |c| wait_restored(c, &dst))?;
    c.step("wait-dns", |c| wait_dns_moved(c, &dst, &zone, &domain))?;
    c.step("wait-nodes", |c| wait_nodes(c, &dst, &hosted))?;
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

/// Why a restore from a snapshot failed, in words for the operator. Upstream reports a failed
/// `etcd-init` as `EtcdSnapshotRestored=False` on the HostedControlPlane only once every etcd
/// pod is ready, which a failed init never is (`etcdRestoredCondition`): the init containers'
/// own status is read too.
fn restore_failure(c: &Ctx, dst: &Cluster, hc: &Value, hcp: Option<&Value>) -> Result<Option<String>> {
    let mut why = None;
    if let Some(cond) = hcp.and_then(|h| condition(h, "EtcdSnapshotRestored"))
        && cond.get("status").and_then(Value::as_str) == Some("False")
    {
        why = Some(format!(
            "the HostedControlPlane reports EtcdSnapshotRestored=False ({})",
            cond.get("reason").and_then(Value::as_str).unwrap_or_default()
        ));
    }
    if why.is_none() {
        for pod in dst.list(POD.0, POD.1, Some(&c.hc.hcp_ns), Some("app=etcd"))? {
            let failed = pod
                .pointer("/status/initContainerStatuses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|s| s.get("name").and_then(Value::as_str) == Some("etcd-init"))
                .find_map(|s| {
                    let t = s.pointer("/lastState/terminated")?;
                    (t.get("exitCode").and_then(Value::as_i64).unwrap_or(0) != 0).then(|| {
                        let reason = t.get("reason").and_then(Value::as_str).unwrap_or("Error");
                        let message = t.get("message").and_then(Value::as_str).unwrap_or_default();
                        format!("{reason}{}{message}", if message.is_empty() { "" } else { ": " })
                    })
                });
            if let Some(f) = failed {
                why = Some(format!("etcd-init of pod {} failed ({f})", name(&pod)));
                break;
            }
        }
    }
    let Some(why) = why else {
        return Ok(None);
    };
    let expired = manifest::annotation(hc, URL_EXPIRES_ANNOTATION)
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| ferry_sdk::context::now() > *t)
        .map(|t| format!(" The presigned URL expired at {}.", rfc3339(t)))
        .unwrap_or_default();
    Ok(Some(format!(
        "the destination could not restore etcd from the snapshot: {why}.{expired} {}",
        fresh_url_advice(c)
    )))
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
    let advice = "Nothing on the source was touched by restore. Check the destination's HyperShift operator, the \
                  HostedControlPlane and its etcd pods, then re-run `ferry restore`.";
    Wait {
        step: "restore/wait-restored",
        what: "the HostedCluster to be Available and its HostedControlPlane to report EtcdSnapshotRestored",
        timeout_seconds: timeout,
        interval_millis: 1000,
        on_timeout: advice,
    }
    .until(|| {
        let hc = dst.must_get(&hc_ref)?;
        let hcp = dst.get(&hcp_ref)?;
        if let Some(why) = restore_failure(c, dst, &hc, hcp.as_ref())? {
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
        Ok(if restored(&hc, hcp.as_ref()) {
            Check::Done(())
        } else if hcp.is_none() {
            Check::Pending(format!(
                "no HostedControlPlane yet (HostedCluster ReconciliationSucceeded={})",
                status_of(Some(&hc), "ReconciliationSucceeded")
            ))
        } else {
            Check::Pending(format!(
                "HostedCluster Available={}, HostedControlPlane EtcdSnapshotRestored={}",
                status_of(Some(&hc), "Available"),
                status_of(hcp.as_ref(), "EtcdSnapshotRestored")
            ))
        })
    })?;
    Ok(Done::Did(
        "the HostedCluster is Available and its etcd was restored from the snapshot".into(),
    ))
}

/// Waits until Route53 publishes the control plane's hostnames from the destination (its
/// external-dns owns them): before that, nodes still resolve the API to the source.
fn wait_dns_moved(c: &mut Ctx, dst: &Cluster, zone: &ferry_sdk::dns::Zone, domain: &str) -> Result<Done> {
    if c.plan {
        return Ok(Done::Planned(
            "would wait for Route53 to publish the control plane's hostnames from the destination".into(),
        ));
    }
    let owner = publish::owner_id(dst)?.ok_or_else(|| {
        invalid(format!(
            "the destination `{}` runs no external-dns with --txt-owner-id (Deployment hypershift/external-dns); \
             nothing can publish the hosted cluster's hostnames",
            c.alias("destination")
        ))
    })?;
    let hosts = publish::public_hosts(dst, &c.hc.hcp_ns, domain)?;
    if hosts.is_empty() {
        return Ok(Done::Skipped(format!(
            "the control plane publishes no public hostname under {domain} (Routes or annotated Services)"
        )));
    }
    match publish::wait_moved(c, "restore/wait-dns", zone, domain, &hosts, &owner)? {
        0 => Ok(Done::Already(format!(
            "Route53 publishes {} from {owner}",
            hosts.join(", ")
        ))),
        _ => Ok(Done::Did(format!(
            "Route53 publishes {} from {owner}",
            hosts.join(", ")
        ))),
    }
}

/// Nodes Ready in the hosted cluster, and how many are expected (the sum of
/// the destination's NodePool replicas of this hosted cluster).
pub fn node_counts(c: &Ctx, dst: &Cluster, hosted: &Cluster) -> Result<(u64, u64)> {
    let pools = dst.list(NODE_POOL.0, NODE_POOL.1, Some(&c.hc.ns), None)?;
    let expected = replicas_sum(own_node_pools(&pools, &c.hc.name));
    let nodes = hosted.list(NODE.0, NODE.1, None, None)?;
    let ready = nodes.iter().filter(|n| condition_true(n, "Ready")).count() as u64;
    Ok((ready, expected))
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
        what: "the hosted cluster's nodes to be Ready",
        timeout_seconds: timeout,
        interval_millis: 1000,
        on_timeout: "The control plane runs on the destination; the source is untouched. Check the NodePools, \
                     Machines and AWSMachines on the destination, then re-run.",
    }
    .until(|| {
        let (ready, expected) = node_counts(c, dst, hosted)?;
        Ok(if ready >= expected {
            Check::Done(())
        } else {
            Check::Pending(format!("{ready}/{expected} Ready"))
        })
    })?;
    Ok(Done::Did(format!("{expected}/{expected} nodes Ready")))
}
