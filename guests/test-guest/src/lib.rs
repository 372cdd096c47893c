//! Test guest for the host's own tests.
//!
//! Phase `script` runs the operations in the `ops` argument (a JSON array)
//! and returns one result per operation: `{"ok": value}` or
//! `{"err": {"kind": "denied", "message": "..."}}`. The tests therefore drive
//! every capability through the real host and assert in Rust. Other phases
//! misbehave on purpose: `loop`, `alloc`, `trap`, `sleep`, `handles`; and
//! `bench` repeats one host call for the benchmarks.

use std::collections::HashMap;

use serde_json::{Value, json};

ferry_sdk::automation_world!("../../wit");

use ferry_sdk::bindings::ferry::host::k8s;
use ferry_sdk::{ObjectRef, context, dns, etcd, objects, workspace};

struct Component;

fn err_json(e: &Error) -> Value {
    json!({ "err": { "kind": ferry_sdk::kind(e), "message": ferry_sdk::message(e) } })
}

fn s(op: &Value, key: &str) -> String {
    op.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn opt(op: &Value, key: &str) -> Option<String> {
    op.get(key).and_then(Value::as_str).map(str::to_string)
}

fn object_ref(op: &Value) -> ObjectRef {
    ObjectRef {
        api_version: s(op, "apiVersion"),
        kind: s(op, "kind"),
        namespace: opt(op, "namespace"),
        name: s(op, "name"),
    }
}

fn write_options(op: &Value) -> k8s::WriteOptions {
    k8s::WriteOptions {
        dry_run: op.get("dryRun").and_then(Value::as_bool).unwrap_or(false),
        field_manager: opt(op, "fieldManager"),
    }
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::String(text.to_string()))
}

fn info_json(i: &objects::ObjectInfo) -> Value {
    json!({ "key": i.key, "size": i.size, "sha256": i.sha256, "etag": i.etag })
}

fn record_json(r: &dns::RecordSet) -> Value {
    json!({ "name": r.name, "type": r.record_type, "ttl": r.ttl, "values": r.values })
}

#[derive(Default)]
struct Handles {
    clusters: HashMap<String, k8s::Cluster>,
    buckets: HashMap<String, objects::Bucket>,
    zones: HashMap<String, dns::Zone>,
}

fn missing(what: &str, name: &str) -> Value {
    json!({ "err": { "kind": "script", "message": format!("no open {what} named {name}") } })
}

