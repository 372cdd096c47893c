//! external-dns as HyperShift deploys it, against a real Route53 API (moto).
//!
//! HyperShift installs external-dns as the Deployment `hypershift/external-dns`
//! (`cmd/install/assets/hypershift_operator.go`, `ExternalDNSDeployment`) from Red Hat's
//! ExternalDNS Operator image "tag 1.2.1", whose operand is upstream external-dns **v0.13.1**.
//! This controller behaves as that release does with the Deployment's arguments, read from
//! the Deployment whenever its process starts:
//!
//! - **A process per pod.** It runs while a pod of the Deployment is Running; a new pod (a
//!   restart, a rollout) is a new process: empty caches and an immediate first sync
//!   (`controller.go` `Run`: `nextRunAt` starts at the zero time). Without a pod nothing syncs.
//! - **`--interval`** (default `1m`) between syncs, no `--events`: a Route or Service change
//!   is seen at the next sync (`ShouldRunOnce`).
//! - **`--txt-cache-interval=1h`** (`registry/txt.go` `Records`): while the cache is younger
//!   than the interval the zone is not read at all; only this process's own changes are
//!   mirrored into it (`ApplyChanges` → `addToCache`/`removeFromCache`, before the provider
//!   call). Records another owner deleted stay in the cache, with their owner: while they do,
//!   nothing is created at their names. A new process reads the zone whole.
//! - **Sources** (`--source=service --source=openshift-route`, `--label-filter=...!=private`):
//!   a Route's host and target come from its admitted `status.ingress` entry (`source/ocproute.go`
//!   `getTargetsFromRouteStatus`); a Service's from its hostname annotation and load balancer.
//! - **Plan and ownership** (`plan/plan.go`, `policy=sync`; `registry.go` `filterOwnedRecords`):
//!   a name with no record is created; a record owned by this owner id is updated or deleted
//!   as its objects ask; a record with another owner, or none, is never touched.
//! - **Records** (`provider/aws/aws.go`, `registry/txt.go` `generateTXTRecord`): a target that
//!   is an AWS load balancer is written as an `A` ALIAS record, any other as a `CNAME` (TTL
//!   300); each gets two ownership TXT records (`"heritage=external-dns,external-dns/owner=…,
//!   external-dns/resource=…"`): the legacy `<label>-external-dns.<rest>` and the newer
//!   `cname-<label>-external-dns.<rest>` (`a-` for an IP target). Creates are `CREATE`,
//!   updates `UPSERT`, deletes `DELETE`, all of one sync in one batch.
//!
//! [`ExternalDns::reconcile_now`] runs one sync on demand, so tests are deterministic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_route53::Client;
use aws_sdk_route53::config::{BehaviorVersion, Region};
use aws_sdk_route53::error::DisplayErrorContext;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{SimClock, parse_go_duration};
use crate::kube::error::ApiError;
use crate::kube::registry;
use crate::kube::selector::LabelSelector;
use crate::kube::store::{ListOptions, Store};

/// The TXT suffix HyperShift passes to external-dns.
pub const DEFAULT_TXT_SUFFIX: &str = "-external-dns";

/// The label whose value `private` keeps an object out of DNS (HyperShift's label filter).
pub const ROUTE_VISIBILITY_LABEL: &str = super::ROUTE_VISIBILITY_LABEL;

/// The annotation that names a Service's hostnames.
pub const HOSTNAME_ANNOTATION: &str = super::EXTERNAL_DNS_HOSTNAME_ANNOTATION;

/// The hosted zone of Network Load Balancers in us-east-1, the ALIAS target zone of the
/// simulated routers' hostnames (`provider/aws/aws.go` `canonicalHostedZones`).
pub const NLB_CANONICAL_ZONE: &str = "Z26RNL4JYFTOTI";

/// TTL of the records it writes (`recordTTL`).
pub const RECORD_TTL: i64 = 300;

