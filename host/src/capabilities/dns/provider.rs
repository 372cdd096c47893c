//! Route53: list record sets (with host-side pagination and a name filter),
//! apply change batches, and find a hosted zone by name.
//!
//! Names are compared and returned in one normal form: Route53's octal escapes
//! decoded (`\052` is `*`), lower case, no trailing dot. Route53 returns
//! wildcard records as `\052.example.com.`, so comparing raw names would miss
//! them.

use aws_credential_types::Credentials;
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    Change as SdkChange, ChangeAction as SdkChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};

use crate::capabilities::objects::provider::{S3Settings, sdk_config};
use crate::capabilities::provider::{NameEndpoint, ProviderError, Service, sdk_error};

/// Route53 is a global service; its API lives in us-east-1.
const ROUTE53_REGION: &str = "us-east-1";

/// Builds a Route53 client from the same settings shape as S3 (region
/// defaults to us-east-1; `endpoint_url` points at an emulator if set).
/// Without `credentials` the standard AWS credential chain is used.
pub async fn route53_client(settings: &S3Settings, credentials: Option<Credentials>) -> Client {
    let sdk = sdk_config(settings, credentials, ROUTE53_REGION).await;
    let conf = aws_sdk_route53::config::Builder::from(&sdk)
        .interceptor(NameEndpoint)
        .build();
    Client::from_conf(conf)
}

/// One resource record set, in the normal form described in the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    /// Fully qualified name: escapes decoded, lower case, no trailing dot.
    pub name: String,
    /// Record type: `A`, `CNAME`, `TXT`, ...
    pub rtype: String,
    /// Time to live in seconds (`None` for alias records).
    pub ttl: Option<u32>,
    /// The record values, as Route53 stores them (TXT values keep their quotes).
    pub values: Vec<String>,
    /// The DNS name an alias record points at (normal form), if it is one.
    pub alias_target: Option<String>,
    /// The set identifier of weighted/latency/failover/... records.
    pub set_identifier: Option<String>,
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    /// Create; fails with [`ProviderError::Conflict`] if the record set exists.
    Create,
    /// Create or replace.
    Upsert,
    /// Delete; the values and TTL must match the stored record set exactly.
    Delete,
}

impl ChangeAction {
    /// Route53's name for it (`CREATE`, `UPSERT`, `DELETE`).
    pub fn name(self) -> String {
        self.sdk().as_str().to_string()
    }

    fn sdk(self) -> SdkChangeAction {
        match self {
            ChangeAction::Create => SdkChangeAction::Create,
            ChangeAction::Upsert => SdkChangeAction::Upsert,
            ChangeAction::Delete => SdkChangeAction::Delete,
        }
    }
}

/// One change of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The action.
    pub action: ChangeAction,
    /// The record set it applies to.
    pub record: RecordSet,
}

/// A hosted zone found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedZone {
    /// The zone id without the `/hostedzone/` prefix.
    pub id: String,
    /// The zone's name in normal form.
    pub name: String,
    /// True for a private (VPC) zone.
    pub private_zone: bool,
}

/// Decodes Route53's `\ooo` octal escapes, lower-cases and drops the trailing dot.
pub fn normalize_name(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (bytes[i + 1] - b'0') as u32 * 64 + (bytes[i + 2] - b'0') as u32 * 8 + (bytes[i + 3] - b'0') as u32;
            // \400..\777 are not bytes; keep such text as it is.
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    let mut name = String::from_utf8_lossy(&out).to_ascii_lowercase();
    while name.ends_with('.') {
        name.pop();
    }
    name
}

/// True if `name` is `filter` or a name under it (both in any form).
pub fn name_matches(name: &str, filter: &str) -> bool {
    let name = normalize_name(name);
    let filter = normalize_name(filter);
    if filter.is_empty() {
        return true;
    }
    name == filter || name.strip_suffix(&filter).is_some_and(|head| head.ends_with('.'))
}

/// The zone id without Route53's `/hostedzone/` prefix.
pub fn normalize_zone_id(id: &str) -> &str {
    id.trim().trim_start_matches("/hostedzone/")
}

fn record_from_sdk(r: &ResourceRecordSet) -> RecordSet {
    RecordSet {
        name: normalize_name(r.name()),
        rtype: r.r#type().as_str().to_string(),
        ttl: r.ttl().and_then(|t| u32::try_from(t).ok()),
        values: r.resource_records().iter().map(|v| v.value().to_string()).collect(),
        alias_target: r.alias_target().map(|a| normalize_name(a.dns_name())),
        set_identifier: r.set_identifier().map(str::to_string),
    }
}

/// Lists the record sets of `zone_id` whose name is `name_filter` or ends in
/// `.name_filter` (all of them when `None`), following every page.
pub async fn list_record_sets(
    client: &Client,
    zone_id: &str,
    name_filter: Option<&str>,
) -> Result<Vec<RecordSet>, ProviderError> {
    list_record_sets_paged(client, zone_id, name_filter, None).await
}

