//! How a control plane is published in DNS, and how ferry watches it move: the public
//! hostnames a control-plane namespace hands to external-dns (Routes, and LoadBalancer
//! Services with the external-dns hostname annotation, as the CPO's `kas.ReconcileService`
//! sets for `LoadBalancer` publishing), the TXT owner id each management cluster's
//! external-dns writes, and waits on Route53.

use ferry_sdk::k8s::{Cluster, name, str_at};
use ferry_sdk::wait::{Check, Wait};
use ferry_sdk::{Result, dns};
use std::collections::BTreeMap;

use serde_json::Value;

use crate::ctx::Ctx;
use crate::hold::Hold;
use crate::model::*;

/// The annotation external-dns's service source reads.
pub const HOSTNAME_ANNOTATION: &str = "external-dns.alpha.kubernetes.io/hostname";

/// The label HyperShift's external-dns filters out (`--label-filter=...!=private`).
pub const ROUTE_VISIBILITY_LABEL: &str = "hypershift.openshift.io/route-visibility";

/// A Service that carries a public hostname to external-dns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedService {
    /// Its name.
    pub name: String,
    /// The hostnames of its annotation.
    pub hosts: Vec<String>,
    /// What external-dns points them at (`source/service.go`): the load balancer's first
    /// address, or an ExternalName's name; `None` while it has none.
    pub address: Option<String>,
}

fn private(obj: &Value) -> bool {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(ROUTE_VISIBILITY_LABEL))
        .and_then(Value::as_str)
        == Some("private")
}

fn normalize(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The Services of `ns` whose hostname annotation external-dns publishes.
pub fn published_services(cluster: &Cluster, ns: &str) -> Result<Vec<PublishedService>> {
    Ok(cluster
        .list(SERVICE.0, SERVICE.1, Some(ns), None)?
        .iter()
        .filter_map(published_services_of)
        .collect())
}

/// `svc` as external-dns's service source sees it, if it publishes a hostname.
fn published_services_of(svc: &Value) -> Option<PublishedService> {
    if private(svc) {
        return None;
    }
    let hosts: Vec<String> = svc
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(HOSTNAME_ANNOTATION))?
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(normalize)
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        return None;
    }
    let address = match str_at(svc, "/spec/type") {
        Some("ExternalName") => str_at(svc, "/spec/externalName").map(normalize),
        _ => svc
            .pointer("/status/loadBalancer/ingress")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|i| str_at(i, "/hostname").or(str_at(i, "/ip")))
            .map(normalize),
    }
    .filter(|a| !a.is_empty());
    Some(PublishedService {
        name: name(svc).to_string(),
        hosts,
        address,
    })
}

/// Every public hostname of `ns` under `domain` (Routes not labelled private, and annotated
/// Services), sorted.
pub fn public_hosts(cluster: &Cluster, ns: &str, domain: &str) -> Result<Vec<String>> {
    let domain = normalize(domain);
    let mut hosts: Vec<String> = cluster
        .list(ROUTE.0, ROUTE.1, Some(ns), None)?
        .iter()
        .filter(|r| !private(r))
        .filter_map(|r| str_at(r, "/spec/host").map(normalize))
        .collect();
    for s in published_services(cluster, ns)? {
        hosts.extend(s.hosts);
    }
    hosts.retain(|h| *h == domain || h.ends_with(&format!(".{domain}")));
    hosts.sort();
    hosts.dedup();
    Ok(hosts)
}

/// The public hostnames of `ns` under `domain` that external-dns can publish now, each with
/// the address it publishes it at: Routes the router admitted (`status.ingress[]` with
/// `Admitted=True`: its `routerCanonicalHostname`, as external-dns's `source/ocproute.go`
/// `getTargetsFromRouteStatus` reads it) and annotated Services whose load balancer has an
/// address (`source/service.go`). Hosts are normal form (lower case, no trailing dot).
/// A Route admitted without a canonical hostname gives external-dns no target: not ready.
pub fn ready_targets(cluster: &Cluster, ns: &str, domain: &str) -> Result<BTreeMap<String, String>> {
    let domain = normalize(domain);
    let under = |h: &str| h == domain || h.ends_with(&format!(".{domain}"));
    let mut out = BTreeMap::new();
    for route in cluster.list(ROUTE.0, ROUTE.1, Some(ns), None)? {
        if private(&route) {
            continue;
        }
        let admitted = route
            .pointer("/status/ingress")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|i| {
                i.get("conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        c.get("type").and_then(Value::as_str) == Some("Admitted")
                            && c.get("status").and_then(Value::as_str) == Some("True")
                    })
            });
        if let (Some(h), Some(ingress)) = (str_at(&route, "/spec/host").map(normalize), admitted) {
            // Without a canonical hostname external-dns has no target, and publishes nothing.
            if let Some(target) = ingress
                .get("routerCanonicalHostname")
                .and_then(Value::as_str)
                .map(normalize)
                .filter(|t| !t.is_empty())
            {
                out.insert(h, target);
            }
        }
    }
    for svc in published_services(cluster, ns)? {
        if let Some(target) = svc.address {
            for h in svc.hosts {
                out.entry(h).or_insert_with(|| target.clone());
            }
        }
    }
    out.retain(|h, _| under(h));
    Ok(out)
}