/// Errors of the controller.
#[derive(Debug, thiserror::Error)]
pub enum ExternalDnsError {
    /// The options are unusable.
    #[error("invalid external-dns options: {0}")]
    InvalidOptions(String),
    /// The Deployment's arguments are unusable (the process would not start).
    #[error("external-dns cannot start: {0}")]
    BadArgs(String),
    /// No pod of the Deployment runs.
    #[error("external-dns is not running: no Running pod of Deployment {0}")]
    NotRunning(String),
    /// Reading Routes from the store failed.
    #[error("cannot list routes: {0}")]
    Store(#[from] ApiError),
    /// A Route53 call failed.
    #[error("route53 {operation} failed: {message}")]
    Route53 {
        /// The API operation, e.g. `ListResourceRecordSets`.
        operation: &'static str,
        /// The SDK's error with its causes.
        message: String,
    },
    /// A Route53 request could not be built.
    #[error("cannot build a route53 request: {0}")]
    Build(String),
}

/// Where an [`ExternalDns`] finds Route53 and its Deployment.
#[derive(Debug, Clone)]
pub struct ExternalDnsOptions {
    /// Route53 hosted zone id (with or without the `/hostedzone/` prefix).
    pub zone_id: String,
    /// Route53 endpoint, e.g. a moto server's URL.
    pub endpoint_url: String,
    /// Signing region.
    pub region: String,
    /// Access key id (moto accepts anything).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// The clock its intervals run on.
    pub clock: SimClock,
    /// The namespace of its Deployment.
    pub namespace: String,
    /// The name of its Deployment.
    pub deployment: String,
    /// Sync every `--interval` on its own (true), or only when asked ([`ExternalDns::reconcile_now`]:
    /// tests that drive every sync).
    pub background: bool,
}

impl ExternalDnsOptions {
    /// The Deployment `hypershift/external-dns`, on the Route53 at `endpoint_url`, in real time.
    pub fn new(endpoint_url: &str, zone_id: &str) -> Self {
        ExternalDnsOptions {
            zone_id: zone_id.to_string(),
            endpoint_url: endpoint_url.to_string(),
            region: "us-east-1".to_string(),
            access_key_id: "testing".to_string(),
            secret_access_key: "testing".to_string(),
            clock: SimClock::real_time(),
            namespace: super::install::NAMESPACE.to_string(),
            deployment: "external-dns".to_string(),
            background: true,
        }
    }
}

/// The arguments a process started with.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// `--domain-filter`.
    pub domain_filter: String,
    /// `--txt-owner-id`.
    pub owner_id: String,
    /// `--txt-suffix`.
    pub txt_suffix: String,
    /// `--interval`.
    pub interval: Duration,
    /// `--txt-cache-interval` (zero: no cache).
    pub txt_cache_interval: Duration,
    /// `--label-filter`.
    pub label_filter: LabelSelector,
}

impl Args {
    /// The arguments of a Deployment's first container, with external-dns' defaults for
    /// those it leaves out (`pkg/apis/externaldns/types.go`).
    pub fn from_deployment(d: &Value) -> Result<Args, String> {
        let args: Vec<&str> = d
            .pointer("/spec/template/spec/containers/0/args")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let flag = |name: &str| args.iter().rev().find_map(|a| a.strip_prefix(&format!("--{name}=")));
        let duration = |name: &str, default: &str| {
            let v = flag(name).unwrap_or(default);
            parse_go_duration(v).ok_or_else(|| format!("invalid value \"{v}\" for flag --{name}"))
        };
        let owner_id = flag("txt-owner-id").unwrap_or("default").to_string();
        let label_filter = LabelSelector::parse(flag("label-filter").unwrap_or(""))
            .map_err(|e| format!("invalid --label-filter: {}", e.0))?;
        Ok(Args {
            domain_filter: normalize(flag("domain-filter").unwrap_or("")),
            owner_id,
            txt_suffix: flag("txt-suffix").unwrap_or("").to_string(),
            interval: duration("interval", "1m")?,
            txt_cache_interval: duration("txt-cache-interval", "0")?,
            label_filter,
        })
    }

    /// The legacy ownership TXT name of `host`: the suffix after its first label.
    pub fn txt_name(&self, host: &str) -> String {
        match host.split_once('.') {
            Some((first, rest)) => format!("{first}{}.{rest}", self.txt_suffix),
            None => format!("{host}{}", self.txt_suffix),
        }
    }

    /// The newer ownership TXT name (`toNewTXTName`): the record type in front.
    pub fn new_txt_name(&self, host: &str, record_type: &str) -> String {
        format!("{}-{}", record_type.to_ascii_lowercase(), self.txt_name(host))
    }

    /// The host an ownership TXT name stands for (`toEndpointName`): either format.
    pub fn host_of_txt(&self, txt_name: &str) -> Option<String> {
        let name = ["a-", "cname-", "ns-"]
            .iter()
            .find_map(|p| txt_name.strip_prefix(p))
            .unwrap_or(txt_name);
        let (first, rest) = match name.split_once('.') {
            Some((first, rest)) => (first, Some(rest)),
            None => (name, None),
        };
        let label = first.strip_suffix(self.txt_suffix.as_str()).filter(|l| !l.is_empty())?;
        Some(match rest {
            Some(rest) => format!("{label}.{rest}"),
            None => label.to_string(),
        })
    }

