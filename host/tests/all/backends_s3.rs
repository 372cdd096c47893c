//! S3 backend against a real moto server on loopback (no mocks).
//!
//! moto is found by `ferry_sim::services::MotoServer`; when it is missing the
//! tests fail with the install command. Each test starts its own server so
//! tests stay independent and can run in parallel.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_s3::types::{BucketCannedAcl, BucketLocationConstraint, CreateBucketConfiguration};
use bytes::Bytes;
use ferry::capabilities::objects::provider::{
    Bucket, PutOptions, S3Settings, bucket_region, s3_client, sidecar_sha256, upload_stream, verify_object_sha256,
};
use ferry::capabilities::provider::ProviderError;
use ferry_sim::services::MotoServer;
use futures::StreamExt;
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

async fn moto() -> MotoServer {
    match MotoServer::start().await {
        Ok(m) => m,
        Err(e) => panic!("these tests need moto: {e:#}"),
    }
}

async fn client_for(url: &str) -> aws_sdk_s3::Client {
    let settings = S3Settings {
        region: "us-east-1".into(),
        endpoint_url: Some(url.to_string()),
        force_path_style: true,
        profile: None,
        ca_bundle_pem: None,
    };
    s3_client(
        &settings,
        Some(Credentials::new("test", "test", None, None, "ferry-tests")),
    )
    .await
}