/// The public hostnames of `ns` under `domain` that external-dns can publish now
/// ([`ready_targets`]), sorted.
pub fn ready_hosts(cluster: &Cluster, ns: &str, domain: &str) -> Result<Vec<String>> {
    Ok(ready_targets(cluster, ns, domain)?.into_keys().collect())
}

/// external-dns as a management cluster runs it (`hypershift/external-dns`, its arguments as
/// `hypershift install` writes them): who owns the records of the control planes it runs, how
/// often it syncs, how long its cache keeps the zone, and which pods are its process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalDns {
    /// `--txt-owner-id`.
    pub owner: String,
    /// `--interval`, seconds (default 60).
    pub interval_secs: u64,
    /// `--txt-cache-interval`, seconds (0: no cache).
    pub cache_secs: u64,
    /// Its pods' label selector (`spec.selector.matchLabels`).
    pub selector: String,
}

/// What a new external-dns pod needs before its first sync: scheduling, image, informers.
pub const EXTERNAL_DNS_STARTUP_SECS: u64 = 60;

impl ExternalDns {
    /// How long it may take to act on a change once its process runs: a new process syncs at
    /// once, a running one within an interval; twice that, plus a start, bounds it.
    pub fn act_within_secs(&self) -> u64 {
        EXTERNAL_DNS_STARTUP_SECS + 2 * self.interval_secs
    }
}

/// A Go duration as flags carry it (`1m`, `1h`, `90s`, `1m30s`), in whole seconds.
pub fn go_duration_secs(s: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest == "0" {
        return Some(0);
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest.get(..digits)?.parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        total += n * match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        rest = &rest[unit_len..];
    }
    Some(total.ceil() as u64)
}

/// The external-dns of a management cluster, `None` without one.
pub fn external_dns(cluster: &Cluster) -> Result<Option<ExternalDns>> {
    let Some(d) = cluster.get(&r(DEPLOYMENT, Some(EXTERNAL_DNS.0), EXTERNAL_DNS.1))? else {
        return Ok(None);
    };
    let args: Vec<&str> = d
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| c.get("args").and_then(Value::as_array).into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let flag = |name: &str| args.iter().rev().find_map(|a| a.strip_prefix(&format!("--{name}=")));
    let Some(owner) = flag("txt-owner-id") else {
        return Ok(None);
    };
    let selector = d
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Ok(Some(ExternalDns {
        owner: owner.to_string(),
        interval_secs: flag("interval").and_then(go_duration_secs).unwrap_or(60),
        cache_secs: flag("txt-cache-interval").and_then(go_duration_secs).unwrap_or(0),
        selector,
    }))
}

/// The `--txt-owner-id` of a management cluster's external-dns: who owns the records of the
/// control planes it runs. `None` without one.
pub fn owner_id(cluster: &Cluster) -> Result<Option<String>> {
    Ok(external_dns(cluster)?.map(|e| e.owner))
}

/// The restart of `p`'s external-dns, as a [`Hold`] noted on its Deployment.
fn restart_hold<'a>(p: &'a Publisher, step: &'a str) -> Hold<'a> {
    Hold {
        cluster: p.cluster,
        deployment: r(DEPLOYMENT, Some(EXTERNAL_DNS.0), EXTERNAL_DNS.1),
        what: format!("external-dns on `{}`", p.alias),
        replicas_annotation: EXTERNAL_DNS_REPLICAS_ANNOTATION,
        holders_annotation: EXTERNAL_DNS_HOLDERS_ANNOTATION,
        step,
        why: "a new process starts with an empty cache",
    }
}

