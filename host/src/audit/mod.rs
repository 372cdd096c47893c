//! The audit trail: one JSON line per capability call and per policy decision.
//!
//! Records carry who (guest name and SHA-256), what (action and resource),
//! the decision with the ids of the policies that made it, whether the call
//! was a dry-run, the outcome and how long it took. Each record also carries
//! the SHA-256 of the previous record (`prev`), so a removed or edited line
//! breaks the chain and is detectable. With a key ([`AuditKey`]), each run
//! ends with a `checkpoint` record whose MAC covers the chain so far, and
//! [`verify`] (`ferry audit verify`) checks chain, checkpoints and key.

mod key;
mod verify;

pub use key::{AuditKey, KEY_FILE_ENV, KeyError};
pub use verify::{Verified, VerifyError, verify};

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
    /// Record kind: `call`, `decision` (a mutating call allowed, before its I/O), `load`,
    /// `load-hooks`, `log`, `hook`, `run`, `checkpoint`, `lease` (a DR phase took its hosted
    /// cluster's lease).
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
    /// Error text or a note; written scrubbed of credentials ([`crate::scrub`]).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "scrubbed")]
    pub message: Option<String>,
    /// Duration of the call in microseconds.
    pub micros: u64,
    /// Whether the record must be on disk before the host goes on: a mutating call's, or
    /// one about the run itself. Not part of the record.
    #[serde(skip)]
    pub durable: bool,
}

/// The trail never holds a credential a server or guest put into a message.
fn scrubbed<S: serde::Serializer>(message: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match message {
        Some(m) => s.serialize_str(&crate::scrub::secrets(m)),
        None => s.serialize_none(),
    }
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
            durable: action.is_mutating(),
        }
    }

    /// The decision to let a mutating call proceed, written (and synced) before its I/O:
    /// the trail then shows the attempt even if the host dies during the call. Its outcome
    /// follows in the call's own record.
    pub fn decision(
        guest: &GuestIdentity,
        phase: &str,
        action: Action,
        resource: &ResourceRef,
        policies: &[String],
        dry_run: bool,
    ) -> Self {
        Record {
            kind: "decision",
            durable: true,
            ..Record::call(
                guest, phase, action, resource, "allow", policies, dry_run, "approved", None, 0,
            )
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
            durable: true,
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
    out: Option<std::fs::File>,
    prev: String,
    key: Option<AuditKey>,
    /// The first write that failed: from then on the trail cannot be trusted to hold
    /// what happens, and the host refuses every further call.
    broken: Option<String>,
}

impl Audit {
    /// An audit trail that writes nothing (no file was asked for); records still chain.
    pub fn disabled() -> Self {
        Audit {
            sink: Mutex::new(Sink {
                out: None,
                prev: String::new(),
                key: None,
                broken: None,
            }),
        }
    }

    /// Appends records to `path` (created 0600 if missing), continuing the hash chain of
    /// the records already there: several phases or runs into one file make one chain, so
    /// a record removed between two runs breaks it like one removed inside a run. With a
    /// `key`, [`Audit::checkpoint`] signs the chain.
    pub fn to_file(path: &Path, key: Option<AuditKey>) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let (prev, torn) = last_line_hash(&mut file)?;
        if torn {
            // A record cut short by a crash stays as it is, as evidence; the next one starts
            // on a line of its own.
            file.write_all(b"\n")?;
        }
        Ok(Audit {
            sink: Mutex::new(Sink {
                out: Some(file),
                prev,
                key,
                broken: None,
            }),
        })
    }

    /// Appends one record. A failed write is logged and breaks the trail
    /// ([`Audit::broken`]): the host then refuses every further call.
    pub fn record(&self, record: &Record) {
        let _ = self.write(record, false);
    }

    /// Appends one record and says whether it reached the file (and the disk, when the
    /// record is durable): the host writes a mutating call's decision this way before the
    /// call's I/O, and does not do the I/O when it fails.
    pub fn try_record(&self, record: &Record) -> Result<(), String> {
        self.write(record, false).map(|_| ())
    }

    /// Why the trail stopped being written, if it did.
    pub fn broken(&self) -> Option<String> {
        self.sink.lock().map_or_else(
            |_| Some("the audit trail's lock was poisoned".to_string()),
            |sink| sink.broken.clone(),
        )
    }

    /// Ends a run's records with a signed checkpoint (nothing without a key): its MAC
    /// covers the hash of the record before it, which chains to every earlier record.
    /// Returns the MAC, for the run's output, so a copy lives outside the trail too.
    pub fn checkpoint(&self, guest: &GuestIdentity, phase: &str) -> Option<String> {
        self.write(&Record::event(guest, phase, "checkpoint", "ok", None), true)
            .ok()
            .flatten()
    }

    /// Writes one record (signed when `sign` and a key is set); `Ok(Some(mac))` for a
    /// signed checkpoint.
    fn write(&self, record: &Record, sign: bool) -> Result<Option<String>, String> {
        let Ok(mut sink) = self.sink.lock() else {
            return Err("the audit trail's lock was poisoned".into());
        };
        if let Some(why) = &sink.broken {
            return Err(why.clone());
        }
        let signature = match (sign, &sink.key) {
            (true, Some(key)) => Some((key.id(), key.mac(&sink.prev))),
            (true, None) => return Ok(None),
            (false, _) => None,
        };
        let mut value = match serde_json::to_value(record) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise an audit record");
                let why = format!("cannot serialise an audit record: {e}");
                sink.broken = Some(why.clone());
                return Err(why);
            }
        };
        if let Some(obj) = value.as_object_mut() {
            if let Some((key_id, mac)) = &signature {
                obj.insert("key_id".into(), key_id.clone().into());
                obj.insert("mac".into(), mac.clone().into());
            }
            obj.insert("prev".into(), serde_json::Value::String(sink.prev.clone()));
        }
        let line = value.to_string();
        sink.prev = hex::encode(Sha256::digest(line.as_bytes()));
        if let Some(out) = sink.out.as_mut()
            && let Err(e) = writeln!(out, "{line}").and_then(|_| if record.durable { out.sync_data() } else { Ok(()) })
        {
            tracing::error!(error = %e, "cannot write the audit trail");
            let why = format!("cannot write the audit trail: {e}");
            sink.broken = Some(why.clone());
            return Err(why);
        }
        Ok(signature.map(|(_, mac)| mac))
    }
}

