//! `spec.etcd.managed.storage.restoreSnapshotURL`: the API rules (admission) and the download
//! that HyperShift's `etcd-init.sh` does before etcd starts on an empty data directory.
//!
//! The rules are those of the HostedCluster CRD: at most one URL (`MaxItems=1`, since
//! hypershift#3081), each at most 1024 characters, matching `^(https|s3)://`, and immutable
//! (`self == oldSelf`). The first three are enforced at admission (422 `Invalid`) by a
//! HostedCluster kind with a validating [`crate::registry::PrepareFn`]: serve it with
//! [`registry_with_admission`]. The store's hook sees only the new object, so immutability is
//! enforced by the operator instead, which sets the HostedCluster condition
//! `RestoreSnapshotURLValid=False` and does not restore when the URL changed.
//!
//! The download verifies `https://` servers against the CA the operator is given (a real
//! cluster trusts S3's public CA; the drill's S3 has its own).

use std::time::Duration;

use serde_json::Value;

use crate::error::{Cause, cause};
use crate::registry::{self, KindInfo, Registry};

/// JSON path of the field, as named in API errors.
pub const RESTORE_URL_FIELD: &str = "spec.etcd.managed.storage.restoreSnapshotURL";

/// Longest accepted URL (CRD `MaxLength`).
pub const MAX_URL_LEN: usize = 1024;

/// Which URL schemes admission accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreUrlPolicy {
    /// Also accept `http://127.0.0.1...` (an S3 on loopback without TLS); the real API
    /// accepts only `https://` and `s3://`, which is what the drill and the tests use.
    pub allow_http_restore_urls: bool,
}

/// Why a snapshot could not be fetched or used.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The URL is not one the sim can fetch (`s3://` needs credentials etcd-init does not have;
    /// `https://` needs a CA the operator trusts, `OperatorOptions::restore_trusted_ca`).
    #[error("cannot fetch {url}: {why}")]
    Unsupported {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// Connecting, sending or reading failed or timed out.
    #[error("downloading {url} failed: {why}")]
    Download {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// The server answered with a non-2xx status.
    #[error("downloading {url} failed with HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status code.
        status: u16,
    },
    /// The body starts with `<?xml`: an S3 error document, not a snapshot (etcd-init's check).
    #[error("the snapshot at {url} is an XML document (an S3 error?): {head}")]
    XmlBody {
        /// The URL.
        url: String,
        /// The first bytes of the body.
        head: String,
    },
}

impl RestoreError {
    /// A CamelCase reason for a status condition.
    pub fn reason(&self) -> &'static str {
        match self {
            RestoreError::Unsupported { .. } => "UnsupportedURL",
            RestoreError::Download { .. } => "DownloadFailed",
            RestoreError::Status { .. } => "DownloadFailed",
            RestoreError::XmlBody { .. } => "InvalidSnapshot",
        }
    }
}

