//! Each capability exercised by the test guest through the real host against
//! real servers on loopback (moto for S3 and Route53, a real etcd): the happy
//! path, the denied path (and that no I/O happened), and bad arguments.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use ferry::config::{EtcdConfig, RunConfig, WorkspaceConfig};
use ferry::runtime::run::RunOptions;
use ferry_sim::services::{EtcdServer, MotoServer};
use ferry_tests::{GuestRun, aws, err_kind, err_message, ok};
use serde_json::{Value, json};
use sha2::Digest;

fn workspace_config(dir: &std::path::Path) -> RunConfig {
    RunConfig {
        workspace: Some(WorkspaceConfig::at(dir)),
        ..Default::default()
    }
}

#[tokio::test]
async fn workspace_files_stay_inside_the_granted_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    let out = GuestRun {
        config: workspace_config(&root),
        ..Default::default()
    }
    .script(json!([
        { "op": "fs.write", "path": "namespaces/clusters/hc-a.yaml", "data": "kind: HostedCluster\n" },
        { "op": "fs.read", "path": "namespaces/clusters/hc-a.yaml" },
        { "op": "fs.list", "path": "namespaces/clusters" },
        { "op": "fs.read", "path": "../outside" },
        { "op": "fs.write", "path": "/etc/ferry-test", "data": "x" },
        { "op": "fs.write", "path": "secret/key", "data": "x" },
        { "op": "fs.read", "path": "missing.yaml" }
    ]))
    .await
    .unwrap();
    ok(&out[0]);
    assert_eq!(ok(&out[1]), "kind: HostedCluster\n");
    assert_eq!(ok(&out[2]), &json!([{ "name": "hc-a.yaml", "dir": false, "size": 20 }]));
    assert_eq!(err_kind(&out[3]), "invalid");
    assert_eq!(err_kind(&out[4]), "invalid");
    assert_eq!(err_kind(&out[5]), "denied");
    assert!(err_message(&out[5]).contains("workspace-no-secrets"), "{}", out[5]);
    assert!(!root.join("secret").exists(), "a denied write must not touch the disk");
    assert_eq!(err_kind(&out[6]), "not-found");

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("namespaces/clusters/hc-a.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Whoever can write the local folder cannot stall a run past its wall clock: a FIFO where
/// a file is read is refused at once as not a regular file (opening it used to block until
/// a writer came), and one planted at the temporary name of a write is replaced, not opened.
#[tokio::test]
async fn a_fifo_in_the_workspace_neither_blocks_nor_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    let fifo = |path: &std::path::Path| {
        let made = std::process::Command::new("mkfifo").arg(path).status().unwrap();
        assert!(made.success(), "mkfifo {}", path.display());
    };
    fifo(&root.join("index.json"));
    // write_atomic's temporary name in this process.
    fifo(&root.join(format!(".a.json.ferry-tmp-{}", std::process::id())));
    let mut config = workspace_config(&root);
    config.limits.wall_seconds = 20;
    let out = GuestRun {
        config,
        ..Default::default()
    }
    .script(json!([
        { "op": "fs.read", "path": "index.json" },
        { "op": "fs.write", "path": "a.json", "data": "{}" },
        { "op": "fs.read", "path": "a.json" }
    ]))
    .await
    .unwrap();
    assert_eq!(err_kind(&out[0]), "invalid", "{}", out[0]);
    assert!(err_message(&out[0]).contains("not a regular file"), "{}", out[0]);
    ok(&out[1]);
    assert_eq!(ok(&out[2]), "{}");
}