/// Finishes a restart a killed run left half done: each of `publishers` whose external-dns
/// still carries this run's note is scaled back to its noted replicas and the note removed
/// (nothing happens where there is no note).
pub fn finish_restarts(c: &mut Ctx, publishers: &[&Publisher], step: &str) -> Result<()> {
    for p in publishers {
        restart_hold(p, step).start(c)?;
    }
    Ok(())
}

/// Restarts a management cluster's external-dns so that a fresh process, with an empty cache,
/// reads the zone whole and syncs at once (its TXT cache lives in memory only): its
/// Deployment is scaled to zero and back, noted first ([`Hold`]) so that a crash in between
/// still knows its replicas and a fleet's restarts of the same one do not undo each other.
/// Unlike a rollout restart nothing of its pod template changes, and unlike deleting its pods
/// the grant names one Deployment. Waits until a new pod runs.
pub fn restart_external_dns(c: &mut Ctx, p: &Publisher, step: &str) -> Result<()> {
    let hold = restart_hold(p, step);
    hold.stop(c)?;
    hold.start(c)?;
    if c.plan {
        return Ok(());
    }
    let what = format!("external-dns on `{}` to run again", p.alias);
    Wait {
        step,
        what: &what,
        timeout_seconds: dns_bound(c, &p.ed)?,
        interval_millis: 250,
        on_timeout: "Check the Deployment hypershift/external-dns and its pods, then re-run.",
    }
    .until(|| {
        let pods = p
            .cluster
            .list(POD.0, POD.1, Some(EXTERNAL_DNS.0), Some(&p.ed.selector))?;
        let ready = pods.iter().any(|pod| {
            pod.pointer("/metadata/deletionTimestamp").is_none() && ferry_sdk::k8s::condition_true(pod, "Ready")
        });
        Ok(if ready {
            Check::Done(())
        } else {
            Check::Pending(format!("{} pods, none Ready", pods.len()))
        })
    })
}

/// Releases a control plane's DNS on `cluster`: deletes its public Routes and removes the
/// external-dns hostname annotation of its published Services (`LoadBalancer` publishing), so
/// that its external-dns drops their records; the paused control-plane operator puts neither
/// back. Returns what it released.
pub fn release(cluster: &Cluster, ns: &str) -> Result<Vec<String>> {
    let mut released = Vec::new();
    for route in cluster.list(ROUTE.0, ROUTE.1, Some(ns), None)? {
        cluster.delete(&r(ROUTE, Some(ns), name(&route)))?;
        released.push(format!("Route {}", name(&route)));
    }
    for svc in published_services(cluster, ns)? {
        cluster.merge_patch(
            &r(SERVICE, Some(ns), &svc.name),
            &serde_json::json!({"metadata": {"annotations": {HOSTNAME_ANNOTATION: null}}}),
        )?;
        released.push(format!("Service {} ({})", svc.name, svc.hosts.join(", ")));
    }
    Ok(released)
}

/// Which of `hosts` are not yet published by `owner` at the address `targets` gives for them
/// (hosts it has no entry for are not checked for their address): no A/CNAME record, one
/// pointing elsewhere, or an ownership TXT record naming someone else.
pub fn not_moved(
    records: &[dns::RecordSet],
    hosts: &[String],
    suffix: &str,
    owner: &str,
    targets: &BTreeMap<String, String>,
) -> Vec<String> {
    let owned_by = |txt: &str| {
        records
            .iter()
            .filter(|rs| rs.name == txt && rs.record_type == "TXT")
            .any(|rs| {
                rs.values.iter().any(|v| {
                    v.contains(&format!("external-dns/owner={owner},"))
                        || v.trim_matches('"').ends_with(&format!("external-dns/owner={owner}"))
                })
            })
    };
    hosts
        .iter()
        .map(|h| normalize(h))
        .filter(|h| {
            let has_target = records.iter().any(|rs| {
                rs.name == *h
                    && (rs.record_type == "CNAME" || rs.record_type == "A")
                    && targets
                        .get(h)
                        .is_none_or(|t| rs.values.iter().any(|v| normalize(v) == *t))
            });
            let [txt, ..] = txt_names(h, suffix);
            !(has_target && owned_by(&txt))
        })
        .collect()
}