/// The SHA-256 (hex) of the last record in `file` (empty for an empty file), and whether
/// the file ends in the middle of a line. Reads only the tail.
fn last_line_hash(file: &mut std::fs::File) -> std::io::Result<(String, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 1024 * 1024;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((String::new(), false));
    }
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL)))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let torn = tail.last() != Some(&b'\n');
    let last = tail
        .split(|b| *b == b'\n')
        .rev()
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    Ok((hex::encode(Sha256::digest(last)), torn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest() -> GuestIdentity {
        GuestIdentity {
            name: "g".into(),
            sha256: "00".into(),
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Two runs into one file make one chain; a record cut short by a crash is kept, and
    /// the next run chains to it and starts on a line of its own.
    #[test]
    fn the_chain_continues_across_runs() -> std::io::Result<()> {
        let guest = guest();
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("audit.jsonl");
        let first = Audit::to_file(&path, None)?;
        first.record(&Record::event(&guest, "backup", "run", "ok", None));
        first.record(&Record::event(&guest, "backup", "run", "ok", None));
        drop(first);
        let text = std::fs::read_to_string(&path)?;
        let last = text.lines().last().unwrap_or_default().to_string();
        let second = Audit::to_file(&path, None)?;
        second.record(&Record::event(&guest, "restore", "run", "ok", None));
        drop(second);
        let records = lines(&path);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0]["prev"], "");
        assert_eq!(records[2]["prev"], hex::encode(Sha256::digest(last.as_bytes())));

        // A torn record: the next run chains to what is there and starts a new line.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
        f.write_all(b"{\"time\":\"cut")?;
        drop(f);
        let third = Audit::to_file(&path, None)?;
        third.record(&Record::event(&guest, "finish", "run", "ok", None));
        drop(third);
        let text = std::fs::read_to_string(&path)?;
        let all: Vec<&str> = text.lines().collect();
        assert_eq!(all[3], "{\"time\":\"cut");
        let fourth: serde_json::Value = serde_json::from_str(all[4]).map_err(std::io::Error::other)?;
        assert_eq!(fourth["prev"], hex::encode(Sha256::digest(b"{\"time\":\"cut")));
        Ok(())
    }

    /// A server's error quoting a presigned URL, or a guest logging one, never puts the
    /// URL's credentials into the trail.
    #[test]
    fn messages_are_written_scrubbed() -> std::io::Result<()> {
        let guest = guest();
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("audit.jsonl");
        let audit = Audit::to_file(&path, None)?;
        let quoted = "Invalid value: \"https://s3/b/k?X-Amz-Credential=AKIDLEAK%2F1&X-Amz-Signature=f00dfeed\"";
        audit.record(&Record::event(&guest, "restore", "log", "error", Some(quoted.into())));
        drop(audit);
        let text = std::fs::read_to_string(&path)?;
        assert!(!text.contains("AKIDLEAK") && !text.contains("f00dfeed"), "{text}");
        assert!(text.contains("X-Amz-Signature=REDACTED"), "{text}");
        Ok(())
    }

    /// A trail that cannot be written says so from the first failed write on, and every
    /// later record is refused rather than silently lost.
    #[test]
    fn a_failed_write_breaks_the_trail_for_good() -> std::io::Result<()> {
        let guest = guest();
        let full = Audit::to_file(Path::new("/dev/full"), None)?;
        assert_eq!(full.broken(), None);
        let first = full.try_record(&Record::event(&guest, "backup", "load", "ok", None));
        assert!(first.is_err_and(|e| e.contains("cannot write the audit trail")));
        assert!(full.broken().is_some());
        let tmp = tempfile::tempdir()?;
        let fine = Audit::to_file(&tmp.path().join("a.jsonl"), None)?;
        assert!(
            fine.try_record(&Record::event(&guest, "backup", "load", "ok", None))
                .is_ok()
        );
        full.record(&Record::event(&guest, "backup", "run", "ok", None));
        assert!(
            full.try_record(&Record::event(&guest, "backup", "run", "ok", None))
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_704_067_200_123);
        assert_eq!(humantime_rfc3339(t), "2024-01-01T00:00:00.123Z");
    }
}
