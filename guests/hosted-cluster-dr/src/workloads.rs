//! Deployments scaled down for real: a Deployment at 0 replicas still has pods until they
//! terminate (graceful termination can take its `terminationGracePeriodSeconds`), and a
//! writer or controller that still runs can change what the next step relies on.

use ferry_sdk::Result;
use ferry_sdk::k8s::{Cluster, name};
use ferry_sdk::wait::{Check, Wait};
use serde_json::Value;

use crate::ctx::Ctx;
use crate::model::*;

/// The label selector of a Deployment's pods (`spec.selector.matchLabels`).
fn selector(d: &Value) -> Option<String> {
    d.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
}

/// The pods still running (or terminating) for the Deployments `names` of `ns`.
pub fn pods_of(cluster: &Cluster, ns: &str, names: &[&str]) -> Result<Vec<String>> {
    let mut pods = Vec::new();
    for n in names {
        let Some(d) = cluster.get(&r(DEPLOYMENT, Some(ns), n))? else {
            continue;
        };
        let Some(sel) = selector(&d) else {
            continue;
        };
        for p in cluster.list(POD.0, POD.1, Some(ns), Some(&sel))? {
            pods.push(format!("{n}: {}", name(&p)));
        }
    }
    Ok(pods)
}

/// Waits until the Deployments `names` of `ns` have no pod left; returns how many there were.
pub fn wait_pods_gone(c: &Ctx, cluster: &Cluster, ns: &str, names: &[&str], step: &str, why: &str) -> Result<usize> {
    let first = pods_of(cluster, ns, names)?;
    if first.is_empty() || c.plan {
        return Ok(0);
    }
    let what = format!("the pods of {} in {ns} to terminate ({why})", names.join(", "));
    let on_timeout = format!(
        "Pods of {} in {ns} are still there; nothing further was changed. Check why they do not terminate \
         (finalizers, a stuck node), then re-run.",
        names.join(", ")
    );
    Wait {
        step,
        what: &what,
        timeout_seconds: c.p.u64_or("pods_timeout_seconds", 600)?,
        interval_millis: 500,
        on_timeout: &on_timeout,
    }
    .until(|| {
        let left = pods_of(cluster, ns, names)?;
        Ok(if left.is_empty() {
            Check::Done(())
        } else {
            Check::Pending(format!("{} left: {}", left.len(), left.join(", ")))
        })
    })?;
    Ok(first.len())
}
