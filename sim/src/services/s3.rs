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
//! Keys are S3's: up to 1,024 bytes of UTF-8, any segments; a longer key gets S3's 400
//! `KeyTooLongError`. An object whose key is a file path the file system takes is the file
//! `<root>/<bucket>/<key>`; any other key (a segment over 255 bytes, a key too long for s3s-fs's
//! metadata file names, an empty, `.` or `..` segment) is stored under a hash of the key in
//! `<root>/<bucket>/.ferry/`, with the key recorded beside it so listings give the real keys, in
//! S3's order. A write that fails (a bad digest, a dropped connection, an I/O error) is undone:
//! the previous object, or none, is left.
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

/// The s3s service behind what is checked before it: a key longer than S3 takes gets S3's
/// `KeyTooLongError` (s3s refuses it too, but without S3's message), and under [`Chaos`] a
/// signed request may get an S3 error or a delay first.
#[derive(Clone)]
struct FrontService<S> {
    inner: S,
    chaos: ChaosSlot,
}

/// An S3 error response, as S3 shapes it.
fn s3_error(status: u16, code: &str, message: &str) -> s3s::HttpResponse {
    s3_error_with(status, code, message, "", "ferry-sim-chaos")
}

/// An S3 error response with `extra` elements after the message (e.g. `<Size>`).
fn s3_error_with(status: u16, code: &str, message: &str, extra: &str, request_id: &str) -> s3s::HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         {extra}<RequestId>{request_id}</RequestId></Error>"
    );
    let mut resp = hyper::Response::new(s3s::Body::from(body));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    resp
}

