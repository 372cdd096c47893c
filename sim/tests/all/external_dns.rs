//! The in-process external-dns (`ferry_sim::hypershift::external_dns`) against a real moto Route53.
//! Passes are driven with `reconcile_now()`; the background loop runs with a one-hour interval
//! and no Route watch, so every assertion follows a pass this test started (the one
//! exception, `route_changes_trigger_a_pass`, polls with a bound).
//! No assertion looks at SOA records (moto returns them malformed).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_route53::Client;
use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use serde_json::json;

use ferry_sim::hypershift::external_dns::{Conflict, ExternalDns, ExternalDnsOptions};
use ferry_sim::kube::registry::{self, Registry};
use ferry_sim::services::MotoServer;
use ferry_sim::{DeleteOptions, Store, WriteOptions};

const DOMAIN: &str = "example.com";
const NS: &str = "clusters-hc1";

struct Env {
    _moto: MotoServer,
    url: String,
    client: Client,
    zone_id: String,
}

async fn env() -> Result<Env> {
    let moto = MotoServer::start().await?;
    let url = moto.url();
    let config = aws_sdk_route53::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(&url)
        .build();
    let client = Client::from_conf(config);
    let zone = client
        .create_hosted_zone()
        .name(DOMAIN)
        .caller_reference(uuid::Uuid::new_v4().to_string())
        .send()
        .await?;
    let zone_id = zone
        .hosted_zone()
        .context("no hosted zone in the answer")?
        .id()
        .to_string();
    Ok(Env {
        _moto: moto,
        url,
        client,
        zone_id,
    })
}

impl Env {
    fn options(&self, owner: &str) -> ExternalDnsOptions {
        let mut o = ExternalDnsOptions::new(&self.url, &self.zone_id, DOMAIN, owner);
        o.interval = Duration::from_secs(3600);
        o.watch_routes = false;
        o
    }

