//! etcd snapshots into S3 against a real etcd (Debian etcd-server 3.4) and a
//! real moto server, both on loopback; restored with etcdctl/etcdutl.
//!
//! The 200 MB test prints throughput and memory; for clean memory numbers run
//! it alone: `cargo test -p ferry --test backends_etcd -- --nocapture big`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_credential_types::Credentials;
use bytes::Bytes;
use ferry::capabilities::etcd::provider::{EtcdEndpoint, snapshot_to_s3, verify_snapshot_stream};
use ferry::capabilities::objects::provider::{
    Bucket, S3Settings, s3_client, sidecar_sha256, upload_stream, verify_object_sha256,
};
use ferry::capabilities::provider::ProviderError;
use ferry_sim::services::{EtcdServer, MotoServer};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

async fn moto() -> MotoServer {
    match MotoServer::start().await {
        Ok(m) => m,
        Err(e) => panic!("these tests need moto: {e:#}"),
    }
}

async fn etcd(dir: &std::path::Path) -> EtcdServer {
    match EtcdServer::start(dir).await {
        Ok(e) => e,
        Err(e) => panic!("these tests need etcd: {e:#}"),
    }
}

async fn s3_for(url: &str, bucket: &str) -> aws_sdk_s3::Client {
    let settings = S3Settings {
        region: "us-east-1".into(),
        endpoint_url: Some(url.to_string()),
        force_path_style: true,
        profile: None,
        ca_bundle_pem: None,
    };
    let client = s3_client(
        &settings,
        Some(Credentials::new("test", "test", None, None, "ferry-tests")),
    )
    .await;
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
    client
}

fn endpoint(server: &EtcdServer) -> EtcdEndpoint {
    EtcdEndpoint {
        endpoints: vec![server.client_url()],
        tls: None,
    }
}

