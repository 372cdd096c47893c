//! An in-process external-dns for one simulated management cluster, behaving like the
//! external-dns that the HyperShift operator deploys (`cmd/install/assets/hypershift_operator.go`,
//! `ExternalDNSDeployment`): `--source=service --source=openshift-route --registry=txt
//! --txt-suffix=-external-dns --txt-owner-id=<owner> --domain-filter=<domain>
//! --label-filter=hypershift.openshift.io/route-visibility!=private --interval=1m`.
//!
//! It talks to a real Route53 API (moto, see [`crate::services::MotoServer`]) and, every
//! [`ExternalDnsOptions::interval`] and after every Route or Service change, reconciles one
//! hosted zone with the Routes and Services of its [`Store`]:
//!
//! - **Eligible objects**: any namespace, a hostname equal to the domain filter or ending in
//!   `.<domain filter>`, and not labelled `hypershift.openshift.io/route-visibility=private`
//!   (the label filter, which applies to every source).
//!   - Routes (`source/openshift_route.go`): `spec.host`, pointing at the router that admitted
//!     the route (`status.ingress[].routerCanonicalHostname`).
//!   - Services (`source/service.go`): the hostnames of the
//!     `external-dns.alpha.kubernetes.io/hostname` annotation (comma-separated), pointing at a
//!     LoadBalancer's `status.loadBalancer.ingress[].hostname` or an ExternalName's
//!     `spec.externalName`. Other Service types are not published.
//! - **Records**: per host, a `CNAME` to the target (else [`ExternalDnsOptions::target`]) with
//!   [`ExternalDnsOptions::ttl`], plus the ownership `TXT` record of the txt registry with the
//!   suffix: for host `<first-label>.<rest>` the TXT name is
//!   `<first-label><txt_suffix>.<rest>` (e.g. `api-hc1.example.com` →
//!   `api-hc1-external-dns.example.com`; this is the name the DR scripts grep for) and its value
//!   is `"heritage=external-dns,external-dns/owner=<owner>,external-dns/resource=<route|service>/<ns>/<name>"`.
//!   Real external-dns ≥ 0.12 also writes a second, type-prefixed TXT (`cname-<first-label>...`);
//!   this controller writes only the one above and reads only that one.
//! - **Ownership**: a host whose TXT names another owner is never updated or deleted (the
//!   conflict is logged and reported); a `CNAME`/`A` at a host without an ownership TXT is never
//!   touched either. A record set this owner created is deleted (both records) once no eligible
//!   object asks for its host.
//!
//! [`ExternalDns::reconcile_now`] runs one pass on demand and returns what it did, so tests can
//! be deterministic without sleeping.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::config::{BehaviorVersion, Region};
use aws_sdk_route53::error::DisplayErrorContext;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::kube::error::ApiError;
use crate::kube::registry;
use crate::kube::store::{ListOptions, Store, WatchFilter, WatchFrom, Watcher};

/// The TXT suffix HyperShift passes to external-dns.
pub const DEFAULT_TXT_SUFFIX: &str = "-external-dns";

/// The label whose value `private` keeps an object out of DNS (HyperShift's label filter).
pub const ROUTE_VISIBILITY_LABEL: &str = super::ROUTE_VISIBILITY_LABEL;

/// The annotation that names a Service's (or Route's) hostnames.
pub const HOSTNAME_ANNOTATION: &str = super::EXTERNAL_DNS_HOSTNAME_ANNOTATION;

