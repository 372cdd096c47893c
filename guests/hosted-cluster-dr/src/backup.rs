//! `backup` on the source management cluster.

use std::collections::BTreeMap;

use ferry_sdk::hooks::{Outcome, Point};
use ferry_sdk::k8s::{Cluster, condition_true, name, str_at};
use ferry_sdk::objects::Bucket;
use ferry_sdk::wait::{Check, Wait};
use ferry_sdk::{Error, Result, ResultExt, conflict, dns, etcd, invalid, log, manifest, workspace};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ctx::{Ctx, Done};
use crate::layout::{self, FileEntry, Index, Pool, Snapshot};
use crate::model::*;
use crate::publish;
use crate::workloads;

/// The backup state kept in the marker ConfigMap on the source (so a re-run
/// resumes where a crash left off, and the writers' replicas are never lost).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Marker {
    /// `in-progress`, `uploaded`, `complete`, or `aborted` (`ferry abort` returned the source
    /// to service; the next backup starts afresh).
    pub state: String,
    /// The backup id.
    pub backup_id: String,
    /// Replicas of the etcd writers before they were scaled to zero.
    pub writer_replicas: BTreeMap<String, u32>,
    /// The snapshot once taken.
    pub snapshot: Option<Snapshot>,
    /// Public hostnames (Routes and annotated Services) recorded before DNS was released.
    pub route_hosts: Vec<String>,
    /// What `ferry abort` did, when it ran (RFC 3339 time and summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
    /// When the etcd writers were found stopped (ms since the epoch, the run's clock): the
    /// hosted cluster's API is down from then until the destination serves a write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writers_stopped_at: Option<u64>,
}

impl Marker {
    /// Reads the marker from the source, if any.
    pub fn read(c: &Ctx, src: &Cluster) -> Result<Option<Marker>> {
        let Some(cm) = src.get(&c.hc.marker_ref())? else {
            return Ok(None);
        };
        let text = str_at(&cm, "/data/state.json").unwrap_or("{}");
        serde_json::from_str(text).map(Some).map_err(|e| {
            invalid(format!(
                "the marker ConfigMap {}/{} is corrupt ({e}); inspect it, delete it and re-run the backup",
                c.hc.ns,
                c.hc.marker_name()
            ))
        })
    }

    /// Writes the marker to the source.
    pub fn write(&self, c: &Ctx, src: &Cluster) -> Result<()> {
        let state = serde_json::to_string_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        src.apply(&json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": c.hc.marker_name(), "namespace": c.hc.ns,
                "labels": {"app.kubernetes.io/managed-by": "ferry"},
                "annotations": {"ferry.dev/purpose": "disaster-recovery state of the hosted cluster; deleted by teardown"}},
            "data": {"from": c.alias("source"), "state.json": state},
        }))
        .ctx("writing the marker ConfigMap")?;
        Ok(())
    }
}

/// A rendered manifest and its index entry.
type ManifestFile = (FileEntry, Vec<u8>);