/// [`list_record_sets`] with an explicit page size (Route53's `MaxItems`,
/// 1..=300; default 300). Tests use small pages to exercise pagination.
///
/// The whole zone is walked and filtered here rather than starting at the
/// filter name: Route53 sorts by reversed labels with escapes, and a start
/// point that is subtly wrong would silently drop records.
pub async fn list_record_sets_paged(
    client: &Client,
    zone_id: &str,
    name_filter: Option<&str>,
    page_size: Option<i32>,
) -> Result<Vec<RecordSet>, ProviderError> {
    let zone = normalize_zone_id(zone_id);
    if zone.is_empty() {
        return Err(ProviderError::Invalid("the hosted zone id is empty".into()));
    }
    let page_size = page_size.unwrap_or(300).clamp(1, 300);
    let mut out = Vec::new();
    let mut start: Option<(String, RrType, Option<String>)> = None;
    loop {
        let mut req = client
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .max_items(page_size);
        if let Some((name, rtype, ident)) = &start {
            req = req.start_record_name(name).start_record_type(rtype.clone());
            if let Some(ident) = ident {
                req = req.start_record_identifier(ident);
            }
        }
        let page = req
            .send()
            .await
            .map_err(|e| sdk_error(e, Service::Route53, &format!("listing records of hosted zone {zone}")))?;
        for r in page.resource_record_sets() {
            if name_filter.is_none_or(|f| name_matches(r.name(), f)) {
                out.push(record_from_sdk(r));
            }
        }
        if !page.is_truncated() {
            break;
        }
        let (Some(name), Some(rtype)) = (page.next_record_name(), page.next_record_type()) else {
            return Err(ProviderError::Other(format!(
                "listing records of hosted zone {zone}: Route53 said there are more pages but gave no start point"
            )));
        };
        let next = (
            name.to_string(),
            rtype.clone(),
            page.next_record_identifier().map(str::to_string),
        );
        // A server that hands back the same start point would loop forever.
        if start.as_ref() == Some(&next) {
            return Err(ProviderError::Other(format!(
                "listing records of hosted zone {zone}: pagination did not advance past {name} {}",
                rtype.as_str()
            )));
        }
        start = Some(next);
    }
    Ok(out)
}

fn record_to_sdk(zone: &str, r: &RecordSet) -> Result<ResourceRecordSet, ProviderError> {
    let label = format!("record {} {} in hosted zone {zone}", r.name, r.rtype);
    // Alias and routing-policy records need fields this record shape does not
    // carry (target zone id, weight, region, ...); writing them half-specified
    // would change routing, so refuse instead.
    if r.alias_target.is_some() {
        return Err(ProviderError::Invalid(format!(
            "{label}: alias records cannot be changed through ferry; change them with the AWS console or CLI"
        )));
    }
    if r.set_identifier.is_some() {
        return Err(ProviderError::Invalid(format!(
            "{label}: records with a set identifier (weighted, latency, failover, ...) cannot be changed through ferry"
        )));
    }
    if r.name.trim().is_empty() || r.rtype.trim().is_empty() {
        return Err(ProviderError::Invalid(format!("{label}: name and type are required")));
    }
    let Some(ttl) = r.ttl else {
        return Err(ProviderError::Invalid(format!("{label}: a TTL is required")));
    };
    if r.values.is_empty() {
        return Err(ProviderError::Invalid(format!(
            "{label}: at least one value is required"
        )));
    }
    let mut records = Vec::with_capacity(r.values.len());
    for v in &r.values {
        records.push(
            ResourceRecord::builder()
                .value(v)
                .build()
                .map_err(|e| ProviderError::Invalid(format!("{label}: bad value `{v}`: {e}")))?,
        );
    }
    ResourceRecordSet::builder()
        .name(&r.name)
        .r#type(RrType::from(r.rtype.to_ascii_uppercase().as_str()))
        .ttl(i64::from(ttl))
        .set_resource_records(Some(records))
        .build()
        .map_err(|e| ProviderError::Invalid(format!("{label}: {e}")))
}

