//! The audit trail: one JSON line per capability call and per policy decision.
//!
//! Records carry who (guest name and SHA-256), what (action and resource),
//! the decision with the ids of the policies that made it, whether the call
//! was a dry-run, the outcome and how long it took. Each record also carries
//! the SHA-256 of the previous record (`prev`), so a removed or edited line
//! breaks the chain and is detectable.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::policy::{Action, GuestIdentity, ResourceRef};

/// One audit record.
#[derive(Debug, Serialize)]
pub struct Record {
    /// RFC 3339 time of the record.
    pub time: String,
    /// Record kind: `call`, `load`, `run`.
    pub kind: &'static str,
    /// Guest name.
    pub guest: String,
    /// Guest component SHA-256.
    pub guest_sha256: String,
    /// Phase the guest runs.
    pub phase: String,
    /// The host action, e.g. `k8s:get`.
    pub action: String,
    /// The resource, in the policy's terms.
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// Ids of the policies that decided.
    pub policies: Vec<String>,
    /// Whether the call was a server-side dry-run.
    pub dry_run: bool,
    /// `ok`, or the error kind.
    pub outcome: String,
    /// Error text or a note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Duration of the call in microseconds.
    pub micros: u64,
}

impl Record {
    /// A record of one capability call.
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        guest: &GuestIdentity,
        phase: &str,
        action: Action,
        resource: &ResourceRef,
        decision: &'static str,
        policies: &[String],
        dry_run: bool,
        outcome: &str,
        message: Option<&str>,
        micros: u64,
    ) -> Self {
        Record {
            time: now_rfc3339(),
            kind: "call",
            guest: guest.name.clone(),
            guest_sha256: guest.sha256.clone(),
            phase: phase.to_string(),
            action: action.to_string(),
            resource: describe(resource),
            decision,
            policies: policies.to_vec(),
            dry_run,
            outcome: outcome.to_string(),
            message: message.map(str::to_string),
            micros,
        }
    }

    /// A record about the run itself (load decisions, start, end).
    pub fn event(
        guest: &GuestIdentity,
        phase: &str,
        kind: &'static str,
        outcome: &str,
        message: Option<String>,
    ) -> Self {
        Record {
            time: now_rfc3339(),
            kind,
            guest: guest.name.clone(),
            guest_sha256: guest.sha256.clone(),
            phase: phase.to_string(),
            action: String::new(),
            resource: String::new(),
            decision: "",
            policies: Vec::new(),
            dry_run: false,
            outcome: outcome.to_string(),
            message,
            micros: 0,
        }
    }
}

/// A short, stable text for a policy resource, as the audit trail shows it.
pub fn describe(resource: &ResourceRef) -> String {
    match resource {
        ResourceRef::Interface { name } => format!("interface {name}"),
        ResourceRef::Cluster { alias } => format!("cluster {alias}"),
        ResourceRef::K8s {
            cluster,
            group,
            version,
            kind,
            namespace,
            name,
        } => {
            let gv = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            format!(
                "k8s {cluster}:{gv}/{kind} {}/{}",
                namespace.as_deref().unwrap_or("-"),
                name.as_deref().unwrap_or("*")
            )
        }
        ResourceRef::Bucket { bucket } => format!("s3://{bucket}"),
        ResourceRef::S3Object { bucket, key } => format!("s3://{bucket}/{key}"),
        ResourceRef::S3Prefix { bucket, prefix } => format!("s3://{bucket}/{prefix}*"),
        ResourceRef::Zone { zone } => format!("zone {zone}"),
        ResourceRef::RecordSet { zone, name, rtype } => format!("zone {zone} {rtype} {name}"),
        ResourceRef::EtcdMember {
            cluster,
            namespace,
            pod,
            endpoint,
        } => {
            if endpoint.is_empty() {
                format!("etcd {cluster}:{namespace}/{pod}")
            } else {
                format!("etcd endpoint {endpoint}")
            }
        }
        ResourceRef::Path { path } => format!("workspace {path}"),
    }
}

fn now_rfc3339() -> String {
    humantime_rfc3339(std::time::SystemTime::now())
}

/// Formats a time as RFC 3339 UTC with millisecond precision.
pub fn humantime_rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let millis = d.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Where audit records go.
pub struct Audit {
    sink: Mutex<Sink>,
}

struct Sink {
    out: Option<Box<dyn Write + Send>>,
    prev: String,
    count: u64,
}

impl Audit {
    /// An audit trail that only counts records (no file was asked for).
    pub fn disabled() -> Self {
        Audit {
            sink: Mutex::new(Sink {
                out: None,
                prev: String::new(),
                count: 0,
            }),
        }
    }

    /// Appends records to `path` (created 0600 if missing).
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Audit {
            sink: Mutex::new(Sink {
                out: Some(Box::new(file)),
                prev: String::new(),
                count: 0,
            }),
        })
    }

    /// Appends one record. Audit write failures are logged, never fatal to the
    /// call, but they are counted as errors in the run summary via tracing.
    pub fn record(&self, record: &Record) {
        let Ok(mut sink) = self.sink.lock() else { return };
        sink.count += 1;
        let mut value = match serde_json::to_value(record) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise an audit record");
                return;
            }
        };
        if let Some(obj) = value.as_object_mut() {
            obj.insert("prev".into(), serde_json::Value::String(sink.prev.clone()));
        }
        let line = value.to_string();
        sink.prev = hex::encode(Sha256::digest(line.as_bytes()));
        if let Some(out) = sink.out.as_mut()
            && let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush())
        {
            tracing::error!(error = %e, "cannot write the audit trail");
        }
    }

    /// How many records were written so far.
    pub fn count(&self) -> u64 {
        self.sink.lock().map(|s| s.count).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