fn run_op(op: &Value, h: &mut Handles) -> Value {
    let as_ok = |r: Result<Value, Error>| match r {
        Ok(v) => json!({ "ok": v }),
        Err(e) => err_json(&e),
    };
    let name = s(op, "op");
    match name.as_str() {
        "param" => json!({ "ok": context::param(&s(op, "name")) }),
        "is-plan" => json!({ "ok": context::is_plan() }),
        "now" => json!({ "ok": context::now() }),
        "sleep" => {
            context::sleep(op.get("millis").and_then(Value::as_u64).unwrap_or(0));
            json!({ "ok": null })
        }
        "log" => {
            context::log(
                context::Level::Info,
                &s(op, "message"),
                &[("from".to_string(), "test-guest".to_string())],
            );
            json!({ "ok": null })
        }
        "progress" => {
            context::report_progress(&context::Progress {
                step: s(op, "step"),
                done: op.get("done").and_then(Value::as_u64).unwrap_or(0),
                total: op.get("total").and_then(Value::as_u64),
                unit: context::Unit::Items,
                message: s(op, "message"),
            });
            json!({ "ok": null })
        }
        "open-cluster" => match k8s::open_cluster(&s(op, "alias")) {
            Ok(c) => {
                h.clusters.insert(s(op, "as"), c);
                json!({ "ok": null })
            }
            Err(e) => err_json(&e),
        },
        n if n.starts_with("k8s.") => {
            let Some(c) = h.clusters.get(&s(op, "cluster")) else {
                return missing("cluster", &s(op, "cluster"));
            };
            match n {
                "k8s.get" => as_ok(c.get(&object_ref(op)).map(|t| parse_json(&t))),
                "k8s.list" => as_ok(
                    c.list_objects(
                        &s(op, "apiVersion"),
                        &s(op, "kind"),
                        opt(op, "namespace").as_deref(),
                        &k8s::ListOptions {
                            label_selector: opt(op, "labelSelector"),
                            field_selector: opt(op, "fieldSelector"),
                        },
                    )
                    .map(|items| Value::Array(items.iter().map(|t| parse_json(t)).collect())),
                ),
                "k8s.create" => as_ok(
                    c.create(&op["manifest"].to_string(), &write_options(op))
                        .map(|t| parse_json(&t)),
                ),
                "k8s.apply" => as_ok(
                    c.apply(&op["manifest"].to_string(), &write_options(op))
                        .map(|t| parse_json(&t)),
                ),
                "k8s.replace" => as_ok(
                    c.replace(&op["manifest"].to_string(), &write_options(op))
                        .map(|t| parse_json(&t)),
                ),
                "k8s.patch" => {
                    let kind = match s(op, "patchKind").as_str() {
                        "json" => k8s::PatchKind::Json,
                        "apply" => k8s::PatchKind::Apply,
                        _ => k8s::PatchKind::Merge,
                    };
                    as_ok(
                        c.patch(&object_ref(op), kind, &op["patch"].to_string(), &write_options(op))
                            .map(|t| parse_json(&t)),
                    )
                }
                "k8s.delete" => as_ok(c.delete(&object_ref(op), None, &write_options(op)).map(|o| {
                    Value::String(
                        match o {
                            k8s::DeleteOutcome::Deleted => "deleted",
                            k8s::DeleteOutcome::Pending => "pending",
                            k8s::DeleteOutcome::Absent => "absent",
                        }
                        .into(),
                    )
                })),
                "k8s.scale" => as_ok(
                    c.scale(
                        &object_ref(op),
                        op.get("replicas").and_then(Value::as_u64).unwrap_or(0) as u32,
                        &write_options(op),
                    )
                    .map(|p| json!(p)),
                ),
                "k8s.owned-names" => {
                    json!({ "ok": c.owned_names(&s(op, "group"), &s(op, "kind"), &s(op, "namespace")) })
                }
                _ => json!({ "err": { "kind": "script", "message": format!("unknown op {n}") } }),
            }
        }
        "open-bucket" => match objects::open_bucket(&s(op, "bucket")) {
            Ok(b) => {
                h.buckets.insert(s(op, "as"), b);
                json!({ "ok": null })
            }
            Err(e) => err_json(&e),
        },
        n if n.starts_with("s3.") => {
            let Some(b) = h.buckets.get(&s(op, "bucket")) else {
                return missing("bucket", &s(op, "bucket"));
            };
            let key = s(op, "key");
            match n {
                "s3.put" => as_ok(
                    b.put(
                        &key,
                        s(op, "data").as_bytes(),
                        &objects::PutOptions {
                            content_type: opt(op, "contentType"),
                            create_only: op.get("createOnly").and_then(Value::as_bool).unwrap_or(false),
                            seal: op.get("seal").and_then(Value::as_bool).unwrap_or(false),
                        },
                    )
                    .map(|i| info_json(&i)),
                ),
                "s3.get" => as_ok(
                    b.get(&key)
                        .map(|d| Value::String(String::from_utf8_lossy(&d).into_owned())),
                ),
                "s3.get-sealed" => as_ok(
                    b.get_sealed(&key)
                        .map(|d| Value::String(String::from_utf8_lossy(&d).into_owned())),
                ),
                "s3.head" => as_ok(b.head(&key).map(|i| info_json(&i))),
                "s3.list" => as_ok(
                    b.list_objects(&s(op, "prefix"))
                        .map(|l| Value::Array(l.iter().map(info_json).collect())),
                ),
                "s3.delete" => as_ok(b.delete(&key).map(|_| Value::Null)),
                "s3.presign" => as_ok(
                    b.presign_get(&key, op.get("expires").and_then(Value::as_u64).unwrap_or(60) as u32)
                        .map(Value::String),
                ),
                "s3.verify" => as_ok(b.verify_sha256(&key, &s(op, "sha256")).map(|_| Value::Null)),
                "s3.exposure" => as_ok(
                    b.exposure()
                        .map(|e| json!({ "public": e.publicly_readable, "reason": e.reason })),
                ),
                _ => json!({ "err": { "kind": "script", "message": format!("unknown op {n}") } }),
            }
        }
        "open-zone" => match dns::open_zone(&s(op, "zone")) {
            Ok(z) => {
                h.zones.insert(s(op, "as"), z);
                json!({ "ok": null })
            }
            Err(e) => err_json(&e),
        },
        "dns.list" => {
            let Some(z) = h.zones.get(&s(op, "zone")) else {
                return missing("zone", &s(op, "zone"));
            };
            as_ok(
                z.list_record_sets(opt(op, "filter").as_deref())
                    .map(|l| Value::Array(l.iter().map(record_json).collect())),
            )
        }
        "dns.change" => {
            let Some(z) = h.zones.get(&s(op, "zone")) else {
                return missing("zone", &s(op, "zone"));
            };
            let changes: Vec<dns::Change> = op["changes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| dns::Change {
                            action: match s(c, "action").as_str() {
                                "create" => dns::ChangeAction::Create,
                                "delete" => dns::ChangeAction::Delete,
                                _ => dns::ChangeAction::Upsert,
                            },
                            record_set: dns::RecordSet {
                                name: s(c, "name"),
                                record_type: s(c, "type"),
                                ttl: c.get("ttl").and_then(Value::as_u64).map(|t| t as u32),
                                values: c["values"]
                                    .as_array()
                                    .map(|v| v.iter().filter_map(Value::as_str).map(str::to_string).collect())
                                    .unwrap_or_default(),
                            },
                        })
                        .collect()
                })
                .unwrap_or_default();
            as_ok(z.change_record_sets(&changes).map(Value::String))
        }
        "etcd.snapshot-endpoint" => {
            let Some(b) = h.buckets.get(&s(op, "bucket")) else {
                return missing("bucket", &s(op, "bucket"));
            };
            as_ok(etcd::snapshot_endpoint_to_object(&s(op, "alias"), b, &s(op, "key")).map(|i| snapshot_json(&i)))
        }
        "etcd.snapshot-pod" => {
            let Some(b) = h.buckets.get(&s(op, "bucket")) else {
                return missing("bucket", &s(op, "bucket"));
            };
            let Some(c) = h.clusters.get(&s(op, "cluster")) else {
                return missing("cluster", &s(op, "cluster"));
            };
            let member = etcd::PodMember {
                namespace: s(op, "namespace"),
                pod: s(op, "pod"),
                port: op.get("port").and_then(Value::as_u64).unwrap_or(2379) as u16,
                client_secret: opt(op, "clientSecret"),
                ca_secret: opt(op, "caSecret"),
            };
            as_ok(etcd::snapshot_pod_to_object(c, &member, b, &s(op, "key")).map(|i| snapshot_json(&i)))
        }
        "fs.write" => as_ok(workspace::write_file(&s(op, "path"), s(op, "data").as_bytes()).map(|_| Value::Null)),
        "fs.read" => {
            as_ok(workspace::read_file(&s(op, "path")).map(|d| Value::String(String::from_utf8_lossy(&d).into_owned())))
        }
        "fs.list" => as_ok(workspace::list_dir(&s(op, "path")).map(|l| {
            Value::Array(
                l.iter()
                    .map(|e| json!({ "name": e.name, "dir": e.is_dir, "size": e.size }))
                    .collect(),
            )
        })),
        "drop-cluster" => {
            h.clusters.remove(&s(op, "cluster"));
            json!({ "ok": null })
        }
        // Runs the ops a workspace file holds: automation whose actions depend on what it
        // reads, with the same arguments every run.
        "ops-from" => {
            let ops = match workspace::read_file(&s(op, "path")) {
                Ok(data) => parse_json(&String::from_utf8_lossy(&data)),
                Err(e) => return err_json(&e),
            };
            let results: Vec<Value> = ops.as_array().into_iter().flatten().map(|o| run_op(o, h)).collect();
            json!({ "ok": results })
        }
        other => json!({ "err": { "kind": "script", "message": format!("unknown op {other}") } }),
    }
}

