//! S3: small-object operations for guests, presigning, exposure checks, and a
//! streaming multipart upload for bulk data (etcd snapshots) that never holds
//! more than about two parts in memory.
//!
//! Integrity does not rely on the store: every write records our own SHA-256
//! (as `sha256` user metadata for single PUTs, and as a `<key>.sha256` sidecar
//! for streamed uploads, because metadata cannot be added after a multipart
//! upload completes), and reads verify it. Velero's AWS plugin showed that
//! stores disagree about checksum headers, so the SDK's own CRC handling is
//! left at its defaults and never treated as the source of truth.
//!
//! Confidentiality does not rely on the bucket's defaults either: every write asks for the
//! site's server-side encryption ([`Encryption`], SSE-S3 unless the site names a KMS key),
//! and what the store reports back, on the write and on every head, is checked against it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTimeFormat};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::capabilities::provider::{NameEndpoint, ProviderError, Service, sdk_error, service_code};

/// The smallest part S3 accepts for every part but the last.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The largest part S3 accepts.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// S3's limit on the number of parts of one multipart upload.
pub const MAX_PARTS: i32 = 10_000;
/// How many objects `list` returns at most, so a too-broad prefix fails with a
/// clear message instead of building an unbounded list for a guest.
pub const LIST_LIMIT: usize = 100_000;
/// The longest presigned-URL lifetime SigV4 allows (7 days).
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// The user-metadata key holding the SHA-256 (hex) of an object's content.
pub const SHA256_METADATA: &str = "sha256";
/// The user-metadata key holding a sealed object's signature (see `objects::seal`).
pub const SEAL_METADATA: &str = "ferry-seal";
/// The suffix of the sidecar object that carries a streamed upload's SHA-256.
pub const SIDECAR_SUFFIX: &str = ".sha256";

/// The server-side encryption a [`Bucket`] asks for on every write and expects back on
/// every write and head. The backup holds every Secret of a control plane and its etcd:
/// at rest it is encrypted by a key the site chose, and ferry checks rather than assumes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (`AES256`), with keys S3 manages. A store reporting SSE-KMS satisfies it too.
    #[default]
    SseS3,
    /// SSE-KMS (`aws:kms`) with this key (id, ARN or alias), or with the account's
    /// `aws/s3` key when `None`. With an id or ARN the reported key is compared as well;
    /// an alias cannot be (S3 reports the key's ARN), so only the algorithm is.
    SseKms {
        /// The KMS key.
        key_id: Option<String>,
    },
    /// No encryption is asked for or checked: for S3-compatible stores without SSE. The
    /// backup is then stored as the store keeps anything.
    None,
}

impl Encryption {
    /// Checks what the store reported for `url` (the `x-amz-server-side-encryption` value
    /// and the KMS key id header) against what the site requires.
    pub fn verify(&self, url: &str, algorithm: Option<&str>, kms_key: Option<&str>) -> Result<(), ProviderError> {
        let reported = algorithm.unwrap_or("no server-side encryption");
        let is_kms = algorithm.is_some_and(|a| a.starts_with("aws:kms"));
        let mismatch = |wanted: &str| {
            Err(ProviderError::Integrity(format!(
                "{url}: the store reports {reported}{}, but the site requires {wanted}; the object is not \
                 encrypted at rest as configured. Check the bucket's encryption settings and [aws] \
                 s3_encryption / s3_kms_key_id in the site config",
                kms_key.map(|k| format!(" with key {k}")).unwrap_or_default()
            )))
        };
        match self {
            Encryption::None => Ok(()),
            Encryption::SseS3 if algorithm == Some("AES256") || is_kms => Ok(()),
            Encryption::SseS3 => mismatch("SSE-S3 (AES256)"),
            Encryption::SseKms { key_id } => {
                let wanted = match key_id {
                    Some(k) => format!("SSE-KMS with key {k}"),
                    None => "SSE-KMS".to_string(),
                };
                if !is_kms {
                    return mismatch(&wanted);
                }
                match (key_id.as_deref(), kms_key) {
                    (Some(k), _) if k.starts_with("alias/") || k.contains(":alias/") => Ok(()),
                    (Some(k), Some(r)) if r == k || r.ends_with(&format!("/{k}")) => Ok(()),
                    (Some(_), _) => mismatch(&wanted),
                    (None, _) => Ok(()),
                }
            }
        }
    }

    /// The `x-amz-server-side-encryption` value to send, if any.
    fn algorithm(&self) -> Option<ServerSideEncryption> {
        match self {
            Encryption::SseS3 => Some(ServerSideEncryption::Aes256),
            Encryption::SseKms { .. } => Some(ServerSideEncryption::AwsKms),
            Encryption::None => None,
        }
    }

    /// The KMS key to send, if any.
    fn kms_key_id(&self) -> Option<String> {
        match self {
            Encryption::SseKms { key_id } => key_id.clone(),
            _ => None,
        }
    }
}

/// Where and how to reach S3 (and, with the same shape, Route53).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// The client's region. Presigning uses each bucket's own region instead.
    pub region: String,
    /// An endpoint override for S3-compatible stores and emulators.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`host/bucket/key`), needed by most S3-compatible stores.
    pub force_path_style: bool,
    /// A named profile of the shared AWS config files.
    pub profile: Option<String>,
    /// Extra CA certificates to trust (PEM), for a store behind a private CA.
    pub ca_bundle_pem: Option<Vec<u8>>,
}

/// Attempts per S3 and Route53 call (the SDK's standard retry mode, with its backoff and
/// retry quota). A migration runs on the worst day, often for a whole fleet: S3 answers
/// `SlowDown` and Route53 throttles at five requests per second per account, and the
/// default three attempts give up within about a second.
pub const AWS_ATTEMPTS: u32 = 6;

