//! One ferry at a time per hosted cluster: a `coordination.k8s.io` Lease.
//!
//! Two operators running backup, restore, teardown or abort on the same hosted cluster at the
//! same time would interleave pauses, scale-downs and deletions. Before a phase that changes
//! anything, ferry takes the Lease `ferry-dr-<namespace>-<name>` in the `hypershift` namespace
//! of the cluster the phase changes (the namespace exists on every management cluster before
//! the hosted cluster does, unlike the hosted cluster's own), and renews it while the phase
//! runs. A second ferry is refused with who holds it and since when. A holder that died (kill
//! -9) stops renewing: its Lease can be taken over once `leaseDurationSeconds` have passed
//! since the last renewal, or at once with `--break-lease` (audited by the caller). Taking it
//! is a create, or a replace under the `resourceVersion` that was read, so of two ferries
//! racing for it exactly one wins.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};

/// How long a Lease stays valid without a renewal.
pub const DURATION: Duration = Duration::from_secs(60);
/// How often a held Lease is renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(15);
/// The namespace the Leases live in.
pub const NAMESPACE: &str = "hypershift";

/// Why the Lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another ferry holds it and renews it.
    #[error(
        "another ferry is working on this hosted cluster: lease {NAMESPACE}/{name} on `{cluster}` is held by \
         {holder} since {since} (renewed {renewed}). Wait for it to finish; if that process is gone, the lease \
         expires {expires}, or take it now with --break-lease"
    )]
    Held {
        /// The cluster alias.
        cluster: String,
        /// The Lease's name.
        name: String,
        /// Who holds it.
        holder: String,
        /// When it was taken.
        since: String,
        /// When it was last renewed.
        renewed: String,
        /// When it expires without a renewal.
        expires: String,
    },
    /// The API server refused or failed.
    #[error("cannot take lease {NAMESPACE}/{name} on `{cluster}`: {message}")]
    Api {
        /// The cluster alias.
        cluster: String,
        /// The Lease's name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// The name of the Lease of hosted cluster `namespace/name`.
pub fn lease_name(namespace: &str, name: &str) -> String {
    format!("ferry-dr-{namespace}-{name}").replace('.', "-")
}

/// Who is taking the Lease, for `holderIdentity`: host name, process id, the phase run's
/// number in this process and the time. Unique per phase run, also within one process: two
/// phases of one process (a fleet, or a test) must exclude each other, and taking the Lease
/// treats a Lease with our own identity as ours (the lost answer to our own create).
pub fn holder_identity() -> String {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!(
        "ferry@{host} pid {} run {run} ({})",
        std::process::id(),
        rfc3339(Timestamp::now())
    )
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// When a Lease renewed at `renewed` for `seconds` expires.
fn expiry(renewed: Timestamp, seconds: Option<i32>) -> Timestamp {
    renewed
        .checked_add(SignedDuration::from_secs(i64::from(seconds.unwrap_or(0))))
        .unwrap_or(renewed)
}

/// A Lease this process holds; renewed in the background until [`Held::release`] (or drop,
/// which stops renewing and lets it expire).
pub struct Held {
    api: Api<Lease>,
    name: String,
    holder: String,
    /// Whether another holder's live Lease was broken to take it.
    pub broke: Option<String>,
    _renewal: ferry::task::Owned<()>,
}

impl Held {
    /// Gives the Lease up (deletes it if this process still holds it). Transient failures
    /// are retried as taking it is: a Lease left behind holds the next phase off until it
    /// expires.
    pub async fn release(self) {
        let mut backoff = Backoff::new();
        loop {
            let failed = match self.api.get_opt(&self.name).await {
                Ok(Some(l)) if holder_of(&l) == Some(self.holder.as_str()) => {
                    let dp = DeleteParams {
                        preconditions: Some(Preconditions {
                            resource_version: l.metadata.resource_version.clone(),
                            uid: None,
                        }),
                        ..DeleteParams::default()
                    };
                    match self.api.delete(&self.name, &dp).await {
                        Ok(_) => return,
                        // Gone already (our delete's answer was lost), or renewed in between.
                        Err(kube::Error::Api(s)) if s.code == 404 => return,
                        Err(e) => e,
                    }
                }
                Ok(Some(_)) => {
                    tracing::warn!(lease = %self.name, "the lease was taken by another ferry before release");
                    return;
                }
                Ok(None) => return,
                Err(e) => e,
            };
            if !worth_retrying(&failed) || !backoff.wait().await {
                tracing::warn!(lease = %self.name, error = %ferry::capabilities::k8s::provider::describe_kube_error(&failed), "could not release the lease; it expires on its own");
                return;
            }
        }
    }
}

/// Whether an attempt at the Lease is tried again from the read: a transient failure, or
/// another writer between our read and our write (409).
pub(crate) fn worth_retrying(e: &kube::Error) -> bool {
    ferry::capabilities::k8s::provider::is_transient(e) || matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The pauses between attempts at the Lease: 200 ms, doubling, [`ATTEMPTS`] tries in all.
pub(crate) struct Backoff {
    tried: u32,
    delay: Duration,
}

impl Backoff {
    /// The first attempt is being made.
    pub(crate) fn new() -> Self {
        Backoff {
            tried: 1,
            delay: Duration::from_millis(200),
        }
    }

    /// Whether every attempt has been made.
    fn used_up(&self) -> bool {
        self.tried >= ATTEMPTS
    }

    /// Waits before the next attempt; false, without waiting, when every attempt is used.
    pub(crate) async fn wait(&mut self) -> bool {
        if self.used_up() {
            return false;
        }
        tokio::time::sleep(self.delay).await;
        self.delay *= 2;
        self.tried += 1;
        true
    }
}

fn holder_of(l: &Lease) -> Option<&str> {
    l.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
}

fn lease(name: &str, holder: &str, now: Timestamp, resource_version: Option<String>) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            resource_version,
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(DURATION.as_secs() as i32),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: None,
            ..LeaseSpec::default()
        }),
    }
}

