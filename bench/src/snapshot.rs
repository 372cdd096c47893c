//! P3: an etcd snapshot into S3. ferry streams it host-side (multipart, SHA-256, trailer
//! check, no temp file); the baseline is the documented two steps, `etcdctl snapshot save` to
//! a file and then an upload of that file, against the same etcd and S3 in the same run. The
//! two raw legs, a snapshot read to nowhere and an S3 multipart write of the same bytes from
//! memory, bound what any pipeline of the two can reach.
//!
//! Every leg runs in a child process of its own (`ferry-bench leg ...`), so that the peak RSS
//! reported for ferry's stream is that of the stream alone.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use aws_credential_types::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use ferry::capabilities::etcd::provider::{EtcdEndpoint, snapshot_to_s3};
use ferry::capabilities::objects::provider::{S3Settings, s3_client};
use ferry_sim::services::{EtcdServer, MotoServer};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::report::{Ratio, Row, Stats};

/// `aws s3 cp`'s defaults (`multipart_chunksize` 8 MiB, `max_concurrent_requests` 10): how
/// the documented procedure uploads a file, and the raw write leg's settings.
const CLI_PART: usize = 8 * 1024 * 1024;
const CLI_CONCURRENCY: usize = 10;
const BUCKET: &str = "bench";
const MIB: f64 = 1_048_576.0;

/// One leg, as its child process reports it.
#[derive(Debug, Serialize, Deserialize)]
pub struct LegResult {
    /// Wall time of the leg itself (not the process start).
    pub secs: f64,
    /// Bytes moved.
    pub bytes: u64,
    /// The process's peak resident set, MiB.
    pub rss_peak_mib: f64,
}

/// The legs a child process can run.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Leg {
    /// ferry's stream: etcd snapshot → S3.
    Stream,
    /// The raw read leg: drain a snapshot stream.
    Read,
    /// The documented upload of a saved file.
    UploadFile,
    /// The raw write leg: multipart write of the file's bytes, from memory.
    Write,
}

