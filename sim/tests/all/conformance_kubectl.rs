//! Conformance of ferry-sim against the real `kubectl` (v1.32 here): each test starts a
//! simulator, writes its kubeconfig, and drives kubectl as a subprocess with a private cache
//! directory. Results are checked through kubectl's own output (parsed JSON/YAML) and through
//! the simulator's in-process store.
//!
//! kubectl is required (`.ci/setup` installs it): a missing kubectl fails every test with what
//! to install, rather than letting the referee's checks pass unrun.

use crate::support;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tempfile::TempDir;

use ferry_sim::kube::crd::CrdSource;
use ferry_sim::kube::registry;
use ferry_sim::{Sim, SimOptions};

fn kubectl_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return Some(PathBuf::from(p));
    }
    let default = Path::new("/usr/bin/kubectl");
    if default.exists() {
        return Some(default.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubectl"))
            .find(|p| p.exists())
    })
}

struct Kubectl {
    bin: PathBuf,
    dir: TempDir,
    sim: Sim,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    async fn start() -> Result<Kubectl> {
        Self::start_with(SimOptions::new("kubectl-test")).await
    }

    async fn start_with(opts: SimOptions) -> Result<Kubectl> {
        let Some(bin) = kubectl_path() else {
            bail!("kubectl is not installed: run .ci/setup, or set KUBECTL=/path/to/kubectl");
        };
        let sim = Sim::start_with(opts).await?;
        let dir = tempfile::tempdir()?;
        sim.write_kubeconfig(dir.path().join("kubeconfig"), "sim")?;
        Ok(Kubectl { bin, dir, sim })
    }

    fn file(&self, name: &str, content: &str) -> Result<String> {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content)?;
        Ok(p.to_string_lossy().into_owned())
    }

    async fn run(&self, args: &[&str]) -> Result<Out> {
        let out = tokio::process::Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
            .await
            .with_context(|| format!("kubectl {args:?} did not finish within 60 s"))??;
        Ok(Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Run and require success; returns stdout.
    async fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args).await?;
        if !out.ok {
            bail!(
                "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
                out.stdout,
                out.stderr
            );
        }
        Ok(out.stdout)
    }

    /// Run and require failure; returns stderr.
    async fn fails(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args).await?;
        if out.ok {
            bail!("kubectl {args:?} unexpectedly succeeded: {}", out.stdout);
        }
        Ok(out.stderr)
    }

    async fn json(&self, args: &[&str]) -> Result<Value> {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        let out = self.ok(&full).await?;
        serde_json::from_str(&out).with_context(|| format!("kubectl output is not JSON: {out}"))
    }
}

macro_rules! kubectl_or_skip {
    () => {
        Kubectl::start().await?
    };
}

const HC_YAML: &str = "\
apiVersion: hypershift.openshift.io/v1beta1
kind: HostedCluster
metadata:
  name: hc1
  namespace: clusters
spec:
  infraID: hc1-abcde
  platform:
    type: AWS
  services:
  - service: APIServer
---
apiVersion: hypershift.openshift.io/v1beta1
kind: NodePool
metadata:
  name: hc1-workers
  namespace: clusters
spec:
  clusterName: hc1
  replicas: 2
";