impl<S> hyper::service::Service<hyper::Request<hyper::body::Incoming>> for FrontService<S>
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
        let copy_source = req
            .headers()
            .get("x-amz-copy-source")
            .and_then(|h| h.to_str().ok())
            .and_then(copy_source_key_len);
        let longest = path_key_len(req.uri().path()).max(copy_source);
        if let Some(len) = longest.filter(|&len| len > MAX_KEY_LEN) {
            return Box::pin(async move {
                Ok(s3_error_with(
                    400,
                    "KeyTooLongError",
                    KEY_TOO_LONG,
                    &format!("<Size>{len}</Size><MaxSizeAllowed>{MAX_KEY_LEN}</MaxSizeAllowed>"),
                    "ferry-sim",
                ))
            });
        }
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
        // The directory s3s-fs resolves its paths under (it canonicalizes it the same way).
        let files = Files::new(
            root.canonicalize()
                .with_context(|| format!("cannot resolve the S3 root {}", root.display()))?,
        );
        let chaos = ChaosSlot::default();
        let service = {
            let mut builder = S3ServiceBuilder::new(PrivateStore {
                fs,
                sse: SseRecords::default(),
                files,
            });
            builder.set_auth(SimpleAuth::from_single(access_key.clone(), secret_key.clone()));
            FrontService {
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
    use std::time::Duration;
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

    const BUCKET: &str = "backups";

    /// A client of `server` as ferry's are made: path-style, SigV4 with its key.
    fn sdk_client(server: &SigV4S3Server) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(server.url())
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                server.access_key(),
                server.secret_key(),
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    async fn server_with_bucket(root: &Path) -> (SigV4S3Server, aws_sdk_s3::Client) {
        let server = SigV4S3Server::start(root, "ak", "sk").await.unwrap();
        let client = sdk_client(&server);
        client.create_bucket().bucket(BUCKET).send().await.unwrap();
        (server, client)
    }

    /// A key of exactly `len` bytes under `dir`: a 300-byte segment, 200-byte ones, a file name.
    fn long_key(dir: &str, len: usize) -> String {
        let mut key = format!("{dir}{}/", "s".repeat(300));
        while len - key.len() > 250 {
            key.push_str(&"m".repeat(200));
            key.push('/');
        }
        let name = len - key.len() - ".json".len();
        key.push_str(&"t".repeat(name));
        key.push_str(".json");
        assert_eq!(key.len(), len);
        key
    }

    /// GETs `url` as a hosted cluster fetches a presigned URL: (status, body).
    async fn fetch(url: &str) -> (u16, Vec<u8>) {
        use http_body_util::BodyExt as _;
        let uri: hyper::Uri = url.parse().unwrap();
        let authority = uri.authority().unwrap().to_string();
        let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get(uri.path_and_query().unwrap().as_str())
            .header(hyper::header::HOST, &authority)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
    }

    /// Every file under `dir`.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files
    }

    async fn listed(client: &aws_sdk_s3::Client, prefix: &str) -> Vec<String> {
        let out = client
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    /// The status, code and message S3 gives a failed request.
    fn refusal<E: aws_sdk_s3::error::ProvideErrorMetadata>(
        err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> (Option<u16>, Option<String>, Option<String>) {
        use aws_sdk_s3::error::ProvideErrorMetadata as _;
        (
            err.raw_response().map(|r| r.status().as_u16()),
            err.code().map(str::to_string),
            err.message().map(str::to_string),
        )
    }

    fn too_long() -> (Option<u16>, Option<String>, Option<String>) {
        (
            Some(400),
            Some("KeyTooLongError".to_string()),
            Some("Your key is too long".to_string()),
        )
    }

    #[test]
    fn keys_map_to_paths_the_file_system_takes() {
        // The longest bucket name still leaves room for a hashed key's sidecar names.
        let bucket = "b".repeat(63);
        let hashed = Files::name(&bucket, &"k".repeat(MAX_KEY_LEN)).unwrap();
        assert_eq!(hashed.stored.len(), HASHED_DIR.len() + 1 + 64);
        assert!(SIDECAR_OVERHEAD + base64_len(bucket.len()) + base64_len(hashed.stored.len()) <= NAME_MAX);
        assert_eq!(base64_len(71), 95);
        // Ordinary keys are their own paths; the rest are hashed.
        for key in [
            "hosted-clusters/ns/hc/20261123T101500Z/index.json",
            "a",
            "dir/",
            "a/.ferry/b",
        ] {
            assert_eq!(Files::name("backups", key).unwrap().stored, key);
        }
        let segment = "x".repeat(256);
        for key in [
            ".ferry",
            ".ferry/x",
            "a//b",
            "/a",
            "a/./b",
            "a/../b",
            "a\0b",
            segment.as_str(),
            &"y".repeat(129),
        ] {
            let name = Files::name("backups", key).unwrap();
            assert_eq!(name.stored, format!(".ferry/{}", sha256_hex(key)), "{key:?}");
        }
        assert!(Files::name("backups", &"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert_eq!(path_key_len("/b/%41%2"), Some(3));
        assert_eq!(path_key_len("/b"), None);
        assert_eq!(path_key_len(&format!("/b/{}", "%7A".repeat(1025))), Some(1025));
        assert_eq!(copy_source_key_len("/b/k%41?versionId=x%41"), Some(2));
        assert_eq!(copy_source_key_len("b/k"), Some(1));
        assert_eq!(
            copy_source_key_len("arn:aws:s3:us-east-1:000000000000:accesspoint/a/object/k"),
            None
        );
    }

    /// Keys up to S3's 1,024 bytes, with segments past the file system's 255, go through every
    /// call ferry and a hosted cluster make; the listed keys are the real ones, in S3's order.
    #[tokio::test]
    async fn keys_of_1024_bytes_round_trip_through_put_head_list_and_presigned_get() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = server_with_bucket(dir.path()).await;
        let run = "hosted-clusters/clusters/hc1/20261123T101500Z/";
        let longest = long_key(&format!("{run}manifests/"), MAX_KEY_LEN);
        // Every segment fits a file name, but not the base64 of the whole key.
        let mut manifest = format!("{run}manifests/hypershift.openshift.io/v1beta1/hostedclusters/clusters/");
        manifest.push_str(&"n".repeat(147 - manifest.len() - ".json".len()));
        manifest.push_str(".json");
        assert_eq!(manifest.len(), 147);
        let index = format!("{run}index.json");
        let objects: Vec<(String, Vec<u8>)> = [&longest, &manifest, &index]
            .into_iter()
            .enumerate()
            .map(|(i, key)| (key.clone(), format!("object {i} of {key}").into_bytes()))
            .collect();
        let kms = format!("{KMS_ARN_PREFIX}ferry-backups");
        for (key, body) in &objects {
            let out = client
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .ssekms_key_id("ferry-backups")
                .body(body.clone().into())
                .send()
                .await
                .unwrap();
            assert_eq!(out.ssekms_key_id(), Some(kms.as_str()));
        }
        // A multipart upload of a 1,024-byte key too.
        let multipart = long_key(&format!("{run}etcd/"), MAX_KEY_LEN);
        let created = client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&multipart)
            .send()
            .await
            .unwrap();
        assert_eq!(created.key(), Some(multipart.as_str()));
        let id = created.upload_id().unwrap();
        let uploads = client.list_multipart_uploads().bucket(BUCKET).send().await.unwrap();
        assert_eq!(uploads.uploads()[0].key(), Some(multipart.as_str()));
        let part = client
            .upload_part()
            .bucket(BUCKET)
            .key(&multipart)
            .upload_id(id)
            .part_number(1)
            .body(b"the snapshot".to_vec().into())
            .send()
            .await
            .unwrap();
        let parts = client
            .list_parts()
            .bucket(BUCKET)
            .key(&multipart)
            .upload_id(id)
            .send()
            .await
            .unwrap();
        assert_eq!(parts.parts().len(), 1);
        let done = client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(&multipart)
            .upload_id(id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .parts(
                        aws_sdk_s3::types::CompletedPart::builder()
                            .part_number(1)
                            .e_tag(part.e_tag().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(done.key(), Some(multipart.as_str()));
        let objects: Vec<(String, Vec<u8>)> = objects
            .into_iter()
            .chain([(multipart.clone(), b"the snapshot".to_vec())])
            .collect();

        for (key, body) in &objects {
            let head = client.head_object().bucket(BUCKET).key(key).send().await.unwrap();
            assert_eq!(head.content_length(), Some(body.len() as i64), "{key}");
            let got = client.get_object().bucket(BUCKET).key(key).send().await.unwrap();
            assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), body.as_slice());
            let url = client
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
                .await
                .unwrap();
            assert_eq!(fetch(url.uri()).await, (200, body.clone()), "{key}");
        }
        let head = client.head_object().bucket(BUCKET).key(&longest).send().await.unwrap();
        assert_eq!(
            head.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        );
        assert_eq!(head.ssekms_key_id(), Some(kms.as_str()));

        // Listed whole, a page at a time, and by "directory".
        let mut all: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
        all.sort();
        assert_eq!(listed(&client, run).await, all);
        let (mut paged, mut token) = (Vec::new(), None);
        loop {
            let page = client
                .list_objects_v2()
                .bucket(BUCKET)
                .prefix(run)
                .max_keys(1)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            paged.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(paged, all);
        let by_dir = client
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(format!("{run}manifests/"))
            .delimiter("/")
            .send()
            .await
            .unwrap();
        let dirs: Vec<&str> = by_dir.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
        assert_eq!(
            dirs,
            [
                format!("{run}manifests/hypershift.openshift.io/"),
                format!("{run}manifests/{}/", "s".repeat(300)),
            ]
        );
        assert!(by_dir.contents().is_empty());
        let sized = client
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(&longest)
            .send()
            .await
            .unwrap();
        assert_eq!(sized.contents()[0].size(), Some(objects[0].1.len() as i64));

        // On disk: no name past the file system's limit; ordinary keys are their own paths.
        for file in files_under(dir.path()) {
            let name = file.file_name().unwrap().len();
            assert!(name <= NAME_MAX, "{} is {name} bytes", file.display());
        }
        assert_eq!(
            std::fs::read(dir.path().join(BUCKET).join(&index)).unwrap(),
            objects[2].1
        );

        // Deleted, it is gone with its key record.
        client
            .delete_object()
            .bucket(BUCKET)
            .key(&longest)
            .send()
            .await
            .unwrap();
        let err = client
            .head_object()
            .bucket(BUCKET)
            .key(&longest)
            .send()
            .await
            .unwrap_err();
        assert_eq!(refusal(&err).0, Some(404));
        assert!(!listed(&client, run).await.contains(&longest));
        let hashed = files_under(&dir.path().join(BUCKET).join(HASHED_DIR));
        assert_eq!(hashed.len(), 4, "two objects and their key records: {hashed:?}");
        drop(server);
    }

    /// S3's own answer to a key over 1,024 bytes, whatever the call; nothing is written.
    #[tokio::test]
    async fn a_key_over_1024_bytes_gets_key_too_long_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = server_with_bucket(dir.path()).await;
        let key = long_key("hosted-clusters/clusters/hc1/", MAX_KEY_LEN + 1);

        let err = client
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(b"bytes".to_vec().into())
            .send()
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), too_long(), "{err:?}");
        let err = client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), too_long(), "{err:?}");
        let err = client.get_object().bucket(BUCKET).key(&key).send().await.unwrap_err();
        assert_eq!(refusal(&err), too_long(), "{err:?}");
        // A HEAD answer has no body to name the error.
        let err = client.head_object().bucket(BUCKET).key(&key).send().await.unwrap_err();
        assert_eq!(refusal(&err).0, Some(400), "{err:?}");
        // A copy names its source in a header.
        let err = client
            .copy_object()
            .bucket(BUCKET)
            .key("copy")
            .copy_source(format!("{BUCKET}/{key}"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), too_long(), "{err:?}");
        let url = client
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
            .await
            .unwrap();
        let (status, body) = fetch(url.uri()).await;
        let body = String::from_utf8(body).unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("<Code>KeyTooLongError</Code>"), "{body}");
        assert!(body.contains("<Message>Your key is too long</Message>"), "{body}");

        assert!(listed(&client, "").await.is_empty());
        assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());
        drop(server);
    }

    /// A write S3 refuses after reading the body (here a wrong Content-MD5, or a part too small
    /// at completion) leaves no object, or the one it would have replaced, with its encryption.
    #[tokio::test]
    async fn a_failed_write_leaves_the_previous_object_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let (server, client) = server_with_bucket(dir.path()).await;
        let wrong_md5 = "AAAAAAAAAAAAAAAAAAAAAA==";
        let keys = [
            "hosted-clusters/clusters/hc1/snap.db".to_string(),
            long_key("hosted-clusters/clusters/hc1/", 600),
        ];
        for key in &keys {
            let err = client
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .content_md5(wrong_md5)
                .body(b"never stored".to_vec().into())
                .send()
                .await
                .unwrap_err();
            assert_eq!(refusal(&err).1.as_deref(), Some("BadDigest"), "{err:?}");
            let err = client.head_object().bucket(BUCKET).key(key).send().await.unwrap_err();
            assert_eq!(refusal(&err).0, Some(404));
        }
        assert!(listed(&client, "").await.is_empty());
        assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());

        for key in &keys {
            client
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .body(b"first".to_vec().into())
                .send()
                .await
                .unwrap();
            let err = client
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .content_md5(wrong_md5)
                .body(b"second, refused".to_vec().into())
                .send()
                .await
                .unwrap_err();
            assert_eq!(refusal(&err).1.as_deref(), Some("BadDigest"), "{err:?}");
            let got = client.get_object().bucket(BUCKET).key(key).send().await.unwrap();
            assert_eq!(
                got.server_side_encryption(),
                Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            );
            assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"first");
        }
        // A completion S3 refuses (a part under 5 MiB that is not the last) leaves the object
        // and the upload as they were: it can still be aborted.
        let key = &keys[1];
        let id = client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_string();
        let mut parts = aws_sdk_s3::types::CompletedMultipartUpload::builder();
        for n in 1..=2 {
            let part = client
                .upload_part()
                .bucket(BUCKET)
                .key(key)
                .upload_id(&id)
                .part_number(n)
                .body(b"small".to_vec().into())
                .send()
                .await
                .unwrap();
            parts = parts.parts(
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(n)
                    .e_tag(part.e_tag().unwrap())
                    .build(),
            );
        }
        let err = client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .multipart_upload(parts.build())
            .send()
            .await
            .unwrap_err();
        assert_eq!(refusal(&err).1.as_deref(), Some("EntityTooSmall"), "{err:?}");
        let got = client.get_object().bucket(BUCKET).key(key).send().await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"first");
        let uploads = client.list_multipart_uploads().bucket(BUCKET).send().await.unwrap();
        assert_eq!(uploads.uploads().len(), 1);
        client
            .abort_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .send()
            .await
            .unwrap();

        let mut all = keys.to_vec();
        all.sort();
        assert_eq!(listed(&client, "").await, all);
        // Nothing kept aside is left in the root.
        let stray: Vec<PathBuf> = files_under(dir.path())
            .into_iter()
            .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with(".tmp."))
            .collect();
        assert_eq!(stray, Vec::<PathBuf>::new());
        drop(server);
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
/// and multipart calls, under the file names [`Files`] gives the keys, and listing is
/// done here on the real keys; the access-control reads a DR tool makes before it
/// trusts a bucket with an etcd snapshot (Block Public Access, ACL, policy)
/// get the answers of a new private bucket instead of `NotImplemented`.
struct PrivateStore {
    fs: s3s_fs::FileSystem,
    sse: SseRecords,
    files: Files,
}

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

