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
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where audit records go.
pub struct Audit {
    sink: Mutex<Sink>,
}

struct Sink {
    out: Option<Box<dyn Write + Send>>,
    prev: String,
}

impl Audit {
    /// An audit trail that writes nothing (no file was asked for); records still chain.
    pub fn disabled() -> Self {
        Audit {
            sink: Mutex::new(Sink {
                out: None,
                prev: String::new(),
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
            }),
        })
    }

    /// Appends one record. Audit write failures are logged, never fatal to the
    /// call, but they are counted as errors in the run summary via tracing.
    pub fn record(&self, record: &Record) {
        let Ok(mut sink) = self.sink.lock() else { return };
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_704_067_200_123);
        assert_eq!(humantime_rfc3339(t), "2024-01-01T00:00:00.123Z");
    }
}