/// Errors of the controller.
#[derive(Debug, thiserror::Error)]
pub enum ExternalDnsError {
    /// The options are unusable.
    #[error("invalid external-dns options: {0}")]
    InvalidOptions(String),
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

/// How an [`ExternalDns`] runs.
#[derive(Debug, Clone)]
pub struct ExternalDnsOptions {
    /// Route53 hosted zone id (with or without the `/hostedzone/` prefix).
    pub zone_id: String,
    /// `--domain-filter`: only hosts equal to it or below it are managed.
    pub domain_filter: String,
    /// `--txt-owner-id`.
    pub owner_id: String,
    /// `--interval`: time between periodic reconciles (HyperShift uses 1 minute).
    pub interval: Duration,
    /// Also reconcile right after any Route changes.
    pub watch_routes: bool,
    /// `--txt-suffix`.
    pub txt_suffix: String,
    /// TTL of the records created.
    pub ttl: i64,
    /// Route53 endpoint, e.g. a moto server's URL.
    pub endpoint_url: String,
    /// Signing region.
    pub region: String,
    /// Access key id (moto accepts anything).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl ExternalDnsOptions {
    /// HyperShift's settings for `owner_id` managing `domain_filter` in zone `zone_id` on the
    /// Route53 at `endpoint_url`.
    pub fn new(endpoint_url: &str, zone_id: &str, domain_filter: &str, owner_id: &str) -> Self {
        ExternalDnsOptions {
            zone_id: zone_id.to_string(),
            domain_filter: domain_filter.to_string(),
            owner_id: owner_id.to_string(),
            interval: Duration::from_secs(60),
            watch_routes: true,
            txt_suffix: DEFAULT_TXT_SUFFIX.to_string(),
            ttl: 300,
            endpoint_url: endpoint_url.to_string(),
            region: "us-east-1".to_string(),
            access_key_id: "testing".to_string(),
            secret_access_key: "testing".to_string(),
        }
    }

    /// The ownership TXT record name for `host`: `<first-label><suffix>.<rest>`.
    pub fn txt_name(&self, host: &str) -> String {
        match host.split_once('.') {
            Some((first, rest)) => format!("{first}{}.{rest}", self.txt_suffix),
            None => format!("{host}{}", self.txt_suffix),
        }
    }

    /// The host an ownership TXT name stands for, if it has the suffix.
    pub fn host_of_txt(&self, txt_name: &str) -> Option<String> {
        let (first, rest) = match txt_name.split_once('.') {
            Some((first, rest)) => (first, Some(rest)),
            None => (txt_name, None),
        };
        let label = first.strip_suffix(self.txt_suffix.as_str()).filter(|l| !l.is_empty())?;
        Some(match rest {
            Some(rest) => format!("{label}.{rest}"),
            None => label.to_string(),
        })
    }

    /// The unquoted TXT value for a record owned by this controller on behalf of `resource`.
    pub fn txt_value(&self, resource: &str) -> String {
        format!(
            "heritage=external-dns,external-dns/owner={},external-dns/resource={resource}",
            self.owner_id
        )
    }