/// S3's longest key, in bytes (of UTF-8).
const MAX_KEY_LEN: usize = 1024;

/// S3's message for a key longer than [`MAX_KEY_LEN`].
const KEY_TOO_LONG: &str = "Your key is too long";

/// The longest file name the usual file systems take (ext4, xfs, btrfs, tmpfs), in bytes.
const NAME_MAX: usize = 255;

/// The directory at the top of a bucket that holds the objects whose keys are no file path
/// (see [`Files`]). Keys under it are stored hashed too, so no key lands on its files.
const HASHED_DIR: &str = ".ferry";

/// What s3s-fs adds to the unpadded base64 of a bucket and of a stored key to name an
/// object's sidecar files, at the most: `.bucket-<b>.object-<k>.upload-<uuid>.metadata.json`.
const SIDECAR_OVERHEAD: usize = ".bucket-".len() + ".object-".len() + ".upload-".len() + 36 + ".metadata.json".len();

/// The length of the unpadded base64 of `n` bytes.
const fn base64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

fn key_too_long() -> s3s::S3Error {
    s3s::S3Error::with_message(s3s::S3ErrorCode::KeyTooLongError, KEY_TOO_LONG)
}

/// The length in bytes of the key a path-style request names (`/<bucket>/<key>`) once
/// percent-decoded as s3s decodes it; `None` when the path names no object.
fn path_key_len(path: &str) -> Option<usize> {
    let (_, key) = path.strip_prefix('/')?.split_once('/')?;
    Some(decoded_len(key))
}

