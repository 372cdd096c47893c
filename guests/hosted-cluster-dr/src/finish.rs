//! `finish` on the hosted cluster: OVN pods, ClusterVersion, nodes, report.

use ferry_sdk::k8s::{Cluster, condition, condition_true, name, str_at};
use ferry_sdk::wait::{Check, Wait};
use ferry_sdk::{Error, Result, log, manifest};
use serde_json::{Value, json};

use crate::ctx::{Ctx, Done};
use crate::model::*;
use crate::restore::{node_counts, wait_nodes};

/// The namespace of the OVN pods in the hosted cluster.
const OVN_NAMESPACE: &str = "openshift-ovn-kubernetes";

/// Runs the finish phase.
pub fn run(args: &[(String, String)]) -> Result<Value> {
    let mut c = Ctx::new("finish", args)?;
    let dst = c.open("destination")?;
    let hosted = c.open("hosted")?;
    let Some(hc) = dst.get(&c.hc.hc_ref())? else {
        let why = format!("HostedCluster {}/{} is not on the destination", c.hc.ns, c.hc.name);
        if c.plan {
            c.step("ovn-pods", |_| {
                Ok(Done::Planned(format!("{why} yet: would finish after restore")))
            })?;
            return Ok(c.summary());
        }
        return Err(Error::NotFound(format!("{why}; run `ferry restore` first")));
    };
    let finished = manifest::annotation(&hc, FINISHED_ANNOTATION).map(str::to_string);
    c.out.insert("finish".into(), json!(true));
    c.step("ovn-pods", |c| match &finished {
        Some(t) => Ok(Done::Already(format!("OVN pods were restarted at {t}"))),
        None => restart_ovn(c, &hosted),
    })?;
    c.step("cluster-version", |c| {
        let cv = hosted.must_get(&r(CLUSTER_VERSION, None, "version"))?;
        let version = str_at(&cv, "/status/desired/version")
            .or_else(|| str_at(&cv, "/status/history/0/version"))
            .unwrap_or("unknown")
            .to_string();
        let conds: Vec<String> = ["Available", "Progressing", "Degraded"]
            .iter()
            .filter_map(|t| {
                condition(&cv, t).map(|x| format!("{t}={}", x.get("status").and_then(Value::as_str).unwrap_or("?")))
            })
            .collect();
        c.out.insert(
            "cluster_version".into(),
            json!({"version": version, "conditions": conds}),
        );
        if !condition_true(&cv, "Available") {
            return Err(Error::Unavailable(format!(
                "ClusterVersion is not Available ({}); check the hosted control plane on the destination",
                conds.join(", ")
            )));
        }
        Ok(Done::Checked(format!("ClusterVersion {version}: {}", conds.join(", "))))
    })?;
    c.step("nodes", |c| wait_nodes(c, &dst, &hosted))?;
    let (ready, expected) = node_counts(&c, &dst, &hosted)?;
    c.out
        .insert("nodes".into(), json!({"ready": ready, "expected": expected}));
    c.step("report", |c| {
        if finished.is_some() {
            return Ok(Done::Already("finished before".into()));
        }
        let now = rfc3339(ferry_sdk::context::now());
        dst.merge_patch(
            &c.hc.hc_ref(),
            &json!({"metadata": {"annotations": {FINISHED_ANNOTATION: now}}}),
        )?;
        if c.plan {
            return Ok(Done::Planned("would record the finish on the HostedCluster".into()));
        }
        Ok(Done::Did(format!(
            "hosted cluster {}/{} runs on `{}`",
            c.hc.ns,
            c.hc.name,
            c.alias("destination")
        )))
    })?;
    Ok(c.summary())
}

/// Deletes the OVN pods (bounded retries) and waits for their replacements.
fn restart_ovn(c: &mut Ctx, hosted: &Cluster) -> Result<Done> {
    let pods = hosted.list(POD.0, POD.1, Some(OVN_NAMESPACE), None)?;
    if pods.is_empty() {
        return Ok(Done::Skipped(format!("no pods in {OVN_NAMESPACE}")));
    }
    let old: Vec<String> = pods.iter().map(|p| name(p).to_string()).collect();
    for p in &old {
        let mut attempt = 0;
        loop {
            match hosted.delete(&r(POD, Some(OVN_NAMESPACE), p)) {
                Ok(_) => break,
                // A refusal (policy or approved plan) is final: trying again changes nothing.
                Err(e @ Error::Denied(_)) => {
                    return Err(ferry_sdk::context(e, format!("deleting pod {OVN_NAMESPACE}/{p}")));
                }
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    log::warn(
                        "deleting an OVN pod failed; retrying",
                        &[("pod", p), ("error", ferry_sdk::message(&e))],
                    );
                    ferry_sdk::context::sleep(3000);
                }
                Err(e) => {
                    return Err(ferry_sdk::context(
                        e,
                        format!("deleting pod {OVN_NAMESPACE}/{p} (6 attempts)"),
                    ));
                }
            }
        }
    }
    if c.plan {
        return Ok(Done::Planned(format!("would delete {} OVN pods", old.len())));
    }
    Wait {
        step: "finish/ovn-pods",
        what: "the OVN pods to be recreated",
        timeout_seconds: 300,
        interval_millis: 1000,
        on_timeout: "Check the ovnkube DaemonSets in the hosted cluster, then re-run `ferry finish`.",
    }
    .until(|| {
        // ovnkube-node is a DaemonSet: one fresh pod per node (a cluster whose
        // nodes are not back yet has none to wait for).
        let now = hosted.list(POD.0, POD.1, Some(OVN_NAMESPACE), None)?;
        let fresh = now.iter().filter(|p| !old.iter().any(|o| o == name(p))).count();
        let nodes = hosted.list(NODE.0, NODE.1, None, None)?.len();
        Ok(if fresh >= nodes.min(old.len()) {
            Check::Done(())
        } else {
            Check::Pending(format!("{fresh}/{} recreated", nodes.min(old.len())))
        })
    })?;
    Ok(Done::Did(format!("deleted {} OVN pods; all recreated", old.len())))
}