    /// Every (name, type, first value) except NS and SOA, sorted.
    async fn records(&self) -> Result<Vec<(String, String, String)>> {
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .send()
            .await?;
        assert!(!out.is_truncated());
        let mut v: Vec<(String, String, String)> = out
            .resource_record_sets()
            .iter()
            .filter(|s| !matches!(s.r#type(), RrType::Soa | RrType::Ns))
            .map(|s| {
                (
                    s.name().trim_end_matches('.').to_string(),
                    s.r#type().as_str().to_string(),
                    s.resource_records()
                        .first()
                        .map(|r| r.value().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        Ok(v)
    }

    async fn upsert(&self, name: &str, ty: RrType, value: &str) -> Result<()> {
        let set = ResourceRecordSet::builder()
            .name(name)
            .r#type(ty)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value(value).build()?)
            .build()?;
        let change = Change::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(set)
            .build()?;
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .change_batch(ChangeBatch::builder().changes(change).build()?)
            .send()
            .await?;
        Ok(())
    }
}

fn store() -> Result<Store> {
    let s = Store::new(Registry::builtin(), 1000);
    s.create(
        &registry::NAMESPACE,
        None,
        json!({"metadata": {"name": NS}}),
        &WriteOptions::default(),
    )?;
    Ok(s)
}

/// A Route admitted by the router of `owner`'s cluster, as the OpenShift router leaves it
/// (external-dns takes the target from `status.ingress[].routerCanonicalHostname`).
fn add_route(store: &Store, owner: &str, name: &str, host: &str, labels: serde_json::Value) -> Result<()> {
    store.create_with_status(
        &registry::ROUTE,
        Some(NS),
        json!({
            "apiVersion": "route.openshift.io/v1", "kind": "Route",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"host": host, "to": {"kind": "Service", "name": name}},
            "status": {"ingress": [{"host": host, "routerName": "default",
                "routerCanonicalHostname": format!("router-default.{owner}.ferry-sim.invalid"),
                "conditions": [{"type": "Admitted", "status": "True"}]}]},
        }),
    )?;
    Ok(())
}

fn txt(owner: &str, route: &str) -> String {
    format!("\"heritage=external-dns,external-dns/owner={owner},external-dns/resource=route/{NS}/{route}\"")
}

fn rec(name: &str, ty: &str, value: &str) -> (String, String, String) {
    (name.to_string(), ty.to_string(), value.to_string())
}

#[tokio::test]
async fn route_records_follow_the_route() -> Result<()> {
    let env = env().await?;
    let store = store()?;
    add_route(&store, "owner-a", "kube-apiserver", "api-hc1.example.com", json!({}))?;
    add_route(
        &store,
        "owner-a",
        "internal",
        "api-hc1.internal.example.com",
        json!({"hypershift.openshift.io/internal-route": "true", "hypershift.openshift.io/route-visibility": "private"}),
    )?;
    add_route(&store, "owner-a", "elsewhere", "api-hc1.example.org", json!({}))?;
    let dns = ExternalDns::start(store.clone(), env.options("owner-a"))?;

    let report = dns.reconcile_now().await?;
    assert!(report.errors.is_empty() && report.conflicts.is_empty(), "{report:?}");
    let target = "router-default.owner-a.ferry-sim.invalid";
    let want = vec![
        rec(
            "api-hc1-external-dns.example.com",
            "TXT",
            &txt("owner-a", "kube-apiserver"),
        ),
        rec("api-hc1.example.com", "CNAME", target),
    ];
    assert_eq!(env.records().await?, want);

    // A second pass changes nothing.
    let again = dns.reconcile_now().await?;
    assert_eq!(again.unchanged, vec!["api-hc1.example.com".to_string()]);
    assert!(again.upserted.is_empty() && again.deleted.is_empty());

    // The route goes (B5): the next pass removes both records.
    store.delete(&registry::ROUTE, Some(NS), "kube-apiserver", &DeleteOptions::default())?;
    let report = dns.reconcile_now().await?;
    assert_eq!(report.deleted, vec!["api-hc1.example.com".to_string()]);
    assert_eq!(env.records().await?, vec![]);
    dns.stop().await;
    Ok(())
}

#[tokio::test]
async fn records_of_another_owner_are_never_touched() -> Result<()> {
    let env = env().await?;
    let store_a = store()?;
    let store_b = store()?;
    add_route(&store_b, "owner-b", "kube-apiserver", "api-hc1.example.com", json!({}))?;
    let b = ExternalDns::start(store_b.clone(), env.options("owner-b"))?;
    b.reconcile_now().await?;
    let owned_by_b = env.records().await?;
    assert_eq!(
        owned_by_b,
        vec![
            rec(
                "api-hc1-external-dns.example.com",
                "TXT",
                &txt("owner-b", "kube-apiserver")
            ),
            rec(
                "api-hc1.example.com",
                "CNAME",
                "router-default.owner-b.ferry-sim.invalid"
            ),
        ]
    );

    // A wants the same host (as the destination cluster does after a restore): conflict.
    add_route(&store_a, "owner-a", "kube-apiserver", "api-hc1.example.com", json!({}))?;
    let a = ExternalDns::start(store_a.clone(), env.options("owner-a"))?;
    let report = a.reconcile_now().await?;
    assert_eq!(
        report.conflicts,
        vec![Conflict {
            host: "api-hc1.example.com".into(),
            resource: format!("route/{NS}/kube-apiserver"),
            owner: Some("owner-b".into()),
        }]
    );
    assert!(report.upserted.is_empty() && report.deleted.is_empty());
    assert_eq!(env.records().await?, owned_by_b);

    // A's route goes: A still deletes nothing of B's.
    store_a.delete(&registry::ROUTE, Some(NS), "kube-apiserver", &DeleteOptions::default())?;
    let report = a.reconcile_now().await?;
    assert_eq!(report, Default::default());
    assert_eq!(env.records().await?, owned_by_b);

    // Only B removes its records.
    store_b.delete(&registry::ROUTE, Some(NS), "kube-apiserver", &DeleteOptions::default())?;
    assert_eq!(
        b.reconcile_now().await?.deleted,
        vec!["api-hc1.example.com".to_string()]
    );
    assert_eq!(env.records().await?, vec![]);
    Ok(())
}

#[tokio::test]
async fn a_second_owner_adopts_nothing() -> Result<()> {
    let env = env().await?;
    let store_a = store()?;
    add_route(&store_a, "owner-a", "oauth", "oauth-hc1.example.com", json!({}))?;
    let a = ExternalDns::start(store_a.clone(), env.options("owner-a"))?;
    a.reconcile_now().await?;
    // A record nobody owns (no TXT), e.g. created by hand.
    env.upsert("legacy.example.com", RrType::Cname, "somewhere.example.net")
        .await?;
    let before = env.records().await?;
    assert_eq!(before.len(), 3, "{before:?}");

    // C has no routes: nothing is deleted or adopted.
    let store_c = store()?;
    let c = ExternalDns::start(store_c.clone(), env.options("owner-c"))?;
    assert_eq!(c.reconcile_now().await?, Default::default());
    assert_eq!(env.records().await?, before);

    // C now has routes for both names: two conflicts, no writes.
    add_route(&store_c, "owner-c", "oauth", "oauth-hc1.example.com", json!({}))?;
    add_route(&store_c, "owner-c", "legacy", "legacy.example.com", json!({}))?;
    let report = c.reconcile_now().await?;
    let mut owners: Vec<(String, Option<String>)> = report
        .conflicts
        .iter()
        .map(|c| (c.host.clone(), c.owner.clone()))
        .collect();
    owners.sort();
    assert_eq!(
        owners,
        vec![
            ("legacy.example.com".into(), None),
            ("oauth-hc1.example.com".into(), Some("owner-a".into()))
        ]
    );
    assert!(report.upserted.is_empty());
    assert_eq!(env.records().await?, before);

    // A deletes its own records but never the unowned one.
    store_a.delete(&registry::ROUTE, Some(NS), "oauth", &DeleteOptions::default())?;
    a.reconcile_now().await?;
    assert_eq!(
        env.records().await?,
        vec![rec("legacy.example.com", "CNAME", "somewhere.example.net")]
    );
    Ok(())
}

#[tokio::test]
async fn route_changes_trigger_a_pass() -> Result<()> {
    let env = env().await?;
    let store = store()?;
    let mut opts = env.options("owner-a");
    opts.watch_routes = true;
    let dns = ExternalDns::start(store.clone(), opts)?;
    add_route(&store, "owner-a", "ignition", "ignition-hc1.example.com", json!({}))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if env.records().await?.len() == 2 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the route watch did not trigger a pass: {:?}", env.records().await?);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    dns.stop().await;
    Ok(())
}

/// The service source (`--source=service`): a LoadBalancer Service with the hostname
/// annotation the CPO sets for `LoadBalancer` publishing gets a CNAME to its load balancer,
/// and loses it when the annotation goes, as the record moves to another cluster.
#[tokio::test]
async fn load_balancer_services_are_published_and_released() -> Result<()> {
    let env = env().await?;
    let store = store()?;
    let lb = "a1b2-kube-apiserver.elb.us-east-1.amazonaws.com";
    store.create_with_status(
        &registry::SERVICE,
        Some(NS),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-apiserver", "namespace": NS,
                "annotations": {"external-dns.alpha.kubernetes.io/hostname": "api-hc1.example.com"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 6443}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": lb}]}},
        }),
    )?;
    let dns = ExternalDns::start(store.clone(), env.options("owner-a"))?;
    dns.reconcile_now().await?;
    let txt = "\"heritage=external-dns,external-dns/owner=owner-a,external-dns/resource=service/clusters-hc1/kube-apiserver\"";
    assert_eq!(
        env.records().await?,
        vec![
            rec("api-hc1-external-dns.example.com", "TXT", txt),
            rec("api-hc1.example.com", "CNAME", lb),
        ]
    );
    store.patch(
        &registry::SERVICE,
        Some(NS),
        "kube-apiserver",
        &ferry_sim::Patch::Merge(
            json!({"metadata": {"annotations": {"external-dns.alpha.kubernetes.io/hostname": null}}}),
        ),
        &WriteOptions::default(),
    )?;
    assert_eq!(
        dns.reconcile_now().await?.deleted,
        vec!["api-hc1.example.com".to_string()]
    );
    assert_eq!(env.records().await?, vec![]);
    dns.stop().await;
    Ok(())
}