    /// The quoted TXT value for a record owned by this process on behalf of `resource`.
    pub fn txt_value(&self, resource: &str) -> String {
        format!(
            "\"heritage=external-dns,external-dns/owner={},external-dns/resource={resource}\"",
            self.owner_id
        )
    }

    fn in_domain(&self, host: &str) -> bool {
        self.domain_filter.is_empty()
            || host == self.domain_filter
            || host.ends_with(&format!(".{}", self.domain_filter))
    }
}

/// An ownership record already in the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtOwnership {
    /// `external-dns/owner`.
    pub owner: String,
    /// `external-dns/resource`, e.g. `route/ns/name`.
    pub resource: Option<String>,
}

/// Parse a TXT value (quoted or not) of the txt registry; `None` unless `heritage=external-dns`.
pub fn parse_txt(value: &str) -> Option<TxtOwnership> {
    let v = value.trim().trim_matches('"');
    let mut heritage = false;
    let mut owner = None;
    let mut resource = None;
    for part in v.split(',') {
        match part.split_once('=') {
            Some(("heritage", "external-dns")) => heritage = true,
            Some(("external-dns/owner", o)) => owner = Some(o.to_string()),
            Some(("external-dns/resource", r)) => resource = Some(r.to_string()),
            _ => {}
        }
    }
    heritage.then_some(())?;
    Some(TxtOwnership {
        owner: owner.unwrap_or_default(),
        resource,
    })
}

/// A host this process wanted but left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The DNS name.
    pub host: String,
    /// The object asking for it, `route/<ns>/<name>`.
    pub resource: String,
    /// The other owner id, or `None` when the existing record has no ownership TXT.
    pub owner: Option<String>,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Hosts whose records were created or updated.
    pub upserted: Vec<String>,
    /// Hosts whose records were deleted.
    pub deleted: Vec<String>,
    /// Hosts that were already right.
    pub unchanged: Vec<String>,
    /// Hosts left alone because another owner (or nobody) owns them, as this process sees
    /// the zone (its cache may be stale).
    pub conflicts: Vec<Conflict>,
    /// Route53 failures (a failed batch fails every change of the sync).
    pub errors: Vec<String>,
    /// Whether this sync read the zone (a cache miss) rather than its cache.
    pub read_zone: bool,
}

/// A record (and its ownership) as the registry knows it: an endpoint of `Records()`.
#[derive(Debug, Clone, PartialEq)]
struct Endpoint {
    name: String,
    /// The Route53 record set (A ALIAS, CNAME or A).
    set: ResourceRecordSet,
    /// Its target (the alias DNS name or the first value), normalised.
    target: String,
    owner: String,
    resource: Option<String>,
    /// The ownership TXT record sets found for it (for deletes).
    txts: Vec<ResourceRecordSet>,
}

/// One running external-dns process.
struct Process {
    pod_uid: String,
    args: Args,
    /// The registry's cache and when it was last filled from the zone.
    cache: Option<(Vec<Endpoint>, Instant)>,
    next_run: Instant,
    /// When it started, and whether it has created records yet.
    started: Instant,
    published: bool,
}

struct Inner {
    store: Store,
    opts: ExternalDnsOptions,
    zone_id: String,
    client: Client,
    process: tokio::sync::Mutex<Option<Process>>,
    /// The owner id of the running process, for callers that ask without waiting.
    owner: Mutex<Option<String>>,
    /// For each process that created records: how long after its start (upstream time).
    publish_latencies: Mutex<Vec<Duration>>,
}

/// A running external-dns. Dropping it stops the background loop.
pub struct ExternalDns {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ExternalDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalDns")
            .field(
                "deployment",
                &format!("{}/{}", self.inner.opts.namespace, self.inner.opts.deployment),
            )
            .field("zone_id", &self.inner.zone_id)
            .finish_non_exhaustive()
    }
}

/// Lowercase, without the trailing dot; Route53's `\052` escape is turned back into `*`.
fn normalize(name: &str) -> String {
    name.trim()
        .trim_end_matches('.')
        .replace("\\052", "*")
        .to_ascii_lowercase()
}

fn build_err(e: impl std::fmt::Display) -> ExternalDnsError {
    ExternalDnsError::Build(e.to_string())
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<Change, ExternalDnsError> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(build_err)
}