/// Downloads an object to a file, streaming.
async fn download(client: &aws_sdk_s3::Client, bucket: &str, key: &str, path: &std::path::Path) -> String {
    use tokio::io::AsyncWriteExt;
    let out = client.get_object().bucket(bucket).key(key).send().await.expect("get");
    let mut body = out.body;
    let mut file = tokio::fs::File::create(path).await.expect("create file");
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        hasher.update(&chunk);
        file.write_all(&chunk).await.expect("write");
    }
    file.flush().await.expect("flush");
    hex::encode(hasher.finalize())
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
async fn snapshot_to_s3_then_restore_with_etcdctl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source");
    let (moto, server) = tokio::join!(moto(), etcd(&source));
    let s3 = s3_for(&moto.url(), "snapshots").await;

    let mut kv = etcd_client::Client::connect([server.client_url()], None)
        .await
        .expect("connect");
    for i in 0..50 {
        kv.put(format!("/registry/configmaps/ns/cm-{i:02}"), format!("value-{i}"), None)
            .await
            .expect("put");
    }

    let seen = AtomicU64::new(0);
    let info = snapshot_to_s3(
        &endpoint(&server),
        &Bucket::new(s3.clone(), "snapshots"),
        "hc1/etcd.db",
        5 * MIB,
        |n| seen.store(n, Ordering::Relaxed),
    )
    .await
    .expect("snapshot");
    println!("{info:?}");
    assert_eq!(info.size % 512, 32, "size includes the 32-byte trailer");
    assert_eq!(seen.load(Ordering::Relaxed), info.size);
    assert!(info.revision >= 51, "revision {}", info.revision);
    assert!(info.member.contains(&server.client_url()), "{}", info.member);

    // Independent checks of what landed in the bucket.
    let file = dir.path().join("restored.db");
    let downloaded = download(&s3, "snapshots", "hc1/etcd.db", &file).await;
    assert_eq!(downloaded, info.sha256);
    assert_eq!(
        verify_object_sha256(&s3, "snapshots", "hc1/etcd.db", &info.sha256)
            .await
            .expect("verify"),
        info.size
    );
    assert_eq!(
        sidecar_sha256(&s3, "snapshots", "hc1/etcd.db").await.expect("sidecar"),
        info.sha256
    );

    // Restore (which checks the trailer again) and read the keys back.
    let restored = match EtcdServer::restore_from(&file, dir.path().join("restored")).await {
        Ok(r) => r,
        Err(e) => panic!("restore: {e:#}"),
    };
    let mut back = etcd_client::Client::connect([restored.client_url()], None)
        .await
        .expect("connect restored");
    let resp = back
        .get(
            "/registry/configmaps/ns/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .expect("get");
    assert_eq!(resp.kvs().len(), 50);
    assert_eq!(resp.kvs()[7].value_str().expect("utf8"), "value-7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_snapshot_streams_200_mb_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("big");
    let (moto, server) = tokio::join!(moto(), etcd(&data_dir));
    let s3 = s3_for(&moto.url(), "big").await;

    // 8 writers x 256 values of 100 KiB = 200 MiB, as in the substrate study.
    let written = Instant::now();
    let value = Arc::new(Bytes::from(vec![0x5au8; 100 * 1024]));
    let mut writers = Vec::new();
    for w in 0..8 {
        let url = server.client_url();
        let value = value.clone();
        writers.push(tokio::spawn(async move {
            let mut c = etcd_client::Client::connect([url], None).await.expect("connect");
            for i in 0..256 {
                let mut v = value.to_vec();
                // Distinct values, so nothing compresses or deduplicates.
                v[..16].copy_from_slice(&((w * 1000 + i) as u128).to_le_bytes());
                c.put(format!("/big/{w}/{i:04}"), v, None).await.expect("put");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    println!("wrote 200 MiB into etcd in {:.1} s", written.elapsed().as_secs_f64());

    // The host-side pipeline alone (gRPC stream + trailer check, no S3), to
    // tell etcd/host throughput from the S3 store's.
    {
        use futures::StreamExt;
        let c = etcd_client::Client::connect([server.client_url()], None)
            .await
            .expect("connect");
        let snap = c.maintenance_client().snapshot().await.expect("snapshot stream");
        let raw = futures::stream::unfold(snap, |mut s| async move {
            match s.message().await {
                Ok(Some(m)) => Some((Ok(Bytes::copy_from_slice(m.blob())), s)),
                Ok(None) => None,
                Err(e) => Some((Err(ProviderError::Unavailable(e.to_string())), s)),
            }
        });
        let started = Instant::now();
        let mut verified = std::pin::pin!(verify_snapshot_stream(raw));
        let mut total = 0u64;
        while let Some(chunk) = verified.next().await {
            total += chunk.expect("verified chunk").len() as u64;
        }
        println!(
            "etcd snapshot stream + trailer check alone: {total} bytes in {:.2} s = {:.1} MiB/s",
            started.elapsed().as_secs_f64(),
            total as f64 / MIB as f64 / started.elapsed().as_secs_f64()
        );
    }

    let rss_start = vm_kib("VmRSS:");
    let hwm_start = vm_kib("VmHWM:");
    let max_rss = AtomicU64::new(rss_start);
    let started = Instant::now();
    let info = snapshot_to_s3(
        &endpoint(&server),
        &Bucket::new(s3.clone(), "big"),
        "etcd-200.db",
        8 * MIB,
        |n| {
            // Sample RSS every ~4 MiB: VmHWM alone can hide the snapshot's peak
            // behind an earlier, higher one.
            if n % (4 * MIB as u64) < 32 * 1024 {
                max_rss.fetch_max(vm_kib("VmRSS:"), Ordering::Relaxed);
            }
        },
    )
    .await
    .expect("snapshot");
    let secs = started.elapsed().as_secs_f64();
    let mib = info.size as f64 / MIB as f64;
    let hwm_end = vm_kib("VmHWM:");
    let peak = max_rss.load(Ordering::Relaxed);
    println!(
        "etcd snapshot -> S3: {} bytes ({mib:.1} MiB) in {secs:.2} s = {:.1} MiB/s, {} parts (debug build, moto)",
        info.size,
        mib / secs,
        info.parts
    );
    println!(
        "memory: VmRSS at start {rss_start} KiB, sampled peak {peak} KiB (+{} KiB); VmHWM {hwm_start} -> {hwm_end} KiB (+{} KiB)",
        peak.saturating_sub(rss_start),
        hwm_end.saturating_sub(hwm_start)
    );
    assert!(info.size >= 200 * MIB as u64, "{}", info.size);
    assert_eq!(info.size % 512, 32);
    assert!(
        hwm_end.saturating_sub(hwm_start) < 200 * 1024,
        "VmHWM grew by more than 200 MiB"
    );
    assert!(
        peak.saturating_sub(rss_start) < 200 * 1024,
        "RSS grew by more than 200 MiB"
    );

    let verify_started = Instant::now();
    verify_object_sha256(&s3, "big", "etcd-200.db", &info.sha256)
        .await
        .expect("verify");
    println!(
        "read-back verification: {:.1} MiB/s",
        mib / verify_started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_snapshot_is_never_completed() {
    let moto = moto().await;
    let s3 = s3_for(&moto.url(), "corrupt").await;

    // A synthetic snapshot larger than two parts, so the multipart path runs:
    // 12 MiB of "database" plus its SHA-256, with one byte flipped.
    let mut db: Vec<u8> = (0..12 * MIB).map(|i| (i % 251) as u8).collect();
    let hash = Sha256::digest(&db);
    db.extend_from_slice(&hash);
    db[7 * MIB] ^= 0x01;
    let data = Bytes::from(db);
    let chunks: Vec<Result<Bytes, ProviderError>> = (0..data.len())
        .step_by(32 * 1024)
        .map(|i| Ok(data.slice(i..(i + 32 * 1024).min(data.len()))))
        .collect();

    let err = upload_stream(
        &Bucket::new(s3.clone(), "corrupt"),
        "bad.db",
        verify_snapshot_stream(futures::stream::iter(chunks)),
        5 * MIB,
    )
    .await
    .expect_err("must fail");
    let text = err.to_string();
    assert!(matches!(err, ProviderError::Integrity(_)), "{text}");
    assert!(text.contains("trailer") && text.contains("aborted"), "{text}");

    let uploads = s3
        .list_multipart_uploads()
        .bucket("corrupt")
        .send()
        .await
        .expect("uploads");
    assert!(uploads.uploads().is_empty(), "orphaned: {:?}", uploads.uploads());
    let objects = s3.list_objects_v2().bucket("corrupt").send().await.expect("list");
    assert!(objects.contents().is_empty(), "{:?}", objects.contents());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_member_is_unavailable_and_named() {
    let moto = moto().await;
    let s3 = s3_for(&moto.url(), "none").await;
    let port = ferry_sim::services::free_port().expect("port");
    let url = format!("http://127.0.0.1:{port}");
    let ep = EtcdEndpoint {
        endpoints: vec![url.clone()],
        tls: None,
    };
    let err = snapshot_to_s3(&ep, &Bucket::new(s3.clone(), "none"), "x.db", 8 * MIB, |_| {})
        .await
        .expect_err("unreachable");
    let text = err.to_string();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{text}");
    assert!(text.contains(&url), "{text}");
    println!("{text}");
}

/// Runs openssl; the TLS test makes its own throw-away PKI.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a serving certificate for `dns_name` only (no IP SAN, as for a pod
/// reached through a port-forward), and a client certificate.
fn make_pki(dir: &std::path::Path, dns_name: &str) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=ferry-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    std::fs::write(
        dir.join("server.ext"),
        format!("subjectAltName=DNS:{dns_name}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"),
    )
    .expect("server.ext");
    std::fs::write(
        dir.join("client.ext"),
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("client.ext");
    for (name, cn) in [("server", dns_name), ("client", "etcd-client")] {
        let subj = format!("/CN={cn}");
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_over_mutual_tls_with_a_domain_override() {
    use ferry::capabilities::etcd::provider::EtcdTls;
    use ferry_sim::services::EtcdServerTls;
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).expect("pki dir");
    let member_name = "etcd-0.etcd-discovery.clusters-hc1.svc";
    make_pki(&pki, member_name);
    let server_tls = EtcdServerTls {
        cert_file: pki.join("server.crt"),
        key_file: pki.join("server.key"),
        trusted_ca_file: pki.join("ca.crt"),
    };
    let data_dir = dir.path().join("tls");
    let server = match EtcdServer::start_tls(&data_dir, &server_tls).await {
        Ok(s) => s,
        Err(e) => panic!("these tests need etcd: {e:#}"),
    };
    assert!(server.client_url().starts_with("https://"), "{}", server.client_url());
    let moto = moto().await;
    let s3 = s3_for(&moto.url(), "tls").await;
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).expect("pem");
    let tls = EtcdTls {
        ca_pem: read("ca.crt"),
        cert_pem: read("client.crt"),
        key_pem: read("client.key"),
        domain: Some(member_name.to_string()),
    };
    // The certificate names the pod's DNS name, the URL says 127.0.0.1: only
    // the domain override makes verification pass, as through a port-forward.
    let ep = EtcdEndpoint {
        endpoints: vec![server.client_url()],
        tls: Some(tls.clone()),
    };
    let info = snapshot_to_s3(&ep, &Bucket::new(s3.clone(), "tls"), "tls.db", 8 * MIB, |_| {})
        .await
        .expect("snapshot over TLS");
    assert_eq!(info.size % 512, 32);
    verify_object_sha256(&s3, "tls", "tls.db", &info.sha256)
        .await
        .expect("verify");

    let no_override = EtcdEndpoint {
        endpoints: vec![server.client_url()],
        tls: Some(EtcdTls {
            domain: None,
            ..tls.clone()
        }),
    };
    let err = snapshot_to_s3(&no_override, &Bucket::new(s3.clone(), "tls"), "x.db", 8 * MIB, |_| {})
        .await
        .expect_err("name mismatch");
    println!("without the domain override: {err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");

    let no_client_cert = EtcdEndpoint {
        endpoints: vec![server.client_url()],
        tls: Some(EtcdTls {
            cert_pem: String::new(),
            key_pem: String::new(),
            ..tls
        }),
    };
    let err = snapshot_to_s3(
        &no_client_cert,
        &Bucket::new(s3.clone(), "tls"),
        "y.db",
        8 * MIB,
        |_| {},
    )
    .await
    .expect_err("no client cert");
    println!("without a client certificate: {err}");
    assert!(matches!(err, ProviderError::Invalid(_)), "{err}");
}

/// Snapshot of a "pod" etcd through a Kubernetes port-forward: ferry-sim
/// serves the API (including `pods/portforward`) and routes the pod's 2379 to
/// a real etcd on loopback, so the whole path (kube-rs WebSocket, local
/// listener, tonic over the forward) is exercised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_through_pod_portforward() {
    use ferry::capabilities::etcd::portforward::forward_pod_port;
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::api::{Api, PostParams};

    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("pod-etcd");
    let (moto, server) = tokio::join!(moto(), etcd(&data_dir));
    let s3 = s3_for(&moto.url(), "pod-forward").await;
    let sim = ferry_sim::Sim::start("mgmt").await.expect("start ferry-sim");
    let config = kube::Config::new(sim.url().parse().expect("sim url"));
    let client = kube::Client::try_from(config).expect("kube client");

    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "clusters-hc1"}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create ns");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "etcd-0", "namespace": "clusters-hc1"},
        "spec": {"containers": [{"name": "etcd", "image": "etcd", "ports": [{"containerPort": 2379}]}]}
    }))
    .expect("pod");
    Api::<Pod>::namespaced(client.clone(), "clusters-hc1")
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let etcd_addr: std::net::SocketAddr = server
        .client_url()
        .trim_start_matches("http://")
        .parse()
        .expect("etcd addr");
    // A pod that is not Running is refused before any forwarding.
    let pending = forward_pod_port(client.clone(), "clusters-hc1", "etcd-0", 2379).await;
    assert!(
        matches!(&pending, Err(ProviderError::Unavailable(m)) if m.contains("Pending")),
        "{pending:?}"
    );
    Api::<Pod>::namespaced(client.clone(), "clusters-hc1")
        .patch_status(
            "etcd-0",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"status": {"phase": "Running"}})),
        )
        .await
        .expect("mark running");
    sim.set_port_forward("clusters-hc1", "etcd-0", 2379, etcd_addr);

    let forward = forward_pod_port(client.clone(), "clusters-hc1", "etcd-0", 2379)
        .await
        .expect("forward");
    let mut kv = etcd_client::Client::connect([forward.url(false)], None)
        .await
        .expect("connect via forward");
    for i in 0..20 {
        kv.put(format!("/through/forward/{i}"), vec![b'x'; 64 * 1024], None)
            .await
            .expect("put");
    }
    let ep = EtcdEndpoint {
        endpoints: vec![forward.url(false)],
        tls: None,
    };
    let info = snapshot_to_s3(&ep, &Bucket::new(s3.clone(), "pod-forward"), "pod.db", 8 * MIB, |_| {})
        .await
        .expect("snapshot via forward");
    assert_eq!(info.size % 512, 32);
    assert!(info.size > 20 * 64 * 1024, "{}", info.size);
    verify_object_sha256(&s3, "pod-forward", "pod.db", &info.sha256)
        .await
        .expect("verify");

    let missing = forward_pod_port(client, "clusters-hc1", "no-such-pod", 2379).await;
    assert!(matches!(missing, Err(ProviderError::NotFound(_))), "{missing:?}");
    drop(forward);
    sim.shutdown().await;
}
