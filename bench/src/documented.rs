//! P6's baseline: the documented procedure's downtime on the same simulator, run as upstream's
//! script runs it (`contrib/migration/migrate-hcp.sh`, summarised in
//! `hcp-dr-procedure.md` §1): `kubectl` for every cluster step, `etcdctl` for the snapshot,
//! the AWS CLI for the upload, the presigned URL and the Route53 wait. It gets its best case:
//! the snapshot is saved straight from the member (`oc exec` aside), objects are cleaned as
//! the script cleans them (`yq del(...)`, here `jq`), the HostedControlPlane dump is not
//! applied (an HCP created before its HostedCluster can never take the snapshot URL), and the
//! end is the first write the hosted API serves, probed every 250 ms, not the script's
//! `sleep 30` node loop.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ferry_drill::Drill;
use ferry_sim::hypershift::pki;
use ferry_sim::kube::registry;
use serde_json::{Value, json};

/// What the baseline measured, seconds; `None` when the hosted API served no write before
/// the cap.
pub struct Baseline {
    pub downtime: Option<f64>,
    /// Where the time went, step by step.
    pub steps: Vec<(String, f64)>,
}

struct Tools<'a> {
    drill: &'a Drill,
    dir: PathBuf,
    kubeconfigs: PathBuf,
    env: Vec<(String, String)>,
}

impl Tools<'_> {
    fn kubeconfig(&self, cluster: &str) -> PathBuf {
        self.kubeconfigs.join(format!("{cluster}.kubeconfig"))
    }

    async fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let out = tokio::process::Command::new(program)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .with_context(|| format!("running {program} (see .ci/setup)"))?;
        if !out.status.success() {
            bail!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn kubectl(&self, cluster: &str, args: &[&str]) -> Result<String> {
        let kc = self.kubeconfig(cluster);
        let mut all = vec!["--kubeconfig", kc.to_str().unwrap_or_default()];
        all.extend_from_slice(args);
        self.run("kubectl", &all).await
    }

    async fn aws(&self, args: &[&str]) -> Result<String> {
        self.run("aws", args).await
    }

    fn s3_args(&self) -> Vec<String> {
        vec![
            "--endpoint-url".into(),
            self.drill.s3().url(),
            "--ca-bundle".into(),
            self.dir.join("s3-ca.pem").display().to_string(),
        ]
    }
}

/// The object names `kubectl get -o name` lists (`kind/name`).
fn names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once('/').map(|(_, n)| n.to_string()))
        .collect()
}

/// The script's `restore_object`: drops what the source's API server set.
fn clean(mut o: Value, drop_pause: bool) -> Value {
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "ownerReferences",
            "creationTimestamp",
            "resourceVersion",
            "uid",
            "managedFields",
            "generation",
        ] {
            m.remove(k);
        }
    }
    if let Some(o) = o.as_object_mut() {
        o.remove("status");
    }
    if drop_pause && let Some(s) = o.get_mut("spec").and_then(Value::as_object_mut) {
        s.remove("pausedUntil");
    }
    o
}

