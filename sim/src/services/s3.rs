//! An in-process S3 server that really verifies SigV4: [`SigV4S3Server`].
//!
//! moto (see [`crate::services::MotoServer`]) accepts any credentials, any
//! signature and expired presigned URLs, so it cannot show that ferry signs
//! correctly or that a URL handed to a hosted cluster stops working when it
//! should. This server is [s3s-fs] (objects as plain files under a directory)
//! behind s3s's SigV4 checks with one access key: header-signed requests,
//! presigned query auth and `X-Amz-Expires` are all verified, and a wrong
//! secret, a tampered signature or an expired URL gets a 403, as on AWS.
//!
//! Server-side encryption is modelled as S3 has behaved since January 2023: an object
//! written without SSE headers is stored with SSE-S3 (`AES256`, the bucket default); one
//! written with `aws:kms` reports the KMS key's ARN (a bare key id is expanded, as KMS
//! does); invalid combinations get S3's `InvalidArgument`. Writes, completed multipart
//! uploads, heads and gets report it in the `x-amz-server-side-encryption` headers.
//! The record is kept in memory for the server's life (objects found on disk report the
//! default).
//!
//! [`SigV4S3Server::set_chaos`] makes it fail a share of the signed requests as S3 does on a
//! bad day (500 `InternalError`, 503 `SlowDown`) and slows part uploads; presigned requests
//! (a hosted cluster fetching its snapshot) are left alone.
//!
//! It runs as a task on the caller's tokio runtime (no child process, nothing
//! to install) and listens on a free 127.0.0.1 port with plain HTTP/1.1.
//! Dropping the handle stops it and closes every open connection.
//!
//! [s3s-fs]: https://crates.io/crates/s3s-fs
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ferry_sim::services::SigV4S3Server;
//! let dir = std::env::temp_dir().join("ferry-s3-demo");
//! let s3 = SigV4S3Server::start(&dir, "AKIDEXAMPLE", "secret").await?;
//! println!("S3 at {} with key {}", s3.url(), s3.access_key());
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::chaos::Chaos;

use anyhow::{Context, Result, bail};
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// An S3 server on 127.0.0.1 that stores objects under a directory and
/// accepts only requests signed (SigV4) with its one access key and secret.
///
/// Buckets are created through the API (`CreateBucket`) or as directories
/// under the root. `GetBucketLocation` answers the empty constraint, i.e.
/// `us-east-1`; signatures are checked against the region the client put in
/// its credential scope, whatever it is.
pub struct SigV4S3Server {
    addr: SocketAddr,
    root: PathBuf,
    access_key: String,
    secret_key: String,
    /// The CA that signed the server certificate, when serving HTTPS.
    ca_pem: Option<String>,
    /// The accept loop; it owns the connection tasks, so aborting it ends them too.
    task: JoinHandle<()>,
    /// Random faults for signed requests, when set.
    chaos: ChaosSlot,
}

/// The [`Chaos`] a running server consults for each request.
type ChaosSlot = Arc<RwLock<Option<Arc<Chaos>>>>;

/// The s3s service behind [`Chaos`]: a signed request may get an S3 error or a delay first.
#[derive(Clone)]
struct ChaosService<S> {
    inner: S,
    chaos: ChaosSlot,
}

/// An S3 error response, as S3 shapes it.
fn s3_error(status: u16, code: &str, message: &str) -> s3s::HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>ferry-sim-chaos</RequestId></Error>"
    );
    let mut resp = hyper::Response::new(s3s::Body::from(body));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    resp
}

impl<S> hyper::service::Service<hyper::Request<hyper::body::Incoming>> for ChaosService<S>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = s3s::HttpResponse,
            Future = futures::future::BoxFuture<'static, Result<s3s::HttpResponse, s3s::HttpError>>,
            Error = s3s::HttpError,
        >,
{
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = futures::future::BoxFuture<'static, Result<s3s::HttpResponse, s3s::HttpError>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let chaos = self.chaos.read().unwrap_or_else(|p| p.into_inner()).clone();
        let signed = req.headers().contains_key(hyper::header::AUTHORIZATION);
        let Some(chaos) = chaos.filter(|_| signed) else {
            return self.inner.call(req);
        };
        let part = req.method() == hyper::Method::PUT
            && req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("partNumber=")));
        let choices: &[&str] = if part {
            &["500", "503", "slow-part"]
        } else {
            &["500", "503"]
        };
        match chaos.pick(choices) {
            None => self.inner.call(req),
            Some("500") => Box::pin(async {
                Ok(s3_error(
                    500,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                ))
            }),
            Some("503") => Box::pin(async { Ok(s3_error(503, "SlowDown", "Please reduce your request rate.")) }),
            Some(_) => {
                let delay = chaos.latency(
                    std::time::Duration::from_millis(100),
                    std::time::Duration::from_millis(600),
                );
                let call = self.inner.call(req);
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    call.await
                })
            }
        }
    }
}

