//! P4: the backup's object dump of a control-plane namespace holding thousands of objects,
//! next to the documented loop (one `kubectl get <kind> <name> -o yaml > file` process per
//! object) against the same simulator, in the same run; and P5, a whole `ferry migrate` on
//! the simulator with minimal waits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferry::progress::{ProgressEvent, ProgressSink};
use ferry_dr::phases::{Phase, PhaseArgs};
use ferry_drill::{Drill, DrillOptions};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::report::{Ratio, Row, Stats};

/// Records when each step of a phase starts and ends (the guest reports both).
#[derive(Default)]
struct StepTimes {
    events: Mutex<Vec<(Instant, String, String)>>,
}

impl ProgressSink for StepTimes {
    fn event(&self, e: &ProgressEvent) {
        if let Ok(mut ev) = self.events.lock() {
            ev.push((Instant::now(), e.step.clone(), e.message.clone()));
        }
    }
}

impl StepTimes {
    /// Durations of every completed run of `step`, in order.
    fn durations(&self, step: &str) -> Vec<Duration> {
        let Ok(ev) = self.events.lock() else { return Vec::new() };
        let mut out = Vec::new();
        let mut started = None;
        for (t, s, msg) in ev.iter() {
            if s != step {
                continue;
            }
            if msg == "started" {
                started = Some(*t);
            } else if let Some(t0) = started.take() {
                out.push(t.duration_since(t0));
            }
        }
        out
    }
}

/// HyperShift's own CRDs (validation and CEL rules included) when `shared/upstream` is
/// there, as in the tests; else the built-in definitions.
pub fn crds() -> ferry_sim::kube::crd::CrdSource {
    match ferry_sim::crd_tests::upstream_dir() {
        Some(dir) => ferry_sim::kube::crd::CrdSource::Dir(dir.join("hypershift/crds")),
        None => ferry_sim::kube::crd::CrdSource::Builtin,
    }
}

pub fn quiet() -> Arc<dyn Fn(&str) + Send + Sync> {
    Arc::new(|_: &str| {})
}

async fn client(url: &str) -> Result<kube::Client> {
    let config = kube::Config::new(url.parse()?);
    Ok(kube::Client::try_from(config)?)
}

fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Adds `count` objects to the source: a mix like a busy control-plane namespace (Secrets,
/// Machines and AWSMachines in it; ConfigMaps named after the hosted cluster in its
/// namespace), all of which the dump carries. Machines and AWSMachines are copies of the
/// scenario's own, so they pass the same validation.
async fn seed(client: &kube::Client, hc_ns: &str, hc_name: &str, hcp_ns: &str, count: usize) -> Result<()> {
    let secrets = count * 35 / 100;
    let config_maps = count * 15 / 100;
    let machines = (count - secrets - config_maps) / 2;
    let aws_machines = count - secrets - config_maps - machines;
    let secret_api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), hcp_ns, &api_resource("", "v1", "Secret", "secrets"));
    let cm_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        hc_ns,
        &api_resource("", "v1", "ConfigMap", "configmaps"),
    );
    let machine_ar = api_resource("cluster.x-k8s.io", "v1beta1", "Machine", "machines");
    let aws_ar = api_resource(
        "infrastructure.cluster.x-k8s.io",
        "v1beta2",
        "AWSMachine",
        "awsmachines",
    );
    let machine_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), hcp_ns, &machine_ar);
    let aws_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), hcp_ns, &aws_ar);
    let template = |list: Vec<DynamicObject>, what: &str| -> Result<Value> {
        let first = list
            .into_iter()
            .next()
            .with_context(|| format!("the scenario has no {what} to copy"))?;
        let mut v = serde_json::to_value(first)?;
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| k == "labels" || k == "annotations");
        }
        if let Some(o) = v.as_object_mut() {
            o.remove("status");
        }
        Ok(v)
    };
    let machine = template(machine_api.list(&ListParams::default()).await?.items, "Machine")?;
    let aws_machine = template(aws_api.list(&ListParams::default()).await?.items, "AWSMachine")?;
    let pp = PostParams::default();
    let named = |base: &Value, name: String| -> Result<DynamicObject> {
        let mut v = base.clone();
        v["metadata"]["name"] = json!(name);
        Ok(serde_json::from_value(v)?)
    };
    let payload = "x".repeat(2048);
    for i in 0..secrets {
        let s = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": format!("bench-secret-{i:05}")},
            "stringData": {"key": payload, "index": i.to_string()}});
        secret_api.create(&pp, &serde_json::from_value(s)?).await?;
    }
    for i in 0..config_maps {
        let c = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{hc_name}-bench-{i:05}")},
            "data": {"config.yaml": payload, "index": i.to_string()}});
        cm_api.create(&pp, &serde_json::from_value(c)?).await?;
    }
    for i in 0..machines {
        let mut m = named(&machine, format!("bench-machine-{i:05}"))?;
        if let Some(spec) = m.data.get_mut("spec") {
            spec["infrastructureRef"]["name"] = json!(format!("bench-awsmachine-{i:05}"));
            if let Some(o) = spec.as_object_mut() {
                o.remove("providerID");
            }
        }
        machine_api.create(&pp, &m).await?;
    }
    for i in 0..aws_machines {
        let mut m = named(&aws_machine, format!("bench-awsmachine-{i:05}"))?;
        if let Some(spec) = m.data.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("providerID");
            spec.remove("instanceID");
        }
        aws_api.create(&pp, &m).await?;
    }
    Ok(())
}