/// The length in bytes of the key an `x-amz-copy-source` header (`[/]<bucket>/<key>[?versionId=…]`)
/// names once percent-decoded; `None` for an access point or outpost ARN.
fn copy_source_key_len(header: &str) -> Option<usize> {
    let path = header.split_once("?versionId=").map_or(header, |(path, _)| path);
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.starts_with("arn:") {
        return None;
    }
    let (_, key) = path.split_once('/')?;
    Some(decoded_len(key))
}

/// The length in bytes of `text` percent-decoded (`%` and two hex digits are one byte).
fn decoded_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut at, mut len) = (0, 0);
    while let Some(&byte) = bytes.get(at) {
        let escape = byte == b'%'
            && bytes.get(at + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(at + 2).is_some_and(u8::is_ascii_hexdigit);
        at += if escape { 3 } else { 1 };
        len += 1;
    }
    len
}

/// The SHA-256 of `key`, in lower-case hex.
fn sha256_hex(key: &str) -> String {
    use s3s::crypto::Checksum as _;
    use std::fmt::Write as _;
    s3s::crypto::Sha256::checksum(key.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// An object's key and the key s3s-fs stores it under.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ObjectName {
    /// The key as the client wrote it.
    key: String,
    /// `key` itself, or `.ferry/<hash>`.
    stored: String,
    /// The SHA-256 (hex) of `key`, when it is stored hashed.
    hash: Option<String>,
}

/// Where a store's objects are on disk. s3s-fs keeps an object as the file
/// `<root>/<bucket>/<key>` and its metadata in files named after the base64 of the bucket and
/// the whole key (`<root>/.bucket-<b>.object-<k>….json`), so a key with a segment over 255
/// bytes, or longer than 72 to 128 bytes (by the bucket name's length), has no file name. Such a key (and one no file
/// path gives back: an empty, `.` or `..` segment, a NUL) is handed to s3s-fs as
/// `.ferry/<SHA-256 of the key>` instead, with the key itself in `.ferry/<SHA-256>.key` for
/// listing; every other key is its own path, as code reading the store's directory expects.
///
/// Writes go one at a time per object and are undone when they fail (see [`Write`]).
#[derive(Clone)]
struct Files {
    /// The canonical root, as s3s-fs resolves it.
    root: PathBuf,
    locks: Arc<KeyLocks>,
}

/// What was at a path before a write.
enum Before {
    /// A file, kept meanwhile under this name.
    File(PathBuf),
    Absent,
}

/// A write of one object in progress: dropped without [`Write::commit`] (an error, a dropped
/// connection), it puts back the files the write replaced and removes those it added, so a
/// failed write leaves the previous object, or none.
struct Write<'a> {
    saved: Vec<(PathBuf, Before)>,
    committed: bool,
    _lock: KeyLock<'a>,
}

impl Write<'_> {
    fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Write<'_> {
    fn drop(&mut self) {
        for (path, before) in self.saved.drain(..) {
            let tidied = match (self.committed, before) {
                (true, Before::File(kept)) => std::fs::remove_file(kept),
                (true, Before::Absent) => Ok(()),
                // Renaming a link over another link of the same file does nothing: the write
                // left that file alone (it failed before rewriting it).
                (false, Before::File(kept)) => {
                    std::fs::rename(&kept, &path).and_then(|()| match std::fs::remove_file(&kept) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        other => other,
                    })
                }
                // Nothing there, or a directory (a key ending in `/`): nothing the write added.
                (false, Before::Absent) => match std::fs::remove_file(&path) {
                    Err(e) if is_gone(&e) || e.kind() == std::io::ErrorKind::IsADirectory => Ok(()),
                    other => other,
                },
            };
            if let Err(e) = tidied {
                tracing::warn!(error = %e, path = %path.display(), "S3 server: cannot tidy up after a write");
            }
        }
    }
}