/// Runs the backup phase.
pub fn run(args: &[(String, String)]) -> Result<Value> {
    let mut c = Ctx::new("backup", args)?;
    let src = c.open("source")?;
    let dst = c.open("destination")?;
    let hosted = c.open("hosted")?;
    let bucket = layout::open_bucket(&c)?;
    let zone_id = c.p.require("zone_id")?.to_string();
    let zone = ferry_sdk::k8s::retry(|| dns::open_zone(&zone_id)).ctx(format!("hosted zone {zone_id}"))?;
    let domain = c.p.require("external_dns_domain")?.to_string();

    let Some(hc) = src.get(&c.hc.hc_ref())? else {
        return already_migrated(c, &dst);
    };
    let mut marker = Marker::read(&c, &src)?.unwrap_or_default();
    // A complete backup the destination already restored from: the migration is past backup.
    if marker.state == "complete"
        && dst
            .get(&c.hc.hc_ref())?
            .is_some_and(|d| manifest::annotation(&d, BACKUP_ID_ANNOTATION) == Some(marker.backup_id.as_str()))
    {
        return already_migrated(c, &dst);
    }

    // A backup this one resumes may have stopped the writers already: the hosted API is down
    // by design then, and not a reason to stop.
    let resuming = !marker.backup_id.is_empty() && marker.state != "aborted";
    let hosted_to_check = (!resuming).then_some(&hosted);
    c.step("preflight", |c| {
        preflight(c, &hc, &src, &dst, hosted_to_check, &bucket, &zone, &domain)
    })?;
    c.step("marker", |c| {
        if !marker.backup_id.is_empty() && marker.state != "aborted" {
            return Ok(Done::Already(format!("backup {} ({})", marker.backup_id, marker.state)));
        }
        // After an abort the source ran again: a new backup, with nothing of the old one.
        marker = Marker::default();
        marker.backup_id = model_backup_id();
        marker.state = "in-progress".into();
        marker.write(c, &src)?;
        if c.plan {
            return Ok(Done::Planned(format!("would start backup {}", marker.backup_id)));
        }
        Ok(Done::Did(format!("started backup {}", marker.backup_id)))
    })?;
    c.out.insert("backup_id".into(), json!(marker.backup_id));
    let pools = own_pools(&c, &src)?;
    c.step("pause", |c| pause(c, &src, &hc, &pools))?;
    c.step("scale-down", |c| scale_down_writers(c, &src, &mut marker))?;
    c.step("snapshot", |c| snapshot(c, &src, &hc, &bucket, &mut marker))?;
    let mut files: Vec<ManifestFile> = Vec::new();
    let mut index = None;
    c.step("dump", |c| {
        if marker.state != "in-progress" {
            return Ok(Done::Already(format!(
                "backup {} is {}",
                marker.backup_id, marker.state
            )));
        }
        let (i, f) = dump(c, &src, &hc, &pools, &marker)?;
        let n = f.len();
        let msg = format!("{n} manifests in {}/namespaces/", marker.backup_id);
        index = Some(i);
        files = f;
        if c.plan {
            return Ok(Done::Planned(format!("would write {msg}")));
        }
        Ok(Done::Did(format!("wrote {msg}")))
    })?;
    c.step("upload", |c| match index.take() {
        None => Ok(Done::Already(format!(
            "backup {} is in s3://{}/{}",
            marker.backup_id,
            bucket.name(),
            layout::s3_dir(c, &marker.backup_id)
        ))),
        Some(index) => upload(c, &src, &bucket, &index, &files, &mut marker),
    })?;
    c.step("complete", |c| {
        if marker.state == "complete" {
            return Ok(Done::Already(format!("backup {} complete", marker.backup_id)));
        }
        marker.state = "complete".into();
        marker.write(c, &src)?;
        if c.plan {
            return Ok(Done::Planned("would mark the backup complete".into()));
        }
        Ok(Done::Did(format!("backup {} complete", marker.backup_id)))
    })?;
    c.out.insert(
        "s3".into(),
        json!(format!(
            "s3://{}/{}",
            bucket.name(),
            layout::s3_dir(&c, &marker.backup_id)
        )),
    );
    c.out.insert("local_dir".into(), json!(marker.backup_id));
    c.out.insert("snapshot".into(), json!(marker.snapshot));
    Ok(c.summary())
}

fn model_backup_id() -> String {
    backup_id(ferry_sdk::context::now())
}