/// Loads the shared AWS configuration: the standard credential chain (or the
/// given credentials), the region, profile and endpoint override.
pub(crate) async fn sdk_config(
    settings: &S3Settings,
    credentials: Option<Credentials>,
    default_region: &str,
) -> aws_config::SdkConfig {
    let region = if settings.region.trim().is_empty() {
        default_region.to_string()
    } else {
        settings.region.clone()
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region));
    // A site's own AWS_MAX_ATTEMPTS (or profile `max_attempts`) wins; see [`AWS_ATTEMPTS`].
    if std::env::var_os("AWS_MAX_ATTEMPTS").is_none() {
        loader = loader.retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(AWS_ATTEMPTS));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(creds) = credentials {
        loader = loader.credentials_provider(creds);
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(pem) = &settings.ca_bundle_pem {
        use aws_smithy_http_client::tls;
        let trust = tls::TrustStore::empty()
            .with_native_roots(true)
            .with_pem_certificate(pem.clone());
        match tls::TlsContext::builder().with_trust_store(trust).build() {
            Ok(context) => {
                let client = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
                    .tls_context(context)
                    .build_https();
                loader = loader.http_client(client);
            }
            // Every request then fails the TLS handshake, naming the store.
            Err(e) => tracing::error!("the [aws] ca_bundle is not usable PEM: {e}"),
        }
    }
    loader.load().await
}

/// Builds an S3 client. Without `credentials` the standard AWS credential
/// chain is used (environment, profile, web identity, instance metadata).
pub async fn s3_client(settings: &S3Settings, credentials: Option<Credentials>) -> Client {
    let sdk = sdk_config(settings, credentials, "us-east-1").await;
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(settings.force_path_style)
        .interceptor(NameEndpoint)
        .build();
    Client::from_conf(conf)
}

/// Metadata of one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// The entity tag as the store reports it (quotes included). Not a content
    /// hash for multipart or KMS-encrypted objects: never compare it to one.
    pub etag: Option<String>,
    /// The SHA-256 (hex) recorded in the object's metadata by [`Bucket::put`],
    /// if any. Listings do not carry metadata, so it is `None` there.
    pub sha256: Option<String>,
    /// Last modification time, RFC 3339, when the store reports it.
    pub last_modified: Option<String>,
    /// The server-side encryption the store reports (`AES256`, `aws:kms`), if any.
    pub encryption: Option<String>,
    /// The signature recorded by a sealed write ([`SEAL_METADATA`]), if any.
    pub seal: Option<String>,
}

/// An object read by [`Bucket::get`].
#[derive(Debug, Clone)]
pub struct Object {
    /// The content, verified against the recorded SHA-256 if there was one.
    pub data: Bytes,
    /// The object's metadata.
    pub info: ObjectInfo,
}

/// Options of [`Bucket::put`].
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// The MIME type to store (default `application/octet-stream`).
    pub content_type: Option<String>,
    /// Create-only: send `If-None-Match: *`, so the write fails with
    /// [`ProviderError::Conflict`] if the key exists already.
    pub create_only: bool,
    /// A signature to record as [`SEAL_METADATA`].
    pub seal: Option<String>,
}

/// Whether the public can read a bucket, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAccess {
    /// True if a bucket ACL grant or the bucket policy lets anyone read.
    pub publicly_readable: bool,
    /// A sentence naming the grants (or their absence) that decided it.
    pub reason: String,
}

/// What a streamed upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedObject {
    /// The object's key.
    pub key: String,
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 (hex) of the stored bytes, computed while streaming.
    pub sha256: String,
    /// Requests that carried data: the multipart part count, or 1 when the
    /// whole stream fit in one part and was stored with a single PUT.
    pub parts: u32,
    /// The store's entity tag (`…-N` for multipart objects on AWS).
    pub etag: Option<String>,
}

fn s3_url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

fn check_key(bucket: &str, key: &str) -> Result<(), ProviderError> {
    if bucket.is_empty() {
        return Err(ProviderError::Invalid("the bucket name is empty".into()));
    }
    if key.is_empty() {
        return Err(ProviderError::Invalid(format!(
            "the object key for bucket `{bucket}` is empty"
        )));
    }
    if key.len() > 1024 {
        return Err(ProviderError::Invalid(format!(
            "the object key for bucket `{bucket}` is {} bytes long; S3 allows at most 1024",
            key.len()
        )));
    }
    Ok(())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn format_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<String> {
    t.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
}

/// A bucket of one S3 client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bucket {
    client: Client,
    name: String,
    encryption: Encryption,
}

impl Bucket {
    /// A handle on bucket `name`, writing with SSE-S3; no request is made.
    pub fn new(client: Client, name: impl Into<String>) -> Bucket {
        Bucket {
            client,
            name: name.into(),
            encryption: Encryption::default(),
        }
    }

    /// The same bucket, writing with (and verifying) `encryption`.
    pub fn with_encryption(mut self, encryption: Encryption) -> Bucket {
        self.encryption = encryption;
        self
    }