#[tokio::test]
async fn get_with_short_names_and_unknown_kinds() -> Result<()> {
    let k = kubectl_or_skip!();
    k.ok(&["create", "namespace", "clusters"]).await?;
    let f = k.file("hc.yaml", HC_YAML)?;
    let out = k.ok(&["create", "-f", &f]).await?;
    assert!(
        out.contains("hostedcluster.hypershift.openshift.io/hc1 created"),
        "{out}"
    );
    assert!(
        out.contains("nodepool.hypershift.openshift.io/hc1-workers created"),
        "{out}"
    );

    let out = k.ok(&["get", "hc", "-n", "clusters"]).await?;
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("NAME") && header.contains("AGE"), "{out}");
    assert!(lines.next().is_some_and(|l| l.starts_with("hc1 ")), "{out}");

    let out = k.ok(&["get", "np", "-n", "clusters"]).await?;
    assert!(out.contains("CLUSTER") && out.contains("DESIRED NODES"), "{out}");
    let row = out.lines().nth(1).unwrap_or_default();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(..3), Some(&["hc1-workers", "hc1", "2"][..]), "{out}");

    let out = k
        .ok(&["get", "hostedclusters.hypershift.openshift.io", "-A", "-o", "name"])
        .await?;
    assert_eq!(out.trim(), "hostedcluster.hypershift.openshift.io/hc1");
    let out = k.ok(&["get", "ns", "clusters"]).await?;
    assert!(out.contains("Active"), "{out}");

    let err = k.fails(&["get", "foos"]).await?;
    assert!(
        err.contains("the server doesn't have a resource type \"foos\""),
        "{err}"
    );
    let err = k.fails(&["get", "hc", "nope", "-n", "clusters"]).await?;
    assert!(
        err.contains("hostedclusters.hypershift.openshift.io \"nope\" not found"),
        "{err}"
    );

    let out = k.ok(&["api-resources", "--api-group=hypershift.openshift.io"]).await?;
    assert!(out.contains("hostedclusters") && out.contains("hc,hcs"), "{out}");
    Ok(())
}

#[tokio::test]
async fn client_side_apply_builtin_and_custom() -> Result<()> {
    let k = kubectl_or_skip!();
    let store = k.sim.store().clone();
    let cm_v1 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  keep: \"1\"\n  drop: \"2\"\n";
    let f = k.file("cm.yaml", cm_v1)?;
    assert!(k.ok(&["apply", "-f", &f]).await?.contains("configmap/settings created"));
    let cm_v2 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  keep: \"10\"\n  new: \"3\"\n";
    let f = k.file("cm.yaml", cm_v2)?;
    assert!(
        k.ok(&["apply", "-f", &f])
            .await?
            .contains("configmap/settings configured")
    );
    assert!(
        k.ok(&["apply", "-f", &f])
            .await?
            .contains("configmap/settings unchanged")
    );
    let cm = store.get(&registry::CONFIG_MAP, Some("default"), "settings")?;
    assert_eq!(
        cm["data"],
        json!({"keep": "10", "new": "3"}),
        "the three-way patch removed 'drop'"
    );
    assert!(cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());

    // Deployment: strategic merge patch computed by kubectl from its compiled-in types.
    let dep = |image: &str, env: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n        env:\n        - {{name: {env}, value: \"x\"}}\n"
        )
    };
    let f = k.file("dep.yaml", &dep("nginx:1", "A"))?;
    k.ok(&["apply", "-f", &f]).await?;
    let f = k.file("dep.yaml", &dep("nginx:2", "B"))?;
    assert!(
        k.ok(&["apply", "-f", &f])
            .await?
            .contains("deployment.apps/web configured")
    );
    let d = store.get(&registry::DEPLOYMENT, Some("default"), "web")?;
    let c = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(c.as_array().map(Vec::len), Some(1));
    assert_eq!(c[0]["image"], "nginx:2");
    assert_eq!(c[0]["env"], json!([{"name": "B", "value": "x"}]));
    assert_eq!(d["metadata"]["generation"], 2);

    // Custom resource: JSON merge patch.
    k.ok(&["create", "namespace", "clusters"]).await?;
    let f = k.file("hc.yaml", HC_YAML)?;
    k.ok(&["apply", "-f", &f]).await?;
    let f = k.file("hc.yaml", &HC_YAML.replace("hc1-abcde", "hc1-zzzzz"))?;
    let out = k.ok(&["apply", "-f", &f]).await?;
    assert!(
        out.contains("hostedcluster.hypershift.openshift.io/hc1 configured"),
        "{out}"
    );
    assert!(
        out.contains("nodepool.hypershift.openshift.io/hc1-workers unchanged"),
        "{out}"
    );
    let hc = store.get(&registry::HOSTED_CLUSTER, Some("clusters"), "hc1")?;
    assert_eq!(hc["spec"]["infraID"], "hc1-zzzzz");
    Ok(())
}

