//! `abort` on the source: returns a hosted cluster whose backup will not be restored today to
//! service (upstream needed `contrib/oadp-recovery` for exactly this state, OCPBUGS-77530).
//!
//! Steps, each idempotent, from wherever backup or restore stopped:
//! - `gate`: refuse when the destination already has the HostedCluster: two live control
//!   planes on one etcd history is split brain (`--force` goes on, logged);
//! - `writers`: the etcd writers back at the replicas backup recorded in the marker;
//! - `unpause`: `pausedUntil` removed from the HostedCluster and its NodePools; the
//!   control-plane operator then recreates the Routes and the external-dns hostnames;
//! - `wait-dns`: Route53 publishes the control plane's hostnames from the source again;
//! - `marker`: the abort is recorded in the marker (the next backup starts afresh).

use ferry_sdk::k8s::{Cluster, name, str_at};
use ferry_sdk::{Error, Result, ResultExt, log, manifest};
use serde_json::{Value, json};

use crate::backup::Marker;
use crate::ctx::{Ctx, Done};
use crate::model::*;
use crate::publish;

/// Runs the abort phase.
pub fn run(args: &[(String, String)]) -> Result<Value> {
    let mut c = Ctx::new("abort", args)?;
    let src = c.open("source")?;
    let dst = c.open("destination")?;
    let zone_id = c.p.require("zone_id")?.to_string();
    let zone = ferry_sdk::k8s::retry(|| ferry_sdk::dns::open_zone(&zone_id)).ctx(format!("hosted zone {zone_id}"))?;
    let domain = c.p.require("external_dns_domain")?.to_string();
    let force = c.p.flag("force");
    let Some(_) = src.get(&c.hc.hc_ref())? else {
        return Err(Error::NotFound(format!(
            "HostedCluster {}/{} is not on the source `{}`: teardown removed it, so there is nothing to return to \
             service; the hosted cluster lives on the destination",
            c.hc.ns,
            c.hc.name,
            c.alias("source")
        )));
    };
    let mut marker = Marker::read(&c, &src)?;
    let destination_has_it = dst.get(&c.hc.hc_ref())?.is_some();
    c.step("gate", |c| gate(c, &dst, force))?;
    c.step("writers", |c| writers(c, &src, marker.as_ref()))?;
    c.step("unpause", |c| unpause(c, &src))?;
    c.step("wait-dns", |c| {
        if c.plan {
            return Ok(Done::Planned(
                "would wait for Route53 to publish the control plane's hostnames from the source again".into(),
            ));
        }
        let ed = publish::external_dns(&src)?.ok_or_else(|| {
            Error::Invalid(format!(
                "the source `{}` runs no external-dns with --txt-owner-id (Deployment hypershift/external-dns)",
                c.alias("source")
            ))
        })?;
        // What backup released, or (when it stopped earlier) what the control plane publishes.
        let mut hosts = marker.as_ref().map(|m| m.route_hosts.clone()).unwrap_or_default();
        if hosts.is_empty() {
            hosts = publish::public_hosts(&src, &c.hc.hcp_ns, &domain)?;
        }
        let suffix = format!(".{}", domain.trim_end_matches('.'));
        hosts.retain(|h| h.ends_with(&suffix) || *h == domain);
        if hosts.is_empty() {
            return Ok(Done::Skipped(format!(
                "the control plane publishes no hostname under {domain}"
            )));
        }
        if destination_has_it {
            // Forced: the destination's external-dns may own the names; the source's takes them
            // back only once the destination's copy stops publishing them.
            return Ok(Done::Skipped(format!(
                "forced while the destination has the hosted cluster: {} move back to the source only once the \
                 destination's control plane stops publishing them",
                hosts.join(", ")
            )));
        }
        let on_timeout = format!(
            "The source runs again but Route53 does not point {} at it yet. Check the source's external-dns \
             (hypershift/external-dns, owner id {}): a record another owner holds is never taken over. Then re-run \
             `ferry abort`.",
            hosts.join(", "),
            ed.owner
        );
        // The destination may have published them (restore moved DNS before it failed): its
        // records go once its control plane is gone, and the source's external-dns, whose cache
        // does not know of them, is restarted to publish at once.
        let from = publish::external_dns(&dst)?.map(|ed| publish::Publisher {
            cluster: &dst,
            ed,
            alias: c.alias("destination"),
        });
        let to = publish::Publisher {
            cluster: &src,
            ed,
            alias: c.alias("source"),
        };
        match publish::cut_over(
            c,
            "abort/wait-dns",
            &zone,
            &domain,
            &hosts,
            from.as_ref(),
            &to,
            &|| Ok(Vec::new()),
            &on_timeout,
        )?
        .0
        {
            0 => Ok(Done::Already(format!(
                "Route53 publishes {} from the source",
                hosts.join(", ")
            ))),
            _ => Ok(Done::Did(format!(
                "Route53 publishes {} from the source again",
                hosts.join(", ")
            ))),
        }
    })?;
    c.step("marker", |c| match marker.as_mut() {
        None => Ok(Done::Already("no backup was in progress (no marker)".into())),
        Some(m) if m.state == "aborted" => Ok(Done::Already(format!(
            "backup {} was aborted: {}",
            m.backup_id,
            m.aborted.as_deref().unwrap_or_default()
        ))),
        Some(m) => {
            let was = m.state.clone();
            m.state = "aborted".into();
            m.aborted = Some(format!(
                "{}: the source was returned to service (the backup was {was}{})",
                rfc3339(ferry_sdk::context::now()),
                if force {
                    "; forced past the destination check"
                } else {
                    ""
                }
            ));
            m.write(c, &src)?;
            if c.plan {
                return Ok(Done::Planned("would record the abort in the marker".into()));
            }
            Ok(Done::Did(format!("backup {} recorded as aborted", m.backup_id)))
        }
    })?;
    Ok(c.summary())
}