/// What the host buffers for a guest is bounded: one file's size both ways, and what a run
/// writes in all; a refused write leaves the disk as it was.
#[tokio::test]
async fn workspace_reads_and_writes_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("big.txt"), "0123456789").unwrap();
    let mut config = workspace_config(&root);
    config.limits.max_object_bytes = 8;
    config.limits.workspace_quota_bytes = 10;
    let out = GuestRun {
        config,
        ..Default::default()
    }
    .script(json!([
        { "op": "fs.read", "path": "big.txt" },
        { "op": "fs.write", "path": "a.txt", "data": "123456789" },
        { "op": "fs.write", "path": "b.txt", "data": "123456" },
        { "op": "fs.write", "path": "c.txt", "data": "123456" },
        { "op": "fs.write", "path": "d.txt", "data": "1234" }
    ]))
    .await
    .unwrap();
    assert_eq!(err_kind(&out[0]), "invalid", "{}", out[0]);
    assert!(err_message(&out[0]).contains("max_object_bytes"), "{}", out[0]);
    assert_eq!(err_kind(&out[1]), "invalid", "{}", out[1]);
    assert!(err_message(&out[1]).contains("max_object_bytes"), "{}", out[1]);
    ok(&out[2]);
    assert_eq!(err_kind(&out[3]), "invalid", "{}", out[3]);
    assert!(err_message(&out[3]).contains("workspace_quota_bytes"), "{}", out[3]);
    ok(&out[4]);
    assert!(!root.join("a.txt").exists() && !root.join("c.txt").exists());
}

#[tokio::test]
async fn plan_mode_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    let out = GuestRun {
        config: workspace_config(&root),
        plan: true,
        ..Default::default()
    }
    .script(json!([{ "op": "fs.write", "path": "a.txt", "data": "x" }]))
    .await
    .unwrap();
    ok(&out[0]);
    assert!(!root.join("a.txt").exists());
}

#[tokio::test]
async fn every_call_and_decision_is_audited_in_a_hash_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.jsonl");
    GuestRun {
        config: workspace_config(&tmp.path().join("ws")),
        audit: Some(audit.clone()),
        ..Default::default()
    }
    .script(json!([
        { "op": "fs.write", "path": "ok.txt", "data": "x" },
        { "op": "fs.write", "path": "secret/no.txt", "data": "x" }
    ]))
    .await
    .unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let calls: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "call").collect();
    assert_eq!(calls.len(), 2, "{lines:?}");
    assert_eq!(calls[0]["action"], "workspace:write");
    assert_eq!(calls[0]["decision"], "allow");
    assert_eq!(calls[0]["policies"], json!(["workspace"]));
    assert_eq!(calls[0]["outcome"], "ok");
    assert_eq!(calls[1]["decision"], "deny");
    assert_eq!(calls[1]["policies"], json!(["workspace-no-secrets"]));
    assert_eq!(lines[0]["kind"], "load");
    assert_eq!(lines.last().unwrap()["kind"], "run");
    assert_eq!(lines[0]["guest_sha256"].as_str().unwrap().len(), 64);
    // Each record names the SHA-256 of the line before it.
    let raw: Vec<String> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    for i in 1..raw.len() {
        let prev = hex::encode(sha2::Sha256::digest(raw[i - 1].as_bytes()));
        assert_eq!(lines[i]["prev"], prev, "record {i} does not chain to record {}", i - 1);
    }
}

async fn moto() -> MotoServer {
    MotoServer::start()
        .await
        .expect("moto_server must be installed (see .ci/setup)")
}