#[tokio::test]
async fn server_side_apply() -> Result<()> {
    let k = kubectl_or_skip!();
    let store = k.sim.store().clone();
    k.ok(&["create", "namespace", "clusters"]).await?;
    let f = k.file("hc.yaml", HC_YAML)?;
    let out = k.ok(&["apply", "--server-side", "-f", &f]).await?;
    assert!(
        out.contains("hostedcluster.hypershift.openshift.io/hc1 serverside-applied"),
        "{out}"
    );
    let f = k.file("hc.yaml", &HC_YAML.replace("replicas: 2", "replicas: 3"))?;
    k.ok(&["apply", "--server-side", "--force-conflicts", "-f", &f]).await?;
    let np = store.get(&registry::NODE_POOL, Some("clusters"), "hc1-workers")?;
    assert_eq!(np["spec"]["replicas"], 3);
    assert_eq!(np["metadata"]["generation"], 2);

    let f = k.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: marker\n  namespace: clusters\ndata:\n  a: b\n",
    )?;
    k.ok(&["apply", "--server-side", "-f", &f]).await?;
    let cm = store.get(&registry::CONFIG_MAP, Some("clusters"), "marker")?;
    assert_eq!(cm["data"]["a"], "b");
    Ok(())
}

#[tokio::test]
async fn patch_merge_and_json() -> Result<()> {
    let k = kubectl_or_skip!();
    let store = k.sim.store().clone();
    k.ok(&["create", "namespace", "clusters"]).await?;
    let f = k.file("hc.yaml", HC_YAML)?;
    k.ok(&["create", "-f", &f]).await?;
    let out = k
        .ok(&[
            "patch",
            "-n",
            "clusters",
            "hostedclusters",
            "hc1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"pausedUntil":"true"},"metadata":{"finalizers":["hypershift.openshift.io/finalizer"]}}"#,
        ])
        .await?;
    assert!(
        out.contains("hostedcluster.hypershift.openshift.io/hc1 patched"),
        "{out}"
    );
    let hc = store.get(&registry::HOSTED_CLUSTER, Some("clusters"), "hc1")?;
    assert_eq!(hc["spec"]["pausedUntil"], "true");

    k.ok(&[
        "patch",
        "-n",
        "clusters",
        "np",
        "hc1-workers",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":2},{"op":"replace","path":"/spec/replicas","value":5}]"#,
    ])
    .await?;
    let np = store.get(&registry::NODE_POOL, Some("clusters"), "hc1-workers")?;
    assert_eq!(np["spec"]["replicas"], 5);

    let err = k
        .fails(&[
            "patch",
            "-n",
            "clusters",
            "np",
            "hc1-workers",
            "--type",
            "json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":99}]"#,
        ])
        .await?;
    assert!(err.contains("Invalid") || err.contains("invalid"), "{err}");
    // Strategic merge (kubectl's default patch type) on a custom resource is refused.
    let err = k
        .fails(&["patch", "-n", "clusters", "hc", "hc1", "-p", r#"{"spec":{"x":1}}"#])
        .await?;
    assert!(
        err.contains("UnsupportedMediaType") || err.contains("unknown format"),
        "{err}"
    );

    // Unfinalize (the DR teardown step): finalizers=null through a merge patch.
    k.ok(&["delete", "-n", "clusters", "hc", "hc1", "--wait=false"]).await?;
    let hc = store.get(&registry::HOSTED_CLUSTER, Some("clusters"), "hc1")?;
    assert!(hc["metadata"]["deletionTimestamp"].is_string());
    k.ok(&[
        "patch",
        "-n",
        "clusters",
        "hc",
        "hc1",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await?;
    assert!(store.get(&registry::HOSTED_CLUSTER, Some("clusters"), "hc1").is_err());
    Ok(())
}

#[tokio::test]
async fn scale_delete_and_namespaces() -> Result<()> {
    let k = kubectl_or_skip!();
    let store = k.sim.store().clone();
    k.ok(&["create", "namespace", "hcp"]).await?;
    let f = k.file(
        "sts.yaml",
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: etcd\n  namespace: hcp\nspec:\n  replicas: 3\n  serviceName: etcd-discovery\n  selector:\n    matchLabels: {app: etcd}\n  template:\n    metadata:\n      labels: {app: etcd}\n    spec:\n      containers:\n      - {name: etcd, image: etcd}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kube-apiserver\n  namespace: hcp\nspec:\n  selector:\n    matchLabels: {app: kas}\n  template:\n    metadata:\n      labels: {app: kas}\n    spec:\n      containers:\n      - {name: kas, image: kas}\n---\napiVersion: route.openshift.io/v1\nkind: Route\nmetadata:\n  name: oauth\n  namespace: hcp\nspec:\n  host: oauth.example.com\n---\napiVersion: route.openshift.io/v1\nkind: Route\nmetadata:\n  name: konnectivity\n  namespace: hcp\nspec:\n  host: k.example.com\n",
    )?;
    k.ok(&["apply", "-f", &f]).await?;

    let out = k
        .ok(&["scale", "-n", "hcp", "deployment", "kube-apiserver", "--replicas=0"])
        .await?;
    assert!(out.contains("deployment.apps/kube-apiserver scaled"), "{out}");
    let out = k
        .ok(&["scale", "-n", "hcp", "statefulset", "etcd", "--replicas=0"])
        .await?;
    assert!(out.contains("statefulset.apps/etcd scaled"), "{out}");
    let d = store.get(&registry::DEPLOYMENT, Some("hcp"), "kube-apiserver")?;
    assert_eq!(d["spec"]["replicas"], 0);
    let s = store.get(&registry::STATEFUL_SET, Some("hcp"), "etcd")?;
    assert_eq!(s["spec"]["replicas"], 0);

    let out = k.ok(&["delete", "routes", "--all", "-n", "hcp"]).await?;
    assert!(out.contains("route.route.openshift.io \"oauth\" deleted"), "{out}");
    let routes = k.json(&["get", "routes", "-n", "hcp"]).await?;
    assert_eq!(routes["items"].as_array().map(Vec::len), Some(0));

    // `kubectl delete ns` waits until the namespace is gone.
    let out = k.ok(&["delete", "ns", "hcp"]).await?;
    assert!(out.contains("namespace \"hcp\" deleted"), "{out}");
    assert!(store.get(&registry::NAMESPACE, None, "hcp").is_err());
    assert!(store.get(&registry::DEPLOYMENT, Some("hcp"), "kube-apiserver").is_err());
    let err = k.fails(&["get", "ns", "hcp"]).await?;
    assert!(err.contains("namespaces \"hcp\" not found"), "{err}");
    Ok(())
}

#[tokio::test]
async fn typed_create_commands_and_output_formats() -> Result<()> {
    let k = kubectl_or_skip!();
    // These commands send protobuf bodies.
    k.ok(&["create", "namespace", "clusters"]).await?;
    k.ok(&[
        "create",
        "configmap",
        "marker",
        "-n",
        "clusters",
        "--from-literal=restored=false",
    ])
    .await?;
    k.ok(&[
        "create",
        "secret",
        "generic",
        "hc1-pull-secret",
        "-n",
        "clusters",
        "--from-literal=.dockerconfigjson={}",
    ])
    .await?;

    let cm = k.json(&["get", "configmap", "marker", "-n", "clusters"]).await?;
    assert_eq!(cm["data"]["restored"], "false");
    assert_eq!(cm["metadata"]["namespace"], "clusters");
    assert!(
        cm["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    let secret = k.json(&["get", "secret", "hc1-pull-secret", "-n", "clusters"]).await?;
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"][".dockerconfigjson"], "e30=");

    let yaml = k.ok(&["get", "ns", "clusters", "-o", "yaml"]).await?;
    let ns: Value = serde_saphyr::from_str(&yaml)?;
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));

    let list = k.json(&["get", "cm", "-n", "clusters", "-l", "!missing"]).await?;
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "marker");
    let list = k
        .json(&["get", "cm", "-A", "--field-selector", "metadata.name=marker"])
        .await?;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));

    let jp = k
        .ok(&[
            "get",
            "cm",
            "marker",
            "-n",
            "clusters",
            "-o",
            "jsonpath={.data.restored}",
        ])
        .await?;
    assert_eq!(jp, "false");
    k.ok(&["delete", "configmap", "marker", "-n", "clusters"]).await?;
    assert!(
        k.sim
            .store()
            .get(&registry::CONFIG_MAP, Some("clusters"), "marker")
            .is_err()
    );
    Ok(())
}