/// The HostedCluster is gone from the source: fine if it was restored on the
/// destination from one of our backups (the backup is done), else an error.
fn already_migrated(mut c: Ctx, dst: &Cluster) -> Result<Value> {
    let hc_ref = c.hc.hc_ref();
    match dst.get(&hc_ref)? {
        Some(hc) if manifest::annotation(&hc, BACKUP_ID_ANNOTATION).is_some() => {
            let id = manifest::annotation(&hc, BACKUP_ID_ANNOTATION)
                .unwrap_or_default()
                .to_string();
            c.step("preflight", |_| {
                Ok(Done::Already(format!(
                    "the hosted cluster was already restored on the destination from backup {id}"
                )))
            })?;
            c.out.insert("backup_id".into(), json!(id));
            Ok(c.summary())
        }
        _ => Err(Error::NotFound(format!(
            "HostedCluster {}/{} does not exist on the source cluster `{}`: check hc_namespace/hc_name and the \
             source kubeconfig",
            c.hc.ns,
            c.hc.name,
            c.alias("source")
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
fn preflight(
    c: &mut Ctx,
    hc: &Value,
    src: &Cluster,
    dst: &Cluster,
    hosted: Option<&Cluster>,
    bucket: &Bucket,
    zone: &dns::Zone,
    domain: &str,
) -> Result<Done> {
    let mut problems = unsupported(hc, &c.hc.ns, &c.hc.name);
    if c.p.or("nodes", "reuse") == "reuse" && !api_server_has_hostname(hc) {
        problems.push(
            "the APIServer service has no fixed hostname (spec.services[].servicePublishingStrategy.route.hostname or \
             .loadBalancer.hostname); \
             nodes cannot rejoin a control plane on another management cluster (use nodes=control-plane-only, or \
             set a hostname)"
                .into(),
        );
    }
    if let Some(why) = crate::restore::etcd_init_refusal(
        c,
        str_at(hc, "/spec/controllerAvailabilityPolicy").unwrap_or("SingleReplica"),
    ) {
        problems.push(why);
    }
    match dst.get(&c.hc.hc_ref()) {
        Ok(Some(_)) => problems.push(format!(
            "HostedCluster {}/{} already exists on the destination `{}`: it is not ours to overwrite",
            c.hc.ns,
            c.hc.name,
            c.alias("destination")
        )),
        Ok(None) => {}
        Err(e) => problems.push(format!(
            "destination `{}` unreachable: {}",
            c.alias("destination"),
            ferry_sdk::message(&e)
        )),
    }
    for (role, cluster) in [("source", src), ("destination", dst)] {
        if let Err(why) = external_dns_configured(cluster, domain) {
            problems.push(format!("{role} `{}`: {why}", c.alias(role)));
        }
    }
    if let Some(Err(e)) = hosted.map(|h| h.list(NODE.0, NODE.1, None, None)) {
        problems.push(format!(
            "the hosted cluster's API (`{}`) is unreachable: {}",
            c.alias("hosted"),
            ferry_sdk::message(&e)
        ));
    }
    match ferry_sdk::k8s::retry(|| bucket.exposure()) {
        Ok(x) if x.publicly_readable => problems.push(format!(
            "bucket {} is publicly readable ({}); an etcd snapshot holds every secret of the cluster. Use a private \
             bucket (never the OIDC bucket)",
            bucket.name(),
            x.reason
        )),
        Ok(_) => {}
        Err(e) => problems.push(format!("bucket {}: {}", bucket.name(), ferry_sdk::message(&e))),
    }
    if let Err(e) = ferry_sdk::k8s::retry(|| zone.list_record_sets(Some(domain))) {
        problems.push(format!("hosted zone {}: {}", zone.id(), ferry_sdk::message(&e)));
    }
    if !problems.is_empty() {
        return Err(invalid(format!(
            "preflight failed, nothing was changed:\n  - {}",
            problems.join("\n  - ")
        )));
    }
    Ok(Done::Checked(
        "both management clusters, the hosted cluster, bucket and zone are ready".into(),
    ))
}

/// What makes a hosted cluster one this guest cannot move, each with the reason and the way
/// it can be moved instead.
fn unsupported(hc: &Value, ns: &str, name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if str_at(hc, "/spec/platform/type") != Some("AWS") {
        problems.push(format!(
            "HostedCluster {}/{} is not on the AWS platform (spec.platform.type); this guest moves AWS hosted clusters",
            ns, name
        ));
    }
    if str_at(hc, "/spec/etcd/managementType") != Some("Managed") {
        problems.push(
            "its etcd is not Managed (spec.etcd.managementType); only managed etcd can be restored from a snapshot"
                .into(),
        );
    }
    // One snapshot holds one etcd: the shards of a sharded etcd are not in it, and upstream's
    // etcd-init does not restore shards (`v2/etcd/shard.go`).
    if hc
        .pointer("/spec/etcd/managed/shards")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
    {
        problems.push(
            "its etcd is sharded (spec.etcd.managed.shards): one snapshot holds one etcd, not its shards, and \
             HyperShift restores no shard from a URL. Back up and restore sharded clusters with OADP volume \
             snapshots instead"
                .into(),
        );
    }
    // Private endpoint access: the API is reached through the control-plane operator's VPC
    // endpoint and private hosted zone, which ferry can neither move nor verify.
    let access = str_at(hc, "/spec/platform/aws/endpointAccess").unwrap_or("Public");
    if access != "Public" {
        problems.push(format!(
            "its endpoint access is {access} (spec.platform.aws.endpointAccess): nodes reach the API through an AWS \
             PrivateLink endpoint and the private zone records the control-plane operator keeps, which ferry can \
             neither move nor verify, so nothing could show the nodes followed the control plane. Migrate it by \
             hand: follow the documented procedure, then check the VPC endpoint and the private hosted zone \
             before deleting the source"
        ));
    }
    problems
}

fn api_server_has_hostname(hc: &Value) -> bool {
    hc.pointer("/spec/services")
        .and_then(Value::as_array)
        .is_some_and(|services| {
            services.iter().any(|s| {
                str_at(s, "/service") == Some("APIServer")
                    && (str_at(s, "/servicePublishingStrategy/route/hostname").is_some_and(|h| !h.is_empty())
                        || str_at(s, "/servicePublishingStrategy/loadBalancer/hostname").is_some_and(|h| !h.is_empty()))
            })
        })
}

/// HyperShift installs external-dns as `hypershift/external-dns`; its
/// `--domain-filter` must cover the hosted cluster's domain.
fn external_dns_configured(cluster: &Cluster, domain: &str) -> std::result::Result<(), String> {
    let d = cluster
        .get(&r(DEPLOYMENT, Some("hypershift"), "external-dns"))
        .map_err(|e| ferry_sdk::message(&e).to_string())?
        .ok_or("HyperShift is installed without external-dns (no Deployment hypershift/external-dns); install it with --external-dns-provider=aws --external-dns-domain-filter=<domain>")?;
    let args: Vec<&str> = d
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| c.get("args").and_then(Value::as_array).into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let filters: Vec<&str> = args.iter().filter_map(|a| a.strip_prefix("--domain-filter=")).collect();
    if filters
        .iter()
        .any(|f| domain == *f || domain.ends_with(&format!(".{f}")))
    {
        Ok(())
    } else {
        Err(format!(
            "external-dns does not manage {domain} (its --domain-filter is {filters:?}); reinstall HyperShift with \
             --external-dns-domain-filter={domain}"
        ))
    }
}

fn own_pools(c: &Ctx, src: &Cluster) -> Result<Vec<Value>> {
    let all = src.list(NODE_POOL.0, NODE_POOL.1, Some(&c.hc.ns), None)?;
    Ok(own_node_pools(&all, &c.hc.name).into_iter().cloned().collect())
}

fn pause(c: &mut Ctx, src: &Cluster, hc: &Value, pools: &[Value]) -> Result<Done> {
    let mut paused = Vec::new();
    let mut targets = vec![(c.hc.hc_ref(), hc)];
    for np in pools {
        targets.push((r(NODE_POOL, Some(&c.hc.ns), name(np)), np));
    }
    for (obj_ref, current) in targets {
        if str_at(current, "/spec/pausedUntil") == Some("true") {
            continue;
        }
        src.merge_patch(&obj_ref, &json!({"spec": {"pausedUntil": "true"}}))?;
        paused.push(ferry_sdk::k8s::describe(&obj_ref));
    }
    // The HyperShift operator copies `pausedUntil` to the HostedControlPlane
    // (`pauseHostedControlPlane`); until it has, the control-plane operator still reconciles and
    // scales the etcd writers back up behind the next step.
    if !c.plan {
        let hcp_ref = r(HOSTED_CONTROL_PLANE, Some(&c.hc.hcp_ns), &c.hc.name);
        Wait {
            step: "backup/pause",
            what: "the HostedControlPlane to be paused (the HyperShift operator copies pausedUntil to it)",
            timeout_seconds: c.p.u64_or("pause_timeout_seconds", 300)?,
            interval_millis: 500,
            on_timeout: "The HostedCluster is paused but its HostedControlPlane is not: is the source's HyperShift \
                         operator running? Nothing else was changed; re-run the backup, or `ferry abort`.",
        }
        .until(|| {
            Ok(match src.get(&hcp_ref)? {
                Some(h) if str_at(&h, "/spec/pausedUntil") == Some("true") => Check::Done(()),
                Some(_) => Check::Pending("not yet paused".into()),
                None => Check::Pending("no HostedControlPlane".into()),
            })
        })?;
    }
    Ok(Done::of_changes(
        &paused,
        c.plan,
        format!("HostedCluster and {} NodePools are paused", pools.len()),
        "pause",
        "paused",
    ))
}

fn scale_down_writers(c: &mut Ctx, src: &Cluster, marker: &mut Marker) -> Result<Done> {
    let mut scaled = Vec::new();
    let mut missing = Vec::new();
    let mut running = Vec::new();
    for w in ETCD_WRITERS {
        let d_ref = r(DEPLOYMENT, Some(&c.hc.hcp_ns), w);
        let Some(d) = src.get(&d_ref)? else {
            missing.push(*w);
            continue;
        };
        let replicas = d.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as u32;
        if replicas > 0 {
            running.push((*w, d_ref, replicas));
        }
    }
    if !running.is_empty() {
        // Stopping the writers takes the hosted cluster's API down: hooks may veto.
        let names: Vec<&str> = running.iter().map(|(w, _, _)| *w).collect();
        c.hook(Point::Verify, "scale-down", json!({"writers": names}))?;
        // Recorded before scaling, in one write, so a crash in between never loses a count;
        // the API is down from the moment they are asked to stop.
        for (w, _, replicas) in &running {
            marker.writer_replicas.entry(w.to_string()).or_insert(*replicas);
        }
        // Planned too: a plan holds the write as it will be made, the time as the run's stamp.
        if marker.writers_stopped_at.is_none() {
            marker.writers_stopped_at = Some(ferry_sdk::context::now());
        }
        marker.write(c, src)?;
        for (w, d_ref, replicas) in &running {
            src.scale(d_ref, 0)?;
            scaled.push(format!("{w} ({replicas}→0)"));
        }
    }
    if !missing.is_empty() {
        log::warn(
            "etcd writers not found (skipped)",
            &[("deployments", &missing.join(","))],
        );
    }
    // At 0 replicas the writers' pods still run until they terminate: the snapshot waits.
    let terminated = workloads::wait_pods_gone(
        c,
        src,
        &c.hc.hcp_ns,
        ETCD_WRITERS,
        "backup/scale-down",
        "a consistent snapshot needs every etcd writer stopped",
    )?;
    // The hosted cluster's API is down from when its writers were asked to stop until the
    // destination serves a write (found stopped by someone else: from now).
    let at = marker.writers_stopped_at.unwrap_or_else(ferry_sdk::context::now);
    if marker.writers_stopped_at.is_none() {
        marker.writers_stopped_at = Some(at);
        marker.write(c, src)?;
    }
    if !c.plan {
        log::info(
            "milestone: the etcd writers are stopped; the hosted cluster's API is down",
            &[("milestone", "writers-stopped"), ("at", &rfc3339_ms(at))],
        );
        c.out.insert("writers_stopped_at".into(), json!(rfc3339_ms(at)));
        c.api_down_since = Some(at);
    }
    if scaled.is_empty() && terminated > 0 && !c.plan {
        return Ok(Done::Did(format!(
            "waited for {terminated} etcd writer pods to terminate"
        )));
    }
    Ok(Done::of_changes(
        &scaled,
        c.plan,
        "the etcd writers are at 0 replicas and their pods are gone",
        "scale",
        "scaled",
    ))
}

/// The etcd member pods to try, healthy ones first.
fn members(c: &Ctx, src: &Cluster, hc: &Value) -> Result<Vec<String>> {
    let ha = str_at(hc, "/spec/controllerAvailabilityPolicy") == Some("HighlyAvailable");
    let wanted: Vec<String> = (0..if ha { 3 } else { 1 }).map(|i| format!("etcd-{i}")).collect();
    let mut healthy = Vec::new();
    let mut seen = Vec::new();
    for pod in &wanted {
        match src.get(&r(POD, Some(&c.hc.hcp_ns), pod))? {
            Some(p) if str_at(&p, "/status/phase") == Some("Running") && condition_true(&p, "Ready") => {
                healthy.push(pod.clone())
            }
            Some(p) => seen.push(format!("{pod}: {}", str_at(&p, "/status/phase").unwrap_or("unknown"))),
            None => seen.push(format!("{pod}: missing")),
        }
    }
    if healthy.is_empty() {
        return Err(Error::Unavailable(format!(
            "no healthy etcd member in {} ({}); the writers stay scaled down and the cluster paused. Fix etcd and \
             re-run the backup",
            c.hc.hcp_ns,
            seen.join(", ")
        )));
    }
    Ok(healthy)
}

fn snapshot(c: &mut Ctx, src: &Cluster, hc: &Value, bucket: &Bucket, marker: &mut Marker) -> Result<Done> {
    if let Some(s) = &marker.snapshot {
        match ferry_sdk::k8s::retry(|| bucket.head(&s.key)) {
            Ok(info) if info.sha256.as_deref() == Some(s.sha256.as_str()) && info.size == s.size => {
                return Ok(Done::Already(format!(
                    "snapshot {} (revision {}) is in S3",
                    s.key, s.revision
                )));
            }
            Ok(_) | Err(Error::NotFound(_)) => {
                log::warn("the recorded snapshot is missing or differs; taking a new one", &[])
            }
            Err(e) => return Err(e),
        }
    }
    let candidates = members(c, src, hc)?;
    // The writers must really be down for the snapshot to be consistent.
    for w in ETCD_WRITERS {
        if let Some(d) = src.get(&r(DEPLOYMENT, Some(&c.hc.hcp_ns), w))? {
            let n = d.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(0);
            if n > 0 && !c.plan {
                return Err(conflict(format!(
                    "Deployment {}/{w} is back at {n} replicas (is the HostedCluster still paused?); refusing an \
                     inconsistent snapshot",
                    c.hc.hcp_ns
                )));
            }
        }
    }
    let running = workloads::pods_of(src, &c.hc.hcp_ns, ETCD_WRITERS)?;
    if !running.is_empty() && !c.plan {
        return Err(conflict(format!(
            "etcd writer pods still run ({}); refusing an inconsistent snapshot. Re-run the backup: it waits for \
             them to terminate",
            running.join(", ")
        )));
    }
    let tls = src.get(&r(SECRET, Some(&c.hc.hcp_ns), "etcd-client-tls"))?.is_some();
    let dir = layout::s3_dir(c, &marker.backup_id);
    let mut failures = Vec::new();
    for pod in &candidates {
        let key = format!("{dir}{}-{pod}-snapshot.db", c.hc.name);
        let member = etcd::PodMember {
            namespace: c.hc.hcp_ns.clone(),
            pod: pod.clone(),
            port: 2379,
            client_secret: tls.then(|| "etcd-client-tls".to_string()),
            ca_secret: tls.then(|| "etcd-ca".to_string()),
        };
        // A dropped port-forward or a busy member is transient; a retry streams the snapshot
        // again to the same key (the host aborts the abandoned upload first).
        match ferry_sdk::k8s::retry(|| etcd::snapshot_pod_to_object(src.handle(), &member, bucket, &key)) {
            Ok(info) => {
                let s = Snapshot {
                    key: info.key,
                    size: info.size,
                    sha256: info.sha256,
                    revision: info.revision,
                    member: info.member,
                };
                let msg = format!(
                    "{pod} at revision {}: {} bytes, sha256 {}",
                    s.revision, s.size, s.sha256
                );
                marker.snapshot = Some(s);
                marker.write(c, src)?;
                if c.plan {
                    return Ok(Done::Planned(format!(
                        "would stream a snapshot of {pod} to s3://{}/{key}",
                        bucket.name()
                    )));
                }
                return Ok(Done::Did(msg));
            }
            Err(e @ Error::Denied(_)) => return Err(e),
            Err(e) => failures.push(format!("{pod}: {}", ferry_sdk::message(&e))),
        }
    }
    Err(Error::Unavailable(format!(
        "no etcd member could be snapshotted ({}); the cluster stays paused. Re-run the backup",
        failures.join("; ")
    )))
}

fn clean(mut obj: Value) -> Value {
    manifest::clean_for_transport(&mut obj);
    manifest::remove_annotations_with_prefix(&mut obj, ANNOTATION_PREFIX);
    obj
}

/// Secrets of the HCP namespace the documented filters leave behind: docker
/// config and service-account tokens (by type), `oauth-openshift` session
/// secrets, and NodePool token secrets (`token-<pool>-*`, `token-<hc>-*`),
/// which the destination's HyperShift regenerates.
fn hcp_secret_excluded(secret: &Value, hc_name: &str, pools: &[Value]) -> bool {
    let n = name(secret);
    let t = str_at(secret, "/type").unwrap_or_default();
    t.contains("docker")
        || t == "kubernetes.io/service-account-token"
        || t == "bootstrap.kubernetes.io/token"
        || n.contains("oauth-openshift")
        || n.starts_with(&format!("token-{hc_name}"))
        || pools.iter().any(|p| n.starts_with(&format!("token-{}-", name(p))))
}

fn dump(
    c: &mut Ctx,
    src: &Cluster,
    hc: &Value,
    pools: &[Value],
    marker: &Marker,
) -> Result<(Index, Vec<ManifestFile>)> {
    let ns = c.hc.ns.clone();
    let hcp_ns = c.hc.hcp_ns.clone();
    let mut objects: Vec<Value> = vec![hc.clone()];
    objects.extend(pools.iter().cloned());

    // HC namespace: the Secrets and ConfigMaps this hosted cluster owns there (referenced
    // from its spec or its NodePools' specs, or named after it and claimed by no sibling:
    // `ferry_hcp_model::owned`). The runner resolved them before the run, and the policy
    // grants no others: a sibling's Secret is never read.
    let mut refs = References::default();
    refs.collect(hc);
    pools.iter().for_each(|p| refs.collect(p));
    let mut other_refs = References::default();
    src.list(HOSTED_CLUSTER.0, HOSTED_CLUSTER.1, Some(&ns), None)?
        .iter()
        .filter(|o| name(o) != c.hc.name)
        .for_each(|o| other_refs.collect(o));
    let marker_name = c.hc.marker_name();
    let mut carried = Vec::new();
    for (kind, referenced) in [(SECRET, &refs.secrets), (CONFIG_MAP, &refs.config_maps)] {
        let mut of_kind = Vec::new();
        for o in src.owned(kind.0, kind.1, &ns)? {
            // The marker is ferry's state on this cluster, not the hosted cluster's.
            if kind == CONFIG_MAP && name(&o) == marker_name {
                continue;
            }
            of_kind.push(name(&o).to_string());
            objects.push(o);
        }
        for n in referenced.iter() {
            if !of_kind.contains(n) {
                return Err(Error::NotFound(format!(
                    "{} {ns}/{n} is referenced by the HostedCluster or a NodePool but does not exist; the restored \
                     cluster would not start. Recreate it or fix the reference, then re-run the backup",
                    kind.1
                )));
            }
        }
        carried.extend(of_kind);
    }
    let shared: Vec<&String> = carried
        .iter()
        .filter(|n| other_refs.secrets.contains(*n) || other_refs.config_maps.contains(*n))
        .collect();
    if !shared.is_empty() {
        log::info(
            "objects shared with other hosted clusters are carried but teardown will keep them",
            &[("names", &format!("{shared:?}"))],
        );
    }
    let encryption_key = str_at(hc, "/spec/secretEncryption/aescbc/activeKey/name").map(str::to_string);

    // HCP namespace.
    for s in src.list(SECRET.0, SECRET.1, Some(&hcp_ns), None)? {
        if !hcp_secret_excluded(&s, &c.hc.name, pools) {
            objects.push(s);
        }
    }
    let hcp = src.must_get(&r(HOSTED_CONTROL_PLANE, Some(&hcp_ns), &c.hc.name))?;
    objects.push(hcp);
    let infra = str_at(hc, "/spec/infraID").unwrap_or_default().to_string();
    // Cluster API objects in the version the source serves and prefers (discovery).
    let served = Served::new(src);
    if let Some(cl) = src.get(&served.r(CAPI_CLUSTER, Some(&hcp_ns), &infra)?)? {
        objects.push(cl);
    } else {
        objects.extend(served.list(CAPI_CLUSTER, &hcp_ns)?);
    }
    for &kind in MACHINE_KINDS {
        objects.extend(served.list(kind, &hcp_ns)?);
    }

    // Site hooks may add objects to carry (a site's resources, by kind and label).
    if let Outcome::Objects(refs) = c.hook(Point::SelectObjects, "dump", json!({}))? {
        for obj_ref in refs {
            let o = src.get(&obj_ref)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "a hook asked to carry {}, which does not exist on the source",
                    ferry_sdk::k8s::describe(&obj_ref)
                ))
            })?;
            let same = |x: &Value| {
                name(x) == name(&o)
                    && str_at(x, "/kind") == str_at(&o, "/kind")
                    && str_at(x, "/metadata/namespace") == str_at(&o, "/metadata/namespace")
            };
            if !objects.iter().any(same) {
                objects.push(o);
            }
        }
    }
    let mut files = Vec::new();
    for o in objects {
        let o = clean(o);
        let data = layout::to_yaml(&o)?;
        let e = layout::entry(&o, &data);
        files.push((e, data));
    }
    let domain = c.p.require("external_dns_domain")?.to_string();
    let route_hosts = publish::public_hosts(src, &c.hc.hcp_ns, &domain)?;
    let snapshot = match (&marker.snapshot, c.plan) {
        (Some(s), _) => s.clone(),
        // A plan takes no snapshot; the index it renders says so.
        (None, true) => Snapshot {
            key: "(planned)".into(),
            size: 0,
            sha256: String::new(),
            revision: 0,
            member: String::new(),
        },
        (None, false) => {
            return Err(Error::Other("no snapshot recorded; re-run the backup".into()));
        }
    };
    let index = Index {
        format: layout::FORMAT.into(),
        backup_id: marker.backup_id.clone(),
        created: rfc3339(ferry_sdk::context::now()),
        source: layout::Source {
            cluster: c.alias("source"),
            hc_namespace: ns.clone(),
            hc_name: c.hc.name.clone(),
            hcp_namespace: hcp_ns.clone(),
            infra_id: infra,
            availability_policy: str_at(hc, "/spec/controllerAvailabilityPolicy")
                .unwrap_or("SingleReplica")
                .into(),
        },
        versions: layout::Versions {
            guest: env!("CARGO_PKG_VERSION").into(),
            release_image: str_at(hc, "/spec/release/image").unwrap_or_default().into(),
        },
        snapshot,
        nodes: c.p.or("nodes", "reuse").into(),
        node_pools: pools
            .iter()
            .map(|p| Pool {
                name: name(p).into(),
                replicas: p.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(0),
            })
            .collect(),
        route_hosts: if route_hosts.is_empty() {
            marker.route_hosts.clone()
        } else {
            route_hosts
        },
        encryption_key,
        writers_stopped_at: marker.writers_stopped_at,
        files: files.iter().map(|(e, _)| e.clone()).collect(),
    };
    // In a plan the host records each write and skips it.
    for (e, data) in &files {
        workspace::write_file(&format!("{}/{}", marker.backup_id, e.path), data)?;
    }
    Ok((index, files))
}

fn upload(
    c: &mut Ctx,
    src: &Cluster,
    bucket: &Bucket,
    index: &Index,
    files: &[ManifestFile],
    marker: &mut Marker,
) -> Result<Done> {
    let dir = layout::s3_dir(c, &index.backup_id);
    for (i, (e, data)) in files.iter().enumerate() {
        layout::put(bucket, &format!("{dir}{}", e.path), data, "application/yaml")?;
        log::progress("backup/upload", i as u64 + 1, Some(files.len() as u64 + 1), &e.path);
    }
    let index_json = serde_json::to_vec_pretty(index).map_err(|e| Error::Other(e.to_string()))?;
    // The index goes last, locally and in S3: a backup without one is incomplete.
    workspace::write_file(&format!("{}/index.json", index.backup_id), &index_json)?;
    layout::put_index(bucket, &format!("{dir}index.json"), &index_json)?;
    marker.route_hosts = index.route_hosts.clone();
    marker.state = "uploaded".into();
    marker.write(c, src)?;
    if c.plan {
        return Ok(Done::Planned(format!(
            "would upload {} manifests and index.json to s3://{}/{dir}",
            files.len(),
            bucket.name()
        )));
    }
    Ok(Done::Did(format!(
        "uploaded {} manifests and index.json to s3://{}/{dir}",
        files.len(),
        bucket.name()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_this_guest_cannot_move_are_refused_with_the_reason() {
        let hc = |extra: Value| {
            let mut h = json!({"spec": {"platform": {"type": "AWS", "aws": {"endpointAccess": "Public"}},
                "etcd": {"managementType": "Managed", "managed": {"storage": {"type": "PersistentVolume"}}}}});
            if let (Some(h), Some(e)) = (h["spec"].as_object_mut(), extra.as_object()) {
                for (k, v) in e {
                    h.insert(k.clone(), v.clone());
                }
            }
            h
        };
        assert!(unsupported(&hc(json!({})), "clusters", "demo").is_empty());
        let sharded = hc(json!({"etcd": {"managementType": "Managed", "managed": {"shards": [{"name": "events"}]}}}));
        let why = unsupported(&sharded, "clusters", "demo");
        assert!(
            why.len() == 1 && why[0].contains("sharded") && why[0].contains("OADP"),
            "{why:?}"
        );
        for access in ["Private", "PublicAndPrivate"] {
            let private = hc(json!({"platform": {"type": "AWS", "aws": {"endpointAccess": access}}}));
            let why = unsupported(&private, "clusters", "demo");
            assert!(
                why.len() == 1 && why[0].contains(access) && why[0].contains("by hand"),
                "{why:?}"
            );
        }
        let unmanaged = hc(json!({"etcd": {"managementType": "Unmanaged"}}));
        assert!(unsupported(&unmanaged, "clusters", "demo")[0].contains("not Managed"));
    }

    #[test]
    fn documented_secret_filters() {
        let pools = vec![json!({"metadata": {"name": "workers"}})];
        let s = |n: &str, t: &str| json!({"metadata": {"name": n}, "type": t});
        assert!(hcp_secret_excluded(
            &s("builder-dockercfg-1", "kubernetes.io/dockercfg"),
            "demo",
            &pools
        ));
        assert!(hcp_secret_excluded(
            &s("default-token-1", "kubernetes.io/service-account-token"),
            "demo",
            &pools
        ));
        assert!(hcp_secret_excluded(&s("oauth-openshift-x", "Opaque"), "demo", &pools));
        assert!(hcp_secret_excluded(&s("token-workers-abc", "Opaque"), "demo", &pools));
        assert!(hcp_secret_excluded(&s("token-demo-workers", "Opaque"), "demo", &pools));
        assert!(!hcp_secret_excluded(&s("root-ca", "Opaque"), "demo", &pools));
        assert!(!hcp_secret_excluded(
            &s("kube-apiserver-cert", "kubernetes.io/tls"),
            "demo",
            &pools
        ));
    }
}