    /// The encryption this handle asks for and verifies.
    pub fn encryption(&self) -> &Encryption {
        &self.encryption
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client this handle uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Writes a small object, recording its SHA-256 as `sha256` user metadata.
    /// With `create_only`, an existing key gives [`ProviderError::Conflict`].
    pub async fn put(&self, key: &str, data: Bytes, options: &PutOptions) -> Result<ObjectInfo, ProviderError> {
        check_key(&self.name, key)?;
        let sha = hex::encode(Sha256::digest(&data));
        let size = data.len() as u64;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type(options.content_type.as_deref().unwrap_or("application/octet-stream"))
            .metadata(SHA256_METADATA, &sha)
            .set_server_side_encryption(self.encryption.algorithm())
            .set_ssekms_key_id(self.encryption.kms_key_id())
            .body(ByteStream::from(data));
        if options.create_only {
            req = req.if_none_match("*");
        }
        if let Some(seal) = &options.seal {
            req = req.metadata(SEAL_METADATA, seal);
        }
        let url = s3_url(&self.name, key);
        let out = req
            .send()
            .await
            .map_err(|e| sdk_error(e, Service::S3, &format!("writing {url}")))?;
        let encryption = out.server_side_encryption().map(|e| e.as_str().to_string());
        self.encryption
            .verify(&url, encryption.as_deref(), out.ssekms_key_id())?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size,
            etag: out.e_tag().map(str::to_string),
            sha256: Some(sha),
            last_modified: None,
            encryption,
            seal: options.seal.clone(),
        })
    }

    /// Reads a small object of at most `max_size` bytes (a larger one gives
    /// [`ProviderError::Invalid`] before its body is read) and verifies the
    /// recorded SHA-256, if any ([`ProviderError::Integrity`] on mismatch).
    pub async fn get(&self, key: &str, max_size: u64) -> Result<Object, ProviderError> {
        check_key(&self.name, key)?;
        let url = s3_url(&self.name, key);
        let out = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(e, Service::S3, &format!("reading {url}")))?;
        let too_large = |size: u64| {
            ProviderError::Invalid(format!(
                "{url} is {size} bytes, more than the {max_size}-byte limit for objects read into a script; \
                 move it host-side (etcd snapshot, verify-sha256) or raise the limit"
            ))
        };
        let announced = out.content_length().and_then(|l| u64::try_from(l).ok());
        if let Some(len) = announced
            && len > max_size
        {
            return Err(too_large(len));
        }
        let recorded = out.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned();
        let mut info = ObjectInfo {
            key: key.to_string(),
            size: announced.unwrap_or(0),
            etag: out.e_tag().map(str::to_string),
            sha256: recorded.clone(),
            last_modified: format_time(out.last_modified()),
            encryption: out.server_side_encryption().map(|e| e.as_str().to_string()),
            seal: out.metadata().and_then(|m| m.get(SEAL_METADATA)).cloned(),
        };
        let mut body = out.body;
        let mut buf = BytesMut::with_capacity(announced.unwrap_or(0).min(max_size) as usize);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| body_error(&url, &e))?;
            // The announced length can be absent or wrong; enforce the cap on
            // what actually arrives too.
            if buf.len() as u64 + chunk.len() as u64 > max_size {
                return Err(too_large(buf.len() as u64 + chunk.len() as u64));
            }
            buf.extend_from_slice(&chunk);
        }
        let data = buf.freeze();
        info.size = data.len() as u64;
        if let Some(expected) = recorded {
            let actual = hex::encode(Sha256::digest(&data));
            if !expected.eq_ignore_ascii_case(&actual) {
                return Err(ProviderError::Integrity(format!(
                    "{url}: content has SHA-256 {actual} but the object records {expected}; \
                     the stored object is damaged or was replaced without ferry, do not use it"
                )));
            }
        }
        Ok(Object { data, info })
    }

    /// Reads an object's metadata, and checks that it is encrypted at rest as this handle
    /// requires ([`ProviderError::Integrity`] if not).
    pub async fn head(&self, key: &str) -> Result<ObjectInfo, ProviderError> {
        check_key(&self.name, key)?;
        let out = self
            .client
            .head_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    e,
                    Service::S3,
                    &format!("reading the metadata of {}", s3_url(&self.name, key)),
                )
            })?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size: out.content_length().and_then(|l| u64::try_from(l).ok()).unwrap_or(0),
            etag: out.e_tag().map(str::to_string),
            sha256: out.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned(),
            last_modified: format_time(out.last_modified()),
            encryption: {
                let reported = out.server_side_encryption().map(|e| e.as_str());
                self.encryption
                    .verify(&s3_url(&self.name, key), reported, out.ssekms_key_id())?;
                reported.map(str::to_string)
            },
            seal: out.metadata().and_then(|m| m.get(SEAL_METADATA)).cloned(),
        })
    }

    /// Lists the objects under `prefix`, following every page. Fails with
    /// [`ProviderError::Invalid`] past [`LIST_LIMIT`] objects.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, ProviderError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| sdk_error(e, Service::S3, &format!("listing {}", s3_url(&self.name, prefix))))?;
            for obj in page.contents() {
                let Some(key) = obj.key() else { continue };
                if out.len() >= LIST_LIMIT {
                    return Err(ProviderError::Invalid(format!(
                        "more than {LIST_LIMIT} objects under {}; list a narrower prefix",
                        s3_url(&self.name, prefix)
                    )));
                }
                out.push(ObjectInfo {
                    key: key.to_string(),
                    size: obj.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    etag: obj.e_tag().map(str::to_string),
                    sha256: None,
                    last_modified: format_time(obj.last_modified()),
                    encryption: None,
                    seal: None,
                });
            }
        }
        Ok(out)
    }

    /// Deletes an object. Deleting a missing key succeeds (deletes are retried
    /// after partial failures, so they must be idempotent); a missing bucket
    /// is still [`ProviderError::NotFound`].
    pub async fn delete(&self, key: &str) -> Result<(), ProviderError> {
        check_key(&self.name, key)?;
        match self.client.delete_object().bucket(&self.name).key(key).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                if service_code(&e) == Some("NoSuchKey") {
                    return Ok(());
                }
                Err(sdk_error(
                    e,
                    Service::S3,
                    &format!("deleting {}", s3_url(&self.name, key)),
                ))
            }
        }
    }

    /// The bucket's own region; see [`bucket_region`].
    pub async fn region(&self) -> Result<String, ProviderError> {
        bucket_region(&self.client, &self.name).await
    }

    /// Presigns a GET of `key` valid for `expires`, signed in the bucket's own
    /// region (looked up first: a URL signed for another region is refused).
    pub async fn presign_get(&self, key: &str, expires: Duration) -> Result<String, ProviderError> {
        let region = self.region().await?;
        self.presign_get_in_region(key, expires, &region).await
    }

    /// Presigns a GET of `key` signed for `region` (for callers that cached
    /// the bucket's region). The URL works with any plain HTTP client.
    pub async fn presign_get_in_region(
        &self,
        key: &str,
        expires: Duration,
        region: &str,
    ) -> Result<String, ProviderError> {
        check_key(&self.name, key)?;
        if expires.is_zero() || expires > MAX_PRESIGN_EXPIRY {
            return Err(ProviderError::Invalid(format!(
                "a presigned URL must be valid for 1 s to 7 days; {} s was asked for {}",
                expires.as_secs(),
                s3_url(&self.name, key)
            )));
        }
        let config = PresigningConfig::expires_in(expires)
            .map_err(|e| ProviderError::Invalid(format!("presigning {}: {e}", s3_url(&self.name, key))))?;
        // Signing happens locally, so a client for another region costs no I/O.
        let regional = Client::from_conf(
            self.client
                .config()
                .to_builder()
                .region(Region::new(region.to_string()))
                .build(),
        );
        let presigned = regional
            .get_object()
            .bucket(&self.name)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| sdk_error(e, Service::S3, &format!("presigning {}", s3_url(&self.name, key))))?;
        Ok(presigned.uri().to_string())
    }

    /// Tells whether the public can read the bucket, from its ACL, its bucket
    /// policy and its Block Public Access settings.
    ///
    /// Not covered: account-level Block Public Access (an s3control call),
    /// per-object ACLs, and access points. A policy statement with conditions
    /// counts as public (and the reason says so): a false alarm is cheaper than
    /// missing an exposed backup.
    pub async fn public_access(&self) -> Result<PublicAccess, ProviderError> {
        let name = &self.name;
        let mut notes = Vec::new();

        let (ignore_acls, restrict_policy) = match self.client.get_public_access_block().bucket(name).send().await {
            Ok(out) => {
                let c = out.public_access_block_configuration();
                (
                    c.and_then(|c| c.ignore_public_acls()).unwrap_or(false),
                    c.and_then(|c| c.restrict_public_buckets()).unwrap_or(false),
                )
            }
            Err(e) => {
                let no_bucket = service_code(&e) == Some("NoSuchBucket");
                match sdk_error(
                    e,
                    Service::S3,
                    &format!("reading Block Public Access of bucket `{name}`"),
                ) {
                    err if no_bucket => return Err(err),
                    // No configuration (or a store without the API): nothing is blocked.
                    ProviderError::NotFound(_) | ProviderError::Invalid(_) => (false, false),
                    ProviderError::Other(m) => {
                        notes.push(format!("Block Public Access settings unreadable ({m})"));
                        (false, false)
                    }
                    other => return Err(other),
                }
            }
        };

        let acl = self
            .client
            .get_bucket_acl()
            .bucket(name)
            .send()
            .await
            .map_err(|e| sdk_error(e, Service::S3, &format!("reading the ACL of bucket `{name}`")))?;
        let mut acl_grants = Vec::new();
        for grant in acl.grants() {
            let uri = grant.grantee().and_then(|g| g.uri()).unwrap_or("");
            let group = if uri.ends_with("/global/AllUsers") {
                "AllUsers"
            } else if uri.ends_with("/global/AuthenticatedUsers") {
                "AuthenticatedUsers (any AWS account)"
            } else {
                continue;
            };
            let perm = grant.permission().map(|p| p.as_str()).unwrap_or("");
            if perm == "READ" || perm == "FULL_CONTROL" {
                acl_grants.push(format!("ACL grants {perm} to {group}"));
            }
        }

        let policy_text = match self.client.get_bucket_policy().bucket(name).send().await {
            Ok(out) => out.policy().map(str::to_string),
            // No policy means the policy grants nothing.
            Err(e) if service_code(&e) == Some("NoSuchBucketPolicy") => None,
            Err(e) => {
                return Err(sdk_error(
                    e,
                    Service::S3,
                    &format!("reading the policy of bucket `{name}`"),
                ));
            }
        };
        let policy_grants = match &policy_text {
            Some(text) => public_policy_statements(text).map_err(|e| {
                ProviderError::Other(format!(
                    "bucket `{name}` has a policy ferry cannot parse ({e}); review it by hand"
                ))
            })?,
            None => Vec::new(),
        };

        let acl_public = !acl_grants.is_empty() && !ignore_acls;
        let policy_public = !policy_grants.is_empty() && !restrict_policy;
        let mut reasons = Vec::new();
        if acl_public {
            reasons.extend(acl_grants.iter().cloned());
        }
        if policy_public {
            reasons.extend(policy_grants.iter().cloned());
        }
        let publicly_readable = acl_public || policy_public;
        let mut reason = if publicly_readable {
            format!("bucket `{name}` is publicly readable: {}", reasons.join("; "))
        } else {
            let mut why = vec!["no ACL grant to AllUsers/AuthenticatedUsers".to_string()];
            if !acl_grants.is_empty() {
                why = vec![format!(
                    "public ACL grants are ignored by Block Public Access ({})",
                    acl_grants.join("; ")
                )];
            }
            if policy_text.is_none() {
                why.push("no bucket policy".into());
            } else if policy_grants.is_empty() {
                why.push("the bucket policy allows no anonymous s3:GetObject".into());
            } else {
                why.push(format!(
                    "public policy statements are restricted by Block Public Access ({})",
                    policy_grants.join("; ")
                ));
            }
            format!("bucket `{name}` is not publicly readable: {}", why.join(", "))
        };
        if !notes.is_empty() {
            reason.push_str(&format!(" (note: {})", notes.join("; ")));
        }
        Ok(PublicAccess {
            publicly_readable,
            reason,
        })
    }

    /// Streams `key` back and checks its SHA-256; see [`verify_object_sha256`].
    pub async fn verify_sha256(&self, key: &str, expected_hex: &str) -> Result<u64, ProviderError> {
        verify_object_sha256(&self.client, &self.name, key, expected_hex).await
    }

    /// Streams chunks into `key`; see [`upload_stream`].
    pub async fn upload_stream<S>(
        &self,
        key: &str,
        stream: S,
        part_size: usize,
    ) -> Result<UploadedObject, ProviderError>
    where
        S: Stream<Item = Result<Bytes, ProviderError>> + Send,
    {
        upload_stream(self, key, stream, part_size).await
    }
}