/// Refuses when the destination has the HostedCluster (unless forced); reports what a
/// restore that stopped earlier left there.
fn gate(c: &mut Ctx, dst: &Cluster, force: bool) -> Result<Done> {
    let leftovers = dst
        .get(&r(NAMESPACE, None, &c.hc.hcp_ns))?
        .filter(|ns| manifest::annotation(ns, BACKUP_ID_ANNOTATION).is_some())
        .map(|_| {
            format!(
                "; the destination holds what a restore made before the HostedCluster (namespace {}): nothing runs \
                 there, remove it or re-run `ferry restore` later",
                c.hc.hcp_ns
            )
        })
        .unwrap_or_default();
    let Some(hc) = dst.get(&c.hc.hc_ref())? else {
        return Ok(Done::Checked(format!(
            "the destination `{}` does not run the hosted cluster{leftovers}",
            c.alias("destination")
        )));
    };
    let from = manifest::annotation(&hc, BACKUP_ID_ANNOTATION)
        .map(|id| format!(" (restored from backup {id})"))
        .unwrap_or_default();
    let why = format!(
        "HostedCluster {}/{} exists on the destination `{}`{from}: returning the source to service would run two \
         control planes on one etcd history (split brain)",
        c.hc.ns,
        c.hc.name,
        c.alias("destination")
    );
    if !force {
        return Err(Error::Conflict(format!(
            "{why}. Abort refused; nothing was changed. Finish the migration (`ferry teardown`), or take the \
             destination's copy out of service first, then re-run; `--force` aborts anyway"
        )));
    }
    if c.plan {
        return Ok(Done::Planned(format!("FORCED: {why}")));
    }
    log::warn(
        "abort forced past a destination that has the hosted cluster",
        &[("why", &why)],
    );
    c.out.insert("forced".into(), json!(why));
    Ok(Done::Checked(format!("FORCED past: {why}")))
}

/// Scales the etcd writers back to the replicas backup recorded.
fn writers(c: &mut Ctx, src: &Cluster, marker: Option<&Marker>) -> Result<Done> {
    let Some(m) = marker.filter(|m| !m.writer_replicas.is_empty()) else {
        return Ok(Done::Already("backup scaled no etcd writer down".into()));
    };
    let mut scaled = Vec::new();
    for (w, want) in &m.writer_replicas {
        let d_ref = r(DEPLOYMENT, Some(&c.hc.hcp_ns), w);
        let Some(d) = src.get(&d_ref)? else {
            log::warn("an etcd writer recorded by backup is gone", &[("deployment", w)]);
            continue;
        };
        let now = d.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(0) as u32;
        if now == *want {
            continue;
        }
        src.scale(&d_ref, *want)?;
        scaled.push(format!("{w} ({now}→{want})"));
    }
    Ok(Done::of_changes(
        &scaled,
        c.plan,
        "the etcd writers run at the replicas backup recorded",
        "scale",
        "scaled",
    ))
}

/// Removes `pausedUntil` from the HostedCluster and its NodePools.
fn unpause(c: &mut Ctx, src: &Cluster) -> Result<Done> {
    let mut targets = vec![c.hc.hc_ref()];
    for np in own_node_pools(&src.list(NODE_POOL.0, NODE_POOL.1, Some(&c.hc.ns), None)?, &c.hc.name) {
        targets.push(r(NODE_POOL, Some(&c.hc.ns), name(np)));
    }
    let mut unpaused = Vec::new();
    for t in targets {
        let Some(o) = src.get(&t)? else {
            continue;
        };
        if str_at(&o, "/spec/pausedUntil").is_none() {
            continue;
        }
        src.merge_patch(&t, &json!({"spec": {"pausedUntil": null}}))?;
        unpaused.push(ferry_sdk::k8s::describe(&t));
    }
    Ok(Done::of_changes(
        &unpaused,
        c.plan,
        "the HostedCluster and its NodePools are not paused",
        "unpause",
        "unpaused",
    ))
}