fn txt_set(name: &str, value: &str) -> Result<ResourceRecordSet, ExternalDnsError> {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::Txt)
        .ttl(RECORD_TTL)
        .resource_records(ResourceRecord::builder().value(value).build().map_err(build_err)?)
        .build()
        .map_err(build_err)
}

/// Whether `target` is an AWS load balancer, which external-dns publishes as an ALIAS
/// (`useAlias`/`isAWSAlias`: the canonical hosted zone of its suffix).
pub fn is_load_balancer(target: &str) -> bool {
    target.ends_with(".elb.amazonaws.com") || target.contains(".elb.") && target.ends_with(".amazonaws.com")
}

/// The record external-dns writes for `host` → `target`: an A ALIAS for a load balancer, a
/// CNAME otherwise, and the type its new-format TXT name carries (always `cname` for a
/// hostname target, ALIAS included).
fn address_set(host: &str, target: &str) -> Result<(ResourceRecordSet, &'static str), ExternalDnsError> {
    if is_load_balancer(target) {
        let alias = AliasTarget::builder()
            .dns_name(target)
            .hosted_zone_id(NLB_CANONICAL_ZONE)
            .evaluate_target_health(true)
            .build()
            .map_err(build_err)?;
        let set = ResourceRecordSet::builder()
            .name(host)
            .r#type(RrType::A)
            .alias_target(alias)
            .build()
            .map_err(build_err)?;
        return Ok((set, "cname"));
    }
    let ip = target.parse::<std::net::IpAddr>().is_ok();
    let set = ResourceRecordSet::builder()
        .name(host)
        .r#type(if ip { RrType::A } else { RrType::Cname })
        .ttl(RECORD_TTL)
        .resource_records(ResourceRecord::builder().value(target).build().map_err(build_err)?)
        .build()
        .map_err(build_err)?;
    Ok((set, if ip { "a" } else { "cname" }))
}

/// What an object asks for: (host, target, `route/<ns>/<name>` or `service/...`).
type Desired = (String, String, String);

