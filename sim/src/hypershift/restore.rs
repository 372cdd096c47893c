//! `etcd-init`: what the init container of a restoring etcd pod does with the HostedControlPlane's
//! `spec.etcd.managed.storage.restoreSnapshotURL` (`control-plane-operator/.../v2/etcd/etcd-init.sh`):
//! on an empty data directory, `curl` the URL, fail when the body is an XML document (an S3
//! error, an expired presigned URL), and restore the snapshot.
//!
//! The API rules of the field (one URL, `https` or `s3`, immutable, not added or removed after
//! creation) are the CRDs' own CEL rules, enforced by the API server. The download verifies
//! `https://` servers against the CA the controllers are given (a real cluster trusts S3's
//! public CA; the drill's S3 has its own).

use std::time::Duration;

use serde_json::Value;

/// Why a snapshot could not be fetched or used.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The URL is not one the sim can fetch (`s3://` needs credentials etcd-init does not have;
    /// `https://` needs a CA the controllers trust, `ControllersOptions::restore_trusted_ca`).
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

/// The restore URLs of a HostedCluster or HostedControlPlane (`[]` when unset).
pub fn restore_urls(obj: &Value) -> Vec<String> {
    obj.pointer("/spec/etcd/managed/storage/restoreSnapshotURL")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
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
            let tls = super::pki::EtcdClientTls {
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
                      trusted CA signed (ControllersOptions::restore_trusted_ca); s3:// needs credentials it does not have"
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
