//! `ferry policy rbac` derives Kubernetes RBAC from the Cedar policy. The RBAC is only right if
//! the API server lets through every call the policy let through, and only least privilege if
//! it grants nothing else: here a drill runs a backup that is aborted (the source returned to
//! service) and then a whole migration, and every allowed Kubernetes call of its audit trail
//! (and what the host does for each allowed etcd snapshot) is checked against the RBAC derived
//! from the stock policy and the ownership sets the trail records. Every derived rule must
//! then have been used by one of those calls. The scenario takes the paths a basic one does
//! not: the APIServer published by a LoadBalancer Service (backup releases its hostname
//! annotation), and an etcd StatefulSet a site set to delete its volumes when scaled (teardown
//! sets it to retain them before scaling it down).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::collections::BTreeSet;

use ferry::policy::rbac::{self, DerivedRole};
use ferry::policy::{Action, GuestIdentity, Ownership, PolicyEngine};
use ferry_dr::phases::{Phase, PhaseArgs};
use ferry_sim::hypershift::scenario::Publishing;
use ferry_sim::kube::registry;
use ferry_sim::{Patch, WriteOptions};
use serde_json::{Value, json};

/// One Kubernetes call of the trail.
struct Call {
    cluster: String,
    group: String,
    version: String,
    kind: String,
    ns: Option<String>,
    name: Option<String>,
}

/// `k8s source:hypershift.openshift.io/v1beta1/HostedCluster clusters/demo-one`.
fn k8s_call(text: &str) -> Option<Call> {
    let rest = text.strip_prefix("k8s ")?;
    let (cluster, rest) = rest.split_once(':')?;
    let (gvk, nsname) = rest.split_once(' ')?;
    let (gv, kind) = gvk.rsplit_once('/')?;
    let (group, version) = gv.rsplit_once('/').unwrap_or(("", gv));
    let (ns, name) = nsname.split_once('/')?;
    Some(Call {
        cluster: cluster.into(),
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        ns: (ns != "-").then(|| ns.to_string()),
        name: (name != "*").then(|| name.to_string()),
    })
}

/// One RBAC check the API server makes for a call.
struct Need {
    cluster: String,
    ns: Option<String>,
    group: String,
    resource: String,
    verb: &'static str,
    name: Option<String>,
}