fn body_error(url: &str, e: &(dyn std::error::Error + 'static)) -> ProviderError {
    let chain = crate::capabilities::provider::error_chain(e);
    if chain.to_ascii_lowercase().contains("checksum") {
        // The SDK validates the store's CRC on full reads.
        ProviderError::Integrity(format!(
            "{url}: the store's checksum does not match the bytes received: {chain}"
        ))
    } else {
        ProviderError::Unavailable(format!("{url}: the download was interrupted: {chain}; retry"))
    }
}

/// Finds the names of statements in a bucket policy (JSON) that let anyone
/// (`Principal: "*"`) get objects.
fn public_policy_statements(policy: &str) -> Result<Vec<String>, serde_json::Error> {
    use serde_json::Value;
    let doc: Value = serde_json::from_str(policy)?;
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    fn strings(v: Option<&Value>) -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    }
    fn principal_is_everyone(p: Option<&Value>) -> bool {
        match p {
            Some(Value::String(s)) => s == "*",
            Some(Value::Object(m)) => m
                .get("AWS")
                .is_some_and(|aws| strings(Some(aws)).iter().any(|s| s == "*")),
            _ => false,
        }
    }
    let mut found = Vec::new();
    for (i, st) in statements.into_iter().enumerate() {
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        // NotPrincipal with Allow grants everyone except the listed principals.
        let everyone = principal_is_everyone(st.get("Principal")) || st.get("NotPrincipal").is_some();
        if !everyone {
            continue;
        }
        let grants_get = if st.get("Action").is_some() {
            strings(st.get("Action"))
                .iter()
                .any(|a| action_matches(a, "s3:GetObject"))
        } else {
            // NotAction: allows every action not listed.
            !strings(st.get("NotAction"))
                .iter()
                .any(|a| action_matches(a, "s3:GetObject"))
        };
        if !grants_get {
            continue;
        }
        let sid = st
            .get("Sid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("#{}", i + 1));
        let mut text = format!("policy statement {sid} allows s3:GetObject to everyone");
        if let Some(cond) = st.get("Condition") {
            text.push_str(&format!(" under conditions {cond} (review them)"));
        }
        found.push(text);
    }
    Ok(found)
}

/// IAM action matching: case-insensitive, `*` and `?` wildcards.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
            (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => glob(&p[1..], &s[1..]),
            _ => false,
        }
    }
    glob(pattern.as_bytes(), action.as_bytes())
}