/// Client-side validation needs the OpenAPI of every kind served, core kinds included: a
/// `v1 List` of Secrets applies as on a real cluster.
#[tokio::test]
async fn a_v1_list_of_secrets_applies() -> Result<()> {
    let k = Kubectl::start().await?;
    let list = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata:
    name: one
    namespace: default
  stringData:
    a: b
- apiVersion: v1
  kind: Secret
  metadata:
    name: two
    namespace: default
  type: Opaque
  data:
    c: ZA==
"#;
    let f = k.file("list.yaml", list)?;
    let out = k.ok(&["apply", "-f", &f]).await?;
    assert!(
        out.contains("secret/one created") && out.contains("secret/two created"),
        "{out}"
    );
    let two = k.sim.store().get(&registry::SECRET, Some("default"), "two")?;
    assert_eq!(two["data"]["c"], "ZA==");
    Ok(())
}

/// `kubectl apply -f` of an upstream CRD file works as on a real cluster; the kind is then
/// served with its schema, so `kubectl explain` reads upstream's documentation.
#[tokio::test]
async fn upstream_crds_apply_and_explain() -> Result<()> {
    let k = Kubectl::start_with(SimOptions {
        registry: ferry_sim::Registry::core(),
        ..SimOptions::new("kubectl-crds")
    })
    .await?;
    let crd = support::upstream_crds().join("hostedclusters-Hypershift-Default.crd.yaml");
    let out = k.ok(&["apply", "--server-side", "-f", &crd.to_string_lossy()]).await?;
    assert!(
        out.contains("hostedclusters.hypershift.openshift.io serverside-applied"),
        "{out}"
    );
    let mut explained = String::new();
    for _ in 0..50 {
        let o = k.run(&["explain", "hostedcluster.spec.etcd"]).await?;
        if o.ok {
            explained = o.stdout;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(explained.contains("KIND:       HostedCluster"), "{explained}");
    assert!(explained.contains("managementType\t<string> -required-"), "{explained}");
    assert!(
        explained.contains("etcd specifies configuration for the control plane etcd cluster"),
        "{explained}"
    );
    let deep = k
        .ok(&["explain", "hc.spec.etcd.managed.storage.restoreSnapshotURL"])
        .await?;
    assert!(deep.contains("FIELD: restoreSnapshotURL <[]string>"), "{deep}");
    Ok(())
}

/// kubectl prints kube-apiserver's messages for upstream's validation: OpenAPI (`Too many`,
/// `Required value`) and CEL rules, one cause per field.
#[tokio::test]
async fn kubectl_shows_upstream_validation_messages() -> Result<()> {
    let k = Kubectl::start_with(SimOptions {
        registry: ferry_sim::Registry::core(),
        crds: CrdSource::Dir(support::upstream_crds()),
        ..SimOptions::new("kubectl-validation")
    })
    .await?;
    k.ok(&["create", "namespace", "clusters"]).await?;
    let hc = r#"
apiVersion: hypershift.openshift.io/v1beta1
kind: HostedCluster
metadata:
  name: hc1
  namespace: clusters
spec:
  release:
    image: quay.io/openshift-release-dev/ocp-release:4.17.0-x86_64
  pullSecret:
    name: ps
  sshKey:
    name: ssh
  dns:
    baseDomain: example.com
  networking:
    networkType: OVNKubernetes
    clusterNetwork:
    - cidr: 10.132.0.0/14
  services: []
  platform:
    type: AWS
  etcd:
    managementType: Managed
    managed:
      storage:
        type: PersistentVolume
        restoreSnapshotURL:
        - https://s3.example.com/a
        - http://s3.example.com/b
"#;
    let f = k.file("hc.yaml", hc)?;
    let err = k.fails(&["apply", "-f", &f]).await?;
    assert!(err.contains("The HostedCluster \"hc1\" is invalid:"), "{err}");
    assert!(
        err.contains("spec.etcd.managed.storage.restoreSnapshotURL: Too many: 2: must have at most 1 item"),
        "{err}"
    );
    Ok(())
}