fn resource(kind: &str, obj: &Value) -> String {
    format!(
        "{kind}/{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// `source/ocproute.go` (`endpointsFromOcpRoute`, `getTargetsFromRouteStatus`): the first
/// ingress entry admitted with a router canonical hostname gives the host and the target; a
/// route no router admitted yields nothing.
fn route_desired(route: &Value) -> Option<Desired> {
    let ingress = route["status"]["ingress"].as_array()?.iter().find(|i| {
        i["conditions"][0]["type"] == "Admitted"
            && i["conditions"][0]["status"] == "True"
            && i["routerCanonicalHostname"].as_str().is_some_and(|h| !h.is_empty())
    })?;
    let host = normalize(ingress["host"].as_str().or(route["spec"]["host"].as_str())?);
    if host.is_empty() {
        return None;
    }
    let target = normalize(ingress["routerCanonicalHostname"].as_str()?);
    Some((host, target, resource("route", route)))
}

/// `source/service.go`: the hostname annotation's names, pointing at a LoadBalancer's
/// ingress or an ExternalName's name.
fn service_desired(svc: &Value) -> Vec<Desired> {
    let Some(hosts) = svc["metadata"]["annotations"][HOSTNAME_ANNOTATION].as_str() else {
        return Vec::new();
    };
    let target = match svc["spec"]["type"].as_str() {
        Some("LoadBalancer") => svc["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|i| i["hostname"].as_str().or(i["ip"].as_str()))
            .map(normalize),
        Some("ExternalName") => svc["spec"]["externalName"].as_str().map(normalize),
        _ => None,
    };
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return Vec::new();
    };
    hosts
        .split(',')
        .map(|h| normalize(&h.replace(' ', "")))
        .filter(|h| !h.is_empty())
        .map(|h| (h, target.clone(), resource("service", svc)))
        .collect()
}

fn record_target(set: &ResourceRecordSet) -> String {
    match set.alias_target() {
        Some(a) => normalize(a.dns_name()),
        None => set
            .resource_records()
            .first()
            .map(|r| normalize(r.value()))
            .unwrap_or_default(),
    }
}

impl Inner {
    async fn list_zone(&self) -> Result<Vec<ResourceRecordSet>, ExternalDnsError> {
        let mut out = Vec::new();
        let mut next: Option<(String, Option<RrType>)> = None;
        loop {
            let mut req = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(&self.zone_id)
                .max_items(300);
            if let Some((name, ty)) = next.take() {
                req = req.start_record_name(name).set_start_record_type(ty);
            }
            let page = req.send().await.map_err(|e| ExternalDnsError::Route53 {
                operation: "ListResourceRecordSets",
                message: DisplayErrorContext(&e).to_string(),
            })?;
            out.extend(page.resource_record_sets().iter().cloned());
            match (page.is_truncated(), page.next_record_name()) {
                (true, Some(name)) => next = Some((name.to_string(), page.next_record_type().cloned())),
                _ => return Ok(out),
            }
        }
    }

    /// `TXTRegistry.Records` without the cache: every A/CNAME record with the owner its TXT
    /// records give it.
    async fn read_records(&self, args: &Args) -> Result<Vec<Endpoint>, ExternalDnsError> {
        let sets = self.list_zone().await?;
        let mut owners: BTreeMap<String, (TxtOwnership, Vec<ResourceRecordSet>)> = BTreeMap::new();
        for set in sets.iter().filter(|s| s.r#type() == &RrType::Txt) {
            let name = normalize(set.name());
            let Some(host) = args.host_of_txt(&name) else { continue };
            let Some(own) = set.resource_records().iter().find_map(|r| parse_txt(r.value())) else {
                continue;
            };
            let entry = owners.entry(host).or_insert_with(|| (own.clone(), Vec::new()));
            entry.0 = own;
            entry.1.push(set.clone());
        }
        Ok(sets
            .iter()
            .filter(|s| matches!(s.r#type(), RrType::A | RrType::Cname))
            .map(|set| {
                let name = normalize(set.name());
                let (own, txts) = owners
                    .get(&name)
                    .cloned()
                    .map(|(o, t)| (Some(o), t))
                    .unwrap_or((None, Vec::new()));
                Endpoint {
                    target: record_target(set),
                    owner: own.as_ref().map(|o| o.owner.clone()).unwrap_or_default(),
                    resource: own.and_then(|o| o.resource),
                    txts,
                    name,
                    set: set.clone(),
                }
            })
            .collect())
    }

    async fn apply(&self, owner: &str, changes: Vec<Change>) -> Result<(), ExternalDnsError> {
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes))
            .comment(format!("external-dns (ferry-sim) owner {owner}"))
            .build()
            .map_err(build_err)?;
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| ExternalDnsError::Route53 {
                operation: "ChangeResourceRecordSets",
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }

    /// What the sources ask for, filtered as the flags say; the first object (Routes, then
    /// Services, by namespace and name) wins a shared host.
    fn desired(&self, args: &Args) -> Result<BTreeMap<String, (String, String)>, ExternalDnsError> {
        let routes = self.store.list(&registry::ROUTE, None, &ListOptions::default())?;
        let services = self.store.list(&registry::SERVICE, None, &ListOptions::default())?;
        let mut desired = BTreeMap::new();
        let wanted = routes
            .items
            .iter()
            .filter(|r| args.label_filter.matches_object(r))
            .filter_map(route_desired)
            .chain(
                services
                    .items
                    .iter()
                    .filter(|s| args.label_filter.matches_object(s))
                    .flat_map(service_desired),
            );
        for (host, target, resource) in wanted {
            if args.in_domain(&host) {
                desired.entry(host).or_insert((target, resource));
            }
        }
        Ok(desired)
    }

    /// One `RunOnce` of `process`.
    async fn run_once(&self, process: &mut Process) -> Result<ReconcileReport, ExternalDnsError> {
        let args = process.args.clone();
        let clock = self.opts.clock;
        let mut report = ReconcileReport::default();
        let cached = process
            .cache
            .as_ref()
            .filter(|(_, at)| !args.txt_cache_interval.is_zero() && clock.since(*at) < args.txt_cache_interval)
            .map(|(c, _)| c.clone());
        let records = match cached {
            Some(c) => c,
            None => {
                let fresh = self.read_records(&args).await?;
                report.read_zone = true;
                if !args.txt_cache_interval.is_zero() {
                    process.cache = Some((fresh.clone(), Instant::now()));
                }
                fresh
            }
        };
        let desired = self.desired(&args)?;
        let mut changes = Vec::new();
        let mut added: Vec<Endpoint> = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        for (host, (target, resource)) in &desired {
            match records.iter().find(|e| e.name == *host) {
                None => {
                    let (set, kind) = address_set(host, target)?;
                    changes.push(change(ChangeAction::Create, set.clone())?);
                    let value = args.txt_value(resource);
                    let legacy = txt_set(&args.txt_name(host), &value)?;
                    let new = txt_set(&args.new_txt_name(host, kind), &value)?;
                    changes.push(change(ChangeAction::Create, legacy.clone())?);
                    changes.push(change(ChangeAction::Create, new.clone())?);
                    added.push(Endpoint {
                        name: host.clone(),
                        set,
                        target: target.clone(),
                        owner: args.owner_id.clone(),
                        resource: Some(resource.clone()),
                        txts: vec![legacy, new],
                    });
                    report.upserted.push(host.clone());
                }
                Some(cur) if cur.owner != args.owner_id => {
                    // The planner makes an update that inherits the other owner;
                    // `filterOwnedRecords` drops it.
                    report.conflicts.push(Conflict {
                        host: host.clone(),
                        resource: resource.clone(),
                        owner: (!cur.owner.is_empty()).then(|| cur.owner.clone()),
                    });
                }
                Some(cur) if cur.target == *target => report.unchanged.push(host.clone()),
                Some(cur) => {
                    let (set, kind) = address_set(host, target)?;
                    if set.r#type() != cur.set.r#type()
                        || set.alias_target().is_some() != cur.set.alias_target().is_some()
                    {
                        changes.push(change(ChangeAction::Delete, cur.set.clone())?);
                        changes.push(change(ChangeAction::Create, set.clone())?);
                    } else {
                        changes.push(change(ChangeAction::Upsert, set.clone())?);
                    }
                    let value = args.txt_value(resource);
                    let legacy = txt_set(&args.txt_name(host), &value)?;
                    let new = txt_set(&args.new_txt_name(host, kind), &value)?;
                    changes.push(change(ChangeAction::Upsert, legacy.clone())?);
                    changes.push(change(ChangeAction::Upsert, new.clone())?);
                    removed.push(host.clone());
                    added.push(Endpoint {
                        name: host.clone(),
                        set,
                        target: target.clone(),
                        owner: args.owner_id.clone(),
                        resource: Some(resource.clone()),
                        txts: vec![legacy, new],
                    });
                    report.upserted.push(host.clone());
                }
            }
        }
        for cur in records
            .iter()
            .filter(|e| e.owner == args.owner_id && !desired.contains_key(&e.name) && args.in_domain(&e.name))
        {
            changes.push(change(ChangeAction::Delete, cur.set.clone())?);
            for t in &cur.txts {
                changes.push(change(ChangeAction::Delete, t.clone())?);
            }
            removed.push(cur.name.clone());
            report.deleted.push(cur.name.clone());
        }
        if changes.is_empty() {
            return Ok(report);
        }
        // The cache takes this process's own changes before the provider is called.
        if let Some((cache, _)) = process.cache.as_mut() {
            cache.retain(|e| !removed.contains(&e.name));
            cache.extend(added);
        }
        if let Err(e) = self.apply(&args.owner_id, changes).await {
            tracing::warn!(owner_id = %args.owner_id, error = %e, "external-dns: failed to submit all changes");
            report.errors.push(e.to_string());
        } else {
            tracing::info!(owner_id = %args.owner_id, upserted = ?report.upserted, deleted = ?report.deleted,
                "external-dns: applied changes");
            if !report.upserted.is_empty() && !process.published {
                process.published = true;
                self.publish_latencies
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(clock.since(process.started));
            }
        }
        Ok(report)
    }

    /// The Running pod of the Deployment (the newest, when a rollout overlaps two) and the
    /// Deployment itself.
    fn running_pod(&self) -> Option<(String, Value)> {
        let ns = &self.opts.namespace;
        let d = self
            .store
            .get(&registry::DEPLOYMENT, Some(ns), &self.opts.deployment)
            .ok()?;
        let pods = super::workloads::deployment_pods(&self.store, &d);
        let uid = pods
            .iter()
            .filter(|p| super::workloads::running(p))
            .max_by_key(|p| {
                p.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .and_then(|p| p.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_string))?;
        Some((uid, d))
    }

    /// The process as the pods say: none without a pod, a new one for a new pod.
    fn lifecycle(&self, process: &mut Option<Process>) -> Result<(), ExternalDnsError> {
        match self.running_pod() {
            None => *process = None,
            Some((uid, _)) if process.as_ref().is_some_and(|p| p.pod_uid == uid) => {}
            Some((uid, d)) => {
                let args = Args::from_deployment(&d).map_err(ExternalDnsError::BadArgs)?;
                tracing::info!(owner_id = %args.owner_id, pod_uid = %uid, "external-dns: process started");
                *process = Some(Process {
                    pod_uid: uid,
                    args,
                    cache: None,
                    next_run: Instant::now(),
                    started: Instant::now(),
                    published: false,
                });
            }
        }
        let owner = process.as_ref().map(|p| p.args.owner_id.clone());
        *self.owner.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = owner;
        Ok(())
    }

    /// A tick of the controller loop: follow the pods, and sync when it is time.
    async fn tick(&self) -> Result<Option<ReconcileReport>, ExternalDnsError> {
        let mut process = self.process.lock().await;
        self.lifecycle(&mut process)?;
        let Some(p) = process.as_mut() else {
            return Ok(None);
        };
        if Instant::now() < p.next_run {
            return Ok(None);
        }
        // `ShouldRunOnce`: the next run is one interval after this one starts.
        p.next_run = Instant::now() + self.opts.clock.real(p.args.interval);
        self.run_once(p).await.map(Some)
    }
}

async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    // `Run` checks every second whether a sync is due.
    let tick = inner
        .opts
        .clock
        .real(Duration::from_secs(1))
        .max(Duration::from_millis(20));
    loop {
        if *stop.borrow() {
            return;
        }
        if let Err(e) = inner.tick().await {
            tracing::warn!(error = %e, "external-dns: sync failed");
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

impl ExternalDns {
    /// Start the controller of the Deployment [`ExternalDnsOptions::deployment`] of `store`.
    /// Must be called inside a tokio runtime.
    pub fn start(store: Store, opts: ExternalDnsOptions) -> Result<ExternalDns, ExternalDnsError> {
        let zone_id = opts.zone_id.trim_start_matches("/hostedzone/").to_string();
        if zone_id.is_empty() {
            return Err(ExternalDnsError::InvalidOptions("zone_id is empty".into()));
        }
        let credentials = aws_credential_types::Credentials::new(
            opts.access_key_id.clone(),
            opts.secret_access_key.clone(),
            None,
            None,
            "ferry-sim-external-dns",
        );
        let config = aws_sdk_route53::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(opts.region.clone()))
            .credentials_provider(credentials)
            .endpoint_url(opts.endpoint_url.clone())
            .build();
        let inner = Arc::new(Inner {
            store,
            zone_id,
            client: Client::from_conf(config),
            opts,
            process: tokio::sync::Mutex::new(None),
            owner: Mutex::new(None),
            publish_latencies: Mutex::new(Vec::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = inner.opts.background.then(|| tokio::spawn(run(inner.clone(), stop_rx)));
        Ok(ExternalDns {
            inner,
            stop,
            task: Mutex::new(task),
        })
    }

    /// Run one sync now (after any sync in progress) and return what it did; the process
    /// must be running (it starts, with empty caches, when its pod does). The next sync of its
    /// own comes one interval later.
    pub async fn reconcile_now(&self) -> Result<ReconcileReport, ExternalDnsError> {
        let mut process = self.inner.process.lock().await;
        self.inner.lifecycle(&mut process)?;
        let p = process.as_mut().ok_or_else(|| {
            ExternalDnsError::NotRunning(format!("{}/{}", self.inner.opts.namespace, self.inner.opts.deployment))
        })?;
        p.next_run = Instant::now() + self.inner.opts.clock.real(p.args.interval);
        self.inner.run_once(p).await
    }

    /// Drop the registry's cache and sync now: the process reads the zone whole, as one does
    /// at least once an hour (what a long-running external-dns has seen). Environments use it
    /// to start from the steady state of a management cluster that ran for a while.
    pub async fn refresh_now(&self) -> Result<ReconcileReport, ExternalDnsError> {
        let mut process = self.inner.process.lock().await;
        self.inner.lifecycle(&mut process)?;
        let p = process.as_mut().ok_or_else(|| {
            ExternalDnsError::NotRunning(format!("{}/{}", self.inner.opts.namespace, self.inner.opts.deployment))
        })?;
        p.cache = None;
        self.inner.run_once(p).await
    }

    /// The `--txt-owner-id` of the running process, if one runs.
    pub fn owner_id(&self) -> Option<String> {
        self.inner
            .owner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// For each process (pod) that created records, how long after it started it had them
    /// in Route53 (upstream time): the DNS leg of a cut-over's physical minimum.
    pub fn publish_latencies(&self) -> Vec<Duration> {
        self.inner
            .publish_latencies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The options the controller runs with.
    pub fn options(&self) -> &ExternalDnsOptions {
        &self.inner.opts
    }

    /// Stop the background loop (a sync in progress finishes first) and wait for it.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

impl Drop for ExternalDns {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args() -> Args {
        let ed = super::super::install::ExternalDnsInstall {
            domain_filter: "example.com".into(),
            txt_owner_id: "owner-a".into(),
            interval: "1m".into(),
        };
        Args::from_deployment(&super::super::install::external_dns_deployment(&ed)).unwrap()
    }

    #[test]
    fn the_deployments_arguments_make_the_process() {
        let a = args();
        assert_eq!(a.owner_id, "owner-a");
        assert_eq!(a.interval, Duration::from_secs(60));
        assert_eq!(a.txt_cache_interval, Duration::from_secs(3600));
        assert_eq!(a.txt_suffix, "-external-dns");
        let private = json!({"metadata": {"labels": {ROUTE_VISIBILITY_LABEL: "private"}}});
        assert!(!a.label_filter.matches_object(&private));
        assert!(a.label_filter.matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn txt_names_in_both_formats_map_back_to_their_host() {
        let a = args();
        assert_eq!(a.txt_name("api-hc1.example.com"), "api-hc1-external-dns.example.com");
        assert_eq!(
            a.new_txt_name("api-hc1.example.com", "cname"),
            "cname-api-hc1-external-dns.example.com"
        );
        for txt in [
            "api-hc1-external-dns.example.com",
            "cname-api-hc1-external-dns.example.com",
        ] {
            assert_eq!(a.host_of_txt(txt).as_deref(), Some("api-hc1.example.com"));
        }
        assert_eq!(a.host_of_txt("api-hc1.example.com"), None);
        assert!(a.in_domain("api.example.com") && a.in_domain("example.com") && !a.in_domain("badexample.com"));
    }

    #[test]
    fn parses_txt_values() {
        let t = parse_txt("\"heritage=external-dns,external-dns/owner=b,external-dns/resource=route/n/r\"");
        assert_eq!(
            t,
            Some(TxtOwnership {
                owner: "b".into(),
                resource: Some("route/n/r".into())
            })
        );
        assert_eq!(parse_txt("\"v=spf1 -all\""), None);
    }

    #[test]
    fn routes_publish_their_admitted_ingress_only() {
        let admitted = json!({"ingress": [{"host": "a.example.com", "routerCanonicalHostname": "router.x",
            "conditions": [{"type": "Admitted", "status": "True"}]}]});
        let r = json!({"metadata": {"namespace": "n", "name": "r"}, "spec": {"host": "a.example.com"},
            "status": {"ingress": [{"routerCanonicalHostname": "router.x",
                "conditions": [{"type": "Admitted", "status": "False"}]}]}});
        assert!(route_desired(&r).is_none(), "a route no router admitted has no target");
        let r = json!({"metadata": {"namespace": "n", "name": "r"}, "spec": {"host": "A.example.com."},
            "status": admitted});
        assert_eq!(
            route_desired(&r).unwrap(),
            ("a.example.com".into(), "router.x".into(), "route/n/r".into())
        );
    }

    #[test]
    fn load_balancers_are_aliases_and_other_targets_cnames() {
        let (set, kind) = address_set("api.example.com", "router-x.source.elb.us-east-1.amazonaws.com").unwrap();
        assert_eq!((set.r#type(), kind), (&RrType::A, "cname"));
        assert_eq!(record_target(&set), "router-x.source.elb.us-east-1.amazonaws.com");
        let (set, kind) = address_set("api.example.com", "vpce.example").unwrap();
        assert_eq!((set.r#type(), kind), (&RrType::Cname, "cname"));
        let (set, kind) = address_set("api.example.com", "10.0.0.1").unwrap();
        assert_eq!((set.r#type(), kind), (&RrType::A, "a"));
    }

    #[test]
    fn load_balancer_and_external_name_services_are_published() {
        let lb = json!({"metadata": {"namespace": "n", "name": "kube-apiserver",
            "annotations": {HOSTNAME_ANNOTATION: "api.example.com, API2.example.com"}},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.elb.amazonaws.com"}]}}});
        let d = service_desired(&lb);
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[1].0.as_str(), d[1].1.as_str()),
            ("api2.example.com", "lb.elb.amazonaws.com")
        );
        let pending = json!({"metadata": {"namespace": "n", "name": "x", "annotations": {HOSTNAME_ANNOTATION: "p.example.com"}},
            "spec": {"type": "LoadBalancer"}});
        assert!(service_desired(&pending).is_empty());
    }
}
