//! DNS as a hosted cluster's clients see it: the Route53 zone external-dns writes ([`Zone`],
//! read through the real Route53 API of the environment), and the resolver of the hosted
//! cluster's VPC ([`Resolver`]), which caches answers as resolvers do: a found name for its
//! record's TTL (an ALIAS for the load balancer's 60 s), a missing one (NXDOMAIN) for the
//! zone's negative TTL (RFC 2308: the lesser of the SOA's TTL and its minimum; Route53's
//! default SOA gives 900 s, a scenario knob). A name looked up while the source's records are
//! gone and the destination's not yet there stays unresolvable for that long, whatever Route53
//! says by then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_route53::types::RrType;

use super::environment::DnsLookup;
use crate::clock::SimClock;

/// The TTL resolvers give an ALIAS answer: the load balancer's own (60 s for ELB names).
pub const ALIAS_TTL: Duration = Duration::from_secs(60);

/// An address record of the zone: its name, target (CNAME value or ALIAS DNS name) and TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The target the name resolves to.
    pub target: String,
    /// How long a resolver may keep it.
    pub ttl: Duration,
}

/// (name, answer) of each A/CNAME record.
type Records = Arc<Vec<(String, Answer)>>;

/// The Route53 zone, read at most every half second (the time a change takes to reach
/// Route53's name servers) and shared by every reader, so that twenty hosted clusters cost
/// Route53 one read, not twenty.
pub struct Zone {
    client: aws_sdk_route53::Client,
    zone_id: String,
    last: tokio::sync::Mutex<Option<(Instant, Records)>>,
}

impl std::fmt::Debug for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zone")
            .field("zone_id", &self.zone_id)
            .finish_non_exhaustive()
    }
}

fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    /// The zone of `dns`.
    pub fn new(dns: &DnsLookup) -> Arc<Self> {
        let conf = aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .region(aws_sdk_route53::config::Region::new(dns.region.clone()))
            .endpoint_url(&dns.endpoint_url)
            .credentials_provider(aws_credential_types::Credentials::new(
                "sim",
                "sim",
                None,
                None,
                "ferry-sim",
            ))
            .build();
        Arc::new(Zone {
            client: aws_sdk_route53::Client::from_conf(conf),
            zone_id: dns.zone_id.clone(),
            last: tokio::sync::Mutex::new(None),
        })
    }

    /// The address records, read again when the last read is older than half a second (a
    /// failed read is an empty zone: nothing resolves, as for a resolver that cannot reach DNS).
    async fn records(&self) -> Records {
        let mut last = self.last.lock().await;
        if let Some((at, records)) = &*last
            && at.elapsed() < Duration::from_millis(500)
        {
            return records.clone();
        }
        let mut records = Vec::new();
        let mut start: Option<(String, RrType)> = None;
        loop {
            let mut req = self.client.list_resource_record_sets().hosted_zone_id(&self.zone_id);
            if let Some((name, ty)) = &start {
                req = req.start_record_name(name).start_record_type(ty.clone());
            }
            let Ok(page) = req.send().await else { break };
            for r in page.resource_record_sets() {
                if !matches!(r.r#type(), RrType::A | RrType::Cname) {
                    continue;
                }
                let answer = match r.alias_target() {
                    Some(a) => Answer {
                        target: normalize(a.dns_name()),
                        ttl: ALIAS_TTL,
                    },
                    None => match r.resource_records().first() {
                        Some(v) => Answer {
                            target: normalize(v.value()),
                            ttl: Duration::from_secs(r.ttl().unwrap_or(300).max(0) as u64),
                        },
                        None => continue,
                    },
                };
                records.push((normalize(r.name()), answer));
            }
            match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
                (true, Some(n), Some(t)) => start = Some((n.to_string(), t.clone())),
                _ => break,
            }
        }
        let records = Arc::new(records);
        *last = Some((Instant::now(), records.clone()));
        records
    }

    /// What the zone answers for `host` now (authoritative: no cache of its own).
    pub async fn lookup(&self, host: &str) -> Option<Answer> {
        let host = normalize(host);
        self.records()
            .await
            .iter()
            .find(|(name, _)| *name == host)
            .map(|(_, a)| a.clone())
    }
}

/// The management cluster (index in `clusters`) a load balancer target belongs to: the
/// simulated routers' hostnames name their cluster (`<lb>.<cluster>.elb.<region>...`).
pub fn cluster_of(target: &str, clusters: &[String]) -> Option<usize> {
    clusters.iter().position(|c| target.contains(&format!(".{c}.elb.")))
}

/// A caching resolver (a VPC's): answers from the zone, kept for their TTL on the
/// simulator's clock; NXDOMAIN kept for the negative TTL.
#[derive(Debug)]
pub struct Resolver {
    zone: Arc<Zone>,
    clock: SimClock,
    negative_ttl: Duration,
    /// name → (answer, until when it is kept).
    cache: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl Resolver {
    /// A resolver in front of `zone`, keeping NXDOMAIN for `negative_ttl` (upstream time).
    pub fn new(zone: Arc<Zone>, clock: SimClock, negative_ttl: Duration) -> Arc<Self> {
        Arc::new(Resolver {
            zone,
            clock,
            negative_ttl,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The target `host` resolves to now, `None` for NXDOMAIN.
    pub async fn resolve(&self, host: &str) -> Option<String> {
        let host = normalize(host);
        {
            let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((answer, until)) = cache.get(&host)
                && Instant::now() < *until
            {
                return answer.clone();
            }
        }
        let found = self.zone.lookup(&host).await;
        let (answer, ttl) = match found {
            Some(a) => (Some(a.target), a.ttl),
            None => (None, self.negative_ttl),
        };
        let until = Instant::now() + self.clock.real(ttl);
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(host, (answer.clone(), until));
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_names_its_management_cluster() {
        let clusters = vec!["source".to_string(), "destination".to_string()];
        assert_eq!(
            cluster_of("router-clusters-a.destination.elb.us-east-1.amazonaws.com", &clusters),
            Some(1)
        );
        assert_eq!(cluster_of("elsewhere.example.com", &clusters), None);
    }
}