/// The region a bucket lives in, for presigning and cross-region clients.
///
/// HeadBucket answers with `x-amz-bucket-region` even when sent to the wrong
/// region (as a 301); GetBucketLocation is the fallback for stores or
/// permissions where HeadBucket does not tell.
pub async fn bucket_region(client: &Client, bucket: &str) -> Result<String, ProviderError> {
    if bucket.is_empty() {
        return Err(ProviderError::Invalid("the bucket name is empty".into()));
    }
    match client.head_bucket().bucket(bucket).send().await {
        Ok(out) => {
            if let Some(r) = out.bucket_region().filter(|r| !r.is_empty()) {
                return Ok(r.to_string());
            }
        }
        Err(e) => {
            if let Some(r) = e.raw_response().and_then(|r| r.headers().get("x-amz-bucket-region")) {
                return Ok(r.to_string());
            }
            if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) {
                return Err(ProviderError::NotFound(format!(
                    "bucket `{bucket}` does not exist; check the name in the run config or script"
                )));
            }
        }
    }
    let out = client.get_bucket_location().bucket(bucket).send().await;
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            let err = sdk_error(e, Service::S3, &format!("looking up the region of bucket `{bucket}`"));
            // AWS always answers HeadBucket with the region (above), so this is
            // an S3-compatible store without GetBucketLocation: such stores
            // have one region, the one the client is configured for.
            return match (&err, client.config().region()) {
                (ProviderError::Invalid(_) | ProviderError::Other(_), Some(r)) => {
                    tracing::debug!(%bucket, region = %r, error = %err, "no bucket region from the store; using the client's");
                    Ok(r.to_string())
                }
                _ => Err(err),
            };
        }
    };
    Ok(match out.location_constraint().map(|c| c.as_str()) {
        // An empty constraint is S3's historical way of saying us-east-1.
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(r) => r.to_string(),
    })
}

