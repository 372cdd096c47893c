//! The in-process external-dns (`ferry_sim::hypershift::external_dns`) against a real moto
//! Route53, configured by the Deployment `hypershift install` writes and running while its pod
//! runs. Syncs are driven with `reconcile_now()` (the controllers' own loop is off), so every
//! assertion follows a sync this test started.
//! No assertion looks at SOA records (moto returns them malformed).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_route53::Client;
use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use serde_json::json;

use ferry_sim::clock::SimClock;
use ferry_sim::hypershift::external_dns::{Conflict, ExternalDns, ExternalDnsError, ExternalDnsOptions};
use ferry_sim::hypershift::install::{self, ExternalDnsInstall, InstallOptions};
use ferry_sim::hypershift::workloads::{self, WorkloadOptions};
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
    /// Options of an external-dns this test drives (no syncs of its own), on `clock`.
    fn options(&self, clock: SimClock) -> ExternalDnsOptions {
        let mut o = ExternalDnsOptions::new(&self.url, &self.zone_id);
        o.background = false;
        o.clock = clock;
        o
    }

    /// Every (name, type, first value or ALIAS target) except NS and SOA, sorted.
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
                let value = match s.alias_target() {
                    Some(a) => format!("ALIAS {}", a.dns_name().trim_end_matches('.')),
                    None => s
                        .resource_records()
                        .first()
                        .map(|r| r.value().to_string())
                        .unwrap_or_default(),
                };
                (
                    s.name().trim_end_matches('.').to_string(),
                    s.r#type().as_str().to_string(),
                    value,
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

/// A management cluster with external-dns installed as `hypershift install` installs it
/// (owner id `owner`, `--interval=1m`, `--txt-cache-interval=1h`) and its pod running.
fn cluster(owner: &str) -> Result<Store> {
    let s = Store::new(Registry::builtin(), 1000);
    let mut opts = InstallOptions::upstream("quay.io/hypershift/hypershift-operator:test");
    opts.external_dns = Some(ExternalDnsInstall {
        domain_filter: DOMAIN.into(),
        txt_owner_id: owner.into(),
        interval: "1m".into(),
    });
    install::install(&s, &opts)?;
    s.create(
        &registry::NAMESPACE,
        None,
        json!({"metadata": {"name": NS}}),
        &WriteOptions::default(),
    )?;
    workloads::reconcile(&s, &WorkloadOptions::default())?;
    Ok(s)
}

/// Restarts external-dns as `oc rollout restart` would: its pod is replaced by a new one.
fn restart_pod(store: &Store) -> Result<()> {
    let d = store.get(&registry::DEPLOYMENT, Some("hypershift"), "external-dns")?;
    for p in workloads::deployment_pods(store, &d) {
        let name = p["metadata"]["name"].as_str().unwrap().to_string();
        store.delete(
            &registry::POD,
            Some("hypershift"),
            &name,
            &DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )?;
    }
    workloads::reconcile(store, &WorkloadOptions::default())?;
    Ok(())
}

/// A Route admitted by the router of `owner`'s cluster, as the OpenShift router leaves it
/// (external-dns takes the host and target from `status.ingress[]`).
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

/// What v0.13.1 writes for a route: the CNAME and both TXT formats.
fn published(host_label: &str, owner: &str, route: &str) -> Vec<(String, String, String)> {
    vec![
        rec(
            &format!("{host_label}-external-dns.example.com"),
            "TXT",
            &txt(owner, route),
        ),
        rec(
            &format!("{host_label}.example.com"),
            "CNAME",
            &format!("router-default.{owner}.ferry-sim.invalid"),
        ),
        rec(
            &format!("cname-{host_label}-external-dns.example.com"),
            "TXT",
            &txt(owner, route),
        ),
    ]
}

fn sorted(mut v: Vec<(String, String, String)>) -> Vec<(String, String, String)> {
    v.sort();
    v
}

#[tokio::test]
async fn route_records_follow_the_route() -> Result<()> {
    let env = env().await?;
    let store = cluster("owner-a")?;
    add_route(&store, "owner-a", "kube-apiserver", "api-hc1.example.com", json!({}))?;
    add_route(
        &store,
        "owner-a",
        "internal",
        "api-hc1.internal.example.com",
        json!({"hypershift.openshift.io/internal-route": "true", "hypershift.openshift.io/route-visibility": "private"}),
    )?;
    add_route(&store, "owner-a", "elsewhere", "api-hc1.example.org", json!({}))?;
    let dns = ExternalDns::start(store.clone(), env.options(SimClock::real_time()))?;

    let report = dns.reconcile_now().await?;
    assert!(report.errors.is_empty() && report.conflicts.is_empty(), "{report:?}");
    assert!(report.read_zone, "a new process reads the zone");
    assert_eq!(
        env.records().await?,
        sorted(published("api-hc1", "owner-a", "kube-apiserver"))
    );

    // A second sync changes nothing, and comes from the cache.
    let again = dns.reconcile_now().await?;
    assert_eq!(again.unchanged, vec!["api-hc1.example.com".to_string()]);
    assert!(again.upserted.is_empty() && again.deleted.is_empty() && !again.read_zone);

    // The route goes: the next sync removes the record and both TXT records.
    store.delete(&registry::ROUTE, Some(NS), "kube-apiserver", &DeleteOptions::default())?;
    let report = dns.reconcile_now().await?;
    assert_eq!(report.deleted, vec!["api-hc1.example.com".to_string()]);
    assert_eq!(env.records().await?, vec![]);
    Ok(())
}

#[tokio::test]
async fn records_of_another_owner_are_never_touched() -> Result<()> {
    let env = env().await?;
    let store_a = cluster("owner-a")?;
    let store_b = cluster("owner-b")?;
    add_route(&store_b, "owner-b", "kube-apiserver", "api-hc1.example.com", json!({}))?;
    let b = ExternalDns::start(store_b.clone(), env.options(SimClock::real_time()))?;
    b.reconcile_now().await?;
    let owned_by_b = env.records().await?;
    assert_eq!(owned_by_b, sorted(published("api-hc1", "owner-b", "kube-apiserver")));

    // A wants the same host (as the destination cluster does after a restore): conflict.
    add_route(&store_a, "owner-a", "kube-apiserver", "api-hc1.example.com", json!({}))?;
    let a = ExternalDns::start(store_a.clone(), env.options(SimClock::real_time()))?;
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
    assert!(report.upserted.is_empty() && report.deleted.is_empty() && report.conflicts.is_empty());
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

/// `--txt-cache-interval=1h` (`registry/txt.go` `Records`): a process that read the zone while
/// another owner held a name keeps seeing it held after that owner deleted it, and creates
/// nothing there until its cache is an hour old or its pod is replaced.
#[tokio::test]
async fn a_stale_cache_holds_a_released_name_until_it_expires_or_the_pod_restarts() -> Result<()> {
    let env = env().await?;
    let src = cluster("owner-src")?;
    let dst = cluster("owner-dst")?;
    add_route(&src, "owner-src", "kube-apiserver", "api-hc1.example.com", json!({}))?;
    // An hour of upstream time passes in one real second.
    let clock = SimClock::scaled(3600.0);
    let source = ExternalDns::start(src.clone(), env.options(clock))?;
    source.reconcile_now().await?;
    let destination = ExternalDns::start(dst.clone(), env.options(clock))?;
    assert!(destination.reconcile_now().await?.read_zone);

    // The source releases the name (backup deletes its routes); the destination now wants it.
    src.delete(&registry::ROUTE, Some(NS), "kube-apiserver", &DeleteOptions::default())?;
    assert_eq!(source.reconcile_now().await?.deleted.len(), 1);
    assert_eq!(env.records().await?, vec![]);
    add_route(&dst, "owner-dst", "kube-apiserver", "api-hc1.example.com", json!({}))?;
    let stale = destination.reconcile_now().await?;
    assert!(!stale.read_zone && stale.upserted.is_empty(), "{stale:?}");
    assert_eq!(stale.conflicts[0].owner.as_deref(), Some("owner-src"));
    assert_eq!(
        env.records().await?,
        vec![],
        "nothing is published while the cache holds the name"
    );

    // A new pod is a new process: its first sync reads the zone and publishes.
    restart_pod(&dst)?;
    let fresh = destination.reconcile_now().await?;
    assert!(
        fresh.read_zone && fresh.upserted == vec!["api-hc1.example.com".to_string()],
        "{fresh:?}"
    );
    assert_eq!(
        env.records().await?,
        sorted(published("api-hc1", "owner-dst", "kube-apiserver"))
    );

    // The cache serves for an hour of upstream time; then the zone is read again.
    assert!(!destination.reconcile_now().await?.read_zone);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        destination.reconcile_now().await?.read_zone,
        "an hour-old cache is read again"
    );
    Ok(())
}

/// The process follows its pod: none without one, and an unusable argument stops it.
#[tokio::test]
async fn external_dns_runs_only_while_its_pod_runs() -> Result<()> {
    let env = env().await?;
    let store = cluster("owner-a")?;
    let dns = ExternalDns::start(store.clone(), env.options(SimClock::real_time()))?;
    dns.reconcile_now().await?;
    assert_eq!(dns.owner_id().as_deref(), Some("owner-a"));
    store.patch(
        &registry::DEPLOYMENT,
        Some("hypershift"),
        "external-dns",
        &ferry_sim::Patch::Merge(json!({"spec": {"replicas": 0}})),
        &WriteOptions::default(),
    )?;
    workloads::reconcile(
        &store,
        &WorkloadOptions {
            termination: Duration::ZERO,
        },
    )?;
    workloads::reconcile(
        &store,
        &WorkloadOptions {
            termination: Duration::ZERO,
        },
    )?;
    assert!(matches!(
        dns.reconcile_now().await,
        Err(ExternalDnsError::NotRunning(_))
    ));
    assert_eq!(dns.owner_id(), None);
    Ok(())
}

#[tokio::test]
async fn a_second_owner_adopts_nothing() -> Result<()> {
    let env = env().await?;
    let store_a = cluster("owner-a")?;
    add_route(&store_a, "owner-a", "oauth", "oauth-hc1.example.com", json!({}))?;
    let a = ExternalDns::start(store_a.clone(), env.options(SimClock::real_time()))?;
    a.reconcile_now().await?;
    // A record nobody owns (no TXT), e.g. created by hand.
    env.upsert("legacy.example.com", RrType::Cname, "somewhere.example.net")
        .await?;
    let before = env.records().await?;
    assert_eq!(before.len(), 4, "{before:?}");

    // C has no routes: nothing is deleted or adopted.
    let store_c = cluster("owner-c")?;
    let c = ExternalDns::start(store_c.clone(), env.options(SimClock::real_time()))?;
    let report = c.reconcile_now().await?;
    assert!(report.upserted.is_empty() && report.deleted.is_empty() && report.conflicts.is_empty());
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

/// The service source (`--source=service`): a LoadBalancer Service with the hostname
/// annotation the CPO sets for `LoadBalancer` publishing gets an ALIAS record to its load
/// balancer (`provider/aws/aws.go` `useAlias`), whose newer TXT name still says `cname`, and
/// loses it when the annotation goes, as the record moves to another cluster.
#[tokio::test]
async fn load_balancer_services_are_published_as_aliases_and_released() -> Result<()> {
    let env = env().await?;
    let store = cluster("owner-a")?;
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
    let dns = ExternalDns::start(store.clone(), env.options(SimClock::real_time()))?;
    dns.reconcile_now().await?;
    let txt = "\"heritage=external-dns,external-dns/owner=owner-a,external-dns/resource=service/clusters-hc1/kube-apiserver\"";
    assert_eq!(
        env.records().await?,
        vec![
            rec("api-hc1-external-dns.example.com", "TXT", txt),
            rec("api-hc1.example.com", "A", &format!("ALIAS {lb}")),
            rec("cname-api-hc1-external-dns.example.com", "TXT", txt),
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
    Ok(())
}