/// One manifest file the dump wrote: where, and which object it holds.
struct Written {
    path: PathBuf,
    object: Value,
}

fn collect(dir: &Path, out: &mut Vec<Written>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml") {
            let object: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path)?)
                .with_context(|| format!("parsing {}", path.display()))?;
            out.push(Written { path, object });
        }
    }
    Ok(())
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// `kubectl get`'s resource argument for an object: `kind.version.group`, or the kind for
/// the core group.
fn kubectl_resource(object: &Value) -> String {
    let kind = str_at(object, "/kind").to_lowercase();
    match str_at(object, "/apiVersion").split_once('/') {
        Some((group, version)) => format!("{kind}.{version}.{group}"),
        None => kind,
    }
}

/// What both copies of an object must agree on: the payload, not the server-set metadata
/// the dump drops on purpose.
fn essence(v: &Value) -> Value {
    json!({
        "kind": v.get("kind"),
        "name": v.pointer("/metadata/name"),
        "namespace": v.pointer("/metadata/namespace"),
        "labels": v.pointer("/metadata/labels"),
        "spec": v.get("spec"),
        "data": v.get("data"),
        "type": v.get("type"),
    })
}

/// The documented loop over `objects`: one kubectl process per object, its YAML to a file.
async fn kubectl_loop(kubeconfig: &Path, objects: &[&Value], out: &Path, cache: &Path) -> Result<Duration> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    let t = Instant::now();
    for (i, o) in objects.iter().enumerate() {
        let file = std::fs::File::create(out.join(format!("{i:05}.yaml")))?;
        let status = tokio::process::Command::new("kubectl")
            .env("KUBECACHEDIR", cache)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", &kubectl_resource(o), str_at(o, "/metadata/name")])
            .args(["-n", str_at(o, "/metadata/namespace"), "-o", "yaml"])
            .stdout(file)
            .status()
            .await
            .context("running kubectl")?;
        if !status.success() {
            bail!(
                "kubectl get {} {} failed",
                kubectl_resource(o),
                str_at(o, "/metadata/name")
            );
        }
    }
    Ok(t.elapsed())
}

/// P4 with `count` extra objects: `runs` dumps by ferry, `baseline_runs` documented loops.
pub async fn p4(count: usize, runs: usize, baseline_runs: usize) -> Result<Row> {
    let times = Arc::new(StepTimes::default());
    let drill = Drill::start(DrillOptions {
        progress: times.clone(),
        say: quiet(),
        crds: crds(),
        ..DrillOptions::default()
    })
    .await?;
    let result = p4_on(&drill, &times, count, runs, baseline_runs).await;
    drill.shutdown().await;
    result
}