/// How long a DNS wait may take with `ed` doing the work: the `dns_timeout_seconds` parameter
/// when given, else what `ed` is configured to need ([`ExternalDns::act_within_secs`]).
pub fn dns_bound(c: &Ctx, ed: &ExternalDns) -> Result<u64> {
    match c.p.get("dns_timeout_seconds") {
        Some(_) => c.p.u64_or("dns_timeout_seconds", ed.act_within_secs()),
        None => Ok(ed.act_within_secs()),
    }
}

/// Waits until Route53 publishes every host with `to`'s external-dns as owner, at the address
/// `to`'s control plane publishes it at (`targets`, from [`ready_targets`]): only then do nodes and clients
/// reach that control plane. Returns how many hosts were not published at first.
#[allow(clippy::too_many_arguments)]
pub fn wait_moved(
    c: &Ctx,
    step: &str,
    zone: &dns::Zone,
    domain: &str,
    hosts: &[String],
    to: &Publisher,
    targets: &BTreeMap<String, String>,
    on_timeout: &str,
) -> Result<usize> {
    let suffix = c.p.or("txt_suffix", "-external-dns").to_string();
    let ed = &to.ed;
    let owner = ed.owner.clone();
    let pending = || -> Result<Vec<String>> {
        let records = ferry_sdk::k8s::retry(|| zone.list_record_sets(Some(domain)))?;
        Ok(not_moved(&records, hosts, &suffix, &owner, targets))
    };
    let first = pending()?.len();
    if first == 0 {
        return Ok(0);
    }
    let what = format!(
        "Route53 zone {} to publish {} with owner {owner}",
        zone.id(),
        hosts.join(", ")
    );
    Wait {
        step,
        what: &what,
        timeout_seconds: dns_bound(c, ed)?,
        interval_millis: 250,
        on_timeout,
    }
    .until(|| {
        let left = pending()?;
        Ok(if left.is_empty() {
            Check::Done(())
        } else {
            Check::Pending(format!("not yet: {}", left.join(", ")))
        })
    })?;
    Ok(first)
}

/// A management cluster's external-dns, as one side of a DNS cut-over.
pub struct Publisher<'a> {
    /// The management cluster.
    pub cluster: &'a Cluster,
    /// Its external-dns.
    pub ed: ExternalDns,
    /// Its alias, for messages.
    pub alias: String,
}

/// The records of `hosts` (their addresses and ownership TXT records) that name an owner
/// other than `owner`: while one is left, `owner`'s external-dns creates nothing there.
pub fn foreign_records(records: &[dns::RecordSet], hosts: &[String], suffix: &str, owner: &str) -> Vec<String> {
    let theirs = |v: &str| v.contains("external-dns/owner=") && !owned_by_value(v, owner);
    let mut names = std::collections::BTreeSet::new();
    for h in hosts {
        let h = normalize(h);
        if txt_names(&h, suffix).iter().any(|txt| {
            records
                .iter()
                .any(|rs| rs.name == *txt && rs.record_type == "TXT" && rs.values.iter().any(|v| theirs(v)))
        }) {
            names.insert(h);
        }
    }
    names.into_iter().collect()
}

/// The ownership TXT record names external-dns gives `host` (normal form): the legacy one
/// (`suffix` after the first label) first, then the newer ones with the record type in front
/// (`registry/txt.go` `toTXTName`/`toNewTXTName`).
fn txt_names(host: &str, suffix: &str) -> [String; 3] {
    let legacy = match host.split_once('.') {
        Some((first, rest)) => format!("{first}{suffix}.{rest}"),
        None => format!("{host}{suffix}"),
    };
    let (cname, a) = (format!("cname-{legacy}"), format!("a-{legacy}"));
    [legacy, cname, a]
}

fn owned_by_value(v: &str, owner: &str) -> bool {
    v.contains(&format!("external-dns/owner={owner},"))
        || v.trim_matches('"').ends_with(&format!("external-dns/owner={owner}"))
}