/// Streams `key` back and checks that its SHA-256 is `expected_hex`; returns
/// the number of bytes read. Run it before restoring from a backup, since a
/// snapshot that is damaged in the store only fails later, at restore time.
pub async fn verify_object_sha256(
    client: &Client,
    bucket: &str,
    key: &str,
    expected_hex: &str,
) -> Result<u64, ProviderError> {
    check_key(bucket, key)?;
    let url = s3_url(bucket, key);
    if !is_sha256_hex(expected_hex) {
        return Err(ProviderError::Invalid(format!(
            "verifying {url}: `{expected_hex}` is not a SHA-256 (64 hex digits)"
        )));
    }
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk_error(e, Service::S3, &format!("reading {url} to verify it")))?;
    let mut body = out.body;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| body_error(&url, &e))?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let actual = hex::encode(hasher.finalize());
    if !actual.eq_ignore_ascii_case(expected_hex) {
        return Err(ProviderError::Integrity(format!(
            "{url} ({size} bytes) has SHA-256 {actual}, expected {expected_hex}; \
             the stored object is not what was written: do not restore from it"
        )));
    }
    Ok(size)
}

/// Reads the SHA-256 recorded in the `<key>.sha256` sidecar of a streamed upload.
pub async fn sidecar_sha256(client: &Client, bucket: &str, key: &str) -> Result<String, ProviderError> {
    let sidecar = format!("{key}{SIDECAR_SUFFIX}");
    let obj = Bucket::new(client.clone(), bucket).get(&sidecar, 4096).await?;
    let text = String::from_utf8_lossy(&obj.data);
    let hex = text.split_whitespace().next().unwrap_or("");
    if !is_sha256_hex(hex) {
        return Err(ProviderError::Integrity(format!(
            "{} does not start with a SHA-256; it is damaged, verify the object against another record",
            s3_url(bucket, &sidecar)
        )));
    }
    Ok(hex.to_ascii_lowercase())
}

/// A multipart upload in progress. Dropping it without [`complete`] or
/// [`abort`] (for example when the task is cancelled) starts an abort in the
/// background, so no orphaned parts keep costing storage.
///
/// [`complete`]: MultipartUpload::complete
/// [`abort`]: MultipartUpload::abort
#[derive(Debug)]
pub struct MultipartUpload {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    encryption: Encryption,
    finished: bool,
}

impl MultipartUpload {
    /// Starts a multipart upload of `key` into `bucket`, with its encryption.
    pub async fn create(target: &Bucket, key: &str, content_type: &str) -> Result<MultipartUpload, ProviderError> {
        let (client, bucket) = (&target.client, target.name.as_str());
        check_key(bucket, key)?;
        let out = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .set_server_side_encryption(target.encryption.algorithm())
            .set_ssekms_key_id(target.encryption.kms_key_id())
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    e,
                    Service::S3,
                    &format!("starting an upload of {}", s3_url(bucket, key)),
                )
            })?;
        let upload_id = out.upload_id().filter(|id| !id.is_empty()).ok_or_else(|| {
            ProviderError::Other(format!(
                "starting an upload of {}: the store returned no upload id; it may not support multipart uploads",
                s3_url(bucket, key)
            ))
        })?;
        Ok(MultipartUpload {
            client: client.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            encryption: target.encryption.clone(),
            finished: false,
        })
    }

    /// The store's id of this upload.
    pub fn upload_id(&self) -> &str {
        &self.upload_id
    }

    /// Uploads part `part_number` (1-based).
    pub async fn upload_part(&self, part_number: i32, data: Bytes) -> Result<CompletedPart, ProviderError> {
        upload_part(
            self.client.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.upload_id.clone(),
            part_number,
            data,
        )
        .await
    }

    /// Completes the upload from `parts` (in part-number order), checks the encryption the
    /// store reports for the object, and returns the ETag.
    pub async fn complete(&mut self, parts: Vec<CompletedPart>) -> Result<Option<String>, ProviderError> {
        let url = s3_url(&self.bucket, &self.key);
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await;
        match result {
            Ok(out) => {
                self.finished = true;
                let reported = out.server_side_encryption().map(|e| e.as_str());
                self.encryption.verify(&url, reported, out.ssekms_key_id())?;
                Ok(out.e_tag().map(str::to_string))
            }
            // Leave `finished` false: the caller aborts, or Drop does.
            Err(e) => Err(sdk_error(e, Service::S3, &format!("completing the upload of {url}"))),
        }
    }

    /// Aborts the upload and frees its parts.
    pub async fn abort(mut self) -> Result<(), ProviderError> {
        self.finished = true;
        abort_upload(&self.client, &self.bucket, &self.key, &self.upload_id).await
    }
}

impl Drop for MultipartUpload {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (client, bucket, key, id) = (
            self.client.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.upload_id.clone(),
        );
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = abort_upload(&client, &bucket, &key, &id).await {
                        tracing::warn!(error = %e, upload_id = %id, "could not abort an abandoned multipart upload");
                    }
                });
            }
            Err(_) => tracing::warn!(
                upload_id = %id,
                bucket = %bucket,
                key = %key,
                "a multipart upload was abandoned outside a runtime and could not be aborted; \
                 a bucket lifecycle rule (AbortIncompleteMultipartUpload) will clean it up"
            ),
        }
    }
}

async fn abort_upload(client: &Client, bucket: &str, key: &str, upload_id: &str) -> Result<(), ProviderError> {
    match client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => match sdk_error(
            e,
            Service::S3,
            &format!("aborting the upload of {}", s3_url(bucket, key)),
        ) {
            // Already gone (aborted or completed): nothing is left behind.
            ProviderError::NotFound(_) => Ok(()),
            other => Err(other),
        },
    }
}