/// How often taking the Lease is tried when the API server fails transiently.
const ATTEMPTS: u32 = 6;

/// Takes the Lease `name` on `cluster` for `holder`, or says who holds it. Transient failures
/// (429, 5xx, a dropped connection) and a conflicting write are retried from the read, with
/// backoff: a lost answer to our own create shows up as a Lease we already hold.
pub async fn acquire(
    client: kube::Client,
    cluster: &str,
    name: &str,
    holder: &str,
    break_lease: bool,
) -> Result<Held, LeaseError> {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    let mut backoff = Backoff::new();
    let broke = loop {
        match try_acquire(&api, cluster, name, holder, break_lease).await {
            Ok(broke) => break broke,
            Err(Attempt::Refused(e)) => return Err(e),
            Err(Attempt::Retry(e)) => {
                let described = ferry::capabilities::k8s::provider::describe_kube_error(&e);
                if !backoff.used_up() {
                    tracing::warn!(lease = %name, %cluster, error = %described, "taking the lease failed; retrying");
                    backoff.wait().await;
                    continue;
                }
                return Err(LeaseError::Api {
                    cluster: cluster.to_string(),
                    name: name.to_string(),
                    message: format!(
                        "{described} (tried {ATTEMPTS} times); check that the cluster's API server is up, then run the same command again"
                    ),
                });
            }
        }
    };
    let renewal = {
        let (api, name, holder) = (api.clone(), name.to_string(), holder.to_string());
        ferry::task::Owned::spawn(async move { renew(api, name, holder).await })
    };
    Ok(Held {
        api,
        name: name.to_string(),
        holder: holder.to_string(),
        broke,
        _renewal: renewal,
    })
}

/// Why one attempt at the Lease did not take it.
enum Attempt {
    /// Another holder has it, or the API refused for good.
    Refused(LeaseError),
    /// Transient, or another writer came between our read and our write: read again.
    Retry(kube::Error),
}

