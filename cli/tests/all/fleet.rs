//! `ferry fleet plan|render|run-index` as processes against a drill's fleet: the plan, the
//! rendered manifests accepted by the destination's API server (`kubectl apply
//! --dry-run=server`), and one Job index run as its pod would run it.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use ferry_drill::{Drill, DrillOptions, FLEET_SELECTOR, fleet_scenario};
use serde_json::Value;

fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stderr\n{}\n--- stdout\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    )
}

async fn ferry(drill: &Drill, args: &[&str], env: &[(String, String)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .envs(env.iter().cloned())
        .env("XDG_CACHE_HOME", std::env::temp_dir().join("ferry-cli-test-cache"))
        .current_dir(drill.dir())
        .output()
        .await
        .unwrap()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(o)))
}

/// A path of the pod's file system, under `root` (what the container's mounts do).
fn in_pod(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_is_planned_rendered_accepted_and_one_index_runs_as_its_pod() {
    let drill = Drill::start(DrillOptions {
        scenario: fleet_scenario(3),
        say: Arc::new(|_: &str| {}),
        ..Default::default()
    })
    .await
    .unwrap();
    let site = drill.site_path().display().to_string();
    let aws: Vec<(String, String)> = drill
        .process_env()
        .into_iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_string(), v))
        .collect();

    // Plan: every member's preflight, nothing changed.
    let plan = ferry(
        &drill,
        &[
            "fleet",
            "plan",
            "--site",
            &site,
            "--selector",
            FLEET_SELECTOR,
            "--output",
            "json",
        ],
        &aws,
    )
    .await;
    assert!(plan.status.success(), "{}", show(&plan));
    let plan = json_of(&plan);
    assert_eq!(plan["schema"], "ferry.fleet-plan/v1");
    let names: Vec<String> = plan["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["member"]["namespace"].as_str().unwrap(),
                m["member"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        ["clusters/demo-one", "clusters/fleet-02", "clusters-east/fleet-01"]
    );
    assert!(
        plan["members"].as_array().unwrap().iter().all(|m| m["ready"] == true),
        "{plan}"
    );

    // Render, and have the destination's API server accept it.
    let render_args = [
        "fleet",
        "render",
        "--site",
        &site,
        "--selector",
        FLEET_SELECTOR,
        "--concurrency",
        "2",
        "--image",
        "quay.io/example/ferry:test",
        "--aws-credentials-secret",
        "ferry-aws",
        "--audit-key-secret",
        "ferry-audit-key",
    ];
    let yaml = ferry(&drill, &render_args, &aws).await;
    assert!(yaml.status.success(), "{}", show(&yaml));
    let rendered = drill.dir().join("fleet.yaml");
    std::fs::write(&rendered, &yaml.stdout).unwrap();
    let dest_kc = drill.dir().join("kubeconfigs/destination.kubeconfig");
    let kubectl = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .args(args)
            .arg("--kubeconfig")
            .arg(&dest_kc)
            .output()
            .unwrap()
    };
    let ns = kubectl(&["create", "namespace", "ferry"]);
    assert!(ns.status.success(), "{}", show(&ns));
    let applied = kubectl(&["apply", "--dry-run=server", "-f", rendered.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", show(&applied));
    let said = String::from_utf8_lossy(&applied.stdout);
    for object in [
        "serviceaccount/ferry-fleet created (server dry run)",
        "configmap/ferry-fleet-site created (server dry run)",
        "job.batch/ferry-fleet created (server dry run)",
        "clusterrole.rbac.authorization.k8s.io/ferry-fleet created (server dry run)",
        "rolebinding.rbac.authorization.k8s.io/ferry-fleet created (server dry run)",
    ] {
        assert!(said.contains(object), "{object} not in:\n{said}");
    }

    // The same manifests as JSON, to run index 1 as its pod would.
    let json = ferry(&drill, &[&render_args[..], &["--output", "json"]].concat(), &aws).await;
    assert!(json.status.success(), "{}", show(&json));
    let items = json_of(&json)["items"].as_array().unwrap().clone();
    let of_kind = |kind: &str| items.iter().find(|i| i["kind"] == kind).unwrap().clone();
    let job = of_kind("Job");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["completions"], 3);
    assert_eq!(job["spec"]["parallelism"], 2);
    let config_map = of_kind("ConfigMap");
    let pod = &job["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    // The RBAC of the in-cluster identity: the destination's, bound to the Job's account.
    assert!(items.iter().any(|i| i["kind"] == "ClusterRoleBinding"
        && i["subjects"][0]["name"] == "ferry-fleet"
        && i["subjects"][0]["namespace"] == "ferry"));
    assert!(
        items
            .iter()
            .filter(|i| i["kind"] == "Role" || i["kind"] == "ClusterRole")
            .all(|i| i["metadata"]["annotations"]["ferry.dev/cluster"] == "destination")
    );

    // The pod's file system: its volumes at their mount paths.
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let translate = |text: &str| {
        text.replace("/etc/ferry", &in_pod(root, "/etc/ferry").display().to_string())
            .replace("/var/lib/ferry", &in_pod(root, "/var/lib/ferry").display().to_string())
    };
    for mount in container["volumeMounts"].as_array().unwrap() {
        let dir = in_pod(root, mount["mountPath"].as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        if volume.get("configMap").is_some() {
            for (key, value) in config_map["data"].as_object().unwrap() {
                std::fs::write(dir.join(key), translate(value.as_str().unwrap())).unwrap();
            }
        } else if volume["secret"]["secretName"] == "ferry-kubeconfigs" {
            // The Secret the site creates, with the keys render asked for.
            let kc = drill.dir().join("kubeconfigs");
            std::fs::copy(kc.join("source.kubeconfig"), dir.join("source.kubeconfig")).unwrap();
            for m in ["clusters/demo-one", "clusters/fleet-02", "clusters-east/fleet-01"] {
                let (ns, name) = m.split_once('/').unwrap();
                std::fs::copy(
                    kc.join("hosted").join(ns).join(format!("{name}.kubeconfig")),
                    dir.join(format!("hosted.{ns}.{name}.kubeconfig")),
                )
                .unwrap();
            }
        } else if volume["secret"]["secretName"] == "ferry-audit-key" {
            std::fs::copy(drill.dir().join("audit.key"), dir.join("key")).unwrap();
        }
    }
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| translate(a.as_str().unwrap()))
        .collect();
    let mut env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                translate(e["value"].as_str().unwrap()),
            )
        })
        .collect();
    // What Kubernetes adds: the index, the credentials Secret (envFrom), and the in-cluster
    // API (here the destination's kubeconfig stands in for the pod's ServiceAccount token).
    env.push(("JOB_COMPLETION_INDEX".into(), "1".into()));
    env.extend(aws.iter().cloned());
    env.push(("KUBECONFIG".into(), dest_kc.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = ferry(&drill, &args, &env).await;
    assert!(run.status.success(), "{}", show(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("1 of 1 hosted clusters migrated"),
        "{}",
        show(&run)
    );
    let audit = in_pod(root, "/var/lib/ferry/audit/clusters/fleet-02.jsonl");
    let checks = drill.verify_hosted_cluster("clusters", "fleet-02", &audit).await;
    assert!(checks.passed(), "{}", checks.to_text());
    // The others were not touched: still on the source.
    let source = drill.env().source().sim.store();
    for (ns, name) in [("clusters", "demo-one"), ("clusters-east", "fleet-01")] {
        assert!(
            source
                .get(&ferry_sim::kube::registry::HOSTED_CLUSTER, Some(ns), name)
                .is_ok()
        );
    }
    drill.shutdown().await;
}