async fn new_bucket(client: &aws_sdk_s3::Client, name: &str) -> Bucket {
    client.create_bucket().bucket(name).send().await.expect("create bucket");
    Bucket::new(client.clone(), name)
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Streams `data` in chunks of an odd size, so part boundaries fall inside chunks.
fn chunked(data: Bytes, chunk: usize) -> impl futures::Stream<Item = Result<Bytes, ProviderError>> + Send {
    let pieces: Vec<Result<Bytes, ProviderError>> = (0..data.len())
        .step_by(chunk)
        .map(|i| Ok(data.slice(i..(i + chunk).min(data.len()))))
        .collect();
    futures::stream::iter(pieces)
}

async fn read_all(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get object");
    out.body.collect().await.expect("read body").into_bytes().to_vec()
}

fn vm_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_objects_round_trip() {
    let moto = moto().await;
    let client = client_for(&moto.url()).await;
    let bucket = new_bucket(&client, "small").await;
    let data = Bytes::from_static(b"{\"hello\":\"world\"}\n");
    let options = PutOptions {
        content_type: Some("application/json".into()),
        ..PutOptions::default()
    };

    let put = bucket.put("dir/a.json", data.clone(), &options).await.expect("put");
    let expected_sha = hex::encode(Sha256::digest(&data));
    assert_eq!(put.sha256.as_deref(), Some(expected_sha.as_str()));
    assert_eq!(put.size, data.len() as u64);
    assert!(put.etag.is_some());

    let got = bucket.get("dir/a.json", 1024).await.expect("get");
    assert_eq!(got.data, data);
    assert_eq!(got.info.sha256.as_deref(), Some(expected_sha.as_str()));

    let head = bucket.head("dir/a.json").await.expect("head");
    assert_eq!(head.size, data.len() as u64);
    assert_eq!(head.sha256.as_deref(), Some(expected_sha.as_str()));
    assert!(head.last_modified.is_some());

    bucket
        .put("dir/b.txt", Bytes::from_static(b"b"), &PutOptions::default())
        .await
        .expect("put b");
    bucket
        .put("other/c.txt", Bytes::from_static(b"c"), &PutOptions::default())
        .await
        .expect("put c");
    let listed: Vec<String> = bucket
        .list("dir/")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, vec!["dir/a.json".to_string(), "dir/b.txt".to_string()]);

    // Over the cap: refused before the body is read.
    let err = bucket.get("dir/a.json", 4).await.expect_err("too large");
    assert!(
        matches!(&err, ProviderError::Invalid(m) if m.contains("s3://small/dir/a.json")),
        "{err}"
    );

    bucket.delete("dir/a.json").await.expect("delete");
    let err = bucket.get("dir/a.json", 1024).await.expect_err("deleted");
    assert!(
        matches!(&err, ProviderError::NotFound(m) if m.contains("s3://small/dir/a.json")),
        "{err}"
    );
    let err = bucket.head("dir/a.json").await.expect_err("deleted");
    assert!(matches!(err, ProviderError::NotFound(_)), "{err}");
    // Idempotent delete.
    bucket.delete("dir/a.json").await.expect("delete again");

    // A missing bucket is still an error, on every operation.
    let missing = Bucket::new(client.clone(), "no-such-bucket");
    assert!(matches!(missing.get("k", 10).await, Err(ProviderError::NotFound(_))));
    assert!(matches!(missing.delete("k").await, Err(ProviderError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_put_and_integrity_check() {
    let moto = moto().await;
    let client = client_for(&moto.url()).await;
    let bucket = new_bucket(&client, "guarded").await;
    let create_only = PutOptions {
        create_only: true,
        ..PutOptions::default()
    };
    bucket
        .put("manifest.json", Bytes::from_static(b"v1"), &create_only)
        .await
        .expect("first create-only put");
    let second = bucket
        .put("manifest.json", Bytes::from_static(b"v2"), &create_only)
        .await;
    // moto 5.2 implements If-None-Match: * on PutObject with 412 PreconditionFailed.
    let err = second.expect_err("second create-only put must fail");
    assert!(
        matches!(&err, ProviderError::Conflict(m) if m.contains("s3://guarded/manifest.json")),
        "{err}"
    );
    let kept = bucket.get("manifest.json", 100).await.expect("get");
    assert_eq!(&kept.data[..], b"v1");

    // An object whose recorded sha256 does not match its content.
    client
        .put_object()
        .bucket("guarded")
        .key("tampered")
        .metadata("sha256", hex::encode(Sha256::digest(b"original")))
        .body(Bytes::from_static(b"replaced").into())
        .send()
        .await
        .expect("raw put");
    let err = bucket.get("tampered", 100).await.expect_err("integrity");
    assert!(
        matches!(&err, ProviderError::Integrity(m) if m.contains("s3://guarded/tampered")),
        "{err}"
    );
}

/// One HTTP/1.1 GET with a hand-written client: the URL must work without the SDK.
fn plain_http_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').expect("path"));
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .expect("status")
        .parse()
        .expect("status code");
    let mut body = response[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_get_works_with_a_plain_http_client_in_the_buckets_region() {
    let moto = moto().await;
    let client = client_for(&moto.url()).await;
    let bucket = new_bucket(&client, "presign").await;
    let body = Bytes::from(pseudo_random(300_000, 7));
    bucket
        .put("blob.bin", body.clone(), &PutOptions::default())
        .await
        .expect("put");
    assert_eq!(bucket_region(&client, "presign").await.expect("region"), "us-east-1");

    let url = bucket
        .presign_get("blob.bin", Duration::from_secs(600))
        .await
        .expect("presign");
    assert!(url.contains("us-east-1"), "{url}");
    let (status, got) = tokio::task::spawn_blocking(move || plain_http_get(&url))
        .await
        .expect("join");
    assert_eq!(status, 200);
    assert_eq!(got, body.to_vec());

    // A bucket in another region: the URL must be signed for that region even
    // though the client is configured for us-east-1 (a documented defect).
    client
        .create_bucket()
        .bucket("presign-eu")
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .expect("create eu bucket");
    let eu = Bucket::new(client.clone(), "presign-eu");
    assert_eq!(eu.region().await.expect("eu region"), "eu-west-1");
    eu.put("x", Bytes::from_static(b"eu"), &PutOptions::default())
        .await
        .expect("put eu");
    let eu_url = eu.presign_get("x", Duration::from_secs(60)).await.expect("presign eu");
    assert!(eu_url.contains("%2Feu-west-1%2Fs3%2Faws4_request"), "{eu_url}");
    let (status, got) = tokio::task::spawn_blocking(move || plain_http_get(&eu_url))
        .await
        .expect("join");
    assert_eq!((status, got.as_slice()), (200, &b"eu"[..]));

    let err = bucket
        .presign_get("blob.bin", Duration::from_secs(8 * 24 * 3600))
        .await
        .expect_err("too long");
    assert!(matches!(err, ProviderError::Invalid(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_stream_of_40_mib() {
    let moto = moto().await;
    let client = client_for(&moto.url()).await;
    new_bucket(&client, "bulk").await;
    let data = Bytes::from(pseudo_random(40 * MIB, 42));
    let expected = hex::encode(Sha256::digest(&data));

    let rss_before = vm_kib("VmRSS:");
    let started = Instant::now();
    let uploaded = upload_stream(
        &Bucket::new(client.clone(), "bulk"),
        "backups/etcd.db",
        chunked(data.clone(), MIB + 17),
        8 * MIB,
    )
    .await
    .expect("upload");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "multipart upload: {} MiB in {secs:.2} s = {:.1} MiB/s (debug build, moto); VmRSS before {} KiB, VmHWM {} KiB",
        40,
        40.0 / secs,
        rss_before,
        vm_kib("VmHWM:")
    );
    assert_eq!(uploaded.size, 40 * MIB as u64);
    assert_eq!(uploaded.parts, 5);
    assert_eq!(uploaded.sha256, expected);
    assert!(
        uploaded.etag.as_deref().is_some_and(|e| e.contains("-5")),
        "{:?}",
        uploaded.etag
    );

    // Independent read-back.
    let back = read_all(&client, "bulk", "backups/etcd.db").await;
    assert_eq!(hex::encode(Sha256::digest(&back)), expected);
    assert_eq!(
        verify_object_sha256(&client, "bulk", "backups/etcd.db", &expected)
            .await
            .expect("verify"),
        40 * MIB as u64
    );
    let wrong = "0".repeat(64);
    let err = verify_object_sha256(&client, "bulk", "backups/etcd.db", &wrong)
        .await
        .expect_err("mismatch");
    assert!(
        matches!(&err, ProviderError::Integrity(m) if m.contains(&expected)),
        "{err}"
    );

    // The sidecar in sha256sum format.
    let sidecar = read_all(&client, "bulk", "backups/etcd.db.sha256").await;
    assert_eq!(
        String::from_utf8(sidecar).expect("utf8"),
        format!("{expected}  etcd.db\n")
    );
    assert_eq!(
        sidecar_sha256(&client, "bulk", "backups/etcd.db")
            .await
            .expect("sidecar"),
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_stream_aborts_the_multipart_upload() {
    let moto = moto().await;
    let client = client_for(&moto.url()).await;
    new_bucket(&client, "aborts").await;
    let good = Bytes::from(pseudo_random(20 * MIB, 3));
    let stream = chunked(good, 3 * MIB).chain(futures::stream::iter(vec![Err(ProviderError::Unavailable(
        "source went away".into(),
    ))]));
    let err = upload_stream(&Bucket::new(client.clone(), "aborts"), "partial.db", stream, 5 * MIB)
        .await
        .expect_err("must fail");
    let text = err.to_string();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{text}");
    assert!(text.contains("source went away") && text.contains("aborted"), "{text}");

    let uploads = client
        .list_multipart_uploads()
        .bucket("aborts")
        .send()
        .await
        .expect("list uploads");
    assert!(
        uploads.uploads().is_empty(),
        "orphaned uploads: {:?}",
        uploads.uploads()
    );
    let objects = client.list_objects_v2().bucket("aborts").send().await.expect("list");
    assert!(objects.contents().is_empty(), "{:?}", objects.contents());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_and_empty_streams_use_a_single_put() {
    let moto = moto().await;
    let client = client_for(&moto.url()).await;
    let bucket = new_bucket(&client, "short").await;

    let empty = upload_stream(
        &Bucket::new(client.clone(), "short"),
        "empty",
        futures::stream::iter(Vec::new()),
        8 * MIB,
    )
    .await
    .expect("empty");
    assert_eq!((empty.size, empty.parts), (0, 1));
    assert_eq!(empty.sha256, hex::encode(Sha256::digest(b"")));
    assert_eq!(bucket.head("empty").await.expect("head").size, 0);

    let data = Bytes::from(pseudo_random(100_000, 9));
    let small = upload_stream(
        &Bucket::new(client.clone(), "short"),
        "small",
        chunked(data.clone(), 4096),
        8 * MIB,
    )
    .await
    .expect("small");
    assert_eq!((small.size, small.parts), (100_000, 1));
    // The single PUT also records the checksum as metadata, so `get` verifies it.
    assert_eq!(bucket.get("small", 1 << 20).await.expect("get").data, data);
    assert_eq!(
        sidecar_sha256(&client, "short", "small").await.expect("sidecar"),
        small.sha256
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_access_from_acl_and_policy() {
    let moto = moto().await;
    let client = client_for(&moto.url()).await;

    let private = new_bucket(&client, "private").await;
    let access = private.public_access().await.expect("private");
    assert!(!access.publicly_readable, "{}", access.reason);
    assert!(access.reason.contains("no bucket policy"), "{}", access.reason);

    let acl = new_bucket(&client, "acl-public").await;
    client
        .put_bucket_acl()
        .bucket("acl-public")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .expect("acl");
    let access = acl.public_access().await.expect("acl-public");
    assert!(access.publicly_readable, "{}", access.reason);
    assert!(access.reason.contains("AllUsers"), "{}", access.reason);

    let policy = new_bucket(&client, "policy-public").await;
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Sid":"AnyoneReads","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::policy-public/*"}]}"#;
    client
        .put_bucket_policy()
        .bucket("policy-public")
        .policy(doc)
        .send()
        .await
        .expect("policy");
    let access = policy.public_access().await.expect("policy-public");
    assert!(access.publicly_readable, "{}", access.reason);
    assert!(access.reason.contains("AnyoneReads"), "{}", access.reason);

    let missing = Bucket::new(client.clone(), "no-such-bucket").public_access().await;
    assert!(matches!(missing, Err(ProviderError::NotFound(_))), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_name_the_endpoint() {
    // A port nothing listens on.
    let port = ferry_sim::services::free_port().expect("port");
    let url = format!("http://127.0.0.1:{port}");
    let client = client_for(&url).await;
    let err = Bucket::new(client, "b").get("k", 10).await.expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("s3://b/k"),
        "{text}"
    );
    println!("{text}");
}

/// moto stores objects without encryption unless asked, as an S3-compatible store without
/// a default would: ferry's writes ask for SSE-S3 (the default) or SSE-KMS and get it
/// reported back; an object someone put without it fails the head check, and a site that
/// opts out (`none`) is not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_encryption_is_requested_and_an_unencrypted_object_is_refused() {
    use ferry::capabilities::objects::provider::Encryption;
    let m = moto().await;
    let client = client_for(&m.url()).await;
    let bucket = new_bucket(&client, "sse").await;
    let info = bucket
        .put("a.json", Bytes::from_static(b"{}"), &PutOptions::default())
        .await
        .expect("put");
    assert_eq!(info.encryption.as_deref(), Some("AES256"));
    assert_eq!(
        bucket.head("a.json").await.expect("head").encryption.as_deref(),
        Some("AES256")
    );

    let kms = bucket.clone().with_encryption(Encryption::SseKms {
        key_id: Some("k-1".into()),
    });
    let uploaded = kms
        .upload_stream(
            "etcd.db",
            futures::stream::iter(vec![Ok(Bytes::from(vec![7u8; 6 * MIB]))]),
            5 * MIB,
        )
        .await
        .expect("multipart with SSE-KMS");
    assert_eq!(uploaded.parts, 2);
    assert_eq!(
        kms.head("etcd.db").await.expect("head").encryption.as_deref(),
        Some("aws:kms")
    );

    // Put around ferry, without SSE headers.
    client
        .put_object()
        .bucket("sse")
        .key("planted.json")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{}"))
        .send()
        .await
        .expect("raw put");
    let err = bucket.head("planted.json").await.expect_err("unencrypted");
    assert!(matches!(err, ProviderError::Integrity(_)), "{err}");
    assert!(err.to_string().contains("no server-side encryption"), "{err}");
    let opted_out = bucket.clone().with_encryption(Encryption::None);
    assert_eq!(opted_out.head("planted.json").await.expect("head").encryption, None);
}

/// The same against moto: a multipart upload a killed run left is aborted by the next
/// upload of its key, even when the next upload is a single PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runs_multipart_upload_is_aborted_by_the_next_upload() {
    let m = moto().await;
    let client = client_for(&m.url()).await;
    let bucket = new_bucket(&client, "leftovers").await;
    let left = client
        .create_multipart_upload()
        .bucket("leftovers")
        .key("etcd.db")
        .send()
        .await
        .expect("create");
    assert!(left.upload_id().is_some());
    upload_stream(
        &bucket,
        "etcd.db",
        futures::stream::iter(vec![Ok(Bytes::from_static(b"small"))]),
        8 * MIB,
    )
    .await
    .expect("single put");
    let out = client
        .list_multipart_uploads()
        .bucket("leftovers")
        .send()
        .await
        .expect("list");
    assert!(out.uploads().is_empty(), "{:?}", out.uploads());
}