    fn in_domain(&self, host: &str) -> bool {
        let domain = normalize(&self.domain_filter);
        domain.is_empty() || host == domain || host.ends_with(&format!(".{domain}"))
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

/// A host this controller wanted but left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The DNS name.
    pub host: String,
    /// The Route asking for it, `route/<ns>/<name>`.
    pub resource: String,
    /// The other owner id, or `None` when the existing record has no ownership TXT.
    pub owner: Option<String>,
}

/// What one reconcile pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Hosts whose records were created or updated.
    pub upserted: Vec<String>,
    /// Hosts whose records were deleted.
    pub deleted: Vec<String>,
    /// Hosts that were already right.
    pub unchanged: Vec<String>,
    /// Hosts left alone because another owner (or nobody) owns them.
    pub conflicts: Vec<Conflict>,
    /// Per-host Route53 failures (the pass goes on with the other hosts).
    pub errors: Vec<String>,
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
            .field("owner_id", &self.inner.opts.owner_id)
            .field("zone_id", &self.inner.zone_id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    opts: ExternalDnsOptions,
    zone_id: String,
    client: Client,
    /// Serialises passes (background loop and [`ExternalDns::reconcile_now`]).
    pass: tokio::sync::Mutex<()>,
}

/// Lowercase, without the trailing dot; Route53's `\052` escape is turned back into `*`.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').replace("\\052", "*").to_ascii_lowercase()
}

/// What a Route asks for.
struct Desired {
    target: String,
    resource: String,
}

/// Record sets at one name in the zone.
#[derive(Default)]
struct Existing {
    /// The CNAME or A record set at the host.
    address: Option<ResourceRecordSet>,
    /// The ownership TXT record set (at the TXT name) and what it says.
    txt: Option<(ResourceRecordSet, TxtOwnership)>,
}

fn build_err(e: impl std::fmt::Display) -> ExternalDnsError {
    ExternalDnsError::Build(e.to_string())
}

fn record_set(name: &str, rr_type: RrType, ttl: i64, value: &str) -> Result<ResourceRecordSet, ExternalDnsError> {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(rr_type)
        .ttl(ttl)
        .resource_records(ResourceRecord::builder().value(value).build().map_err(build_err)?)
        .build()
        .map_err(build_err)
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<Change, ExternalDnsError> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(build_err)
}

fn first_value(set: &ResourceRecordSet) -> Option<&str> {
    set.resource_records().first().map(|r| r.value())
}

/// The label filter HyperShift gives external-dns: `route-visibility!=private`.
fn filtered_out(obj: &Value) -> bool {
    obj["metadata"]["labels"][ROUTE_VISIBILITY_LABEL].as_str() == Some("private")
}

fn resource(kind: &str, obj: &Value) -> String {
    format!(
        "{kind}/{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// external-dns's OpenShift Route source (`source/ocproute.go`, `endpointsFromOcpRoute` and
/// `getTargetsFromRouteStatus`): the target is the `routerCanonicalHostname` of an ingress whose
/// first condition is `Admitted=True`; a route no router admitted yields no record.
fn route_desired(route: &Value) -> Option<(String, Desired)> {
    if filtered_out(route) {
        return None;
    }
    let host = normalize(route["spec"]["host"].as_str()?);
    if host.is_empty() {
        return None;
    }
    let target = route["status"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["conditions"][0]["type"] == "Admitted" && i["conditions"][0]["status"] == "True")
        .filter_map(|i| i["routerCanonicalHostname"].as_str())
        .find(|h| !h.is_empty())?
        .to_string();
    Some((
        host,
        Desired {
            target,
            resource: resource("route", route),
        },
    ))
}

/// The hosts a Service asks for: its hostname annotation, pointing at its load balancer or
/// external name.
fn service_desired(svc: &Value) -> Vec<(String, Desired)> {
    if filtered_out(svc) {
        return Vec::new();
    }
    let Some(hosts) = svc["metadata"]["annotations"][HOSTNAME_ANNOTATION].as_str() else {
        return Vec::new();
    };
    let target = match svc["spec"]["type"].as_str() {
        Some("LoadBalancer") => svc["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|i| i["hostname"].as_str().or(i["ip"].as_str()))
            .map(str::to_string),
        Some("ExternalName") => svc["spec"]["externalName"].as_str().map(str::to_string),
        _ => None,
    };
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return Vec::new();
    };
    hosts
        .split(',')
        .map(|h| normalize(h.trim()))
        .filter(|h| !h.is_empty())
        .map(|h| {
            (
                h,
                Desired {
                    target: target.clone(),
                    resource: resource("service", svc),
                },
            )
        })
        .collect()
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

    async fn apply(&self, changes: Vec<Change>) -> Result<(), ExternalDnsError> {
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes))
            .comment(format!("external-dns (ferry-sim) owner {}", self.opts.owner_id))
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

    async fn reconcile(&self) -> Result<ReconcileReport, ExternalDnsError> {
        let _pass = self.pass.lock().await;
        let opts = &self.opts;
        let mut report = ReconcileReport::default();

        // What the Routes and Services ask for; the first object (Routes, then Services, each
        // by namespace and name) wins a shared host.
        let routes = self.store.list(&registry::ROUTE, None, &ListOptions::default())?;
        let services = self.store.list(&registry::SERVICE, None, &ListOptions::default())?;
        let mut desired: BTreeMap<String, Desired> = BTreeMap::new();
        let wanted = routes
            .items
            .iter()
            .filter_map(route_desired)
            .chain(services.items.iter().flat_map(service_desired));
        for (host, want) in wanted {
            if opts.in_domain(&host) {
                desired.entry(host).or_insert(want);
            }
        }

        // What the zone has, per host.
        let mut zone: HashMap<String, Existing> = HashMap::new();
        for set in self.list_zone().await? {
            let name = normalize(set.name());
            match set.r#type() {
                RrType::Cname | RrType::A => {
                    zone.entry(name).or_default().address = Some(set);
                }
                RrType::Txt => {
                    let owned = opts.host_of_txt(&name).and_then(|host| {
                        set.resource_records()
                            .iter()
                            .find_map(|r| parse_txt(r.value()))
                            .map(|o| (host, o))
                    });
                    if let Some((host, ownership)) = owned {
                        zone.entry(host).or_default().txt = Some((set, ownership));
                    }
                }
                _ => {}
            }
        }

        for (host, want) in &desired {
            let existing = zone.get(host);
            let owner = existing.and_then(|e| e.txt.as_ref()).map(|(_, o)| o.owner.as_str());
            let has_address = existing.is_some_and(|e| e.address.is_some());
            if owner.is_some_and(|o| o != opts.owner_id) || (owner.is_none() && has_address) {
                let conflict = Conflict {
                    host: host.clone(),
                    resource: want.resource.clone(),
                    owner: owner.map(str::to_string),
                };
                tracing::warn!(owner_id = %opts.owner_id, host = %host, route = %want.resource,
                    other_owner = ?conflict.owner,
                    "external-dns: record is owned by someone else; not updating it");
                report.conflicts.push(conflict);
                continue;
            }
            let txt_value = format!("\"{}\"", opts.txt_value(&want.resource));
            let address_ok = existing.and_then(|e| e.address.as_ref()).is_some_and(|a| {
                a.r#type() == &RrType::Cname
                    && a.ttl() == Some(opts.ttl)
                    && first_value(a).map(normalize) == Some(normalize(&want.target))
            });
            let txt_ok = existing
                .and_then(|e| e.txt.as_ref())
                .is_some_and(|(t, _)| first_value(t) == Some(txt_value.as_str()));
            if address_ok && txt_ok {
                report.unchanged.push(host.clone());
                continue;
            }
            let mut changes = Vec::new();
            if let Some(a) = existing.and_then(|e| e.address.as_ref())
                && a.r#type() != &RrType::Cname
            {
                changes.push(change(ChangeAction::Delete, a.clone())?);
            }
            changes.push(change(
                ChangeAction::Upsert,
                record_set(host, RrType::Cname, opts.ttl, &want.target)?,
            )?);
            changes.push(change(
                ChangeAction::Upsert,
                record_set(&opts.txt_name(host), RrType::Txt, opts.ttl, &txt_value)?,
            )?);
            match self.apply(changes).await {
                Ok(()) => {
                    tracing::info!(owner_id = %opts.owner_id, host = %host, target = %want.target, "external-dns: upserted");
                    report.upserted.push(host.clone());
                }
                Err(e) => report.errors.push(format!("{host}: {e}")),
            }
        }

        // Records this owner created for hosts no Route asks for any more.
        let mut stale: Vec<(&String, &Existing)> = zone
            .iter()
            .filter(|(host, e)| {
                !desired.contains_key(*host)
                    && opts.in_domain(host)
                    && e.txt.as_ref().is_some_and(|(_, o)| o.owner == opts.owner_id)
            })
            .collect();
        stale.sort_by(|a, b| a.0.cmp(b.0));
        for (host, existing) in stale {
            let mut changes = Vec::new();
            if let Some(a) = &existing.address {
                changes.push(change(ChangeAction::Delete, a.clone())?);
            }
            if let Some((t, _)) = &existing.txt {
                changes.push(change(ChangeAction::Delete, t.clone())?);
            }
            match self.apply(changes).await {
                Ok(()) => {
                    tracing::info!(owner_id = %opts.owner_id, host = %host, "external-dns: deleted");
                    report.deleted.push(host.clone());
                }
                Err(e) => report.errors.push(format!("{host}: {e}")),
            }
        }
        Ok(report)
    }
}

/// Wait for a change of a Route or a Service (false: the watch expired).
async fn next_route_change(watcher: &mut Option<Watcher>) -> bool {
    let Some(w) = watcher else {
        return std::future::pending().await;
    };
    loop {
        match w.next().await {
            Ok(ev) if ev.kind.same_resource(&registry::ROUTE) || ev.kind.same_resource(&registry::SERVICE) => {
                return true;
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let watch_routes = || {
        inner
            .opts
            .watch_routes
            .then(|| inner.store.watch(WatchFilter::default(), WatchFrom::Now).ok())
            .flatten()
    };
    let mut watcher = watch_routes();
    loop {
        if *stop.borrow() {
            return;
        }
        match inner.reconcile().await {
            Ok(r) => {
                if !r.errors.is_empty() {
                    tracing::warn!(owner_id = %inner.opts.owner_id, errors = ?r.errors, "external-dns: some changes failed");
                }
            }
            Err(e) => tracing::warn!(owner_id = %inner.opts.owner_id, error = %e, "external-dns: reconcile failed"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(inner.opts.interval) => {}
            ok = next_route_change(&mut watcher) => {
                if ok {
                    // Coalesce a burst of Route changes into one pass.
                    if let Some(w) = watcher.as_mut() {
                        while let Some(Ok(_)) = w.try_next() {}
                    }
                } else {
                    // 410 Expired: start over from now; the pass below relists anyway.
                    watcher = watch_routes();
                }
            }
        }
    }
}

impl ExternalDns {
    /// Start the controller for the Routes of `store`. Must be called inside a tokio runtime.
    /// The first pass starts at once in the background.
    pub fn start(store: Store, opts: ExternalDnsOptions) -> Result<ExternalDns, ExternalDnsError> {
        if opts.owner_id.is_empty() {
            return Err(ExternalDnsError::InvalidOptions("owner_id is empty".into()));
        }
        if opts.txt_suffix.is_empty() {
            return Err(ExternalDnsError::InvalidOptions("txt_suffix is empty".into()));
        }
        let zone_id = opts.zone_id.trim_start_matches("/hostedzone/").to_string();
        if zone_id.is_empty() {
            return Err(ExternalDnsError::InvalidOptions("zone_id is empty".into()));
        }
        if opts.interval.is_zero() {
            return Err(ExternalDnsError::InvalidOptions("interval is zero".into()));
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
            pass: tokio::sync::Mutex::new(()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(inner.clone(), stop_rx));
        Ok(ExternalDns {
            inner,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Run one reconcile pass now (after any pass in progress) and return what it did.
    pub async fn reconcile_now(&self) -> Result<ReconcileReport, ExternalDnsError> {
        self.inner.reconcile().await
    }

    /// The options the controller runs with.
    pub fn options(&self) -> &ExternalDnsOptions {
        &self.inner.opts
    }

    /// Stop the background loop (a pass in progress finishes first) and wait for it.
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

    #[test]
    fn txt_names_round_trip() {
        let o = ExternalDnsOptions::new("http://x", "Z1", "example.com", "owner-a");
        assert_eq!(o.txt_name("api-hc1.example.com"), "api-hc1-external-dns.example.com");
        assert_eq!(
            o.host_of_txt("api-hc1-external-dns.example.com").as_deref(),
            Some("api-hc1.example.com")
        );
        assert_eq!(o.host_of_txt("api-hc1.example.com"), None);
        assert!(o.in_domain("api.example.com") && o.in_domain("example.com") && !o.in_domain("badexample.com"));
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
    fn private_and_unadmitted_routes_are_skipped() {
        let admitted = json!({"ingress": [{"routerCanonicalHostname": "router.x",
            "conditions": [{"type": "Admitted", "status": "True"}]}]});
        let r = json!({"metadata": {"namespace": "n", "name": "r",
            "labels": {ROUTE_VISIBILITY_LABEL: "private"}}, "spec": {"host": "a.example.com"}, "status": admitted});
        assert!(route_desired(&r).is_none());
        let r = json!({"metadata": {"namespace": "n", "name": "r"}, "spec": {"host": "a.example.com"},
            "status": {"ingress": [{"routerCanonicalHostname": "router.x",
                "conditions": [{"type": "Admitted", "status": "False"}]}]}});
        assert!(route_desired(&r).is_none(), "a route no router admitted has no target");
        let r = json!({"metadata": {"namespace": "n", "name": "r"}, "spec": {"host": "A.example.com."},
            "status": admitted});
        let (host, d) = route_desired(&r).unwrap();
        assert_eq!(
            (host.as_str(), d.target.as_str(), d.resource.as_str()),
            ("a.example.com", "router.x", "route/n/r")
        );
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
            (d[1].0.as_str(), d[1].1.target.as_str()),
            ("api2.example.com", "lb.elb.amazonaws.com")
        );
        assert_eq!(d[0].1.resource, "service/n/kube-apiserver");
        let ext = json!({"metadata": {"namespace": "n", "name": "x", "annotations": {HOSTNAME_ANNOTATION: "p.example.com"}},
            "spec": {"type": "ExternalName", "externalName": "vpce.example"}});
        assert_eq!(service_desired(&ext)[0].1.target, "vpce.example");
        let cluster_ip = json!({"metadata": {"namespace": "n", "name": "x", "annotations": {HOSTNAME_ANNOTATION: "p.example.com"}},
            "spec": {"type": "ClusterIP"}});
        assert!(service_desired(&cluster_ip).is_empty());
        let pending = json!({"metadata": {"namespace": "n", "name": "x", "annotations": {HOSTNAME_ANNOTATION: "p.example.com"}},
            "spec": {"type": "LoadBalancer"}});
        assert!(service_desired(&pending).is_empty());
    }
}