/// Arguments of `ferry-bench leg`.
#[derive(Debug, clap::Args)]
pub struct LegArgs {
    /// Which leg.
    #[arg(value_enum)]
    pub leg: Leg,
    /// The etcd client URL.
    #[arg(long)]
    pub etcd: String,
    /// The S3 endpoint URL.
    #[arg(long)]
    pub s3: String,
    /// The object key.
    #[arg(long)]
    pub key: String,
    /// The saved snapshot file (upload-file, write).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

async fn client(url: &str) -> aws_sdk_s3::Client {
    let settings = S3Settings {
        region: "us-east-1".into(),
        endpoint_url: Some(url.to_string()),
        force_path_style: true,
        profile: None,
        ca_bundle_pem: None,
    };
    s3_client(&settings, Some(Credentials::new("bench", "bench", None, None, "bench"))).await
}

/// Runs one leg in this process and prints its [`LegResult`] as JSON.
pub async fn leg(args: LegArgs) -> Result<()> {
    let s3 = client(&args.s3).await;
    let file = || args.file.clone().context("this leg needs --file");
    let (secs, bytes) = match args.leg {
        Leg::Stream => {
            let endpoint = EtcdEndpoint {
                endpoints: vec![args.etcd.clone()],
                tls: None,
            };
            let t = Instant::now();
            let info = snapshot_to_s3(
                &endpoint,
                &ferry::capabilities::objects::provider::Bucket::new(s3.clone(), BUCKET),
                &args.key,
                ferry::capabilities::etcd::SNAPSHOT_PART_SIZE,
                |_| {},
            )
            .await?;
            (t.elapsed().as_secs_f64(), info.size)
        }
        Leg::Read => {
            let t = Instant::now();
            let mut c = etcd_client::Client::connect([args.etcd.as_str()], None).await?;
            let mut stream = c.snapshot().await?;
            let mut n = 0u64;
            while let Some(msg) = stream.message().await? {
                n += std::hint::black_box(msg.blob()).len() as u64;
            }
            (t.elapsed().as_secs_f64(), n)
        }
        Leg::UploadFile => {
            let path = file()?;
            let t = Instant::now();
            let n = multipart_upload(&s3, &args.key, Source::File(&path)).await?;
            (t.elapsed().as_secs_f64(), n)
        }
        Leg::Write => {
            let data = Bytes::from(std::fs::read(file()?)?);
            let t = Instant::now();
            let n = multipart_upload(&s3, &args.key, Source::Memory(data)).await?;
            (t.elapsed().as_secs_f64(), n)
        }
    };
    let result = LegResult {
        secs,
        bytes,
        rss_peak_mib: peak_rss_mib(),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

enum Source<'a> {
    File(&'a Path),
    Memory(Bytes),
}

/// A multipart upload with `aws s3 cp`'s part size and concurrency: the baseline's upload and
/// the raw write leg, written against the SDK directly and independent of ferry's code.
async fn multipart_upload(s3: &aws_sdk_s3::Client, key: &str, source: Source<'_>) -> Result<u64> {
    use tokio::io::AsyncReadExt as _;
    let up = s3.create_multipart_upload().bucket(BUCKET).key(key).send().await?;
    let id = up.upload_id().context("no upload id")?.to_string();
    let (size, mut file, memory) = match source {
        Source::File(p) => (std::fs::metadata(p)?.len(), Some(tokio::fs::File::open(p).await?), None),
        Source::Memory(b) => (b.len() as u64, None, Some(b)),
    };
    let parts = size.div_ceil(CLI_PART as u64) as usize;
    let mut offset = 0usize;
    // Parts are read in order and upload in their own tasks, CLI_CONCURRENCY at a time, as
    // aws-cli's threads do: reading the next part never waits for an upload.
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut completed: Vec<CompletedPart> = Vec::with_capacity(parts);
    for number in 1..=parts {
        let len = CLI_PART.min(size as usize - offset);
        let body = match (&mut file, &memory) {
            (Some(f), _) => {
                let mut buf = vec![0u8; len];
                f.read_exact(&mut buf).await?;
                Bytes::from(buf)
            }
            (None, Some(m)) => m.slice(offset..offset + len),
            (None, None) => bail!("no source"),
        };
        offset += len;
        let n = number as i32;
        let req = s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body))
            .send();
        in_flight.push(tokio::spawn(async move {
            req.await.map(|o| (n, o.e_tag().map(str::to_string)))
        }));
        if in_flight.len() >= CLI_CONCURRENCY
            && let Some(done) = in_flight.next().await
        {
            let (n, etag) = done??;
            completed.push(CompletedPart::builder().part_number(n).set_e_tag(etag).build());
        }
    }
    while let Some(done) = in_flight.next().await {
        let (n, etag) = done??;
        completed.push(CompletedPart::builder().part_number(n).set_e_tag(etag).build());
    }
    completed.sort_by_key(|p| p.part_number());
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await?;
    Ok(offset as u64)
}

/// Runs `leg` in a child process of this binary.
async fn run_leg(leg: &str, etcd: &str, s3: &str, key: &str, file: Option<&Path>) -> Result<LegResult> {
    let exe = std::env::current_exe()?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["leg", leg, "--etcd", etcd, "--s3", s3, "--key", key]);
    if let Some(f) = file {
        cmd.arg("--file").arg(f);
    }
    let out = cmd.output().await?;
    if !out.status.success() {
        bail!("leg {leg} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().context("the leg printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("leg {leg} printed {line}"))
}

/// Writes 100 KiB values into etcd until it holds about `mib` MiB of them.
async fn fill(etcd: &EtcdServer, from_mib: usize, mib: usize) -> Result<()> {
    let value = Bytes::from(vec![b'x'; 100 * 1024]);
    let (first, last) = (from_mib * 10, mib * 10);
    let mut writers = Vec::new();
    for w in 0..8 {
        let url = etcd.client_url();
        let value = value.clone();
        writers.push(tokio::spawn(async move {
            let mut c = etcd_client::Client::connect([url], None).await?;
            for i in (first + w..last).step_by(8) {
                c.put(format!("/bench/{i:08}"), value.to_vec(), None).await?;
            }
            anyhow::Ok(())
        }));
    }
    for w in writers {
        w.await??;
    }
    Ok(())
}

/// P3 at each size in `sizes_mib`, `runs` times each, the legs interleaved within a run so
/// that they share the machine's noise.
pub async fn p3(sizes_mib: &[usize], runs: usize) -> Result<Vec<Row>> {
    let tmp = tempfile::tempdir()?;
    let etcd = EtcdServer::start(tmp.path().join("etcd")).await?;
    let moto = MotoServer::start().await?;
    let s3 = client(&moto.url()).await;
    s3.create_bucket().bucket(BUCKET).send().await?;
    let (etcd_url, s3_url) = (etcd.client_url(), moto.url());
    let mut rows = Vec::new();
    let mut filled = 0;
    for &mib in sizes_mib {
        fill(&etcd, filled, mib).await?;
        filled = mib;
        let file = tmp.path().join("snapshot.db");
        let (mut two_step, mut stream, mut read, mut write, mut rss) = (vec![], vec![], vec![], vec![], 0f64);
        let mut size = 0u64;
        for run in 0..runs {
            // The documented two steps.
            let _ = std::fs::remove_file(&file);
            let t = Instant::now();
            let out = tokio::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &etcd_url, "snapshot", "save"])
                .arg(&file)
                .output()
                .await
                .context("running etcdctl (see .ci/setup)")?;
            if !out.status.success() {
                bail!("etcdctl snapshot save: {}", String::from_utf8_lossy(&out.stderr));
            }
            let save = t.elapsed().as_secs_f64();
            let upload = run_leg("upload-file", &etcd_url, &s3_url, &format!("base/{run}"), Some(&file)).await?;
            two_step.push(save + upload.secs);
            // ferry's stream.
            let ferry = run_leg("stream", &etcd_url, &s3_url, &format!("ferry/{run}"), None).await?;
            stream.push(ferry.secs);
            rss = rss.max(ferry.rss_peak_mib);
            size = ferry.bytes;
            // The raw legs.
            read.push(run_leg("read", &etcd_url, &s3_url, "-", None).await?.secs);
            write.push(
                run_leg("write", &etcd_url, &s3_url, &format!("raw/{run}"), Some(&file))
                    .await?
                    .secs,
            );
            for key in [
                format!("base/{run}"),
                format!("ferry/{run}"),
                format!("ferry/{run}.sha256"),
                format!("raw/{run}"),
            ] {
                let _ = s3.delete_object().bucket(BUCKET).key(key).send().await;
            }
            let saved = std::fs::metadata(&file)?.len();
            if saved != size {
                bail!("ferry stored {size} bytes but etcdctl saved {saved}: the two paths disagree");
            }
        }
        let (stream, two_step) = (Stats::of(&stream), Stats::of(&two_step));
        let (read, write) = (Stats::of(&read), Stats::of(&write));
        let size_mib = size as f64 / MIB;
        let slower_raw = read.median.max(write.median);
        let of_slower = slower_raw / stream.median;
        let label = if mib >= 1024 {
            format!("{} GiB", mib / 1024)
        } else {
            format!("{mib} MiB")
        };
        let row = Row::compared(
            &format!("P3 {label}"),
            &format!("etcd snapshot ({size_mib:.0} MiB) → S3: multipart, SHA-256, trailer check"),
            "s",
            stream,
            (
                "`etcdctl snapshot save` to a file, then upload the file (aws-cli part size and concurrency)",
                two_step,
            ),
            Ratio::Speedup,
        );
        let rss_ok = mib < 1024 || rss <= 100.0;
        let met = row.ratio.is_some_and(|r| r >= 1.5) && of_slower >= 0.9 && rss_ok;
        rows.push(
            row.goal(
                "≥ 1.5× faster; ≥ 90% of the slower raw leg; peak RSS ≤ 100 MiB at 1 GiB",
                met,
            )
            .detail(
                "ferry throughput",
                format!(
                    "{:.0} MiB/s, {:.0}% of the slower raw leg",
                    size_mib / stream.median,
                    of_slower * 100.0
                ),
            )
            .detail(
                "raw legs (median)",
                format!(
                    "snapshot read to nowhere {:.0} MiB/s; S3 multipart write from memory {:.0} MiB/s",
                    size_mib / read.median,
                    size_mib / write.median
                ),
            )
            .detail("ferry peak RSS", format!("{rss:.0} MiB")),
        );
    }
    Ok(rows)
}
