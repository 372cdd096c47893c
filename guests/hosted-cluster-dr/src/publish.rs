//! How a control plane is published in DNS, and how ferry watches it move: the public
//! hostnames a control-plane namespace hands to external-dns (Routes, and LoadBalancer
//! Services with the external-dns hostname annotation, as the CPO's `kas.ReconcileService`
//! sets for `LoadBalancer` publishing), the TXT owner id each management cluster's
//! external-dns writes, and waits on Route53.

use ferry_sdk::k8s::{Cluster, name, str_at};
use ferry_sdk::wait::{Check, Wait};
use ferry_sdk::{Result, dns};
use serde_json::Value;

use crate::ctx::Ctx;
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
    let mut out = Vec::new();
    for svc in cluster.list(SERVICE.0, SERVICE.1, Some(ns), None)? {
        if private(&svc) {
            continue;
        }
        let Some(hosts) = svc
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(HOSTNAME_ANNOTATION))
        else {
            continue;
        };
        let hosts: Vec<String> = hosts
            .as_str()
            .unwrap_or_default()
            .split(',')
            .map(normalize)
            .filter(|h| !h.is_empty())
            .collect();
        if !hosts.is_empty() {
            out.push(PublishedService {
                name: name(&svc).to_string(),
                hosts,
            });
        }
    }
    Ok(out)
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

/// The `--txt-owner-id` of a management cluster's external-dns (`hypershift/external-dns`):
/// who owns the records of the control planes it runs. `None` without one.
pub fn owner_id(cluster: &Cluster) -> Result<Option<String>> {
    let Some(d) = cluster.get(&r(DEPLOYMENT, Some("hypershift"), "external-dns"))? else {
        return Ok(None);
    };
    Ok(d.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| c.get("args").and_then(Value::as_array).into_iter().flatten())
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("--txt-owner-id="))
        .map(str::to_string))
}

/// The records of this hosted cluster in the zone: its hosts, their ownership TXT records
/// (`<label><suffix>.<rest>`, and the `a-`/`cname-` prefixed ones newer external-dns writes),
/// and any TXT that names one of its Routes or Services. Other hosted clusters' records in the
/// same zone never count.
pub fn own_records(records: &[dns::RecordSet], hosts: &[String], suffix: &str, hcp_ns: &str) -> Vec<String> {
    let mut names = Vec::new();
    for h in hosts {
        let h = normalize(h);
        names.push(h.clone());
        if let Some((first, rest)) = h.split_once('.') {
            names.push(format!("{first}{suffix}.{rest}"));
            for p in ["a-", "cname-"] {
                names.push(format!("{p}{first}{suffix}.{rest}"));
                names.push(format!("{p}{first}.{rest}"));
            }
        }
    }
    let markers = [
        format!("external-dns/resource=route/{hcp_ns}/"),
        format!("external-dns/resource=service/{hcp_ns}/"),
    ];
    records
        .iter()
        .filter(|rs| {
            names.contains(&rs.name)
                || (rs.record_type == "TXT" && rs.values.iter().any(|v| markers.iter().any(|m| v.contains(m))))
        })
        .map(|rs| format!("{} {}", rs.name, rs.record_type))
        .collect()
}

/// Which of `hosts` are not yet published by `owner`: no A/CNAME record, or an ownership TXT
/// record naming someone else.
pub fn not_moved(records: &[dns::RecordSet], hosts: &[String], suffix: &str, owner: &str) -> Vec<String> {
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
            let has_target = records
                .iter()
                .any(|rs| rs.name == *h && (rs.record_type == "CNAME" || rs.record_type == "A"));
            let txt = match h.split_once('.') {
                Some((first, rest)) => format!("{first}{suffix}.{rest}"),
                None => format!("{h}{suffix}"),
            };
            !(has_target && owned_by(&txt))
        })
        .collect()
}

/// Waits until Route53 publishes every host of the destination's control plane with the
/// destination's external-dns as owner: only then do nodes reach the new control plane.
pub fn wait_moved(c: &Ctx, step: &str, zone: &dns::Zone, domain: &str, hosts: &[String], owner: &str) -> Result<usize> {
    let suffix = c.p.or("txt_suffix", "-external-dns").to_string();
    let pending = || -> Result<Vec<String>> {
        let records = ferry_sdk::k8s::retry(|| zone.list_record_sets(Some(domain)))?;
        Ok(not_moved(&records, hosts, &suffix, owner))
    };
    if pending()?.is_empty() {
        return Ok(0);
    }
    let on_timeout = format!(
        "The control plane runs on the destination but Route53 does not point its hostnames there yet, so the nodes \
         still talk to the source. Check the destination's external-dns (hypershift/external-dns, owner id {owner}) \
         and whether the source still owns the records (its external-dns must have dropped them in backup), then \
         re-run."
    );
    let what = format!(
        "Route53 zone {} to publish {} with owner {owner}",
        zone.id(),
        hosts.join(", ")
    );
    Wait {
        step,
        what: &what,
        timeout_seconds: c.p.u64_or("dns_timeout_seconds", 400)?,
        interval_millis: 1000,
        on_timeout: &on_timeout,
    }
    .until(|| {
        let left = pending()?;
        Ok(if left.is_empty() {
            Check::Done(())
        } else {
            Check::Pending(format!("not yet: {}", left.join(", ")))
        })
    })?;
    Ok(hosts.len())
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
    fn only_this_clusters_records_count() {
        let records = vec![
            rs("api-demo.example.com", "CNAME", "router"),
            rs("api-demo-external-dns.example.com", "TXT", "\"heritage=external-dns\""),
            rs(
                "oauth-x.example.com",
                "TXT",
                "\"heritage=external-dns,external-dns/resource=route/clusters-demo/oauth\"",
            ),
            rs(
                "lb-x.example.com",
                "TXT",
                "\"heritage=external-dns,external-dns/resource=service/clusters-demo/kube-apiserver\"",
            ),
            rs("api-other.example.com", "CNAME", "router"),
            rs(
                "api-other-external-dns.example.com",
                "TXT",
                "\"external-dns/resource=route/clusters-other/api\"",
            ),
        ];
        let own = own_records(
            &records,
            &["api-demo.example.com".into()],
            "-external-dns",
            "clusters-demo",
        );
        assert_eq!(
            own,
            [
                "api-demo.example.com CNAME",
                "api-demo-external-dns.example.com TXT",
                "oauth-x.example.com TXT",
                "lb-x.example.com TXT"
            ]
        );
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
        assert_eq!(not_moved(&src, &hosts, "-external-dns", "dst"), hosts);
        let dst = vec![
            rs("api-demo.example.com", "CNAME", "router-dst"),
            rs("api-demo-external-dns.example.com", "TXT", &txt("dst")),
        ];
        assert!(not_moved(&dst, &hosts, "-external-dns", "dst").is_empty());
        // An owner id that merely starts with the destination's is someone else.
        let longer = vec![
            rs("api-demo.example.com", "CNAME", "router-dst"),
            rs("api-demo-external-dns.example.com", "TXT", &txt("dst-2")),
        ];
        assert_eq!(not_moved(&longer, &hosts, "-external-dns", "dst"), hosts);
        assert_eq!(not_moved(&[], &hosts, "-external-dns", "dst"), hosts);
    }
}