impl SigV4S3Server {
    /// Starts the server on a free 127.0.0.1 port, storing data under
    /// `root_dir` (created if missing), with `access_key`/`secret_key` as the
    /// only accepted credentials. It serves as soon as this returns.
    ///
    /// Must be called inside a tokio runtime; the server runs on it until the
    /// handle is dropped.
    pub async fn start(
        root_dir: impl AsRef<Path>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Result<SigV4S3Server> {
        Self::start_inner(root_dir.as_ref(), access_key.into(), secret_key.into(), false).await
    }

    /// Like [`SigV4S3Server::start`], but serving HTTPS with a certificate for
    /// `127.0.0.1` and `localhost` signed by a CA minted for this server
    /// ([`SigV4S3Server::ca_pem`]): presigned URLs are then `https://`, as
    /// HyperShift requires of `restoreSnapshotURL`.
    pub async fn start_tls(
        root_dir: impl AsRef<Path>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Result<SigV4S3Server> {
        Self::start_inner(root_dir.as_ref(), access_key.into(), secret_key.into(), true).await
    }

    async fn start_inner(root: &Path, access_key: String, secret_key: String, tls: bool) -> Result<SigV4S3Server> {
        let root = root.to_path_buf();
        let (acceptor, ca_pem) = if tls {
            let (config, ca) = tls_config()?;
            (
                Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))),
                Some(ca),
            )
        } else {
            (None, None)
        };
        if access_key.is_empty() || secret_key.is_empty() {
            bail!("the S3 server needs a non-empty access key and secret key");
        }
        std::fs::create_dir_all(&root).with_context(|| format!("cannot create the S3 root {}", root.display()))?;
        // s3s-fs's error type implements neither Display nor Error.
        let fs = s3s_fs::FileSystem::new(&root)
            .map_err(|e| anyhow::anyhow!("cannot serve {} as an S3 store: {e:?}", root.display()))?;
        let chaos = ChaosSlot::default();
        let service = {
            let mut builder = S3ServiceBuilder::new(PrivateStore(fs, SseRecords::default()));
            builder.set_auth(SimpleAuth::from_single(access_key.clone(), secret_key.clone()));
            ChaosService {
                inner: builder.build(),
                chaos: chaos.clone(),
            }
        };
        // Binding port 0 directly: no probe-then-bind race, unlike the launchers
        // of external processes.
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind 127.0.0.1:0 for the S3 server")?;
        let addr = listener
            .local_addr()
            .context("cannot read the S3 server's listening address")?;
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (socket, _) = match listener.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Typically EMFILE; the listener itself stays usable.
                        tracing::warn!(error = %e, %addr, "S3 server: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Reap finished connections so the set does not grow forever.
                while connections.try_join_next().is_some() {}
                let service = service.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let builder = hyper::server::conn::http1::Builder::new();
                    let conn = match acceptor {
                        None => builder.serve_connection(TokioIo::new(socket), service).await,
                        Some(acceptor) => match acceptor.accept(socket).await {
                            Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                            Err(e) => {
                                tracing::debug!(error = %e, "S3 server: TLS handshake failed");
                                return;
                            }
                        },
                    };
                    if let Err(e) = conn {
                        tracing::debug!(error = %e, "S3 server: connection ended with an error");
                    }
                });
            }
        });
        tracing::debug!(%addr, root = %root.display(), "SigV4 S3 server listening");
        Ok(SigV4S3Server {
            addr,
            root,
            access_key,
            secret_key,
            ca_pem,
            task,
            chaos,
        })
    }

    /// Fails a share of the signed requests from now on (`None`: none); see the module docs.
    pub fn set_chaos(&self, chaos: Option<Arc<Chaos>>) {
        *self.chaos.write().unwrap_or_else(|p| p.into_inner()) = chaos;
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:40123` (use path-style addressing).
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA (PEM) clients must trust, when the server speaks HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory holding the buckets (one subdirectory each).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The one access key the server accepts.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret key of [`SigV4S3Server::access_key`].
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }
}

impl fmt::Debug for SigV4S3Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is left out so it never lands in a test log.
        f.debug_struct("SigV4S3Server")
            .field("addr", &self.addr)
            .field("root", &self.root)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl Drop for SigV4S3Server {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every
        // connection task, and closes the listener.
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn status_of(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out);
        Ok(text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0))
    }

    #[tokio::test]
    async fn refuses_anonymous_requests_and_stops_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let server = SigV4S3Server::start(dir.path().join("root"), "ak", "sk").await.unwrap();
        assert!(server.root().is_dir());
        assert!(!format!("{server:?}").contains("sk\""));
        let addr = server.addr();
        assert_eq!(status_of(addr, "/").await.unwrap(), 403);
        drop(server);
        // The abort takes effect at the task's next poll; give it a moment.
        let mut refused = false;
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(refused, "the listener is still open after drop");
    }

    async fn status_with_auth(addr: SocketAddr, path: &str, method: &str) -> u16 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=ak/x\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out);
        text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    #[tokio::test]
    async fn chaos_fails_signed_requests_and_leaves_presigned_ones_alone() {
        let dir = tempfile::tempdir().unwrap();
        let server = SigV4S3Server::start(dir.path(), "ak", "sk").await.unwrap();
        let chaos = Chaos::for_service("s3", 1.0, 1);
        server.set_chaos(Some(chaos.clone()));
        for _ in 0..5 {
            let code = status_with_auth(server.addr(), "/bucket/key", "GET").await;
            assert!(matches!(code, 500 | 503), "a signed request got {code}");
        }
        // A presigned URL carries its signature in the query (the hosted cluster's fetch): it
        // reaches s3s, which refuses this malformed one itself with a 4xx.
        let presigned = status_of(server.addr(), "/bucket/key?X-Amz-Signature=x").await.unwrap();
        assert!((400..500).contains(&presigned), "a presigned request got {presigned}");
        assert_eq!(chaos.total(), 5);
        server.set_chaos(None);
        let calm = status_with_auth(server.addr(), "/bucket/key", "GET").await;
        assert!(
            (400..500).contains(&calm),
            "without chaos the bad signature is refused, got {calm}"
        );
        assert_eq!(chaos.total(), 5);
    }

    #[tokio::test]
    async fn empty_credentials_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = SigV4S3Server::start(dir.path(), "", "sk").await.unwrap_err();
        assert!(err.to_string().contains("access key"), "{err}");
    }
}

/// A rustls server configuration with a fresh CA and a certificate for
/// 127.0.0.1/localhost; returns it with the CA's PEM.
fn tls_config() -> Result<(rustls::ServerConfig, String)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "ferry-sim S3 CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    server.distinguished_name.push(DnType::CommonName, "ferry-sim S3");
    let cert = server.signed_by(&key, &issuer)?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    Ok((config, ca_pem))
}

/// The file-system store as a private AWS bucket: s3s-fs answers the object
/// and multipart calls; the access-control reads a DR tool makes before it
/// trusts a bucket with an etcd snapshot (Block Public Access, ACL, policy)
/// get the answers of a new private bucket instead of `NotImplemented`.
struct PrivateStore(s3s_fs::FileSystem, SseRecords);

/// The server-side encryption of one object, as S3 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sse {
    algorithm: String,
    kms_key_arn: Option<String>,
}

impl Default for Sse {
    /// S3's bucket default since 2023: SSE-S3.
    fn default() -> Self {
        Sse {
            algorithm: s3s::dto::ServerSideEncryption::AES256.to_string(),
            kms_key_arn: None,
        }
    }
}

/// Encryption by object, and the multipart uploads in progress (bucket, key, encryption by
/// upload id) until they complete or are aborted: s3s-fs cannot list those, and a client
/// cleaning up after a killed upload must find them (`ListMultipartUploads`).
#[derive(Debug, Default)]
struct SseRecords {
    objects: std::sync::Mutex<std::collections::HashMap<(String, String), Sse>>,
    uploads: std::sync::Mutex<std::collections::BTreeMap<String, (String, String, Sse)>>,
}

/// The KMS account and region the simulated keys live in.
const KMS_ARN_PREFIX: &str = "arn:aws:kms:us-east-1:000000000000:key/";

impl Sse {
    /// What S3 stores for a write's headers, or its `InvalidArgument`.
    fn requested(algorithm: Option<&s3s::dto::ServerSideEncryption>, key: Option<&str>) -> s3s::S3Result<Sse> {
        use s3s::dto::ServerSideEncryption as E;
        match (algorithm.map(E::as_str), key) {
            (None, None) => Ok(Sse::default()),
            (Some(E::AES256), None) => Ok(Sse::default()),
            (Some(a @ (E::AWS_KMS | E::AWS_KMS_DSSE)), key) => Ok(Sse {
                algorithm: a.to_string(),
                kms_key_arn: Some(match key {
                    Some(k) if k.starts_with("arn:") => k.to_string(),
                    Some(k) => format!("{KMS_ARN_PREFIX}{}", k.trim_start_matches("alias/")),
                    // The account's AWS-managed key for S3.
                    None => format!("{KMS_ARN_PREFIX}aws-s3-managed"),
                }),
            }),
            (Some(E::AES256) | None, Some(_)) => Err(s3s::s3_error!(
                InvalidArgument,
                "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
            )),
            (Some(_), _) => Err(s3s::s3_error!(
                InvalidArgument,
                "The encryption method specified is not supported"
            )),
        }
    }

    fn algorithm(&self) -> Option<s3s::dto::ServerSideEncryption> {
        Some(s3s::dto::ServerSideEncryption::from(self.algorithm.clone()))
    }
}

impl SseRecords {
    fn of(&self, bucket: &str, key: &str) -> Sse {
        let objects = self.objects.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        objects
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn set(&self, bucket: &str, key: &str, sse: Sse) {
        let mut objects = self.objects.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        objects.insert((bucket.to_string(), key.to_string()), sse);
    }

    fn start(&self, upload_id: &str, bucket: &str, key: &str, sse: Sse) {
        let mut uploads = self.uploads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        uploads.insert(upload_id.to_string(), (bucket.to_string(), key.to_string(), sse));
    }

    fn finish(&self, upload_id: &str) -> Sse {
        let mut uploads = self.uploads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        uploads.remove(upload_id).map(|(_, _, sse)| sse).unwrap_or_default()
    }

    /// (key, upload id) of the uploads in progress in `bucket` under `prefix`, by key.
    fn in_progress(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        let uploads = self.uploads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut found: Vec<(String, String)> = uploads
            .iter()
            .filter(|(_, (b, k, _))| b == bucket && k.starts_with(prefix))
            .map(|(id, (_, k, _))| (k.clone(), id.clone()))
            .collect();
        found.sort();
        found
    }
}

macro_rules! delegate {
    ($($method:ident: $input:ident => $output:ident,)*) => {
        #[async_trait::async_trait]
        impl s3s::S3 for PrivateStore {
            $(
                async fn $method(
                    &self,
                    req: s3s::S3Request<s3s::dto::$input>,
                ) -> s3s::S3Result<s3s::S3Response<s3s::dto::$output>> {
                    self.0.$method(req).await
                }
            )*

            async fn put_object(
                &self,
                req: s3s::S3Request<s3s::dto::PutObjectInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::PutObjectOutput>> {
                let sse = Sse::requested(req.input.server_side_encryption.as_ref(), req.input.ssekms_key_id.as_deref())?;
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                let mut out = self.0.put_object(req).await?;
                out.output.server_side_encryption = sse.algorithm();
                out.output.ssekms_key_id = sse.kms_key_arn.clone();
                self.1.set(&bucket, &key, sse);
                Ok(out)
            }

            async fn create_multipart_upload(
                &self,
                req: s3s::S3Request<s3s::dto::CreateMultipartUploadInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CreateMultipartUploadOutput>> {
                let sse = Sse::requested(req.input.server_side_encryption.as_ref(), req.input.ssekms_key_id.as_deref())?;
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                let mut out = self.0.create_multipart_upload(req).await?;
                out.output.server_side_encryption = sse.algorithm();
                out.output.ssekms_key_id = sse.kms_key_arn.clone();
                if let Some(id) = &out.output.upload_id {
                    self.1.start(id, &bucket, &key, sse);
                }
                Ok(out)
            }

            async fn abort_multipart_upload(
                &self,
                req: s3s::S3Request<s3s::dto::AbortMultipartUploadInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::AbortMultipartUploadOutput>> {
                let id = req.input.upload_id.clone();
                let out = self.0.abort_multipart_upload(req).await?;
                self.1.finish(&id);
                Ok(out)
            }

            async fn list_multipart_uploads(
                &self,
                req: s3s::S3Request<s3s::dto::ListMultipartUploadsInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListMultipartUploadsOutput>> {
                let prefix = req.input.prefix.clone().unwrap_or_default();
                let uploads = self
                    .1
                    .in_progress(&req.input.bucket, &prefix)
                    .into_iter()
                    .map(|(key, id)| s3s::dto::MultipartUpload {
                        key: Some(key),
                        upload_id: Some(id),
                        ..Default::default()
                    })
                    .collect();
                Ok(s3s::S3Response::new(s3s::dto::ListMultipartUploadsOutput {
                    bucket: Some(req.input.bucket),
                    prefix: Some(prefix),
                    is_truncated: Some(false),
                    uploads: Some(uploads),
                    ..Default::default()
                }))
            }

            async fn complete_multipart_upload(
                &self,
                req: s3s::S3Request<s3s::dto::CompleteMultipartUploadInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CompleteMultipartUploadOutput>> {
                let (bucket, key, id) = (req.input.bucket.clone(), req.input.key.clone(), req.input.upload_id.clone());
                let mut out = self.0.complete_multipart_upload(req).await?;
                let sse = self.1.finish(&id);
                out.output.server_side_encryption = sse.algorithm();
                out.output.ssekms_key_id = sse.kms_key_arn.clone();
                self.1.set(&bucket, &key, sse);
                Ok(out)
            }

            async fn head_object(
                &self,
                req: s3s::S3Request<s3s::dto::HeadObjectInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::HeadObjectOutput>> {
                let sse = self.1.of(&req.input.bucket, &req.input.key);
                let mut out = self.0.head_object(req).await?;
                out.output.server_side_encryption = sse.algorithm();
                out.output.ssekms_key_id = sse.kms_key_arn;
                Ok(out)
            }

            async fn get_object(
                &self,
                req: s3s::S3Request<s3s::dto::GetObjectInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetObjectOutput>> {
                let sse = self.1.of(&req.input.bucket, &req.input.key);
                let mut out = self.0.get_object(req).await?;
                out.output.server_side_encryption = sse.algorithm();
                out.output.ssekms_key_id = sse.kms_key_arn;
                Ok(out)
            }

            async fn get_public_access_block(
                &self,
                _req: s3s::S3Request<s3s::dto::GetPublicAccessBlockInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetPublicAccessBlockOutput>> {
                let mut e = s3s::S3Error::with_message(
                    s3s::S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
                    "The public access block configuration was not found",
                );
                e.set_status_code(http::StatusCode::NOT_FOUND);
                Err(e)
            }

            async fn get_bucket_acl(
                &self,
                req: s3s::S3Request<s3s::dto::GetBucketAclInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetBucketAclOutput>> {
                // The owner alone, as a new bucket has.
                let owner = s3s::dto::Owner {
                    display_name: Some("ferry-sim".to_string()),
                    id: Some("ferry-sim-owner".to_string()),
                };
                let head = s3s::dto::HeadBucketInput {
                    bucket: req.input.bucket.clone(),
                    expected_bucket_owner: None,
                };
                self.0.head_bucket(req.map_input(|_| head)).await?;
                Ok(s3s::S3Response::new(s3s::dto::GetBucketAclOutput {
                    grants: Some(vec![s3s::dto::Grant {
                        grantee: Some(s3s::dto::Grantee {
                            type_: s3s::dto::Type::from_static(s3s::dto::Type::CANONICAL_USER),
                            display_name: owner.display_name.clone(),
                            id: owner.id.clone(),
                            email_address: None,
                            uri: None,
                        }),
                        permission: Some(s3s::dto::Permission::from_static(s3s::dto::Permission::FULL_CONTROL)),
                    }]),
                    owner: Some(owner),
                }))
            }

            async fn get_bucket_policy(
                &self,
                _req: s3s::S3Request<s3s::dto::GetBucketPolicyInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetBucketPolicyOutput>> {
                Err(s3s::s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))
            }
        }
    };
}

delegate! {
    create_bucket: CreateBucketInput => CreateBucketOutput,
    copy_object: CopyObjectInput => CopyObjectOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    list_objects: ListObjectsInput => ListObjectsOutput,
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    list_parts: ListPartsInput => ListPartsOutput,
}