fn snapshot_json(i: &etcd::SnapshotInfo) -> Value {
    json!({ "key": i.key, "size": i.size, "sha256": i.sha256, "revision": i.revision, "member": i.member })
}

impl Guest for Component {
    fn run(phase: String, args: Vec<(String, String)>) -> Result<String, Error> {
        let arg = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match phase.as_str() {
            "script" => {
                let ops: Value = serde_json::from_str(&arg("ops").unwrap_or_else(|| "[]".into()))
                    .map_err(|e| Error::Invalid(format!("ops is not JSON: {e}")))?;
                let mut handles = Handles::default();
                let results: Vec<Value> = ops
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|op| run_op(op, &mut handles))
                    .collect();
                Ok(Value::Array(results).to_string())
            }
            "fail" => Err(Error::Other(
                arg("message").unwrap_or_else(|| "failing on purpose".into()),
            )),
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => {
                let v: Vec<u32> = Vec::new();
                let i = std::hint::black_box(3usize);
                Ok(format!("{}", v[i]))
            }
            "sleep" => {
                context::sleep(arg("millis").and_then(|m| m.parse().ok()).unwrap_or(60_000));
                Ok("slept".into())
            }
            "bench" => {
                // Repeats one host call `n` times; the host-side benchmark
                // subtracts a run with n=0, so only the calls are measured.
                let n: u64 = arg("n").and_then(|c| c.parse().ok()).unwrap_or(0);
                let op = arg("op").unwrap_or_default();
                for _ in 0..n {
                    match op.as_str() {
                        "param" => {
                            std::hint::black_box(context::param("bench"));
                        }
                        "open-zone" => {
                            std::hint::black_box(dns::open_zone("ZBENCH").ok());
                        }
                        "denied" => {
                            std::hint::black_box(k8s::open_cluster("not-granted").err());
                        }
                        other => return Err(Error::Invalid(format!("unknown bench op {other}"))),
                    }
                }
                Ok(json!({ "calls": n }).to_string())
            }
            "handles" => {
                let n: usize = arg("count").and_then(|c| c.parse().ok()).unwrap_or(10_000);
                let mut held = Vec::new();
                for i in 0..n {
                    match k8s::open_cluster(&arg("alias").unwrap_or_default()) {
                        Ok(c) => held.push(c),
                        Err(e) => return Ok(json!({ "opened": i, "error": err_json(&e) }).to_string()),
                    }
                }
                Ok(json!({ "opened": held.len() }).to_string())
            }
            other => Err(Error::Invalid(format!("unknown phase `{other}`"))),
        }
    }
}

export!(Component);