async fn upload_part(
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    part_number: i32,
    data: Bytes,
) -> Result<CompletedPart, ProviderError> {
    // Retries inside the SDK resend the same in-memory Bytes, so a part upload
    // is safe to retry; the SDK's default per-part CRC is kept (see module doc).
    let out = client
        .upload_part()
        .bucket(&bucket)
        .key(&key)
        .upload_id(&upload_id)
        .part_number(part_number)
        .body(ByteStream::from(data))
        .send()
        .await
        .map_err(|e| {
            sdk_error(
                e,
                Service::S3,
                &format!("uploading part {part_number} of {}", s3_url(&bucket, &key)),
            )
        })?;
    crate::killpoint::part_stored(u64::try_from(part_number).unwrap_or_default());
    Ok(CompletedPart::builder()
        .part_number(part_number)
        .set_e_tag(out.e_tag().map(str::to_string))
        .build())
}

/// Parts one upload keeps in flight. One part at a time leaves the source idle for each
/// part's round trip; S3 (and every S3-compatible store) takes parts in parallel. With four,
/// P3 in BENCHMARKS.md streams at 90-100% of the slower leg's own throughput in most runs,
/// with memory at five parts.
pub const PARTS_IN_FLIGHT: usize = 4;

/// A spawned part upload that is cancelled if its owner goes away.
struct InFlight(crate::task::Owned<Result<CompletedPart, ProviderError>>);

impl InFlight {
    async fn join(self) -> Result<CompletedPart, ProviderError> {
        match self.0.join().await {
            Ok(r) => r,
            Err(e) => Err(ProviderError::Other(format!("a part upload task failed: {e}"))),
        }
    }
}

/// Streams `stream` into `bucket`/`key` and writes the `<key>.sha256` sidecar.
///
/// Up to [`PARTS_IN_FLIGHT`] parts upload in background tasks while the next
/// one fills, and reading waits when all are busy, so memory stays bounded at
/// `PARTS_IN_FLIGHT + 1` parts and the source is read while S3 writes. The
/// SHA-256 of the whole stream is computed on the fly. A stream that is
/// shorter than one part is stored with a single PUT (with `sha256` metadata),
/// which also covers the empty stream. On any error, from the stream or from
/// S3, the multipart upload is aborted so no parts are left behind, and the
/// error is returned. `part_size` is clamped to S3's 5 MiB..5 GiB range.
pub async fn upload_stream<S>(
    target: &Bucket,
    key: &str,
    stream: S,
    part_size: usize,
) -> Result<UploadedObject, ProviderError>
where
    S: Stream<Item = Result<Bytes, ProviderError>> + Send,
{
    let (client, bucket) = (&target.client, target.name.as_str());
    check_key(bucket, key)?;
    let url = s3_url(bucket, key);
    abort_abandoned(target, key).await;
    let part_size = part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
    let mut stream = std::pin::pin!(stream);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut buf = BytesMut::new();
    let mut upload: Option<MultipartUpload> = None;
    // In part-number order, so completed parts are collected in the order S3 needs.
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut parts: Vec<CompletedPart> = Vec::new();
    let mut next_part: i32 = 1;

    // Everything up to completing the upload; the cleanup below needs
    // `upload` and `in_flight` back whatever failed.
    let uploaded: Result<(u32, Option<String>), ProviderError> = async {
        while let Some(chunk) = stream.next().await {
            let mut chunk = chunk?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            // Collect finished parts, and surface a failed one now rather than parts later.
            while in_flight.front().is_some_and(|f| f.0.is_finished())
                && let Some(done) = in_flight.pop_front()
            {
                parts.push(done.join().await?);
            }
            while !chunk.is_empty() {
                if buf.capacity() == 0 {
                    buf.reserve(part_size);
                }
                let take = (part_size - buf.len()).min(chunk.len());
                buf.extend_from_slice(&chunk.split_to(take));
                if buf.len() < part_size {
                    continue;
                }
                if next_part > MAX_PARTS {
                    return Err(ProviderError::Invalid(format!(
                        "{url}: the stream needs more than {MAX_PARTS} parts of {part_size} bytes; use a larger part size"
                    )));
                }
                let id = match &upload {
                    Some(up) => up.upload_id.clone(),
                    None => {
                        let up = MultipartUpload::create(target, key, "application/octet-stream").await?;
                        let id = up.upload_id.clone();
                        upload = Some(up);
                        id
                    }
                };
                // Backpressure: at most PARTS_IN_FLIGHT parts upload while the next fills.
                while in_flight.len() >= PARTS_IN_FLIGHT
                    && let Some(done) = in_flight.pop_front()
                {
                    parts.push(done.join().await?);
                }
                let data = buf.split().freeze();
                let task = upload_part(client.clone(), bucket.to_string(), key.to_string(), id, next_part, data);
                in_flight.push_back(InFlight(crate::task::Owned::spawn(task)));
                next_part += 1;
            }
        }
        match upload.as_mut() {
            None => {
                // Shorter than one part (or empty): a single PUT, which can
                // carry the `sha256` metadata as well.
                let info = target
                    .put(key, buf.split().freeze(), &PutOptions::default())
                    .await?;
                Ok((1, info.etag))
            }
            Some(up) => {
                while let Some(done) = in_flight.pop_front() {
                    parts.push(done.join().await?);
                }
                if !buf.is_empty() {
                    if next_part > MAX_PARTS {
                        return Err(ProviderError::Invalid(format!(
                            "{url}: the stream needs more than {MAX_PARTS} parts of {part_size} bytes; use a larger part size"
                        )));
                    }
                    parts.push(up.upload_part(next_part, buf.split().freeze()).await?);
                }
                let count = parts.len() as u32;
                let etag = up.complete(std::mem::take(&mut parts)).await?;
                Ok((count, etag))
            }
        }
    }
    .await;

    let sha256 = hex::encode(hasher.finalize());
    match uploaded {
        Ok((count, etag)) => finish(target, key, size, sha256, count, etag).await,
        Err(e) => {
            // Let every in-flight part settle before aborting: S3 may keep a
            // part that completes after the abort, leaving it orphaned.
            for f in in_flight.drain(..) {
                let _ = f.join().await;
            }
            let note = match upload.take() {
                Some(up) => match up.abort().await {
                    Ok(()) => " (the partial multipart upload was aborted)".to_string(),
                    Err(abort_err) => format!(
                        " (aborting the partial upload failed too: {abort_err}; a bucket lifecycle rule \
                         AbortIncompleteMultipartUpload cleans it up)"
                    ),
                },
                None => String::new(),
            };
            Err(with_note(e, &note))
        }
    }
}