/// Hands the records of `hosts` that `from` owns over to `to`, as external-dns's own
/// `--migrate-from-txt-owner` does (`registry/txt/registry.go`, `Records` and
/// `generateTXTRecord`: an endpoint of the old owner is relabelled with the new one): every
/// ownership TXT record of theirs naming `from` is rewritten to name `to`, in one Route53 batch
/// (atomic). The address records stay as they are, so the names never stop resolving; `to`'s
/// external-dns, restarted next, finds them its own and points them at its control plane.
/// Returns the TXT records rewritten; `Denied` when the policy does not grant it.
pub fn hand_over(
    zone: &dns::Zone,
    records: &[dns::RecordSet],
    hosts: &[String],
    suffix: &str,
    from: &str,
    to: &str,
) -> Result<Vec<String>> {
    let names: std::collections::BTreeSet<String> =
        hosts.iter().flat_map(|h| txt_names(&normalize(h), suffix)).collect();
    let mut changes = Vec::new();
    for rs in records
        .iter()
        .filter(|rs| rs.record_type == "TXT" && names.contains(&rs.name))
        .filter(|rs| rs.values.iter().any(|v| owned_by_value(v, from)))
    {
        let values = rs.values.iter().map(|v| with_owner(v, from, to)).collect();
        changes.push(dns::Change {
            action: dns::ChangeAction::Upsert,
            record_set: dns::RecordSet {
                name: rs.name.clone(),
                record_type: rs.record_type.clone(),
                ttl: rs.ttl,
                values,
            },
        });
    }
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let rewritten = changes.iter().map(|c| c.record_set.name.clone()).collect();
    zone.change_record_sets(&changes)?;
    Ok(rewritten)
}

/// An ownership TXT value with owner `from` rewritten to `to` (any other value as it is): the
/// label is `external-dns/owner=<id>`, followed by `,` or by the value's end.
pub fn with_owner(value: &str, from: &str, to: &str) -> String {
    if !owned_by_value(value, from) {
        return value.to_string();
    }
    let old = format!("external-dns/owner={from}");
    let new = format!("external-dns/owner={to}");
    let quoted = value.starts_with('"') && value.ends_with('"') && value.len() >= 2;
    let inner = if quoted { &value[1..value.len() - 1] } else { value };
    let rewritten = inner
        .split(',')
        .map(|label| if label == old { new.as_str() } else { label })
        .collect::<Vec<_>>()
        .join(",");
    if quoted { format!("\"{rewritten}\"") } else { rewritten }
}

/// Moves the publishing of `hosts` to `to` so that no name stops resolving on the way. A
/// resolver that asks while a name has no record keeps that NXDOMAIN for the zone's negative
/// TTL (Route53's SOA: 900 s), and the nodes with it: deleting the source's records and
/// creating the destination's, however quickly, is a gamble on every resolver's cache.
///
/// `from`'s external-dns (when given) is stopped first ([`Hold`], noted), then `release`
/// takes `from`'s objects back; the records `from` owns are handed over to `to`
/// ([`hand_over`]); `to`'s external-dns is restarted (its TXT cache,
/// `--txt-cache-interval`, still lists the old owner) and its fresh process points the
/// records it now owns at its control plane; `from`'s starts again and finds them someone
/// else's. Where the policy does not grant the handover, the records go the way upstream
/// documents: `from`'s restarted external-dns drops them, `to`'s creates them. Each wait is
/// bounded by what that external-dns is configured to need ([`dns_bound`]). Returns how many
/// hosts were not published by `to` at first, and what `release` released.
#[allow(clippy::too_many_arguments)]
pub fn cut_over(
    c: &mut Ctx,
    step: &str,
    zone: &dns::Zone,
    domain: &str,
    hosts: &[String],
    from: Option<&Publisher>,
    to: &Publisher,
    release: &dyn Fn() -> Result<Vec<String>>,
    on_timeout: &str,
) -> Result<(usize, Vec<String>)> {
    let suffix = c.p.or("txt_suffix", "-external-dns").to_string();
    let records = || ferry_sdk::k8s::retry(|| zone.list_record_sets(Some(domain)));
    let targets = ready_targets(to.cluster, &c.hc.hcp_ns, domain)?;
    let first = not_moved(&records()?, hosts, &suffix, &to.ed.owner, &targets).len();
    if first == 0 {
        let publishers: Vec<&Publisher> = from.into_iter().chain([to]).collect();
        finish_restarts(c, &publishers, step)?;
        return Ok((0, Vec::new()));
    }
    if let Some(from) = from {
        // Stopped before the release: a sync in between would delete the released records.
        restart_hold(from, step).stop(c)?;
    }
    let released = release()?;
    let listed = records()?;
    let foreign = foreign_records(&listed, hosts, &suffix, &to.ed.owner);
    if !foreign.is_empty() {
        let handed = match from {
            Some(from) => match hand_over(zone, &listed, hosts, &suffix, &from.ed.owner, &to.ed.owner) {
                Ok(rewritten) => {
                    ferry_sdk::log::info(
                        &format!(
                            "handed {} over from owner {} to {}: the names keep resolving",
                            if rewritten.is_empty() {
                                "nothing".to_string()
                            } else {
                                rewritten.join(", ")
                            },
                            from.ed.owner,
                            to.ed.owner
                        ),
                        &[("step", step)],
                    );
                    true
                }
                Err(ferry_sdk::Error::Denied(why)) => {
                    ferry_sdk::log::warn(
                        &format!(
                            "the policy does not let ferry hand the records over ({why}); the source's external-dns \
                             drops them and the destination's creates them: a resolver that asks in between keeps \
                             the NXDOMAIN for the zone's negative TTL"
                        ),
                        &[("step", step)],
                    );
                    false
                }
                Err(e) => return Err(e),
            },
            None => false,
        };
        let left = foreign_records(&records()?, hosts, &suffix, &to.ed.owner);
        if !(handed && left.is_empty()) {
            wait_released(c, step, zone, &records, hosts, &suffix, from, to, on_timeout)?;
        }
    }
    restart_external_dns(c, to, step)?;
    ferry_sdk::log::info(
        &format!(
            "restarted external-dns on `{}`: a fresh process reads the zone and publishes at once",
            to.alias
        ),
        &[("step", step)],
    );
    if let Some(from) = from {
        restart_hold(from, step).start(c)?;
    }
    if c.plan {
        return Ok((first, released));
    }
    wait_moved(c, step, zone, domain, hosts, to, &targets, on_timeout)?;
    Ok((first, released))
}