async fn p4_on(drill: &Drill, times: &StepTimes, count: usize, runs: usize, baseline_runs: usize) -> Result<Row> {
    let env = drill.env();
    let hc = &env.scenario.hosted_cluster;
    let (hc_ns, hc_name, hcp_ns) = (hc.namespace.clone(), hc.name.clone(), env.hcp_namespace());
    let source = &env.source().sim;
    seed(&client(&source.url()).await?, &hc_ns, &hc_name, &hcp_ns, count).await?;

    let args = PhaseArgs {
        stop_after: Some("dump".into()),
        ..PhaseArgs::default()
    };
    for _ in 0..runs {
        let report = drill.phase(Phase::Backup, &args).await?;
        if times.durations("backup/dump").is_empty() {
            bail!("the backup did not run its dump step: {:?}", report.outcome);
        }
    }
    let dumps = times.durations("backup/dump");
    if dumps.len() != runs {
        bail!("expected {runs} dumps, measured {}", dumps.len());
    }

    // What the dump wrote, and the same objects through the documented loop.
    let workspace = drill.dir().join("backup");
    let mut written = Vec::new();
    collect(&workspace, &mut written)?;
    if written.len() < count {
        bail!("the dump wrote {} files for {count} seeded objects", written.len());
    }
    let objects: Vec<&Value> = written.iter().map(|w| &w.object).collect();
    let scratch = tempfile::tempdir()?;
    let kubeconfig = scratch.path().join("kubeconfig");
    source.write_kubeconfig(&kubeconfig, "source")?;
    let out = scratch.path().join("loop");
    let mut loops = Vec::new();
    for _ in 0..baseline_runs {
        loops.push(kubectl_loop(&kubeconfig, &objects, &out, &scratch.path().join("cache")).await?);
    }

    // The same objects, one file each.
    let mut by_name: BTreeMap<(String, String, String), Value> = BTreeMap::new();
    for i in 0..objects.len() {
        let v: Value = serde_saphyr::from_str(&std::fs::read_to_string(out.join(format!("{i:05}.yaml")))?)?;
        let key = (
            str_at(&v, "/kind").to_string(),
            str_at(&v, "/metadata/namespace").to_string(),
            str_at(&v, "/metadata/name").to_string(),
        );
        by_name.insert(key, v);
    }
    let mut same = 0;
    let mut differ = Vec::new();
    for w in &written {
        let o = &w.object;
        let key = (
            str_at(o, "/kind").to_string(),
            str_at(o, "/metadata/namespace").to_string(),
            str_at(o, "/metadata/name").to_string(),
        );
        match by_name.get(&key) {
            Some(v) if essence(v) == essence(o) => same += 1,
            _ => differ.push(w.path.display().to_string()),
        }
    }
    let ferry = Stats::of_durations(&dumps, 1.0);
    let baseline = Stats::of_durations(&loops, 1.0);
    let row = Row::compared(
        "P4",
        &format!(
            "backup's object dump ({} objects, {count} of them seeded)",
            written.len()
        ),
        "s",
        ferry,
        ("one `kubectl get <kind> <name> -o yaml > file` per object", baseline),
        Ratio::Speedup,
    );
    let all_same = differ.is_empty() && by_name.len() == written.len();
    let met = row.ratio.is_some_and(|r| r >= 20.0) && all_same;
    let mut row = row
        .goal("≥ 20× faster, same files written", met)
        .detail("same objects in both", format!("{same} of {}", written.len()));
    if !differ.is_empty() {
        row = row.detail("differ", differ.iter().take(3).cloned().collect::<Vec<_>>().join(", "));
    }
    Ok(row)
}

/// P5: one whole migration (backup, restore, teardown, finish) on the simulator, guest waits
/// scaled down, set-up excluded.
pub async fn p5(runs: usize) -> Result<Row> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let drill = Drill::start(DrillOptions {
            say: quiet(),
            crds: crds(),
            clock_scale: 100.0,
            ..DrillOptions::default()
        })
        .await?;
        let t = Instant::now();
        let report = drill.migrate().await;
        let elapsed = t.elapsed();
        let verified = drill.verify().await;
        drill.shutdown().await;
        if !report.succeeded() || !verified.passed() {
            bail!("the migration failed: {}\n{}", report.message(), verified.to_text());
        }
        times.push(elapsed);
    }
    let stats = Stats::of_durations(&times, 1.0);
    Ok(Row::absolute(
        "P5",
        "one full `ferry migrate` on the simulator, minimal waits",
        "s",
        stats,
    )
    .goal("≤ 10 s", stats.median <= 10.0))
}