/// Aborts the multipart uploads of exactly `key` that a killed run left in progress (a
/// process killed mid-stream never reaches its own abort), so their parts stop costing and
/// cannot be mistaken for the object. Best effort: a store that cannot list uploads, or
/// credentials that may not, only cost the leftovers a lifecycle rule also removes.
async fn abort_abandoned(target: &Bucket, key: &str) {
    let listed = target
        .client
        .list_multipart_uploads()
        .bucket(&target.name)
        .prefix(key)
        .send()
        .await;
    let uploads = match listed {
        Ok(out) => out.uploads.unwrap_or_default(),
        Err(e) => {
            tracing::debug!(bucket = %target.name, %key, error = %crate::capabilities::provider::error_chain(&e),
                "cannot list unfinished multipart uploads; leftovers of a killed run stay until a lifecycle rule removes them");
            return;
        }
    };
    for upload in uploads.iter().filter(|u| u.key() == Some(key)) {
        let Some(id) = upload.upload_id() else { continue };
        match abort_upload(&target.client, &target.name, key, id).await {
            Ok(()) => tracing::info!(url = %s3_url(&target.name, key), upload_id = %id,
                "aborted a multipart upload an interrupted run left behind"),
            Err(e) => tracing::warn!(url = %s3_url(&target.name, key), upload_id = %id, error = %e,
                "could not abort a multipart upload an interrupted run left behind"),
        }
    }
}

fn with_note(e: ProviderError, note: &str) -> ProviderError {
    use ProviderError as B;
    match e {
        B::NotFound(m) => B::NotFound(m + note),
        B::Conflict(m) => B::Conflict(m + note),
        B::Invalid(m) => B::Invalid(m + note),
        B::Unavailable(m) => B::Unavailable(m + note),
        B::Integrity(m) => B::Integrity(m + note),
        B::Other(m) => B::Other(m + note),
    }
}

/// Writes the sidecar and assembles the result of a finished upload.
async fn finish(
    target: &Bucket,
    key: &str,
    size: u64,
    sha256: String,
    parts: u32,
    etag: Option<String>,
) -> Result<UploadedObject, ProviderError> {
    let base = key.rsplit('/').next().unwrap_or(key);
    let line = format!("{sha256}  {base}\n");
    let options = PutOptions {
        content_type: Some("text/plain; charset=utf-8".into()),
        ..PutOptions::default()
    };
    target
        .put(&format!("{key}{SIDECAR_SUFFIX}"), Bytes::from(line), &options)
        .await
        .map_err(|e| {
            e.context(format!(
                "{} was stored ({size} bytes, SHA-256 {sha256}) but its checksum sidecar was not; retry the whole upload",
                s3_url(&target.name, key)
            ))
        })?;
    Ok(UploadedObject {
        key: key.to_string(),
        size,
        sha256,
        parts,
        etag,
    })
}

/// User metadata to send with an object (exposed for callers that write
/// objects themselves and want the same `sha256` convention).
pub fn sha256_metadata(data: &[u8]) -> HashMap<String, String> {
    HashMap::from([(SHA256_METADATA.to_string(), hex::encode(Sha256::digest(data)))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_detection() {
        let public = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Pub","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        assert_eq!(public_policy_statements(public).expect("json").len(), 1);
        let aws_star =
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:Get*"],"Resource":"*"}}"#;
        assert_eq!(public_policy_statements(aws_star).expect("json").len(), 1);
        let account = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:*"}]}"#;
        assert!(public_policy_statements(account).expect("json").is_empty());
        let deny = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject"}]}"#;
        assert!(public_policy_statements(deny).expect("json").is_empty());
        let put_only = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:PutObject"}]}"#;
        assert!(public_policy_statements(put_only).expect("json").is_empty());
        let not_action = r#"{"Statement":[{"Effect":"Allow","Principal":"*","NotAction":"s3:DeleteObject"}]}"#;
        assert_eq!(public_policy_statements(not_action).expect("json").len(), 1);
        let cond = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;
        let found = public_policy_statements(cond).expect("json");
        assert!(found[0].contains("conditions"), "{found:?}");
        assert!(public_policy_statements("not json").is_err());
    }

    #[test]
    fn action_globs() {
        assert!(action_matches("s3:*", "s3:GetObject"));
        assert!(action_matches("*", "s3:GetObject"));
        assert!(action_matches("S3:getobject", "s3:GetObject"));
        assert!(action_matches("s3:Get?bject", "s3:GetObject"));
        assert!(!action_matches("s3:GetObjectAcl", "s3:GetObject"));
        assert!(!action_matches("s3:List*", "s3:GetObject"));
    }

    #[test]
    fn key_checks() {
        assert!(check_key("b", "").is_err());
        assert!(check_key("", "k").is_err());
        assert!(check_key("b", &"k".repeat(1025)).is_err());
        assert!(check_key("b", "a/b").is_ok());
    }
}