/// One async lock per object path, dropped from the map once nobody holds or awaits it.
#[derive(Default)]
struct KeyLocks(std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>);

struct KeyLock<'a> {
    locks: &'a KeyLocks,
    path: PathBuf,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyLocks {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn lock(&self, path: PathBuf) -> KeyLock<'_> {
        let mutex = Arc::clone(self.map().entry(path.clone()).or_default());
        let guard = mutex.lock_owned().await;
        KeyLock {
            locks: self,
            path,
            guard: Some(guard),
        }
    }
}

impl Drop for KeyLock<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.map();
        drop(self.guard.take());
        // The map's own reference alone: no holder, no waiter (they hold clones).
        if map.get(&self.path).is_some_and(|m| Arc::strong_count(m) == 1) {
            map.remove(&self.path);
        }
    }
}

/// Whether an I/O error says the path is not there (or a file is where a directory would be).
fn is_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

impl Files {
    fn new(root: PathBuf) -> Files {
        Files {
            root,
            locks: Arc::default(),
        }
    }

    /// Whether `key` can be its own path in `bucket`, s3s-fs's sidecar file names included.
    fn is_path(bucket: &str, key: &str) -> bool {
        let segments = key.split('/').count();
        !key.is_empty()
            && !key.contains('\0')
            && key.split('/').next() != Some(HASHED_DIR)
            && key.split('/').enumerate().all(|(i, segment)| {
                (!segment.is_empty() || i + 1 == segments)
                    && segment != "."
                    && segment != ".."
                    && segment.len() <= NAME_MAX
            })
            && SIDECAR_OVERHEAD + base64_len(bucket.len()) + base64_len(key.len()) <= NAME_MAX
    }

    /// Where `key` is stored in `bucket`; S3's `KeyTooLongError` past 1,024 bytes.
    fn name(bucket: &str, key: &str) -> s3s::S3Result<ObjectName> {
        if key.len() > MAX_KEY_LEN {
            return Err(key_too_long());
        }
        if Self::is_path(bucket, key) {
            return Ok(ObjectName {
                key: key.to_string(),
                stored: key.to_string(),
                hash: None,
            });
        }
        let hash = sha256_hex(key);
        Ok(ObjectName {
            key: key.to_string(),
            stored: format!("{HASHED_DIR}/{hash}"),
            hash: Some(hash),
        })
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    fn object_path(&self, bucket: &str, name: &ObjectName) -> PathBuf {
        self.bucket_dir(bucket).join(&name.stored)
    }

    /// s3s-fs's file `suffix` (`.metadata.json`, `.internal.json`, …) of an object.
    fn sidecar(&self, bucket: &str, name: &ObjectName, suffix: &str) -> PathBuf {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        self.root
            .join(format!(".bucket-{}.object-{}{suffix}", b64(bucket), b64(&name.stored)))
    }

    /// The file holding the key stored as `.ferry/<hash>`.
    fn index_path(&self, bucket: &str, hash: &str) -> PathBuf {
        self.bucket_dir(bucket).join(HASHED_DIR).join(format!("{hash}.key"))
    }

    /// A fresh name in the root, of the form s3s-fs clears away when it starts.
    fn scratch(&self) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.root
            .join(format!(".tmp.ferry-{}-{n}.internal.part", std::process::id()))
    }

    /// The files a write of `name` may replace or add: the object, its sidecars, its key
    /// record, and with `upload` that multipart upload's metadata, record and parts.
    async fn files_of(&self, bucket: &str, name: &ObjectName, upload: Option<&str>) -> std::io::Result<Vec<PathBuf>> {
        let mut files = vec![
            self.object_path(bucket, name),
            self.sidecar(bucket, name, ".metadata.json"),
            self.sidecar(bucket, name, ".internal.json"),
        ];
        if let Some(hash) = &name.hash {
            files.push(self.index_path(bucket, hash));
        }
        if let Some(id) = upload.and_then(|id| uuid::Uuid::parse_str(id).ok()) {
            files.push(self.sidecar(bucket, name, &format!(".upload-{id}.metadata.json")));
            files.push(self.root.join(format!(".upload-{id}.json")));
            let parts = format!(".upload_id-{id}.part-");
            let mut dir = tokio::fs::read_dir(&self.root).await?;
            while let Some(entry) = dir.next_entry().await? {
                if entry.file_name().to_str().is_some_and(|n| n.starts_with(&parts)) {
                    files.push(entry.path());
                }
            }
        }
        Ok(files)
    }

    /// Keeps what is at `path` aside for [`Write`]. s3s-fs replaces a file by renaming a new one
    /// over it, so a second link keeps the old one; `in_place` (CopyObject writes into the
    /// file itself) takes a copy. `None`: a directory (a key ending in `/`), left alone.
    async fn keep(&self, path: &Path, in_place: bool) -> std::io::Result<Option<Before>> {
        match tokio::fs::symlink_metadata(path).await {
            Ok(meta) if meta.is_file() => {
                let kept = self.scratch();
                if in_place || tokio::fs::hard_link(path, &kept).await.is_err() {
                    tokio::fs::copy(path, &kept).await?;
                }
                Ok(Some(Before::File(kept)))
            }
            Ok(_) => Ok(None),
            Err(e) if is_gone(&e) => Ok(Some(Before::Absent)),
            Err(e) => Err(e),
        }
    }

