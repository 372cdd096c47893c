//! An in-process external-dns for one simulated management cluster, behaving like the
//! external-dns that the HyperShift operator deploys:
//! `--source=openshift-route --registry=txt --txt-suffix=-external-dns --txt-owner-id=<owner>
//! --domain-filter=<domain> --interval=1m`.
//!
//! It talks to a real Route53 API (moto, see [`crate::services::MotoServer`]) and, every
//! [`ExternalDnsOptions::interval`] and after every Route change, reconciles one hosted zone
//! with the Routes of its [`Store`]:
//!
//! - **Eligible Routes**: any namespace, `spec.host` equal to the domain filter or ending in
//!   `.<domain filter>`, and not private. A Route is private (skipped) when it carries the label
//!   `hypershift.openshift.io/internal-route=true` (what HyperShift puts on its internal routes)
//!   or the label `hypershift.openshift.io/route-visibility=private` (what HyperShift's
//!   external-dns label filter excludes).
//! - **Records**: per host, a `CNAME` to the route's router
//!   (`status.ingress[].routerCanonicalHostname`, else [`ExternalDnsOptions::target`]) with
//!   [`ExternalDnsOptions::ttl`], plus the ownership `TXT` record of the txt registry with the
//!   suffix: for host `<first-label>.<rest>` the TXT name is
//!   `<first-label><txt_suffix>.<rest>` (e.g. `api-hc1.example.com` →
//!   `api-hc1-external-dns.example.com`; this is the name the DR scripts grep for) and its value
//!   is `"heritage=external-dns,external-dns/owner=<owner>,external-dns/resource=route/<ns>/<name>"`.
//!   Real external-dns ≥ 0.12 also writes a second, type-prefixed TXT (`cname-<first-label>...`);
//!   this controller writes only the one above and reads only that one.
//! - **Ownership**: a host whose TXT names another owner is never updated or deleted (the
//!   conflict is logged and reported); a `CNAME`/`A` at a host without an ownership TXT is never
//!   touched either. A record set this owner created is deleted (both records) once no eligible
//!   Route asks for its host.
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

use crate::error::ApiError;
use crate::registry;
use crate::store::{ListOptions, Store, WatchFilter, WatchFrom, Watcher};

/// The TXT suffix HyperShift passes to external-dns.
pub const DEFAULT_TXT_SUFFIX: &str = "-external-dns";

/// Label HyperShift sets on routes that must not be published.
pub const INTERNAL_ROUTE_LABEL: &str = "hypershift.openshift.io/internal-route";

/// Label whose value `private` also excludes a route.
pub const ROUTE_VISIBILITY_LABEL: &str = "hypershift.openshift.io/route-visibility";

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
    /// CNAME target for routes without `status.ingress[].routerCanonicalHostname`.
    pub target: String,
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
    /// Route53 at `endpoint_url`; the default target is `router-default.<owner_id>.ferry-sim.invalid`
    /// so that records of different clusters are told apart.
    pub fn new(endpoint_url: &str, zone_id: &str, domain_filter: &str, owner_id: &str) -> Self {
        ExternalDnsOptions {
            zone_id: zone_id.to_string(),
            domain_filter: domain_filter.to_string(),
            owner_id: owner_id.to_string(),
            interval: Duration::from_secs(60),
            watch_routes: true,
            txt_suffix: DEFAULT_TXT_SUFFIX.to_string(),
            target: format!("router-default.{owner_id}.ferry-sim.invalid"),
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

fn route_desired(route: &Value, default_target: &str) -> Option<(String, Desired)> {
    let meta = &route["metadata"];
    let labels = &meta["labels"];
    if labels[INTERNAL_ROUTE_LABEL].as_str() == Some("true")
        || labels[ROUTE_VISIBILITY_LABEL].as_str() == Some("private")
    {
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
        .filter_map(|i| i["routerCanonicalHostname"].as_str())
        .find(|h| !h.is_empty())
        .unwrap_or(default_target)
        .to_string();
    let resource = format!(
        "route/{}/{}",
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default()
    );
    Some((host, Desired { target, resource }))
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

        // What the Routes ask for; the first Route (by namespace, name) wins a shared host.
        let routes = self.store.list(&registry::ROUTE, None, &ListOptions::default())?;
        let mut desired: BTreeMap<String, Desired> = BTreeMap::new();
        for route in &routes.items {
            if let Some((host, want)) = route_desired(route, &opts.target)
                && opts.in_domain(&host)
            {
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

async fn next_route_change(watcher: &mut Option<Watcher>) -> bool {
    match watcher {
        Some(w) => w.next().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let watch_routes = || {
        inner
            .opts
            .watch_routes
            .then(|| {
                inner
                    .store
                    .watch(WatchFilter::kind(&registry::ROUTE), WatchFrom::Now)
                    .ok()
            })
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
    fn private_routes_are_skipped() {
        let r = json!({"metadata": {"namespace": "n", "name": "r",
            "labels": {INTERNAL_ROUTE_LABEL: "true"}}, "spec": {"host": "a.example.com"}});
        assert!(route_desired(&r, "t").is_none());
        let r = json!({"metadata": {"namespace": "n", "name": "r"}, "spec": {"host": "A.example.com."},
            "status": {"ingress": [{"routerCanonicalHostname": "router.x"}]}});
        let (host, d) = route_desired(&r, "t").unwrap();
        assert_eq!(
            (host.as_str(), d.target.as_str(), d.resource.as_str()),
            ("a.example.com", "router.x", "route/n/r")
        );
    }
}