/// The restore URLs of a HostedCluster (`[]` when unset or not a list of strings).
pub fn restore_urls(hc: &Value) -> Vec<String> {
    hc.pointer("/spec/etcd/managed/storage/restoreSnapshotURL")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Check `spec.etcd.managed.storage.restoreSnapshotURL` of a HostedCluster against the CRD
/// rules except immutability. An absent field is valid.
pub fn validate_restore_urls(hc: &Value, policy: RestoreUrlPolicy) -> Result<(), Vec<Cause>> {
    let Some(field) = hc.pointer("/spec/etcd/managed/storage/restoreSnapshotURL") else {
        return Ok(());
    };
    if field.is_null() {
        return Ok(());
    }
    let Some(items) = field.as_array() else {
        return Err(vec![cause(
            RESTORE_URL_FIELD,
            "FieldValueTypeInvalid",
            format!(
                "Invalid value: \"{}\": {RESTORE_URL_FIELD} in body must be of type array",
                json_type(field)
            ),
        )]);
    };
    let mut causes = Vec::new();
    if items.len() > 1 {
        causes.push(cause(
            RESTORE_URL_FIELD,
            "FieldValueTooMany",
            format!("Too many: {}: must have at most 1 items", items.len()),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        let path = format!("{RESTORE_URL_FIELD}[{i}]");
        let Some(url) = item.as_str() else {
            causes.push(cause(
                &path,
                "FieldValueTypeInvalid",
                "Invalid value: must be of type string",
            ));
            continue;
        };
        if url.len() > MAX_URL_LEN {
            causes.push(cause(
                &path,
                "FieldValueTooLong",
                format!("Too long: may not be more than {MAX_URL_LEN} bytes"),
            ));
        }
        let scheme_ok = url.starts_with("https://")
            || url.starts_with("s3://")
            || (policy.allow_http_restore_urls && url.starts_with("http://127.0.0.1"));
        if !scheme_ok {
            causes.push(cause(
                RESTORE_URL_FIELD,
                "FieldValueInvalid",
                "Invalid value: \"array\": restoreSnapshotURL must be a valid s3 or https URL",
            ));
        }
    }
    if causes.is_empty() { Ok(()) } else { Err(causes) }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn admit_strict(obj: &mut Value) -> Result<(), Vec<Cause>> {
    validate_restore_urls(obj, RestoreUrlPolicy::default())
}

fn admit_loopback(obj: &mut Value) -> Result<(), Vec<Cause>> {
    validate_restore_urls(
        obj,
        RestoreUrlPolicy {
            allow_http_restore_urls: true,
        },
    )
}

/// HostedCluster with the CRD's `restoreSnapshotURL` validation (https/s3 only).
pub static HOSTED_CLUSTER_ADMITTED: KindInfo = registry::HOSTED_CLUSTER.prepare(admit_strict);

/// HostedCluster with the validation, also accepting `http://127.0.0.1` URLs.
pub static HOSTED_CLUSTER_ADMITTED_LOOPBACK: KindInfo = registry::HOSTED_CLUSTER.prepare(admit_loopback);

/// The built-in registry with HostedCluster writes through the API validated as the CRD does.
/// Start a [`crate::Sim`] with it (`SimOptions::registry`).
pub fn registry_with_admission(policy: RestoreUrlPolicy) -> Registry {
    let hc: &'static KindInfo = if policy.allow_http_restore_urls {
        &HOSTED_CLUSTER_ADMITTED_LOOPBACK
    } else {
        &HOSTED_CLUSTER_ADMITTED
    };
    // Registry::new keeps the first row of a group+resource, so ours wins over the builtin one.
    Registry::new(std::iter::once(hc).chain(Registry::builtin().kinds().iter().copied()))
}

/// Fetch a snapshot like etcd-init's `curl`: `https://` verified against `trusted_ca` (PEM;
/// the system roots of a real cluster), or plain `http://` when admission allowed it; bounded
/// by `timeout`, and rejecting bodies that start with `<?xml`.
pub async fn download_snapshot(
    url: &str,
    timeout: Duration,
    trusted_ca: Option<&str>,
) -> Result<Vec<u8>, RestoreError> {
    let body = tokio::time::timeout(timeout, http_get(url, trusted_ca))
        .await
        .map_err(|_| RestoreError::Download {
            url: url.to_string(),
            why: format!("timed out after {timeout:?}"),
        })??;
    let head = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
    if head.trim_start().starts_with("<?xml") {
        return Err(RestoreError::XmlBody {
            url: url.to_string(),
            head,
        });
    }
    Ok(body)
}

async fn http_get(url: &str, trusted_ca: Option<&str>) -> Result<Vec<u8>, RestoreError> {
    let tls = match (url.starts_with("https://"), trusted_ca) {
        (true, Some(ca)) => {
            let tls = super::etcd::EtcdClientTls {
                ca_pem: ca.to_string(),
                cert_pem: String::new(),
                key_pem: String::new(),
                server_name: None,
            };
            let config = tls.rustls_config().map_err(|why| RestoreError::Download {
                url: url.to_string(),
                why,
            })?;
            Some(super::client::TlsConnect {
                config: std::sync::Arc::new(config),
                server_name: None,
            })
        }
        (false, _) if url.starts_with("http://") => None,
        _ => {
            return Err(RestoreError::Unsupported {
                url: url.to_string(),
                why: "the simulator's etcd-init fetches http:// URLs and https:// URLs whose server the operator's \
                      trusted CA signed (OperatorOptions::restore_trusted_ca); s3:// needs credentials it does not have"
                    .to_string(),
            });
        }
    };
    let (status, out) = super::client::request_with(http::Method::GET, url, String::new(), tls.as_ref())
        .await
        .map_err(|why| RestoreError::Download {
            url: url.to_string(),
            why,
        })?;
    if !(200..300).contains(&status) {
        // An S3 error with an XML body is more telling than the status alone.
        let head = String::from_utf8_lossy(&out[..out.len().min(200)]).to_string();
        if head.trim_start().starts_with("<?xml") {
            return Err(RestoreError::XmlBody {
                url: url.to_string(),
                head,
            });
        }
        return Err(RestoreError::Status {
            url: url.to_string(),
            status,
        });
    }
    Ok(out)
}