/// Applies `changes` as one atomic batch and returns Route53's change id
/// (without the `/change/` prefix).
pub async fn change_record_sets(client: &Client, zone_id: &str, changes: Vec<Change>) -> Result<String, ProviderError> {
    let zone = normalize_zone_id(zone_id);
    if zone.is_empty() {
        return Err(ProviderError::Invalid("the hosted zone id is empty".into()));
    }
    if changes.is_empty() {
        return Err(ProviderError::Invalid(format!(
            "the change batch for hosted zone {zone} is empty"
        )));
    }
    let mut sdk_changes = Vec::with_capacity(changes.len());
    for c in &changes {
        let action = c.action.sdk();
        sdk_changes.push(
            SdkChange::builder()
                .action(action)
                .resource_record_set(record_to_sdk(zone, &c.record)?)
                .build()
                .map_err(|e| ProviderError::Invalid(format!("a change for hosted zone {zone}: {e}")))?,
        );
    }
    let batch = ChangeBatch::builder()
        .set_changes(Some(sdk_changes))
        .build()
        .map_err(|e| ProviderError::Invalid(format!("the change batch for hosted zone {zone}: {e}")))?;
    let out = client
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch)
        .send()
        .await
        .map_err(|e| {
            sdk_error(
                e,
                Service::Route53,
                &format!("applying {} record changes to hosted zone {zone}", changes.len()),
            )
        })?;
    let id = out.change_info().map(|c| c.id()).unwrap_or("");
    Ok(id.trim_start_matches("/change/").to_string())
}

/// Finds the hosted zone named `name`. Several zones with that name (a
/// public and a private one, say) give [`ProviderError::Conflict`] listing
/// their ids, because guessing would edit the wrong zone.
pub async fn find_zone_by_name(client: &Client, name: &str) -> Result<HostedZone, ProviderError> {
    let wanted = normalize_name(name);
    if wanted.is_empty() {
        return Err(ProviderError::Invalid("the hosted zone name is empty".into()));
    }
    let mut found = Vec::new();
    let mut next: Option<(String, Option<String>)> = Some((format!("{wanted}."), None));
    while let Some((dns_name, zone_id)) = next.take() {
        let mut req = client.list_hosted_zones_by_name().dns_name(&dns_name).max_items(100);
        if let Some(id) = &zone_id {
            req = req.hosted_zone_id(id);
        }
        let page = req
            .send()
            .await
            .map_err(|e| sdk_error(e, Service::Route53, &format!("looking up hosted zone `{wanted}`")))?;
        let mut past = false;
        for z in page.hosted_zones() {
            let zname = normalize_name(z.name());
            if zname == wanted {
                found.push(HostedZone {
                    id: normalize_zone_id(z.id()).to_string(),
                    name: zname,
                    private_zone: z.config().is_some_and(|c| c.private_zone()),
                });
            } else if !found.is_empty() {
                // Zones come sorted by name; once past the matches, stop.
                past = true;
                break;
            }
        }
        if !past
            && page.is_truncated()
            && let Some(n) = page.next_dns_name()
            && normalize_name(n) == wanted
        {
            next = Some((n.to_string(), page.next_hosted_zone_id().map(str::to_string)));
        }
    }
    match found.len() {
        0 => Err(ProviderError::NotFound(format!(
            "no hosted zone named `{wanted}` is visible to these credentials; check the name and the AWS account"
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(ProviderError::Conflict(format!(
            "several hosted zones are named `{wanted}` ({}); use the zone id instead",
            found
                .iter()
                .map(|z| format!("{}{}", z.id, if z.private_zone { " private" } else { " public" }))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized() {
        assert_eq!(normalize_name("\\052.Example.COM."), "*.example.com");
        assert_eq!(normalize_name("a\\100b.example.com"), "a@b.example.com");
        assert_eq!(normalize_name("trailing\\"), "trailing\\");
        assert_eq!(normalize_name("x\\05"), "x\\05");
        assert_eq!(normalize_name("x\\777y"), "x\\777y");
    }

    #[test]
    fn filter_matches_subtree_only() {
        assert!(name_matches("app.example.com.", "app.example.com"));
        assert!(name_matches("a.b.app.example.com.", "APP.example.com."));
        assert!(name_matches("\\052.app.example.com.", "app.example.com"));
        assert!(!name_matches("xapp.example.com.", "app.example.com"));
        assert!(!name_matches("example.com.", "app.example.com"));
        assert!(name_matches("anything.", ""));
    }

    #[test]
    fn zone_ids() {
        assert_eq!(normalize_zone_id("/hostedzone/Z123"), "Z123");
        assert_eq!(normalize_zone_id("Z123"), "Z123");
    }

    #[test]
    fn alias_and_routing_records_are_refused() {
        let mut r = RecordSet {
            name: "a.example.com".into(),
            rtype: "A".into(),
            ttl: Some(60),
            values: vec!["10.0.0.1".into()],
            alias_target: None,
            set_identifier: None,
        };
        assert!(record_to_sdk("Z", &r).is_ok());
        r.ttl = None;
        assert!(matches!(record_to_sdk("Z", &r), Err(ProviderError::Invalid(_))));
        r.ttl = Some(60);
        r.alias_target = Some("lb.example.com".into());
        assert!(matches!(record_to_sdk("Z", &r), Err(ProviderError::Invalid(_))));
    }
}