/// One read-decide-write at the Lease; the holder it broke, if any.
async fn try_acquire(
    api: &Api<Lease>,
    cluster: &str,
    name: &str,
    holder: &str,
    break_lease: bool,
) -> Result<Option<String>, Attempt> {
    let classify = |e: kube::Error| {
        if worth_retrying(&e) {
            Attempt::Retry(e)
        } else {
            Attempt::Refused(LeaseError::Api {
                cluster: cluster.to_string(),
                name: name.to_string(),
                message: ferry::capabilities::k8s::provider::describe_kube_error(&e),
            })
        }
    };
    let now = Timestamp::now();
    let existing = api.get_opt(name).await.map_err(classify)?;
    let mut broke = None;
    match existing {
        None => {
            api.create(&PostParams::default(), &lease(name, holder, now, None))
                .await
                .map_err(classify)?;
        }
        Some(current) => {
            let spec = current.spec.clone().unwrap_or_default();
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
            let expires = renewed.map(|r| expiry(r, spec.lease_duration_seconds));
            let ours = spec.holder_identity.as_deref() == Some(holder);
            let live = expires.is_some_and(|e| e > now) && spec.holder_identity.is_some() && !ours;
            if live && !break_lease {
                return Err(Attempt::Refused(held(cluster, name, &current)));
            }
            if live {
                broke = spec.holder_identity.clone();
            }
            let replacement = lease(name, holder, now, current.metadata.resource_version.clone());
            api.replace(name, &PostParams::default(), &replacement)
                .await
                .map_err(classify)?;
        }
    }
    Ok(broke)
}

fn held(cluster: &str, name: &str, l: &Lease) -> LeaseError {
    let spec = l.spec.clone().unwrap_or_default();
    let time = |t: Option<&MicroTime>| t.map(|t| rfc3339(t.0)).unwrap_or_else(|| "an unknown time".into());
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
    let expires = renewed
        .map(|r| format!("at {}", rfc3339(expiry(r.0, spec.lease_duration_seconds))))
        .unwrap_or_else(|| "when its holder stops renewing it".into());
    LeaseError::Held {
        cluster: cluster.to_string(),
        name: name.to_string(),
        holder: spec.holder_identity.clone().unwrap_or_else(|| "nobody named".into()),
        since: time(spec.acquire_time.as_ref()),
        renewed: time(spec.renew_time.as_ref()),
        expires,
    }
}

/// How soon a failed renewal is tried again (well within [`DURATION`]).
const RETRY_RENEWAL: Duration = Duration::from_secs(1);

/// Renews the Lease every [`RENEW_EVERY`] while it is ours, and again after
/// [`RETRY_RENEWAL`] when a renewal fails; stops, loudly, once it is not ours.
async fn renew(api: Api<Lease>, name: String, holder: String) {
    let mut wait = RENEW_EVERY;
    loop {
        tokio::time::sleep(wait).await;
        wait = RETRY_RENEWAL;
        let current = match api.get_opt(&name).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                tracing::error!(lease = %name, "the lease was deleted by someone else; another ferry may start now");
                return;
            }
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "could not renew the lease; retrying");
                continue;
            }
        };
        if holder_of(&current) != Some(holder.as_str()) {
            tracing::error!(lease = %name, holder = ?holder_of(&current), "the lease was taken over (--break-lease?)");
            return;
        }
        let mut renewed = current.clone();
        if let Some(spec) = renewed.spec.as_mut() {
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match api.replace(&name, &PostParams::default(), &renewed).await {
            Ok(_) => wait = RENEW_EVERY,
            Err(e) => tracing::warn!(lease = %name, error = %e, "could not renew the lease; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_object_names() {
        assert_eq!(lease_name("clusters", "my.cluster"), "ferry-dr-clusters-my-cluster");
        assert!(holder_identity().starts_with("ferry@"));
    }

    #[test]
    fn two_phase_runs_of_one_process_in_one_second_are_two_holders() {
        assert_ne!(holder_identity(), holder_identity());
    }
}
