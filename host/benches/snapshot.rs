//! etcd snapshot to S3: ferry's host-side stream (snapshot → multipart upload,
//! SHA-256 and trailer check on the fly, no temp file) side by side with the
//! documented two steps (`etcdctl snapshot save` to a file, then upload the
//! file). Reports wall time, throughput, the ratio, and ferry's peak RSS.
//!
//! `FERRY_BENCH_MB=200 cargo bench -p ferry --bench snapshot` (needs etcd,
//! etcdctl and moto: see .ci/setup).

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::time::Instant;

use aws_credential_types::Credentials;
use ferry::capabilities::etcd::provider::{EtcdEndpoint, snapshot_to_s3};
use ferry::capabilities::objects::provider::{S3Settings, s3_client};
use ferry_sim::services::{EtcdServer, MotoServer};

fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let mb: usize = std::env::var("FERRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir().unwrap();
    let etcd = EtcdServer::start(tmp.path().join("etcd")).await.unwrap();
    let moto = MotoServer::start().await.unwrap();
    let settings = S3Settings {
        region: "us-east-1".into(),
        endpoint_url: Some(moto.url()),
        force_path_style: true,
        profile: None,
        ca_bundle_pem: None,
    };
    let s3 = s3_client(&settings, Some(Credentials::new("t", "t", None, None, "bench"))).await;
    s3.create_bucket().bucket("bench").send().await.unwrap();

    // Fill etcd with `mb` MiB of 100 KiB values from 8 writers.
    let value = vec![b'x'; 100 * 1024];
    let total = mb * 10;
    let mut writers = Vec::new();
    for w in 0..8 {
        let url = etcd.client_url();
        let value = value.clone();
        writers.push(tokio::spawn(async move {
            let mut c = etcd_client::Client::connect([url], None).await.unwrap();
            for i in (w..total).step_by(8) {
                c.put(format!("/bench/{i:08}"), value.clone(), None).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }

    // Baseline: the documented two steps.
    let file = tmp.path().join("snapshot.db");
    let t = Instant::now();
    let status = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd.client_url(), "snapshot", "save"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let save = t.elapsed();
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&file).await.unwrap();
    s3.put_object()
        .bucket("bench")
        .key("baseline/snapshot.db")
        .body(body)
        .send()
        .await
        .unwrap();
    let two_step = t.elapsed();
    let size = std::fs::metadata(&file).unwrap().len();

    // ferry: one stream, host-side.
    let rss_before = vm_kib("VmRSS:");
    let endpoint = EtcdEndpoint {
        endpoints: vec![etcd.client_url()],
        tls: None,
    };
    let t = Instant::now();
    let info = snapshot_to_s3(&endpoint, &s3, "bench", "ferry/snapshot.db", 16 * 1024 * 1024, |_| {})
        .await
        .unwrap();
    let streamed = t.elapsed();
    let peak = vm_kib("VmHWM:");

    let mib = size as f64 / 1_048_576.0;
    println!("etcd snapshot of {mib:.0} MiB into S3 (moto on loopback):");
    println!(
        "  documented two steps (etcdctl save {:.2} s, then upload)  {:>7.2} s  {:>6.1} MiB/s   baseline",
        save.as_secs_f64(),
        two_step.as_secs_f64(),
        mib / two_step.as_secs_f64()
    );
    println!(
        "  ferry stream (multipart, SHA-256, trailer check)          {:>7.2} s  {:>6.1} MiB/s   {:.2}x faster, no temp file",
        streamed.as_secs_f64(),
        info.size as f64 / 1_048_576.0 / streamed.as_secs_f64(),
        two_step.as_secs_f64() / streamed.as_secs_f64()
    );
    println!(
        "  ferry process RSS before the stream {} MiB, peak {} MiB",
        rss_before / 1024,
        peak / 1024
    );
    assert_eq!(info.size, size, "both paths stored the same number of bytes");
}