/// Waits until no record of `hosts` names an owner other than `to`'s: `from`'s external-dns
/// (started again, a fresh process) drops what it owns at its first sync.
#[allow(clippy::too_many_arguments)]
fn wait_released(
    c: &mut Ctx,
    step: &str,
    zone: &dns::Zone,
    records: &dyn Fn() -> Result<Vec<dns::RecordSet>>,
    hosts: &[String],
    suffix: &str,
    from: Option<&Publisher>,
    to: &Publisher,
    on_timeout: &str,
) -> Result<()> {
    let bound = match from {
        Some(from) => {
            restart_hold(from, step).start(c)?;
            ferry_sdk::log::info(
                &format!(
                    "started external-dns on `{}` again so that it drops the released records at once",
                    from.alias
                ),
                &[("step", step)],
            );
            dns_bound(c, &from.ed)?
        }
        None => dns_bound(c, &to.ed)?,
    };
    if c.plan {
        return Ok(());
    }
    let foreign = foreign_records(&records()?, hosts, suffix, &to.ed.owner);
    let what = format!(
        "Route53 zone {} to drop the records of {} that another owner holds",
        zone.id(),
        foreign.join(", ")
    );
    let advice = format!(
        "{on_timeout} Records another external-dns owns are never taken over: find their owner in the TXT \
         records (`external-dns/owner=`) of zone {}",
        zone.id()
    );
    Wait {
        step,
        what: &what,
        timeout_seconds: bound,
        interval_millis: 250,
        on_timeout: &advice,
    }
    .until(|| {
        let left = foreign_records(&records()?, hosts, suffix, &to.ed.owner);
        Ok(if left.is_empty() {
            Check::Done(())
        } else {
            Check::Pending(format!("still owned elsewhere: {}", left.join(", ")))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, t: &str, v: &str) -> dns::RecordSet {
        dns::RecordSet {
            name: name.into(),
            record_type: t.into(),
            ttl: Some(60),
            values: vec![v.into()],
        }
    }

    #[test]
    fn only_other_owners_records_are_foreign() {
        let txt =
            |o: &str| format!("\"heritage=external-dns,external-dns/owner={o},external-dns/resource=route/ns/r\"");
        let hosts = vec!["api-demo.example.com".to_string(), "oauth-demo.example.com".to_string()];
        let records = vec![
            rs("api-demo.example.com", "CNAME", "router-src"),
            rs("api-demo-external-dns.example.com", "TXT", &txt("src")),
            rs("cname-oauth-demo-external-dns.example.com", "TXT", &txt("dst")),
            rs("api-other-external-dns.example.com", "TXT", &txt("src")),
        ];
        assert_eq!(
            foreign_records(&records, &hosts, "-external-dns", "dst"),
            ["api-demo.example.com"]
        );
        assert_eq!(
            foreign_records(&records, &hosts, "-external-dns", "src"),
            ["oauth-demo.example.com"]
        );
        // An owner id that merely starts with another's is someone else: `src`'s records
        // are foreign to `sr`, and so are `dst`'s.
        assert_eq!(
            foreign_records(&records, &hosts, "-external-dns", "sr"),
            ["api-demo.example.com", "oauth-demo.example.com"]
        );
    }

    #[test]
    fn go_durations_as_flags_carry_them() {
        assert_eq!(go_duration_secs("1m"), Some(60));
        assert_eq!(go_duration_secs("1h"), Some(3600));
        assert_eq!(go_duration_secs("1m30s"), Some(90));
        assert_eq!(go_duration_secs("0"), Some(0));
        assert_eq!(go_duration_secs("500ms"), Some(1));
        assert_eq!(go_duration_secs("soon"), None);
    }

    #[test]
    fn a_host_moved_when_its_record_and_owner_are_the_destinations() {
        let txt =
            |o: &str| format!("\"heritage=external-dns,external-dns/owner={o},external-dns/resource=route/ns/r\"");
        let hosts = vec!["api-demo.example.com".to_string()];
        let src = vec![
            rs("api-demo.example.com", "CNAME", "router-src"),
            rs("api-demo-external-dns.example.com", "TXT", &txt("src")),
        ];
        assert_eq!(not_moved(&src, &hosts, "-external-dns", "dst", &BTreeMap::new()), hosts);
        let dst = vec![
            rs("api-demo.example.com", "CNAME", "router-dst"),
            rs("api-demo-external-dns.example.com", "TXT", &txt("dst")),
        ];
        assert!(not_moved(&dst, &hosts, "-external-dns", "dst", &BTreeMap::new()).is_empty());
        // An owner id that merely starts with the destination's is someone else.
        let longer = vec![
            rs("api-demo.example.com", "CNAME", "router-dst"),
            rs("api-demo-external-dns.example.com", "TXT", &txt("dst-2")),
        ];
        assert_eq!(
            not_moved(&longer, &hosts, "-external-dns", "dst", &BTreeMap::new()),
            hosts
        );
        assert_eq!(not_moved(&[], &hosts, "-external-dns", "dst", &BTreeMap::new()), hosts);
    }

    #[test]
    fn a_handed_over_record_moved_only_once_it_points_at_the_destination() {
        let txt =
            |o: &str| format!("\"heritage=external-dns,external-dns/owner={o},external-dns/resource=route/ns/r\"");
        let hosts = vec!["api-demo.example.com".to_string()];
        let targets: BTreeMap<String, String> = [("api-demo.example.com".to_string(), "router-dst".to_string())].into();
        // Owned by the destination, still pointing at the source's router.
        let handed = vec![
            rs("api-demo.example.com", "CNAME", "router-src"),
            rs("api-demo-external-dns.example.com", "TXT", &txt("dst")),
        ];
        assert_eq!(not_moved(&handed, &hosts, "-external-dns", "dst", &targets), hosts);
        let moved = vec![
            rs("api-demo.example.com", "CNAME", "Router-Dst."),
            rs("api-demo-external-dns.example.com", "TXT", &txt("dst")),
        ];
        assert!(not_moved(&moved, &hosts, "-external-dns", "dst", &targets).is_empty());
    }

    #[test]
    fn only_the_owner_label_of_the_old_owner_is_rewritten() {
        let v = "\"heritage=external-dns,external-dns/owner=src,external-dns/resource=route/ns/r\"";
        assert_eq!(
            with_owner(v, "src", "dst"),
            "\"heritage=external-dns,external-dns/owner=dst,external-dns/resource=route/ns/r\""
        );
        // At the end of the value, and a longer owner id left alone.
        assert_eq!(
            with_owner("\"heritage=external-dns,external-dns/owner=src\"", "src", "dst"),
            "\"heritage=external-dns,external-dns/owner=dst\""
        );
        let other = "\"heritage=external-dns,external-dns/owner=src-2,external-dns/resource=route/ns/r\"";
        assert_eq!(with_owner(other, "src", "dst"), other);
    }
}