fn covered(
    roles: &[DerivedRole],
    cluster: &str,
    ns: Option<&str>,
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    roles.iter().any(|r| {
        r.cluster == cluster
            && (r.namespace.is_none() || r.namespace.as_deref() == ns)
            && r.allows(group, resource, verb, name)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_derived_rbac_lets_through_every_call_a_migration_makes_and_no_more() {
    let mut scenario = ferry_drill::basic_scenario();
    scenario.hosted_cluster.api_publishing = Publishing::LoadBalancer;
    // Installed as MCE installs it: the operator's webhooks are on, so teardown's grant to keep
    // this cluster out of them is exercised like every other.
    scenario.install.webhooks = true;
    let drill = ferry_tests::dr::drill(scenario, 20.0).await;
    let hcp_ns = drill.env().hcp_namespace();
    drill
        .env()
        .source()
        .sim
        .store()
        .patch(
            &registry::STATEFUL_SET,
            Some(&hcp_ns),
            "etcd",
            &Patch::Merge(json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"}}})),
            &WriteOptions::default(),
        )
        .unwrap();
    // Abort's calls: a finished backup, then the source returned to service.
    let backup = ferry_tests::dr::run(&drill, Phase::Backup).await;
    assert!(backup.succeeded(), "{}", backup.to_text());
    let abort = drill.phase(Phase::Abort, &PhaseArgs::default()).await.unwrap();
    assert!(abort.succeeded(), "{}", abort.to_text());
    let report = drill.migrate().await;
    assert!(report.succeeded(), "{}", report.message());
    let trail = std::fs::read_to_string(drill.audit_path()).unwrap();
    let records: Vec<Value> = trail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();

    // The policy as the runs had it: the stock policy, the site's parameters, and every
    // ownership set the phases were given.
    let mut ownership = Ownership::default();
    for r in records.iter().filter(|r| r["kind"] == "ownership") {
        let set: Ownership = serde_json::from_str(r["message"].as_str().unwrap()).unwrap();
        ownership.owner = set.owner;
        ownership.objects.extend(set.objects);
    }
    assert!(!ownership.is_empty(), "the trail records no ownership set");
    let guest = GuestIdentity {
        name: ferry_dr::stock::GUEST_NAME.into(),
        sha256: String::new(),
    };
    let engine = PolicyEngine::from_source(
        ferry_dr::stock::policy_text(),
        ferry_dr::stock::POLICY_ORIGIN,
        &drill.run_config().params,
        &guest,
    )
    .unwrap()
    .with_ownership(ownership);
    let roles = rbac::derive(&engine);

    let mut checked = BTreeSet::new();
    let mut missing = Vec::new();
    let mut needs_seen: Vec<Need> = Vec::new();
    for r in records.iter().filter(|r| r["decision"] == "allow") {
        let (action, resource) = (r["action"].as_str().unwrap(), r["resource"].as_str().unwrap());
        if !checked.insert((action.to_string(), resource.to_string())) {
            continue;
        }
        let needs: Vec<Need> = match Action::from_name(action) {
            Some(Action::EtcdSnapshot | Action::EtcdMemberStatus) => {
                // `etcd source:clusters-demo-one/etcd-0`: the host reads the pod and forwards to
                // it, for a snapshot as for a member's status.
                let (cluster, rest) = resource.strip_prefix("etcd ").unwrap().split_once(':').unwrap();
                let (ns, pod) = rest.split_once('/').unwrap();
                [("pods", "get"), ("pods/portforward", "create")]
                    .into_iter()
                    .map(|(res, verb)| Need {
                        cluster: cluster.into(),
                        ns: Some(ns.into()),
                        group: String::new(),
                        resource: res.into(),
                        verb,
                        name: Some(pod.into()),
                    })
                    .collect()
            }
            Some(a) if action.starts_with("k8s:") && a != Action::K8sOpen => {
                let c = k8s_call(resource).unwrap_or_else(|| panic!("unreadable resource {resource}"));
                let plural = rbac::plural(&c.group, &c.version, &c.kind);
                rbac::verbs_of(a)
                    .iter()
                    .map(|(sub, verb)| Need {
                        cluster: c.cluster.clone(),
                        ns: c.ns.clone(),
                        group: c.group.clone(),
                        resource: if sub.is_empty() {
                            plural.clone()
                        } else {
                            format!("{plural}/{sub}")
                        },
                        verb,
                        name: if *verb == "create" || a == Action::K8sList {
                            None
                        } else {
                            c.name.clone()
                        },
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        for n in needs {
            if !covered(
                &roles,
                &n.cluster,
                n.ns.as_deref(),
                &n.group,
                &n.resource,
                n.verb,
                n.name.as_deref(),
            ) {
                missing.push(format!(
                    "{action} {resource}: {} {}/{} {:?} in {}/{:?}",
                    n.verb, n.group, n.resource, n.name, n.cluster, n.ns
                ));
            }
            needs_seen.push(n);
        }
    }
    assert!(
        checked.len() > 50,
        "too few allowed calls in the trail: {}",
        checked.len()
    );
    assert!(
        missing.is_empty(),
        "calls the derived RBAC would refuse:\n{}",
        missing.join("\n")
    );

    // Least privilege: every verb of every derived rule let through one of those calls (a
    // Role's in its namespace, a ClusterRole's anywhere; a rule listing names, for one of them:
    // the etcd members are alternatives, one healthy member is snapshotted).
    let mut unused = Vec::new();
    for role in &roles {
        for rule in &role.rules {
            for verb in &rule.verbs {
                let one = DerivedRole {
                    cluster: role.cluster.clone(),
                    namespace: role.namespace.clone(),
                    rules: vec![rbac::Rule {
                        verbs: vec![verb.clone()],
                        ..rule.clone()
                    }],
                };
                let used = needs_seen.iter().any(|n| {
                    covered(
                        std::slice::from_ref(&one),
                        &n.cluster,
                        n.ns.as_deref(),
                        &n.group,
                        &n.resource,
                        n.verb,
                        n.name.as_deref(),
                    )
                });
                if !used {
                    unused.push(format!(
                        "{} {}: {verb} {}/{} {:?}",
                        role.cluster,
                        role.namespace.as_deref().unwrap_or("(cluster-wide)"),
                        rule.api_groups.join(","),
                        rule.resources.join(","),
                        rule.resource_names
                    ));
                }
            }
        }
    }
    assert!(
        unused.is_empty(),
        "{} derived grants no call of the backup, abort and migration used:\n{}",
        unused.len(),
        unused.join("\n")
    );
    drill.shutdown().await;
}