    /// Starts a write of `name` in `bucket` (see [`Write`]): waits for any other write of the
    /// object, keeps what the write may replace, and records a hashed key.
    async fn begin_write(
        &self,
        bucket: &str,
        name: &ObjectName,
        upload: Option<&str>,
        in_place: bool,
    ) -> s3s::S3Result<Write<'_>> {
        let lock = self.locks.lock(self.object_path(bucket, name)).await;
        // s3s-fs would create the bucket's directory; the key record must not.
        if name.hash.is_some()
            && !tokio::fs::metadata(self.bucket_dir(bucket))
                .await
                .is_ok_and(|m| m.is_dir())
        {
            return Err(s3s::s3_error!(NoSuchBucket));
        }
        let mut write = Write {
            saved: Vec::new(),
            committed: false,
            _lock: lock,
        };
        let files = self
            .files_of(bucket, name, upload)
            .await
            .map_err(s3s::S3Error::internal_error)?;
        for path in files {
            if let Some(before) = self.keep(&path, in_place).await.map_err(s3s::S3Error::internal_error)? {
                write.saved.push((path, before));
            }
        }
        if let Some(hash) = &name.hash {
            self.write_index(bucket, hash, &name.key)
                .await
                .map_err(s3s::S3Error::internal_error)?;
        }
        Ok(write)
    }

    /// Records the key stored as `.ferry/<hash>`.
    async fn write_index(&self, bucket: &str, hash: &str, key: &str) -> std::io::Result<()> {
        let path = self.index_path(bucket, hash);
        if tokio::fs::read(&path).await.is_ok_and(|k| k == key.as_bytes()) {
            return Ok(());
        }
        let scratch = self.scratch();
        tokio::fs::write(&scratch, key).await?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let renamed = tokio::fs::rename(&scratch, &path).await;
        if renamed.is_err() {
            let _ = tokio::fs::remove_file(&scratch).await;
        }
        renamed
    }

    /// Drops the record of a hashed key whose object is gone; the caller holds its lock.
    async fn forget(&self, bucket: &str, name: &ObjectName) {
        let Some(hash) = &name.hash else { return };
        if tokio::fs::symlink_metadata(self.object_path(bucket, name))
            .await
            .is_err_and(|e| is_gone(&e))
            && let Err(e) = tokio::fs::remove_file(self.index_path(bucket, hash)).await
            && !is_gone(&e)
        {
            tracing::warn!(error = %e, bucket, "S3 server: cannot remove a deleted key's record");
        }
    }

    /// The key stored as `.ferry/<hash>`, when its record is there and matches.
    fn hashed_key(&self, bucket: &str, hash: &str) -> Option<String> {
        if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let key = std::fs::read_to_string(self.index_path(bucket, hash)).ok()?;
        (sha256_hex(&key) == hash).then_some(key)
    }

    /// Every object of `bucket` as (key, size, last modified), in no order. Blocking.
    fn objects(&self, bucket: &str) -> std::io::Result<Vec<(String, u64, std::time::SystemTime)>> {
        let top = self.bucket_dir(bucket);
        let mut found = Vec::new();
        let mut dirs = vec![top.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let Some(stored) = path.strip_prefix(&top).ok().and_then(key_of_path) else {
                    continue;
                };
                let key = match stored.strip_prefix(HASHED_DIR).and_then(|s| s.strip_prefix('/')) {
                    Some(hash) => match self.hashed_key(bucket, hash) {
                        Some(key) => key,
                        // A key record, or a file no key leads to.
                        None => continue,
                    },
                    None if Self::is_path(bucket, &stored) => stored,
                    // Put there by hand, under a name no key is stored as.
                    None => continue,
                };
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    // Deleted meanwhile.
                    Err(e) if is_gone(&e) => continue,
                    Err(e) => return Err(e),
                };
                found.push((key, meta.len(), meta.modified()?));
            }
        }
        Ok(found)
    }
}

/// The key a path relative to a bucket's directory is (its segments joined by `/`).
fn key_of_path(path: &Path) -> Option<String> {
    let mut key = String::new();
    for component in path.components() {
        let std::path::Component::Normal(segment) = component else {
            return None;
        };
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(segment.to_str()?);
    }
    Some(key)
}