async fn s3_run(url: &str) -> GuestRun {
    let mut config = RunConfig::default();
    aws::configure(&mut config, url);
    GuestRun {
        config,
        options: RunOptions {
            cache_dir: None,
            clients: aws::clients(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A run against moto with the bucket `ferry-test` created.
async fn s3_run_with_bucket(moto: &MotoServer) -> GuestRun {
    aws::s3(&moto.url())
        .await
        .create_bucket()
        .bucket("ferry-test")
        .send()
        .await
        .unwrap();
    s3_run(&moto.url()).await
}

#[tokio::test]
async fn objects_round_trip_with_checksums_and_denials_do_no_io() {
    let moto = moto().await;
    let s3 = aws::s3(&moto.url()).await;
    s3.create_bucket().bucket("ferry-test").send().await.unwrap();
    let out = s3_run(&moto.url())
        .await
        .script(json!([
            { "op": "open-bucket", "bucket": "ferry-test", "as": "b" },
            { "op": "s3.put", "bucket": "b", "key": "allowed/index.json", "data": "{\"a\":1}", "createOnly": true },
            { "op": "s3.get", "bucket": "b", "key": "allowed/index.json" },
            { "op": "s3.head", "bucket": "b", "key": "allowed/index.json" },
            { "op": "s3.list", "bucket": "b", "prefix": "allowed/" },
            { "op": "s3.put", "bucket": "b", "key": "allowedx/escape.json", "data": "x" },
            { "op": "s3.put", "bucket": "b", "key": "other/x.json", "data": "x" },
            { "op": "s3.get", "bucket": "b", "key": "allowed/missing.json" },
            { "op": "s3.presign", "bucket": "b", "key": "allowed/index.json", "expires": 300 },
            { "op": "s3.exposure", "bucket": "b" },
            { "op": "s3.delete", "bucket": "b", "key": "allowed/index.json" },
            { "op": "s3.delete", "bucket": "b", "key": "allowed/index.json" },
            { "op": "open-bucket", "bucket": "someone-elses", "as": "x" },
            { "op": "s3.put", "bucket": "b", "key": "", "data": "x" },
            { "op": "s3.verify", "bucket": "b", "key": "allowed/index.json", "sha256": "not-hex" }
        ]))
        .await
        .unwrap();
    ok(&out[0]);
    let put = ok(&out[1]);
    let expected = hex::encode(sha2::Sha256::digest(b"{\"a\":1}"));
    assert_eq!(put["sha256"], expected);
    assert_eq!(ok(&out[2]), "{\"a\":1}");
    assert_eq!(ok(&out[3])["sha256"], expected);
    assert_eq!(ok(&out[4]).as_array().unwrap().len(), 1);
    // `allowed/` must not match `allowedx/` (the IAM prefix pitfall).
    assert_eq!(err_kind(&out[5]), "denied");
    assert_eq!(err_kind(&out[6]), "denied");
    assert_eq!(err_kind(&out[7]), "not-found");
    let url = ok(&out[8]).as_str().unwrap();
    assert!(
        url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=300"),
        "{url}"
    );
    assert_eq!(ok(&out[9])["public"], false);
    ok(&out[10]);
    ok(&out[11]);
    assert_eq!(err_kind(&out[12]), "denied");
    // Bad arguments: an empty key is refused (by the policy's key check,
    // before any I/O); a malformed checksum is invalid.
    assert!(matches!(err_kind(&out[13]), "invalid" | "denied"), "{}", out[13]);
    assert_eq!(err_kind(&out[14]), "invalid", "{}", out[14]);
    // The denied writes did no I/O: the server holds nothing outside allowed/.
    let listed = s3.list_objects_v2().bucket("ferry-test").send().await.unwrap();
    assert_eq!(listed.key_count().unwrap_or(0), 0, "{listed:?}");
}

/// A sealed object reads back only as this key wrote it there: edited in the bucket,
/// copied to another key, read with another key or without one, it is refused with a
/// sentence saying which; an unsealed object is refused while the run has a key.
#[tokio::test]
async fn sealed_objects_read_back_only_as_written() {
    let moto = moto().await;
    let s3 = aws::s3(&moto.url()).await;
    let key = |b: u8| ferry::audit::AuditKey::from_bytes(vec![b; 32]).unwrap();
    let mut run = s3_run_with_bucket(&moto).await;
    run.audit_key = Some(key(1));
    let out = run
        .script(json!([
            { "op": "open-bucket", "bucket": "ferry-test", "as": "b" },
            { "op": "s3.put", "bucket": "b", "key": "allowed/index.json", "data": "{\"files\":[]}", "seal": true },
            { "op": "s3.get-sealed", "bucket": "b", "key": "allowed/index.json" },
            { "op": "s3.put", "bucket": "b", "key": "allowed/plain.json", "data": "{}" },
            { "op": "s3.get-sealed", "bucket": "b", "key": "allowed/plain.json" }
        ]))
        .await
        .unwrap();
    assert_eq!(ok(&out[2]), "{\"files\":[]}");
    assert!(err_message(&out[4]).contains("is not signed"), "{}", out[4]);

    // Someone with write access to the bucket edits the index, keeping its seal and
    // recording the new content's SHA-256 (the plain checksum alone would pass), and
    // copies it to another key.
    let got = s3
        .get_object()
        .bucket("ferry-test")
        .key("allowed/index.json")
        .send()
        .await
        .unwrap();
    let mut metadata = got.metadata().cloned().unwrap_or_default();
    let edited = b"{\"files\":[{\"kind\":\"Namespace\",\"name\":\"everything\"}]}";
    metadata.insert("sha256".into(), hex::encode(sha2::Sha256::digest(edited)));
    s3.put_object()
        .bucket("ferry-test")
        .key("allowed/edited.json")
        .set_metadata(Some(metadata.clone()))
        .body(aws_sdk_s3::primitives::ByteStream::from_static(edited))
        .send()
        .await
        .unwrap();
    s3.copy_object()
        .bucket("ferry-test")
        .key("allowed/moved.json")
        .copy_source("ferry-test/allowed/index.json")
        .send()
        .await
        .unwrap();
    let mut run = s3_run(&moto.url()).await;
    run.audit_key = Some(key(1));
    let out = run
        .script(json!([
            { "op": "open-bucket", "bucket": "ferry-test", "as": "b" },
            { "op": "s3.get-sealed", "bucket": "b", "key": "allowed/edited.json" },
            { "op": "s3.get-sealed", "bucket": "b", "key": "allowed/moved.json" }
        ]))
        .await
        .unwrap();
    for (i, r) in out.iter().enumerate().skip(1) {
        assert_eq!(err_kind(r), "other", "{i}: {r}");
        assert!(err_message(r).contains("does not match its signature"), "{i}: {r}");
    }
    let mut other = s3_run(&moto.url()).await;
    other.audit_key = Some(key(2));
    let without = s3_run(&moto.url()).await;
    for (run, expected) in [(other, "not with this run's key"), (without, "--audit-key")] {
        let out = run
            .script(json!([
                { "op": "open-bucket", "bucket": "ferry-test", "as": "b" },
                { "op": "s3.get-sealed", "bucket": "b", "key": "allowed/index.json" }
            ]))
            .await
            .unwrap();
        assert!(err_message(&out[1]).contains(expected), "{}", out[1]);
    }
}

#[tokio::test]
async fn objects_larger_than_the_guest_limit_are_refused() {
    let moto = moto().await;
    let mut run = s3_run_with_bucket(&moto).await;
    run.config.limits.max_object_bytes = 8;
    let out = run
        .script(json!([
            { "op": "open-bucket", "bucket": "ferry-test", "as": "b" },
            { "op": "s3.put", "bucket": "b", "key": "allowed/big", "data": "0123456789" }
        ]))
        .await
        .unwrap();
    assert_eq!(err_kind(&out[1]), "invalid");
    assert!(err_message(&out[1]).contains("stream host-side"), "{}", out[1]);
}

#[tokio::test]
async fn dns_lists_across_pages_and_changes_only_allowed_names() {
    let moto = moto().await;
    let r53 = aws::route53(&moto.url()).await;
    let zone_id = aws::hosted_zone(&r53, "example.com").await;
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.jsonl");
    let mut run = s3_run(&moto.url()).await;
    run.audit = Some(audit.clone());
    let out = run
        .script(json!([
            { "op": "open-zone", "zone": zone_id, "as": "z" },
            { "op": "dns.change", "zone": "z", "changes": [
                { "action": "upsert", "name": "api.team-a.example.com", "type": "A", "ttl": 60, "values": ["10.0.0.1"] },
                { "action": "upsert", "name": "a-api.team-a.example.com", "type": "TXT", "ttl": 60, "values": ["\"heritage=external-dns\""] }
            ]},
            { "op": "dns.list", "zone": "z", "filter": "team-a.example.com" },
            { "op": "dns.change", "zone": "z", "changes": [
                { "action": "upsert", "name": "api.team-a.example.com", "type": "A", "ttl": 60, "values": ["10.0.0.2"] },
                { "action": "upsert", "name": "api.team-b.example.com", "type": "A", "ttl": 60, "values": ["10.0.0.3"] }
            ]},
            { "op": "dns.list", "zone": "z", "filter": "example.com" },
            { "op": "dns.change", "zone": "z", "changes": [] }
        ]))
        .await
        .unwrap();
    ok(&out[0]);
    ok(&out[1]);
    let listed = ok(&out[2]).as_array().unwrap();
    let names: Vec<&str> = listed.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"api.team-a.example.com"));
    // One record of the batch is outside the policy: the whole batch is denied
    // and nothing changed on the server.
    assert_eq!(err_kind(&out[3]), "denied");
    assert!(err_message(&out[3]).contains("api.team-b.example.com"), "{}", out[3]);
    let all = ok(&out[4]).as_array().unwrap();
    let a = all
        .iter()
        .find(|r| r["name"] == "api.team-a.example.com" && r["type"] == "A")
        .unwrap();
    assert_eq!(a["values"], json!(["10.0.0.1"]));
    assert!(!all.iter().any(|r| r["name"] == "api.team-b.example.com"));
    assert_eq!(err_kind(&out[5]), "invalid", "an empty batch: {}", out[5]);

    // Every decision of the denied batch is audited with the batch's real
    // outcome: the allowed record as allow/denied, the other as deny.
    let all_records: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["action"] == "dns:change")
        .collect();
    // Each allowed change was recorded as decided before the batch went out: two in the
    // first batch, one (team-a's) in the denied one.
    let decisions = all_records.iter().filter(|r| r["kind"] == "decision").count();
    assert_eq!(decisions, 3, "{all_records:?}");
    let records: Vec<Value> = all_records.into_iter().filter(|r| r["kind"] == "call").collect();
    let batch: Vec<(&str, &str, &str)> = records[2..]
        .iter()
        .map(|r| {
            (
                r["resource"].as_str().unwrap(),
                r["decision"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(records.len(), 4, "{records:?}");
    assert!(
        batch
            .iter()
            .any(|b| b.0.contains("api.team-b.example.com") && b.1 == "deny"),
        "{batch:?}"
    );
    assert!(
        batch
            .iter()
            .any(|b| b.0.contains("api.team-a.example.com") && b.1 == "allow" && b.2 == "denied"),
        "{batch:?}"
    );
}

#[tokio::test]
async fn etcd_snapshots_stream_into_s3_and_restore() {
    let moto = moto().await;
    let s3 = aws::s3(&moto.url()).await;
    s3.create_bucket().bucket("ferry-test").send().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let etcd = EtcdServer::start(tmp.path().join("etcd"))
        .await
        .expect("etcd must be installed (see .ci/setup)");
    let mut kv = etcd_client::Client::connect([etcd.client_url()], None).await.unwrap();
    for i in 0..50 {
        kv.put(format!("/registry/test/{i}"), format!("value-{i}"), None)
            .await
            .unwrap();
    }

    let mut run = s3_run(&moto.url()).await;
    run.config.etcd.insert(
        "hosted".into(),
        EtcdConfig {
            endpoints: vec![etcd.client_url()],
        },
    );
    let out = run
        .script(json!([
            { "op": "open-bucket", "bucket": "ferry-test", "as": "b" },
            { "op": "etcd.snapshot-endpoint", "alias": "hosted", "bucket": "b", "key": "allowed/etcd/snapshot.db" },
            { "op": "etcd.snapshot-endpoint", "alias": "unknown", "bucket": "b", "key": "allowed/etcd/other.db" },
            { "op": "etcd.snapshot-endpoint", "alias": "hosted", "bucket": "b", "key": "elsewhere/snapshot.db" }
        ]))
        .await
        .unwrap();
    let info = ok(&out[1]);
    assert_eq!(err_kind(&out[2]), "not-found");
    assert_eq!(err_kind(&out[3]), "denied");

    // An independent read of the object matches the reported size and hash.
    let body = s3
        .get_object()
        .bucket("ferry-test")
        .key("allowed/etcd/snapshot.db")
        .send()
        .await
        .unwrap();
    let bytes = body.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.len() as u64, info["size"].as_u64().unwrap());
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        info["sha256"].as_str().unwrap()
    );
    assert!(info["revision"].as_i64().unwrap() >= 50);

    // Restore it into a fresh etcd and read the keys back.
    let snap = tmp.path().join("snapshot.db");
    std::fs::write(&snap, &bytes).unwrap();
    let restored = EtcdServer::restore_from(&snap, tmp.path().join("restored"))
        .await
        .unwrap();
    let mut kv2 = etcd_client::Client::connect([restored.client_url()], None)
        .await
        .unwrap();
    let got = kv2
        .get("/registry/test/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 50);
}

/// A run whose audit trail cannot be written does not start: nothing happens that the
/// trail could not show.
#[tokio::test]
async fn a_run_whose_trail_cannot_be_written_does_not_start() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let result = GuestRun {
        config: workspace_config(&ws),
        audit: Some(std::path::PathBuf::from("/dev/full")),
        ..Default::default()
    }
    .script(json!([{ "op": "fs.write", "path": "a.txt", "data": "x" }]))
    .await;
    let e = result.expect_err("the run must not start");
    assert!(
        format!("{e:#}").contains("the run does not start: cannot write the audit trail"),
        "{e:#}"
    );
    assert!(!ws.join("a.txt").exists());
}

/// A presigned URL is a bearer credential: its lifetime is capped by `[limits]`
/// (and a policy may cap it lower through `context.presignSeconds`).
#[tokio::test]
async fn presigned_urls_live_no_longer_than_the_limit() {
    let moto = moto().await;
    let mut run = s3_run_with_bucket(&moto).await;
    run.config.limits.max_presign_seconds = 600;
    let out = run
        .script(json!([
            { "op": "open-bucket", "bucket": "ferry-test", "as": "b" },
            { "op": "s3.presign", "bucket": "b", "key": "allowed/index.json", "expires": 600 },
            { "op": "s3.presign", "bucket": "b", "key": "allowed/index.json", "expires": 601 }
        ]))
        .await
        .unwrap();
    assert!(
        ok(&out[1]).as_str().unwrap().contains("X-Amz-Expires=600"),
        "{}",
        out[1]
    );
    assert_eq!(err_kind(&out[2]), "invalid", "{}", out[2]);
    assert!(
        err_message(&out[2]).contains("at most 600 s ([limits] max_presign_seconds)"),
        "{}",
        out[2]
    );
}

/// The workspace holds every Secret of a control plane: one that others could read is made
/// private before anything is written to it, and files are written 0600.
#[tokio::test]
async fn an_open_workspace_is_tightened_before_it_is_used() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::set_permissions(&ws, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = GuestRun {
        config: workspace_config(&ws),
        ..Default::default()
    }
    .script(json!([{ "op": "fs.write", "path": "secret-copy.yaml", "data": "x" }]))
    .await
    .unwrap();
    ok(&out[0]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&ws), 0o700);
    assert_eq!(mode(&ws.join("secret-copy.yaml")), 0o600);
}