/// Runs the documented procedure's backup and restore on `drill` and measures the hosted API's
/// downtime, waiting at most `cap` for the first write it serves.
pub async fn run(drill: &Drill, cap: Duration) -> Result<Baseline> {
    let dir = drill.dir().to_path_buf();
    let work = tempfile::tempdir()?;
    let aws_config = work.path().join("aws-config");
    // Path-style addressing, as the drill's S3 on loopback needs.
    std::fs::write(&aws_config, "[default]\ns3 =\n    addressing_style = path\n")?;
    let mut env: Vec<(String, String)> = drill
        .process_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.push(("AWS_CONFIG_FILE".into(), aws_config.display().to_string()));
    env.push(("AWS_DEFAULT_REGION".into(), "us-east-1".into()));
    env.push(("ETCDCTL_API".into(), "3".into()));
    let t = Tools {
        drill,
        kubeconfigs: dir.join("kubeconfigs"),
        dir,
        env,
    };
    let hc = &drill.env().scenario.hosted_cluster;
    let (ns, name) = (hc.namespace.as_str(), hc.name.as_str());
    let hcp = drill.env().hcp_namespace();
    let domain = hc.external_dns_domain.trim_end_matches('.').to_string();
    let files = work.path().join("backup");
    std::fs::create_dir_all(&files)?;
    let mut steps: Vec<(String, f64)> = Vec::new();
    let mut step = |what: &str, lap: &mut Instant| {
        steps.push((what.to_string(), lap.elapsed().as_secs_f64()));
        *lap = Instant::now();
    };

    // B2: pause, then stop the writers: the downtime starts.
    let tools = &t;
    let pause = |object: String| async move {
        tools
            .kubectl(
                "source",
                &[
                    "patch",
                    "-n",
                    ns,
                    &object,
                    "--type=merge",
                    "-p",
                    r#"{"spec":{"pausedUntil":"true"}}"#,
                ],
            )
            .await
    };
    pause(format!("hostedclusters/{name}")).await?;
    let pools = names(
        &t.kubectl("source", &["get", "nodepools", "-n", ns, "-o", "name"])
            .await?,
    );
    for np in &pools {
        pause(format!("nodepools/{np}")).await?;
    }
    let start = Instant::now();
    let mut lap = start;
    t.kubectl(
        "source",
        &[
            "scale",
            "deployment",
            "-n",
            &hcp,
            "--replicas=0",
            "kube-apiserver",
            "openshift-apiserver",
            "openshift-oauth-apiserver",
            "control-plane-operator",
        ],
    )
    .await?;
    step("scale the writers to 0 (kubectl)", &mut lap);

    // B3: the snapshot, saved from etcd-0 with the client certificate the pod mounts.
    let store = drill.env().source().sim.store();
    let secret = store
        .get(&registry::SECRET, Some(&hcp), pki::ETCD_CLIENT_SECRET)
        .context("the source has no etcd client Secret")?;
    let decode = |k: &str| -> Result<Vec<u8>> {
        use base64::Engine as _;
        let v = secret["data"][k].as_str().unwrap_or_default();
        Ok(base64::engine::general_purpose::STANDARD.decode(v)?)
    };
    let pki_dir = work.path().join("pki");
    std::fs::create_dir_all(&pki_dir)?;
    std::fs::write(pki_dir.join("tls.crt"), decode(pki::ETCD_CLIENT_CERT_KEY)?)?;
    std::fs::write(pki_dir.join("tls.key"), decode(pki::ETCD_CLIENT_KEY_KEY)?)?;
    std::fs::write(pki_dir.join("ca.crt"), decode(pki::ETCD_CLIENT_CA_KEY)?)?;
    let pki = pki_dir;
    let endpoint = drill
        .env()
        .source()
        .controllers
        .etcd_client_url(&hcp)
        .context("the source's etcd does not run")?;
    let snapshot = work.path().join("snapshot.db");
    let p = |f: &str| pki.join(f).display().to_string();
    t.run(
        "etcdctl",
        &[
            "--cacert",
            &p("ca.crt"),
            "--cert",
            &p("tls.crt"),
            "--key",
            &p("tls.key"),
            "--endpoints",
            &endpoint,
            "snapshot",
            "save",
            snapshot.to_str().unwrap_or_default(),
        ],
    )
    .await?;
    step("etcdctl snapshot save", &mut lap);
    let key = format!("{name}-etcd-0-snapshot.db");
    let bucket = drill.bucket();
    let mut cp = vec![
        "s3".to_string(),
        "cp".into(),
        snapshot.display().to_string(),
        format!("s3://{bucket}/{key}"),
    ];
    cp.extend(t.s3_args());
    t.aws(&cp.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    step("aws s3 cp", &mut lap);

    // B4: one `kubectl get -o json` per object.
    let mut dumped: Vec<(String, PathBuf)> = Vec::new();
    let mut dump = async |cluster_ns: &str, kind: &str, list: Vec<String>| -> Result<()> {
        for n in list {
            let body = t
                .kubectl("source", &["get", kind, &n, "-n", cluster_ns, "-o", "json"])
                .await?;
            let file = files.join(format!("{kind}-{n}.json"));
            std::fs::write(&file, body)?;
            dumped.push((kind.to_string(), file));
        }
        Ok(())
    };
    let list = async |cluster_ns: &str, kind: &str| -> Result<Vec<String>> {
        Ok(names(
            &t.kubectl("source", &["get", kind, "-n", cluster_ns, "-o", "name"])
                .await?,
        ))
    };
    let hc_secrets: Vec<String> = list(ns, "secrets")
        .await?
        .into_iter()
        .filter(|s| s.starts_with(name))
        .collect();
    dump(ns, "secrets", hc_secrets).await?;
    let skip = [
        "docker",
        "service-account-token",
        "oauth-openshift",
        &format!("token-{name}"),
    ];
    let hcp_secrets: Vec<String> = list(&hcp, "secrets")
        .await?
        .into_iter()
        .filter(|s| !skip.iter().any(|k| s.contains(k)))
        .collect();
    dump(&hcp, "secrets", hcp_secrets).await?;
    for kind in [
        "clusters.cluster.x-k8s.io",
        "awsclusters.infrastructure.cluster.x-k8s.io",
        "awsmachinetemplates.infrastructure.cluster.x-k8s.io",
        "awsmachines.infrastructure.cluster.x-k8s.io",
        "machinedeployments.cluster.x-k8s.io",
        "machinesets.cluster.x-k8s.io",
        "machines.cluster.x-k8s.io",
    ] {
        let l = list(&hcp, kind).await?;
        dump(&hcp, kind, l).await?;
    }
    dump(ns, "hostedclusters", vec![name.to_string()]).await?;
    dump(ns, "nodepools", pools.clone()).await?;
    step("dump the objects (kubectl get -o json, one per object)", &mut lap);

    // B5: delete the Routes, then poll Route53 every 10 s until no record of the cluster is left.
    t.kubectl("source", &["delete", "routes", "-n", &hcp, "--all"]).await?;
    let needle = format!("{name}-external-dns.{domain}");
    let moto = drill.moto_url();
    for attempt in 0.. {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let out = t
            .aws(&[
                "route53",
                "list-resource-record-sets",
                "--hosted-zone-id",
                drill.zone_id(),
                "--max-items",
                "10000",
                "--output",
                "json",
                "--endpoint-url",
                &moto,
            ])
            .await?;
        if !out.contains(&needle) {
            break;
        }
        if attempt >= 40 {
            bail!("Timeout waiting for cleaning the Route53 DNS records (as the script stops)");
        }
    }
    step("delete the Routes, wait for Route53 (sleep 10 loop)", &mut lap);

    // Restore: namespaces, then every object but the HostedControlPlane, the HostedCluster
    // with the presigned URL, the NodePools.
    for n in [ns, hcp.as_str()] {
        let _ = t.kubectl("destination", &["create", "namespace", n]).await;
    }
    let apply = async |file: &Path, drop_pause: bool| -> Result<()> {
        let o: Value = serde_json::from_slice(&std::fs::read(file)?)?;
        let cleaned = work.path().join("apply.json");
        std::fs::write(&cleaned, serde_json::to_vec(&clean(o, drop_pause))?)?;
        t.kubectl("destination", &["apply", "-f", cleaned.to_str().unwrap_or_default()])
            .await
            .map(|_| ())
    };
    for (kind, file) in dumped.iter().filter(|(k, _)| k != "hostedclusters" && k != "nodepools") {
        apply(file, false).await.with_context(|| format!("applying {kind}"))?;
    }
    let mut presign = vec!["s3".to_string(), "presign".into(), format!("s3://{bucket}/{key}")];
    presign.extend(t.s3_args());
    let url = t.aws(&presign.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let hc_file = dumped
        .iter()
        .find(|(k, _)| k == "hostedclusters")
        .map(|(_, f)| f.clone())
        .context("no HostedCluster dumped")?;
    let mut hc_obj: Value = serde_json::from_slice(&std::fs::read(&hc_file)?)?;
    if let Some(storage) = hc_obj.pointer_mut("/spec/etcd/managed/storage") {
        storage["restoreSnapshotURL"] = json!([url.trim()]);
    }
    std::fs::write(&hc_file, serde_json::to_vec(&hc_obj)?)?;
    apply(&hc_file, true).await.context("applying the HostedCluster")?;
    for (_, file) in dumped.iter().filter(|(k, _)| k == "nodepools") {
        apply(file, true).await.context("applying a NodePool")?;
    }
    step(
        "restore the objects and the HostedCluster (kubectl apply, aws s3 presign)",
        &mut lap,
    );

    // The end: the first write the hosted API serves.
    let probe = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "documented-probe", "namespace": "default"}});
    let probe_file = work.path().join("probe.json");
    std::fs::write(&probe_file, serde_json::to_vec(&probe)?)?;
    let hosted = format!("{name}-hosted");
    let served = loop {
        if t.kubectl(
            &hosted,
            &[
                "create",
                "-f",
                probe_file.to_str().unwrap_or_default(),
                "--request-timeout=5s",
            ],
        )
        .await
        .is_ok()
        {
            break true;
        }
        if start.elapsed() >= cap {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    step("wait for the hosted API to serve a write", &mut lap);
    let downtime = served.then(|| start.elapsed().as_secs_f64());
    // Why it was not served: what the destination's control plane and Route53 show then.
    if !served {
        let conditions = t
            .kubectl(
                "destination",
                &[
                    "get",
                    "hostedcluster",
                    name,
                    "-n",
                    ns,
                    "-o",
                    "jsonpath={range .status.conditions[*]}{.type}={.status} {end}",
                ],
            )
            .await
            .unwrap_or_else(|e| e.to_string());
        let wanted = [
            "Available",
            "EtcdAvailable",
            "KubeAPIServerAvailable",
            "ExternalDNSReachable",
        ];
        let shown: Vec<&str> = conditions
            .split_whitespace()
            .filter(|c| wanted.iter().any(|w| c.starts_with(&format!("{w}="))))
            .collect();
        let records = t
            .aws(&[
                "route53",
                "list-resource-record-sets",
                "--hosted-zone-id",
                drill.zone_id(),
                "--output",
                "json",
                "--endpoint-url",
                &moto,
            ])
            .await
            .unwrap_or_default();
        let host = ferry_sim::hypershift::environment::api_hostname(&drill.env().scenario, name);
        let api = format!("\"{}.\"", host.trim_end_matches('.'));
        steps.push((
            format!(
                "at the cap: destination HostedCluster {}; Route53 {} record for the API",
                shown.join(" "),
                if records.contains(&api) { "has a" } else { "has no" }
            ),
            0.0,
        ));
    }
    Ok(Baseline { downtime, steps })
}