impl PrivateStore {
    /// ListObjectsV2 over the real keys, as s3s-fs answers it over file paths: `prefix` (a
    /// leading `/` ignored), `delimiter`, `start-after` and the continuation token (the last
    /// key or common prefix returned), `max-keys`; keys in S3's order (UTF-8 bytes).
    async fn list(&self, input: s3s::dto::ListObjectsV2Input) -> s3s::S3Result<s3s::dto::ListObjectsV2Output> {
        use s3s::dto::{CommonPrefix, Object, Timestamp};

        if !tokio::fs::metadata(self.files.bucket_dir(&input.bucket))
            .await
            .is_ok_and(|m| m.is_dir())
        {
            return Err(s3s::s3_error!(NoSuchBucket));
        }
        let found = {
            let (files, bucket) = (self.files.clone(), input.bucket.clone());
            tokio::task::spawn_blocking(move || files.objects(&bucket))
                .await
                .map_err(s3s::S3Error::internal_error)?
                .map_err(s3s::S3Error::internal_error)?
        };
        let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
        let prefix = input.prefix.as_deref().unwrap_or("").trim_start_matches('/');
        let marker = match (input.continuation_token.as_deref(), input.start_after.as_deref()) {
            (Some(token), Some(after)) => Some(token.max(after)),
            (token, after) => token.or(after),
        };

        // (key or common prefix, the object): the two never share a name.
        let mut entries: Vec<(String, Option<Object>)> = Vec::new();
        let mut prefixes = std::collections::BTreeSet::new();
        for (key, size, modified) in found {
            let Some(rest) = key.strip_prefix(prefix) else { continue };
            if let Some(end) = delimiter.and_then(|d| rest.find(d).map(|at| at + d.len())) {
                prefixes.insert(format!("{prefix}{}", &rest[..end]));
                continue;
            }
            let object = Object {
                key: Some(key.clone()),
                last_modified: Some(Timestamp::from(modified)),
                size: Some(i64::try_from(size).unwrap_or(i64::MAX)),
                ..Default::default()
            };
            entries.push((key, Some(object)));
        }
        entries.extend(prefixes.into_iter().map(|p| (p, None)));
        entries.retain(|(key, _)| marker.is_none_or(|m| key.as_str() > m));
        entries.sort_by(|a, b| a.0.cmp(&b.0));

        let max_keys = input.max_keys.unwrap_or(1000);
        let max = usize::try_from(max_keys).unwrap_or(1000);
        let is_truncated = max > 0 && entries.len() > max;
        entries.truncate(max);
        let next_continuation_token = if is_truncated {
            entries.last().map(|(key, _)| key.clone())
        } else {
            None
        };
        let key_count = i32::try_from(entries.len()).unwrap_or(i32::MAX);
        let (mut contents, mut common_prefixes) = (Vec::new(), Vec::new());
        for (key, object) in entries {
            match object {
                Some(object) => contents.push(object),
                None => common_prefixes.push(CommonPrefix { prefix: Some(key) }),
            }
        }
        Ok(s3s::dto::ListObjectsV2Output {
            key_count: Some(key_count),
            max_keys: Some(max_keys),
            is_truncated: Some(is_truncated),
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
            continuation_token: input.continuation_token,
            next_continuation_token,
            delimiter: input.delimiter,
            encoding_type: input.encoding_type,
            name: Some(input.bucket),
            prefix: input.prefix,
            start_after: input.start_after,
            ..Default::default()
        })
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
                    self.fs.$method(req).await
                }
            )*

            async fn put_object(
                &self,
                mut req: s3s::S3Request<s3s::dto::PutObjectInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::PutObjectOutput>> {
                let sse = Sse::requested(req.input.server_side_encryption.as_ref(), req.input.ssekms_key_id.as_deref())?;
                let bucket = req.input.bucket.clone();
                let name = Files::name(&bucket, &req.input.key)?;
                let write = self.files.begin_write(&bucket, &name, None, false).await?;
                req.input.key = name.stored.clone();
                let mut out = self.fs.put_object(req).await?;
                write.commit();
                out.output.server_side_encryption = sse.algorithm();
                out.output.ssekms_key_id = sse.kms_key_arn.clone();
                self.sse.set(&bucket, &name.key, sse);
                Ok(out)
            }

            async fn copy_object(
                &self,
                mut req: s3s::S3Request<s3s::dto::CopyObjectInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CopyObjectOutput>> {
                let bucket = req.input.bucket.clone();
                let name = Files::name(&bucket, &req.input.key)?;
                if let s3s::dto::CopySource::Bucket { bucket: from, key, .. } = &mut req.input.copy_source {
                    *key = Files::name(from, key)?.stored.into_boxed_str();
                }
                // s3s-fs copies into the destination's files themselves: keep copies of them.
                let write = self.files.begin_write(&bucket, &name, None, true).await?;
                req.input.key = name.stored.clone();
                let out = self.fs.copy_object(req).await?;
                write.commit();
                Ok(out)
            }

            async fn delete_object(
                &self,
                mut req: s3s::S3Request<s3s::dto::DeleteObjectInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteObjectOutput>> {
                let bucket = req.input.bucket.clone();
                let name = Files::name(&bucket, &req.input.key)?;
                let _lock = self.files.locks.lock(self.files.object_path(&bucket, &name)).await;
                req.input.key = name.stored.clone();
                let out = self.fs.delete_object(req).await?;
                self.files.forget(&bucket, &name).await;
                Ok(out)
            }

            async fn delete_objects(
                &self,
                mut req: s3s::S3Request<s3s::dto::DeleteObjectsInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteObjectsOutput>> {
                let bucket = req.input.bucket.clone();
                let mut names = std::collections::HashMap::new();
                let mut refused = Vec::new();
                for mut object in std::mem::take(&mut req.input.delete.objects) {
                    match Files::name(&bucket, &object.key) {
                        Ok(name) => {
                            object.key = name.stored.clone();
                            names.insert(name.stored.clone(), name);
                            req.input.delete.objects.push(object);
                        }
                        Err(_) => refused.push(s3s::dto::Error {
                            code: Some("KeyTooLongError".to_string()),
                            key: Some(object.key),
                            message: Some(KEY_TOO_LONG.to_string()),
                            version_id: object.version_id,
                        }),
                    }
                }
                let mut out = self.fs.delete_objects(req).await?;
                for deleted in out.output.deleted.iter_mut().flatten() {
                    if let Some(name) = deleted.key.as_ref().and_then(|k| names.get(k)) {
                        deleted.key = Some(name.key.clone());
                    }
                }
                for name in names.values().filter(|n| n.hash.is_some()) {
                    let _lock = self.files.locks.lock(self.files.object_path(&bucket, name)).await;
                    self.files.forget(&bucket, name).await;
                }
                if !refused.is_empty() {
                    out.output.errors.get_or_insert_with(Vec::new).extend(refused);
                }
                Ok(out)
            }

            async fn list_objects(
                &self,
                req: s3s::S3Request<s3s::dto::ListObjectsInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListObjectsOutput>> {
                let v2 = self.list(req.input.into()).await?;
                Ok(s3s::S3Response::new(s3s::dto::ListObjectsOutput {
                    contents: v2.contents,
                    common_prefixes: v2.common_prefixes,
                    delimiter: v2.delimiter,
                    encoding_type: v2.encoding_type,
                    name: v2.name,
                    prefix: v2.prefix,
                    max_keys: v2.max_keys,
                    is_truncated: v2.is_truncated,
                    next_marker: v2.next_continuation_token,
                    ..Default::default()
                }))
            }

            async fn list_objects_v2(
                &self,
                req: s3s::S3Request<s3s::dto::ListObjectsV2Input>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListObjectsV2Output>> {
                Ok(s3s::S3Response::new(self.list(req.input).await?))
            }

            async fn upload_part_copy(
                &self,
                mut req: s3s::S3Request<s3s::dto::UploadPartCopyInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::UploadPartCopyOutput>> {
                if let s3s::dto::CopySource::Bucket { bucket: from, key, .. } = &mut req.input.copy_source {
                    *key = Files::name(from, key)?.stored.into_boxed_str();
                }
                self.fs.upload_part_copy(req).await
            }

            async fn list_parts(
                &self,
                mut req: s3s::S3Request<s3s::dto::ListPartsInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListPartsOutput>> {
                let name = Files::name(&req.input.bucket, &req.input.key)?;
                req.input.key = name.stored;
                let mut out = self.fs.list_parts(req).await?;
                out.output.key = Some(name.key);
                Ok(out)
            }

            async fn create_multipart_upload(
                &self,
                mut req: s3s::S3Request<s3s::dto::CreateMultipartUploadInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CreateMultipartUploadOutput>> {
                let sse = Sse::requested(req.input.server_side_encryption.as_ref(), req.input.ssekms_key_id.as_deref())?;
                let bucket = req.input.bucket.clone();
                let name = Files::name(&bucket, &req.input.key)?;
                req.input.key = name.stored.clone();
                let mut out = self.fs.create_multipart_upload(req).await?;
                out.output.key = Some(name.key.clone());
                out.output.server_side_encryption = sse.algorithm();
                out.output.ssekms_key_id = sse.kms_key_arn.clone();
                if let Some(id) = &out.output.upload_id {
                    self.sse.start(id, &bucket, &name.key, sse);
                }
                Ok(out)
            }

            async fn abort_multipart_upload(
                &self,
                mut req: s3s::S3Request<s3s::dto::AbortMultipartUploadInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::AbortMultipartUploadOutput>> {
                let id = req.input.upload_id.clone();
                req.input.key = Files::name(&req.input.bucket, &req.input.key)?.stored;
                let out = self.fs.abort_multipart_upload(req).await?;
                self.sse.finish(&id);
                Ok(out)
            }

            async fn list_multipart_uploads(
                &self,
                req: s3s::S3Request<s3s::dto::ListMultipartUploadsInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListMultipartUploadsOutput>> {
                let prefix = req.input.prefix.clone().unwrap_or_default();
                let uploads = self
                    .sse
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
                mut req: s3s::S3Request<s3s::dto::CompleteMultipartUploadInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CompleteMultipartUploadOutput>> {
                let (bucket, id) = (req.input.bucket.clone(), req.input.upload_id.clone());
                let name = Files::name(&bucket, &req.input.key)?;
                // A failed completion leaves the upload as it was, to be retried or aborted.
                let write = self.files.begin_write(&bucket, &name, Some(&id), false).await?;
                req.input.key = name.stored.clone();
                let mut out = self.fs.complete_multipart_upload(req).await?;
                write.commit();
                // s3s-fs answers the stored key, in the body it sends when the future resolves.
                out.output.key = Some(name.key.clone());
                if let Some(done) = out.output.future.take() {
                    let key = name.key.clone();
                    out.output.future = Some(Box::pin(async move {
                        let mut done = done.await?;
                        done.key = Some(key);
                        Ok(done)
                    }));
                }
                let sse = self.sse.finish(&id);
                out.output.server_side_encryption = sse.algorithm();
                out.output.ssekms_key_id = sse.kms_key_arn.clone();
                self.sse.set(&bucket, &name.key, sse);
                Ok(out)
            }

            async fn head_object(
                &self,
                mut req: s3s::S3Request<s3s::dto::HeadObjectInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::HeadObjectOutput>> {
                let sse = self.sse.of(&req.input.bucket, &req.input.key);
                req.input.key = Files::name(&req.input.bucket, &req.input.key)?.stored;
                let mut out = self.fs.head_object(req).await?;
                out.output.server_side_encryption = sse.algorithm();
                out.output.ssekms_key_id = sse.kms_key_arn;
                Ok(out)
            }

            async fn get_object(
                &self,
                mut req: s3s::S3Request<s3s::dto::GetObjectInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetObjectOutput>> {
                let sse = self.sse.of(&req.input.bucket, &req.input.key);
                req.input.key = Files::name(&req.input.bucket, &req.input.key)?.stored;
                let mut out = self.fs.get_object(req).await?;
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
                self.fs.head_bucket(req.map_input(|_| head)).await?;
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
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    // s3s-fs finds the parts by upload id alone.
    upload_part: UploadPartInput => UploadPartOutput,
}
